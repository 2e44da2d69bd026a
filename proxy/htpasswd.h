/* Apache htpasswd and AuthGroupFile files, password hash checks and the
 * Basic credentials of a Proxy-Authorization header (pure: no libevent, no
 * logging; OpenSSL for MD5/SHA-1 and libxcrypt for crypt(3) hashes).
 *
 * A loaded htpasswd or htgroups is read-only: any number of threads may
 * look it up at the same time. Problems found while loading are reported
 * to a struct diag as "FILE:LINE: message"; a load with any error returns
 * NULL, so a half-read credential file is never used.
 *
 * Password hashes accepted (what Apache's htpasswd writes on Unix):
 *   $2y$ $2b$ $2a$   bcrypt (htpasswd -B); only the first 72 bytes of a
 *                    password count
 *   $5$ $6$          SHA-256-crypt / SHA-512-crypt (htpasswd -2 / -5)
 *   $1$              MD5-crypt (openssl passwd -1; Apache takes it on Unix
 *                    through crypt(3))
 *   $apr1$           Apache's MD5 (htpasswd -m, its default)
 *   {SHA}            base64 of the unsalted SHA-1 (htpasswd -s)
 *   13 characters    traditional DES crypt (htpasswd -d); only the first 8
 *                    bytes of a password count
 * Plain-text passwords are rejected (Apache accepts them only on Windows
 * and NetWare); note that a 13-character plain-text password made of
 * [./0-9A-Za-z] is indistinguishable from a DES hash, as in Apache. */
#ifndef SG_HTPASSWD_H
#define SG_HTPASSWD_H

#include <stddef.h>

#include "diag.h"

/* Longest user or group name, in bytes. */
#define HTPASSWD_MAX_USER 255
/* Longest password checked, in bytes (libxcrypt's own limit); longer
 * passwords never match, which also bounds the cost of $apr1$. */
#define HTPASSWD_MAX_PASSWORD 512
/* Largest htpasswd or group file read (bytes). */
#define HTPASSWD_MAX_FILE (256u * 1024 * 1024)

struct htpasswd;
struct htgroups;

/* --- htpasswd files ------------------------------------------------------
 * "user:hash" per line; leading and trailing blanks (and a CR) are ignored,
 * so are empty lines and lines whose first non-blank character is '#'. As
 * in Apache, a ':' after the hash ends it and the rest of the line is
 * ignored. A user name may hold spaces, as in Apache (a group file cannot
 * list such a user: htgroups_check_users). Errors (each "FILE:LINE:
 * ..."): no ':', an invalid user name (empty, longer than
 * HTPASSWD_MAX_USER, a control character),
 * a hash that is not one of the formats above ("user 'x': unsupported
 * password hash") or is one of them but malformed ("user 'x': malformed
 * bcrypt password hash"), a user defined twice, a NUL byte. */

/* Reads the file at path. Returns an owned htpasswd (free with
 * htpasswd_free), or NULL with every problem (and I/O errors, as
 * "FILE: message") added to d. */
struct htpasswd *htpasswd_load(const char *path, struct diag *d);

/* Same from a NUL-terminated string; name stands for the file in the
 * messages ("<string>" when NULL). text is copied: it need not outlive the
 * result. */
struct htpasswd *htpasswd_load_string(const char *text, const char *name, struct diag *d);

/* Frees h and all its strings; NULL is allowed. */
void htpasswd_free(struct htpasswd *h);

/* The stored hash of user, or NULL when there is no such user (or h or
 * user is NULL). Borrowed: valid while h lives. O(log n). */
const char *htpasswd_hash(const struct htpasswd *h, const char *user);

/* A stored hash as costly to check as any in the file (bcrypt with the
 * highest cost first), or NULL for an empty file. A name not in the file is
 * checked against it, its result ignored, so a 407 takes as long for an
 * unknown user as for a wrong password: timing does not tell which user
 * names exist. Borrowed, like htpasswd_hash. */
const char *htpasswd_decoy_hash(const struct htpasswd *h);

/* 1 when password matches hash (any format above), 0 otherwise: also for
 * an unsupported or malformed hash, a NULL argument, a password longer
 * than HTPASSWD_MAX_PASSWORD, or when OpenSSL or libxcrypt fails. The
 * comparison with the stored hash is constant-time. Thread-safe, and may
 * take milliseconds (bcrypt, SHA-crypt with many rounds): callers run it
 * off the event loop. */
int htpasswd_check_hash(const char *hash, const char *password);

/* 1 when user exists in h and password matches its hash, 0 otherwise.
 * An unknown user returns at once, so timing tells whether a user exists;
 * callers that care must not answer sooner for unknown users. */
int htpasswd_verify(const struct htpasswd *h, const char *user, const char *password);

/* Number of users in h (0 for NULL). */
size_t htpasswd_count(const struct htpasswd *h);

/* --- group files (Apache AuthGroupFile) ----------------------------------
 * "group: user1 user2 ..." per line, members separated by spaces or tabs;
 * a group may appear on several lines (the members add up), a member
 * listed twice counts once, and a group may have no members. Blank lines
 * and '#' lines are ignored as above. Errors: no ':', an invalid group
 * name (empty, too long, a blank or a control character), an invalid
 * member name (as for htpasswd users, and no ':'), a NUL byte. Members are
 * not checked against any htpasswd file. */

/* Reads the file at path. Returns an owned htgroups (free with
 * htgroups_free), or NULL with every problem added to d. */
struct htgroups *htgroups_load(const char *path, struct diag *d);

/* Same from a NUL-terminated string (copied); name as for
 * htpasswd_load_string. */
struct htgroups *htgroups_load_string(const char *text, const char *name, struct diag *d);

/* Frees g; NULL is allowed. */
void htgroups_free(struct htgroups *g);

/* 1 when user is a member of group, 0 otherwise (also for NULL
 * arguments). Names compare byte for byte. O(log n). */
int htgroups_member(const struct htgroups *g, const char *group, const char *user);

/* 1 when the file names group (even with no members), 0 otherwise (also
 * for NULL arguments). Names compare byte for byte. O(log n). */
int htgroups_has_group(const struct htgroups *g, const char *group);

/* Calls fn(arg, group) once for each group user is a member of, in
 * byte-wise ascending order of group name; nothing for an unknown user or
 * NULL arguments. group is borrowed: valid while g lives. fn must not free
 * g. */
void htgroups_foreach_of(const struct htgroups *g, const char *user,
                         void (*fn)(void *arg, const char *group), void *arg);

/* Warnings (FILE:LINE of the group file called name) where g tries to list
 * a user of h whose name holds spaces, which a group file cannot do: a
 * group that lists every word of such a name ("staff: jane doe" for the
 * user "jane doe") gets one. Nothing for NULL arguments. */
void htgroups_check_users(const struct htgroups *g, const struct htpasswd *h, const char *name,
                          struct diag *d);

/* --- Proxy-Authorization -------------------------------------------------- */

/* Parses the header value value[0..len) (need not be NUL-terminated; no
 * byte past len is read) as "Basic <base64 of user:password>" (RFC 7617).
 * The scheme is case-insensitive and followed by one or more spaces;
 * blanks before and after the whole value are ignored. The base64 must be
 * strict RFC 4648: alphabet A-Z a-z 0-9 + /, '=' padding to a multiple of
 * 4 characters, zero padding bits, nothing after it. The decoded text is
 * split at its first ':' (the password may hold more). On success returns
 * 0 with user (non-empty) and pass (may be empty) NUL-terminated in the
 * caller's buffers of usz and psz bytes. Returns -1 for anything else:
 * another scheme, bad base64, no ':', an empty user, a control character
 * (0x00-0x1f, 0x7f) in user or password, or a name or password that does
 * not fit its buffer with its NUL (never truncated); user and pass are
 * then emptied (and wiped) when their size is not 0. */
int htpasswd_parse_basic(const char *value, size_t len, char *user, size_t usz, char *pass,
                         size_t psz);

#endif
