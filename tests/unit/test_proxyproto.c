/* Unit tests for proxy/proxyproto.c: PROXY protocol v1 and v2 headers as
 * HAProxy sends them, their prefixes, and broken ones. Every input is
 * handed to the parser from a guard-page buffer (guard.h), so an
 * over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "proxyproto.h"

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

static enum proxyproto_status
parse(const void *p, size_t n, struct proxyproto_result *r, const char **why)
{
    return proxyproto_parse(guard_put(&G, p, n), n, r, why);
}

static void
assert_src(const struct proxyproto_result *r, const char *ip, int port)
{
    char buf[INET6_ADDRSTRLEN];
    assert_false(r->local);
    if (r->src.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&r->src;
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
        assert_int_equal(ntohs(a->sin_port), port);
        assert_int_equal(r->srclen, sizeof(*a));
    } else {
        assert_int_equal(r->src.ss_family, AF_INET6);
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&r->src;
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
        assert_int_equal(ntohs(a->sin6_port), port);
        assert_int_equal(r->srclen, sizeof(*a));
    }
    assert_string_equal(buf, ip);
}

/* Every proper prefix of a good header is PARTIAL. */
static void
assert_prefixes_partial(const void *p, size_t n)
{
    struct proxyproto_result r;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(parse(p, i, &r, NULL), PROXYPROTO_PARTIAL);
}

static void
test_v1_tcp4(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 192.0.2.7 10.0.0.1 51000 3128\r\nGET http://a/ HTTP/1.1\r\n";
    struct proxyproto_result r;
    assert_int_equal(parse(h, strlen(h), &r, NULL), PROXYPROTO_OK);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.consumed, strlen("PROXY TCP4 192.0.2.7 10.0.0.1 51000 3128\r\n"));
    assert_src(&r, "192.0.2.7", 51000);
    assert_prefixes_partial(h, r.consumed);
}

static void
test_v1_tcp6_unknown(void **state)
{
    (void)state;
    struct proxyproto_result r;
    const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n";
    assert_int_equal(parse(h, strlen(h), &r, NULL), PROXYPROTO_OK);
    assert_src(&r, "2001:db8::1", 0);
    const char *u = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    assert_int_equal(parse(u, strlen(u), &r, NULL), PROXYPROTO_OK);
    assert_true(r.local);
    assert_int_equal(r.consumed, strlen(u));
    /* the longest header the spec allows: 107 bytes */
    const char *l = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(l), PROXYPROTO_V1_MAX);
    assert_int_equal(parse(l, strlen(l), &r, NULL), PROXYPROTO_OK);
    /* one byte more is too long, even for UNKNOWN, whose rest is not read
     * (found by fuzz_proxyproto: its CR at index 106 was taken) */
    const char *l2 = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655351\r\n";
    assert_int_equal(strlen(l2), PROXYPROTO_V1_MAX + 1);
    assert_int_equal(parse(l2, strlen(l2), &r, NULL), PROXYPROTO_INVALID);
    assert_int_equal(parse(l2, strlen(l2) - 2, &r, NULL), PROXYPROTO_INVALID);
    assert_int_equal(parse(l2, 105, &r, NULL), PROXYPROTO_PARTIAL);
}

static void
test_v1_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000 3128\n",     /* LF only */
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000 3128\rX",    /* CR without LF */
        "PROXY TCP4 192.0.2.7  10.0.0.1 51000 3128\r\n",  /* two spaces */
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000\r\n",        /* a field missing */
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000 3128 9\r\n", /* one too many */
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000 3128 \r\n",  /* trailing space */
        "PROXY TCP4 2001:db8::1 10.0.0.1 51000 3128\r\n", /* IPv6 in TCP4 */
        "PROXY TCP6 192.0.2.7 10.0.0.1 51000 3128\r\n",   /* IPv4 in TCP6 */
        "PROXY TCP4 192.0.2.256 10.0.0.1 51000 3128\r\n", /* bad address */
        "PROXY TCP4 192.0.2.7 10.0.0.1 65536 3128\r\n",   /* port too big */
        "PROXY TCP4 192.0.2.7 10.0.0.1 051000 3128\r\n",  /* leading zero */
        "PROXY TCP4 192.0.2.7 10.0.0.1 -1 3128\r\n",      /* sign */
        "PROXY UDP4 192.0.2.7 10.0.0.1 51000 3128\r\n",   /* not TCP */
        "PROXY \r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proxyproto_result r;
        const char *why = NULL;
        if (parse(bad[i], strlen(bad[i]), &r, &why) != PROXYPROTO_INVALID)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(why);
    }
    /* no CRLF within 107 bytes */
    char longl[200];
    memset(longl, 'x', sizeof(longl));
    memcpy(longl, "PROXY TCP4 ", 11);
    struct proxyproto_result r;
    /* 106 bytes without a CR: the CRLF could only end past byte 107 */
    assert_int_equal(parse(longl, 105, &r, NULL), PROXYPROTO_PARTIAL);
    assert_int_equal(parse(longl, 106, &r, NULL), PROXYPROTO_INVALID);
    assert_int_equal(parse(longl, 107, &r, NULL), PROXYPROTO_INVALID);
    assert_int_equal(parse(longl, sizeof(longl), &r, NULL), PROXYPROTO_INVALID);
}

static void
test_none(void **state)
{
    (void)state;
    struct proxyproto_result r;
    const char *get = "GET http://a/ HTTP/1.1\r\n\r\n";
    assert_int_equal(parse(get, strlen(get), &r, NULL), PROXYPROTO_NONE);
    assert_int_equal(parse("PROXZ", 5, &r, NULL), PROXYPROTO_NONE);
    assert_int_equal(parse("\r\n\r\nX", 5, &r, NULL), PROXYPROTO_NONE);
    assert_int_equal(parse("PRO", 3, &r, NULL), PROXYPROTO_PARTIAL);
    assert_int_equal(parse("\r\n", 2, &r, NULL), PROXYPROTO_PARTIAL);
    assert_int_equal(parse("", 0, &r, NULL), PROXYPROTO_PARTIAL);
}

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: version/command, family/protocol, then body bytes. */
static size_t
v2(uint8_t *out, uint8_t vc, uint8_t fp, const uint8_t *body, size_t n)
{
    memcpy(out, SIG, 12);
    out[12] = vc;
    out[13] = fp;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    memcpy(out + 16, body, n);
    return 16 + n;
}

static void
test_v2_inet_tlvs(void **state)
{
    (void)state;
    uint8_t body[12 + 4 + 5] = {192, 0, 2, 9, 10, 0, 0, 1, 0xC7, 0x38, 0x0C, 0x38,
                                /* TLV PP2_TYPE_AUTHORITY "x" and a NOOP of 2 */
                                0x02, 0x00, 0x01, 'x', 0x04, 0x00, 0x02, 0, 0};
    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x11, body, sizeof(body));
    memcpy(buf + n, "GET", 3);
    struct proxyproto_result r;
    assert_int_equal(parse(buf, n + 3, &r, NULL), PROXYPROTO_OK);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.consumed, n);
    assert_src(&r, "192.0.2.9", 51000);
    assert_prefixes_partial(buf, n);
}

static void
test_v2_inet6_local_unspec(void **state)
{
    (void)state;
    uint8_t body[36] = {0x20,        0x01,     0x0d,        0xb8,        [15] = 5,    [16] = 0x20,
                        [17] = 0x01, [31] = 1, [32] = 0x01, [33] = 0xBB, [34] = 0x0C, [35] = 0x38};
    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x21, body, sizeof(body));
    struct proxyproto_result r;
    assert_int_equal(parse(buf, n, &r, NULL), PROXYPROTO_OK);
    assert_src(&r, "2001:db8::5", 443);
    /* LOCAL (a health check): the balancer's own address, addresses or not */
    n = v2(buf, 0x20, 0x00, body, 0);
    assert_int_equal(parse(buf, n, &r, NULL), PROXYPROTO_OK);
    assert_true(r.local);
    n = v2(buf, 0x20, 0x11, body, 12);
    assert_int_equal(parse(buf, n, &r, NULL), PROXYPROTO_OK);
    assert_true(r.local);
    /* PROXY with UNSPEC: no address either */
    n = v2(buf, 0x21, 0x00, body, 4);
    assert_int_equal(parse(buf, n, &r, NULL), PROXYPROTO_OK);
    assert_true(r.local);
    assert_int_equal(r.consumed, 20);
}

static void
test_v2_invalid(void **state)
{
    (void)state;
    uint8_t body[36] = {0};
    uint8_t buf[5000];
    struct proxyproto_result r;
    const char *why;
    struct {
        uint8_t vc, fp;
        size_t n;
    } bad[] = {
        {0x11, 0x11, 12}, /* version 1 in a v2 header */
        {0x31, 0x11, 12}, /* version 3 */
        {0x22, 0x11, 12}, /* command 2 */
        {0x21, 0x41, 12}, /* family 4 */
        {0x21, 0x13, 12}, /* transport 3 */
        {0x21, 0x12, 12}, /* a datagram */
        {0x21, 0x11, 11}, /* IPv4 addresses cut short */
        {0x21, 0x21, 12}, /* IPv6 addresses cut short */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = v2(buf, bad[i].vc, bad[i].fp, body, bad[i].n);
        why = NULL;
        if (parse(buf, n, &r, &why) != PROXYPROTO_INVALID)
            fail_msg("accepted case %zu", i);
        assert_non_null(why);
    }
    /* too long for us: refused as soon as the length is read */
    memcpy(buf, SIG, 12);
    buf[12] = 0x21;
    buf[13] = 0x11;
    buf[14] = 0x10;
    buf[15] = 0x00;
    assert_int_equal(parse(buf, 16, &r, &why), PROXYPROTO_INVALID);
    /* a bad signature byte is not a v2 header */
    memcpy(buf, SIG, 12);
    buf[11] = 0x0B;
    assert_int_equal(parse(buf, 16, &r, NULL), PROXYPROTO_NONE);
}

/* A reader that takes proxyproto_room() bytes at a time (as on the HTTPS
 * proxy port, where the bytes after the header are OpenSSL's) stops at the
 * header's end exactly, for the shortest and longest headers of each
 * version, with a TLS ClientHello's first bytes behind it. */
static size_t
read_by_room(const uint8_t *stream, size_t header_len)
{
    struct proxyproto_result r;
    size_t n = 0;
    enum proxyproto_status st;
    while ((st = parse(stream, n, &r, NULL)) == PROXYPROTO_PARTIAL) {
        size_t room = proxyproto_room(stream, n);
        assert_true(room >= 1);
        n += room;
        if (n > header_len)
            fail_msg("read %zu bytes of a %zu-byte header", n, header_len);
    }
    assert_int_equal(st, PROXYPROTO_OK);
    assert_int_equal(r.consumed, n);
    return n;
}

static void
test_room(void **state)
{
    (void)state;
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC};
    const char *v1s[] = {
        "PROXY UNKNOWN\r\n",
        "PROXY TCP4 192.0.2.9 10.0.0.1 51000 3128\r\n",
        "PROXY TCP6 2001:db8::5 2001:db8::1 443 3128\r\n",
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
    };
    uint8_t buf[256];
    for (size_t i = 0; i < sizeof(v1s) / sizeof(v1s[0]); i++) {
        size_t n = strlen(v1s[i]);
        memcpy(buf, v1s[i], n);
        memcpy(buf + n, hello, sizeof(hello));
        assert_int_equal(read_by_room(buf, n), n);
    }
    uint8_t body[12 + 4 + 5] = {192,  0,    2,    9,    10,  0,    0,    1,    0xC7, 0x38, 0x0C,
                                0x38, 0x02, 0x00, 0x01, 'x', 0x04, 0x00, 0x02, 0,    0};
    size_t n = v2(buf, 0x21, 0x11, body, sizeof(body));
    memcpy(buf + n, hello, sizeof(hello));
    assert_int_equal(read_by_room(buf, n), n);
    n = v2(buf, 0x20, 0x00, body, 0); /* LOCAL, no addresses: 16 bytes */
    memcpy(buf + n, hello, sizeof(hello));
    assert_int_equal(read_by_room(buf, n), 16);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),      cmocka_unit_test(test_v1_tcp6_unknown),
        cmocka_unit_test(test_v1_invalid),   cmocka_unit_test(test_none),
        cmocka_unit_test(test_v2_inet_tlvs), cmocka_unit_test(test_v2_inet6_local_unspec),
        cmocka_unit_test(test_v2_invalid),   cmocka_unit_test(test_room),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
