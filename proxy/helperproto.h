/* Squid's helper line protocols (pure: no libevent, no processes).
 *
 * Requests, one line each, '\n' terminated, optionally preceded by a
 * channel ID ("7 ") when the helper speaks the concurrency protocol:
 *   basic          "user password"   both URL-escaped (RFC 1738, as Squid)
 *   external ACL   "user group"      both URL-escaped
 *   negotiate      "YR token" first leg, "KK token" the following ones
 *
 * Replies, one line each, with the same channel ID in front when used:
 *   "OK key=value ...", "ERR key=value ...", "BH key=value ..."
 * Values are bare (up to a space, URL-escaped) or quoted ("..." with
 * backslash escapes). After ERR and BH, text that is no key=value list
 * (older helpers: "ERR Invalid credentials") is the message; after OK it
 * makes the reply garbage (a yes is only ever a clean one). "BH Success"
 * from a basic or group helper is read as an uncertain ERR: Squid 5's
 * basic_ldap_auth says so for a wrong password and an unknown user (the
 * LDAP error it reports is "no error"), but also when the directory
 * cannot be reached; so it is a no (407, sign in again) that is never
 * cached. The old negotiate forms are read too:
 *   "AF token user"  -> OK, token=..., user=...
 *   "TT token"       -> TT, token=...
 *   "NA ..."         -> ERR (message= the rest)
 *   "BH ..."         -> BH  (message= the rest)
 * and the Squid 3.4+ ones "OK token=... user=...", "TT token=...",
 * "ERR ...", "BH ...". Anything else is HELPER_CODE_GARBAGE: the caller
 * treats it as BH (never as a yes). */
#ifndef SG_HELPERPROTO_H
#define SG_HELPERPROTO_H

#include <stddef.h>

/* A reply line longer than this is garbage (Squid's own limit is 32 KiB;
 * a Kerberos token of a big AD group set stays well under it). */
#define HELPER_MAX_LINE 65536
#define HELPER_MAX_NOTES 16

enum helper_code {
    HELPER_CODE_OK,      /* yes (negotiate: AF, or OK with token=/user=) */
    HELPER_CODE_ERR,     /* no (negotiate: NA) */
    HELPER_CODE_BH,      /* the helper could not answer: an error, never a yes */
    HELPER_CODE_TT,      /* negotiate: one more leg, token= to send back */
    HELPER_CODE_GARBAGE, /* not a reply: treated as BH */
};

struct helper_note {
    char *key, *value; /* value decoded (unquoted / URL-unescaped) */
};

/* A parsed reply. Every string points into `buf`, owned by the reply. */
struct helper_reply {
    enum helper_code code;
    const char *user;    /* user= (negotiate: the AF user), or NULL */
    const char *token;   /* token= (negotiate: the AF/TT token), or NULL */
    const char *message; /* message= (or the old forms' free text), or NULL */
    const char *log;     /* log=, or NULL */
    struct helper_note notes[HELPER_MAX_NOTES];
    size_t nnotes;
    int uncertain; /* an ERR read from "BH Success": never cached */
    char *buf;
};

/* URL-escapes s as Squid does for helper requests (rfc1738_escape: every
 * byte but unreserved ASCII as %XX) into out; returns the length, or -1
 * when it does not fit (out always NUL terminated when size > 0). */
int helperproto_escape(const char *s, char *out, size_t size);
/* Decodes %XX in place; returns the new length. */
size_t helperproto_unescape(char *s);

/* Request lines, with '\n': "user password\n", "user group\n",
 * "YR token\n" / "KK token\n" (first leg: first != 0). Return the length,
 * or -1 when it does not fit or a token holds a byte that is no base64. */
int helperproto_basic_request(const char *user, const char *password, char *out, size_t size);
int helperproto_group_request(const char *user, const char *group, char *out, size_t size);
int helperproto_negotiate_request(int first, const char *token, char *out, size_t size);

/* Splits "ID rest" for the concurrency protocol: the channel ID into *id
 * and the rest (without '\r'/'\n') into *rest. 0, or -1 when the line
 * does not start with a number followed by a space (or end of line). */
int helperproto_split_channel(const char *line, size_t len, unsigned long *id, const char **rest,
                              size_t *rest_len);

/* Parses one reply line (without channel ID; a trailing "\r\n" is
 * ignored). negotiate: also accept the old AF/TT/NA forms. Always fills
 * r (code GARBAGE on bad input) and returns 0, or -1 on no memory.
 * helperproto_reply_free releases it. */
int helperproto_parse_reply(const char *line, size_t len, int negotiate, struct helper_reply *r);
void helperproto_reply_free(struct helper_reply *r);
/* The value of note `key`, or NULL. */
const char *helperproto_note(const struct helper_reply *r, const char *key);

const char *helperproto_code_name(enum helper_code c);

/* Splits a helper command line into argv (malloc'd, NULL terminated; free
 * with helperproto_argv_free): words split on blanks, "..." and '...'
 * group, no shell. A first word "concurrency=N" (0-1000) is taken out
 * into *concurrency (0 without it). NULL with a static message in *err. */
char **helperproto_argv(const char *cmdline, int *concurrency, const char **err);
void helperproto_argv_free(char **argv);
/* Checks that the command line's program exists and is executable (a
 * name without '/' is looked up in PATH; a relative path is resolved
 * against dir). 0, or -1 with a message in why. */
int helperproto_check_program(const char *cmdline, const char *dir, char *why, size_t size);

#endif
