#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

int
addr_parse_cidr(const char *s, struct cidr *out, const char **err)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    unsigned maxp;

    if (alen == 0 || alen >= sizeof(buf)) {
        *err = "bad address";
        return -1;
    }
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        maxp = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        maxp = 128;
    } else {
        *err = "bad address (expected an IPv4 or IPv6 address or CIDR)";
        return -1;
    }
    out->prefix = (uint8_t)maxp;
    if (slash) {
        uint64_t p;
        if (num_parse_u64(slash + 1, strlen(slash + 1), maxp, &p, err) < 0) {
            *err = "bad prefix length";
            return -1;
        }
        out->prefix = (uint8_t)p;
    }
    /* Clear host bits so matching is a plain prefix compare. */
    size_t bytes = maxp / 8;
    for (size_t i = 0; i < bytes; i++) {
        unsigned bit0 = (unsigned)i * 8;
        if (bit0 >= out->prefix)
            out->addr[i] = 0;
        else if (bit0 + 8 > out->prefix)
            out->addr[i] &= (uint8_t)(0xff << (8 - (out->prefix - bit0)));
    }
    return 0;
}

int
cidrset_add(struct cidrset *set, const struct cidr *c)
{
    if (set->n == set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 8;
        struct cidr *nv = realloc(set->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return -1;
        set->v = nv;
        set->cap = ncap;
    }
    set->v[set->n++] = *c;
    return 0;
}

void
cidrset_free(struct cidrset *set)
{
    free(set->v);
    set->v = NULL;
    set->n = set->cap = 0;
}

static int
prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return c->family == AF_INET && prefix_eq(c->addr, (const uint8_t *)&in->sin_addr, c->prefix);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *a = in6->sin6_addr.s6_addr;
        if (c->family == AF_INET6)
            return prefix_eq(c->addr, a, c->prefix);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return prefix_eq(c->addr, a + 12, c->prefix);
    }
    return 0;
}

int
cidrset_match(const struct cidrset *set, const struct sockaddr *sa)
{
    for (size_t i = 0; i < set->n; i++)
        if (cidr_match(&set->v[i], sa))
            return 1;
    return 0;
}

int
addr_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **err)
{
    char host[64];
    const char *port;
    uint64_t p;
    int bracketed = s[0] == '[';

    memset(ss, 0, sizeof(*ss));
    if (bracketed) {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host)) {
            *err = "bad address (expected [IPv6]:port)";
            return -1;
        }
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            strcpy(host, "*");
            port = s;
        } else {
            if ((size_t)(colon - s) >= sizeof(host) || strchr(s, ':') != colon) {
                *err = "bad address (write IPv6 addresses as [addr]:port)";
                return -1;
            }
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            port = colon + 1;
        }
    }
    if (num_parse_u64(port, strlen(port), 65535, &p, err) < 0 || p == 0) {
        *err = "bad or missing port";
        return -1;
    }
    if (!bracketed && (strcmp(host, "*") == 0 || strcmp(host, "") == 0)) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        in6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*in6);
        return 0;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    /* Brackets are for IPv6 only: "[1.2.3.4]:80" is a typo, not an address. */
    if (!bracketed && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)p);
        *len = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*in6);
        return 0;
    }
    *err = "bad address (expected IP:port, [IPv6]:port or *:port)";
    return -1;
}

char *
addr_format_ip(const struct sockaddr *sa, char *buf, size_t size)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)size) == NULL)
            snprintf(buf, size, "?");
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            if (inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, buf, (socklen_t)size) == NULL)
                snprintf(buf, size, "?");
        } else if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)size) == NULL) {
            snprintf(buf, size, "?");
        }
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

int
addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

char *
addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    addr_format_ip(sa, ip, sizeof(ip));
    int v6 = sa->sa_family == AF_INET6 && strchr(ip, ':') != NULL;
    snprintf(buf, size, v6 ? "[%s]:%d" : "%s:%d", ip, addr_port(sa));
    return buf;
}

/* The IPv4 address of sa (an IPv4 or IPv4-mapped IPv6 address) into *v4,
 * network order; 0 when sa has none. */
static int
addr_v4(const struct sockaddr *sa, uint32_t *v4)
{
    if (sa->sa_family == AF_INET) {
        *v4 = ((const struct sockaddr_in *)sa)->sin_addr.s_addr;
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(v4, a->s6_addr + 12, 4);
            return 1;
        }
    }
    return 0;
}

int
addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    uint32_t x4, y4;
    if (addr_port(a) != addr_port(b))
        return 0;
    int av4 = addr_v4(a, &x4), bv4 = addr_v4(b, &y4);
    if (av4 || bv4)
        return av4 && bv4 && x4 == y4;
    if (a->sa_family == AF_INET6 && b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

int
addr_is_unspecified(const struct sockaddr *sa)
{
    uint32_t v4;
    if (addr_v4(sa, &v4))
        return v4 == 0;
    return sa->sa_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

int
addr_is_loopback(const struct sockaddr *sa)
{
    uint32_t v4;
    if (addr_v4(sa, &v4))
        return (ntohl(v4) >> 24) == 127;
    return sa->sa_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

int
addr_listen_overlap(const struct sockaddr *a, const struct sockaddr *b)
{
    uint32_t v4;
    if (addr_port(a) != addr_port(b))
        return 0;
    if (addr_equal(a, b))
        return 1;
    int a_any = addr_is_unspecified(a), b_any = addr_is_unspecified(b);
    /* :: (not a mapped 0.0.0.0) takes every address of both families */
    if ((a_any && !addr_v4(a, &v4)) || (b_any && !addr_v4(b, &v4)))
        return 1;
    /* 0.0.0.0 takes every IPv4 address */
    return (a_any && addr_v4(b, &v4)) || (b_any && addr_v4(a, &v4));
}

int
cidr_is_everyone(const struct cidr *c)
{
    static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
    if (c->prefix == 0)
        return 1;
    return c->family == AF_INET6 && c->prefix <= 96 && prefix_eq(c->addr, mapped, c->prefix);
}

int
addr_reaches_listener(const struct sockaddr *dst, const struct sockaddr *listen,
                      const struct cidrset *local)
{
    uint32_t v4;
    if (addr_port(dst) != addr_port(listen))
        return 0;
    if (addr_equal(dst, listen))
        return 1;
    /* An IPv4 listener takes IPv4 only; "*" and [::] take both. */
    if (listen->sa_family == AF_INET && !addr_v4(dst, &v4))
        return 0;
    /* A connect to 0.0.0.0 or :: goes to the loopback address. */
    if (addr_is_unspecified(dst))
        return addr_is_unspecified(listen) || addr_is_loopback(listen);
    if (!addr_is_unspecified(listen))
        return 0;
    return addr_is_loopback(dst) || (local && cidrset_match(local, dst));
}

int
list_foreach(const char *s, int (*fn)(void *arg, const char *item), void *arg)
{
    char item[1024];
    while (*s) {
        while (*s == ',' || *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        if (*s == '\0')
            break;
        size_t n = strcspn(s, ", \t\r\n");
        if (n >= sizeof(item)) {
            /* fn reports it; the rest of the list is still worth reading
             * unless fn says stop. */
            if (fn(arg, NULL) < 0)
                return -1;
            s += n;
            continue;
        }
        memcpy(item, s, n);
        item[n] = '\0';
        if (fn(arg, item) < 0)
            return -1;
        s += n;
    }
    return 0;
}
