/* HTTP Negotiate (RFC 4559) for a proxy: the pieces that are pure text
 * (no libevent, no helper processes): reading the client's
 * Proxy-Authorization token, the Proxy-Authenticate fields of a 407, and
 * the user name as logged and matched against roles.
 *
 * The exchange itself runs in gate.c through the negotiate helper's pool
 * (helper.h): "YR token" for a first leg, "KK token" for the next ones,
 * and the identity it gives sticks to the client connection. */
#ifndef SG_NEGOTIATE_H
#define SG_NEGOTIATE_H

#include <stddef.h>

/* A Kerberos token of a user in many AD groups is large; Squid reads up
 * to 64 KiB of header. A token longer than this is refused. */
#define NEGOTIATE_MAX_TOKEN 49152

/* One Proxy-Authorization value (v, len; no CRLF). Returns 1 when its
 * scheme is Negotiate and its token is base64 (copied to tok, NUL
 * terminated), 0 when the scheme is another one (Basic...), -1 when it is
 * Negotiate with no token, a bad one, or one that does not fit. */
int negotiate_parse_authorization(const char *v, size_t len, char *tok, size_t toksize);

/* The Proxy-Authenticate fields of a 407, each with its CRLF:
 * "Negotiate" (or "Negotiate TOKEN" to continue an exchange: then alone),
 * then "Basic realm=..." when basic is set. Returns the length, or 0 when
 * it does not fit in out. */
size_t negotiate_challenge(const char *token, int negotiate, int basic, const char *realm,
                           char *out, size_t size);

/* The realms the negotiate helper's command line names (the "@REALM" end
 * of any of its words, as in -s HTTP/gw.example.com@EXAMPLE.COM),
 * distinct, compared without case: how many (stops counting at 2), and
 * the first in first (NUL terminated, empty when none). */
int negotiate_realms(const char *cmdline, char *first, size_t firstsize);

/* The name a Kerberos principal user@REALM is known by (logged, matched
 * against `users =` of roles), given what negotiate_realms found:
 *   no realm named        the realm is removed from every name;
 *   one realm named       removed from that realm's names; a name of
 *                         another realm (a trusted one) keeps it, so it
 *                         can never pass for a local user of that name;
 *   two or more named     every name keeps its realm.
 * Returns 0, or -1 when the name does not fit or is empty. */
int negotiate_user_name(const char *principal, int nrealms, const char *realm, char *out,
                        size_t size);

#endif
