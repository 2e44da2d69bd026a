#include "clusterkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/num.h"

/* A name the keys and messages can carry. */
static int
carriable(const char *s)
{
    if (*s == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '{' || *p == '}')
            return 0;
    return 1;
}

int
clusterkey_make(char *buf, size_t size, enum clusterkey_kind kind, const char *identity,
                const char *name, int64_t n)
{
    if (!carriable(identity) || !carriable(name))
        return -1;
    int len;
    switch (kind) {
    case CLUSTERKEY_MINUTES:
    case CLUSTERKEY_RULE_MINUTES:
        if (n < 0)
            return -1;
        len = snprintf(buf, size, CLUSTERKEY_PREFIX "{%s}:%c:%s:%lld", identity,
                       kind == CLUSTERKEY_MINUTES ? 'm' : 'r', name, (long long)(n / 1440));
        break;
    case CLUSTERKEY_QUOTA:
        len = snprintf(buf, size, CLUSTERKEY_PREFIX "{%s}:q:%s:%lld", identity, name, (long long)n);
        break;
    case CLUSTERKEY_CONTINUE:
        len = snprintf(buf, size, CLUSTERKEY_PREFIX "{%s}:w:%s", identity, name);
        break;
    default:
        return -1;
    }
    return len < 0 || (size_t)len >= size ? -1 : len;
}

unsigned
clusterkey_bit(int64_t minute)
{
    return (unsigned)(minute % 1440);
}

unsigned
clusterkey_quota_ttl(int weekly)
{
    return weekly ? 8 * 86400 : 2 * 86400;
}

int
clusterkey_msg_quota_prefix(char *buf, size_t size, const char *identity, const char *rule,
                            int32_t period)
{
    if (!carriable(identity) || !carriable(rule))
        return -1;
    int len = snprintf(buf, size, "q\x1f%s\x1f%s\x1f%ld", identity, rule, (long)period);
    return len < 0 || (size_t)len >= size ? -1 : len;
}

int
clusterkey_msg_continue(char *buf, size_t size, const char *identity, const char *platform,
                        int64_t until)
{
    if (!carriable(identity) || !carriable(platform))
        return -1;
    int len = snprintf(buf, size, "w\x1f%s\x1f%s\x1f%lld", identity, platform, (long long)until);
    return len < 0 || (size_t)len >= size ? -1 : len;
}

/* The next field of p[*pos..len) up to 0x1f or the end, into out. */
static int
field(const char *p, size_t len, size_t *pos, char *out, size_t size)
{
    size_t start = *pos, i = start;
    while (i < len && p[i] != '\x1f')
        i++;
    size_t n = i - start;
    if (n == 0 || n >= size)
        return -1;
    memcpy(out, p + start, n);
    out[n] = '\0';
    if (memchr(out, '\0', n) != NULL)
        return -1;
    *pos = i < len ? i + 1 : i;
    return 0;
}

int
clusterkey_msg_parse(const char *p, size_t len, struct clusterkey_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 2 || (p[0] != 'q' && p[0] != 'w') || p[1] != '\x1f')
        return -1;
    out->kind = p[0];
    size_t pos = 2;
    char num[32];
    const char *err;
    uint64_t v;
    if (field(p, len, &pos, out->identity, sizeof(out->identity)) < 0 ||
        field(p, len, &pos, out->name, sizeof(out->name)) < 0 ||
        field(p, len, &pos, num, sizeof(num)) < 0 ||
        num_parse_u64(num, strlen(num), INT64_MAX, &v, &err) < 0)
        return -1;
    if (out->kind == 'w') {
        out->until = (int64_t)v;
        return pos == len ? 0 : -1;
    }
    out->period = (int64_t)v;
    if (field(p, len, &pos, num, sizeof(num)) < 0 ||
        num_parse_u64(num, strlen(num), UINT32_MAX, &out->minutes, &err) < 0 || pos != len)
        return -1;
    return 0;
}
