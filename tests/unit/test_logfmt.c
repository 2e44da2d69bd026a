/* Unit tests for proxy/logfmt.c: the usage-log line and its timestamp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "logfmt.h"

static void
set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static struct timespec
at(int y, int mon, int d, int h, int mi, int s, long ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    struct timespec ts = {timegm(&tm), ms * 1000000L};
    return ts;
}

static void
test_time_format(void **state)
{
    (void)state;
    static const struct {
        const char *tz;
        int y, mon, d, h, mi, s;
        long ms;
        const char *want;
    } t[] = {
        {"UTC", 2026, 11, 30, 12, 31, 5, 123, "2026-11-30T12:31:05.123+00:00"},
        {"UTC", 2026, 1, 1, 0, 0, 0, 0, "2026-01-01T00:00:00.000+00:00"},
        {"UTC", 1999, 12, 31, 23, 59, 59, 999, "1999-12-31T23:59:59.999+00:00"},
        /* POSIX rules need no tz database: London's, a negative half-hour
         * offset and a positive quarter-hour one. */
        {"GMT0BST,M3.5.0/1,M10.5.0", 2026, 7, 1, 12, 0, 0, 0, "2026-07-01T13:00:00.000+01:00"},
        {"GMT0BST,M3.5.0/1,M10.5.0", 2026, 12, 1, 12, 0, 0, 0, "2026-12-01T12:00:00.000+00:00"},
        {"<-0330>3:30", 2026, 11, 30, 12, 31, 5, 123, "2026-11-30T09:01:05.123-03:30"},
        {"<+0545>-5:45", 2026, 11, 30, 12, 31, 5, 7, "2026-11-30T18:16:05.007+05:45"},
        {"<-10>10", 2026, 1, 1, 5, 0, 0, 0, "2025-12-31T19:00:00.000-10:00"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        set_tz(t[i].tz);
        struct timespec ts = at(t[i].y, t[i].mon, t[i].d, t[i].h, t[i].mi, t[i].s, t[i].ms);
        char buf[64];
        size_t n = logfmt_time(&ts, buf, sizeof(buf));
        if (strcmp(buf, t[i].want) != 0 || n != strlen(t[i].want))
            fail_msg("TZ=%s: '%s', want '%s'", t[i].tz, buf, t[i].want);
    }
    /* Milliseconds are cut, not rounded. */
    set_tz("UTC");
    struct timespec ts = at(2026, 11, 30, 12, 31, 5, 0);
    ts.tv_nsec = 999999999;
    char buf[64];
    logfmt_time(&ts, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-30T12:31:05.999+00:00");
    /* A small buffer is cut and terminated. */
    assert_int_equal(logfmt_time(&ts, buf, 11), 10);
    assert_string_equal(buf, "2026-11-30");
}

static void
test_time_europe_london(void **state)
{
    (void)state;
    if (access("/usr/share/zoneinfo/Europe/London", R_OK) != 0 && getenv("TZDIR") == NULL)
        skip();
    static const struct {
        int y, mon, d, h, mi, s;
        long ms;
        const char *want;
    } t[] = {
        {2026, 11, 30, 12, 31, 5, 123, "2026-11-30T12:31:05.123+00:00"},
        {2026, 7, 15, 8, 0, 0, 0, "2026-07-15T09:00:00.000+01:00"},
        /* the spring change: 01:00 UTC on the last Sunday of March */
        {2026, 3, 29, 0, 59, 59, 999, "2026-03-29T00:59:59.999+00:00"},
        {2026, 3, 29, 1, 0, 0, 0, "2026-03-29T02:00:00.000+01:00"},
        /* the autumn change: 01:00 UTC on the last Sunday of October */
        {2026, 10, 25, 0, 59, 59, 0, "2026-10-25T01:59:59.000+01:00"},
        {2026, 10, 25, 1, 0, 0, 0, "2026-10-25T01:00:00.000+00:00"},
    };
    set_tz("Europe/London");
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct timespec ts = at(t[i].y, t[i].mon, t[i].d, t[i].h, t[i].mi, t[i].s, t[i].ms);
        char buf[64];
        logfmt_time(&ts, buf, sizeof(buf));
        if (strcmp(buf, t[i].want) != 0)
            fail_msg("Europe/London: '%s', want '%s'", buf, t[i].want);
    }
    set_tz("UTC");
}

/* --- a reader for the line, as a log consumer would parse it ------------- */

struct kv {
    char key[32];
    char val[4096];
    size_t vlen;
    int quoted;
};

static int
hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Splits "TS k=v k="q\"v" ...\n" into fields; returns their number, or -1
 * when the syntax is broken. Values are unescaped. */
static int
read_line(const char *line, char *ts, size_t tssize, struct kv *out, int max)
{
    const char *p = strchr(line, ' ');
    if (p == NULL || (size_t)(p - line) >= tssize)
        return -1;
    memcpy(ts, line, (size_t)(p - line));
    ts[p - line] = '\0';
    int n = 0;
    while (*p == ' ') {
        p++;
        if (n == max)
            return -1;
        struct kv *f = &out[n++];
        memset(f, 0, sizeof(*f));
        size_t k = 0;
        while (*p && *p != '=' && *p != ' ' && k < sizeof(f->key) - 1)
            f->key[k++] = *p++;
        if (*p++ != '=')
            return -1;
        if (*p == '"') {
            f->quoted = 1;
            p++;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n')
                    return -1;
                char c = *p++;
                if (c == '\\') {
                    if (*p == '"' || *p == '\\') {
                        c = *p++;
                    } else if (*p == 'x' && hexv(p[1]) >= 0 && hexv(p[2]) >= 0) {
                        c = (char)(hexv(p[1]) * 16 + hexv(p[2]));
                        p += 3;
                    } else {
                        return -1;
                    }
                }
                f->val[f->vlen++] = c;
            }
            p++;
        } else {
            while (*p && *p != ' ' && *p != '\n') {
                if (*p == '"' || *p == '\\')
                    return -1;
                f->val[f->vlen++] = *p++;
            }
        }
    }
    if (p[0] != '\n' || p[1] != '\0')
        return -1;
    return n;
}

static const char *const order[] = {"ev",       "client", "user",   "roles",  "method", "host",
                                    "port",     "path",   "sni",    "platform", "category",
                                    "rule",     "action", "status", "up",     "down",   "ms",
                                    "mismatch", "ech",    "auth",   "reason", "tls"};

static struct sockaddr_in
v4(const char *ip, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static void
test_access_line(void **state)
{
    (void)state;
    set_tz("UTC");
    struct timespec ts = at(2026, 11, 30, 12, 31, 5, 123);
    struct sockaddr_in cl = v4("192.0.2.7", 50123);
    struct access_record r;
    memset(&r, 0, sizeof(r));
    r.ev = "request";
    r.client = (struct sockaddr *)&cl;
    r.method = "GET";
    r.host = "example.com";
    r.port = 80;
    r.path = "/index.html";
    r.action = "allow";
    r.status = 200;
    r.up = 123;
    r.down = 4567;
    r.ms = 89;
    char buf[4096];
    size_t n = logfmt_access(&r, &ts, buf, sizeof(buf));
    const char *want = "2026-11-30T12:31:05.123+00:00 ev=request client=192.0.2.7:50123 user=- "
                       "roles=- method=GET host=example.com port=80 path=/index.html sni=- "
                       "platform=- category=- rule=- action=allow status=200 up=123 down=4567 "
                       "ms=89\n";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));

    /* The optional fields, in their order, after ms. */
    r.ev = "tunnel";
    r.user = "alice";
    r.roles = "kids,school";
    r.method = "CONNECT";
    r.host = "www.facebook.com";
    r.port = 443;
    r.path = NULL;
    r.sni = "www.facebook.com";
    r.platform = "facebook";
    r.category = "social";
    r.rule = "no-social";
    r.action = "deny";
    r.status = 403;
    r.up = 0;
    r.down = 0;
    r.ms = 0;
    r.mismatch = "sni";
    r.ech = "grease";
    r.auth = "basic";
    r.reason = "rule";
    r.tls = "page";
    n = logfmt_access(&r, &ts, buf, sizeof(buf));
    want = "2026-11-30T12:31:05.123+00:00 ev=tunnel client=192.0.2.7:50123 user=alice "
           "roles=kids,school method=CONNECT host=www.facebook.com port=443 path=- "
           "sni=www.facebook.com platform=facebook category=social rule=no-social action=deny "
           "status=403 up=0 down=0 ms=0 mismatch=sni ech=grease auth=basic reason=rule tls=page\n";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));

    /* Only some optional fields: the others are left out, order kept. */
    r.mismatch = NULL;
    r.auth = NULL;
    r.tls = NULL;
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_non_null(strstr(buf, " ms=0 ech=grease reason=rule\n"));
}

static void
test_access_dashes(void **state)
{
    (void)state;
    set_tz("UTC");
    struct timespec ts = at(2026, 11, 30, 12, 31, 5, 123);
    struct access_record r;
    memset(&r, 0, sizeof(r));
    /* Everything empty or NULL: every field is "-" but the byte counts. */
    r.user = "";
    r.path = "";
    char buf[1024];
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-30T12:31:05.123+00:00 ev=- client=- user=- roles=- method=- "
                             "host=- port=- path=- sni=- platform=- category=- rule=- action=- "
                             "status=- up=0 down=0 ms=0\n");
    /* A real "-" value is told apart from an empty one. */
    r.user = "-";
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_non_null(strstr(buf, " user=\"-\" "));

    /* IPv6 and IPv4-mapped clients; large counters. */
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(443);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr), 1);
    r.client = (struct sockaddr *)&a6;
    r.up = UINT64_MAX;
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_non_null(strstr(buf, " client=[2001:db8::1]:443 "));
    assert_non_null(strstr(buf, " up=18446744073709551615 "));
    assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", &a6.sin6_addr), 1);
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_non_null(strstr(buf, " client=10.1.2.3:443 "));
}

/* Hostile values everywhere: one line, every key in order, and each value
 * reads back as it was. */
static void
test_access_hostile(void **state)
{
    (void)state;
    set_tz("UTC");
    static const char *const evil[] = {
        "a\nb",           "x\r\ny=z",      "\" injected=1 \"", "back\\slash",
        " lead",          "trail ",        "\xff\xfe\x80",     "caf\xc3\xa9",
        "\t\x01\x1b[2J",  "a=b c=d\n\n",   "-",                "\x7f",
        "ev=request",     "\"",            "\\",               "end\n",
        "\r",             "semi;colon",    "x\"\\\n",          "ok",
        "ms=1 status=200",
    };
    struct timespec ts = at(2026, 11, 30, 12, 31, 5, 123);
    struct sockaddr_in cl = v4("192.0.2.7", 1);
    static struct kv f[32];
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
        const char *v = evil[i];
        struct access_record r = {
            .ev = v,     .client = (struct sockaddr *)&cl,
            .user = v,   .roles = v,
            .method = v, .host = v,
            .port = 8080, .path = v,
            .sni = v,    .platform = v,
            .category = v, .rule = v,
            .action = v, .status = 502,
            .up = 1,     .down = 2,
            .ms = 3,     .mismatch = v,
            .ech = v,    .auth = v,
            .reason = v,
        };
        char buf[8192];
        size_t n = logfmt_access(&r, &ts, buf, sizeof(buf));
        assert_int_equal(n, strlen(buf));
        assert_true(n > 0 && buf[n - 1] == '\n');
        if (strchr(buf, '\n') != buf + n - 1)
            fail_msg("value %zu: a newline inside the line: %s", i, buf);
        if (strchr(buf, '\r') != NULL)
            fail_msg("value %zu: a CR inside the line", i);
        char tsbuf[64];
        int nf = read_line(buf, tsbuf, sizeof(tsbuf), f, 32);
        if (nf != 21)
            fail_msg("value %zu: %d fields in: %s", i, nf, buf);
        /* No raw space in any value: one space before each field, so awk's
         * columns are the fields. */
        size_t spaces = 0;
        for (size_t k = 0; k < n; k++)
            spaces += buf[k] == ' ';
        if (spaces != 21)
            fail_msg("value %zu: %zu spaces in: %s", i, spaces, buf);
        assert_string_equal(tsbuf, "2026-11-30T12:31:05.123+00:00");
        for (int k = 0; k < nf; k++) {
            if (strcmp(f[k].key, order[k]) != 0)
                fail_msg("value %zu: field %d is '%s', want '%s'", i, k, f[k].key, order[k]);
            const char *want = NULL;
            if (strcmp(order[k], "client") == 0)
                want = "192.0.2.7:1";
            else if (strcmp(order[k], "port") == 0)
                want = "8080";
            else if (strcmp(order[k], "status") == 0)
                want = "502";
            else if (strcmp(order[k], "up") == 0)
                want = "1";
            else if (strcmp(order[k], "down") == 0)
                want = "2";
            else if (strcmp(order[k], "ms") == 0)
                want = "3";
            else
                want = v;
            if (f[k].vlen != strlen(want) || memcmp(f[k].val, want, f[k].vlen) != 0)
                fail_msg("value %zu: field %s reads back as '%.*s'", i, order[k], (int)f[k].vlen,
                         f[k].val);
        }
    }
}

/* A failed login's user name that spells other fields stays one value:
 * grep ' user=alice ' and ' action=allow ' find nothing. */
static void
test_access_forged_fields(void **state)
{
    (void)state;
    set_tz("UTC");
    struct timespec ts = at(2026, 11, 30, 12, 31, 5, 123);
    struct sockaddr_in cl = v4("192.0.2.7", 1);
    struct access_record r = {.ev = "request",
                              .client = (struct sockaddr *)&cl,
                              .user = "x user=alice platform=facebook action=allow status=200 y",
                              .method = "GET",
                              .host = "www.facebook.com",
                              .port = 80,
                              .path = "/",
                              .status = 407,
                              .auth = "fail"};
    char buf[2048];
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_non_null(strstr(buf, " user=\"x\\x20user=alice\\x20platform=facebook\\x20action=allow"
                                "\\x20status=200\\x20y\" roles=- "));
    assert_null(strstr(buf, " user=alice "));
    assert_null(strstr(buf, " platform=facebook "));
    assert_null(strstr(buf, " action=allow "));
    assert_null(strstr(buf, " status=200 "));
}

/* Too long for the buffer: cut, still one terminated line. */
static void
test_access_truncation(void **state)
{
    (void)state;
    set_tz("UTC");
    struct timespec ts = at(2026, 11, 30, 12, 31, 5, 123);
    static char longpath[6000];
    memset(longpath, 'p', sizeof(longpath) - 1);
    static char longq[3000];
    memset(longq, '"', sizeof(longq) - 1);
    struct access_record r = {.ev = "request", .method = "GET", .host = "example.com",
                              .path = longpath, .rule = longq, .reason = "x\ny"};
    char buf[20000];
    for (size_t size = 0; size < 400; size++) {
        memset(buf, 'Z', sizeof(buf));
        size_t n = logfmt_access(&r, &ts, buf, size);
        if (size < 64) {
            assert_int_equal(n, 0);
            continue;
        }
        if (n >= size || buf[n] != '\0' || strlen(buf) != n)
            fail_msg("size %zu: length %zu", size, n);
        assert_int_equal(buf[n - 1], '\n');
        assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
        assert_int_equal(buf[size], 'Z');
    }
    /* Roomy buffer: a long value is cut inside its field, the line goes on. */
    size_t n = logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_int_equal(buf[n - 1], '\n');
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
    assert_non_null(strstr(buf, "ppp... sni=- "));
    assert_non_null(strstr(buf, "\\\"...\" action=- "));
    assert_non_null(strstr(buf, " reason=\"x\\x0ay\"\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),       cmocka_unit_test(test_time_europe_london),
        cmocka_unit_test(test_access_line),       cmocka_unit_test(test_access_dashes),
        cmocka_unit_test(test_access_hostile),    cmocka_unit_test(test_access_forged_fields),
        cmocka_unit_test(test_access_truncation),
    };
    return cmocka_run_group_tests_name("logfmt", tests, NULL, NULL);
}
