/* Unit tests for proxy/util: num.c, addr.c and escape.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "guard.h"
#include "util/addr.h"
#include "util/escape.h"
#include "util/num.h"

static struct guard G;

static int
setup(void **state)
{
    (void)state;
    guard_init(&G, 1 << 16);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    guard_free(&G);
    return 0;
}

/* ---------------------------------------------------------------------------
 * num.c
 * ------------------------------------------------------------------------- */

static void
test_parse_u64(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t max;
        int ok;
        uint64_t v;
    } t[] = {
        {"0", 10, 1, 0},
        {"7", 10, 1, 7},
        {"10", 10, 1, 10},
        {"11", 10, 0, 0},
        {"007", 10, 1, 7},
        {"65535", 65535, 1, 65535},
        {"65536", 65535, 0, 0},
        {"18446744073709551615", UINT64_MAX, 1, UINT64_MAX},
        {"18446744073709551616", UINT64_MAX, 0, 0},
        {"99999999999999999999999", UINT64_MAX, 0, 0},
        /* a max below 9: a single digit above it must not slip through */
        {"5", 5, 1, 5},
        {"6", 5, 0, 0},
        {"9", 0, 0, 0},
        {"0", 0, 1, 0},
        {"1", 1, 1, 1},
        {"2", 1, 0, 0},
        {"", 10, 0, 0},
        {"+5", 10, 0, 0},
        {"-1", 10, 0, 0},
        {" 5", 10, 0, 0},
        {"5 ", 10, 0, 0},
        {"5 5", 100, 0, 0},
        {"0x5", 100, 0, 0},
        {"5.0", 100, 0, 0},
        {"1e3", 10000, 0, 0},
        {"\xd9\xa1", 10, 0, 0}, /* Arabic-Indic digit one */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t len = strlen(t[i].in);
        const char *p = (const char *)guard_put(&G, t[i].in, len);
        uint64_t v = 12345;
        const char *err = NULL;
        int rc = num_parse_u64(p, len, t[i].max, &v, &err);
        if (t[i].ok) {
            if (rc != 0 || v != t[i].v)
                fail_msg("'%s' max %llu: rc %d v %llu", t[i].in, (unsigned long long)t[i].max, rc,
                         (unsigned long long)v);
        } else {
            if (rc != -1 || err == NULL || err[0] == '\0')
                fail_msg("'%s' max %llu: accepted as %llu", t[i].in,
                         (unsigned long long)t[i].max, (unsigned long long)v);
            if (v != 12345)
                fail_msg("'%s': output written on error", t[i].in);
        }
    }
    /* Only len bytes are read. */
    uint64_t v;
    const char *err;
    assert_int_equal(num_parse_u64("123abc", 3, 1000, &v, &err), 0);
    assert_int_equal(v, 123);
}

static void
test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        uint64_t ms;
        const char *err; /* substring of the message */
    } t[] = {
        {"500ms", 1, 500, NULL},
        {"10s", 1, 10000, NULL},
        {"5m", 1, 300000, NULL},
        {"1h", 1, 3600000, NULL},
        {"2d", 1, 172800000, NULL},
        {"30", 1, 30000, NULL},
        {"0", 1, 0, NULL},
        {"0ms", 1, 0, NULL},
        {"10S", 1, 10000, NULL},
        {"500MS", 1, 500, NULL},
        {"1H", 1, 3600000, NULL},
        {"", 0, 0, "bad duration"},
        {"ms", 0, 0, "bad duration"},
        {"-5s", 0, 0, "bad duration"},
        {"+5s", 0, 0, "bad duration"},
        {" 5s", 0, 0, "bad duration"},
        {"5 s", 0, 0, "unit"},
        {"5s ", 0, 0, "unit"},
        {"5x", 0, 0, "unit"},
        {"5sec", 0, 0, "unit"},
        {"5us", 0, 0, "unit"},
        {"5w", 0, 0, "unit"},
        {"1.5s", 0, 0, "unit"},
        {"5s5", 0, 0, "unit"},
        {"99999999999999999999s", 0, 0, "too large"},
        {"18446744073709551615ms", 0, 0, "too large"},
        {"999999999999999999d", 0, 0, "too large"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t ms = 777;
        const char *err = NULL;
        int rc = num_parse_duration(t[i].in, &ms, &err);
        if (t[i].ok) {
            if (rc != 0 || ms != t[i].ms)
                fail_msg("'%s': rc %d ms %llu", t[i].in, rc, (unsigned long long)ms);
        } else {
            if (rc != -1 || err == NULL)
                fail_msg("'%s': accepted as %llu ms", t[i].in, (unsigned long long)ms);
            if (strstr(err, t[i].err) == NULL)
                fail_msg("'%s': message '%s' lacks '%s'", t[i].in, err, t[i].err);
        }
    }
}

static void
test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        uint64_t bytes;
        const char *err;
    } t[] = {
        {"512", 1, 512, NULL},
        {"0", 1, 0, NULL},
        {"64k", 1, 65536, NULL},
        {"64K", 1, 65536, NULL},
        {"64kb", 1, 65536, NULL},
        {"64KB", 1, 65536, NULL},
        {"1m", 1, 1048576, NULL},
        {"1mb", 1, 1048576, NULL},
        {"2g", 1, 2147483648ULL, NULL},
        {"2GB", 1, 2147483648ULL, NULL},
        {"17179869183g", 1, 17179869183ULL << 30, NULL},
        {"17179869184g", 0, 0, "too large"},
        {"99999999999999999999", 0, 0, "too large"},
        {"", 0, 0, "bad size"},
        {"k", 0, 0, "bad size"},
        {"-1", 0, 0, "bad size"},
        {"1 k", 0, 0, "unit"},
        {"1t", 0, 0, "unit"},
        {"1kib", 0, 0, "unit"},
        {"1.5m", 0, 0, "unit"},
        {"64k ", 0, 0, "unit"},
        {"1b", 0, 0, "unit"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t b = 777;
        const char *err = NULL;
        int rc = num_parse_size(t[i].in, &b, &err);
        if (t[i].ok) {
            if (rc != 0 || b != t[i].bytes)
                fail_msg("'%s': rc %d bytes %llu", t[i].in, rc, (unsigned long long)b);
        } else {
            if (rc != -1 || err == NULL)
                fail_msg("'%s': accepted as %llu", t[i].in, (unsigned long long)b);
            if (strstr(err, t[i].err) == NULL)
                fail_msg("'%s': message '%s' lacks '%s'", t[i].in, err, t[i].err);
        }
    }
}

static void
test_parse_bool(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc, v;
    } t[] = {
        {"yes", 0, 1},  {"YES", 0, 1},  {"on", 0, 1},   {"true", 0, 1},  {"True", 0, 1},
        {"1", 0, 1},    {"no", 0, 0},   {"No", 0, 0},   {"off", 0, 0},   {"false", 0, 0},
        {"0", 0, 0},    {"", -1, 0},    {"y", -1, 0},   {"2", -1, 0},    {"yes ", -1, 0},
        {"enabled", -1, 0}, {"nope", -1, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int v = 42;
        const char *err = NULL;
        int rc = num_parse_bool(t[i].in, &v, &err);
        if (rc != t[i].rc || (rc == 0 && v != t[i].v) || (rc < 0 && err == NULL))
            fail_msg("'%s': rc %d v %d", t[i].in, rc, v);
    }
}

/* ---------------------------------------------------------------------------
 * addr.c
 * ------------------------------------------------------------------------- */

static void
test_parse_cidr(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        int family;
        const char *addr; /* canonical network address */
        int prefix;
    } t[] = {
        {"10.0.0.0/8", 1, AF_INET, "10.0.0.0", 8},
        {"10.1.2.3/8", 1, AF_INET, "10.0.0.0", 8},
        {"192.168.1.77/24", 1, AF_INET, "192.168.1.0", 24},
        {"172.31.255.255/12", 1, AF_INET, "172.16.0.0", 12},
        {"192.0.2.1", 1, AF_INET, "192.0.2.1", 32},
        {"192.0.2.1/32", 1, AF_INET, "192.0.2.1", 32},
        {"192.0.2.255/31", 1, AF_INET, "192.0.2.254", 31},
        {"255.255.255.255/0", 1, AF_INET, "0.0.0.0", 0},
        {"192.0.2.1/08", 1, AF_INET, "192.0.0.0", 8},
        {"::1", 1, AF_INET6, "::1", 128},
        {"::/0", 1, AF_INET6, "::", 0},
        {"2001:db8::1/32", 1, AF_INET6, "2001:db8::", 32},
        {"2001:db8:ffff:ffff::/33", 1, AF_INET6, "2001:db8:8000::", 33},
        {"fe80::1234/10", 1, AF_INET6, "fe80::", 10},
        {"fc00::/7", 1, AF_INET6, "fc00::", 7},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127", 1, AF_INET6,
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 127},
        {"::ffff:192.0.2.1", 1, AF_INET6, "::ffff:192.0.2.1", 128},
        {"10.0.0.0/33", 0, 0, NULL, 0},
        {"::/129", 0, 0, NULL, 0},
        {"10.0.0.0/", 0, 0, NULL, 0},
        {"10.0.0.0/-1", 0, 0, NULL, 0},
        {"10.0.0.0/+8", 0, 0, NULL, 0},
        {"10.0.0.0/8 ", 0, 0, NULL, 0},
        {"10.0.0.0/8/8", 0, 0, NULL, 0},
        {"10.0.0.0/a", 0, 0, NULL, 0},
        {"10.0.0/8", 0, 0, NULL, 0},
        {"256.0.0.0/8", 0, 0, NULL, 0},
        {"/8", 0, 0, NULL, 0},
        {"", 0, 0, NULL, 0},
        {"example.com", 0, 0, NULL, 0},
        {" 10.0.0.0/8", 0, 0, NULL, 0},
        {"[::1]", 0, 0, NULL, 0},
        {"::1::2", 0, 0, NULL, 0},
        {"0123456789012345678901234567890123456789012345678901234567890123456789", 0, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct cidr c;
        const char *err = NULL;
        int rc = addr_parse_cidr(t[i].in, &c, &err);
        if (!t[i].ok) {
            if (rc != -1 || err == NULL)
                fail_msg("'%s' accepted", t[i].in);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s': %s", t[i].in, err);
        uint8_t want[16] = {0};
        assert_int_equal(inet_pton(t[i].family, t[i].addr, want), 1);
        if (c.family != t[i].family || c.prefix != t[i].prefix ||
            memcmp(c.addr, want, t[i].family == AF_INET ? 4 : 16) != 0)
            fail_msg("'%s': family %d prefix %d or address differs", t[i].in, c.family, c.prefix);
    }
}

static struct sockaddr_storage
sa_of(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
    } else {
        fail_msg("test address '%s'", ip);
    }
    return ss;
}

static void
test_cidr_match(void **state)
{
    (void)state;
    static const struct {
        const char *cidr, *peer;
        int want;
    } t[] = {
        {"10.0.0.0/8", "10.1.2.3", 1},
        {"10.0.0.0/8", "11.0.0.0", 0},
        {"10.0.0.0/8", "9.255.255.255", 0},
        {"192.168.1.0/24", "192.168.1.255", 1},
        {"192.168.1.0/24", "192.168.2.0", 0},
        {"172.16.0.0/12", "172.31.0.1", 1},
        {"172.16.0.0/12", "172.32.0.1", 0},
        {"192.0.2.1", "192.0.2.1", 1},
        {"192.0.2.1", "192.0.2.2", 0},
        {"0.0.0.0/0", "203.0.113.9", 1},
        {"127.0.0.0/8", "127.0.0.1", 1},
        /* IPv4-mapped IPv6 peers (a dual-stack socket) match IPv4 entries */
        {"127.0.0.0/8", "::ffff:127.0.0.1", 1},
        {"10.0.0.0/8", "::ffff:10.9.8.7", 1},
        {"10.0.0.0/8", "::ffff:11.9.8.7", 0},
        {"0.0.0.0/0", "::ffff:1.2.3.4", 1},
        {"0.0.0.0/0", "::1", 0},
        /* ...but other IPv6 peers never do */
        {"0.0.0.0/0", "2001:db8::1", 0},
        {"10.0.0.0/8", "::a00:1", 0},
        /* IPv6 entries */
        {"::1", "::1", 1},
        {"::1", "::2", 0},
        {"::1", "127.0.0.1", 0},
        {"2001:db8::/32", "2001:db8:1234::1", 1},
        {"2001:db8::/32", "2001:db9::1", 0},
        {"fe80::/10", "febf::1", 1},
        {"fe80::/10", "fec0::1", 0},
        {"::/0", "2001:db8::1", 1},
        {"::/0", "192.0.2.1", 0},
        {"::ffff:0:0/96", "::ffff:192.0.2.1", 1},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct cidr c;
        const char *err;
        assert_int_equal(addr_parse_cidr(t[i].cidr, &c, &err), 0);
        struct sockaddr_storage ss = sa_of(t[i].peer, 1234);
        if (cidr_match(&c, (struct sockaddr *)&ss) != t[i].want)
            fail_msg("%s matches %s: want %d", t[i].cidr, t[i].peer, t[i].want);
    }

    /* A set: any entry. */
    struct cidrset set = {0};
    static const char *const entries[] = {"10.0.0.0/8", "::1", "192.168.0.0/16", "fc00::/7",
                                          "127.0.0.1", "100.64.0.0/10", "1.1.1.1", "8.8.8.8",
                                          "9.9.9.9"}; /* more than the initial capacity */
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        struct cidr c;
        const char *err;
        assert_int_equal(addr_parse_cidr(entries[i], &c, &err), 0);
        assert_int_equal(cidrset_add(&set, &c), 0);
    }
    assert_int_equal(set.n, 9);
    struct sockaddr_storage a = sa_of("192.168.7.7", 1), b = sa_of("fd00::5", 1),
                            d = sa_of("172.16.0.1", 1), e = sa_of("::ffff:9.9.9.9", 1);
    assert_true(cidrset_match(&set, (struct sockaddr *)&a));
    assert_true(cidrset_match(&set, (struct sockaddr *)&b));
    assert_false(cidrset_match(&set, (struct sockaddr *)&d));
    assert_true(cidrset_match(&set, (struct sockaddr *)&e));
    cidrset_free(&set);
    assert_null(set.v);
    assert_int_equal(set.n, 0);
    assert_false(cidrset_match(&set, (struct sockaddr *)&a));
}

static void
test_parse_listen(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        const char *formatted; /* addr_format of the result */
    } t[] = {
        {"127.0.0.1:3128", 1, "127.0.0.1:3128"},
        {"0.0.0.0:80", 1, "0.0.0.0:80"},
        {"[::1]:3128", 1, "[::1]:3128"},
        {"[2001:db8::5]:65535", 1, "[2001:db8::5]:65535"},
        {"[::]:3128", 1, "[::]:3128"},
        {"*:3128", 1, "[::]:3128"},
        {":3128", 1, "[::]:3128"},
        {"3128", 1, "[::]:3128"},
        {"1", 1, "[::]:1"},
        {"127.0.0.1:0", 0, NULL},
        {"127.0.0.1:65536", 0, NULL},
        {"127.0.0.1:", 0, NULL},
        {"127.0.0.1", 0, NULL},
        {"127.0.0.1:80x", 0, NULL},
        {"127.0.0.1: 80", 0, NULL},
        {"::1:3128", 0, NULL},
        {"[::1]", 0, NULL},
        {"[::1]3128", 0, NULL},
        {"[::1:3128", 0, NULL},
        {"[]:3128", 0, NULL},
        {"[*]:3128", 0, NULL},
        {"[127.0.0.1]:3128", 0, NULL},
        {"[localhost]:3128", 0, NULL},
        {"localhost:3128", 0, NULL},
        {"256.1.1.1:80", 0, NULL},
        {"", 0, NULL},
        {"*", 0, NULL},
        {"*:", 0, NULL},
        {"0", 0, NULL},
        {"-1", 0, NULL},
        {"123456789012345678901234567890123456789012345678901234567890123456:80", 0, NULL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        const char *err = NULL;
        int rc = addr_parse_listen(t[i].in, &ss, &len, &err);
        if (!t[i].ok) {
            if (rc != -1 || err == NULL)
                fail_msg("'%s' accepted", t[i].in);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s': %s", t[i].in, err);
        char buf[80];
        addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
        if (strcmp(buf, t[i].formatted) != 0)
            fail_msg("'%s' formats as '%s', want '%s'", t[i].in, buf, t[i].formatted);
        socklen_t want = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6);
        assert_int_equal(len, want);
    }
}

static void
test_addr_format(void **state)
{
    (void)state;
    static const struct {
        const char *ip;
        int port;
        const char *full, *ip_only;
    } t[] = {
        {"192.0.2.1", 80, "192.0.2.1:80", "192.0.2.1"},
        {"0.0.0.0", 0, "0.0.0.0:0", "0.0.0.0"},
        {"255.255.255.255", 65535, "255.255.255.255:65535", "255.255.255.255"},
        {"::1", 3128, "[::1]:3128", "::1"},
        {"2001:db8::a:b", 443, "[2001:db8::a:b]:443", "2001:db8::a:b"},
        /* mapped peers of a dual-stack socket read as IPv4 */
        {"::ffff:127.0.0.1", 51234, "127.0.0.1:51234", "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct sockaddr_storage ss = sa_of(t[i].ip, t[i].port);
        char buf[80];
        assert_ptr_equal(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), buf);
        assert_string_equal(buf, t[i].full);
        assert_ptr_equal(addr_format_ip((struct sockaddr *)&ss, buf, sizeof(buf)), buf);
        assert_string_equal(buf, t[i].ip_only);
        assert_int_equal(addr_port((struct sockaddr *)&ss), t[i].port);
    }
    /* Small buffers are cut, still terminated. */
    struct sockaddr_storage ss = sa_of("2001:db8::a:b", 443);
    char small[8];
    addr_format((struct sockaddr *)&ss, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    /* Unknown families. */
    struct sockaddr_storage un;
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    char buf[80];
    assert_string_equal(addr_format_ip((struct sockaddr *)&un, buf, sizeof(buf)), "?");
    assert_int_equal(addr_port((struct sockaddr *)&un), 0);

    /* addr_equal: address and port; an IPv4-mapped address is its IPv4 one. */
    static const struct {
        const char *a;
        int aport;
        const char *b;
        int bport;
        int equal;
    } eq[] = {
        {"192.0.2.1", 80, "192.0.2.1", 80, 1},
        {"192.0.2.1", 80, "192.0.2.1", 81, 0},
        {"192.0.2.1", 80, "192.0.2.2", 80, 0},
        {"192.0.2.1", 80, "::ffff:192.0.2.1", 80, 1},
        {"::ffff:192.0.2.1", 80, "192.0.2.1", 80, 1},
        {"::ffff:192.0.2.1", 80, "::ffff:192.0.2.1", 80, 1},
        {"::ffff:192.0.2.1", 80, "::ffff:192.0.2.1", 81, 0},
        {"::ffff:127.0.0.1", 3128, "127.0.0.1", 3128, 1},
        {"::ffff:127.0.0.2", 3128, "127.0.0.1", 3128, 0},
        {"::1", 80, "::1", 80, 1},
        {"::1", 80, "192.0.2.1", 80, 0},
        {"::1", 80, "127.0.0.1", 80, 0},
        {"::c000:201", 80, "192.0.2.1", 80, 0}, /* IPv4-compatible is not mapped */
        {"2001:db8::1", 80, "2001:db8::2", 80, 0},
    };
    for (size_t i = 0; i < sizeof(eq) / sizeof(eq[0]); i++) {
        struct sockaddr_storage x = sa_of(eq[i].a, eq[i].aport), y = sa_of(eq[i].b, eq[i].bport);
        if (addr_equal((struct sockaddr *)&x, (struct sockaddr *)&y) != eq[i].equal)
            fail_msg("addr_equal(%s:%d, %s:%d) != %d", eq[i].a, eq[i].aport, eq[i].b, eq[i].bport,
                     eq[i].equal);
    }
}

/* Which destinations reach which listener (the forwarding-loop check). */
static void
test_addr_reaches_listener(void **state)
{
    (void)state;
    struct cidrset local = {0};
    struct cidr c;
    const char *err;
    assert_int_equal(addr_parse_cidr("192.0.2.10", &c, &err), 0);
    assert_int_equal(cidrset_add(&local, &c), 0);
    assert_int_equal(addr_parse_cidr("2001:db8::10", &c, &err), 0);
    assert_int_equal(cidrset_add(&local, &c), 0);
    static const struct {
        const char *dst;
        int dport;
        const char *listen;
        int lport;
        int reaches;
    } t[] = {
        /* a listener on one address: that address, also IPv4-mapped */
        {"127.0.0.1", 3128, "127.0.0.1", 3128, 1},
        {"::ffff:127.0.0.1", 3128, "127.0.0.1", 3128, 1},
        {"127.0.0.1", 3129, "127.0.0.1", 3128, 0},
        {"127.0.0.2", 3128, "127.0.0.1", 3128, 0},
        {"192.0.2.10", 3128, "127.0.0.1", 3128, 0},
        {"::1", 3128, "::1", 3128, 1},
        {"::1", 3128, "127.0.0.1", 3128, 0},
        {"0.0.0.0", 3128, "127.0.0.1", 3128, 1}, /* connect(0.0.0.0) is loopback */
        {"::", 3128, "::1", 3128, 1},
        {"0.0.0.0", 3128, "192.0.2.10", 3128, 0},
        /* 0.0.0.0: every local IPv4 address, loopback included */
        {"127.0.0.1", 3128, "0.0.0.0", 3128, 1},
        {"127.0.0.2", 3128, "0.0.0.0", 3128, 1},
        {"127.255.255.254", 3128, "0.0.0.0", 3128, 1},
        {"::ffff:127.0.0.2", 3128, "0.0.0.0", 3128, 1},
        {"192.0.2.10", 3128, "0.0.0.0", 3128, 1},
        {"::ffff:192.0.2.10", 3128, "0.0.0.0", 3128, 1},
        {"0.0.0.0", 3128, "0.0.0.0", 3128, 1},
        {"192.0.2.11", 3128, "0.0.0.0", 3128, 0}, /* another machine */
        {"192.0.2.10", 80, "0.0.0.0", 3128, 0},
        {"::1", 3128, "0.0.0.0", 3128, 0}, /* an IPv4 listener */
        {"2001:db8::10", 3128, "0.0.0.0", 3128, 0},
        /* :: ("*"): every local address of both families */
        {"127.0.0.1", 3128, "::", 3128, 1},
        {"::ffff:127.0.0.1", 3128, "::", 3128, 1},
        {"::1", 3128, "::", 3128, 1},
        {"192.0.2.10", 3128, "::", 3128, 1},
        {"2001:db8::10", 3128, "::", 3128, 1},
        {"::", 3128, "::", 3128, 1},
        {"2001:db8::11", 3128, "::", 3128, 0},
        {"198.51.100.1", 3128, "::", 3128, 0}, /* a remote proxy on the same port */
        {"::1", 3129, "::", 3128, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct sockaddr_storage d = sa_of(t[i].dst, t[i].dport), l = sa_of(t[i].listen, t[i].lport);
        int got = addr_reaches_listener((struct sockaddr *)&d, (struct sockaddr *)&l, &local);
        if (got != t[i].reaches)
            fail_msg("%s port %d to a listener on %s port %d: %d, want %d", t[i].dst, t[i].dport,
                     t[i].listen, t[i].lport, got, t[i].reaches);
    }
    /* Without the interface list, loopback still counts. */
    struct sockaddr_storage d = sa_of("127.0.0.5", 3128), l = sa_of("0.0.0.0", 3128),
                            r = sa_of("192.0.2.10", 3128);
    assert_true(addr_reaches_listener((struct sockaddr *)&d, (struct sockaddr *)&l, NULL));
    assert_false(addr_reaches_listener((struct sockaddr *)&r, (struct sockaddr *)&l, NULL));
    /* unspecified and loopback */
    assert_true(addr_is_unspecified((struct sockaddr *)&l));
    assert_false(addr_is_unspecified((struct sockaddr *)&d));
    assert_true(addr_is_loopback((struct sockaddr *)&d));
    assert_false(addr_is_loopback((struct sockaddr *)&r));
    cidrset_free(&local);
}

struct collect {
    char items[16][1100];
    int n;
    int nulls;
    int fail_at; /* return -1 for this item index (0-based), -1: never */
    int null_rc; /* what to return for a NULL item */
};

static int
collect_item(void *arg, const char *item)
{
    struct collect *c = arg;
    if (item == NULL) {
        c->nulls++;
        snprintf(c->items[c->n++], sizeof(c->items[0]), "(null)");
        return c->null_rc;
    }
    if (c->n == c->fail_at)
        return -1;
    assert_true(c->n < 16);
    snprintf(c->items[c->n++], sizeof(c->items[0]), "%s", item);
    return 0;
}

static void
test_list_foreach(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int n;
        const char *items[6];
    } t[] = {
        {"a", 1, {"a"}},
        {"a,b,c", 3, {"a", "b", "c"}},
        {"a, b, c", 3, {"a", "b", "c"}},
        {"a b\tc", 3, {"a", "b", "c"}},
        {"a,\n  b,\n  c", 3, {"a", "b", "c"}},
        {"a\r\nb", 2, {"a", "b"}},
        {",,a,,,b,,", 2, {"a", "b"}},
        {" , ,\t, ", 0, {NULL}},
        {"", 0, {NULL}},
        {"10.0.0.0/8, ::1 [::1]:53", 3, {"10.0.0.0/8", "::1", "[::1]:53"}},
        {"  lead and trail  ", 3, {"lead", "and", "trail"}},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        static struct collect c;
        memset(&c, 0, sizeof(c));
        c.fail_at = -1;
        assert_int_equal(list_foreach(t[i].in, collect_item, &c), 0);
        if (c.n != t[i].n)
            fail_msg("'%s': %d items, want %d", t[i].in, c.n, t[i].n);
        for (int k = 0; k < c.n; k++)
            if (strcmp(c.items[k], t[i].items[k]) != 0)
                fail_msg("'%s' item %d: '%s', want '%s'", t[i].in, k, c.items[k], t[i].items[k]);
    }

    /* fn returning -1 stops the walk. */
    static struct collect c;
    memset(&c, 0, sizeof(c));
    c.fail_at = 1;
    assert_int_equal(list_foreach("a b c d", collect_item, &c), -1);
    assert_int_equal(c.n, 1);

    /* An item of 1024 bytes or more comes as NULL; items up to 1023 pass. */
    static char big[4000];
    memset(big, 0, sizeof(big));
    memset(big, 'x', 1023);
    memset(&c, 0, sizeof(c));
    c.fail_at = -1;
    assert_int_equal(list_foreach(big, collect_item, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(strlen(c.items[0]), 1023);

    snprintf(big, sizeof(big), "first, ");
    memset(big + 7, 'y', 1500);
    snprintf(big + 7 + 1500, sizeof(big) - 7 - 1500, ", last");
    /* fn reports the long item and carries on: every item is still seen. */
    memset(&c, 0, sizeof(c));
    c.fail_at = -1;
    c.null_rc = 0;
    assert_int_equal(list_foreach(big, collect_item, &c), 0);
    assert_int_equal(c.nulls, 1);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.items[0], "first");
    assert_string_equal(c.items[1], "(null)");
    assert_string_equal(c.items[2], "last");
    /* fn stops on it. */
    memset(&c, 0, sizeof(c));
    c.fail_at = -1;
    c.null_rc = -1;
    assert_int_equal(list_foreach(big, collect_item, &c), -1);
    assert_int_equal(c.n, 2);
}

/* ---------------------------------------------------------------------------
 * escape.c
 * ------------------------------------------------------------------------- */

#define R(s) s, sizeof(s) - 1

static void
test_escape_values(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *in;
        size_t len;
        const char *out;
    } t[] = {
        {"empty", R(""), "-"},
        {"plain", R("example.com"), "example.com"},
        {"path", R("/a/b?c=d&e=%20"), "/a/b?c=d&e=%20"},
        {"punctuation", R("!#$%&()*+,-./:;<=>?@[]^_`{|}~"), "!#$%&()*+,-./:;<=>?@[]^_`{|}~"},
        /* a single quote is quoted so that sh and shlex split the line right */
        {"single quote", R("o'brien"), "\"o'brien\""},
        {"a dash alone is not empty", R("-"), "\"-\""},
        {"dashes", R("--"), "--"},
        {"space", R("a b"), "\"a\\x20b\""},
        {"spaces only", R("  "), "\"\\x20\\x20\""},
        {"quote", R("say \"hi\""), "\"say\\x20\\\"hi\\\"\""},
        {"backslash", R("a\\b"), "\"a\\\\b\""},
        {"newline", R("a\nb"), "\"a\\x0ab\""},
        {"CR LF", R("x\r\ny"), "\"x\\x0d\\x0ay\""},
        {"tab", R("\t"), "\"\\x09\""},
        {"NUL", R("a\0b"), "\"a\\x00b\""},
        {"DEL", R("\x7f"), "\"\\x7f\""},
        {"UTF-8", R("caf\xc3\xa9"), "\"caf\\xc3\\xa9\""},
        {"not UTF-8", R("\xff\xfe"), "\"\\xff\\xfe\""},
        {"equals and spaces", R("k=v x=y"), "\"k=v\\x20x=y\""},
        /* a forged field stays inside the value: no " user=alice " */
        {"forged field", R("x user=alice y"), "\"x\\x20user=alice\\x20y\""},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char out[256];
        const char *in = (const char *)guard_put(&G, t[i].in, t[i].len);
        size_t n = escape_log_value(in, t[i].len, out, sizeof(out));
        if (strcmp(out, t[i].out) != 0 || n != strlen(t[i].out))
            fail_msg("%s: '%s' (%zu), want '%s'", t[i].name, out, n, t[i].out);
    }
    char out[16];
    assert_int_equal(escape_log_value(NULL, 5, out, sizeof(out)), 1);
    assert_string_equal(out, "-");
}

/* Whatever the input and the room, the output is terminated, within size,
 * one line without spaces outside quotes, and cut cleanly. */
static void
test_escape_truncation(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789",
        "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0",
        "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
        "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np",
        "mixed \"q\" \\ \n \xc3\xa9 end mixed \"q\" \\ \n \xc3\xa9 end",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        size_t len = strlen(inputs[i]);
        char full[512];
        size_t fulln = escape_log_value(inputs[i], len, full, sizeof(full));
        for (size_t size = 0; size < 200; size++) {
            char out[256];
            memset(out, 'Z', sizeof(out));
            size_t n = escape_log_value(inputs[i], len, out, size);
            if (size == 0) {
                assert_int_equal(n, 0);
                assert_int_equal(out[0], 'Z'); /* nothing written */
                continue;
            }
            if (n >= size || strlen(out) != n)
                fail_msg("input %zu size %zu: length %zu", i, size, n);
            assert_int_equal(out[size], 'Z'); /* nothing written past size */
            assert_null(strchr(out, '\n'));
            if (size > fulln) { /* it fits: never cut */
                assert_string_equal(out, full);
                continue;
            }
            if (size < 8) {
                assert_int_equal(n, 0); /* too small for anything */
                continue;
            }
            /* Cut: ends in "..." or ..." and is a prefix of the full text
             * up to the cut, never inside an escape. */
            int quoted = out[0] == '"';
            size_t body = quoted ? n - 4 : n - 3;
            if (strcmp(out + body, quoted ? "...\"" : "...") != 0)
                fail_msg("input %zu size %zu: '%s' does not end in an ellipsis", i, size, out);
            if (memcmp(out, full, body) != 0)
                fail_msg("input %zu size %zu: '%s' is not a prefix of '%s'", i, size, out, full);
            /* Not inside "\xHH" or "\c": count the backslashes run before
             * the cut. */
            size_t k = body, run = 0;
            while (k > 1 && out[k - 1] == '\\') {
                run++;
                k--;
            }
            if (run % 2)
                fail_msg("input %zu size %zu: cut after a lone backslash: '%s'", i, size, out);
            for (size_t j = body >= 3 ? body - 3 : 0; j < body; j++)
                if (out[j] == '\\' && j + 1 < body && out[j + 1] == 'x' && body - j < 4 &&
                    (j == 0 || out[j - 1] != '\\'))
                    fail_msg("input %zu size %zu: cut inside \\xHH: '%s'", i, size, out);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_parse_cidr),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_addr_format),
        cmocka_unit_test(test_addr_reaches_listener),
        cmocka_unit_test(test_list_foreach),
        cmocka_unit_test(test_escape_values),
        cmocka_unit_test(test_escape_truncation),
    };
    return cmocka_run_group_tests_name("util", tests, setup, teardown);
}
