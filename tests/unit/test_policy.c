/* Unit tests for the policy: proxy/policy.c (roles, schedules, rules,
 * evaluation, lint), proxy/decision.c (one decision from identity, clock
 * and quota usage), proxy/usage.c (quota counters, Continues, the state
 * file) and proxy/local.c (deny, warn and 407 pages, socialgate.local's
 * /continue and /quota). Policies are loaded with rules_load_string; the
 * clock is a struct tm filled in by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "config.h"
#include "decision.h"
#include "diag.h"
#include "htpasswd.h"
#include "local.h"
#include "policy.h"
#include "rules.h"
#include "snapshot.h"
#include "timewin.h"
#include "usage.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A small catalog: two social platforms, one video, one messaging. */
static const char CATALOG[] = "[platform facebook]\n"
                              "category = social\n"
                              "domains = facebook.com, fbcdn.net\n"
                              "[platform linkedin]\n"
                              "category = social\n"
                              "domains = linkedin.com\n"
                              "[platform youtube]\n"
                              "category = video\n"
                              "domains = youtube.com\n"
                              "[platform whatsapp]\n"
                              "category = messaging\n"
                              "domains = whatsapp.com\n";

/* --- helpers ------------------------------------------------------------- */

/* CATALOG followed by policy, in a static buffer. */
static const char *
with_catalog(const char *policy)
{
    static char buf[16384];
    int n = snprintf(buf, sizeof(buf), "%s%s", CATALOG, policy);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return buf;
}

/* 1-based line of the first line of text that contains needle. */
static int
line_of(const char *text, const char *needle)
{
    const char *hit = strstr(text, needle);
    if (hit == NULL)
        fail_msg("'%s' not in the text", needle);
    int line = 1;
    for (const char *p = text; p < hit; p++)
        line += *p == '\n';
    return line;
}

static void
print_diag(const struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        print_message("  diag: %s\n", d->msgs[i]);
}

struct fixture {
    struct rules *rules;
    struct htgroups *groups;
    struct config cfg;
    struct snapshot snap;
};

/* Loads CATALOG + policy (must load without errors and with `warnings`
 * warnings) and an optional group file. */
static void
fx_load_warned(struct fixture *f, const char *policy, const char *groups, size_t warnings)
{
    memset(f, 0, sizeof(*f));
    struct diag d = {0};
    f->rules = rules_load_string(with_catalog(policy), "p.ini", &d);
    print_diag(&d);
    assert_non_null(f->rules);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, warnings);
    diag_free(&d);
    if (groups) {
        f->groups = htgroups_load_string(groups, "groups", &d);
        print_diag(&d);
        assert_non_null(f->groups);
        diag_free(&d);
    }
    f->cfg.auth_realm = (char *)"Corporate gateway";
    for (size_t i = 0; i < sizeof(f->snap.continue_key); i++)
        f->snap.continue_key[i] = (uint8_t)i;
    f->snap.has_continue_key = 1;
    f->snap.cfg = &f->cfg;
    f->snap.rules = f->rules;
    f->snap.groups = f->groups;
}

static void
fx_load(struct fixture *f, const char *policy, const char *groups)
{
    fx_load_warned(f, policy, groups, 0);
}

static void
fx_free(struct fixture *f)
{
    rules_free(f->rules);
    htgroups_free(f->groups);
    memset(f, 0, sizeof(*f));
}

/* "YYYY-MM-DD HH:MM" as a wall-clock struct tm (the weekday is derived
 * from the date by timewin). */
static struct tm
at(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi;
    memset(&tm, 0, sizeof(tm));
    assert_int_equal(sscanf(s, "%d-%d-%d %d:%d", &y, &mo, &d, &h, &mi), 5);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_isdst = -1;
    return tm;
}

static void
make_addr(const char *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    else
        fail_msg("bad address %s", ip);
}

/* What is asked, by whom, when. host "" is unclassified traffic; method
 * and path NULL make it a tunnel. */
struct ask {
    const char *user, *ip, *host, *method, *path, *when;
};

static int
platform_of(const struct fixture *f, const char *host)
{
    struct catalog_match m;
    catalog_classify(f->rules->catalog, host, strlen(host), &m);
    return m.platform;
}

static struct decision
ask(struct fixture *f, const struct ask *a)
{
    struct sockaddr_storage ss;
    if (a->ip)
        make_addr(a->ip, &ss);
    struct tm tm = at(a->when ? a->when : "2026-11-30 10:00");
    struct decision_in in = {
        .snap = &f->snap,
        .user = a->user,
        .auth = a->user ? AUTH_OK : AUTH_NONE,
        .client = a->ip ? (const struct sockaddr *)&ss : NULL,
        .platform = a->host && a->host[0] ? platform_of(f, a->host) : -1,
        .method = a->method,
        .path = a->path,
        .path_len = a->path ? strlen(a->path) : 0,
        .local_tm = &tm,
    };
    struct decision d;
    memset(&d, 0xaa, sizeof(d));
    decision_make(&in, &d);
    return d;
}

static const char *
rule_name(const struct fixture *f, int rule)
{
    const struct policy_rule *r = rule >= 0 ? policy_rule(f->rules->policy, (size_t)rule) : NULL;
    return r ? r->name : "-";
}

/* A table row: the question and the expected rule ("-": none), action
 * and roles. */
struct row {
    struct ask q;
    const char *rule, *action, *roles;
};

static void
check_rows(struct fixture *f, const struct row *rows, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const struct row *w = &rows[i];
        struct decision d = ask(f, &w->q);
        const char *rn = rule_name(f, d.rule);
        const char *an = policy_action_name(d.action);
        if (strcmp(rn, w->rule) != 0 || strcmp(an, w->action) != 0 ||
            (w->roles && strcmp(d.roles, w->roles) != 0)) {
            print_error("row %zu (user=%s ip=%s host=%s %s %s at %s): got rule=%s action=%s "
                        "roles=%s, want rule=%s action=%s roles=%s\n",
                        i, w->q.user ? w->q.user : "-", w->q.ip ? w->q.ip : "-", w->q.host,
                        w->q.method ? w->q.method : "(tunnel)", w->q.path ? w->q.path : "",
                        w->q.when ? w->q.when : "default", rn, an, d.roles, w->rule, w->action,
                        w->roles ? w->roles : "(any)");
            bad++;
        }
    }
    if (bad)
        fail_msg("%d of %zu rows wrong", bad, n);
}

/* Loads CATALOG + policy, which must fail; an error must contain want_fmt
 * (whose one %d, if any, stands for the line of text holding at_line). */
static void
expect_error(const char *policy, const char *want_fmt, const char *at_line)
{
    const char *text = with_catalog(policy);
    char want[512];
    const char *pct = strstr(want_fmt, "%d");
    if (at_line && pct)
        snprintf(want, sizeof(want), "%.*s%d%s", (int)(pct - want_fmt), want_fmt,
                 line_of(text, at_line), pct + 2);
    else
        snprintf(want, sizeof(want), "%s", want_fmt);
    struct diag d = {0};
    struct rules *r = rules_load_string(text, "p.ini", &d);
    if (r != NULL || d.errors == 0) {
        print_diag(&d);
        fail_msg("loaded, but want the error '%s'", want);
    }
    int found = 0;
    for (size_t i = 0; i < d.n; i++)
        if (strstr(d.msgs[i], want) != NULL)
            found = 1;
    if (!found) {
        print_diag(&d);
        fail_msg("no error '%s'", want);
    }
    diag_free(&d);
}

/* Loads CATALOG + policy, which must load; returns the warnings joined
 * by newlines (static). */
static const char *
warnings_of(const char *policy)
{
    static char out[4096];
    struct diag d = {0};
    struct rules *r = rules_load_string(with_catalog(policy), "p.ini", &d);
    print_diag(&d);
    assert_non_null(r);
    assert_int_equal(d.errors, 0);
    out[0] = '\0';
    for (size_t i = 0; i < d.n; i++) {
        strncat(out, d.msgs[i], sizeof(out) - strlen(out) - 1);
        strncat(out, "\n", sizeof(out) - strlen(out) - 1);
    }
    assert_int_equal(d.warnings, d.n);
    diag_free(&d);
    rules_free(r);
    return out;
}

static unsigned
mark(const char *identity, const char *rule, int32_t period, int64_t minute)
{
    int crossed = 0;
    return usage_quota_mark(identity, rule, period, minute, 0, &crossed);
}

/* --- rules: first match, roles, platforms ---------------------------------- */

static const char ROLES_POLICY[] = "[role marketing]\n"
                                   "users = alice\n"
                                   "groups = mkt\n"
                                   "[role hq]\n"
                                   "networks = 10.20.0.0/16, fd00::/8\n"
                                   "[role nobody-here]\n"
                                   "users = zed\n"
                                   "[rule mkt-facebook]\n"
                                   "roles = marketing\n"
                                   "platforms = facebook\n"
                                   "action = allow\n"
                                   "[rule hq-social]\n"
                                   "roles = hq, nobody-here\n"
                                   "categories = social\n"
                                   "action = monitor\n"
                                   "[rule hq-unclassified]\n"
                                   "roles = hq\n"
                                   "platforms = unclassified\n"
                                   "action = deny\n"
                                   "[rule messaging-warn]\n"
                                   "platforms = whatsapp, unclassified\n"
                                   "roles = marketing\n"
                                   "action = warn\n"
                                   "[rule social-deny]\n"
                                   "roles = *\n"
                                   "categories = social\n"
                                   "action = deny\n";

static void
test_first_match_and_roles(void **state)
{
    (void)state;
    struct fixture f;
    fx_load(&f, ROLES_POLICY, "mkt: bob carol\nother: dave\n");
    static const struct row rows[] = {
        /* users */
        {{"alice", "192.0.2.1", "www.facebook.com", "GET", "/", NULL}, "mkt-facebook", "allow",
         "marketing"},
        /* groups */
        {{"bob", "192.0.2.1", "www.facebook.com", "GET", "/", NULL}, "mkt-facebook", "allow",
         "marketing"},
        {{"dave", "192.0.2.1", "www.facebook.com", "GET", "/", NULL}, "social-deny", "deny", "-"},
        /* a group name is not a user name */
        {{"mkt", "192.0.2.1", "www.facebook.com", "GET", "/", NULL}, "social-deny", "deny", "-"},
        /* networks, v4 and v6, anonymous and signed in */
        {{NULL, "10.20.3.4", "www.facebook.com", "GET", "/", NULL}, "hq-social", "monitor", "hq"},
        {{NULL, "fd00::1", "m.facebook.com", NULL, NULL, NULL}, "hq-social", "monitor", "hq"},
        {{"dave", "10.20.3.4", "www.linkedin.com", "GET", "/", NULL}, "hq-social", "monitor",
         "hq"},
        {{NULL, "10.21.0.1", "www.linkedin.com", "GET", "/", NULL}, "social-deny", "deny", "-"},
        /* several roles held; the first rule that matches decides */
        {{"alice", "10.20.3.4", "www.facebook.com", "GET", "/", NULL}, "mkt-facebook", "allow",
         "marketing,hq"},
        {{"carol", "10.20.3.4", "www.linkedin.com", "GET", "/", NULL}, "hq-social", "monitor",
         "marketing,hq"},
        {{"alice", NULL, "www.linkedin.com", "GET", "/", NULL}, "social-deny", "deny",
         "marketing"},
        /* a rule naming several roles matches any of them */
        {{"zed", NULL, "www.linkedin.com", "GET", "/", NULL}, "hq-social", "monitor",
         "nobody-here"},
        /* unclassified: only rules naming it (or no platform at all) */
        {{NULL, "10.20.3.4", "", "GET", "/", NULL}, "hq-unclassified", "deny", "hq"},
        {{NULL, "10.20.3.4", "intranet.example", "GET", "/", NULL}, "hq-unclassified", "deny",
         "hq"},
        {{"alice", NULL, "intranet.example", "GET", "/", NULL}, "messaging-warn", "warn",
         "marketing"},
        {{NULL, "192.0.2.1", "intranet.example", "GET", "/", NULL}, "-", "allow", "-"},
        /* platforms vs categories */
        {{"alice", NULL, "web.whatsapp.com", NULL, NULL, NULL}, "messaging-warn", "warn",
         "marketing"},
        {{NULL, "192.0.2.1", "web.whatsapp.com", NULL, NULL, NULL}, "-", "allow", "-"},
        {{NULL, "192.0.2.1", "www.youtube.com", "GET", "/", NULL}, "-", "allow", "-"},
        {{NULL, "192.0.2.1", "static.fbcdn.net", "GET", "/", NULL}, "social-deny", "deny", "-"},
        /* no client address at all (explain without --ip) */
        {{NULL, NULL, "www.facebook.com", "GET", "/", NULL}, "social-deny", "deny", "-"},
    };
    check_rows(&f, rows, N_ELEM(rows));

    /* The identity is the user, or else the client address. */
    struct ask q = {NULL, "10.20.3.4", "www.facebook.com", "GET", "/", NULL};
    struct decision d = ask(&f, &q);
    assert_string_equal(d.identity, "10.20.3.4");
    q.user = "alice";
    d = ask(&f, &q);
    assert_string_equal(d.identity, "alice");
    q.user = NULL;
    q.ip = "fd00::1";
    d = ask(&f, &q);
    assert_string_equal(d.identity, "fd00::1");

    /* Why each role is held. */
    struct sockaddr_storage ss;
    make_addr("10.20.3.4", &ss);
    struct policy_who who = {"bob", (struct sockaddr *)&ss, f.groups, NULL, 0};
    char why[128];
    const struct policy *pol = f.rules->policy;
    policy_role_reason(pol, 0, &who, why, sizeof(why));
    assert_string_equal(why, "group mkt");
    /* [auth] group_helper: the groups the directory named, no groups file. */
    const char *const in_mkt[] = {"other", "mkt"};
    struct policy_who by_helper = {"bob", NULL, NULL, in_mkt, 2};
    policy_role_reason(pol, 0, &by_helper, why, sizeof(why));
    assert_string_equal(why, "group mkt");
    struct policy_who in_none = {"bob", NULL, NULL, in_mkt, 1};
    policy_role_reason(pol, 0, &in_none, why, sizeof(why));
    assert_string_equal(why, "");
    policy_role_reason(pol, 1, &who, why, sizeof(why));
    assert_string_equal(why, "network 10.20.0.0/16");
    policy_role_reason(pol, 2, &who, why, sizeof(why));
    assert_string_equal(why, "");
    who.user = "alice";
    policy_role_reason(pol, 0, &who, why, sizeof(why));
    assert_string_equal(why, "user alice");
    uint8_t held[3];
    policy_roles(pol, &who, held);
    assert_int_equal(held[0], 1);
    assert_int_equal(held[1], 1);
    assert_int_equal(held[2], 0);
    char txt[64];
    policy_roles_text(pol, held, txt, sizeof(txt));
    assert_string_equal(txt, "marketing,hq");
    memset(held, 0, sizeof(held));
    policy_roles_text(pol, held, txt, sizeof(txt));
    assert_string_equal(txt, "-");
    fx_free(&f);
}

/* A rule without roles is for everyone, like roles = *; no rules at all
 * allow everything with rule -1. */
static void
test_no_rules_and_no_roles_key(void **state)
{
    (void)state;
    struct fixture f;
    fx_load(&f, "", NULL);
    static const struct row none[] = {
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/", NULL}, "-", "allow", "-"},
        {{"alice", NULL, "", NULL, NULL, NULL}, "-", "allow", "-"},
    };
    check_rows(&f, none, N_ELEM(none));
    fx_free(&f);

    fx_load(&f, "[rule everything]\naction = monitor\n", NULL);
    static const struct row all[] = {
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/", NULL}, "everything", "monitor", "-"},
        {{"alice", NULL, "", NULL, NULL, NULL}, "everything", "monitor", "-"},
    };
    check_rows(&f, all, N_ELEM(all));
    fx_free(&f);
}

/* Rules may name schedules and roles defined after them (any file);
 * lists continue on indented lines after a trailing comma. */
static void
test_forward_names_and_continued_lists(void **state)
{
    (void)state;
    struct fixture f;
    fx_load(&f,
            "[rule r]\n"
            "roles = a,\n"
            "    b\n"
            "platforms = facebook,\n"
            "    linkedin\n"
            "methods = GET,\n"
            "    HEAD\n"
            "when = later,\n"
            "    sun\n"
            "action = deny\n"
            "[schedule later]\n"
            "when = mon 09:00-10:00,\n"
            "    tue 09:00-10:00\n"
            "[role a]\n"
            "users = ann\n"
            "[role b]\n"
            "users = ben,\n"
            "    bea\n",
            NULL);
    static const struct row rows[] = {
        {{"ann", NULL, "www.facebook.com", "GET", "/", "2026-11-30 09:30"}, "r", "deny", "a"},
        {{"bea", NULL, "www.linkedin.com", "HEAD", "/", "2026-12-01 09:30"}, "r", "deny", "b"},
        {{"ben", NULL, "www.linkedin.com", "GET", "/", "2026-11-29 20:00"}, "r", "deny", "b"},
        {{"ben", NULL, "www.linkedin.com", "GET", "/", "2026-12-02 09:30"}, "-", "allow", "b"},
        {{"ben", NULL, "www.linkedin.com", "POST", "/", "2026-11-30 09:30"}, "-", "allow", "b"},
        {{"bob", NULL, "www.linkedin.com", "GET", "/", "2026-11-30 09:30"}, "-", "allow", "-"},
        {{"ann", NULL, "www.youtube.com", "GET", "/", "2026-11-30 09:30"}, "-", "allow", "a"},
    };
    check_rows(&f, rows, N_ELEM(rows));
    fx_free(&f);
}

/* --- when: schedules, inline windows, overnight, dates ------------------- */

static void
test_when_windows(void **state)
{
    (void)state;
    struct fixture f;
    fx_load(&f,
            "[schedule lunch]\n"
            "when = mon-fri 12:00-13:30\n"
            "[schedule night]\n"
            "when = 22:00-02:00\n"
            "[schedule weekend-lunch]\n"
            "when = lunch, sat-sun 12:00-14:00\n"
            "except = 2026-12-25\n"
            "[rule lunch-ok]\n"
            "categories = social\n"
            "when = lunch\n"
            "action = allow\n"
            "[rule night-warn]\n"
            "categories = social\n"
            "when = night\n"
            "action = warn\n"
            "[rule inline]\n"
            "categories = social\n"
            "when = sat 10:00-11:00,\n"
            "    2026-12-24\n"
            "action = monitor\n"
            "[rule video-lunch]\n"
            "categories = video\n"
            "when = weekend-lunch\n"
            "action = allow\n"
            "[rule social-deny]\n"
            "categories = social, video\n"
            "action = deny\n",
            NULL);
    /* 2026-11-30 is a Monday, 2026-12-05 a Saturday, 2026-12-25 a Friday. */
    static const struct row rows[] = {
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/", "2026-11-30 12:00"}, "lunch-ok",
         "allow", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/", "2026-11-30 13:29"}, "lunch-ok",
         "allow", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/", "2026-11-30 13:30"}, "social-deny",
         "deny", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/", "2026-11-30 11:59"}, "social-deny",
         "deny", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/", "2026-12-05 12:30"}, "social-deny",
         "deny", NULL},
        /* overnight: belongs to the day it starts on, every day */
        {{NULL, "192.0.2.1", "www.facebook.com", NULL, NULL, "2026-11-30 22:00"}, "night-warn",
         "warn", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", NULL, NULL, "2026-12-01 01:59"}, "night-warn",
         "warn", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", NULL, NULL, "2026-12-01 02:00"}, "social-deny",
         "deny", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", NULL, NULL, "2026-11-29 00:30"}, "night-warn",
         "warn", NULL},
        /* inline windows, continued on an indented line */
        {{NULL, "192.0.2.1", "www.linkedin.com", "GET", "/", "2026-12-05 10:30"}, "inline",
         "monitor", NULL},
        {{NULL, "192.0.2.1", "www.linkedin.com", "GET", "/", "2026-12-05 11:00"}, "social-deny",
         "deny", NULL},
        {{NULL, "192.0.2.1", "www.linkedin.com", "GET", "/", "2026-12-24 09:00"}, "inline",
         "monitor", NULL},
        /* a schedule made of a schedule, with an exception */
        {{NULL, "192.0.2.1", "www.youtube.com", "GET", "/", "2026-11-30 12:15"}, "video-lunch",
         "allow", NULL},
        {{NULL, "192.0.2.1", "www.youtube.com", "GET", "/", "2026-12-05 13:45"}, "video-lunch",
         "allow", NULL},
        {{NULL, "192.0.2.1", "www.youtube.com", "GET", "/", "2026-12-25 12:15"}, "social-deny",
         "deny", NULL},
        {{NULL, "192.0.2.1", "www.youtube.com", "GET", "/", "2026-12-05 14:00"}, "social-deny",
         "deny", NULL},
    };
    check_rows(&f, rows, N_ELEM(rows));
    fx_free(&f);
}

/* --- methods and path_regex: plain HTTP only --------------------------------- */

static void
test_methods_and_path_regex(void **state)
{
    (void)state;
    struct fixture f;
    /* "post" in a rule is read as POST, with a warning (below) */
    fx_load_warned(&f,
                   "[rule fb-post]\n"
                   "platforms = facebook\n"
                   "methods = post, PUT\n"
                   "action = deny\n"
                   "message = Read-only.\n"
                   "[rule fb-groups]\n"
                   "platforms = facebook\n"
                   "path_regex = ^/groups/[0-9]+\n"
                   "action = monitor\n"
                   "[rule fb]\n"
                   "platforms = facebook\n"
                   "action = allow\n",
                   NULL, 1);
    static const struct row rows[] = {
        {{NULL, "192.0.2.1", "www.facebook.com", "POST", "/x", NULL}, "fb-post", "deny", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "PUT", "/x", NULL}, "fb-post", "deny", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/x", NULL}, "fb", "allow", NULL},
        /* methods are case-sensitive on the wire (RFC 9110) */
        {{NULL, "192.0.2.1", "www.facebook.com", "post", "/x", NULL}, "fb", "allow", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/groups/123", NULL}, "fb-groups",
         "monitor", NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/groups/abc", NULL}, "fb", "allow",
         NULL},
        {{NULL, "192.0.2.1", "www.facebook.com", "GET", "/x/groups/1", NULL}, "fb", "allow",
         NULL},
        /* a tunnel has neither: such rules never match it */
        {{NULL, "192.0.2.1", "www.facebook.com", NULL, NULL, NULL}, "fb", "allow", NULL},
        {{"alice", NULL, "m.facebook.com", NULL, NULL, NULL}, "fb", "allow", NULL},
        /* other platforms are not concerned */
        {{NULL, "192.0.2.1", "www.linkedin.com", "POST", "/x", NULL}, "-", "allow", NULL},
    };
    check_rows(&f, rows, N_ELEM(rows));

    /* path_len is honoured: the path need not be NUL-terminated there. */
    struct tm tm = at("2026-11-30 10:00");
    struct decision_in in = {.snap = &f.snap,
                             .platform = platform_of(&f, "www.facebook.com"),
                             .method = "GET",
                             .path = "/groups/1?x",
                             .path_len = 3,
                             .local_tm = &tm};
    struct decision d;
    decision_make(&in, &d);
    assert_string_equal(rule_name(&f, d.rule), "fb");
    in.path_len = 9;
    decision_make(&in, &d);
    assert_string_equal(rule_name(&f, d.rule), "fb-groups");
    fx_free(&f);
}

/* --- which tunnels need decrypting (inspect = auto) ----------------------- */

/* The rule a tunnel is decrypted for ("-": none), asked as ask() asks. */
static const char *
inspect_rule(struct fixture *f, const char *user, const char *ip, const char *host,
             const char *when)
{
    struct sockaddr_storage ss;
    make_addr(ip, &ss);
    struct tm tm = at(when ? when : "2026-11-30 10:00");
    struct decision_in in = {
        .snap = &f->snap,
        .user = user,
        .auth = user ? AUTH_OK : AUTH_NONE,
        .client = (const struct sockaddr *)&ss,
        .platform = host[0] ? platform_of(f, host) : -1,
        .tunnel = 1,
        .local_tm = &tm,
    };
    return rule_name(f, decision_inspect_rule(&in));
}

/* "LinkedIn for everyone, but marketing alone may post": a tunnel is
 * decrypted only where a rule that could decide a request inside it needs
 * the method or the path; roles, platforms, schedules and quotas rule the
 * others out, and a rule that decides every request alike ends the search. */
static void
test_needs_inspection(void **state)
{
    (void)state;
    usage_reset();
    struct fixture f;
    /* (the lint says after-catch-all can never match: one warning) */
    fx_load_warned(&f,
                   "[role marketing]\n"
                   "users = alice\n"
                   "[rule mkt-post]\n"
                   "roles = marketing\n"
                   "platforms = linkedin\n"
                   "methods = POST\n"
                   "action = allow\n"
                   "[rule li-post]\n"
                   "platforms = linkedin\n"
                   "methods = POST, PUT\n"
                   "action = deny\n"
                   "[rule li]\n"
                   "platforms = linkedin\n"
                   "action = allow\n"
                   "[rule fb-lunch-groups]\n"
                   "platforms = facebook\n"
                   "path_regex = ^/groups/\n"
                   "when = mon-fri 12:00-13:00\n"
                   "action = deny\n"
                   "[rule yt-quota-upload]\n"
                   "platforms = youtube\n"
                   "methods = POST\n"
                   "quota = 1m/day\n"
                   "action = monitor\n"
                   "[rule social]\n"
                   "categories = social, video, messaging\n"
                   "action = allow\n"
                   "[rule after-catch-all]\n"
                   "platforms = whatsapp\n"
                   "methods = POST\n"
                   "action = deny\n"
                   "[rule everything]\n"
                   "action = allow\n",
                   NULL, 1);
    /* the marketing rule or, for anyone else, li-post */
    assert_string_equal(inspect_rule(&f, "alice", "192.0.2.1", "www.linkedin.com", NULL),
                        "mkt-post");
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.1", "www.linkedin.com", NULL), "li-post");
    assert_string_equal(inspect_rule(&f, "bob", "192.0.2.1", "www.linkedin.com", NULL), "li-post");
    /* a schedule: only while it holds */
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.1", "www.facebook.com", "2026-11-30 12:30"),
                        "fb-lunch-groups");
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.1", "www.facebook.com", NULL), "-");
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.1", "www.facebook.com", "2026-12-05 12:30"),
                        "-"); /* a Saturday */
    /* a quota: only while it has minutes left */
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.7", "www.youtube.com", NULL),
                        "yt-quota-upload");
    struct tm mon = at("2026-11-30 10:00");
    const struct policy_rule *yq = policy_rule(f.rules->policy, 4);
    assert_string_equal(yq->name, "yt-quota-upload");
    assert_int_equal(mark("192.0.2.7", "yt-quota-upload", decision_period(yq, &mon), 29400000), 1);
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.7", "www.youtube.com", NULL), "-");
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.8", "www.youtube.com", NULL),
                        "yt-quota-upload"); /* another client's minutes */
    /* after a rule that decides every request alike: never reached */
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.1", "www.whatsapp.com", NULL), "-");
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.1", "", NULL), "-");
    /* an opaque tunnel has nothing to read */
    struct sockaddr_storage ss;
    make_addr("192.0.2.1", &ss);
    struct decision_in in = {.snap = &f.snap,
                             .client = (const struct sockaddr *)&ss,
                             .platform = -1,
                             .tunnel = 1,
                             .opaque = 1,
                             .local_tm = &mon};
    assert_int_equal(decision_inspect_rule(&in), -1);
    fx_free(&f);
    usage_reset();

    /* No rule with methods or path_regex: never. */
    fx_load(&f,
            "[rule li]\n"
            "platforms = linkedin\n"
            "action = deny\n",
            NULL);
    assert_string_equal(inspect_rule(&f, NULL, "192.0.2.1", "www.linkedin.com", NULL), "-");
    fx_free(&f);
}

/* A method with lower-case letters is read in upper case and said, once
 * per method, at the line that lists it: request methods are
 * case-sensitive (RFC 9110 9.1), so a request that says "get" is not GET. */
static void
test_methods_lower_case_warned(void **state)
{
    (void)state;
    const char *pol = "[rule r]\n"
                      "platforms = facebook\n"
                      "methods = get, PUT,\n"
                      "    Propfind\n"
                      "action = deny\n";
    const char *text = with_catalog(pol);
    char want[1024];
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: rule 'r': methods = get: read as GET; request methods are "
             "case-sensitive (RFC 9110 9.1) and a request that says 'get' does not match\n"
             "p.ini:%d: warning: rule 'r': methods = Propfind: read as PROPFIND; request methods "
             "are case-sensitive (RFC 9110 9.1) and a request that says 'Propfind' does not "
             "match\n",
             line_of(text, "methods = get"), line_of(text, "Propfind"));
    assert_string_equal(warnings_of(pol), want);
    /* upper case: nothing to say */
    assert_string_equal(warnings_of("[rule r]\nplatforms = facebook\nmethods = GET, M-SEARCH\n"
                                    "action = deny\n"),
                        "");
}

/* --- quotas ------------------------------------------------------------------ */

static void
test_quota_falls_through(void **state)
{
    (void)state;
    usage_reset();
    struct fixture f;
    fx_load(&f,
            "[rule social-quota]\n"
            "categories = social\n"
            "quota = 2m/day\n"
            "action = allow\n"
            "[rule video-week]\n"
            "categories = video\n"
            "quota = 1m/week\n"
            "action = monitor\n"
            "[rule social-deny]\n"
            "categories = social, video\n"
            "action = deny\n",
            NULL);
    const struct policy_rule *q = policy_rule(f.rules->policy, 0);
    const struct policy_rule *wq = policy_rule(f.rules->policy, 1);
    assert_int_equal(q->quota_min, 2);
    assert_int_equal(q->quota_weekly, 0);
    assert_int_equal(wq->quota_min, 1);
    assert_int_equal(wq->quota_weekly, 1);

    struct ask anon = {NULL, "192.0.2.7", "www.facebook.com", "GET", "/", "2026-11-30 10:00"};
    struct ask alice = {"alice", "192.0.2.7", "www.facebook.com", "GET", "/", "2026-11-30 10:00"};
    struct tm mon = at("2026-11-30 10:00");
    int32_t day = decision_period(q, &mon);
    assert_int_equal(day, 20787); /* days since 1970-01-01 */

    struct decision d = ask(&f, &anon);
    assert_string_equal(rule_name(&f, d.rule), "social-quota");
    assert_int_equal(d.quota_used, 0);

    int64_t minute = 29400000; /* any clock minute */
    assert_int_equal(mark("192.0.2.7", "social-quota", day, minute), 1);
    assert_int_equal(mark("192.0.2.7", "social-quota", day, minute), 1); /* same minute */
    d = ask(&f, &anon);
    assert_string_equal(rule_name(&f, d.rule), "social-quota");
    assert_int_equal(d.quota_used, 1);
    assert_int_equal(mark("192.0.2.7", "social-quota", day, minute + 5), 2);
    /* used up: the rule no longer matches, the next one decides */
    d = ask(&f, &anon);
    assert_string_equal(rule_name(&f, d.rule), "social-deny");
    assert_string_equal(policy_action_name(d.action), "deny");
    /* per identity: alice (signed in, same address) still has hers */
    d = ask(&f, &alice);
    assert_string_equal(rule_name(&f, d.rule), "social-quota");
    /* the next day starts over */
    anon.when = "2026-12-01 00:00";
    d = ask(&f, &anon);
    assert_string_equal(rule_name(&f, d.rule), "social-quota");
    assert_int_equal(d.quota_used, 0);
    assert_int_equal(usage_quota_used("192.0.2.7", "social-quota", day), 2);
    assert_int_equal(usage_quota_used("192.0.2.7", "social-quota", day + 1), 0);

    /* weekly: Monday to Sunday */
    struct ask vid = {"bob", NULL, "www.youtube.com", NULL, NULL, "2026-12-01 09:00"};
    struct tm tue = at("2026-12-01 09:00");
    int32_t week = decision_period(wq, &tue);
    assert_int_equal(week, day); /* the Monday */
    d = ask(&f, &vid);
    assert_string_equal(rule_name(&f, d.rule), "video-week");
    mark("bob", "video-week", week, minute);
    vid.when = "2026-12-06 23:59"; /* Sunday */
    d = ask(&f, &vid);
    assert_string_equal(rule_name(&f, d.rule), "social-deny");
    vid.when = "2026-12-07 00:00"; /* Monday */
    d = ask(&f, &vid);
    assert_string_equal(rule_name(&f, d.rule), "video-week");
    fx_free(&f);
    usage_reset();
}

/* --- the one verdict (decision_eval): what the daemon does, and explain prints */

static void
test_verdicts(void **state)
{
    (void)state;
    usage_reset();
    struct fixture f;
    fx_load(&f,
            "[role staff]\n"
            "networks = 10.0.0.0/8\n"
            "[role alices]\n"
            "users = alice\n"
            "[rule staff-video-warn]\n"
            "roles = staff\n"
            "platforms = youtube\n"
            "action = warn\n"
            "[rule alice-social]\n"
            "roles = alices\n"
            "categories = social\n"
            "quota = 1m/day\n"
            "action = allow\n"
            "[rule social-deny]\n"
            "categories = social\n"
            "action = deny\n"
            "[rule messaging-lunch]\n"
            "platforms = whatsapp\n"
            "quota = 1m/day\n"
            "action = allow\n"
            "[rule messaging-deny]\n"
            "platforms = whatsapp\n"
            "action = deny\n",
            NULL);
    struct diag d = {0};
    struct htpasswd *users = htpasswd_load_string("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
                                                  "htpasswd", &d);
    print_diag(&d);
    assert_non_null(users);
    diag_free(&d);
    struct sockaddr_storage staff, other;
    make_addr("10.1.2.3", &staff);
    make_addr("192.0.2.7", &other);
    struct tm tm = at("2026-11-30 10:00");
    int fb = platform_of(&f, "www.facebook.com"), yt = platform_of(&f, "www.youtube.com");
    int wa = platform_of(&f, "web.whatsapp.com");
    struct {
        const char *user;
        enum request_auth auth;
        const struct sockaddr_storage *client;
        int platform, tunnel, local, with_users, required;
        enum verdict want;
        int rule_kept; /* the deciding rule is reported (not -1) */
    } rows[] = {
        /* no [auth]: the policy alone */
        {NULL, AUTH_NONE, &other, fb, 0, 0, 0, 0, VERDICT_DENY_PAGE, 1},
        {NULL, AUTH_NONE, &other, -1, 0, 0, 0, 0, VERDICT_ALLOW, 0},
        {NULL, AUTH_NONE, &staff, yt, 0, 0, 0, 0, VERDICT_WARN_PAGE, 1},
        {NULL, AUTH_NONE, &staff, yt, 1, 0, 0, 0, VERDICT_ALLOW, 1}, /* a tunnel shows no page */
        {NULL, AUTH_NONE, &other, -1, 0, 1, 0, 0, VERDICT_LOCAL, 0},
        /* with [auth]: a denial an anonymous client could change asks who it is */
        {NULL, AUTH_NONE, &other, fb, 0, 0, 1, 0, VERDICT_ASK_AUTH, 0},
        {NULL, AUTH_NONE, &other, -1, 0, 0, 1, 0, VERDICT_ALLOW, 0},
        {NULL, AUTH_NONE, &other, wa, 0, 0, 1, 0, VERDICT_ALLOW, 1},
        {NULL, AUTH_NONE, &other, -1, 0, 0, 1, 1, VERDICT_ASK_AUTH, 0}, /* required = yes */
        {"alice", AUTH_UNCHECKED, &other, fb, 0, 0, 1, 0, VERDICT_CHECK_PASSWORD, 0},
        {"alice", AUTH_FAILED, &other, fb, 0, 0, 1, 0, VERDICT_ASK_AUTH, 0},
        {"alice", AUTH_OK, &other, fb, 0, 0, 1, 1, VERDICT_ALLOW, 1},
        {"bob", AUTH_OK, &other, fb, 0, 0, 1, 1, VERDICT_DENY_PAGE, 1},
    };
    for (size_t i = 0; i < N_ELEM(rows); i++) {
        f.snap.users = rows[i].with_users ? users : NULL;
        f.cfg.auth_required = rows[i].required;
        struct decision_in in = {
            .snap = &f.snap,
            .user = rows[i].user,
            .auth = rows[i].auth,
            .client = (const struct sockaddr *)rows[i].client,
            .platform = rows[i].platform,
            .method = rows[i].tunnel ? NULL : "GET",
            .path = rows[i].tunnel ? NULL : "/",
            .path_len = rows[i].tunnel ? 0 : 1,
            .tunnel = rows[i].tunnel,
            .local = rows[i].local,
            .now = 1796032800,
            .local_tm = &tm,
        };
        struct decision out;
        enum verdict v = decision_eval(&in, &out);
        if (v != rows[i].want)
            fail_msg("row %zu: verdict %s, want %s", i, decision_verdict_name(v),
                     decision_verdict_name(rows[i].want));
        assert_int_equal(out.verdict, v);
        assert_int_equal(out.rule >= 0, rows[i].rule_kept);
    }

    /* A used-up quota that would have allowed: the quota page, not the deny page. */
    f.snap.users = users;
    f.cfg.auth_required = 1;
    const struct policy_rule *q = policy_rule(f.rules->policy, 1);
    int period = decision_period(q, &tm);
    int crossed;
    usage_quota_mark("alice", "alice-social", period, 29400000, 1, &crossed);
    struct decision_in in = {.snap = &f.snap,
                             .user = "alice",
                             .auth = AUTH_OK,
                             .client = (const struct sockaddr *)&other,
                             .platform = fb,
                             .method = "GET",
                             .path = "/",
                             .path_len = 1,
                             .now = 1796032800,
                             .local_tm = &tm};
    struct decision out;
    assert_int_equal(decision_eval(&in, &out), VERDICT_QUOTA_PAGE);
    assert_string_equal(rule_name(&f, out.rule), "social-deny");
    assert_string_equal(rule_name(&f, out.quota_rule), "alice-social");

    /* Sign-in only where it can change the outcome: an anonymous client
     * whose quota is used up, on a platform no role of a user or group
     * opens, gets the quota page with the rule that decided, not a 407. */
    f.cfg.auth_required = 0;
    q = policy_rule(f.rules->policy, 3);
    usage_quota_mark("192.0.2.7", "messaging-lunch", decision_period(q, &tm), 29400000, 1,
                     &crossed);
    in.user = NULL;
    in.auth = AUTH_NONE;
    in.platform = wa;
    assert_int_equal(decision_eval(&in, &out), VERDICT_QUOTA_PAGE);
    assert_string_equal(rule_name(&f, out.rule), "messaging-deny");
    assert_string_equal(rule_name(&f, out.quota_rule), "messaging-lunch");
    assert_int_equal(out.evaluated, 1);
    assert_null(out.reason);
    assert_int_equal(decision_sign_in_helps(&in), 0);
    /* a platform alice's role opens: a 407, signing in can help */
    in.platform = fb;
    assert_int_equal(decision_sign_in_helps(&in), 1);
    assert_int_equal(decision_eval(&in, &out), VERDICT_ASK_AUTH);
    assert_string_equal(out.reason, "auth-required");
    /* without any [auth] file no one can sign in: the denial */
    f.snap.users = NULL;
    assert_int_equal(decision_eval(&in, &out), VERDICT_DENY_PAGE);
    assert_string_equal(rule_name(&f, out.rule), "social-deny");

    /* A Continue recorded for the identity and platform lets the warn through. */
    f.snap.users = NULL;
    f.cfg.auth_required = 0;
    usage_continue_set("10.1.2.3", "youtube", 1796032800 + 600);
    struct decision_in w = {.snap = &f.snap,
                            .client = (const struct sockaddr *)&staff,
                            .platform = yt,
                            .method = "GET",
                            .path = "/",
                            .path_len = 1,
                            .now = 1796032800,
                            .local_tm = &tm};
    assert_int_equal(decision_eval(&w, &out), VERDICT_ALLOW);
    assert_string_equal(policy_action_name(out.action), "warn");
    htpasswd_free(users);
    fx_free(&f);
    usage_reset();
}

/* --- lint: rules that can never match ------------------------------------- */

static void
test_lint_unreachable(void **state)
{
    (void)state;
    const char *pol = "[role mkt]\n"
                      "users = alice\n"
                      "[rule all-social]\n"
                      "categories = social\n"
                      "action = allow\n"
                      "[rule fb-deny]\n"
                      "platforms = facebook\n"
                      "action = deny\n";
    const char *text = with_catalog(pol);
    char want[512];
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: rule 'fb-deny' can never match: rule 'all-social' at p.ini:%d "
             "always decides first\n",
             line_of(text, "[rule fb-deny]"), line_of(text, "[rule all-social]"));
    assert_string_equal(warnings_of(pol), want);

    /* No conditions at all: covers everything after it. */
    pol = "[rule everything]\n"
          "action = monitor\n"
          "[rule video]\n"
          "categories = video\n"
          "action = deny\n";
    text = with_catalog(pol);
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: rule 'video' can never match: rule 'everything' at p.ini:%d "
             "always decides first\n",
             line_of(text, "[rule video]"), line_of(text, "[rule everything]"));
    assert_string_equal(warnings_of(pol), want);

    /* roles = * covers a named role; `when = always` is no condition. */
    pol = "[role mkt]\n"
          "users = alice\n"
          "[rule any]\n"
          "roles = *\n"
          "platforms = facebook, linkedin\n"
          "when = always\n"
          "action = allow\n"
          "[rule mkt-fb]\n"
          "roles = mkt\n"
          "platforms = linkedin\n"
          "action = deny\n";
    text = with_catalog(pol);
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: rule 'mkt-fb' can never match: rule 'any' at p.ini:%d always "
             "decides first\n",
             line_of(text, "[rule mkt-fb]"), line_of(text, "[rule any]"));
    assert_string_equal(warnings_of(pol), want);

    /* Unclassified is covered by a rule naming it. */
    pol = "[rule u]\n"
          "platforms = unclassified, youtube\n"
          "action = allow\n"
          "[rule u2]\n"
          "platforms = unclassified\n"
          "action = deny\n";
    assert_non_null(strstr(warnings_of(pol), "rule 'u2' can never match: rule 'u'"));

    /* No false warnings: the earlier rule has a condition the later one
     * may not meet. */
    static const char *const no_warning[] = {
        /* when */
        "[rule a]\ncategories = social\nwhen = mon-fri 12:00-13:00\naction = allow\n"
        "[rule b]\nplatforms = facebook\naction = deny\n",
        /* quota */
        "[rule a]\ncategories = social\nquota = 30m/day\naction = allow\n"
        "[rule b]\nplatforms = facebook\naction = deny\n",
        /* methods */
        "[rule a]\ncategories = social\nmethods = POST\naction = deny\n"
        "[rule b]\nplatforms = facebook\naction = allow\n",
        /* path_regex */
        "[rule a]\ncategories = social\npath_regex = ^/x\naction = deny\n"
        "[rule b]\nplatforms = facebook\naction = allow\n",
        /* a named role does not cover everyone */
        "[role mkt]\nusers = alice\n"
        "[rule a]\nroles = mkt\ncategories = social\naction = allow\n"
        "[rule b]\nroles = *\nplatforms = facebook\naction = deny\n",
        /* nor another role */
        "[role mkt]\nusers = alice\n[role hq]\nnetworks = 10.0.0.0/8\n"
        "[rule a]\nroles = mkt\ncategories = social\naction = allow\n"
        "[rule b]\nroles = hq\nplatforms = facebook\naction = deny\n",
        /* a platform does not cover its category */
        "[rule a]\nplatforms = facebook\naction = allow\n"
        "[rule b]\ncategories = social\naction = deny\n",
        /* a platform list does not cover everything */
        "[rule a]\nplatforms = facebook\naction = allow\n"
        "[rule b]\naction = deny\n",
        /* other categories */
        "[rule a]\ncategories = video\naction = allow\n"
        "[rule b]\nplatforms = facebook\naction = deny\n",
        /* unclassified is not a category's */
        "[rule a]\ncategories = social, video, messaging\naction = allow\n"
        "[rule b]\nplatforms = unclassified\naction = deny\n",
    };
    for (size_t i = 0; i < N_ELEM(no_warning); i++) {
        const char *w = warnings_of(no_warning[i]);
        if (w[0] != '\0')
            fail_msg("case %zu: unexpected warning %s", i, w);
    }
}

/* --- errors with FILE:LINE ------------------------------------------------- */

static void
test_errors_file_line(void **state)
{
    (void)state;
    expect_error("[rule r]\nroles = staff\naction = allow\n",
                 "p.ini:%d: rule 'r': unknown role 'staff'", "roles = staff");
    expect_error("[role staff]\nusers = a\n[rule r]\nroles = staff,\n  managers\naction = allow\n",
                 "p.ini:%d: rule 'r': unknown role 'managers'", "roles = staff");
    expect_error("[rule r]\nplatforms = facebook, myspace\naction = deny\n",
                 "p.ini:%d: rule 'r': unknown platform 'myspace'", "platforms = facebook");
    expect_error("[rule r]\ncategories = social\naction = deny\n[rule s]\naction = deny\n"
                 "categories = socail\n",
                 "p.ini:%d: rule 's': no platform has category 'socail'", "categories = socail");
    expect_error("[rule r]\nwhen = lunch\naction = allow\n",
                 "p.ini:%d: rule 'r': when = lunch: 'lunch': unknown schedule", "when = lunch");
    /* a schedule may only use schedules defined before it */
    expect_error("[schedule a]\nwhen = b\n[schedule b]\nwhen = mon\n",
                 "p.ini:%d: schedule 'a': when = b:", "when = b");
    expect_error("[schedule s]\nwhen = mon-fri 25:00-26:00\n",
                 "p.ini:%d: schedule 's': when = mon-fri 25:00-26:00:", "when = mon-fri");
    expect_error("[schedule s]\nexcept = mon\n", "p.ini:%d: schedule 's' has no 'when'",
                 "[schedule s]");
    expect_error("[rule r]\nwhen = mon-fry\naction = allow\n", "p.ini:%d: rule 'r': when = mon-fry",
                 "when = mon-fry");
    expect_error("[rule r]\npath_regex = /a(b\naction = deny\n",
                 "p.ini:%d: path_regex: bad regex at offset", "path_regex");
    expect_error("[rule r]\naction = block\n",
                 "p.ini:%d: action = block: expected allow, deny, warn or monitor", "action =");
    expect_error("[rule r]\ncategories = social\n",
                 "p.ini:%d: rule 'r' has no action", "[rule r]");
    expect_error("[rule r]\naction = allow\nquota = 30m/month\n", "p.ini:%d: quota = 30m/month:",
                 "quota =");
    expect_error("[rule r]\naction = deny\nquota = 30m/day\n",
                 "p.ini:%d: rule 'r': a quota only makes sense on allow, warn or monitor",
                 "[rule r]");
    expect_error("[rule r]\naction = warn\nwarn_for = soon\n", "p.ini:%d: warn_for = soon:",
                 "warn_for");
    expect_error("[rule r]\naction = warn\nwarn_for = 0\n", "p.ini:%d: warn_for = 0: must be",
                 "warn_for");
    expect_error("[rule r]\naction = allow\nplatform = facebook\n",
                 "p.ini:%d: unknown key 'platform' in a rule", "platform =");
    expect_error("[rule r]\naction = allow\n[rule s]\naction = allow\n[rule r]\naction = deny\n",
                 "p.ini:%d: duplicate rule 'r' (first at p.ini:13)", "[rule r]\naction = deny");
    expect_error("[role r]\nusers = a\n[role s]\nusers = b\n[role r]\nusers = c\n",
                 "p.ini:%d: duplicate role 'r' (first at p.ini:13)", "[role r]\nusers = c");
    expect_error("[schedule r]\nwhen = mon\n[role s]\nusers = b\n[schedule r]\nwhen = tue\n",
                 "p.ini:%d: duplicate schedule 'r' (first at p.ini:13)", "[schedule r]\nwhen = tue");
    expect_error("[role r]\nnetworks = 10.0.0.0/33\n", "p.ini:%d: networks = 10.0.0.0/33",
                 "networks");
    expect_error("[rule Bad]\naction = allow\n", "p.ini:%d: [rule Bad]: a rule needs a name",
                 "[rule Bad]");
    expect_error("[rule r]\naction = allow\naction = deny\n", "p.ini:%d: duplicate key 'action'",
                 "action = deny");
    /* empty conditions would mean everything (or nobody): refused */
    expect_error("[rule r]\nplatforms =\naction = deny\n",
                 "p.ini:%d: platforms: empty value (leave the key out for no condition)",
                 "platforms =");
    expect_error("[rule r]\ncategories = ,\naction = deny\n", "p.ini:%d: categories: empty value",
                 "categories =");
    expect_error("[rule r]\nroles =\naction = deny\n",
                 "p.ini:%d: roles: empty value (leave the key out or write roles = * for everyone)",
                 "roles =");
    expect_error("[rule r]\nmethods =\naction = deny\n", "p.ini:%d: methods: empty value",
                 "methods =");
    expect_error("[rule r]\npath_regex =\naction = deny\n", "p.ini:%d: path_regex: empty value",
                 "path_regex =");
    expect_error("[rule r]\nwhen =\naction = deny\n", "p.ini:%d: rule 'r': when = : empty",
                 "when =");
    expect_error("[rule r]\naction = allow\n  deny\n", "p.ini:%d: action: only lists continue",
                 "  deny");
}

/* A long message goes on over indented lines, joined by a space. */
static void
test_message_continues(void **state)
{
    (void)state;
    struct fixture f;
    fx_load(&f,
            "[rule r]\ncategories = social\naction = deny\n"
            "message = Social media is open 12:00-13:30\n"
            "  and after 17:30; ask the IT helpdesk\n"
            "  for an exception.\n",
            NULL);
    assert_string_equal(policy_rule(f.rules->policy, 0)->message,
                        "Social media is open 12:00-13:30 and after 17:30; ask the IT helpdesk "
                        "for an exception.");
    fx_free(&f);
}

/* Loads text (a whole rules file, no CATALOG) and returns every message
 * joined by newlines (static); the load must fail. */
static const char *
errors_of(const char *text, size_t *errors)
{
    static char out[4096];
    struct diag d = {0};
    struct rules *r = rules_load_string(text, "p.ini", &d);
    assert_null(r);
    out[0] = '\0';
    for (size_t i = 0; i < d.n; i++) {
        strncat(out, d.msgs[i], sizeof(out) - strlen(out) - 1);
        strncat(out, "\n", sizeof(out) - strlen(out) - 1);
    }
    *errors = d.errors;
    diag_free(&d);
    return out;
}

/* One check reports every problem, each once: the names in rules are
 * resolved after errors in the files too, and what uses a broken schedule
 * or platform is not reported again. */
static void
test_every_problem_once(void **state)
{
    (void)state;
    size_t n;
    /* an unknown key in one rule, an unknown role in a later one */
    const char *out = errors_of(with_catalog("[rule a]\nbogus = 1\naction = allow\n"
                                             "[rule b]\nroles = nobody\naction = deny\n"),
                                &n);
    print_message("%s", out);
    assert_int_equal(n, 2);
    assert_non_null(strstr(out, "p.ini:14: unknown key 'bogus' in a rule"));
    assert_non_null(strstr(out, "p.ini:17: rule 'b': unknown role 'nobody'"));

    /* a broken schedule: one message, none for the rules that use it */
    out = errors_of(with_catalog("[schedule lunch]\nwhen = mon-fri 25:00-26:00\n"
                                 "[schedule later]\nwhen = lunch, sat\n"
                                 "[rule a]\nwhen = lunch\naction = allow\n"
                                 "[rule b]\nwhen = lunch, sun\naction = deny\n"
                                 "[rule c]\nwhen = lunch, brunch\naction = deny\n"),
                    &n);
    print_message("%s", out);
    assert_int_equal(n, 2);
    assert_non_null(strstr(out, "p.ini:14: schedule 'lunch': when = mon-fri 25:00-26:00:"));
    assert_null(strstr(out, "'lunch': unknown schedule"));
    /* another problem in the same expression is still found */
    assert_non_null(strstr(out, "p.ini:24: rule 'c': when = lunch, brunch: 'brunch': unknown "
                                "schedule"));
    /* a schedule without when is broken the same way */
    out = errors_of(with_catalog("[schedule s]\nexcept = mon\n[rule a]\nwhen = s\naction = allow\n"),
                    &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(out, "schedule 's' has no 'when'"));

    /* a refused category is not also "no category" */
    out = errors_of("[platform p]\ncategory = Social Media\ndomains = p.example\n", &n);
    print_message("%s", out);
    assert_int_equal(n, 1);
    assert_non_null(strstr(out, "p.ini:2: category = Social Media: expected a name"));

    /* the can-never-match lint waits for a clean load: it would judge rules
     * only partly read */
    out = errors_of(with_catalog("[rule all]\naction = deny\n[rule b]\naction = allow\n"
                                 "bogus = 1\n"),
                    &n);
    assert_int_equal(n, 1);
    assert_null(strstr(out, "can never match"));
}

/* A role's users and groups against the [auth] files. */
static void
test_role_identities(void **state)
{
    (void)state;
    static const char policy[] = "[role mkt]\n"
                                 "users = alice, zed\n"
                                 "groups = marketing, sales, empty\n"
                                 "[role net]\n"
                                 "networks = 10.0.0.0/8\n"
                                 "[rule r]\nroles = mkt, net\naction = allow\n";
    struct diag d = {0};
    struct rules *r = rules_load_string(with_catalog(policy), "p.ini", &d);
    assert_non_null(r);
    struct htpasswd *users =
        htpasswd_load_string("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "u.htpasswd", &d);
    struct htgroups *groups = htgroups_load_string("marketing: alice\nempty:\n", "g.groups", &d);
    assert_non_null(users);
    assert_non_null(groups);
    assert_int_equal(d.n, 0);
    int lu = line_of(with_catalog(policy), "users ="), lg = line_of(with_catalog(policy), "groups =");
    char want[512];

    /* both files: names they lack are warnings, naming the file read */
    struct policy_idfiles ids = {"proxy.ini", "/etc/sg/u.htpasswd", users, "/etc/sg/g.groups",
                                 groups, 0, 0};
    policy_check_identities(r->policy, &ids, &d);
    print_diag(&d);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 2);
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: role 'mkt': user 'zed' is not in /etc/sg/u.htpasswd: the role "
             "does not match that name until it is added there",
             lu);
    assert_string_equal(d.msgs[0], want);
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: role 'mkt': group 'sales' is not in the groups file "
             "/etc/sg/g.groups: the role does not match by it until it is added there",
             lg);
    assert_string_equal(d.msgs[1], want);
    diag_free(&d);

    /* no files at all: the role can never match by them (it may still by
     * network), a warning */
    struct policy_idfiles none = {"proxy.ini", NULL, NULL, NULL, NULL, 0, 0};
    policy_check_identities(r->policy, &none, &d);
    print_diag(&d);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 2);
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: role 'mkt': users = alice, zed, but proxy.ini sets no [auth] htpasswd, "
             "basic_helper or negotiate_helper: no one signs in, so the role can never match by user",
             lu);
    assert_string_equal(d.msgs[0], want);
    snprintf(want, sizeof(want),
             "p.ini:%d: warning: role 'mkt': groups = marketing, sales, empty, but proxy.ini sets no "
             "[auth] groups file or group_helper: the role can never match by group",
             lg);
    assert_string_equal(d.msgs[1], want);
    diag_free(&d);

    /* a file that is configured but failed to load was reported itself */
    struct policy_idfiles failed = {"proxy.ini", "/etc/sg/u.htpasswd", NULL, "/etc/sg/g.groups",
                                    NULL, 0, 0};
    policy_check_identities(r->policy, &failed, &d);
    assert_int_equal(d.n, 0);

    /* basic_helper and group_helper answer for any name: nothing to warn */
    struct policy_idfiles helpers = {"proxy.ini", NULL, NULL, NULL, NULL, 1, 1};
    policy_check_identities(r->policy, &helpers, &d);
    print_diag(&d);
    assert_int_equal(d.n, 0);

    rules_free(r);
    htpasswd_free(users);
    htgroups_free(groups);
}

/* Several files: names refer across files, messages name the file. */
static void
test_rules_folder(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-policy-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    const char *files[][2] = {
        {"00-platforms.ini", CATALOG},
        {"10-roles.ini", "[role staff]\nnetworks = 10.0.0.0/8\n"},
        {"20-rules.ini", "[rule staff-social]\nroles = staff\ncategories = social\n"
                         "action = allow\n\n[rule r2]\nroles = staf\naction = deny\n"},
    };
    for (size_t i = 0; i < N_ELEM(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(files[i][1], fp);
        fclose(fp);
    }
    struct diag d = {0};
    struct rules *r = rules_load(dir, &d);
    assert_null(r);
    assert_int_equal(d.errors, 1);
    char want[600];
    snprintf(want, sizeof(want), "%s/20-rules.ini:7: rule 'r2': unknown role 'staf'", dir);
    assert_string_equal(d.msgs[0], want);
    diag_free(&d);
    /* fixed: loads, 3 files, 2 rules */
    snprintf(path, sizeof(path), "%s/20-rules.ini", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("[rule staff-social]\nroles = staff\ncategories = social\naction = allow\n", fp);
    fclose(fp);
    r = rules_load(dir, &d);
    print_diag(&d);
    assert_non_null(r);
    assert_int_equal(r->nfiles, 3);
    assert_int_equal(r->nrules, 1);
    const struct policy_rule *rule = policy_rule(r->policy, 0);
    assert_string_equal(rule->file, path);
    assert_int_equal(rule->line, 1);
    rules_free(r);
    diag_free(&d);
    for (size_t i = 0; i < N_ELEM(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void
test_stricter(void **state)
{
    (void)state;
    assert_int_equal(policy_stricter(POLICY_ALLOW, POLICY_DENY), POLICY_DENY);
    assert_int_equal(policy_stricter(POLICY_DENY, POLICY_ALLOW), POLICY_DENY);
    assert_int_equal(policy_stricter(POLICY_WARN, POLICY_MONITOR), POLICY_WARN);
    assert_int_equal(policy_stricter(POLICY_MONITOR, POLICY_ALLOW), POLICY_MONITOR);
    assert_int_equal(policy_stricter(POLICY_WARN, POLICY_DENY), POLICY_DENY);
    assert_int_equal(policy_stricter(POLICY_ALLOW, POLICY_ALLOW), POLICY_ALLOW);
}

/* --- usage: the state file ------------------------------------------------- */

static void
write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static char *
read_file(const char *path)
{
    static char buf[8192];
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void
rm_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    struct dirent *e;
    char path[600];
    while ((e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(dp);
    assert_int_equal(rmdir(dir), 0);
}

static void
test_state_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-state-XXXXXX";
    assert_non_null(mkdtemp(dir));
    usage_reset();
    int64_t now = 1796000000; /* 2026-11-30 */
    int64_t minute = now / 60;
    struct diag d = {0};

    /* nothing saved yet: a missing file is fine */
    assert_int_equal(usage_load(dir, now, &d), 0);
    assert_int_equal(d.n, 0);

    for (int i = 0; i < 7; i++)
        mark("alice", "everyone-at-lunch", 20787, minute + i);
    mark("10.1.2.3", "everyone-at-lunch", 20787, minute);
    mark("bob", "weekly", 20783, minute);
    usage_continue_set("alice", "youtube", now + 3600);
    usage_continue_set("bob", "youtube", now - 1); /* expired: not saved */
    assert_int_equal(usage_save(dir, now), 0);

    char path[600];
    snprintf(path, sizeof(path), "%s/state", dir);
    const char *text = read_file(path);
    assert_non_null(text);
    assert_true(strncmp(text, "socialgate-state 1\n", 19) == 0);
    char line[300];
    snprintf(line, sizeof(line), "q 20787 %lld 7 alice\x1f" "everyone-at-lunch\n",
             (long long)(minute + 6));
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof(line), "w %lld alice\x1fyoutube\n", (long long)(now + 3600));
    assert_non_null(strstr(text, line));
    assert_null(strstr(text, "bob\x1fyoutube"));
    snprintf(path, sizeof(path), "%s/state.tmp", dir);
    assert_int_not_equal(access(path, F_OK), 0); /* renamed into place */

    usage_reset();
    assert_int_equal(usage_quota_used("alice", "everyone-at-lunch", 20787), 0);
    assert_int_equal(usage_continue_ok("alice", "youtube", now), 0);

    assert_int_equal(usage_load(dir, now, &d), 4);
    assert_int_equal(d.n, 0);
    assert_int_equal(usage_quota_used("alice", "everyone-at-lunch", 20787), 7);
    assert_int_equal(usage_quota_used("10.1.2.3", "everyone-at-lunch", 20787), 1);
    assert_int_equal(usage_quota_used("bob", "weekly", 20783), 1);
    assert_int_equal(usage_continue_ok("alice", "youtube", now + 10), 1);
    assert_int_equal(usage_continue_ok("alice", "youtube", now + 3600), 0);
    assert_int_equal(usage_continue_ok("bob", "youtube", now), 0);
    /* the restored last minute is not counted twice; the next one is */
    assert_int_equal(mark("alice", "everyone-at-lunch", 20787, minute + 6), 7);
    assert_int_equal(mark("alice", "everyone-at-lunch", 20787, minute + 7), 8);
    /* Continues that expire between save and load are dropped */
    usage_reset();
    assert_int_equal(usage_load(dir, now + 7200, &d), 3);
    assert_int_equal(usage_continue_ok("alice", "youtube", now + 7200), 0);
    diag_free(&d);

    /* A state file written by hand, as an administrator (or the tests)
     * would: restored as it is. */
    snprintf(path, sizeof(path), "%s/state", dir);
    write_file(path, "socialgate-state 1\nq 20787 29933333 30 carol\x1f" "everyone-at-lunch\n");
    usage_reset();
    assert_int_equal(usage_load(dir, now, &d), 1);
    assert_int_equal(usage_quota_used("carol", "everyone-at-lunch", 20787), 30);
    assert_int_equal(d.n, 0);

    usage_reset();
    rm_dir(dir);
}

static void
test_state_corrupt(void **state)
{
    (void)state;
    static const char *const corrupt[] = {
        "not a state file\n",
        "socialgate-state 2\nq 1 2 3 a\x1fr\n",
        "socialgate-state 1\nq 20787 1 2 a\x1fr\nz what\n",
        "socialgate-state 1\nq 20787 x 2 a\x1fr\n",
        "socialgate-state 1\nq 20787 1 2 no-separator\n",
        "socialgate-state 1\nq 20787 1 2 a\x1fr", /* cut short: no newline */
    };
    int64_t now = 1796000000;
    for (size_t i = 0; i < N_ELEM(corrupt); i++) {
        char dir[] = "/tmp/sg-state-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[600], aside[600];
        snprintf(path, sizeof(path), "%s/state", dir);
        snprintf(aside, sizeof(aside), "%s/state.corrupt", dir);
        write_file(path, corrupt[i]);
        usage_reset();
        struct diag d = {0};
        /* a reader (explain) leaves the file as it is */
        assert_int_equal(usage_peek(dir, now, &d), 0);
        assert_int_equal(d.warnings, 1);
        assert_non_null(strstr(d.msgs[0], "corrupt state file; counters read as zero"));
        assert_int_equal(access(path, F_OK), 0);
        assert_int_not_equal(access(aside, F_OK), 0);
        diag_free(&d);
        memset(&d, 0, sizeof(d));
        assert_int_equal(usage_load(dir, now, &d), 0);
        print_diag(&d);
        assert_int_equal(d.errors, 0);
        assert_int_equal(d.warnings, 1);
        assert_non_null(strstr(d.msgs[0], path));
        assert_non_null(strstr(d.msgs[0], "warning: corrupt state file set aside as"));
        assert_non_null(strstr(d.msgs[0], "state.corrupt"));
        diag_free(&d);
        /* nothing half-read is kept */
        assert_int_equal(usage_quota_used("a", "r", 20787), 0);
        /* the file is set aside with its content, and the next start is clean */
        assert_int_not_equal(access(path, F_OK), 0);
        const char *kept = read_file(aside);
        assert_non_null(kept);
        assert_string_equal(kept, corrupt[i]);
        assert_int_equal(usage_load(dir, now, &d), 0);
        assert_int_equal(d.n, 0);
        /* and saving works again */
        mark("a", "r", 20787, 5);
        assert_int_equal(usage_save(dir, now), 0);
        usage_reset();
        assert_int_equal(usage_load(dir, now, &d), 1);
        assert_int_equal(d.n, 0);
        usage_reset();
        rm_dir(dir);
    }
    /* a state_dir that does not exist: save fails, load finds nothing */
    assert_int_equal(usage_save("/nonexistent-socialgate-dir", now), -1);
    struct diag d = {0};
    assert_int_equal(usage_load("/nonexistent-socialgate-dir", now, &d), 0);
    assert_int_equal(d.n, 0);
}

/* A long-running gateway forgets what can no longer count: expired Continues,
 * quota counts not written to for over a week (their period has ended) and
 * day-old shared-store sync marks; what still counts is kept. Entries carry
 * the real time of their last write, so `now` is taken from the clock. */
static void
test_usage_prune(void **state)
{
    (void)state;
    usage_reset();
    int64_t now = (int64_t)time(NULL);
    int64_t minute = now / 60;
    mark("alice", "weekly", 20783, minute);
    usage_continue_set("alice", "youtube", now + 3600);
    usage_continue_set("bob", "youtube", now - 1);
    usage_continue_merge("carol", "youtube", 0); /* the shared store had none */
    usage_sync_set("alice", 7);
    assert_int_equal(usage_prune(now), 3); /* alice's quota, Continue and sync mark */
    assert_int_equal(usage_continue_ok("alice", "youtube", now), 1);
    assert_int_equal(usage_quota_used("alice", "weekly", 20783), 1);
    assert_int_equal(usage_sync_get("alice"), 7);

    /* the Continue goes when it expires */
    assert_int_equal(usage_prune(now + 3600), 2);
    assert_int_equal(usage_continue_ok("alice", "youtube", now), 0);
    assert_int_equal(usage_sync_get("alice"), 7);
    /* a day later: the sync mark goes (the identity is asked again), the quota stays */
    assert_int_equal(usage_prune(now + USAGE_SYNC_KEEP_SECONDS + 2), 1);
    assert_int_equal(usage_sync_get("alice"), 0);
    assert_int_equal(usage_quota_used("alice", "weekly", 20783), 1);
    /* a quota written to within the week is kept whole, then forgotten */
    assert_int_equal(usage_prune(now + 7 * 86400), 1);
    assert_int_equal(usage_quota_used("alice", "weekly", 20783), 1);
    assert_int_equal(usage_prune(now + USAGE_QUOTA_KEEP_SECONDS + 2), 0);
    assert_int_equal(usage_quota_used("alice", "weekly", 20783), 0);

    /* a write keeps an entry: a quota counted again is kept from then */
    mark("dave", "weekly", 20783, minute);
    assert_int_equal(usage_prune(now + 1), 1);
    /* usage rows are left to usage_interval_flush, which reports them first */
    struct usage_row who = {.client = "10.1.2.3", .platform = "youtube", .roles = "everyone"};
    usage_activity(&who, 20787, minute, 1, 10, 20);
    assert_int_equal(usage_prune(now + USAGE_QUOTA_KEEP_SECONDS + 2), 1);
    usage_reset();
}

/* --- local pages ------------------------------------------------------------ */

static const char LOCAL_POLICY[] = "[rule video-warn]\n"
                                   "categories = video\n"
                                   "action = warn\n"
                                   "warn_for = 10m\n"
                                   "message = Video is for work.\n"
                                   "[rule unclassified-warn]\n"
                                   "platforms = unclassified\n"
                                   "action = warn\n"
                                   "[rule social-lunch]\n"
                                   "categories = social\n"
                                   "quota = 30m/day\n"
                                   "when = mon-fri 12:00-13:30\n"
                                   "action = allow\n"
                                   "[rule social-deny]\n"
                                   "categories = social\n"
                                   "action = deny\n"
                                   "message = Social media is open 12:00-13:30.\n";

/* Status code and the value of header `name` (static; NULL if absent). */
static int
status_of(const char *resp)
{
    int code = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d ", &code), 1);
    return code;
}

static const char *
header_of(const char *resp, const char *name)
{
    static char val[2048];
    const char *end = strstr(resp, "\r\n\r\n");
    assert_non_null(end);
    size_t nl = strlen(name);
    for (const char *p = strstr(resp, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ')
                v++;
            size_t n = (size_t)(strstr(v, "\r\n") - v);
            assert_true(n < sizeof(val));
            memcpy(val, v, n);
            val[n] = '\0';
            return val;
        }
    }
    return NULL;
}

/* The head must be well formed: CRLF lines only, no bare CR or LF. */
static void
assert_clean_head(const char *resp)
{
    const char *end = strstr(resp, "\r\n\r\n");
    assert_non_null(end);
    for (const char *p = resp; p < end; p++) {
        if (*p == '\r')
            assert_true(p[1] == '\n');
        if (*p == '\n')
            assert_true(p > resp && p[-1] == '\r');
    }
    const char *cl = header_of(resp, "Content-Length");
    assert_non_null(cl);
    assert_int_equal((size_t)atol(cl), strlen(end + 4));
}

/* What a Continue link carries for the rule video-warn without show_rule: "k" and
 * the first 8 bytes of HMAC-SHA256(key 00..1f, "socialgate-rule-1\0video-warn"),
 * computed apart with Python's hmac. */
#define VIDEO_WARN_REF "kc1d8838950a1f1e0"

/* The Continue link of a warn page: its href, HTML entities undone. */
static const char *
continue_link(const char *page)
{
    static char link[2048];
    const char *a = strstr(page, "<a href=\"");
    assert_non_null(a);
    a += 9;
    const char *e = strchr(a, '"');
    assert_non_null(e);
    size_t o = 0;
    for (const char *p = a; p < e && o + 1 < sizeof(link);) {
        if (strncmp(p, "&amp;", 5) == 0) {
            link[o++] = '&';
            p += 5;
        } else {
            link[o++] = *p++;
        }
    }
    link[o] = '\0';
    return link;
}

/* The Continue token: a known answer (computed apart, with Python's hmac),
 * and each input changes it. */
static void
test_continue_token(void **state)
{
    (void)state;
    uint8_t key[LOCAL_CONTINUE_KEY_LEN];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)i;
    char tok[LOCAL_CONTINUE_TOKEN_LEN + 1], t2[LOCAL_CONTINUE_TOKEN_LEN + 1];
    assert_int_equal(local_continue_token(key, "alice", "youtube", "video-warn", 1796000600, tok),
                     0);
    assert_string_equal(tok, "0ccb2946ae92993795b67d3e51c6186d86b83c848f653642a85bcf1383b9d4c6");
    static const struct {
        const char *identity, *platform, *rule;
        int64_t expiry;
    } other[] = {
        {"alicE", "youtube", "video-warn", 1796000600},
        {"alice", "youtubE", "video-warn", 1796000600},
        {"alice", "youtube", "video-warN", 1796000600},
        {"alice", "youtube", "video-warn", 1796000601},
        /* the parts cannot slide into each other */
        {"alic", "eyoutube", "video-warn", 1796000600},
        {"alice", "youtubevideo", "-warn", 1796000600},
    };
    for (size_t i = 0; i < N_ELEM(other); i++) {
        assert_int_equal(local_continue_token(key, other[i].identity, other[i].platform,
                                              other[i].rule, other[i].expiry, t2),
                         0);
        if (strcmp(t2, tok) == 0)
            fail_msg("case %zu gives the same token", i);
    }
    key[31] ^= 1; /* another key */
    assert_int_equal(local_continue_token(key, "alice", "youtube", "video-warn", 1796000600, t2),
                     0);
    assert_string_not_equal(t2, tok);
    /* too long for the message: refused, empty */
    char huge[2000];
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(local_continue_token(key, huge, "youtube", "video-warn", 1, t2), -1);
    assert_string_equal(t2, "");
}

/* state_dir/continue.key: made once (0600, 32 bytes), then read back the
 * same; a file of another size is refused. */
static void
test_continue_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-key-XXXXXX", path[200];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/continue.key", dir);
    uint8_t k1[LOCAL_CONTINUE_KEY_LEN], k2[LOCAL_CONTINUE_KEY_LEN];
    errno = 0;
    assert_int_equal(local_continue_key_load(dir, k1, 0), -1); /* not made without create */
    assert_int_equal(errno, ENOENT);
    assert_int_equal(local_continue_key_load(dir, k1, 1), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, LOCAL_CONTINUE_KEY_LEN);
    assert_int_equal(local_continue_key_load(dir, k2, 1), 0);
    assert_memory_equal(k1, k2, sizeof(k1));
    assert_int_equal(local_continue_key_load(dir, k2, 0), 0);
    assert_memory_equal(k1, k2, sizeof(k1));
    /* no temporary file left behind */
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);
    /* an administrator's own key (the one a gateway pool shares) */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < LOCAL_CONTINUE_KEY_LEN; i++)
        fputc(200 + i % 50, f);
    fclose(f);
    assert_int_equal(local_continue_key_load(dir, k2, 1), 0);
    for (int i = 0; i < LOCAL_CONTINUE_KEY_LEN; i++)
        assert_int_equal(k2[i], 200 + i % 50);
    /* too short, too long: refused, never padded or cut */
    for (int len = 0; len < 2 * LOCAL_CONTINUE_KEY_LEN; len += LOCAL_CONTINUE_KEY_LEN - 1) {
        if (len == LOCAL_CONTINUE_KEY_LEN)
            continue;
        f = fopen(path, "wb");
        assert_non_null(f);
        for (int i = 0; i < len; i++)
            fputc('k', f);
        fclose(f);
        errno = 0;
        assert_int_equal(local_continue_key_load(dir, k2, 1), -1);
        assert_int_equal(errno, EINVAL);
    }
    unlink(path);
    /* a state_dir that does not exist */
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(local_continue_key_load(path, k2, 1), -1);
    rmdir(dir);
}

static const char *local_reason; /* of the last local() */

static int
local(struct fixture *f, const char *identity, const char *target, time_t now, char *out,
      size_t size)
{
    struct tm tm = at("2026-11-30 12:10");
    int status = 0;
    size_t n = local_answer(&f->snap, identity, NULL, "staff", target, now, &tm, out, size, &status,
                            &local_reason);
    assert_true(n > 0);
    assert_int_equal(strlen(out), n);
    assert_int_equal(status_of(out), status);
    assert_clean_head(out);
    return status;
}

/* A warn page (for the host of url) copied into out, as a string. */
static size_t
warn_into(const struct snapshot *snap, int platform, int rule, const char *url,
          const char *identity, time_t now, char *out, size_t size)
{
    char *page = NULL;
    size_t n = local_warn_page(snap, platform, rule, url, "www.youtube.com", identity, now, &page);
    assert_non_null(page);
    assert_true(n < size);
    memcpy(out, page, n + 1);
    free(page);
    return n;
}

static void
test_local_pages(void **state)
{
    (void)state;
    usage_reset();
    struct fixture f;
    fx_load(&f, LOCAL_POLICY, NULL);
    char out[16384];
    int fb = platform_of(&f, "www.facebook.com");
    int yt = platform_of(&f, "www.youtube.com");

    /* deny: the rule's message; never a file path, the rule only with show_rule */
    char *page = NULL;
    size_t n = local_deny_page(&f.snap, fb, 3, "www.facebook.com", "10.1.2.3", &page);
    assert_true(n > 0);
    assert_int_equal(status_of(page), 403);
    assert_clean_head(page);
    assert_non_null(strstr(page, "<p>Social media is open 12:00-13:30.</p>"));
    assert_non_null(strstr(page, "www.facebook.com (facebook)"));
    assert_null(strstr(page, "p.ini"));
    assert_null(strstr(page, "social-deny"));
    assert_null(strstr(page, "Forbidden</title>"));
    free(page);
    struct pages shown = {.show_rule = 1, .contact = (char *)"IT helpdesk, extension 4357"};
    f.snap.pages = &shown;
    n = local_deny_page(&f.snap, fb, 3, "www.facebook.com", "10.1.2.3", &page);
    assert_non_null(strstr(page, "<p class=\"rule\">social-deny</p>"));
    assert_non_null(strstr(page, "IT helpdesk, extension 4357"));
    assert_null(strstr(page, "p.ini"));
    free(page);
    f.snap.pages = NULL;

    /* a used-up quota: the quota rule's minutes, those used, when they come back */
    struct tm noon = at("2026-11-30 12:17");
    const struct policy_rule *lunch = policy_rule(f.rules->policy, 2);
    int crossed;
    for (int i = 0; i < 30; i++)
        usage_quota_mark("10.1.2.3", "social-lunch", decision_period(lunch, &noon),
                         29400000 + i, 30, &crossed);
    n = local_quota_page(&f.snap, fb, 2, "www.facebook.com", "10.1.2.3", &noon, &page);
    assert_int_equal(status_of(page), 403);
    assert_non_null(strstr(page, "<h1>Your time on facebook is used up</h1>"));
    assert_non_null(
        strstr(page, "You have used 30 of your 30 minutes on facebook. They come back at 00:00."));
    assert_null(strstr(page, "Social media is open"));
    free(page);
    usage_reset();

    /* 407 */
    n = local_auth_page(&f.snap, NULL, &page);
    assert_true(n > 0);
    assert_int_equal(status_of(page), 407);
    assert_clean_head(page);
    assert_string_equal(header_of(page, "Proxy-Authenticate"), "Basic realm=\"Corporate gateway\"");
    free(page);

    /* 502: the plain words of errpage_upstream_text */
    n = local_error_page(&f.snap, 502, "nowhere.example", "The name nowhere.example does not exist.",
                         &page);
    assert_int_equal(status_of(page), 502);
    assert_non_null(strstr(page, "<p>The name nowhere.example does not exist.</p>"));
    free(page);

    /* warn page, then its Continue link, signed for the identity shown it */
    time_t now = 1796000000;
    char sig[200], tok[LOCAL_CONTINUE_TOKEN_LEN + 1];
    assert_int_equal(local_continue_token(f.snap.continue_key, "10.1.2.3", "youtube", "video-warn",
                                          now + 600, tok),
                     0);
    snprintf(sig, sizeof(sig), "e=%lld&t=%s", (long long)now + 600, tok);
    n = warn_into(&f.snap, yt, 0, "http://www.youtube.com:80/watch?v=a b&c=<d>", "10.1.2.3",
                        now, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(status_of(out), 403);
    assert_clean_head(out);
    assert_non_null(strstr(out, "<title>Warning: www.youtube.com</title>"));
    assert_non_null(strstr(out, "<p>Video is for work.</p>"));
    assert_null(strstr(out, "video-warn")); /* not even in the link, without show_rule */
    const char *link = continue_link(out);
    const char *prefix = "http://socialgate.local/continue?";
    assert_true(strncmp(link, prefix, strlen(prefix)) == 0);
    char want_link[2100];
    snprintf(want_link, sizeof(want_link),
             "p=youtube&r=" VIDEO_WARN_REF "&%s&to=http%%3A%%2F%%2Fwww.youtube.com%%3A80%%2Fwatch%%3Fv%%"
             "3Da%%20b%%26c%%3D%%3Cd%%3E",
             sig);
    assert_string_equal(link + strlen(prefix), want_link);
    char target[2100];
    snprintf(target, sizeof(target), "/continue?%s", link + strlen(prefix));
    assert_int_equal(usage_continue_ok("10.1.2.3", "youtube", now), 0);
    /* another identity cannot use it */
    assert_int_equal(local(&f, "10.9.9.9", target, now, out, sizeof(out)), 403);
    assert_string_equal(local_reason, "bad-continue-token");
    assert_int_equal(usage_continue_ok("10.9.9.9", "youtube", now + 1), 0);
    /* nor anyone once it has expired */
    assert_int_equal(local(&f, "10.1.2.3", target, now + 601, out, sizeof(out)), 403);
    assert_int_equal(usage_continue_ok("10.1.2.3", "youtube", now + 1), 0);
    /* good until its expiry second, included */
    assert_int_equal(local(&f, "10.1.2.3", target, now + 600, out, sizeof(out)), 200);
    assert_null(local_reason);
    usage_reset();
    /* the URL has a space and <>: recorded, but no Location with them */
    assert_int_equal(local(&f, "10.1.2.3", target, now, out, sizeof(out)), 200);
    assert_null(local_reason);
    assert_null(header_of(out, "Location"));
    assert_int_equal(usage_continue_ok("10.1.2.3", "youtube", now + 1), 1);
    assert_int_equal(usage_continue_ok("10.1.2.3", "youtube", now + 599), 1);
    assert_int_equal(usage_continue_ok("10.1.2.3", "youtube", now + 600), 0); /* warn_for */
    assert_int_equal(usage_continue_ok("10.9.9.9", "youtube", now + 1), 0);   /* per identity */
    assert_int_equal(usage_continue_ok("10.1.2.3", "facebook", now + 1), 0);  /* per platform */

    /* an ordinary URL: 302 to it */
    n = warn_into(&f.snap, yt, 0, "http://www.youtube.com:80/watch?v=abc", "alice", now, out,
                        sizeof(out));
    link = continue_link(out);
    snprintf(target, sizeof(target), "/continue?%s", link + strlen(prefix));
    assert_int_equal(local(&f, "alice", target, now, out, sizeof(out)), 302);
    assert_true(strncmp(out, "HTTP/1.1 302 Found\r\n", 20) == 0);
    assert_string_equal(header_of(out, "Location"), "http://www.youtube.com:80/watch?v=abc");
    assert_int_equal(usage_continue_ok("alice", "youtube", now + 1), 1);

    /* with show_rule the link names the rule, and works the same */
    f.snap.pages = &shown;
    n = warn_into(&f.snap, yt, 0, "http://www.youtube.com:80/", "frank", now, out, sizeof(out));
    f.snap.pages = NULL;
    link = continue_link(out);
    assert_non_null(strstr(link, "?p=youtube&r=video-warn&e="));
    snprintf(target, sizeof(target), "/continue?%s", link + strlen(prefix));
    assert_int_equal(local(&f, "frank", target, now, out, sizeof(out)), 302);
    assert_int_equal(usage_continue_ok("frank", "youtube", now + 1), 1);
    /* a reference that is no rule's here (another key made it): not made for this gateway */
    assert_int_equal(local(&f, "frank", "/continue?p=youtube&r=k0000000000000000", now, out,
                           sizeof(out)),
                     403);
    assert_string_equal(local_reason, "bad-continue-token");

    /* the warn page shown inside TLS ([tls] pages): its link is on the warned host,
     * under /.socialgate/continue, and sends the user back to the https page */
    char *tls_page = NULL;
    n = local_warn_page_tls(&f.snap, yt, 0, "www.youtube.com", "https://www.youtube.com/watch?v=t",
                            "www.youtube.com", "dave", now, &tls_page);
    assert_true(n > 0 && n < sizeof(out));
    memcpy(out, tls_page, n + 1);
    free(tls_page);
    assert_null(strstr(out, ".ini")); /* the same renderer: no file path */
    assert_int_equal(status_of(out), 403);
    link = continue_link(out);
    const char *tls_prefix = "https://www.youtube.com" LOCAL_TLS_CONTINUE_PATH "?";
    assert_true(strncmp(link, tls_prefix, strlen(tls_prefix)) == 0);
    assert_non_null(strstr(link, "&to=https%3A%2F%2Fwww.youtube.com%2Fwatch%3Fv%3Dt"));
    snprintf(target, sizeof(target), "/continue?%s", link + strlen(tls_prefix));
    assert_int_equal(local(&f, "dave", target, now, out, sizeof(out)), 302);
    assert_string_equal(header_of(out, "Location"), "https://www.youtube.com/watch?v=t");
    assert_int_equal(usage_continue_ok("dave", "youtube", now + 1), 1);
    /* another identity cannot use it */
    assert_int_equal(local(&f, "erin", target, now, out, sizeof(out)), 403);
    assert_int_equal(usage_continue_ok("erin", "youtube", now + 1), 0);

    /* what a request inside a TLS page tunnel asks for */
    struct local_tls_route rt;
    assert_int_equal(local_tls_route("www.youtube.com", 443, "WWW.YouTube.com:443", 19,
                                     "/watch?v=1", 10, 1, &rt),
                     0);
    assert_false(rt.is_continue);
    assert_string_equal(rt.authority, "www.youtube.com");
    assert_string_equal(rt.url, "https://www.youtube.com/watch?v=1");
    /* the port is the Host's (a fronted tunnel goes to another), else the tunnel's */
    assert_int_equal(
        local_tls_route("www.youtube.com", 8443, "www.youtube.com", 15, "/", 1, 1, &rt), 0);
    assert_string_equal(rt.url, "https://www.youtube.com/");
    assert_int_equal(
        local_tls_route("www.youtube.com", 443, "www.youtube.com:8443", 20, "/", 1, 1, &rt), 0);
    assert_string_equal(rt.authority, "www.youtube.com:8443");
    assert_int_equal(local_tls_route("2001:db8::1", 8443, NULL, 0, "*", 1, 1, &rt), 0);
    assert_string_equal(rt.url, "https://[2001:db8::1]:8443/");
    const char *ct = LOCAL_TLS_CONTINUE_PATH "?p=youtube&r=video-warn";
    assert_int_equal(local_tls_route("www.youtube.com", 443, NULL, 0, ct, strlen(ct), 1, &rt), 0);
    assert_true(rt.is_continue);
    assert_string_equal(rt.target, "/continue?p=youtube&r=video-warn");
    /* only for a warned tunnel, and only that exact path */
    assert_int_equal(local_tls_route("www.youtube.com", 443, NULL, 0, ct, strlen(ct), 0, &rt), 0);
    assert_false(rt.is_continue);
    const char *notcont = LOCAL_TLS_CONTINUE_PATH "x?p=youtube";
    assert_int_equal(
        local_tls_route("www.youtube.com", 443, NULL, 0, notcont, strlen(notcont), 1, &rt), 0);
    assert_false(rt.is_continue);

    /* a warn rule for unclassified traffic: its link works too */
    n = warn_into(&f.snap, -1, 1, "http://intranet.example:80/", "bob", now, out,
                        sizeof(out));
    assert_true(n > 0);
    link = continue_link(out);
    assert_non_null(strstr(link, "p=unclassified&r=k05e2dde7502a7564&e="));
    assert_non_null(strstr(link, "&to=http"));
    snprintf(target, sizeof(target), "/continue?%s", link + strlen(prefix));
    assert_int_equal(local(&f, "bob", target, now, out, sizeof(out)), 302);
    assert_string_equal(header_of(out, "Location"), "http://intranet.example:80/");
    assert_int_equal(usage_continue_ok("bob", "unclassified", now + 1), 1);

    /* a page address too long for the link: no `to`, never a cut URL */
    char longurl[3000] = "http://www.youtube.com:80/";
    memset(longurl + strlen(longurl), 'a', 1500);
    longurl[26 + 1500] = '\0';
    n = warn_into(&f.snap, yt, 0, longurl, "10.1.2.3", now, out, sizeof(out));
    assert_true(n > 0);
    link = continue_link(out);
    snprintf(want_link, sizeof(want_link),
             "http://socialgate.local/continue?p=youtube&r=" VIDEO_WARN_REF "&%s", sig);
    assert_string_equal(link, want_link);
    /* the longest address that fits keeps its `to`, whole */
    memset(longurl + 26, 'a', sizeof(longurl) - 27);
    longurl[26 + 1100] = '\0';
    for (size_t len = 1100; len > 26; len--) {
        longurl[len] = '\0';
        n = warn_into(&f.snap, yt, 0, longurl, "10.1.2.3", now, out, sizeof(out));
        assert_true(n > 0);
        link = continue_link(out);
        const char *to = strstr(link, "&to=");
        if (to == NULL)
            continue;
        assert_int_equal(strlen(to + 4), strlen("http%3A%2F%2Fwww.youtube.com%3A80%2F") + len - 26);
        break;
    }

    /* Redirects only to http:// URLs, never with CR or LF. */
    static const struct {
        const char *target;
        int status; /* with carol's token appended */
        const char *location;
    } cases[] = {
        {"/continue?p=youtube&r=video-warn", 200, NULL},
        {"/continue?r=video-warn&p=youtube&to=http%3A%2F%2Fa.example%2F", 302, "http://a.example/"},
        {"/continue?p=youtube&r=video-warn&to=http://a.example/x%3Fy", 302, "http://a.example/x?y"},
        /* https: the Continue of a warn page shown inside TLS ([tls] pages) */
        {"/continue?p=youtube&r=video-warn&to=https%3A%2F%2Fa.example%2F", 302, "https://a.example/"},
        {"/continue?p=youtube&r=video-warn&to=ftp%3A%2F%2Fa.example%2F", 200, NULL},
        {"/continue?p=youtube&r=video-warn&to=javascript:alert(1)", 200, NULL},
        {"/continue?p=youtube&r=video-warn&to=%2F%2Fevil.example%2F", 200, NULL},
        {"/continue?p=youtube&r=video-warn&to=http://a.example/%0D%0ASet-Cookie:%20x=1", 200,
         NULL},
        {"/continue?p=youtube&r=video-warn&to=http://a.example/%0ASet-Cookie:x", 200, NULL},
        {"/continue?p=youtube&r=video-warn&to=http://a.example/%0d%0aX:y", 200, NULL},
        {"/continue?p=youtube&r=video-warn&to=http://a.example/%00", 200, NULL},
        {"/continue?p=youtube&r=video-warn&to=http://a.example/\"x", 200, NULL},
        /* bad links */
        {"/continue", 400, NULL},
        {"/continue?", 400, NULL},
        {"/continue?r=video-warn", 400, NULL},
        {"/continue?p=youtube", 400, NULL},
        {"/continue?p=myspace&r=video-warn", 400, NULL},
        {"/continue?p=youtube&r=no-such-rule", 400, NULL},
        {"/continue?p=facebook&r=social-deny", 400, NULL},  /* not a warn rule */
        {"/continue?p=facebook&r=video-warn", 400, NULL},   /* not its platform */
        {"/continue?p=youtube&r=unclassified-warn", 400, NULL},
        {"/continue?p=you%0Atube&r=video-warn", 400, NULL},
        {"/nothing-here", 404, NULL},
        {"/continue/x?p=youtube&r=video-warn", 404, NULL},
    };
    assert_int_equal(
        local_continue_token(f.snap.continue_key, "carol", "youtube", "video-warn", now + 600, tok),
        0);
    snprintf(sig, sizeof(sig), "e=%lld&t=%s", (long long)now + 600, tok);
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        usage_reset();
        snprintf(target, sizeof(target), "%s%c%s", cases[i].target,
                 strchr(cases[i].target, '?') ? '&' : '?', sig);
        int st = local(&f, "carol", target, now, out, sizeof(out));
        const char *loc = header_of(out, "Location");
        if (st != cases[i].status ||
            (cases[i].location == NULL) != (loc == NULL) ||
            (loc && strcmp(loc, cases[i].location) != 0))
            fail_msg("%s: got %d Location %s, want %d %s", target, st, loc ? loc : "(none)",
                     cases[i].status, cases[i].location ? cases[i].location : "(none)");
        assert_null(strstr(out, "Set-Cookie"));
        assert_null(strstr(out, "\r\nX:"));
        int recorded = usage_continue_ok("carol", "youtube", now + 1);
        assert_int_equal(recorded, st == 200 || st == 302);
    }

    /* Continue links without a valid token for this identity, platform and
     * rule, unexpired: 403, bad-continue-token, nothing recorded. */
    char other[LOCAL_CONTINUE_TOKEN_LEN + 1], flipped[LOCAL_CONTINUE_TOKEN_LEN + 1];
    assert_int_equal(local_continue_token(f.snap.continue_key, "carol", "unclassified",
                                          "unclassified-warn", now + 600, other),
                     0);
    memcpy(flipped, tok, sizeof(flipped));
    flipped[10] = flipped[10] == '0' ? '1' : '0';
    char upper[LOCAL_CONTINUE_TOKEN_LEN + 1];
    for (size_t i = 0; i <= LOCAL_CONTINUE_TOKEN_LEN; i++)
        upper[i] = (char)(tok[i] >= 'a' && tok[i] <= 'f' ? tok[i] - 32 : tok[i]);
    long long e = (long long)now + 600;
    char bad[12][300];
    snprintf(bad[0], sizeof(bad[0]), "/continue?p=youtube&r=video-warn");
    snprintf(bad[1], sizeof(bad[1]), "/continue?p=youtube&r=video-warn&e=%lld", e);
    snprintf(bad[2], sizeof(bad[2]), "/continue?p=youtube&r=video-warn&t=%s", tok);
    snprintf(bad[3], sizeof(bad[3]), "/continue?p=youtube&r=video-warn&e=%lld&t=%s", e + 1, tok);
    snprintf(bad[4], sizeof(bad[4]), "/continue?p=youtube&r=video-warn&e=%lld&t=%s", e, flipped);
    snprintf(bad[5], sizeof(bad[5]), "/continue?p=youtube&r=video-warn&e=%lld&t=%s", e, other);
    snprintf(bad[6], sizeof(bad[6]), "/continue?p=youtube&r=video-warn&e=%lld&t=%.63s", e, tok);
    snprintf(bad[7], sizeof(bad[7]), "/continue?p=youtube&r=video-warn&e=%lld&t=%s0", e, tok);
    snprintf(bad[8], sizeof(bad[8]), "/continue?p=youtube&r=video-warn&e=+%lld&t=%s", e, tok);
    snprintf(bad[9], sizeof(bad[9]), "/continue?p=youtube&r=video-warn&e=%lld&t=%s", e, upper);
    snprintf(bad[10], sizeof(bad[10]), "/continue?p=youtube&r=video-warn&e=&t=%s", tok);
    snprintf(bad[11], sizeof(bad[11]), "/continue?p=youtube&r=video-warn&e=0%lld&t=%s", e, tok);
    for (size_t i = 0; i < N_ELEM(bad); i++) {
        usage_reset();
        int st = local(&f, "carol", bad[i], now, out, sizeof(out));
        if (st != 403 || local_reason == NULL || strcmp(local_reason, "bad-continue-token") != 0)
            fail_msg("%s: got %d (%s), want 403 bad-continue-token", bad[i], st,
                     local_reason ? local_reason : "no reason");
        assert_null(header_of(out, "Location"));
        assert_int_equal(usage_continue_ok("carol", "youtube", now + 1), 0);
    }
    /* the other token is good for its own platform and rule */
    snprintf(target, sizeof(target), "/continue?p=unclassified&r=unclassified-warn&e=%lld&t=%s", e,
             other);
    assert_int_equal(local(&f, "carol", target, now, out, sizeof(out)), 200);
    /* a snapshot without a key refuses every link */
    snprintf(target, sizeof(target), "/continue?p=youtube&r=video-warn&e=%lld&t=%s", e, tok);
    f.snap.has_continue_key = 0;
    assert_int_equal(local(&f, "carol", target, now, out, sizeof(out)), 403);
    n = warn_into(&f.snap, yt, 0, "http://www.youtube.com:80/", "carol", now, out,
                        sizeof(out));
    assert_null(strstr(continue_link(out), "&t="));
    f.snap.has_continue_key = 1;
    assert_int_equal(local(&f, "carol", target, now, out, sizeof(out)), 200);

    /* /quota: minutes used and left of every quota rule */
    usage_reset();
    assert_int_equal(local(&f, "alice", "/quota", now, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "Quota for alice (roles staff)"));
    assert_non_null(strstr(out, "social platforms: 0 of 30 minutes a day used, 30 left; they come back at 00:00\n"));
    for (int i = 0; i < 12; i++)
        mark("alice", "social-lunch", 20787, 100 + i);
    assert_int_equal(local(&f, "alice", "/quota?x=1", now, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "social platforms: 12 of 30 minutes a day used, 18 left; they come back at 00:00\n"));
    for (int i = 0; i < 40; i++)
        mark("alice", "social-lunch", 20787, 200 + i);
    assert_int_equal(local(&f, "alice", "/quota", now, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "social platforms: 52 of 30 minutes a day used, 0 left; they come back at 00:00\n"));
    /* another identity has its own */
    assert_int_equal(local(&f, "10.1.2.3", "/quota", now, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "Quota for 10.1.2.3"));
    assert_non_null(strstr(out, "social platforms: 0 of 30 minutes a day used, 30 left; they come back at 00:00\n"));
    /* yesterday's minutes do not count today */
    usage_reset();
    mark("alice", "social-lunch", 20786, 100);
    assert_int_equal(local(&f, "alice", "/quota", now, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "social platforms: 0 of 30 minutes a day used, 30 left; they come back at 00:00\n"));
    fx_free(&f);

    /* no quota rules */
    fx_load(&f, "[rule d]\ncategories = social\naction = deny\n", NULL);
    assert_int_equal(local(&f, "alice", "/quota", now, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "No quota applies.\n"));
    fx_free(&f);
    /* the platforms by name; the rule only with show_rule */
    fx_load(&f, "[rule w]\nplatforms = facebook, whatsapp\nquota = 2h/week\naction = allow\n", NULL);
    assert_int_equal(local(&f, "alice", "/quota", now, out, sizeof(out)), 200);
    assert_non_null(strstr(
        out, "facebook, whatsapp: 0 of 120 minutes a week used, 120 left; they come back at "
             "Monday 00:00\n"));
    assert_null(strstr(out, "rule w"));
    shown.contact = NULL;
    f.snap.pages = &shown;
    assert_int_equal(local(&f, "alice", "/quota", now, out, sizeof(out)), 200);
    assert_non_null(strstr(out, "Monday 00:00 (rule w)\n"));
    fx_free(&f);
    usage_reset();
}

/* The shipped example policy with the shipped catalog: the answers the
 * README and `explain` promise. */
static void
test_shipped_example(void **state)
{
    (void)state;
    static const char *const dirs[] = {"rules", "../rules", "../../rules", "../../../rules"};
    struct rules *r = NULL;
    struct diag d = {0};
    for (size_t i = 0; i < N_ELEM(dirs) && r == NULL; i++) {
        char p[64];
        snprintf(p, sizeof(p), "%s/10-policy.ini", dirs[i]);
        if (access(p, R_OK) == 0)
            r = rules_load(dirs[i], &d);
    }
    print_diag(&d);
    assert_non_null(r);
    assert_int_equal(d.n, 0); /* no errors, no warnings */
    diag_free(&d);
    struct fixture f;
    memset(&f, 0, sizeof(f));
    f.rules = r;
    f.snap.rules = r;
    f.snap.cfg = &f.cfg;
    f.groups = htgroups_load_string("marketing: dora\n", "groups", &d);
    f.snap.groups = f.groups;
    usage_reset();
    static const struct row rows[] = {
        {{"alice", NULL, "www.linkedin.com", "GET", "/", "2026-11-30 10:00"}, "marketing-all-day",
         "allow", "marketing"},
        {{"dora", NULL, "www.facebook.com", NULL, NULL, "2026-11-30 10:00"}, "marketing-all-day",
         "allow", "marketing"},
        {{NULL, "10.20.1.1", "www.instagram.com", NULL, NULL, "2026-11-30 10:00"},
         "marketing-all-day", "allow", "marketing,staff"},
        {{NULL, "10.1.2.3", "www.reddit.com", "GET", "/", "2026-11-30 10:00"}, "social-otherwise",
         "deny", "staff"},
        {{NULL, "10.1.2.3", "www.reddit.com", "GET", "/", "2026-11-30 12:10"}, "everyone-at-lunch",
         "allow", "staff"},
        {{NULL, "10.1.2.3", "www.reddit.com", "GET", "/", "2026-11-30 18:00"}, "everyone-at-lunch",
         "allow", "staff"},
        {{NULL, "10.1.2.3", "www.reddit.com", "GET", "/", "2026-12-05 10:00"}, "everyone-at-lunch",
         "allow", "staff"},
        {{NULL, "10.1.2.3", "www.youtube.com", "GET", "/", "2026-11-30 10:00"},
         "video-with-warning", "warn", "staff"},
        {{NULL, "192.0.2.1", "web.whatsapp.com", NULL, NULL, "2026-11-30 10:00"}, "messaging",
         "monitor", "-"},
        {{NULL, "192.0.2.1", "example.org", "GET", "/", "2026-11-30 10:00"}, "-", "allow", "-"},
    };
    check_rows(&f, rows, N_ELEM(rows));
    /* 30 minutes at lunch, then denied */
    const struct policy *pol = r->policy;
    const struct policy_rule *lunch = NULL;
    for (size_t i = 0; i < policy_rule_count(pol); i++)
        if (strcmp(policy_rule(pol, i)->name, "everyone-at-lunch") == 0)
            lunch = policy_rule(pol, i);
    assert_non_null(lunch);
    for (int i = 0; i < 30; i++)
        mark("10.1.2.3", "everyone-at-lunch", 20787, 1000 + i);
    struct ask q = {NULL, "10.1.2.3", "www.reddit.com", "GET", "/", "2026-11-30 12:10"};
    struct decision dec = ask(&f, &q);
    assert_string_equal(rule_name(&f, dec.rule), "social-otherwise");
    usage_reset();
    fx_free(&f);
}

int
main(void)
{
    /* decision_make with a NULL clock reads the process zone */
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match_and_roles),
        cmocka_unit_test(test_no_rules_and_no_roles_key),
        cmocka_unit_test(test_forward_names_and_continued_lists),
        cmocka_unit_test(test_when_windows),
        cmocka_unit_test(test_methods_and_path_regex),
        cmocka_unit_test(test_methods_lower_case_warned),
        cmocka_unit_test(test_needs_inspection),
        cmocka_unit_test(test_quota_falls_through),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_message_continues),
        cmocka_unit_test(test_lint_unreachable),
        cmocka_unit_test(test_errors_file_line),
        cmocka_unit_test(test_every_problem_once),
        cmocka_unit_test(test_role_identities),
        cmocka_unit_test(test_rules_folder),
        cmocka_unit_test(test_stricter),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_corrupt),
        cmocka_unit_test(test_usage_prune),
        cmocka_unit_test(test_continue_token),
        cmocka_unit_test(test_continue_key_file),
        cmocka_unit_test(test_local_pages),
        cmocka_unit_test(test_shipped_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
