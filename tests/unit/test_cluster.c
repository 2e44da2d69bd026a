/* Unit tests for the pure parts of a pool of gateways: key names and messages
 * (clusterkey.c), the merge of shared counts into the local ones (usage.c) and
 * the [cluster] address syntax (config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "clusterkey.h"
#include "config.h"
#include "usage.h"

/* 2026-11-30 10:01 UTC, as a Unix minute; its UTC day is 20787. */
#define MINUTE (1796032860 / 60)

static void
test_key_names(void **state)
{
    (void)state;
    char k[CLUSTERKEY_MAX];
    assert_int_equal(clusterkey_make(k, sizeof(k), CLUSTERKEY_MINUTES, "alice", "linkedin", MINUTE),
                     (int)strlen("sg:{alice}:m:linkedin:20787"));
    assert_string_equal(k, "sg:{alice}:m:linkedin:20787");
    clusterkey_make(k, sizeof(k), CLUSTERKEY_RULE_MINUTES, "10.1.2.3", "social-quota", MINUTE);
    assert_string_equal(k, "sg:{10.1.2.3}:r:social-quota:20787");
    clusterkey_make(k, sizeof(k), CLUSTERKEY_QUOTA, "alice", "social-quota", 20787);
    assert_string_equal(k, "sg:{alice}:q:social-quota:20787");
    clusterkey_make(k, sizeof(k), CLUSTERKEY_CONTINUE, "alice", "youtube", 0);
    assert_string_equal(k, "sg:{alice}:w:youtube");
    /* the minute's bit in its day: 10:01 is minute 601 */
    assert_int_equal(clusterkey_bit(MINUTE), 601);
    assert_int_equal(clusterkey_bit(MINUTE - 601), 0);
    assert_int_equal(clusterkey_bit(MINUTE - 602), 1439);
    assert_int_equal(clusterkey_quota_ttl(0), 2 * 86400);
    assert_int_equal(clusterkey_quota_ttl(1), 8 * 86400);
}

static void
test_key_refusals(void **state)
{
    (void)state;
    char k[CLUSTERKEY_MAX], small[16];
    /* a brace would move the hash tag; a control byte would split a message */
    assert_int_equal(clusterkey_make(k, sizeof(k), CLUSTERKEY_QUOTA, "al}ice", "r", 1), -1);
    assert_int_equal(clusterkey_make(k, sizeof(k), CLUSTERKEY_QUOTA, "alice", "r{", 1), -1);
    assert_int_equal(clusterkey_make(k, sizeof(k), CLUSTERKEY_QUOTA, "al\x1fice", "r", 1), -1);
    assert_int_equal(clusterkey_make(k, sizeof(k), CLUSTERKEY_QUOTA, "", "r", 1), -1);
    assert_int_equal(clusterkey_make(k, sizeof(k), CLUSTERKEY_MINUTES, "alice", "p", -1), -1);
    assert_int_equal(clusterkey_make(small, sizeof(small), CLUSTERKEY_QUOTA, "alice", "rule", 1),
                     -1);
}

static void
test_messages(void **state)
{
    (void)state;
    char m[600];
    struct clusterkey_msg msg;
    int n = clusterkey_msg_quota_prefix(m, sizeof(m), "alice", "social-quota", 20787);
    assert_true(n > 0);
    strcat(m, "\x1f"
              "17"); /* what the script appends */
    assert_int_equal(clusterkey_msg_parse(m, strlen(m), &msg), 0);
    assert_int_equal(msg.kind, 'q');
    assert_string_equal(msg.identity, "alice");
    assert_string_equal(msg.name, "social-quota");
    assert_int_equal(msg.period, 20787);
    assert_int_equal(msg.minutes, 17);

    n = clusterkey_msg_continue(m, sizeof(m), "10.0.0.7", "youtube", 1796036460);
    assert_int_equal(clusterkey_msg_parse(m, (size_t)n, &msg), 0);
    assert_int_equal(msg.kind, 'w');
    assert_string_equal(msg.identity, "10.0.0.7");
    assert_string_equal(msg.name, "youtube");
    assert_int_equal(msg.until, 1796036460);

    static const char *const bad[] = {
        "",
        "q",
        "x\x1f"
        "a\x1f"
        "b\x1f"
        "1",
        "q\x1f"
        "a\x1f"
        "b\x1f"
        "1", /* no count */
        "q\x1f"
        "a\x1f"
        "b\x1f"
        "1\x1f"
        "-3",
        "q\x1f\x1f"
        "b\x1f"
        "1\x1f"
        "2",
        "w\x1f"
        "a\x1f"
        "b\x1f"
        "x",
        "w\x1f"
        "a\x1f"
        "b\x1f"
        "1\x1f"
        "2",
        "q\x1f"
        "a\x1f"
        "b\x1f"
        "1\x1f"
        "99999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(clusterkey_msg_parse(bad[i], strlen(bad[i]), &msg), -1);
    /* a NUL inside is no name */
    assert_int_equal(clusterkey_msg_parse("w\x1f"
                                          "a\0b\x1f"
                                          "p\x1f"
                                          "1",
                                          9, &msg),
                     -1);
}

/* The shared count and the local one meet: the larger wins within a period,
 * a later period replaces, an earlier one is ignored; a minute synced is not
 * counted again locally (an outage starting in that minute). */
static void
test_merge(void **state)
{
    (void)state;
    usage_reset();
    int crossed;
    /* counted locally during an outage: 2 minutes */
    usage_quota_mark("alice", "q", 100, MINUTE, 10, &crossed);
    usage_quota_mark("alice", "q", 100, MINUTE + 1, 10, &crossed);
    assert_int_equal(usage_quota_used("alice", "q", 100), 2);
    assert_int_equal(usage_quota_shared("alice", "q", 100), 0);
    /* Redis knew 1 before: the local count holds until the merge brings more */
    assert_int_equal(usage_quota_sync("alice", "q", 100, 1, -1), 2);
    assert_int_equal(usage_quota_shared("alice", "q", 100), 1);
    assert_int_equal(usage_quota_sync("alice", "q", 100, 4, -1), 4);
    assert_int_equal(usage_quota_used("alice", "q", 100), 4);
    /* an older message arriving late changes nothing */
    assert_int_equal(usage_quota_sync("alice", "q", 100, 3, -1), 4);
    assert_int_equal(usage_quota_sync("alice", "q", 99, 9, -1), 0);
    assert_int_equal(usage_quota_used("alice", "q", 100), 4);
    /* a new day replaces */
    assert_int_equal(usage_quota_sync("alice", "q", 101, 1, MINUTE + 1440), 1);
    assert_int_equal(usage_quota_used("alice", "q", 100), 0);
    /* the minute synced is counted already: local counting skips it */
    assert_int_equal(usage_quota_mark("alice", "q", 101, MINUTE + 1440, 10, &crossed), 1);
    assert_int_equal(usage_quota_mark("alice", "q", 101, MINUTE + 1441, 10, &crossed), 2);
    /* a count for someone never seen here */
    assert_int_equal(usage_quota_sync("bob", "q", 101, 7, -1), 7);
    assert_int_equal(usage_quota_used("bob", "q", 101), 7);

    /* Continues: the later expiry wins */
    usage_continue_merge("bob", "youtube", 500);
    usage_continue_merge("bob", "youtube", 400);
    assert_true(usage_continue_ok("bob", "youtube", 450));
    assert_false(usage_continue_ok("bob", "youtube", 500));

    /* the generation an identity was read in */
    assert_int_equal(usage_sync_get("carol"), 0);
    usage_sync_set("carol", 3);
    assert_int_equal(usage_sync_get("carol"), 3);
    usage_reset();
}

static void
test_thresholds(void **state)
{
    (void)state;
    assert_int_equal(usage_threshold(8, 10), 80);
    assert_int_equal(usage_threshold(9, 10), 0);
    assert_int_equal(usage_threshold(10, 10), 100);
    assert_int_equal(usage_threshold(11, 10), 0);
    assert_int_equal(usage_threshold(1, 1), 100);
    assert_int_equal(usage_threshold(4, 5), 80);
    assert_int_equal(usage_threshold(3, 0), 0);
}

static void
test_redis_address(void **state)
{
    (void)state;
    char host[108];
    int port;
    const char *err = NULL;
    assert_int_equal(config_parse_redis("127.0.0.1:6379", host, sizeof(host), &port, &err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6379);
    assert_int_equal(config_parse_redis("[::1]:6380", host, sizeof(host), &port, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 6380);
    assert_int_equal(config_parse_redis("/run/redis/redis.sock", host, sizeof(host), &port, &err),
                     0);
    assert_string_equal(host, "/run/redis/redis.sock");
    assert_int_equal(port, 0);
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "redis.lan:6379",  ":6379", "[::1]",
        "[::1:6379", "::1:6379",    "[10.0.0.1]:6379", "127.0.0.1:63x79", "",      "127.0.0.1:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        assert_int_equal(config_parse_redis(bad[i], host, sizeof(host), &port, &err), -1);
        assert_non_null(err);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(config_parse_redis(longpath, host, sizeof(host), &port, &err), -1);
}

struct flushed {
    unsigned n, active_min, today_min;
};

static void
collect(void *arg, const struct usage_row *r)
{
    struct flushed *f = arg;
    f->n++;
    f->active_min = r->active_min;
    f->today_min = r->today_min;
}

/* A minute another gateway of the pool saw first leaves this gateway's
 * interval (active_min), not its today_min; only the minute just counted,
 * and not once the interval was written. */
static void
test_activity_seen_elsewhere(void **state)
{
    (void)state;
    usage_reset();
    struct usage_row who = {.client = "10.1.2.3", .platform = "linkedin"};
    assert_int_equal(usage_activity(&who, 20787, MINUTE, 0, 0, 0), 1);
    assert_int_equal(usage_activity(&who, 20787, MINUTE + 1, 0, 0, 0), 1);
    usage_activity_seen(NULL, "10.1.2.3", "linkedin", MINUTE); /* not the last: kept */
    usage_activity_seen(NULL, "10.1.2.3", "linkedin", MINUTE + 1);
    usage_activity_seen(NULL, "10.1.2.9", "linkedin", MINUTE + 1); /* someone else */
    struct flushed f = {0};
    usage_interval_flush(20787, collect, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.active_min, 1);
    assert_int_equal(f.today_min, 2);
    /* written already: a late answer changes nothing */
    assert_int_equal(usage_activity(&who, 20787, MINUTE + 2, 1, 10, 10), 1);
    f = (struct flushed){0};
    usage_interval_flush(20787, collect, &f);
    assert_int_equal(f.active_min, 1);
    usage_activity_seen(NULL, "10.1.2.3", "linkedin", MINUTE + 2);
    f = (struct flushed){0};
    usage_interval_flush(20787, collect, &f);
    assert_int_equal(f.n, 0);
    usage_reset();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_key_refusals),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_redis_address),
        cmocka_unit_test(test_activity_seen_elsewhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
