/* FNV-1a, 32 bits: the one hash of the small tables (connections per
 * client, stats slots, usage counters). Not for anything an attacker can
 * aim at beyond a slower bucket: every table keeps its chains short by
 * size, not by the hash's secrecy. */
#ifndef SG_UTIL_HASH_H
#define SG_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline unsigned
hash_fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

/* The same over a NUL-terminated string. */
static inline unsigned
hash_fnv1a_str(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

#endif
