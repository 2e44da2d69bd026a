/* Time windows and quotas as written in `when =`, `except =` and
 * `quota =`. The input is up to three lines:
 *   EXPR          parsed with a resolver that knows a few schedules
 *   EXCEPT        when present, parsed the same and set as the exception
 *   QUOTA         through timewin_parse_quota
 * (the whole input is also tried as a quota). A parsed window is matched at
 * fixed local times, described, and the description parsed again: it must
 * give the same text and the same matches. */
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "timewin.h"

struct named {
    const char *name, *when, *except;
    struct timewin *w;
};

static struct named scheds[] = {
    {"lunch", "mon-fri 12:00-13:30", NULL, NULL},
    {"xmas", "2026-12-24..2026-12-26", NULL, NULL},
    {"workweek", "mon-fri 08:00-18:00", "xmas", NULL},
    {"evenings", "fri-mon 22:00-02:00, lunch", NULL, NULL},
    {"nested", "evenings, workweek, never", NULL, NULL},
};
#define NSCHED (sizeof(scheds) / sizeof(scheds[0]))
static size_t nready; /* a name is known once defined, as in the loader */

static const struct timewin *
resolve(void *arg, const char *name)
{
    (void)arg;
    for (size_t i = 0; i < nready; i++)
        if (strcmp(scheds[i].name, name) == 0)
            return scheds[i].w;
    return NULL;
}

static void
setup(void)
{
    char err[256];
    for (size_t i = 0; i < NSCHED; i++) {
        scheds[i].w = timewin_parse(scheds[i].when, resolve, NULL, err, sizeof(err));
        if (scheds[i].w == NULL) {
            fprintf(stderr, "%s: %s\n", scheds[i].name, err);
            abort();
        }
        if (scheds[i].except != NULL) {
            struct timewin *ex = timewin_parse(scheds[i].except, resolve, NULL, err, sizeof(err));
            if (ex == NULL)
                abort();
            timewin_set_except(scheds[i].w, ex);
        }
        nready = i + 1;
    }
}

static struct tm
at(int y, int mon, int d, int h, int mi)
{
    struct tm t;
    memset(&t, 0, sizeof(t));
    t.tm_year = y - 1900;
    t.tm_mon = mon - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    return t;
}

#define NTIMES 10
static void
times(struct tm *t)
{
    t[0] = at(2026, 11, 30, 12, 31); /* a Monday */
    t[1] = at(2026, 12, 25, 23, 59); /* a Friday */
    t[2] = at(2026, 12, 26, 1, 30);  /* Saturday, after a Friday night */
    t[3] = at(2024, 2, 29, 0, 0);    /* leap day */
    t[4] = at(2027, 1, 3, 24, 0);    /* a Sunday, hour 24 as mktime allows */
    t[5] = at(1970, 1, 1, 0, 0);
    t[6] = at(1969, 12, 31, 23, 59);
    t[7] = at(2100, 3, 1, 13, 0);
    t[8] = at(9999, 12, 31, 12, 0);
    t[9] = at(2026, 6, 14, 17, 30);
}

static void
check_window(struct timewin *w, int has_except)
{
    struct tm t[NTIMES];
    int m[NTIMES];
    times(t);
    for (size_t i = 0; i < NTIMES; i++) {
        m[i] = timewin_match(w, &t[i]);
        FUZZ_CHECK(m[i] == 0 || m[i] == 1);
        (void)timewin_day_number(&t[i]);
        (void)timewin_week_number(&t[i]);
    }
    int always = timewin_is_always(w), never = timewin_is_never(w);
    FUZZ_CHECK(!(always && never));
    for (size_t i = 0; i < NTIMES; i++) {
        if (always)
            FUZZ_CHECK(m[i] == 1);
        if (never)
            FUZZ_CHECK(m[i] == 0);
    }

    char small[8], buf[8192];
    size_t need = timewin_describe(w, small, sizeof(small));
    FUZZ_CHECK(strlen(small) == (need < sizeof(small) ? need : sizeof(small) - 1));
    size_t need2 = timewin_describe(w, buf, sizeof(buf));
    FUZZ_CHECK(need2 == need);
    (void)timewin_describe(w, NULL, 0);
    if (need >= sizeof(buf) || has_except)
        return; /* "X except Y" is not an expression of its own */

    char err[256];
    struct timewin *again = timewin_parse(buf, resolve, NULL, err, sizeof(err));
    if (again == NULL) {
        fprintf(stderr, "description '%s' does not parse: %s\n", buf, err);
        FUZZ_CHECK(again != NULL);
    }
    char buf2[8192];
    timewin_describe(again, buf2, sizeof(buf2));
    FUZZ_CHECK(strcmp(buf, buf2) == 0);
    for (size_t i = 0; i < NTIMES; i++)
        FUZZ_CHECK(timewin_match(again, &t[i]) == m[i]);
    timewin_free(again);
}

static void
quota(const char *s)
{
    char err[256];
    unsigned minutes = 0;
    int weekly = -1;
    if (timewin_parse_quota(s, &minutes, &weekly, err, sizeof(err)) == 0) {
        FUZZ_CHECK(weekly == 0 || weekly == 1);
        FUZZ_CHECK(minutes >= 1 && minutes <= (weekly ? 10080u : 1440u));
    } else {
        FUZZ_CHECK(strlen(err) < sizeof(err));
    }
    /* A tiny error buffer must still be handled. */
    (void)timewin_parse_quota(s, &minutes, &weekly, err, 3);
    (void)timewin_parse_quota(s, &minutes, &weekly, NULL, 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (nready == 0)
        setup();
    char *all = fuzz_strndup(data, size);
    quota(all);
    free(all);

    size_t n1, n2, n3;
    const uint8_t *p1 = fuzz_next(&data, &size, '\n', &n1);
    int has_except = size > 0;
    const uint8_t *p2 = fuzz_next(&data, &size, '\n', &n2);
    const uint8_t *p3 = fuzz_next(&data, &size, '\n', &n3);
    char *expr = fuzz_strndup(p1, n1);
    char *except = fuzz_strndup(p2, n2);
    char *q = fuzz_strndup(p3, n3);

    (void)timewin_name_ok(expr);
    char err[256];
    struct timewin *w = timewin_parse(expr, resolve, NULL, err, sizeof(err));
    if (w != NULL) {
        check_window(w, 0);
        if (has_except) {
            struct timewin *ex = timewin_parse(except, resolve, NULL, err, sizeof(err));
            if (ex != NULL) {
                timewin_set_except(w, ex);
                check_window(w, 1);
            }
        }
        timewin_free(w);
    } else {
        FUZZ_CHECK(strlen(err) < sizeof(err) && err[0] != '\0');
        (void)timewin_parse(expr, resolve, NULL, err, 5);
    }
    quota(q);
    free(expr);
    free(except);
    free(q);
    return 0;
}
