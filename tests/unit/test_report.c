/* Unit tests for proxy/report.c: the usage-log line parser, option parsing,
 * aggregation, since/until, top, sorting and the three output formats.
 * Lines are handed to the parser from a guard-page buffer (guard.h), so an
 * over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "report.h"
#include "util/escape.h"

static struct guard G;

static int
setup(void **state)
{
    (void)state;
    guard_init(&G, 1 << 20);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    guard_free(&G);
    return 0;
}

static int
parse(const char *s, struct report_line *l)
{
    size_t n = strlen(s);
    return report_parse_line((const char *)guard_put(&G, s, n), n, l);
}

static int
parse_n(const char *s, size_t n, struct report_line *l)
{
    return report_parse_line((const char *)guard_put(&G, s, n), n, l);
}

/* Asserts that a view holds exactly `want`. */
#define assert_str(view, want)                                                                     \
    do {                                                                                           \
        struct report_str v_ = (view);                                                             \
        assert_non_null(v_.p);                                                                     \
        if (v_.len != strlen(want) || memcmp(v_.p, want, v_.len) != 0)                             \
            fail_msg("'%.*s', want '%s'", (int)v_.len, v_.p, want);                                \
    } while (0)

#define TUNNEL                                                                                     \
    "2026-11-30T12:31:05.123+00:00 ev=tunnel client=10.1.2.3:51514 user=alice "                    \
    "roles=marketing,hq method=CONNECT host=www.facebook.com port=443 path=- "                     \
    "sni=www.facebook.com platform=facebook category=social rule=marketing-all-day "               \
    "action=allow status=200 up=1234 down=56789 ms=60123"
#define REQUEST                                                                                    \
    "2026-11-30T12:31:07.001+00:00 ev=request client=10.1.2.9:40022 user=- roles=staff "           \
    "method=GET host=www.reddit.com port=80 path=/r/c sni=- platform=reddit category=social "      \
    "rule=social-otherwise action=deny status=403 up=0 down=512 ms=1"
#define USAGE                                                                                      \
    "2026-11-30T12:35:00.000+00:00 ev=usage user=alice platform=facebook active_min=4 "            \
    "today_min=47 quota_min=- requests=312 up=120034 down=9834211 client=10.1.2.3 "                \
    "roles=marketing category=social"

/* ---------------------------------------------------------------- parsing */

static void
test_parse_tunnel(void **state)
{
    (void)state;
    struct report_line l;
    assert_int_equal(parse(TUNNEL, &l), 0);
    assert_int_equal(l.kind, REPORT_EV_TUNNEL);
    assert_memory_equal(l.ts, "2026-11-30T12:31", 16);
    assert_str(l.ev, "tunnel");
    assert_str(l.client, "10.1.2.3:51514");
    assert_str(l.user, "alice");
    assert_str(l.roles, "marketing,hq");
    assert_str(l.platform, "facebook");
    assert_str(l.category, "social");
    assert_str(l.host, "www.facebook.com");
    assert_str(l.rule, "marketing-all-day");
    assert_str(l.action, "allow");
    /* Bytes of request lines are not summed: usage lines carry them. */
    assert_int_equal(l.up, 0);
    assert_int_equal(l.active_min, 0);

    /* The optional fields at the end. */
    assert_int_equal(parse(TUNNEL " mismatch=sni ech=yes auth=basic reason=client-closed", &l), 0);
    assert_int_equal(l.kind, REPORT_EV_TUNNEL);
    /* A trailing newline, or CRLF, is not part of the line. */
    assert_int_equal(parse(TUNNEL "\n", &l), 0);
    assert_str(l.action, "allow");
    assert_int_equal(parse(TUNNEL "\r\n", &l), 0);
    assert_str(l.action, "allow");
}

static void
test_parse_request(void **state)
{
    (void)state;
    struct report_line l;
    assert_int_equal(parse(REQUEST, &l), 0);
    assert_int_equal(l.kind, REPORT_EV_REQUEST);
    assert_str(l.user, "-");
    assert_str(l.client, "10.1.2.9:40022");
    assert_str(l.action, "deny");
    /* port and status may be "-" (the client saw no status). */
    assert_int_equal(parse("2026-11-30T12:31:07.001+00:00 ev=request client=[::1]:5 user=- "
                           "roles=- method=GET host=h port=- path=- sni=- platform=- "
                           "category=- rule=- action=- status=- up=0 down=0 ms=0 "
                           "reason=dns-failed",
                           &l),
                     0);
    assert_str(l.client, "[::1]:5");
    assert_str(l.host, "h");
    assert_str(l.rule, "-");
}

static void
test_parse_usage(void **state)
{
    (void)state;
    struct report_line l;
    assert_int_equal(parse(USAGE, &l), 0);
    assert_int_equal(l.kind, REPORT_EV_USAGE);
    assert_int_equal(l.active_min, 4);
    assert_int_equal(l.requests, 312);
    assert_int_equal(l.up, 120034);
    assert_int_equal(l.down, 9834211);
    assert_str(l.client, "10.1.2.3");
    assert_str(l.roles, "marketing");
    assert_str(l.category, "social");
    /* The first format, without client, roles and category. */
    assert_int_equal(parse("2026-11-30T12:35:00.000+00:00 ev=usage user=alice platform=facebook "
                           "active_min=4 today_min=47 quota_min=- requests=312 up=120034 "
                           "down=9834211",
                           &l),
                     0);
    assert_null(l.client.p);
    assert_null(l.roles.p);
    assert_null(l.category.p);
    /* Large figures. */
    assert_int_equal(parse("2026-11-30T12:35:00Z ev=usage user=a platform=p active_min=0 "
                           "requests=0 up=18446744073709551615 down=0",
                           &l),
                     0);
    assert_true(l.up == UINT64_MAX);
}

static void
test_parse_other_kinds(void **state)
{
    (void)state;
    struct report_line l;
    assert_int_equal(
        parse("2026-11-30T12:40:12.550+00:00 ev=config result=ok files=4 rules=12 platforms=31",
              &l),
        0);
    assert_int_equal(l.kind, REPORT_EV_OTHER);
    assert_str(l.ev, "config");
    assert_int_equal(parse("2026-11-30T12:40:12.550+00:00 ev=config result=error "
                           "file=rules/10-roles.ini line=3 msg=\"unknown key\"",
                           &l),
                     0);
    assert_int_equal(l.kind, REPORT_EV_OTHER);
    assert_int_equal(parse("2026-11-30T12:41:00.000+00:00 ev=quota user=alice "
                           "rule=everyone-at-lunch used_min=24 quota_min=30 pct=80",
                           &l),
                     0);
    assert_int_equal(l.kind, REPORT_EV_OTHER);
    assert_str(l.user, "alice");
    /* Unknown kinds are valid and not counted. */
    assert_int_equal(parse("2026-11-30T12:41:00.000+00:00 ev=future x=1", &l), 0);
    assert_int_equal(l.kind, REPORT_EV_OTHER);
    /* ev need not come first. */
    assert_int_equal(parse("2026-11-30T12:41:00.000+00:00 x=1 ev=future", &l), 0);
}

static void
test_parse_quoted(void **state)
{
    (void)state;
    struct report_line l;
    const char *line = "2026-11-30T12:31:07.001+00:00 ev=request client=10.0.0.1:1 "
                       "user=\"bob \\\"the\\\" b\\\\s x=1 \\xc3\\xa9\" roles=\"a b,c\" "
                       "method=GET host=h port=80 path=\"/a b\" sni=- platform=\"p q\" "
                       "category=c rule=r action=warn status=200 up=1 down=2 ms=3";
    assert_int_equal(parse(line, &l), 0);
    /* The view is the raw form, quotes and escapes included. */
    assert_str(l.user, "\"bob \\\"the\\\" b\\\\s x=1 \\xc3\\xa9\"");
    assert_str(l.roles, "\"a b,c\"");
    assert_str(l.platform, "\"p q\"");
    assert_str(l.category, "c");
    assert_str(l.action, "warn");

    char out[128];
    size_t n = report_unescape(l.user.p, l.user.len, out);
    assert_int_equal(n, strlen("bob \"the\" b\\s x=1 \xc3\xa9"));
    assert_memory_equal(out, "bob \"the\" b\\s x=1 \xc3\xa9", n);
    /* A plain value is copied as is; "-" stays "-". */
    n = report_unescape("alice", 5, out);
    assert_memory_equal(out, "alice", 5);
    assert_int_equal(n, 5);
    assert_int_equal(report_unescape("-", 1, out), 1);
    /* Upper-case hex and a NUL byte. */
    n = report_unescape("\"\\x00\\xFF\"", 10, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0);
    assert_int_equal((unsigned char)out[1], 0xff);
    /* "=" inside a quoted value and an empty quoted value. */
    assert_int_equal(parse("2026-11-30T12:31:07Z ev=x a=\"k=v\" b=\"\"", &l), 0);
}

/* Every byte value, escaped by the daemon's own writer, reads back. */
static void
test_parse_roundtrip_escape(void **state)
{
    (void)state;
    char value[256], esc[2048], line[4096], dec[2048];
    for (int i = 0; i < 256; i++)
        value[i] = (char)i;
    size_t n = escape_log_value(value, sizeof(value), esc, sizeof(esc));
    int len = snprintf(line, sizeof(line),
                       "2026-11-30T12:31:07.001+00:00 ev=usage user=%s platform=%s "
                       "active_min=1 requests=1 up=1 down=1",
                       esc, esc);
    struct report_line l;
    assert_int_equal(parse_n(line, (size_t)len, &l), 0);
    assert_int_equal(l.user.len, n);
    size_t d = report_unescape(l.user.p, l.user.len, dec);
    assert_int_equal(d, sizeof(value));
    assert_memory_equal(dec, value, sizeof(value));

    /* And each byte alone. */
    for (int i = 0; i < 256; i++) {
        char c = (char)i;
        n = escape_log_value(&c, 1, esc, sizeof(esc));
        len = snprintf(line, sizeof(line), "2026-11-30T12:31:07Z ev=x v=%s", esc);
        if (parse_n(line, (size_t)len, &l) != 0)
            fail_msg("byte 0x%02x escaped as %s does not parse", i, esc);
    }
}

static void
test_parse_timestamps(void **state)
{
    (void)state;
    static const char *const good[] = {
        "2026-11-30T12:31:05.123+00:00 ev=x", "2026-11-30T12:31:05+01:00 ev=x",
        "2026-11-30T12:31:05.1-03:30 ev=x",   "2026-11-30T12:31:05.123456789+05:45 ev=x",
        "2026-11-30T12:31:05Z ev=x",          "2026-11-30T23:59:60.000Z ev=x",
        "2026-01-01T00:00:00.000+00:00 ev=x",
    };
    static const char *const bad[] = {
        "",
        "ev=x",
        "2026-11-30 12:31:05.123+00:00 ev=x",
        "2026-11-30T12:31:05.123 ev=x",
        "2026-11-30T12:31:05.123+0000 ev=x",
        "2026-11-30T12:31:05. +00:00 ev=x",
        "2026-11-30T12:31:05.1234567890+00:00 ev=x",
        "2026-13-30T12:31:05.123+00:00 ev=x",
        "2026-00-30T12:31:05.123+00:00 ev=x",
        "2026-11-00T12:31:05.123+00:00 ev=x",
        "2026-11-32T12:31:05.123+00:00 ev=x",
        "2026-11-30T24:31:05.123+00:00 ev=x",
        "2026-11-30T12:60:05.123+00:00 ev=x",
        "2026-11-30T12:31:61.123+00:00 ev=x",
        "2026-11-30T12:31:05.123+24:00 ev=x",
        "2026-11-30T12:31:05.123+00:60 ev=x",
        "202a-11-30T12:31:05.123+00:00 ev=x",
        "2026-11-30T12:31:05.123+00:00",
        "2026-11-30T12:31:05.123+00:00 ",
        "2026-11-30T12:31:05.123+00:00x ev=x",
        "2026-11-30T12:31:05Zev=x",
        "2026-11-30T12:31",
        " 2026-11-30T12:31:05.123+00:00 ev=x",
    };
    struct report_line l;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (parse(good[i], &l) != 0)
            fail_msg("refused: '%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &l) != -1)
            fail_msg("accepted: '%s'", bad[i]);
}

static void
test_parse_malformed(void **state)
{
    (void)state;
#define TS "2026-11-30T12:31:07.001+00:00 "
#define REQ_TAIL                                                                                   \
    " method=GET host=h port=80 path=- sni=- platform=p category=c rule=- action=deny "            \
    "status=403 up=0 down=0 ms=1"
    static const char *const bad[] = {
        TS "result=ok",                 /* no ev */
        TS "ev=",                       /* empty value */
        TS "=x ev=x",                   /* empty key */
        TS "ev=x foo",                  /* a field without '=' */
        TS "ev=x foo bar=1",            /* ditto, in the middle */
        TS "ev=x  a=1",                 /* two spaces */
        TS "ev=x a=1 ",                 /* trailing space */
        TS "ev=x a=\"open",             /* unterminated quote */
        TS "ev=x a=\"open\\\"",         /* the quote is escaped */
        TS "ev=x a=\"bad \\n escape\"", /* unknown escape */
        TS "ev=x a=\"short \\x4\"",     /* short \x */
        TS "ev=x a=\"\\xzz\"",          /* not hex */
        TS "ev=x a=\"x\\",              /* backslash at the end */
        TS "ev=x a=\"q\"b",             /* text after the closing quote */
        TS "ev=x a=b\"c",               /* a quote in a plain value */
        TS "ev=x a=b\tc",               /* control byte */
        TS "ev=x a=\"b\tc\"",           /* control byte, quoted */
        TS "ev=x a=b\x7f",              /* DEL */
        TS "ev=x a=b\rc",               /* CR inside the line */
        TS "ev=x k\xc3\xa9y=1",         /* key byte */
        TS "ev=x k:y=1",                /* key byte */
        TS "ev=request client=1.2.3.4:5 user=- roles=-" REQ_TAIL " x", /* field without = */
        TS "ev=request client=1.2.3.4:5 user=- roles=- method=GET host=h port=80 path=- sni=- "
           "platform=p category=c rule=- status=403 up=0 down=0 ms=1", /* no action */
        TS "ev=request user=- roles=-" REQ_TAIL,                       /* no client */
        TS "ev=request client=1.2.3.4:5 user=- roles=- method=GET host=h port=http path=- "
           "sni=- platform=p category=c rule=- action=deny status=403 up=0 down=0 ms=1",
        TS "ev=tunnel client=1.2.3.4:5 user=- roles=- method=GET host=h port=80 path=- sni=- "
           "platform=p category=c rule=- action=deny status=403 up=0 down=1k ms=1",
        TS "ev=tunnel client=1.2.3.4:5 user=- roles=- method=GET host=h port=80 path=- sni=- "
           "platform=p category=c rule=- action=deny status=-1 up=0 down=1 ms=1",
        TS "ev=usage user=a platform=p active_min=x requests=1 up=1 down=1",
        TS "ev=usage user=a platform=p active_min=- requests=1 up=1 down=1",
        TS "ev=usage user=a platform=p active_min=1 requests=1 up=1", /* cut: no down */
        TS "ev=usage user=a platform=p active_min=1 requests=1 up=1 down=1.5",
        TS "ev=usage user=a platform=p active_min=1 requests=1 up=+1 down=1",
        TS "ev=usage user=a platform=p active_min=1 requests=1 up=1 down=18446744073709551616",
        TS "ev=usage user=a platform=p active_min=1 requests=1 up=1 down=1 today_min=z",
        TS "ev=usage platform=p active_min=1 requests=1 up=1 down=1", /* no user */
        TS "ev=usage user=a active_min=1 requests=1 up=1 down=1",     /* no platform */
        TS "ev=quota user=a rule=r used_min=24 quota_min=30 pct=eighty",
    };
#undef TS
#undef REQ_TAIL
    struct report_line l;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &l) != -1)
            fail_msg("accepted #%zu: '%s'", i, bad[i]);
    /* A NUL byte inside the line. */
    static const char nul[] = "2026-11-30T12:31:07Z ev=x a=b\0c";
    assert_int_equal(parse_n(nul, sizeof(nul) - 1, &l), -1);
    /* Every prefix of a good line either parses or is refused; none reads
     * past its end (the guard page would catch it). */
    for (size_t n = 0; n <= strlen(TUNNEL); n++)
        (void)parse_n(TUNNEL, n, &l);
    /* Repeated keys: the first one counts. */
    assert_int_equal(parse("2026-11-30T12:35:00Z ev=usage user=a user=b platform=p active_min=1 "
                           "requests=1 up=1 down=1",
                           &l),
                     0);
    assert_str(l.user, "a");
}

/* ---------------------------------------------------------------- options */

static void
test_parse_by(void **state)
{
    (void)state;
    struct report_opts o;
    const char *err;
    memset(&o, 0, sizeof(o));
    assert_int_equal(report_parse_by("user", &o, &err), 0);
    assert_int_equal(o.nby, 1);
    assert_int_equal(o.by[0], REPORT_BY_USER);
    assert_int_equal(report_parse_by("hour,day,category,platform,role,user", &o, &err), 0);
    assert_int_equal(o.nby, 6);
    assert_int_equal(o.by[0], REPORT_BY_HOUR);
    assert_int_equal(o.by[5], REPORT_BY_USER);
    assert_int_equal(report_parse_by("rule,action,hour,day,category,platform,role,user", &o, &err),
                     0);
    assert_int_equal(o.nby, 8);
    assert_int_equal(o.by[0], REPORT_BY_RULE);
    assert_int_equal(o.by[1], REPORT_BY_ACTION);
    assert_int_equal(report_parse_by("hour,day,category,platform,role,user", &o, &err), 0);
    static const char *const bad[] = {"",      ",",     "user,",           ",user",
                                      "users", "User",  "user,user",       "user ,platform",
                                      "host",  "rules", "rule,action,rule"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (report_parse_by(bad[i], &o, &err) != -1)
            fail_msg("accepted --by '%s'", bad[i]);
        assert_non_null(err);
    }
    /* A refused list leaves the options as they were. */
    assert_int_equal(o.nby, 6);
}

static void
test_parse_when(void **state)
{
    (void)state;
    char out[17];
    const char *err;
    assert_int_equal(report_parse_when("2026-11-30", out, &err), 0);
    assert_string_equal(out, "2026-11-30 00:00");
    assert_int_equal(report_parse_when("2026-11-30 12:30", out, &err), 0);
    assert_string_equal(out, "2026-11-30 12:30");
    assert_int_equal(report_parse_when("2026-11-30T23:59", out, &err), 0);
    assert_string_equal(out, "2026-11-30 23:59");
    assert_int_equal(report_parse_when("2028-02-29", out, &err), 0);
    assert_int_equal(report_parse_when("2000-02-29", out, &err), 0);
    static const char *const bad[] = {
        "",           "2026-11-3",           "2026-11-30 ", "2026-11-30 12",    "2026-02-29",
        "1900-02-29", "2026-04-31",          "2026-13-01",  "2026-11-30 24:00", "2026-11-30 12:60",
        "2026/11/30", "2026-11-30 12:30:00", "26-11-30",    "2026-11-30x12:30", "yesterday",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (report_parse_when(bad[i], out, &err) != -1)
            fail_msg("accepted '%s'", bad[i]);
}

/* ------------------------------------------------------------ aggregation */

static struct report_opts
opts(const char *by)
{
    struct report_opts o;
    const char *err;
    memset(&o, 0, sizeof(o));
    if (report_parse_by(by, &o, &err) < 0)
        fail_msg("--by %s: %s", by, err);
    return o;
}

/* Feeds text line by line; returns the number of malformed lines. */
static int
feed(struct report *r, const char *text)
{
    int bad = 0;
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        int rc = report_feed(r, (const char *)guard_put(&G, text, n), n);
        assert_true(rc >= 0);
        bad += rc;
        text += n + (nl != NULL);
    }
    return bad;
}

/* The rows as "key|key: a r u d n w" lines, for compact comparisons. */
static char *
dump(struct report *r)
{
    static char out[8192];
    size_t n, o = 0;
    const struct report_row *rows = report_rows(r, &n);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0;; k++) {
            struct report_str p = report_row_part(&rows[i], k);
            if (p.p == NULL)
                break;
            o +=
                (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s", k ? "|" : "", (int)p.len, p.p);
        }
        o += (size_t)snprintf(
            out + o, sizeof(out) - o, ": %llu %llu %llu %llu %llu %llu\n",
            (unsigned long long)rows[i].c.active_min, (unsigned long long)rows[i].c.requests,
            (unsigned long long)rows[i].c.up, (unsigned long long)rows[i].c.down,
            (unsigned long long)rows[i].c.denials, (unsigned long long)rows[i].c.warns);
    }
    return out;
}

#define U(ts, user, client, roles, platform, category, a, rq, up, down)                            \
    ts " ev=usage user=" user " platform=" platform " active_min=" #a " today_min=1 "              \
       "quota_min=- requests=" #rq " up=" #up " down=" #down " client=" client " roles=" roles     \
       " category=" category "\n"
#define RQ(ts, ev, user, client, roles, platform, category, action)                                \
    ts " ev=" ev " client=" client " user=" user " roles=" roles " method=GET host=h port=80 "     \
       "path=- sni=- platform=" platform " category=" category " rule=r action=" action            \
       " status=200 up=5 down=7 ms=1\n"

static const char LOG[] = U("2026-11-30T09:05:00.000+00:00", "alice", "10.0.0.1", "marketing,hq",
                            "facebook", "social", 10, 100, 1000, 10000)
    U("2026-11-30T09:10:00.000+00:00", "alice", "10.0.0.1", "marketing,hq", "linkedin", "social", 3,
      30, 300, 3000) U("2026-11-30T10:05:00.000+00:00", "bob", "10.0.0.2", "staff", "youtube",
                       "video", 7, 70, 700, 7000)
        U("2026-12-01T09:05:00.000+00:00", "alice", "10.0.0.1", "marketing,hq", "facebook",
          "social", 5, 50, 500, 5000) U("2026-12-01T09:05:00.000+00:00", "-", "10.0.0.9", "-",
                                        "facebook", "social", 2, 20, 200, 2000)
            RQ("2026-11-30T09:01:00.000+00:00", "request", "-", "10.0.0.9:4444", "-", "facebook",
               "social", "deny") RQ("2026-11-30T09:02:00.000+00:00", "tunnel", "bob",
                                    "10.0.0.2:5555", "staff", "facebook", "social", "deny")
                RQ("2026-11-30T09:03:00.000+00:00", "tunnel", "bob", "10.0.0.2:5555", "staff",
                   "linkedin", "social", "warn")
                    RQ("2026-11-30T09:04:00.000+00:00", "request", "alice", "10.0.0.1:1",
                       "marketing,hq", "facebook", "social", "allow")
                        RQ("2026-11-30T09:04:00.000+00:00", "request", "alice", "10.0.0.1:1",
                           "marketing,hq", "facebook", "social",
                           "monitor") "2026-11-30T12:40:12.550+00:00 ev=config result=ok files=4 "
                                      "rules=12 platforms=31\n"
                                      "2026-11-30T12:41:00.000+00:00 ev=quota user=alice rule=r "
                                      "used_min=24 quota_min=30 pct=80\n"
                                      "not a line\n";

static struct report *
run(const char *by, int *bad)
{
    struct report_opts o = opts(by);
    struct report *r = report_new(&o);
    assert_non_null(r);
    *bad = feed(r, LOG);
    return r;
}

static void
test_by_user_platform(void **state)
{
    (void)state;
    int bad;
    struct report *r = run("user,platform", &bad);
    assert_int_equal(bad, 1);
    assert_string_equal(dump(r), "alice|facebook: 15 150 1500 15000 0 0\n"
                                 "bob|youtube: 7 70 700 7000 0 0\n"
                                 "alice|linkedin: 3 30 300 3000 0 0\n"
                                 "10.0.0.9|facebook: 2 20 200 2000 1 0\n"
                                 "bob|facebook: 0 0 0 0 1 0\n"
                                 "bob|linkedin: 0 0 0 0 0 1\n");
    report_free(r);
}

static void
test_by_each_key(void **state)
{
    (void)state;
    int bad;
    struct report *r = run("user", &bad);
    assert_string_equal(dump(r), "alice: 18 180 1800 18000 0 0\n"
                                 "bob: 7 70 700 7000 1 1\n"
                                 "10.0.0.9: 2 20 200 2000 1 0\n");
    report_free(r);

    r = run("role", &bad);
    /* alice's minutes count for marketing and for hq. */
    assert_string_equal(dump(r), "hq: 18 180 1800 18000 0 0\n"
                                 "marketing: 18 180 1800 18000 0 0\n"
                                 "staff: 7 70 700 7000 1 1\n"
                                 "-: 2 20 200 2000 1 0\n");
    report_free(r);

    r = run("platform", &bad);
    assert_string_equal(dump(r), "facebook: 17 170 1700 17000 2 0\n"
                                 "youtube: 7 70 700 7000 0 0\n"
                                 "linkedin: 3 30 300 3000 0 1\n");
    report_free(r);

    r = run("category", &bad);
    assert_string_equal(dump(r), "social: 20 200 2000 20000 2 1\n"
                                 "video: 7 70 700 7000 0 0\n");
    report_free(r);

    r = run("day", &bad);
    assert_string_equal(dump(r), "2026-11-30: 20 200 2000 20000 2 1\n"
                                 "2026-12-01: 7 70 700 7000 0 0\n");
    report_free(r);

    r = run("hour", &bad);
    assert_string_equal(dump(r), "2026-11-30 09: 13 130 1300 13000 2 1\n"
                                 "2026-11-30 10: 7 70 700 7000 0 0\n"
                                 "2026-12-01 09: 7 70 700 7000 0 0\n");
    report_free(r);
}

static void
test_by_combinations(void **state)
{
    (void)state;
    int bad;
    struct report *r = run("role,day", &bad);
    assert_string_equal(dump(r), "hq|2026-11-30: 13 130 1300 13000 0 0\n"
                                 "marketing|2026-11-30: 13 130 1300 13000 0 0\n"
                                 "staff|2026-11-30: 7 70 700 7000 1 1\n"
                                 "hq|2026-12-01: 5 50 500 5000 0 0\n"
                                 "marketing|2026-12-01: 5 50 500 5000 0 0\n"
                                 "-|2026-12-01: 2 20 200 2000 0 0\n"
                                 "-|2026-11-30: 0 0 0 0 1 0\n");
    report_free(r);

    r = run("day,user,role,platform,category,hour", &bad);
    assert_string_equal(
        dump(r), "2026-11-30|alice|hq|facebook|social|2026-11-30 09: 10 100 1000 10000 0 0\n"
                 "2026-11-30|alice|marketing|facebook|social|2026-11-30 09: 10 100 1000 10000 0 0\n"
                 "2026-11-30|bob|staff|youtube|video|2026-11-30 10: 7 70 700 7000 0 0\n"
                 "2026-12-01|alice|hq|facebook|social|2026-12-01 09: 5 50 500 5000 0 0\n"
                 "2026-12-01|alice|marketing|facebook|social|2026-12-01 09: 5 50 500 5000 0 0\n"
                 "2026-11-30|alice|hq|linkedin|social|2026-11-30 09: 3 30 300 3000 0 0\n"
                 "2026-11-30|alice|marketing|linkedin|social|2026-11-30 09: 3 30 300 3000 0 0\n"
                 "2026-12-01|10.0.0.9|-|facebook|social|2026-12-01 09: 2 20 200 2000 0 0\n"
                 "2026-11-30|10.0.0.9|-|facebook|social|2026-11-30 09: 0 0 0 0 1 0\n"
                 "2026-11-30|bob|staff|facebook|social|2026-11-30 09: 0 0 0 0 1 0\n"
                 "2026-11-30|bob|staff|linkedin|social|2026-11-30 09: 0 0 0 0 0 1\n");
    report_free(r);
}

static void
test_identity(void **state)
{
    (void)state;
    struct report_opts o = opts("user");
    struct report *r = report_new(&o);
    /* Anonymous clients meet across request lines (with a port) and usage
     * lines (without), IPv4 and IPv6; a user name wins over the address. */
    assert_int_equal(
        feed(r,
             U("2026-11-30T09:05:00Z", "-", "2001:db8::1", "-", "p", "c", 1, 1, 1,
               1) U("2026-11-30T09:05:00Z", "-", "[2001:db8::1]", "-", "p", "c", 1, 1, 1, 1)
                 RQ("2026-11-30T09:05:00Z", "tunnel", "-", "[2001:db8::1]:443", "-", "p", "c",
                    "deny") U("2026-11-30T09:05:00Z", "-", "10.9.9.9", "-", "p", "c", 5, 1, 1, 1)
                     RQ("2026-11-30T09:05:00Z", "request", "-", "10.9.9.9:1234", "-", "p", "c",
                        "warn") RQ("2026-11-30T09:05:00Z", "request", "carol", "10.9.9.9:1234", "-",
                                   "p", "c", "warn") RQ("2026-11-30T09:05:00Z", "request", "\"-\"",
                                                        "10.9.9.9:1234", "-", "p", "c", "warn")
                         RQ("2026-11-30T09:05:00Z", "request", "-", "-", "-", "p", "c", "deny") RQ(
                             "2026-11-30T09:05:00Z", "request", "\"x y\"", "10.9.9.9:1", "-", "p",
                             "c", "deny") RQ("2026-11-30T09:06:00Z", "request", "\"x\\x20y\"",
                                             "10.9.9.9:1", "-", "p", "c", "deny")),
        0);
    /* A user really named "-" is written "\"-\"" and is not the address. A
     * name with a space, written raw inside quotes by the first log format
     * and as \x20 today, is one user, shown as today's log writes it. */
    assert_string_equal(dump(r), "10.9.9.9: 5 1 1 1 0 1\n"
                                 "2001:db8::1: 2 2 2 2 1 0\n"
                                 "\"-\": 0 0 0 0 0 1\n"
                                 "\"x\\x20y\": 0 0 0 0 2 0\n"
                                 "-: 0 0 0 0 1 0\n"
                                 "carol: 0 0 0 0 0 1\n");
    report_free(r);
}

static void
test_roles_split(void **state)
{
    (void)state;
    struct report_opts o = opts("role");
    struct report *r = report_new(&o);
    assert_int_equal(
        feed(r,
             U("2026-11-30T09:05:00Z", "a", "1.1.1.1", "x,y,x", "p", "c", 1, 1, 1,
               1) U("2026-11-30T09:05:00Z", "a", "1.1.1.1", "x,,z,", "p", "c", 1, 1, 1, 1)
                 U("2026-11-30T09:05:00Z", "a", "1.1.1.1", "\"two words,x,q\\\"t\"", "p", "c", 1, 1,
                   1, 1) U("2026-11-30T09:05:00Z", "a", "1.1.1.1", "\",\"", "p", "c", 1, 1, 1, 1)),
        0);
    /* A role named twice counts once; empty parts are skipped; the parts of
     * a quoted value show as the log would write each one. */
    assert_string_equal(dump(r), "x: 3 3 3 3 0 0\n"
                                 "\"q\\\"t\": 1 1 1 1 0 0\n"
                                 "\"two\\x20words\": 1 1 1 1 0 0\n"
                                 "-: 1 1 1 1 0 0\n"
                                 "y: 1 1 1 1 0 0\n"
                                 "z: 1 1 1 1 0 0\n");
    report_free(r);

    /* Thousands of roles on one line: each counted once, in linear time. */
    size_t big = 200000;
    char *line = malloc(big + 256);
    assert_non_null(line);
    int n = snprintf(line, 256,
                     "2026-11-30T09:05:00Z ev=usage user=a platform=p active_min=1 "
                     "requests=1 up=1 down=1 roles=");
    size_t o2 = (size_t)n;
    for (int i = 0; o2 + 16 < big + 200; i++)
        o2 += (size_t)snprintf(line + o2, 16, "%sr%d", i ? "," : "", i);
    r = report_new(&o);
    assert_int_equal(report_feed(r, line, o2), 0);
    size_t rows;
    report_rows(r, &rows);
    assert_true(rows > 20000);
    report_free(r);
    free(line);
}

static void
test_since_until(void **state)
{
    (void)state;
    static const char log[] =
        U("2026-11-29T23:59:59.999+00:00", "a", "1.1.1.1", "-", "p", "c", 1, 1, 1, 1)
            U("2026-11-30T00:00:00.000+00:00", "a", "1.1.1.1", "-", "p", "c", 2, 1, 1, 1)
                U("2026-11-30T12:29:59.999+00:00", "a", "1.1.1.1", "-", "p", "c", 4, 1, 1, 1)
        /* The offset is not applied: 12:30 as written. */
        U("2026-11-30T12:30:00.000-05:00", "a", "1.1.1.1", "-", "p", "c", 8, 1, 1, 1)
            U("2026-11-30T23:59:00.000+14:00", "a", "1.1.1.1", "-", "p", "c", 16, 1, 1, 1)
                U("2026-12-01T00:00:00.000+00:00", "a", "1.1.1.1", "-", "p", "c", 32, 1, 1, 1)
                    RQ("2026-12-01T00:00:00.000+00:00", "request", "a", "1.1.1.1:1", "-", "p", "c",
                       "deny");
    static const struct {
        const char *since, *until, *want;
    } t[] = {
        {"", "", "a: 63 6 6 6 1 0\n"},
        {"2026-11-30", "", "a: 62 5 5 5 1 0\n"},
        {"", "2026-11-30", "a: 1 1 1 1 0 0\n"},
        {"2026-11-30", "2026-12-01", "a: 30 4 4 4 0 0\n"},
        {"2026-11-30 12:30", "", "a: 56 3 3 3 1 0\n"},
        {"", "2026-11-30 12:30", "a: 7 3 3 3 0 0\n"},
        {"2026-11-30 12:29", "2026-11-30 12:31", "a: 12 2 2 2 0 0\n"},
        {"2026-11-30 23:59", "2026-11-30 23:59", ""},
        {"2026-12-02", "", ""},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct report_opts o = opts("user");
        const char *err;
        if (t[i].since[0])
            assert_int_equal(report_parse_when(t[i].since, o.since, &err), 0);
        if (t[i].until[0])
            assert_int_equal(report_parse_when(t[i].until, o.until, &err), 0);
        struct report *r = report_new(&o);
        assert_int_equal(feed(r, log), 0);
        const char *got = dump(r);
        if (strcmp(got, t[i].want) != 0)
            fail_msg("since '%s' until '%s': '%s', want '%s'", t[i].since, t[i].until, got,
                     t[i].want);
        report_free(r);
    }
}

static void
test_sort_and_top(void **state)
{
    (void)state;
    static const char log[] = U("2026-11-30T09:00:00Z", "ab", "1.1.1.1", "-", "p", "c", 5, 10, 1, 1)
        U("2026-11-30T09:00:00Z", "a", "1.1.1.1", "-", "pz", "c", 5, 10, 1, 1)
            U("2026-11-30T09:00:00Z", "a", "1.1.1.1", "-", "p", "c", 5, 10, 1, 1)
                U("2026-11-30T09:00:00Z", "zz", "1.1.1.1", "-", "p", "c", 5, 11, 1, 1)
                    U("2026-11-30T09:00:00Z", "b", "1.1.1.1", "-", "p", "c", 6, 0, 1, 1)
                        U("2026-11-30T09:00:00Z", "B", "1.1.1.1", "-", "p", "c", 0, 0, 0, 0)
                            RQ("2026-11-30T09:00:00Z", "request", "c", "1.1.1.1:1", "-", "p", "c",
                               "deny");
    struct report_opts o = opts("user,platform");
    struct report *r = report_new(&o);
    assert_int_equal(feed(r, log), 0);
    /* Minutes descending, then requests descending, then the key part by
     * part ("a" before "ab", byte order: "B" before "a"). */
    assert_string_equal(dump(r), "b|p: 6 0 1 1 0 0\n"
                                 "zz|p: 5 11 1 1 0 0\n"
                                 "a|p: 5 10 1 1 0 0\n"
                                 "a|pz: 5 10 1 1 0 0\n"
                                 "ab|p: 5 10 1 1 0 0\n"
                                 "B|p: 0 0 0 0 0 0\n"
                                 "c|p: 0 0 0 0 1 0\n");
    report_free(r);

    o.top = 3;
    r = report_new(&o);
    assert_int_equal(feed(r, log), 0);
    assert_string_equal(dump(r), "b|p: 6 0 1 1 0 0\n"
                                 "zz|p: 5 11 1 1 0 0\n"
                                 "a|p: 5 10 1 1 0 0\n");
    /* Asking twice gives the same rows. */
    assert_string_equal(dump(r), "b|p: 6 0 1 1 0 0\n"
                                 "zz|p: 5 11 1 1 0 0\n"
                                 "a|p: 5 10 1 1 0 0\n");
    report_free(r);

    o.top = 100;
    r = report_new(&o);
    assert_int_equal(feed(r, log), 0);
    size_t n;
    report_rows(r, &n);
    assert_int_equal(n, 7);
    report_free(r);
}

static void
test_many_groups_and_saturation(void **state)
{
    (void)state;
    struct report_opts o = opts("user");
    struct report *r = report_new(&o);
    char line[256];
    /* Enough groups to grow the table several times. */
    for (int i = 0; i < 50000; i++) {
        int n = snprintf(line, sizeof(line),
                         "2026-11-30T09:00:00Z ev=usage user=u%d platform=p active_min=%d "
                         "requests=1 up=1 down=1",
                         i, i % 7);
        assert_int_equal(report_feed(r, line, (size_t)n), 0);
        assert_int_equal(report_feed(r, line, (size_t)n), 0);
    }
    size_t n;
    const struct report_row *rows = report_rows(r, &n);
    assert_int_equal(n, 50000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rows[i].c.requests, 2);
    assert_int_equal(rows[0].c.active_min, 12);
    report_free(r);

    r = report_new(&o);
    const char *big = "2026-11-30T09:00:00Z ev=usage user=u platform=p active_min=1 requests=1 "
                      "up=18446744073709551615 down=1";
    assert_int_equal(report_feed(r, big, strlen(big)), 0);
    assert_int_equal(report_feed(r, big, strlen(big)), 0);
    rows = report_rows(r, &n);
    assert_true(rows[0].c.up == UINT64_MAX);
    /* Nothing is added once the rows were taken. */
    assert_int_equal(report_feed(r, big, strlen(big)), 0);
    assert_int_equal(rows[0].c.requests, 2);
    report_free(r);
}

static void
test_by_rule_action(void **state)
{
    (void)state;
    int bad;
    /* Usage lines name no rule or action: their figures group under -. */
    struct report *r = run("rule", &bad);
    assert_string_equal(dump(r), "-: 27 270 2700 27000 0 0\n"
                                 "r: 0 0 0 0 2 1\n");
    report_free(r);

    r = run("action", &bad);
    assert_string_equal(dump(r), "-: 27 270 2700 27000 0 0\n"
                                 "deny: 0 0 0 0 2 0\n"
                                 "warn: 0 0 0 0 0 1\n");
    report_free(r);

    r = run("user,action,rule", &bad);
    assert_string_equal(dump(r), "alice|-|-: 18 180 1800 18000 0 0\n"
                                 "bob|-|-: 7 70 700 7000 0 0\n"
                                 "10.0.0.9|-|-: 2 20 200 2000 0 0\n"
                                 "10.0.0.9|deny|r: 0 0 0 0 1 0\n"
                                 "bob|deny|r: 0 0 0 0 1 0\n"
                                 "bob|warn|r: 0 0 0 0 0 1\n");
    report_free(r);

    /* Values as the log writes them, quotes and escapes kept. */
    struct report_opts o = opts("rule");
    r = report_new(&o);
    assert_int_equal(feed(r, "2026-11-30T09:00:00Z ev=request client=1.1.1.1:1 user=a roles=- "
                             "host=h rule=\"lunch\\x20rule\" platform=p category=c action=deny\n"
                             "2026-11-30T09:00:00Z ev=request client=1.1.1.1:1 user=a roles=- "
                             "host=h2 platform=p category=c action=deny\n"),
                     0);
    assert_string_equal(dump(r), "\"lunch\\x20rule\": 0 0 0 0 1 0\n"
                                 "-: 0 0 0 0 1 0\n");
    report_free(r);
}

#define DENY(ts, client, host)                                                                     \
    ts " ev=tunnel client=" client " user=alice roles=- method=CONNECT host=" host " port=443 "    \
       "path=- sni=- platform=facebook category=social rule=social-otherwise action=deny "         \
       "status=403 up=0 down=0 ms=1\n"

static void
test_denial_counted_once(void **state)
{
    (void)state;
    struct report_opts o = opts("user");
    struct report *r = report_new(&o);
    /* A browser retrying a refused CONNECT: three lines, one denial. */
    assert_int_equal(
        feed(r, DENY("2026-11-30T12:31:05.123+00:00", "10.1.2.3:51514", "www.facebook.com") DENY(
                    "2026-11-30T12:31:05.140+00:00", "10.1.2.3:51515", "www.facebook.com")
                    DENY("2026-11-30T12:31:05.998+00:00", "10.1.2.3:51516", "www.facebook.com")),
        0);
    assert_string_equal(dump(r), "alice: 0 0 0 0 1 0\n");
    report_free(r);

    /* Another second, host or client address is another denial; so is
     * the same local second at another offset (clocks gone back). */
    r = report_new(&o);
    assert_int_equal(
        feed(r, DENY("2026-11-30T12:31:05.123+00:00", "10.1.2.3:1", "www.facebook.com") DENY(
                    "2026-11-30T12:31:06.000+00:00", "10.1.2.3:2", "www.facebook.com")
                    DENY("2026-11-30T12:31:06.500+00:00", "10.1.2.3:3", "static.xx.fbcdn.net") DENY(
                        "2026-11-30T12:31:06.500+00:00", "10.1.2.4:3", "static.xx.fbcdn.net")
                        DENY("2026-11-30T12:31:06.500+01:00", "10.1.2.4:3", "static.xx.fbcdn.net")
                            DENY("2026-11-30T12:31:06Z", "[2001:db8::1]:7", "h")
                                DENY("2026-11-30T12:31:06+00:00", "[2001:db8::1]:7", "h")
                                    DENY("2026-11-30T12:31:06.9Z", "[2001:db8::1]:8", "h")
                                        DENY("2026-11-30T12:31:06Z", "2001:db8::1", "h")
                                            DENY("2026-11-30T12:31:06Z", "-", "h")
                                                DENY("2026-11-30T12:31:06Z", "-", "h")),
        0);
    assert_string_equal(dump(r), "alice: 0 0 0 0 7 0\n");
    report_free(r);

    /* Only denials: a warning shown twice is two warnings. */
    r = report_new(&o);
    assert_int_equal(
        feed(r, RQ("2026-11-30T09:03:00Z", "tunnel", "bob", "10.0.0.2:5555", "staff", "linkedin",
                   "social", "warn") RQ("2026-11-30T09:03:00Z", "tunnel", "bob", "10.0.0.2:5556",
                                        "staff", "linkedin", "social", "warn")),
        0);
    assert_string_equal(dump(r), "bob: 0 0 0 0 0 2\n");
    report_free(r);

    /* Many denials: the set of those seen is renewed as it fills, and a
     * repeat is still seen after tens of thousands of other denials. */
    r = report_new(&o);
    char line[512];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 100000; i++) {
            if (pass == 1 && i < 100000 - 30000)
                continue;
            int n = snprintf(line, sizeof(line),
                             "2026-11-30T12:%02d:%02d.5Z ev=request client=10.%d.%d.1:%d user=a "
                             "roles=- host=h%d platform=p category=c action=deny",
                             i / 60 % 60, i % 60, i / 256 % 256, i % 256, pass, i % 7);
            assert_int_equal(report_feed(r, line, (size_t)n), 0);
        }
    assert_string_equal(dump(r), "a: 0 0 0 0 100000 0\n");
    report_free(r);
}

/* ----------------------------------------------------------------- output */

static char *
print(const char *by, enum report_format f, const char *log)
{
    static char *buf;
    size_t len;
    free(buf);
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    struct report_opts o = opts(by);
    struct report *r = report_new(&o);
    feed(r, log);
    assert_int_equal(report_print(r, f, m), 0);
    fclose(m);
    report_free(r);
    return buf;
}

static const char HOSTILE[] =
    U("2026-11-30T09:00:00Z", "alice", "1.1.1.1", "-", "facebook", "c", 12, 345, 6789, 1234567)
        U("2026-11-30T09:00:00Z", "\"b,\\x20\\\"q\\\"\\x20\\\\\\x20\\xc3\\xa9\\x0a\\xff\"",
          "1.1.1.1", "-", "x", "c", 3, 4, 5, 6)
            RQ("2026-11-30T09:00:00Z", "request", "-", "10.0.0.9:1", "-", "facebook", "c", "deny");

static void
test_print_table(void **state)
{
    (void)state;
    assert_string_equal(
        print("user,platform", REPORT_TABLE, HOSTILE),
        "user                                     platform  active_min  requests    up     down"
        "  denials  warns\n"
        "alice                                    facebook          12       345  6789  1234567"
        "        0      0\n"
        "\"b,\\x20\\\"q\\\"\\x20\\\\\\x20\\xc3\\xa9\\x0a\\xff\"  x                  3         4    "
        " 5"
        "        6        0      0\n"
        "10.0.0.9                                 facebook           0         0     0        0"
        "        1      0\n");
    /* No rows: the header alone. */
    assert_string_equal(print("day", REPORT_TABLE, ""),
                        "day  active_min  requests  up  down  denials  warns\n");
    /* Non-ASCII bytes written plainly take one column per character. */
    assert_string_equal(
        print("user", REPORT_TABLE,
              U("2026-11-30T09:00:00Z", "\xc3\xa9t\xc3\xa9", "1.1.1.1", "-", "p", "c", 1, 1, 1, 1)
                  U("2026-11-30T09:00:00Z", "abcd", "1.1.1.1", "-", "p", "c", 0, 1, 1, 1)),
        "user  active_min  requests  up  down  denials  warns\n"
        "\xc3\xa9t\xc3\xa9            1         1   1     1        0      0\n"
        "abcd           0         1   1     1        0      0\n");
}

static void
test_print_csv(void **state)
{
    (void)state;
    assert_string_equal(print("user,platform", REPORT_CSV, HOSTILE),
                        "user,platform,active_min,requests,up,down,denials,warns\n"
                        "alice,facebook,12,345,6789,1234567,0,0\n"
                        "\"b, \"\"q\"\" \\ \xc3\xa9\n\xff\",x,3,4,5,6,0,0\n"
                        "10.0.0.9,facebook,0,0,0,0,1,0\n");
    assert_string_equal(print("hour", REPORT_CSV, ""),
                        "hour,active_min,requests,up,down,denials,warns\n");
}

static void
test_print_json(void **state)
{
    (void)state;
    assert_string_equal(
        print("user,platform", REPORT_JSON, HOSTILE),
        "[\n"
        "  {\"user\": \"alice\", \"platform\": \"facebook\", \"active_min\": 12, "
        "\"requests\": 345, \"up\": 6789, \"down\": 1234567, \"denials\": 0, \"warns\": 0},\n"
        "  {\"user\": \"b, \\\"q\\\" \\\\ \xc3\xa9\\u000a\\ufffd\", \"platform\": \"x\", "
        "\"active_min\": 3, \"requests\": 4, \"up\": 5, \"down\": 6, \"denials\": 0, "
        "\"warns\": 0},\n"
        "  {\"user\": \"10.0.0.9\", \"platform\": \"facebook\", \"active_min\": 0, "
        "\"requests\": 0, \"up\": 0, \"down\": 0, \"denials\": 1, \"warns\": 0}\n"
        "]\n");
    assert_string_equal(print("user", REPORT_JSON, ""), "[]\n");
    /* Overlong forms, surrogates and cut sequences are not UTF-8. */
    assert_string_equal(
        print("user", REPORT_JSON,
              U("2026-11-30T09:00:00Z",
                "\"\\xc0\\xaf\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80\\xe2\\x82\"", "1.1.1.1", "-", "p",
                "c", 1, 1, 1, 1)),
        "[\n  {\"user\": \"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
        "\\ufffd\", \"active_min\": 1, \"requests\": 1, \"up\": 1, \"down\": 1, \"denials\": 0, "
        "\"warns\": 0}\n]\n");
}

static char *
print_html_of(const char *log, size_t top)
{
    static char *buf;
    size_t len;
    free(buf);
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    struct report_opts o;
    memset(&o, 0, sizeof(o));
    o.html = 1;
    o.top = top;
    struct report *r = report_new(&o);
    assert_non_null(r);
    feed(r, log);
    assert_int_equal(report_print(r, REPORT_HTML, m), 0);
    fclose(m);
    report_free(r);
    return buf;
}

#define assert_has(hay, needle)                                                                    \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("no '%s' in:\n%s", (needle), (hay));                                          \
    } while (0)

static void
test_print_html(void **state)
{
    (void)state;
    static char log[8192];
    int n = snprintf(log, sizeof(log), "%s%s", LOG,
                     U("2026-12-01T23:10:00Z", "<script>alert(1)</script>", "1.1.1.1", "-", "x",
                       "c", 1, 1, 1, 1) "2026-11-30T09:01:00Z ev=request client=10.0.0.9:1 user=- "
                                        "roles=- host=h2 rule=\"<b\\x20onload=x>\" platform=p "
                                        "category=c action=deny\n"
                                        "2026-11-30T09:01:00Z ev=request client=10.0.0.9:2 user=- "
                                        "roles=- host=h2 rule=\"<b\\x20onload=x>\" platform=p "
                                        "category=c action=deny\n");
    assert_true(n > 0 && (size_t)n < sizeof(log));
    const char *h = print_html_of(log, 0);
    assert_true(strncmp(h, "<!DOCTYPE html>\n", 16) == 0);
    assert_has(h, "<meta charset=\"utf-8\">");
    assert_has(h, "<style>");
    assert_has(h, "</html>\n");
    /* Values from the log are escaped: nothing in the log makes markup. */
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "<b onload"));
    assert_has(h, "data-user=\"&lt;script&gt;alert(1)&lt;/script&gt;\"");
    assert_has(h, "<td class=\"k\">&lt;script&gt;alert(1)&lt;/script&gt;</td>");
    assert_has(h, "data-rule=\"&lt;b onload=x&gt;\" data-denials=\"1\"");
    /* Totals, and the figures of each chart in data attributes. */
    assert_has(h, "data-total=\"active_min\">28<");
    assert_has(h, "data-total=\"denials\">3<");
    assert_has(h, "data-total=\"warns\">1<");
    assert_has(h, "<tr data-day=\"2026-11-30\" data-platform=\"facebook\" data-active-min=\"10\">");
    assert_has(h, "<tr data-day=\"2026-12-01\" data-platform=\"facebook\" data-active-min=\"7\">");
    assert_has(h, "<tr data-user=\"alice\" data-active-min=\"18\" data-requests=\"180\" "
                  "data-denials=\"0\">");
    assert_has(h, "<tr data-rule=\"r\" data-denials=\"2\">");
    assert_has(h, "<g data-hour=\"09\" data-active-min=\"20\">");
    assert_has(h, "<g data-hour=\"10\" data-active-min=\"7\">");
    assert_has(h, "<g data-hour=\"23\" data-active-min=\"1\">");
    assert_has(h, "<g data-hour=\"00\" data-active-min=\"0\">");
    assert_has(h, "From 2026-11-30 09:01 to 2026-12-01 23:10");
    /* Days in order, each with its platforms by active minutes. */
    const char *d1 = strstr(h, "<tbody data-day=\"2026-11-30\">");
    const char *d2 = strstr(h, "<tbody data-day=\"2026-12-01\">");
    assert_true(d1 && d2 && d1 < d2);
    /* No script, no resource from elsewhere. */
    assert_null(strstr(h, "src="));
    assert_null(strstr(h, "href="));
    assert_null(strstr(h, "http"));

    /* Control characters and bytes that are not UTF-8 become U+FFFD. */
    h = print_html_of(HOSTILE, 0);
    assert_has(h, "data-user=\"b, &quot;q&quot; \\ \xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\"");
    /* --top: how many users. */
    h = print_html_of(LOG, 1);
    assert_has(h, "data-user=\"alice\"");
    assert_null(strstr(h, "data-user=\"bob\""));
    assert_has(h, "Top 1 user by");
    /* An empty log still makes a whole page. */
    h = print_html_of("", 0);
    assert_has(h, "Nothing was counted.");
    assert_has(h, "No active minutes.");
    assert_has(h, "No denials.");
    assert_has(h, "</html>\n");

    /* A report not made for the page cannot print it. */
    struct report_opts o = opts("user");
    struct report *r = report_new(&o);
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    assert_int_equal(report_print(r, REPORT_HTML, f), -1);
    fclose(f);
    report_free(r);
}

/* The time a merge of several logs orders lines by: offsets count, the
 * milliseconds are optional, anything else is no time. */
static void
test_line_time(void **state)
{
    (void)state;
    int64_t a, b;
    const char *l1 = "2026-11-30T12:31:05.101+00:00 ev=tunnel";
    const char *l2 = "2026-11-30T13:31:05.100+01:00 ev=tunnel";
    assert_int_equal(report_line_time(l1, strlen(l1), &a), 0);
    assert_int_equal(report_line_time(l2, strlen(l2), &b), 0);
    assert_true(a == b + 1);
    assert_true(a == INT64_C(1796041865101));
    const char *l3 = "2026-03-01T00:00:00-05:30 ev=usage";
    assert_int_equal(report_line_time(l3, strlen(l3), &a), 0);
    assert_true(a == INT64_C(1772343000000));
    static const char *bad[] = {"", "2026-11-30", "2026-11-30 12:31:05+00:00 ev=x",
                                "2026-13-30T12:31:05+00:00 ev=x", "2026-11-30T12:31:05Z ev=x",
                                "2026-11-30T12:31:05.1+00:00 ev=x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(report_line_time(bad[i], strlen(bad[i]), &a), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_tunnel),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_parse_usage),
        cmocka_unit_test(test_parse_other_kinds),
        cmocka_unit_test(test_parse_quoted),
        cmocka_unit_test(test_parse_roundtrip_escape),
        cmocka_unit_test(test_parse_timestamps),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_by),
        cmocka_unit_test(test_parse_when),
        cmocka_unit_test(test_by_user_platform),
        cmocka_unit_test(test_by_each_key),
        cmocka_unit_test(test_by_combinations),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_roles_split),
        cmocka_unit_test(test_since_until),
        cmocka_unit_test(test_sort_and_top),
        cmocka_unit_test(test_many_groups_and_saturation),
        cmocka_unit_test(test_print_table),
        cmocka_unit_test(test_print_csv),
        cmocka_unit_test(test_print_json),
        cmocka_unit_test(test_by_rule_action),
        cmocka_unit_test(test_denial_counted_once),
        cmocka_unit_test(test_print_html),
        cmocka_unit_test(test_line_time),
    };
    return cmocka_run_group_tests_name("report", tests, setup, teardown);
}
