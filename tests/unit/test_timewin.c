/* Unit tests for proxy/timewin.c: time windows, schedules, quotas, day and
 * week numbers, and behaviour across the DST switches of Europe/London and
 * America/New_York (through the real tz database and localtime_r). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "timewin.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

/* A resolver over a small table of named schedules, like the rules loader
 * will have: only names defined so far are known. */
struct sched_table {
    size_t n;
    const char *name[16];
    struct timewin *w[16];
};

static const struct timewin *
resolve(void *arg, const char *name)
{
    const struct sched_table *t = arg;

    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->name[i], name) == 0)
            return t->w[i];
    return NULL;
}

static void
sched_add(struct sched_table *t, const char *name, const char *when, const char *except)
{
    char err[256];
    struct timewin *w = timewin_parse(when, resolve, t, err, sizeof(err));

    if (w == NULL)
        fail_msg("schedule %s: when = %s: %s", name, when, err);
    if (except != NULL) {
        struct timewin *ex = timewin_parse(except, resolve, t, err, sizeof(err));
        if (ex == NULL)
            fail_msg("schedule %s: except = %s: %s", name, except, err);
        timewin_set_except(w, ex);
    }
    assert_true(t->n < N_ELEM(t->name));
    t->name[t->n] = name;
    t->w[t->n] = w;
    t->n++;
}

static void
sched_free(struct sched_table *t)
{
    /* Later schedules borrow earlier ones: free in reverse order. */
    while (t->n > 0) {
        t->n--;
        timewin_free(t->w[t->n]);
    }
}

/* The schedules of the shipped example rules, plus a few for the tests. */
static void
sched_example(struct sched_table *t)
{
    memset(t, 0, sizeof(*t));
    sched_add(t, "lunch", "mon-fri 12:00-13:30", NULL);
    sched_add(t, "after-hours", "mon-fri 17:30-24:00, sat-sun", NULL);
    sched_add(t, "holidays", "2026-12-24..2026-12-26, 2026-12-31, 2027-01-01", NULL);
    sched_add(t, "workdays", "mon-fri", "holidays");
    sched_add(t, "free-time", "lunch, after-hours, holidays", NULL);
}

/* A struct tm for a wall-clock date and time, normalized like localtime_r
 * would produce it (timegm/gmtime_r only do the calendar arithmetic). */
static struct tm
tm_at(int y, int mo, int d, int h, int mi)
{
    struct tm t = {0};
    time_t s;

    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    s = timegm(&t);
    gmtime_r(&s, &t);
    return t;
}

/* "2026-11-30 12:30" */
static struct tm
tm_str(const char *s)
{
    int y, mo, d, h, mi;

    if (sscanf(s, "%d-%d-%d %d:%d", &y, &mo, &d, &h, &mi) != 5)
        fail_msg("bad test time '%s'", s);
    return tm_at(y, mo, d, h, mi);
}

static struct timewin *
parse_ok(const char *expr, struct sched_table *t)
{
    char err[256] = "";
    struct timewin *w = timewin_parse(expr, resolve, t, err, sizeof(err));

    if (w == NULL)
        fail_msg("'%s' did not parse: %s", expr, err);
    return w;
}

struct mcase {
    const char *expr;
    const char *at;
    int want;
};

static void
run_matches(const struct mcase *c, size_t n)
{
    struct sched_table t;

    sched_example(&t);
    for (size_t i = 0; i < n; i++) {
        struct timewin *w = parse_ok(c[i].expr, &t);
        struct tm tm = tm_str(c[i].at);
        int got = timewin_match(w, &tm);
        timewin_free(w);
        if (got != c[i].want)
            fail_msg("case %zu: '%s' at %s: got %d, want %d", i, c[i].expr, c[i].at, got,
                     c[i].want);
    }
    sched_free(&t);
}

/* ---------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------- */

static void
test_parse_errors(void **state)
{
    (void)state;
    /* Every error message must name the bad item (or say what is wrong
     * with the list as a whole). */
    static const struct {
        const char *expr;
        const char *in_err;
    } t[] = {
        {"mox-fri 12:00-13:00", "bad day 'mox-fri'"},
        {"mon-fry", "mon-fry"},
        {"mon-fri 25:00-26:00", "'mon-fri 25:00-26:00': time out of range"},
        {"12:60-13:00", "'12:60-13:00': time out of range"},
        {"sat-sun 00:00-24:01", "time out of range"},
        {"24:00-01:00", "24:00 can only end"},
        {"mon 24:00-24:00", "24:00 can only end"},
        {"12:00-12:00", "'12:00-12:00': time range starts and ends at the same time"},
        {"fri 00:00-00:00", "same time"},
        {"2026-02-30", "'2026-02-30': no such date"},
        {"2026-02-29", "no such date"},
        {"1900-02-29", "no such date"},
        {"2026-04-31", "no such date"},
        {"2026-13-01", "no such date"},
        {"2026-00-10", "no such date"},
        {"2026-01-00", "no such date"},
        {"2026-12-31..2026-12-24", "'2026-12-31..2026-12-24': date range ends before it starts"},
        {"2027-01-01..2026-12-31 09:00-12:00", "ends before"},
        {"lunch, lunchh", "'lunchh': unknown schedule"},
        {"nosuch", "'nosuch': unknown schedule"},
        {"monday", "'monday': unknown schedule or day"},
        {"mon,,tue", "item 2 is empty"},
        {"mon,", "item 2 is empty"},
        {",mon", "item 1 is empty"},
        {"mon, ,tue", "item 2 is empty"},
        {"", "empty"},
        {"   ", "empty"},
        {"@@@", "'@@@': not a day"},
        {"Lunch", "'Lunch': not a day"},
        {"mon_fri!", "'mon_fri!'"},
        {"mon-fri 12:00-13:00 extra", "too many words"},
        {"mon fri sat sun", "too many words"},
        {"12:00", "'12:00': bad time range"},
        {"12:00-", "bad time range"},
        {"-13:00", "'-13:00'"},
        {"1200-1300", "'1200-1300': bad date"},
        {"9:0-17:00", "bad time range"},
        {"123:00-13:00", "bad time range"},
        {"12:00-13:00x", "bad time range"},
        {"12:00 - 13:00", "'12:00 - 13:00'"},
        {"12:00-13:00 mon", "the time range comes after"},
        {"mon 12:00", "'mon 12:00': bad time range"},
        {"mon sat", "'mon sat': bad time range"},
        {"2026-12-24..", "'2026-12-24..': bad date"},
        {"2026-12-24...2026-12-25", "bad date"},
        {"20261224", "'20261224': bad date"},
        {"2026-1-24", "bad date"},
        {"2026-12-24 2026-12-25", "bad time range"},
        {"mon-mon", "'mon-mon': day range with equal ends"},
        {"fri-fri 09:00-10:00", "equal ends"},
        {"always never", "bad day 'always'"},
        {"mon-", "'mon-'"},
        {"-fri", "'-fri'"},
    };
    struct sched_table st;

    sched_example(&st);
    for (size_t i = 0; i < N_ELEM(t); i++) {
        char err[256] = "";
        struct timewin *w = timewin_parse(t[i].expr, resolve, &st, err, sizeof(err));
        if (w != NULL) {
            timewin_free(w);
            fail_msg("case %zu: '%s' parsed but must not", i, t[i].expr);
        }
        if (strstr(err, t[i].in_err) == NULL)
            fail_msg("case %zu: '%s': error \"%s\" lacks \"%s\"", i, t[i].expr, err,
                     t[i].in_err);
    }
    sched_free(&st);
}

static void
test_parse_error_edges(void **state)
{
    (void)state;
    char err[256], expr[2048], name[TIMEWIN_MAX_NAME + 2];
    struct timewin *w;

    /* No resolver: every name is unknown. */
    assert_null(timewin_parse("lunch", NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "'lunch': unknown schedule"));

    assert_null(timewin_parse(NULL, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "empty"));

    /* err may be absent or tiny; still no crash and still NUL-terminated. */
    assert_null(timewin_parse("mox", NULL, NULL, NULL, 0));
    memset(err, 'x', sizeof(err));
    assert_null(timewin_parse("mox", NULL, NULL, err, 4));
    assert_int_equal(strlen(err), 3);

    /* 64 items are fine, 65 are not. */
    expr[0] = '\0';
    for (int i = 0; i < TIMEWIN_MAX_ITEMS; i++)
        strcat(expr, i ? ",mon" : "mon");
    w = timewin_parse(expr, NULL, NULL, err, sizeof(err));
    assert_non_null(w);
    timewin_free(w);
    strcat(expr, ",tue");
    assert_null(timewin_parse(expr, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "too many items"));

    /* Names: 63 characters may be looked up, 64 are refused as such. */
    memset(name, 'a', TIMEWIN_MAX_NAME);
    name[TIMEWIN_MAX_NAME] = '\0';
    assert_null(timewin_parse(name, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown schedule"));
    strcat(name, "a");
    assert_null(timewin_parse(name, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "longer than 63"));

    /* An absurdly long item is cut short in the message. */
    memset(expr, '9', 1000);
    expr[1000] = '\0';
    assert_null(timewin_parse(expr, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "item too long"));
    assert_true(strlen(err) < 100);
}

static void
test_describe(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *norm;
    } t[] = {
        {"mon-fri 12:00-13:30", "mon-fri 12:00-13:30"},
        {"MON-Fri   9:00-17:00", "mon-fri 09:00-17:00"},
        {"sat-sun", "sat-sun"},
        {"\t17:30-24:00 ,  mon ", "17:30-24:00, mon"},
        {"fri-mon", "fri-mon"},
        {"fri 22:00-02:00", "fri 22:00-02:00"},
        {"22:00-00:00", "22:00-00:00"},
        {"00:00-24:00", "00:00-24:00"},
        {"2026-12-24", "2026-12-24"},
        {"2026-12-24..2026-12-24", "2026-12-24"},
        {"2026-12-24..2026-12-31 09:00-12:00", "2026-12-24..2026-12-31 09:00-12:00"},
        {"2024-02-29, 2000-02-29", "2024-02-29, 2000-02-29"},
        {"1969-12-31", "1969-12-31"},
        {"ALWAYS, Never, lunch, after-hours", "always, never, lunch, after-hours"},
        {"workdays", "workdays"},
    };
    struct sched_table st;
    char buf[256];

    sched_example(&st);
    for (size_t i = 0; i < N_ELEM(t); i++) {
        struct timewin *w = parse_ok(t[i].expr, &st);
        size_t n = timewin_describe(w, buf, sizeof(buf));
        timewin_free(w);
        assert_int_equal(n, strlen(t[i].norm));
        if (strcmp(buf, t[i].norm) != 0)
            fail_msg("case %zu: '%s' described as '%s', want '%s'", i, t[i].expr, buf,
                     t[i].norm);
    }

    /* A schedule with an exception. */
    struct timewin *w = parse_ok("mon-fri", &st);
    timewin_set_except(w, parse_ok("2026-12-25", &st));
    timewin_describe(w, buf, sizeof(buf));
    assert_string_equal(buf, "mon-fri except 2026-12-25");
    timewin_set_except(w, parse_ok("2026-12-24 12:00-24:00, holidays", &st));
    timewin_describe(w, buf, sizeof(buf));
    assert_string_equal(buf, "mon-fri except (2026-12-24 12:00-24:00, holidays)");

    /* Truncation: like snprintf. */
    assert_int_equal(timewin_describe(w, buf, 8), strlen(
        "mon-fri except (2026-12-24 12:00-24:00, holidays)"));
    assert_string_equal(buf, "mon-fri");
    assert_int_equal(timewin_describe(w, buf, 1), 49);
    assert_string_equal(buf, "");
    assert_int_equal(timewin_describe(w, NULL, 0), 49);
    timewin_free(w);
    sched_free(&st);
}

static void
test_name_ok(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int ok;
    } t[] = {
        {"lunch", 1}, {"after-hours", 1}, {"shift_2", 1}, {"sunrise", 1}, {"monday", 1},
        {"a", 1}, {"mon", 0}, {"sun", 0}, {"mon-fri", 0}, {"fri-mon", 0}, {"mon-mon", 0},
        {"always", 0}, {"never", 0}, {"Lunch", 0}, {"9to5", 0}, {"-x", 0}, {"_x", 0},
        {"", 0}, {"a b", 0}, {"a.b", 0},
    };
    char name[TIMEWIN_MAX_NAME + 2];

    for (size_t i = 0; i < N_ELEM(t); i++)
        if (timewin_name_ok(t[i].name) != t[i].ok)
            fail_msg("case %zu: '%s': want %d", i, t[i].name, t[i].ok);
    assert_false(timewin_name_ok(NULL));
    memset(name, 'z', TIMEWIN_MAX_NAME);
    name[TIMEWIN_MAX_NAME] = '\0';
    assert_true(timewin_name_ok(name));
    strcat(name, "z");
    assert_false(timewin_name_ok(name));
}

/* ---------------------------------------------------------------------------
 * Matching
 * ------------------------------------------------------------------------- */

static void
test_match_boundaries(void **state)
{
    (void)state;
    /* 2026-11-30 is a Monday. Start inclusive, end exclusive. */
    static const struct mcase c[] = {
        {"mon-fri 12:00-13:30", "2026-11-30 11:59", 0},
        {"mon-fri 12:00-13:30", "2026-11-30 12:00", 1},
        {"mon-fri 12:00-13:30", "2026-11-30 13:29", 1},
        {"mon-fri 12:00-13:30", "2026-11-30 13:30", 0},
        {"mon-fri 12:00-13:30", "2026-12-04 12:30", 1}, /* fri */
        {"mon-fri 12:00-13:30", "2026-12-05 12:30", 0}, /* sat */
        {"mon-fri 12:00-13:30", "2026-12-06 12:30", 0}, /* sun */
        {"17:30-24:00", "2026-11-30 17:29", 0},
        {"17:30-24:00", "2026-11-30 17:30", 1},
        {"17:30-24:00", "2026-11-30 23:59", 1},
        {"17:30-24:00", "2026-12-01 00:00", 0},
        {"00:00-24:00", "2026-12-01 00:00", 1},
        {"00:00-24:00", "2026-12-01 23:59", 1},
        {"00:00-00:01", "2026-12-01 00:00", 1},
        {"00:00-00:01", "2026-12-01 00:01", 0},
        {"mon", "2026-11-30 00:00", 1},
        {"mon", "2026-11-30 23:59", 1},
        {"mon", "2026-12-01 00:00", 0},
        {"mon", "2026-11-29 23:59", 0},
        {"sat-sun", "2026-12-05 00:00", 1},
        {"sat-sun", "2026-12-06 23:59", 1},
        {"sat-sun", "2026-12-07 00:00", 0},
        {"sat-sun", "2026-12-04 23:59", 0},
        {" 9:00-17:00", "2026-12-06 09:00", 1},
        {"mon, wed", "2026-12-02 10:00", 1},
        {"mon, wed", "2026-12-01 10:00", 0},
        {"tue 10:00-11:00, thu 14:00-15:00", "2026-12-03 14:30", 1},
        {"tue 10:00-11:00, thu 14:00-15:00", "2026-12-03 10:30", 0},
        {"lunch", "2026-11-30 12:45", 1},
        {"lunch", "2026-11-30 14:00", 0},
        {"after-hours", "2026-11-30 17:45", 1},
        {"after-hours", "2026-12-05 09:00", 1},
        {"after-hours", "2026-11-30 09:00", 0},
        {"lunch, after-hours", "2026-11-30 12:00", 1},
        {"lunch, after-hours", "2026-11-30 17:30", 1},
        {"lunch, after-hours", "2026-11-30 15:00", 0},
    };
    run_matches(c, N_ELEM(c));
}

static void
test_match_overnight(void **state)
{
    (void)state;
    /* 2026-12-04 is a Friday. The part after midnight belongs to the day the
     * window starts on. */
    static const struct mcase c[] = {
        {"fri 22:00-02:00", "2026-12-04 21:59", 0},
        {"fri 22:00-02:00", "2026-12-04 22:00", 1},
        {"fri 22:00-02:00", "2026-12-04 23:59", 1},
        {"fri 22:00-02:00", "2026-12-05 00:00", 1}, /* sat */
        {"fri 22:00-02:00", "2026-12-05 01:30", 1},
        {"fri 22:00-02:00", "2026-12-05 01:59", 1},
        {"fri 22:00-02:00", "2026-12-05 02:00", 0},
        {"fri 22:00-02:00", "2026-12-04 01:30", 0}, /* fri early: thursday's night */
        {"fri 22:00-02:00", "2026-12-05 22:30", 0}, /* sat evening */
        {"sun 22:00-02:00", "2026-12-07 01:00", 1}, /* monday */
        {"sun 22:00-02:00", "2026-12-06 01:00", 0},
        {"sun 22:00-02:00", "2026-12-06 23:00", 1},
        {"sun 22:00-02:00", "2026-12-07 02:00", 0},
        {"mon-fri 22:00-06:00", "2026-12-05 05:59", 1}, /* sat morning: fri's night */
        {"mon-fri 22:00-06:00", "2026-12-06 05:59", 0}, /* sun morning: sat's night */
        {"mon-fri 22:00-06:00", "2026-11-30 03:00", 0}, /* mon morning: sun's night */
        {"mon-fri 22:00-06:00", "2026-12-01 03:00", 1},
        {"22:00-00:00", "2026-12-01 23:59", 1},
        {"22:00-00:00", "2026-12-02 00:00", 0},
        {"23:59-00:01", "2026-12-01 23:59", 1},
        {"23:59-00:01", "2026-12-02 00:00", 1},
        {"23:59-00:01", "2026-12-02 00:01", 0},
        /* across a month and a year */
        {"mon 22:00-02:00", "2026-12-01 01:00", 1},
        {"thu 22:00-02:00", "2027-01-01 01:00", 1}, /* 2026-12-31 is a thursday */
        {"2026-12-31 22:00-02:00", "2027-01-01 01:59", 1},
        {"2026-12-31 22:00-02:00", "2027-01-01 02:00", 0},
        {"2026-12-31 22:00-02:00", "2026-12-31 01:00", 0},
        {"2026-11-30 23:00-01:00", "2026-12-01 00:30", 1},
    };
    run_matches(c, N_ELEM(c));
}

static void
test_match_wrap_days(void **state)
{
    (void)state;
    /* Week of 2026-11-30 (mon) .. 2026-12-06 (sun). */
    static const struct mcase c[] = {
        {"fri-mon", "2026-11-30 10:00", 1}, /* mon */
        {"fri-mon", "2026-12-01 10:00", 0}, /* tue */
        {"fri-mon", "2026-12-02 10:00", 0}, /* wed */
        {"fri-mon", "2026-12-03 10:00", 0}, /* thu */
        {"fri-mon", "2026-12-04 10:00", 1}, /* fri */
        {"fri-mon", "2026-12-05 10:00", 1}, /* sat */
        {"fri-mon", "2026-12-06 10:00", 1}, /* sun */
        {"sun-mon", "2026-12-06 10:00", 1},
        {"sun-mon", "2026-12-07 10:00", 1},
        {"sun-mon", "2026-12-05 10:00", 0},
        {"tue-mon", "2026-12-05 10:00", 1}, /* the whole week */
        {"sat-tue 08:00-09:00", "2026-12-01 08:30", 1},
        {"sat-tue 08:00-09:00", "2026-12-02 08:30", 0},
        {"Fri-MON", "2026-12-05 10:00", 1},
    };
    run_matches(c, N_ELEM(c));
}

static void
test_match_dates(void **state)
{
    (void)state;
    static const struct mcase c[] = {
        {"2026-12-24", "2026-12-23 23:59", 0},
        {"2026-12-24", "2026-12-24 00:00", 1},
        {"2026-12-24", "2026-12-24 23:59", 1},
        {"2026-12-24", "2026-12-25 00:00", 0},
        {"2026-12-24", "2025-12-24 12:00", 0}, /* another year */
        {"2026-12-24..2026-12-31", "2026-12-31 23:59", 1},
        {"2026-12-24..2026-12-31", "2027-01-01 00:00", 0},
        {"2026-12-24..2026-12-31", "2026-12-27 10:00", 1},
        {"2026-11-28..2026-12-02", "2026-11-30 10:00", 1}, /* across a month */
        {"2026-11-28..2026-12-02", "2026-12-02 10:00", 1},
        {"2026-11-28..2026-12-02", "2026-12-03 10:00", 0},
        {"2026-12-30..2027-01-02", "2026-12-31 10:00", 1}, /* across a year */
        {"2026-12-30..2027-01-02", "2027-01-01 10:00", 1},
        {"2026-12-30..2027-01-02", "2027-01-02 23:59", 1},
        {"2026-12-30..2027-01-02", "2027-01-03 00:00", 0},
        {"2026-12-30..2027-01-02", "2026-12-29 23:59", 0},
        {"2028-02-28..2028-03-01", "2028-02-29 12:00", 1}, /* leap day */
        {"2024-02-29", "2024-02-29 12:00", 1},
        {"2024-02-29", "2024-03-01 12:00", 0},
        {"2026-12-24 09:00-12:00", "2026-12-24 08:59", 0},
        {"2026-12-24 09:00-12:00", "2026-12-24 09:00", 1},
        {"2026-12-24 09:00-12:00", "2026-12-24 12:00", 0},
        {"2026-12-24 09:00-12:00", "2026-12-23 10:00", 0},
        {"2026-12-24..2026-12-26 09:00-12:00", "2026-12-25 10:00", 1},
        {"2026-12-24..2026-12-26 09:00-12:00", "2026-12-25 13:00", 0},
        {"holidays", "2027-01-01 12:00", 1},
        {"holidays", "2026-12-30 12:00", 0},
        {"mon-fri 09:00-17:00, 2026-12-26", "2026-12-26 20:00", 1}, /* a saturday */
    };
    run_matches(c, N_ELEM(c));
}

static void
test_match_schedules_except(void **state)
{
    (void)state;
    /* workdays = mon-fri except holidays (12-24..12-26, 12-31, 01-01). */
    static const struct mcase c[] = {
        {"workdays", "2026-12-23 10:00", 1}, /* wed */
        {"workdays", "2026-12-24 10:00", 0}, /* thu, holiday */
        {"workdays", "2026-12-25 10:00", 0}, /* fri, holiday */
        {"workdays", "2026-12-26 10:00", 0}, /* sat */
        {"workdays", "2026-12-28 10:00", 1}, /* mon */
        {"workdays", "2026-12-31 10:00", 0},
        {"workdays", "2027-01-01 10:00", 0},
        {"workdays", "2027-01-04 10:00", 1},
        {"workdays, sat", "2026-12-26 10:00", 1},
        {"workdays, sat", "2026-12-25 10:00", 0},
        {"free-time", "2026-12-24 10:00", 1},
        {"free-time", "2026-12-23 12:15", 1},
        {"free-time", "2026-12-23 10:00", 0},
    };
    run_matches(c, N_ELEM(c));

    /* An exception with a time: Christmas Eve afternoon off. */
    struct sched_table st;
    struct tm tm;

    memset(&st, 0, sizeof(st));
    sched_add(&st, "office", "mon-fri 09:00-17:00", "2026-12-24 12:00-24:00");
    sched_add(&st, "office-or-sat", "office, sat", NULL);
    tm = tm_str("2026-12-24 11:59");
    assert_true(timewin_match(st.w[0], &tm));
    assert_true(timewin_match(st.w[1], &tm));
    tm = tm_str("2026-12-24 12:00");
    assert_false(timewin_match(st.w[0], &tm));
    assert_false(timewin_match(st.w[1], &tm));
    tm = tm_str("2026-12-23 12:00");
    assert_true(timewin_match(st.w[0], &tm));

    /* Replacing and removing the exception. */
    timewin_set_except(st.w[0], parse_ok("wed", &st));
    assert_false(timewin_match(st.w[0], &tm));
    timewin_set_except(st.w[0], NULL);
    assert_true(timewin_match(st.w[0], &tm));
    sched_free(&st);
}

static void
test_nesting_depth(void **state)
{
    (void)state;
    static const char *names[] = {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"};
    struct sched_table st;
    char err[256];
    struct tm tm = tm_str("2026-11-30 10:00");

    memset(&st, 0, sizeof(st));
    sched_add(&st, names[0], "mon", NULL);
    /* s1 refers to s0, ..., s8 to s7: eight levels of references. */
    for (int i = 1; i <= TIMEWIN_MAX_DEPTH; i++)
        sched_add(&st, names[i], names[i - 1], NULL);
    assert_true(timewin_match(st.w[TIMEWIN_MAX_DEPTH], &tm));
    tm = tm_str("2026-12-01 10:00");
    assert_false(timewin_match(st.w[TIMEWIN_MAX_DEPTH], &tm));
    assert_null(timewin_parse("s8", resolve, &st, err, sizeof(err)));
    assert_non_null(strstr(err, "'s8': schedules nest more than 8 deep"));
    assert_null(timewin_parse("mon, s8", resolve, &st, err, sizeof(err)));

    /* References inside an exception count too. */
    struct timewin *w = parse_ok("tue", &st);
    struct timewin *ex = parse_ok("s7", &st);
    timewin_set_except(w, ex);
    st.name[st.n] = "deep";
    st.w[st.n++] = w;
    assert_null(timewin_parse("deep", resolve, &st, err, sizeof(err)));
    assert_non_null(strstr(err, "nest more than"));
    sched_free(&st);
}

static void
test_always_never(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        int always, never;
    } t[] = {
        {"always", 1, 0},
        {"never", 0, 1},
        {"never, never", 0, 1},
        {"never, always", 1, 0},
        {"mon-sun", 1, 0},
        {"tue-mon", 1, 0},
        {"00:00-24:00", 1, 0},
        {"mon-sun 00:00-24:00", 1, 0},
        {"mon-fri", 0, 0},
        {"00:00-23:59", 0, 0},
        {"mon-sun 22:00-21:00", 0, 0},
        {"2026-01-01..2026-12-31", 0, 0},
        {"lunch", 0, 0},
        {"never, lunch", 0, 0},
    };
    struct sched_table st;
    struct tm times[3] = {tm_str("2026-11-30 03:00"), tm_str("2026-12-06 23:59"),
                          tm_str("1999-12-31 12:00")};

    sched_example(&st);
    for (size_t i = 0; i < N_ELEM(t); i++) {
        struct timewin *w = parse_ok(t[i].expr, &st);
        if (timewin_is_always(w) != t[i].always || timewin_is_never(w) != t[i].never)
            fail_msg("case %zu: '%s': always %d never %d", i, t[i].expr, timewin_is_always(w),
                     timewin_is_never(w));
        for (size_t k = 0; k < N_ELEM(times); k++) {
            if (t[i].always)
                assert_true(timewin_match(w, &times[k]));
            if (t[i].never)
                assert_false(timewin_match(w, &times[k]));
        }
        timewin_free(w);
    }

    /* Through schedules and exceptions. */
    sched_add(&st, "any", "always", NULL);
    sched_add(&st, "none", "never", NULL);
    sched_add(&st, "any-but-xmas", "always", "2026-12-25");
    sched_add(&st, "any-but-none", "always", "none");
    sched_add(&st, "nothing", "mon", "any");
    static const struct {
        const char *expr;
        int always, never;
    } r[] = {
        {"any", 1, 0},          {"none", 0, 1},         {"any-but-xmas", 0, 0},
        {"any-but-none", 1, 0}, {"nothing", 0, 1},      {"none, nothing", 0, 1},
        {"none, mon", 0, 0},
    };
    for (size_t i = 0; i < N_ELEM(r); i++) {
        struct timewin *w = parse_ok(r[i].expr, &st);
        if (timewin_is_always(w) != r[i].always || timewin_is_never(w) != r[i].never)
            fail_msg("ref case %zu: '%s': always %d never %d", i, r[i].expr,
                     timewin_is_always(w), timewin_is_never(w));
        timewin_free(w);
    }
    struct tm xmas = tm_str("2026-12-25 10:00");
    assert_false(timewin_match(resolve(&st, "any-but-xmas"), &xmas));
    assert_true(timewin_match(resolve(&st, "any-but-xmas"), &times[0]));
    assert_false(timewin_match(resolve(&st, "nothing"), &times[0]));
    sched_free(&st);
}

/* Independent model of a week window: the instant lies in the interval
 * that starts on day s (today or yesterday) if s is one of the days. */
static int
oracle(unsigned mask, int from, int to, int64_t day, int minute)
{
    int64_t t = day * 1440 + minute;

    if (from < 0)
        return (mask >> ((day + 3) % 7)) & 1u;
    int len = to > from ? to - from : to + 1440 - from;
    for (int64_t s = day - 1; s <= day; s++) {
        int64_t start = s * 1440 + from;
        if (((mask >> ((s + 3) % 7)) & 1u) && t >= start && t < start + len)
            return 1;
    }
    return 0;
}

static void
test_match_exhaustive(void **state)
{
    (void)state;
    static const char *dn[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    static const struct {
        int from, to;
    } times[] = {
        {-1, -1},   {540, 1020}, {1320, 120}, {0, 1440},  {1439, 1},
        {720, 1440}, {0, 1},     {1050, 540}, {1439, 1440}, {60, 0},
    };
    /* 2026-11-29 (sun) .. 2026-12-07: a whole week plus the day before. */
    const int64_t first = 20786;

    for (int f = 0; f < 7; f++) {
        for (int t = 0; t < 7; t++) {
            for (size_t k = 0; k < N_ELEM(times); k++) {
                char expr[96], tr[48] = "";
                unsigned mask = 0;
                int n = 0;

                for (int i = f;; i = (i + 1) % 7) {
                    mask |= 1u << i;
                    if (i == t)
                        break;
                }
                n = snprintf(expr, sizeof(expr), "%s", dn[f]);
                if (t != f)
                    n += snprintf(expr + n, sizeof(expr) - (size_t)n, "-%s", dn[t]);
                if (times[k].from >= 0) {
                    snprintf(tr, sizeof(tr), " %02d:%02d-%02d:%02d", times[k].from / 60,
                             times[k].from % 60, times[k].to / 60, times[k].to % 60);
                    snprintf(expr + n, sizeof(expr) - (size_t)n, "%s", tr);
                }
                struct timewin *w = parse_ok(expr, NULL);
                for (int64_t d = first; d < first + 9; d++) {
                    time_t base = (time_t)(d * 86400);
                    for (int m = 0; m < 1440; m++) {
                        time_t s = base + m * 60;
                        struct tm tm;
                        gmtime_r(&s, &tm);
                        int want = oracle(mask, times[k].from, times[k].to, d, m);
                        if (timewin_match(w, &tm) != want)
                            fail_msg("'%s' on day %lld minute %d: want %d", expr,
                                     (long long)d, m, want);
                    }
                }
                timewin_free(w);
            }
        }
    }
}

static void
test_match_uses_date_not_wday(void **state)
{
    (void)state;
    struct timewin *w = parse_ok("mon 12:00-13:00", NULL);
    struct tm tm = {0};

    /* Filled by hand as explain --at might: tm_wday left wrong. */
    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 10;
    tm.tm_mday = 30;
    tm.tm_hour = 12;
    tm.tm_min = 30;
    tm.tm_wday = 3;
    assert_true(timewin_match(w, &tm));
    assert_int_equal(timewin_day_number(&tm), 20787);
    /* Out-of-range fields carry over: Nov 31 11:90 is Tue Dec 1 12:30. */
    tm.tm_mday = 31;
    tm.tm_hour = 11;
    tm.tm_min = 90;
    assert_false(timewin_match(w, &tm));
    assert_int_equal(timewin_day_number(&tm), 20788);
    tm.tm_mday = 30;
    assert_true(timewin_match(w, &tm));
    timewin_free(w);
}

/* ---------------------------------------------------------------------------
 * Quotas, day and week numbers
 * ------------------------------------------------------------------------- */

static void
test_quota(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        unsigned minutes;
        int weekly;
    } t[] = {
        {"30m/day", 1, 30, 0},
        {"2h/day", 1, 120, 0},
        {"90m/day", 1, 90, 0},
        {"1h30m/day", 1, 90, 0},
        {"5h/week", 1, 300, 1},
        {"1m/day", 1, 1, 0},
        {"24h/day", 1, 1440, 0},
        {"1440m/day", 1, 1440, 0},
        {"168h/week", 1, 10080, 1},
        {"30M/Day", 1, 30, 0},
        {"0h30m/day", 1, 30, 0},
        {"0m/day", 0, 0, 0},
        {"0h/week", 0, 0, 0},
        {"30/day", 0, 0, 0},
        {"30m/month", 0, 0, 0},
        {"30m/", 0, 0, 0},
        {"30m", 0, 0, 0},
        {"10000h/day", 0, 0, 0},
        {"1441m/day", 0, 0, 0},
        {"25h/day", 0, 0, 0},
        {"169h/week", 0, 0, 0},
        {"99999999999999999999m/day", 0, 0, 0},
        {"1h60m/day", 0, 0, 0},
        {"30m1h/day", 0, 0, 0},
        {"1h30/day", 0, 0, 0},
        {"30s/day", 0, 0, 0},
        {"-30m/day", 0, 0, 0},
        {" 30m/day", 0, 0, 0},
        {"30m /day", 0, 0, 0},
        {"30m/day ", 0, 0, 0},
        {"m/day", 0, 0, 0},
        {"", 0, 0, 0},
    };

    for (size_t i = 0; i < N_ELEM(t); i++) {
        char err[256] = "";
        unsigned minutes = 7;
        int weekly = 7;
        int rc = timewin_parse_quota(t[i].in, &minutes, &weekly, err, sizeof(err));
        if (t[i].ok) {
            if (rc != 0 || minutes != t[i].minutes || weekly != t[i].weekly)
                fail_msg("case %zu: '%s': rc %d minutes %u weekly %d (%s)", i, t[i].in, rc,
                         minutes, weekly, err);
        } else {
            if (rc != -1 || err[0] == '\0' || minutes != 7 || weekly != 7)
                fail_msg("case %zu: '%s' accepted or no message", i, t[i].in);
        }
    }
    char err[256];
    unsigned minutes;
    int weekly;
    assert_int_equal(timewin_parse_quota(NULL, &minutes, &weekly, err, sizeof(err)), -1);
    timewin_parse_quota("30m/month", &minutes, &weekly, err, sizeof(err));
    assert_non_null(strstr(err, "30m/month"));
}

static void
test_day_week_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *at;
        int32_t day, week;
    } t[] = {
        {"1970-01-01 00:00", 0, -3},         /* a thursday */
        {"1970-01-05 12:00", 4, 4},          /* the first monday */
        {"1969-12-31 23:59", -1, -3},
        {"1969-12-29 00:00", -3, -3},
        {"2000-03-01 08:00", 11017, 11015},
        {"2024-02-29 23:59", 19782, 19779},
        {"2026-11-30 00:00", 20787, 20787},  /* monday */
        {"2026-11-30 23:59", 20787, 20787},
        {"2026-12-06 23:59", 20793, 20787},  /* sunday: same week */
        {"2026-12-07 00:00", 20794, 20794},
        {"2026-11-29 23:59", 20786, 20780},
        {"2027-01-01 00:00", 20819, 20815},  /* week across the year */
        {"2026-12-28 00:00", 20815, 20815},
    };

    for (size_t i = 0; i < N_ELEM(t); i++) {
        struct tm tm = tm_str(t[i].at);
        if (timewin_day_number(&tm) != t[i].day || timewin_week_number(&tm) != t[i].week)
            fail_msg("case %zu: %s: day %d week %d, want %d %d", i, t[i].at,
                     timewin_day_number(&tm), timewin_week_number(&tm), t[i].day,
                     t[i].week);
    }

    /* Day numbers against timegm for every day of 1900..2100: consecutive,
     * and week numbers are mondays no more than 6 days back. */
    struct tm tm = tm_at(1900, 1, 1, 12, 0);
    int32_t prev = timewin_day_number(&tm) - 1;
    for (;;) {
        time_t s = timegm(&tm);
        int32_t d = timewin_day_number(&tm), w = timewin_week_number(&tm);
        assert_int_equal(d, prev + 1);
        assert_int_equal((int64_t)d * 86400 + 12 * 3600, (int64_t)s);
        assert_true(d - w >= 0 && d - w <= 6);
        assert_int_equal((d - w + 1) % 7, tm.tm_wday); /* tm_wday 1 = monday */
        prev = d;
        if (tm.tm_year >= 200)
            break;
        s += 86400;
        gmtime_r(&s, &tm);
    }
}

/* ---------------------------------------------------------------------------
 * DST: real time zones through the tz database
 * ------------------------------------------------------------------------- */

static char *saved_tz;
static int had_tz;

static int
tz_save(void **state)
{
    (void)state;
    const char *tz = getenv("TZ");

    had_tz = tz != NULL;
    saved_tz = tz != NULL ? strdup(tz) : NULL;
    return 0;
}

static int
tz_restore(void **state)
{
    (void)state;
    if (had_tz)
        setenv("TZ", saved_tz, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved_tz);
    saved_tz = NULL;
    return 0;
}

/* Switches to tz and checks the zone really loaded: without tzdata glibc
 * silently falls back to UTC, and every DST test would test nothing. */
static void
use_tz(const char *tz, long summer_offset)
{
    time_t july = 1782907200; /* 2026-07-01 12:00 UTC */
    struct tm tm;

    setenv("TZ", tz, 1);
    tzset();
    localtime_r(&july, &tm);
    if (tm.tm_gmtoff != summer_offset)
        fail_msg("time zone %s not available (offset %ld): install tzdata", tz,
                 (long)tm.tm_gmtoff);
}

static time_t
utc(int y, int mo, int d, int h, int mi)
{
    struct tm t = {0};

    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    return timegm(&t);
}

static int
match_utc(const struct timewin *w, time_t s)
{
    struct tm tm;

    localtime_r(&s, &tm);
    return timewin_match(w, &tm);
}

static int32_t
day_utc(time_t s)
{
    struct tm tm;

    localtime_r(&s, &tm);
    return timewin_day_number(&tm);
}

static int32_t
week_utc(time_t s)
{
    struct tm tm;

    localtime_r(&s, &tm);
    return timewin_week_number(&tm);
}

/* Minutes in [from, to) at which expr matches. */
static int
count_minutes(const char *expr, time_t from, time_t to)
{
    struct timewin *w = parse_ok(expr, NULL);
    int n = 0;

    for (time_t s = from; s < to; s += 60)
        n += match_utc(w, s);
    timewin_free(w);
    return n;
}

/* Walks every minute of [from, to): the day number may only change at a
 * local 00:00, by one, and the week number only at Monday 00:00. Returns
 * how many minutes carried day number `day`. */
static int
check_day_changes(time_t from, time_t to, int32_t day)
{
    int32_t prev_d = day_utc(from), prev_w = week_utc(from);
    int n = 0;

    for (time_t s = from; s < to; s += 60) {
        struct tm tm;
        localtime_r(&s, &tm);
        int32_t d = timewin_day_number(&tm), w = timewin_week_number(&tm);
        int midnight = tm.tm_hour == 0 && tm.tm_min == 0;
        if (d != prev_d && !(midnight && d == prev_d + 1))
            fail_msg("day number %d -> %d at %02d:%02d local (utc %lld)", prev_d, d,
                     tm.tm_hour, tm.tm_min, (long long)s);
        if (w != prev_w && !(midnight && tm.tm_wday == 1 && w == prev_w + 7))
            fail_msg("week number %d -> %d at %02d:%02d local", prev_w, w, tm.tm_hour,
                     tm.tm_min);
        n += d == day;
        prev_d = d;
        prev_w = w;
    }
    return n;
}

static void
test_dst_london(void **state)
{
    (void)state;
    struct timewin *office = parse_ok("mon-fri 09:00-17:00", NULL);

    use_tz("Europe/London", 3600);

    /* Spring: Sunday 2026-03-29 01:00 GMT jumps to 02:00 BST. */
    assert_true(match_utc(office, utc(2026, 3, 30, 8, 30)));  /* 09:30 BST */
    assert_false(match_utc(office, utc(2026, 3, 30, 7, 30))); /* 08:30 BST */
    assert_true(match_utc(office, utc(2026, 3, 30, 15, 59))); /* 16:59 BST */
    assert_false(match_utc(office, utc(2026, 3, 30, 16, 0))); /* 17:00 BST */
    assert_true(match_utc(office, utc(2026, 3, 27, 9, 30)));  /* fri before: GMT */
    assert_false(match_utc(office, utc(2026, 3, 27, 8, 30)));
    /* 01:00-02:00 does not exist that Sunday: no instant matches. */
    time_t from = utc(2026, 3, 28, 12, 0), to = utc(2026, 3, 30, 12, 0);
    assert_int_equal(count_minutes("sun 01:00-02:00", from, to), 0);
    assert_int_equal(count_minutes("2026-03-29 01:00-02:00", from, to), 0);
    assert_int_equal(count_minutes("sun 00:00-02:00", from, to), 60);
    assert_int_equal(count_minutes("sun 01:00-03:00", from, to), 60);
    assert_int_equal(count_minutes("sun", from, to), 23 * 60);
    /* Local midnight to midnight is 23 hours. */
    assert_int_equal(day_utc(utc(2026, 3, 28, 23, 59)), 20540);
    assert_int_equal(day_utc(utc(2026, 3, 29, 0, 0)), 20541);
    assert_int_equal(day_utc(utc(2026, 3, 29, 22, 59)), 20541);
    assert_int_equal(day_utc(utc(2026, 3, 29, 23, 0)), 20542); /* Mon 00:00 BST */
    assert_int_equal(week_utc(utc(2026, 3, 29, 22, 59)), 20535);
    assert_int_equal(week_utc(utc(2026, 3, 29, 23, 0)), 20542);
    assert_int_equal(check_day_changes(from - 86400, to + 86400, 20541), 23 * 60);

    /* Autumn: Sunday 2026-10-25 02:00 BST falls back to 01:00 GMT. */
    from = utc(2026, 10, 24, 12, 0);
    to = utc(2026, 10, 26, 12, 0);
    assert_int_equal(count_minutes("sun 01:00-02:00", from, to), 120);
    assert_int_equal(count_minutes("2026-10-25 01:00-02:00", from, to), 120);
    struct timewin *w = parse_ok("sun 01:00-02:00", NULL);
    assert_true(match_utc(w, utc(2026, 10, 25, 0, 30)));  /* 01:30 BST */
    assert_true(match_utc(w, utc(2026, 10, 25, 1, 30)));  /* 01:30 GMT */
    assert_false(match_utc(w, utc(2026, 10, 25, 2, 0)));  /* 02:00 GMT */
    assert_false(match_utc(w, utc(2026, 10, 24, 23, 59))); /* 00:59 BST */
    timewin_free(w);
    assert_int_equal(count_minutes("sun", from, to), 25 * 60);
    assert_true(match_utc(office, utc(2026, 10, 26, 9, 30)));  /* 09:30 GMT */
    assert_false(match_utc(office, utc(2026, 10, 26, 8, 30))); /* 08:30 GMT */
    assert_true(match_utc(office, utc(2026, 10, 23, 8, 30)));  /* fri before: BST */
    assert_int_equal(day_utc(utc(2026, 10, 24, 22, 59)), 20750);
    assert_int_equal(day_utc(utc(2026, 10, 24, 23, 0)), 20751); /* Sun 00:00 BST */
    assert_int_equal(day_utc(utc(2026, 10, 25, 23, 59)), 20751);
    assert_int_equal(day_utc(utc(2026, 10, 26, 0, 0)), 20752); /* Mon 00:00 GMT */
    assert_int_equal(week_utc(utc(2026, 10, 26, 0, 0)), 20752);
    assert_int_equal(check_day_changes(from - 86400, to + 86400, 20751), 25 * 60);
    timewin_free(office);
}

static void
test_dst_new_york(void **state)
{
    (void)state;
    struct timewin *office = parse_ok("mon-fri 09:00-17:00", NULL);

    use_tz("America/New_York", -4 * 3600);

    /* Spring: Sunday 2026-03-08 02:00 EST (07:00 UTC) jumps to 03:00 EDT. */
    assert_true(match_utc(office, utc(2026, 3, 9, 13, 30)));  /* 09:30 EDT */
    assert_false(match_utc(office, utc(2026, 3, 9, 12, 30))); /* 08:30 EDT */
    assert_false(match_utc(office, utc(2026, 3, 9, 21, 0)));  /* 17:00 EDT */
    assert_true(match_utc(office, utc(2026, 3, 6, 14, 30)));  /* fri before: EST */
    assert_false(match_utc(office, utc(2026, 3, 6, 13, 30)));
    time_t from = utc(2026, 3, 7, 12, 0), to = utc(2026, 3, 9, 12, 0);
    assert_int_equal(count_minutes("sun 02:00-03:00", from, to), 0);
    assert_int_equal(count_minutes("sun 01:00-02:00", from, to), 60);
    assert_int_equal(count_minutes("sun 02:00-04:00", from, to), 60);
    assert_int_equal(count_minutes("sat 22:00-02:30", from, to), 4 * 60);
    assert_int_equal(count_minutes("sun", from, to), 23 * 60);
    assert_int_equal(day_utc(utc(2026, 3, 8, 4, 59)), 20519);
    assert_int_equal(day_utc(utc(2026, 3, 8, 5, 0)), 20520); /* Sun 00:00 EST */
    assert_int_equal(day_utc(utc(2026, 3, 9, 3, 59)), 20520);
    assert_int_equal(day_utc(utc(2026, 3, 9, 4, 0)), 20521); /* Mon 00:00 EDT */
    assert_int_equal(week_utc(utc(2026, 3, 9, 3, 59)), 20514);
    assert_int_equal(week_utc(utc(2026, 3, 9, 4, 0)), 20521);
    assert_int_equal(check_day_changes(from - 86400, to + 86400, 20520), 23 * 60);

    /* Autumn: Sunday 2026-11-01 02:00 EDT (06:00 UTC) falls back to 01:00 EST. */
    from = utc(2026, 10, 31, 12, 0);
    to = utc(2026, 11, 2, 12, 0);
    assert_int_equal(count_minutes("sun 01:00-02:00", from, to), 120);
    assert_int_equal(count_minutes("sat 23:00-02:00", from, to), 4 * 60);
    struct timewin *w = parse_ok("sun 01:00-02:00", NULL);
    assert_true(match_utc(w, utc(2026, 11, 1, 5, 30)));  /* 01:30 EDT */
    assert_true(match_utc(w, utc(2026, 11, 1, 6, 30)));  /* 01:30 EST */
    assert_false(match_utc(w, utc(2026, 11, 1, 7, 0)));  /* 02:00 EST */
    assert_false(match_utc(w, utc(2026, 11, 1, 4, 59))); /* 00:59 EDT */
    timewin_free(w);
    assert_int_equal(count_minutes("sun", from, to), 25 * 60);
    assert_true(match_utc(office, utc(2026, 11, 2, 14, 30)));  /* 09:30 EST */
    assert_false(match_utc(office, utc(2026, 11, 2, 13, 30))); /* 08:30 EST */
    assert_int_equal(day_utc(utc(2026, 11, 1, 3, 59)), 20757);
    assert_int_equal(day_utc(utc(2026, 11, 1, 4, 0)), 20758); /* Sun 00:00 EDT */
    assert_int_equal(day_utc(utc(2026, 11, 2, 4, 59)), 20758);
    assert_int_equal(day_utc(utc(2026, 11, 2, 5, 0)), 20759); /* Mon 00:00 EST */
    assert_int_equal(week_utc(utc(2026, 11, 2, 5, 0)), 20759);
    assert_int_equal(check_day_changes(from - 86400, to + 86400, 20758), 25 * 60);
    timewin_free(office);
}

/* ---------------------------------------------------------------------------
 * explain --at
 * ------------------------------------------------------------------------- */

static void
test_parse_at(void **state)
{
    (void)state;
    /* Today is Thursday 2026-12-03; day names mean the next such day,
     * today when today is that day, across a month and a year end. */
    static const struct {
        const char *in;
        int y, m, d, hh, mm, wday; /* wday: 0 = Sunday, as in struct tm */
    } ok[] = {
        {"2026-11-30 12:30", 2026, 11, 30, 12, 30, 1},
        {"2026-1-5 9:05", 2026, 1, 5, 9, 5, 1},
        {"  2028-02-29   00:00 ", 2028, 2, 29, 0, 0, 2},
        {"10:00", 2026, 12, 3, 10, 0, 4},
        {"0:00", 2026, 12, 3, 0, 0, 4},
        {"23:59", 2026, 12, 3, 23, 59, 4},
        {"today 08:15", 2026, 12, 3, 8, 15, 4},
        {"tomorrow 09:00", 2026, 12, 4, 9, 0, 5},
        {"TOMORROW 9:00", 2026, 12, 4, 9, 0, 5},
        {"thu 10:00", 2026, 12, 3, 10, 0, 4},
        {"Thursday 10:00", 2026, 12, 3, 10, 0, 4},
        {"fri 10:00", 2026, 12, 4, 10, 0, 5},
        {"sun 17:45", 2026, 12, 6, 17, 45, 0},
        {"mon 10:00", 2026, 12, 7, 10, 0, 1},
        {"MONDAY 10:00", 2026, 12, 7, 10, 0, 1},
        {"wed\t12:00", 2026, 12, 9, 12, 0, 3},
        {"wednesday 12:00", 2026, 12, 9, 12, 0, 3},
    };
    struct tm today = {.tm_year = 126, .tm_mon = 11, .tm_mday = 3, .tm_hour = 16, .tm_min = 20};
    for (size_t i = 0; i < N_ELEM(ok); i++) {
        struct tm out;
        char err[256] = "";
        if (timewin_parse_at(ok[i].in, &today, &out, err, sizeof(err)) != 0)
            fail_msg("'%s': %s", ok[i].in, err);
        if (out.tm_year + 1900 != ok[i].y || out.tm_mon + 1 != ok[i].m ||
            out.tm_mday != ok[i].d || out.tm_hour != ok[i].hh || out.tm_min != ok[i].mm ||
            out.tm_wday != ok[i].wday || out.tm_sec != 0)
            fail_msg("'%s': got %04d-%02d-%02d %02d:%02d wday %d", ok[i].in, out.tm_year + 1900,
                     out.tm_mon + 1, out.tm_mday, out.tm_hour, out.tm_min, out.tm_wday);
    }
    /* Across a year end: Saturday 2026-12-26 + "fri" is 2027-01-01. */
    struct tm dec26 = {.tm_year = 126, .tm_mon = 11, .tm_mday = 26};
    struct tm out;
    char err[256];
    assert_int_equal(timewin_parse_at("fri 10:00", &dec26, &out, err, sizeof(err)), 0);
    assert_int_equal(out.tm_year, 127);
    assert_int_equal(out.tm_mon, 0);
    assert_int_equal(out.tm_mday, 1);
    assert_int_equal(out.tm_yday, 0);
    assert_int_equal(timewin_parse_at("tomorrow 10:00", &dec26, &out, err, sizeof(err)), 0);
    assert_int_equal(out.tm_mday, 27);
    assert_int_equal(out.tm_yday, 360);

    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "expected"},
        {"   ", "expected"},
        {"tomorrow", "'tomorrow' is no time of day"},
        {"mon", "'mon' is no time of day"},
        {"24:00", "'24:00' is no time of day"},
        {"10:60", "'10:60' is no time of day"},
        {"10", "'10' is no time of day"},
        {"10:00:00", "'10:00:00' is no time of day"},
        {"2026-02-30 10:00", "no such date: 2026-02-30"},
        {"2026-13-01 10:00", "no such date"},
        {"2026-11-30", "no time of day"},
        {"26-11-30 10:00", "'26-11-30' is no date or day"},
        {"next mon 10:00", "expected"},
        {"mo 10:00", "'mo' is no date or day"},
        {"yesterday 10:00", "'yesterday' is no date or day"},
        {"mon 10:00 x", "expected"},
        {"10:00 mon", "'10:00' is no date or day"},
    };
    for (size_t i = 0; i < N_ELEM(bad); i++) {
        err[0] = '\0';
        if (timewin_parse_at(bad[i].in, &today, &out, err, sizeof(err)) != -1)
            fail_msg("'%s' was accepted", bad[i].in);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, err, bad[i].msg);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_error_edges),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test(test_match_boundaries),
        cmocka_unit_test(test_match_overnight),
        cmocka_unit_test(test_match_wrap_days),
        cmocka_unit_test(test_match_dates),
        cmocka_unit_test(test_match_schedules_except),
        cmocka_unit_test(test_nesting_depth),
        cmocka_unit_test(test_always_never),
        cmocka_unit_test(test_match_exhaustive),
        cmocka_unit_test(test_match_uses_date_not_wday),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_day_week_numbers),
        cmocka_unit_test(test_parse_at),
        cmocka_unit_test_setup_teardown(test_dst_london, tz_save, tz_restore),
        cmocka_unit_test_setup_teardown(test_dst_new_york, tz_save, tz_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
