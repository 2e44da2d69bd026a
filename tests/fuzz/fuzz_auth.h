/* Shared by the htpasswd and Proxy-Authorization targets. */
#ifndef SG_FUZZ_AUTH_H
#define SG_FUZZ_AUTH_H

#include <string.h>

#include "fuzz.h"
#include "htpasswd.h"

/* Whether checking a password against hash is cheap enough for a fuzzer:
 * bcrypt only at cost 4 or 5, SHA-crypt only up to its default 5000
 * rounds; the other formats have a fixed, small cost. */
static inline int
fuzz_hash_cheap(const char *h)
{
    if (h[0] == '$' && h[1] == '2')
        return strlen(h) >= 7 && h[4] == '0' && (h[5] == '4' || h[5] == '5');
    if (h[0] == '$' && (h[1] == '5' || h[1] == '6') && h[2] == '$') {
        if (strncmp(h + 3, "rounds=", 7) != 0)
            return 1;
        unsigned long r = 0;
        const char *p = h + 10;
        for (int i = 0; *p >= '0' && *p <= '9' && i < 9; i++, p++)
            r = r * 10 + (unsigned long)(*p - '0');
        return r <= 5000;
    }
    return 1;
}

/* Base64 (RFC 4648, padded) of s[0..n) into out (4 * ((n + 2) / 3) + 1). */
static inline void
fuzz_b64(const unsigned char *s, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    out[o] = '\0';
}

/* htpasswd_parse_basic on value[0..len) with several buffer sizes, and
 * its invariants: a parsed user is non-empty, without ':' or control
 * characters; a failure leaves both buffers empty; encoding the result
 * again parses back to the same; buffers exactly big enough suffice and
 * one byte less does not. Returns 0 with user and pass filled, or -1. */
static inline int
fuzz_parse_basic(const char *value, size_t len, char *user, size_t usz, char *pass, size_t psz)
{
    memset(user, 'x', usz);
    memset(pass, 'x', psz);
    int rc = htpasswd_parse_basic(value, len, user, usz, pass, psz);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(user[0] == '\0' && pass[0] == '\0');
        return -1;
    }
    size_t ul = strnlen(user, usz), pl = strnlen(pass, psz);
    FUZZ_CHECK(ul > 0 && ul < usz && pl < psz);
    for (size_t i = 0; i < ul; i++)
        FUZZ_CHECK((unsigned char)user[i] >= 0x20 && user[i] != 0x7f && user[i] != ':');
    for (size_t i = 0; i < pl; i++)
        FUZZ_CHECK((unsigned char)pass[i] >= 0x20 && pass[i] != 0x7f);

    size_t cl = ul + 1 + pl;
    unsigned char *cred = malloc(cl);
    char *hdr = malloc(6 + 4 * ((cl + 2) / 3) + 1);
    char *u2 = malloc(ul + 1), *p2 = malloc(pl + 1);
    if (cred == NULL || hdr == NULL || u2 == NULL || p2 == NULL)
        abort();
    memcpy(cred, user, ul);
    cred[ul] = ':';
    memcpy(cred + ul + 1, pass, pl);
    memcpy(hdr, "Basic ", 6);
    fuzz_b64(cred, cl, hdr + 6);
    FUZZ_CHECK(htpasswd_parse_basic(hdr, strlen(hdr), u2, ul + 1, p2, pl + 1) == 0);
    FUZZ_CHECK(strcmp(u2, user) == 0 && strcmp(p2, pass) == 0);
    if (ul > 1)
        FUZZ_CHECK(htpasswd_parse_basic(value, len, u2, ul, p2, pl + 1) == -1);
    if (pl > 0)
        FUZZ_CHECK(htpasswd_parse_basic(value, len, u2, ul + 1, p2, pl) == -1);
    /* The same value, exact buffers: as the first time. */
    FUZZ_CHECK(htpasswd_parse_basic(value, len, u2, ul + 1, p2, pl + 1) == 0);
    FUZZ_CHECK(strcmp(u2, user) == 0 && strcmp(p2, pass) == 0);
    free(cred);
    free(hdr);
    free(u2);
    free(p2);
    return 0;
}

#endif
