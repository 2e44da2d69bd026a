/* Unit tests for proxy/helper.c, the pool of helper processes: real
 * children from small sh scripts, answers delivered in the test's own
 * event base. One request at a time and the concurrency protocol, the
 * cache, pins that keep a negotiate exchange on one child, a child that
 * dies (retried once; a pinned exchange is lost), a hung child (timeout),
 * a cancelled request, and a stop that leaves no child behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "helper.h"

static char dir[] = "/tmp/sg-helper-test-XXXXXX";
static struct event_base *base;

static const char *
script(const char *name, const char *body)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s", body);
    fclose(f);
    chmod(p, 0755);
    return p;
}

struct got {
    int done;
    struct helper_answer a; /* result and a copy of user/token */
    char user[64], token[64];
    enum helper_code code;
};

static void
on_done(void *arg, const struct helper_answer *a)
{
    struct got *g = arg;
    g->done++;
    g->a.result = a->result;
    g->code = a->reply.code;
    snprintf(g->user, sizeof(g->user), "%s", a->reply.user ? a->reply.user : "");
    snprintf(g->token, sizeof(g->token), "%s", a->reply.token ? a->reply.token : "");
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

/* Runs the loop until every got[i].done or timeout_ms. */
static void
wait_all(struct got *g, size_t n, int timeout_ms)
{
    struct timeval tick = {0, 10000};
    struct event *t = event_new(base, -1, EV_PERSIST, stop_cb, NULL);
    event_add(t, &tick);
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += g[i].done > 0;
        if (done == n)
            break;
        event_base_dispatch(base);
    }
    event_free(t);
}

static void
configure(enum helper_kind kind, const char *cmd, int children, uint64_t timeout_ms)
{
    struct helper_spec specs[HELPER_KINDS] = {{0}};
    specs[kind].cmdline = cmd;
    specs[kind].children = children;
    specs[kind].ttl = 60;
    specs[kind].timeout_ms = timeout_ms;
    char err[128];
    assert_int_equal(helpers_configure(specs, err, sizeof(err)), 0);
}

static int
setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    base = event_base_new();
    assert_non_null(base);
    assert_int_equal(helpers_start(), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    helpers_stop();
    event_base_free(base);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

/* Basic helper, one question at a time, answers cached. */
static void
test_basic_and_cache(void **state)
{
    (void)state;
    const char *h = script("basic.sh", "while read -r u p; do\n"
                                       "  if [ \"$p\" = right ]; then echo \"OK user=$u\";\n"
                                       "  else echo 'ERR message=\"no such\"'; fi\n"
                                       "done\n");
    configure(HELPER_BASIC, h, 2, 5000);
    assert_true(helper_configured(HELPER_BASIC));
    assert_false(helper_configured(HELPER_GROUP));
    struct got g[4] = {{0}};
    const char *lines[] = {"alice right\n", "bob wrong\n", "carol right\n", "dave wrong\n"};
    for (int i = 0; i < 4; i++)
        assert_non_null(
            helper_submit(base, HELPER_BASIC, lines[i], HELPER_F_CACHE, NULL, on_done, &g[i]));
    wait_all(g, 4, 5000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g[i].done, 1);
        assert_int_equal(g[i].a.result, HELPER_ANSWER);
        assert_int_equal(g[i].code, i % 2 ? HELPER_CODE_ERR : HELPER_CODE_OK);
    }
    assert_string_equal(g[2].user, "carol");
    struct helper_answer a;
    assert_int_equal(helper_cached(HELPER_BASIC, "alice right\n", &a), 1);
    assert_int_equal(helper_verdict(&a), 1);
    helper_answer_free(&a);
    assert_int_equal(helper_cached(HELPER_BASIC, "bob wrong\n", &a), 1);
    assert_int_equal(helper_verdict(&a), 0);
    assert_string_equal(a.reply.message, "no such");
    helper_answer_free(&a);
    assert_int_equal(helper_cached(HELPER_BASIC, "alice wrong\n", &a), 0);
    /* no pool of that kind */
    errno = 0;
    assert_null(helper_submit(base, HELPER_GROUP, "a b\n", 0, NULL, on_done, &g[0]));
    assert_int_equal(errno, ESRCH);
    struct helper_stats st;
    helper_stats(HELPER_BASIC, &st);
    assert_int_equal(st.requests, 4);
    assert_int_equal(st.cache_hits, 2);
}

/* concurrency=N: channel IDs, answered out of order. */
static void
test_concurrency(void **state)
{
    (void)state;
    /* Holds the first question and answers it after the second. */
    const char *h = script("conc.sh", "read -r id1 u1 p1\n"
                                      "read -r id2 u2 p2\n"
                                      "echo \"$id2 OK user=$u2\"\n"
                                      "echo \"$id1 ERR\"\n"
                                      "while read -r id u p; do echo \"$id OK user=$u\"; done\n");
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "concurrency=4 %s", h);
    configure(HELPER_BASIC, cmd, 1, 5000);
    struct got g[3] = {{0}};
    assert_non_null(helper_submit(base, HELPER_BASIC, "first x\n", 0, NULL, on_done, &g[0]));
    assert_non_null(helper_submit(base, HELPER_BASIC, "second x\n", 0, NULL, on_done, &g[1]));
    assert_non_null(helper_submit(base, HELPER_BASIC, "third x\n", 0, NULL, on_done, &g[2]));
    wait_all(g, 3, 5000);
    assert_int_equal(g[0].code, HELPER_CODE_ERR);
    assert_int_equal(g[1].code, HELPER_CODE_OK);
    assert_string_equal(g[1].user, "second");
    assert_string_equal(g[2].user, "third");
}

/* A negotiate exchange stays on the child that answered TT. */
static void
test_pins(void **state)
{
    (void)state;
    /* YR: TT with this process's pid; KK: AF naming the pid again. */
    const char *h = script("nego.sh", "while read -r cmd tok; do\n"
                                      "  case $cmd in\n"
                                      "  YR) echo \"TT $$\";;\n"
                                      "  KK) echo \"AF = u$$\";;\n"
                                      "  *) echo BH;;\n"
                                      "  esac\n"
                                      "done\n");
    configure(HELPER_NEGOTIATE, h, 3, 5000);
    for (int round = 0; round < 3; round++) {
        struct helper_pin *pin = helper_pin_new(HELPER_NEGOTIATE);
        assert_non_null(pin);
        struct got g = {0};
        assert_non_null(
            helper_submit(base, HELPER_NEGOTIATE, "YR abc\n", HELPER_F_CACHE, pin, on_done, &g));
        wait_all(&g, 1, 5000);
        assert_int_equal(g.code, HELPER_CODE_TT);
        char want[80];
        snprintf(want, sizeof(want), "u%s", g.token);
        /* Other exchanges in between go to other children. */
        struct got o[2] = {{0}};
        assert_non_null(helper_submit(base, HELPER_NEGOTIATE, "YR zzz\n", 0, NULL, on_done, &o[0]));
        assert_non_null(helper_submit(base, HELPER_NEGOTIATE, "YR yyy\n", 0, NULL, on_done, &o[1]));
        wait_all(o, 2, 5000);
        if (strcmp(o[0].token, g.token) == 0 || strcmp(o[1].token, g.token) == 0)
            fail_msg("round %d: pinned child %s served others (%s, %s)", round, g.token, o[0].token,
                     o[1].token);
        struct got k = {0};
        assert_non_null(helper_submit(base, HELPER_NEGOTIATE, "KK def\n", 0, pin, on_done, &k));
        wait_all(&k, 1, 5000);
        assert_int_equal(k.code, HELPER_CODE_OK);
        assert_string_equal(k.user, want);
        helper_pin_free(pin);
    }
    /* The negotiate path is never cached. */
    struct helper_answer a;
    assert_int_equal(helper_cached(HELPER_NEGOTIATE, "YR abc\n", &a), 0);
}

/* A child that dies: its question is asked once more; a pinned
 * exchange on it is lost. */
static void
test_child_dies(void **state)
{
    (void)state;
    char body[600];
    snprintf(body, sizeof(body),
             "while read -r cmd tok; do\n"
             "  if [ \"$tok\" = die ] && [ ! -e %s/died ]; then touch %s/died; exit 3; fi\n"
             "  if [ \"$tok\" = always ]; then exit 4; fi\n"
             "  case $cmd in YR) echo \"TT $$\";; *) echo \"AF = u$$\";; esac\n"
             "done\n",
             dir, dir);
    const char *h = script("dies.sh", body);
    configure(HELPER_NEGOTIATE, h, 2, 5000);
    struct got g = {0};
    assert_non_null(helper_submit(base, HELPER_NEGOTIATE, "KK die\n", 0, NULL, on_done, &g));
    wait_all(&g, 1, 5000);
    assert_int_equal(g.a.result, HELPER_ANSWER); /* retried on a live child */
    assert_int_equal(g.code, HELPER_CODE_OK);
    struct got f = {0};
    assert_non_null(helper_submit(base, HELPER_NEGOTIATE, "KK always\n", 0, NULL, on_done, &f));
    wait_all(&f, 1, 5000);
    assert_int_equal(f.a.result, HELPER_FAILED); /* died twice */
    /* Pinned: TT, then the child dies with the next leg: lost. */
    struct helper_pin *pin = helper_pin_new(HELPER_NEGOTIATE);
    struct got t = {0}, l = {0};
    assert_non_null(helper_submit(base, HELPER_NEGOTIATE, "YR a\n", 0, pin, on_done, &t));
    wait_all(&t, 1, 5000);
    assert_int_equal(t.code, HELPER_CODE_TT);
    assert_non_null(helper_submit(base, HELPER_NEGOTIATE, "KK always\n", 0, pin, on_done, &l));
    wait_all(&l, 1, 5000);
    assert_int_equal(l.a.result, HELPER_LOST);
    helper_pin_free(pin);
    struct helper_stats st;
    helper_stats(HELPER_NEGOTIATE, &st);
    assert_true(st.restarts >= 3);
}

/* A hung child: a timeout, the child restarted; a cancelled request is
 * never called back. */
static void
test_timeout_and_cancel(void **state)
{
    (void)state;
    const char *h = script("hang.sh", "while read -r u p; do\n"
                                      "  if [ \"$u\" = hang ]; then sleep 30; fi\n"
                                      "  echo OK\n"
                                      "done\n");
    configure(HELPER_GROUP, h, 1, 300);
    struct got g = {0}, c = {0}, after = {0};
    assert_non_null(helper_submit(base, HELPER_GROUP, "hang x\n", 0, NULL, on_done, &g));
    struct helper_req *r = helper_submit(base, HELPER_GROUP, "other x\n", 0, NULL, on_done, &c);
    assert_non_null(r);
    helper_cancel(r);
    wait_all(&g, 1, 5000);
    assert_int_equal(g.a.result, HELPER_TIMEOUT);
    assert_non_null(helper_submit(base, HELPER_GROUP, "after x\n", 0, NULL, on_done, &after));
    wait_all(&after, 1, 5000);
    assert_int_equal(after.a.result, HELPER_ANSWER);
    assert_int_equal(after.code, HELPER_CODE_OK);
    assert_int_equal(c.done, 0);
    struct helper_stats st;
    helper_stats(HELPER_GROUP, &st);
    assert_int_equal(st.timeouts, 1);
    /* A program that cannot be started fails at once, not by timeout. */
    configure(HELPER_GROUP, "/nonexistent/helper", 1, 5000);
    struct got n = {0};
    assert_non_null(helper_submit(base, HELPER_GROUP, "a b\n", 0, NULL, on_done, &n));
    wait_all(&n, 1, 5000);
    assert_int_equal(n.a.result, HELPER_FAILED);
}

/* A child keeps none of the daemon's descriptors (a client socket it held
 * would outlive its connection), close-on-exec or not. */
static void
test_no_inherited_fds(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0); /* not close-on-exec */
    char body[300];
    snprintf(
        body, sizeof(body),
        "while read -r u x; do\n"
        "  if [ -e /proc/$$/fd/%d ] || [ -e /proc/$$/fd/%d ]; then echo ERR; else echo OK; fi\n"
        "done\n",
        p[0], p[1]);
    configure(HELPER_BASIC, script("fds.sh", body), 1, 5000);
    struct got g = {0};
    assert_non_null(helper_submit(base, HELPER_BASIC, "a b\n", 0, NULL, on_done, &g));
    wait_all(&g, 1, 5000);
    assert_int_equal(g.code, HELPER_CODE_OK);
    close(p[0]);
    close(p[1]);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_and_cache),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_pins),
        cmocka_unit_test(test_child_dies),
        cmocka_unit_test(test_timeout_and_cancel),
        cmocka_unit_test(test_no_inherited_fds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
