/* Usage-log lines as `socialgate report` reads them. The input is a log:
 * it is parsed whole as one line, then line by line; every line is also
 * fed to a report grouped by every key at once, one by user alone, and one
 * made for the HTML page, whose rows are then printed as a table, CSV,
 * JSON and (the last one) HTML. Checks: views stay inside the line, the
 * kind agrees with ev=, decoded values fit, the page is written in full. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "report.h"

static void
check_str(const struct report_str *s, const char *line, size_t len)
{
    if (s->p == NULL) {
        FUZZ_CHECK(s->len == 0);
        return;
    }
    FUZZ_CHECK(s->len > 0);
    FUZZ_CHECK(s->p >= line && s->p + s->len <= line + len);
    char *out = malloc(s->len);
    if (out == NULL)
        abort();
    FUZZ_CHECK(report_unescape(s->p, s->len, out) <= s->len);
    free(out);
}

static void
parse(const uint8_t *data, size_t size)
{
    /* An exact-size copy: the parser must not read past len. */
    char *line = (char *)fuzz_memdup(data, size);
    struct report_line l;
    if (report_parse_line(line, size, &l) == 0) {
        FUZZ_CHECK(l.ts == line && size >= 16);
        const struct report_str *all[] = {&l.ev,       &l.client,   &l.user, &l.roles, &l.host,
                                          &l.platform, &l.category, &l.rule, &l.action};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            check_str(all[i], line, size);
        FUZZ_CHECK(l.ev.p != NULL);
        switch (l.kind) {
        case REPORT_EV_REQUEST:
        case REPORT_EV_TUNNEL:
            FUZZ_CHECK(l.client.p && l.user.p && l.roles.p && l.platform.p && l.category.p &&
                       l.action.p);
            break;
        case REPORT_EV_USAGE:
            FUZZ_CHECK(l.user.p && l.platform.p);
            break;
        case REPORT_EV_OTHER:
            FUZZ_CHECK(l.active_min == 0 && l.requests == 0 && l.up == 0 && l.down == 0);
            break;
        }
    }
    free(line);
}

static struct report *
new_report(const char *by, const char *since, const char *until, size_t top)
{
    struct report_opts o;
    memset(&o, 0, sizeof(o));
    const char *err = NULL;
    if (by == NULL)
        o.html = 1;
    else if (report_parse_by(by, &o, &err) != 0)
        abort();
    if (since && report_parse_when(since, o.since, &err) != 0)
        abort();
    if (until && report_parse_when(until, o.until, &err) != 0)
        abort();
    o.top = top;
    struct report *r = report_new(&o);
    if (r == NULL)
        abort();
    return r;
}

static void
finish(struct report *r, size_t nkeys, int html)
{
    FILE *f = fopen("/dev/null", "w");
    if (f == NULL)
        abort();
    FUZZ_CHECK(report_print(r, REPORT_TABLE, f) == 0);
    FUZZ_CHECK(report_print(r, REPORT_CSV, f) == 0);
    FUZZ_CHECK(report_print(r, REPORT_JSON, f) == 0);
    FUZZ_CHECK(report_print(r, REPORT_HTML, f) == (html ? 0 : -1));
    fclose(f);
    size_t n = 0;
    const struct report_row *rows = report_rows(r, &n);
    FUZZ_CHECK((rows == NULL) == (n == 0));
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(rows[i].key != NULL);
        for (size_t k = 0; k < nkeys; k++) {
            struct report_str s = report_row_part(&rows[i], k);
            FUZZ_CHECK(s.p != NULL);
            FUZZ_CHECK(s.p >= rows[i].key && s.p + s.len <= rows[i].key + rows[i].key_len);
        }
    }
    report_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse(data, size);

    struct report *all =
        new_report("user,role,platform,category,day,hour,rule,action", NULL, NULL, 0);
    struct report *some = new_report("user", "2026-11-30", "2026-12-01 12:00", 3);
    struct report *page = new_report(NULL, NULL, NULL, 2);
    const uint8_t *p = data;
    size_t left = size;
    while (left > 0) {
        size_t n;
        const uint8_t *line = fuzz_next(&p, &left, '\n', &n);
        parse(line, n);
        char *copy = (char *)fuzz_memdup(line, n);
        FUZZ_CHECK(report_feed(all, copy, n) >= 0);
        FUZZ_CHECK(report_feed(some, copy, n) >= 0);
        FUZZ_CHECK(report_feed(page, copy, n) >= 0);
        free(copy);
    }
    finish(all, 8, 0);
    finish(some, 1, 0);
    finish(page, 1, 1);
    return 0;
}
