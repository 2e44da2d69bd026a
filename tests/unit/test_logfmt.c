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
#include "util/addr.h"
#include "util/escape.h"

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

static const char *const order[] = {
    "ev",  "client",   "user",     "roles", "method", "host",   "port", "path",
    "sni", "platform", "category", "rule",  "action", "status", "up",   "down",
    "ms",  "mismatch", "ech",      "auth",  "reason", "tls"};

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

    /* A request read inside a decrypted tunnel says so, last. */
    r.tls = "inspect";
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_non_null(strstr(buf, " ms=0 ech=grease reason=rule tls=inspect\n"));
    r.reason = NULL;
    logfmt_access(&r, &ts, buf, sizeof(buf));
    assert_non_null(strstr(buf, " ms=0 ech=grease tls=inspect\n"));
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
        "a\nb",         "x\r\ny=z",    "\" injected=1 \"",
        "back\\slash",  " lead",       "trail ",
        "\xff\xfe\x80", "caf\xc3\xa9", "\t\x01\x1b[2J",
        "a=b c=d\n\n",  "-",           "\x7f",
        "ev=request",   "\"",          "\\",
        "end\n",        "\r",          "semi;colon",
        "x\"\\\n",      "ok",          "ms=1 status=200",
    };
    struct timespec ts = at(2026, 11, 30, 12, 31, 5, 123);
    struct sockaddr_in cl = v4("192.0.2.7", 1);
    static struct kv f[32];
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
        const char *v = evil[i];
        struct access_record r = {
            .ev = v,
            .client = (struct sockaddr *)&cl,
            .user = v,
            .roles = v,
            .method = v,
            .host = v,
            .port = 8080,
            .path = v,
            .sni = v,
            .platform = v,
            .category = v,
            .rule = v,
            .action = v,
            .status = 502,
            .up = 1,
            .down = 2,
            .ms = 3,
            .mismatch = v,
            .ech = v,
            .auth = v,
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
    struct access_record r = {.ev = "request",
                              .method = "GET",
                              .host = "example.com",
                              .path = longpath,
                              .rule = longq,
                              .reason = "x\ny"};
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

/* --- the hand-written formatter against the snprintf one it replaced ------
 * ref_access is logfmt_access as it was written with snprintf, inet_ntop
 * and a copy through a 2048-byte buffer: every line must come out byte for
 * byte the same, whatever the values and the room. */

struct ref_out {
    char *buf;
    size_t size, len;
};

static size_t
ref_time(const struct timespec *ts, char *buf, size_t size)
{
    struct tm tm;
    localtime_r(&ts->tv_sec, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%c%02ld:%02ld",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts->tv_nsec / 1000000, sign, off / 60, off % 60);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

static void
ref_put(struct ref_out *o, const char *s, size_t n)
{
    if (o->len + n + 2 > o->size)
        n = o->size - o->len - 2;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void
ref_field(struct ref_out *o, const char *key, const char *v)
{
    char esc[2048];
    size_t n = escape_log_value(v, v ? strlen(v) : 0, esc, sizeof(esc));
    ref_put(o, " ", 1);
    ref_put(o, key, strlen(key));
    ref_put(o, "=", 1);
    ref_put(o, esc, n);
}

static void
ref_field_u64(struct ref_out *o, const char *key, uint64_t v, int dash_if_zero)
{
    char tmp[32];
    if (dash_if_zero && v == 0)
        snprintf(tmp, sizeof(tmp), "-");
    else
        snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    ref_put(o, " ", 1);
    ref_put(o, key, strlen(key));
    ref_put(o, "=", 1);
    ref_put(o, tmp, strlen(tmp));
}

static size_t
ref_access(const struct access_record *r, const struct timespec *ts, char *buf, size_t size)
{
    struct ref_out o = {buf, size, 0};
    char t[48], client[80];
    if (size < 64)
        return 0;
    ref_put(&o, t, ref_time(ts, t, sizeof(t)));
    ref_field(&o, "ev", r->ev);
    ref_field(&o, "client", r->client ? addr_format(r->client, client, sizeof(client)) : NULL);
    ref_field(&o, "user", r->user);
    ref_field(&o, "roles", r->roles);
    ref_field(&o, "method", r->method);
    ref_field(&o, "host", r->host);
    ref_field_u64(&o, "port", (uint64_t)r->port, 1);
    ref_field(&o, "path", r->path);
    ref_field(&o, "sni", r->sni);
    ref_field(&o, "platform", r->platform);
    ref_field(&o, "category", r->category);
    ref_field(&o, "rule", r->rule);
    ref_field(&o, "action", r->action);
    ref_field_u64(&o, "status", (uint64_t)r->status, 1);
    ref_field_u64(&o, "up", r->up, 0);
    ref_field_u64(&o, "down", r->down, 0);
    ref_field_u64(&o, "ms", r->ms, 0);
    if (r->mismatch)
        ref_field(&o, "mismatch", r->mismatch);
    if (r->ech)
        ref_field(&o, "ech", r->ech);
    if (r->auth)
        ref_field(&o, "auth", r->auth);
    if (r->reason)
        ref_field(&o, "reason", r->reason);
    if (r->tls)
        ref_field(&o, "tls", r->tls);
    o.buf[o.len++] = '\n';
    o.buf[o.len] = '\0';
    return o.len;
}

static void
test_access_same_as_snprintf(void **state)
{
    (void)state;
    static char longv[5000], longq[3000];
    memset(longv, 'p', sizeof(longv) - 1);
    for (size_t i = 0; i + 1 < sizeof(longq); i++)
        longq[i] = "a \"\\\x01\xff"[i % 6];
    struct sockaddr_in a4 = v4("192.0.2.7", 50123), z4 = v4("0.0.0.0", 0),
                       m4 = v4("255.255.255.255", 65535), s4 = v4("10.0.10.1", 8);
    struct sockaddr_in6 a6, m6;
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(443);
    inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
    memset(&m6, 0, sizeof(m6));
    m6.sin6_family = AF_INET6;
    m6.sin6_port = htons(3128);
    inet_pton(AF_INET6, "::ffff:198.51.100.20", &m6.sin6_addr);
    const struct sockaddr *clients[] = {(struct sockaddr *)&a4,
                                        (struct sockaddr *)&z4,
                                        (struct sockaddr *)&m4,
                                        (struct sockaddr *)&s4,
                                        (struct sockaddr *)&a6,
                                        (struct sockaddr *)&m6,
                                        NULL};
    struct access_record recs[8];
    memset(recs, 0, sizeof(recs));
    /* an ordinary forwarded request */
    recs[0] = (struct access_record){.ev = "request",
                                     .user = "alice",
                                     .roles = "staff",
                                     .method = "GET",
                                     .host = "www.facebook.com",
                                     .port = 80,
                                     .path = "/index.html?q=1",
                                     .platform = "facebook",
                                     .category = "social",
                                     .rule = "lunch",
                                     .action = "allow",
                                     .status = 200,
                                     .up = 84,
                                     .down = 1285,
                                     .ms = 3};
    /* a tunnel with every optional field */
    recs[1] = (struct access_record){.ev = "tunnel",
                                     .method = "CONNECT",
                                     .host = "x.com",
                                     .port = 443,
                                     .sni = "cdn.x.com",
                                     .platform = "x",
                                     .category = "social",
                                     .rule = "deny-x",
                                     .action = "deny",
                                     .status = 200,
                                     .up = UINT64_MAX,
                                     .down = 10000000000ULL,
                                     .ms = 999,
                                     .mismatch = "sni",
                                     .ech = "yes",
                                     .auth = "fail",
                                     .reason = "sni-denied",
                                     .tls = "page"};
    /* nothing known: dashes */
    recs[2] = (struct access_record){.ev = "request", .reason = "bad-request"};
    /* values to escape: spaces, quotes, backslashes, controls, bytes over 0x7f, a "-" */
    recs[3] = (struct access_record){.ev = "request",
                                     .user = "jane doe",
                                     .roles = "-",
                                     .method = "G\"ET",
                                     .host = "h\\ost",
                                     .port = 65535,
                                     .path = "/a b\r\n\x01\x7f\xc3\xa9'",
                                     .sni = "",
                                     .rule = "r'1",
                                     .action = "warn",
                                     .status = 999,
                                     .up = 1,
                                     .down = 0,
                                     .ms = 18446744073709551615ULL,
                                     .reason = "x\ny",
                                     .tls = "inspect"};
    /* values longer than a field's room, plain and quoted */
    recs[4] = (struct access_record){.ev = "request",
                                     .method = "GET",
                                     .host = longv,
                                     .path = longq,
                                     .sni = longv,
                                     .status = 414};
    recs[5] = (struct access_record){
        .ev = "request", .path = longq, .user = longq, .roles = longv, .reason = longq};
    recs[6] = (struct access_record){
        .ev = "tunnel", .port = 1, .status = 1, .up = 9, .down = 10, .ms = 100, .auth = "fail"};
    recs[7] = (struct access_record){
        .ev = "request", .host = "a", .path = "/", .port = 8080, .status = 407, .answered_here = 1};
    static const size_t sizes[] = {64, 65, 100, 200, 500, 2049, 2050, 2100, 4096, 8192, 20000};
    static const char *const zones[] = {"UTC", "<-0330>3:30", "<+0545>-5:45"};
    static const long times[][2] = {
        {0, 0},
        {1796034665, 123000000},
        {1796034665, 999999999},
        {951782400, 7},
        {4102444799, 500000000},
        {253402300799, 1000000},
        {253402300800, 0},
        {-62135596800, 0},
    };
    static char got[20001], want[20001];
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        set_tz(zones[z]);
        for (size_t ti = 0; ti < sizeof(times) / sizeof(times[0]); ti++) {
            struct timespec ts = {(time_t)times[ti][0], times[ti][1]};
            char a[64], b[64];
            for (size_t sz = 1; sz < sizeof(a); sz++) {
                memset(a, 'Z', sizeof(a));
                memset(b, 'Z', sizeof(b));
                size_t na = logfmt_time(&ts, a, sz), nb = ref_time(&ts, b, sz);
                if (na != nb || memcmp(a, b, sizeof(a)) != 0)
                    fail_msg("time %ld in %s, size %zu: '%s' (%zu), want '%s' (%zu)", times[ti][0],
                             zones[z], sz, a, na, b, nb);
            }
            for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
                for (size_t ci = 0; ci < sizeof(clients) / sizeof(clients[0]); ci++) {
                    recs[i].client = clients[ci];
                    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                        memset(got, 'Z', sizes[s] + 1);
                        memset(want, 'Z', sizes[s] + 1);
                        size_t ng = logfmt_access(&recs[i], &ts, got, sizes[s]);
                        size_t nw = ref_access(&recs[i], &ts, want, sizes[s]);
                        if (ng != nw || memcmp(got, want, sizes[s] + 1) != 0)
                            fail_msg("record %zu, client %zu, size %zu, time %ld in %s:\n"
                                     "got  %.*s\nwant %.*s",
                                     i, ci, sizes[s], times[ti][0], zones[z], (int)ng, got, (int)nw,
                                     want);
                    }
                }
            }
        }
    }
    set_tz("UTC");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),       cmocka_unit_test(test_time_europe_london),
        cmocka_unit_test(test_access_line),       cmocka_unit_test(test_access_dashes),
        cmocka_unit_test(test_access_hostile),    cmocka_unit_test(test_access_forged_fields),
        cmocka_unit_test(test_access_truncation), cmocka_unit_test(test_access_same_as_snprintf),
    };
    return cmocka_run_group_tests_name("logfmt", tests, NULL, NULL);
}
