#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1sig[] = "PROXY ";

/* An IPv4 or IPv6 address in its text form, as the spec writes them. */
static int
v1_addr(const char *s, size_t n, int family, void *out)
{
    char buf[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(family, buf, out) == 1 ? 0 : -1;
}

/* 0-65535 in decimal, no sign, no leading zero. */
static int
v1_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static enum proxyproto_status
invalid(const char **why, const char *what)
{
    if (why)
        *why = what;
    return PROXYPROTO_INVALID;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n", "PROXY UNKNOWN...\r\n". */
static enum proxyproto_status
parse_v1(const uint8_t *p, size_t len, struct proxyproto_result *out, const char **why)
{
    /* The whole line, CRLF included, is at most 107 bytes: its CR is one
     * of the first 106. */
    size_t max = len < PROXYPROTO_V1_MAX - 1 ? len : PROXYPROTO_V1_MAX - 1;
    size_t end = 0; /* index of the CR */
    while (end < max && p[end] != '\r') {
        if (p[end] == '\n' || p[end] == '\0')
            return invalid(why, "v1: a line break or NUL before CRLF");
        end++;
    }
    if (end == max)
        return len < PROXYPROTO_V1_MAX - 1 ? PROXYPROTO_PARTIAL
                                           : invalid(why, "v1: no CRLF within 107 bytes");
    if (end + 1 >= len)
        return PROXYPROTO_PARTIAL;
    if (p[end + 1] != '\n')
        return invalid(why, "v1: CR without LF");
    out->version = 1;
    out->consumed = end + 2;
    const char *s = (const char *)p + 6;
    size_t n = end - 6;
    if (n >= 7 && memcmp(s, "UNKNOWN", 7) == 0) {
        /* the receiver must ignore whatever follows UNKNOWN */
        out->local = 1;
        return PROXYPROTO_OK;
    }
    /* five fields separated by single spaces */
    const char *f[5];
    size_t fl[5];
    size_t k = 0, i = 0;
    while (k < 5) {
        size_t start = i;
        while (i < n && s[i] != ' ')
            i++;
        f[k] = s + start;
        fl[k] = i - start;
        if (fl[k] == 0)
            return invalid(why, "v1: an empty field");
        k++;
        if (i == n)
            break;
        i++; /* the space */
        if (i == n)
            return invalid(why, "v1: a space at the end");
    }
    if (k != 5 || i != n)
        return invalid(why, "v1: expected protocol, two addresses and two ports");
    int family;
    if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return invalid(why, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    if (v1_addr(f[1], fl[1], family, src) < 0 || v1_addr(f[2], fl[2], family, dst) < 0)
        return invalid(why, "v1: a bad address");
    if (v1_port(f[3], fl[3], &sport) < 0 || v1_port(f[4], fl[4], &dport) < 0)
        return invalid(why, "v1: a bad port");
    memset(&out->src, 0, sizeof(out->src));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->src;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, src, 4);
        a->sin_port = htons(sport);
        out->srclen = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->src;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, src, 16);
        a->sin6_port = htons(sport);
        out->srclen = sizeof(*a);
    }
    return PROXYPROTO_OK;
}

static enum proxyproto_status
parse_v2(const uint8_t *p, size_t len, struct proxyproto_result *out, const char **why)
{
    if (len < 16)
        return PROXYPROTO_PARTIAL;
    uint8_t ver = p[12] >> 4, cmd = p[12] & 0x0f;
    uint8_t fam = p[13] >> 4, proto = p[13] & 0x0f;
    size_t alen = (size_t)p[14] << 8 | p[15];
    if (ver != 2)
        return invalid(why, "v2: version is not 2");
    if (cmd > 1)
        return invalid(why, "v2: command is neither LOCAL nor PROXY");
    if (fam > 3)
        return invalid(why, "v2: unknown address family");
    if (proto > 2)
        return invalid(why, "v2: unknown transport protocol");
    if (16 + alen > PROXYPROTO_V2_MAX)
        return invalid(why, "v2: header longer than 4096 bytes");
    size_t need = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
    if (cmd == 1 && alen < need)
        return invalid(why, "v2: addresses longer than the header");
    if (len < 16 + alen)
        return PROXYPROTO_PARTIAL;
    out->version = 2;
    out->consumed = 16 + alen;
    /* LOCAL: the balancer's own connection (a health check); UNSPEC or a
     * unix socket: no address we can use. TLVs after the addresses are
     * skipped. */
    if (cmd == 0 || fam == 0 || fam == 3) {
        out->local = 1;
        return PROXYPROTO_OK;
    }
    if (proto == 2)
        return invalid(why, "v2: a datagram connection");
    const uint8_t *a = p + 16;
    memset(&out->src, 0, sizeof(out->src));
    if (fam == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&s->sin_port, a + 8, 2); /* network order both */
        out->srclen = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        out->srclen = sizeof(*s);
    }
    return PROXYPROTO_OK;
}

enum proxyproto_status
proxyproto_parse(const uint8_t *p, size_t len, struct proxyproto_result *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (why)
        *why = NULL;
    if (len == 0)
        return PROXYPROTO_PARTIAL;
    size_t n1 = len < 6 ? len : 6, n2 = len < 12 ? len : 12;
    if (memcmp(p, v1sig, n1) == 0)
        return len < 6 ? PROXYPROTO_PARTIAL : parse_v1(p, len, out, why);
    if (memcmp(p, v2sig, n2) == 0)
        return len < 12 ? PROXYPROTO_PARTIAL : parse_v2(p, len, out, why);
    return PROXYPROTO_NONE;
}

const char *
proxyproto_strstatus(enum proxyproto_status st)
{
    switch (st) {
    case PROXYPROTO_OK:
        return "ok";
    case PROXYPROTO_PARTIAL:
        return "partial";
    case PROXYPROTO_NONE:
        return "none";
    case PROXYPROTO_INVALID:
        return "invalid";
    }
    return "?";
}

size_t
proxyproto_room(const uint8_t *p, size_t len)
{
    if (len < PROXYPROTO_MIN)
        return PROXYPROTO_MIN - len;
    if (p[0] == v2sig[0]) {
        /* v2: 16 bytes, then the length they give */
        if (len < 16)
            return 16 - len;
        size_t end = 16 + ((size_t)p[14] << 8 | p[15]);
        return end > len ? end - len : 1;
    }
    /* v1: up to its CRLF */
    return p[len - 1] == '\r' ? 1 : 2;
}
