#include "timewin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum item_kind {
    ITEM_ALWAYS,
    ITEM_NEVER,
    ITEM_REF,  /* a schedule defined earlier */
    ITEM_WEEK, /* days of the week, optionally a time of day */
    ITEM_DATE, /* calendar dates, optionally a time of day */
};

#define ALL_DAYS 0x7fu
#define DAY_MINUTES 1440
#define WEEK_MINUTES (7 * DAY_MINUTES)
/* Longest item worth reading: a date range with a time range is 34
 * characters and a name 63, so anything longer is certainly wrong. */
#define ITEM_MAX_LEN 127

struct item {
    enum item_kind kind;
    int day_from, day_to;       /* ITEM_WEEK: 0 = mon .. 6 = sun; -1: no day given */
    unsigned days;              /* ITEM_WEEK: bit 0 = mon .. bit 6 = sun */
    int64_t date_from, date_to; /* ITEM_DATE: day numbers, both inclusive */
    int t_from, t_to;           /* minutes since midnight; t_from < 0: all day */
    const struct timewin *ref;  /* ITEM_REF, borrowed */
    char name[TIMEWIN_MAX_NAME + 1];
};

struct timewin {
    struct timewin *except; /* owned; NULL: none */
    int depth;              /* longest chain of schedule references below */
    size_t n;
    struct item items[];
};

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

#define DAYS_HINT "days are mon tue wed thu fri sat sun"

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errsz == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------
 * Calendar arithmetic. The caller's struct tm is only read, never passed to
 * mktime: that would consult the process time zone, and the module must not
 * depend on global state (explain evaluates other instants than "now").
 * ------------------------------------------------------------------------- */

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t
floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12).
 * Howard Hinnant's days_from_civil; d may run past the month, the result
 * stays linear in it. */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse, for writing dates back out. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Monday .. 6 = Sunday; 1970-01-01 was a Thursday. */
static int
weekday(int64_t day)
{
    return (int)floor_mod(day + 3, 7);
}

static int
is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Local date and minute of day from a struct tm. Fields out of their usual
 * range are carried over rather than trusted, so a hand-filled struct tm
 * cannot index past a table or produce a minute that never matches. */
static void
local_position(const struct tm *t, int64_t *day, int *minute)
{
    int64_t y = (int64_t)t->tm_year + 1900 + floor_div(t->tm_mon, 12);
    int64_t mon = floor_mod(t->tm_mon, 12) + 1;
    int64_t d = days_from_civil(y, mon, 1) + (int64_t)t->tm_mday - 1;
    int64_t m = (int64_t)t->tm_hour * 60 + t->tm_min;

    d += floor_div(m, DAY_MINUTES);
    *day = d;
    *minute = (int)floor_mod(m, DAY_MINUTES);
}

int32_t
timewin_day_number(const struct tm *local)
{
    int64_t day;
    int minute;

    local_position(local, &day, &minute);
    return (int32_t)day;
}

int32_t
timewin_week_number(const struct tm *local)
{
    int64_t day;
    int minute;

    local_position(local, &day, &minute);
    return (int32_t)(day - weekday(day));
}

/* ---------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------- */

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Index of the day named by s[0..len), case-insensitive; -1 if none. */
static int
day_index(const char *s, size_t len)
{
    if (len != 3)
        return -1;
    for (int i = 0; i < 7; i++)
        if (strncasecmp(s, day_names[i], 3) == 0)
            return i;
    return -1;
}

/* "mon" or "mon-fri". Returns 0 with from/to set, -1 when tok is not a day
 * specification, -2 for a range whose ends are the same day (one day or
 * the whole week? the user has to say). */
static int
parse_days(const char *tok, int *from, int *to)
{
    const char *dash = strchr(tok, '-');
    int f, t;

    if (dash == NULL) {
        f = day_index(tok, strlen(tok));
        if (f < 0)
            return -1;
        *from = *to = f;
        return 0;
    }
    f = day_index(tok, (size_t)(dash - tok));
    t = day_index(dash + 1, strlen(dash + 1));
    if (f < 0 || t < 0)
        return -1;
    if (f == t)
        return -2;
    *from = f;
    *to = t;
    return 0;
}

static unsigned
days_mask(int from, int to)
{
    unsigned mask = 0;

    for (int i = from;; i = (i + 1) % 7) {
        mask |= 1u << i;
        if (i == to)
            break;
    }
    return mask;
}

/* "H:MM" or "HH:MM" at *pp, 00:00..24:00; advances *pp. */
static int
parse_clock(const char **pp, int *minutes, const char **why)
{
    const char *p = *pp;
    int h = 0, m, nd = 0;

    while (is_digit(*p) && nd < 3) {
        h = h * 10 + (*p++ - '0');
        nd++;
    }
    if (nd == 0 || nd > 2 || *p != ':' || !is_digit(p[1]) || !is_digit(p[2])) {
        *why = "bad time range (expected HH:MM-HH:MM)";
        return -1;
    }
    m = (p[1] - '0') * 10 + (p[2] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0)) {
        *why = "time out of range (00:00 to 24:00)";
        return -1;
    }
    *minutes = h * 60 + m;
    *pp = p + 3;
    return 0;
}

static int
parse_time_range(const char *tok, int *from, int *to, const char **why)
{
    const char *p = tok;

    if (parse_clock(&p, from, why) < 0)
        return -1;
    if (*p++ != '-') {
        *why = "bad time range (expected HH:MM-HH:MM)";
        return -1;
    }
    if (parse_clock(&p, to, why) < 0)
        return -1;
    if (*p != '\0') {
        *why = "bad time range (expected HH:MM-HH:MM)";
        return -1;
    }
    if (*from == DAY_MINUTES) {
        *why = "24:00 can only end a time range";
        return -1;
    }
    if (*from == *to) {
        *why = "time range starts and ends at the same time";
        return -1;
    }
    return 0;
}

/* "YYYY-MM-DD" in s[0..len), a date that exists. */
static int
parse_date(const char *s, size_t len, int64_t *day, const char **why)
{
    static const char shape[] = "dddd-dd-dd";
    int64_t y = 0;
    int m, d;

    if (len != sizeof(shape) - 1) {
        *why = "bad date (expected YYYY-MM-DD)";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i]) {
            *why = "bad date (expected YYYY-MM-DD)";
            return -1;
        }
    }
    for (int i = 0; i < 4; i++)
        y = y * 10 + (s[i] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    if (m < 1 || m > 12 || d < 1 || d > month_days(y, m)) {
        *why = "no such date";
        return -1;
    }
    *day = days_from_civil(y, m, d);
    return 0;
}

/* "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD". */
static int
parse_date_spec(const char *tok, int64_t *from, int64_t *to, const char **why)
{
    const char *dots = strstr(tok, "..");

    if (dots == NULL) {
        if (parse_date(tok, strlen(tok), from, why) < 0)
            return -1;
        *to = *from;
        return 0;
    }
    if (parse_date(tok, (size_t)(dots - tok), from, why) < 0 ||
        parse_date(dots + 2, strlen(dots + 2), to, why) < 0)
        return -1;
    if (*to < *from) {
        *why = "date range ends before it starts";
        return -1;
    }
    return 0;
}

/* [a-z][a-z0-9_-]*, any length. */
static int
name_charset_ok(const char *s)
{
    if (!(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    for (size_t i = 1; s[i] != '\0'; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int
timewin_name_ok(const char *name)
{
    int f, t;

    if (name == NULL || !name_charset_ok(name) || strlen(name) > TIMEWIN_MAX_NAME)
        return 0;
    if (strcmp(name, "always") == 0 || strcmp(name, "never") == 0)
        return 0;
    /* Equal-ended ranges ("mon-mon") are rejected as days, but a schedule
     * by that name would still read as a mistake. */
    return parse_days(name, &f, &t) == -1;
}

/* A single word: always, never, days, a time range, a date or a name. */
static int
parse_word(const char *item, const char *tok, struct item *it, int *depth,
           timewin_resolve_fn resolve, void *arg, char *err, size_t errsz)
{
    const char *why;
    int rc;

    if (strcasecmp(tok, "always") == 0) {
        it->kind = ITEM_ALWAYS;
        return 0;
    }
    if (strcasecmp(tok, "never") == 0) {
        it->kind = ITEM_NEVER;
        return 0;
    }
    /* Names start with a letter, so a leading digit is a time or a date and
     * a typo in one gets the right message rather than "unknown schedule". */
    if (is_digit(tok[0])) {
        if (strchr(tok, ':') != NULL) {
            it->kind = ITEM_WEEK;
            it->days = ALL_DAYS;
            rc = parse_time_range(tok, &it->t_from, &it->t_to, &why);
        } else {
            it->kind = ITEM_DATE;
            rc = parse_date_spec(tok, &it->date_from, &it->date_to, &why);
        }
        if (rc < 0) {
            set_err(err, errsz, "'%s': %s", item, why);
            return -1;
        }
        return 0;
    }
    rc = parse_days(tok, &it->day_from, &it->day_to);
    if (rc == 0) {
        it->kind = ITEM_WEEK;
        it->days = days_mask(it->day_from, it->day_to);
        return 0;
    }
    if (rc == -2) {
        set_err(err, errsz, "'%s': day range with equal ends (write one day, or mon-sun)",
                item);
        return -1;
    }
    if (!name_charset_ok(tok)) {
        set_err(err, errsz,
                "'%s': not a day, time range, date or schedule name "
                "(schedule names are lower case a-z 0-9 _ -)",
                item);
        return -1;
    }
    if (strlen(tok) > TIMEWIN_MAX_NAME) {
        set_err(err, errsz, "'%s': schedule name longer than %d characters", item,
                TIMEWIN_MAX_NAME);
        return -1;
    }
    const struct timewin *ref = resolve != NULL ? resolve(arg, tok) : NULL;
    if (ref == NULL) {
        if (strlen(tok) >= 3 && day_index(tok, 3) >= 0)
            set_err(err, errsz, "'%s': unknown schedule or day (" DAYS_HINT ")", item);
        else
            set_err(err, errsz, "'%s': unknown schedule", item);
        return -1;
    }
    if (ref->depth + 1 > TIMEWIN_MAX_DEPTH) {
        set_err(err, errsz, "'%s': schedules nest more than %d deep", item, TIMEWIN_MAX_DEPTH);
        return -1;
    }
    it->kind = ITEM_REF;
    it->ref = ref;
    memcpy(it->name, tok, strlen(tok) + 1);
    if (ref->depth + 1 > *depth)
        *depth = ref->depth + 1;
    return 0;
}

/* One item, already trimmed and NUL-terminated in buf (modified). */
static int
parse_item(const char *item, char *buf, struct item *it, int *depth,
           timewin_resolve_fn resolve, void *arg, char *err, size_t errsz)
{
    char *tok[3];
    size_t ntok = 0;
    const char *why;
    char *p = buf;

    while (*p != '\0') {
        if (ntok == 3) {
            set_err(err, errsz, "'%s': too many words (expected [DAYS|DATE] [HH:MM-HH:MM])",
                    item);
            return -1;
        }
        tok[ntok++] = p;
        while (*p != '\0' && !is_space(*p))
            p++;
        if (*p != '\0') {
            *p++ = '\0';
            while (is_space(*p))
                p++;
        }
    }
    memset(it, 0, sizeof(*it));
    it->day_from = it->day_to = -1;
    it->t_from = it->t_to = -1;
    if (ntok == 1)
        return parse_word(item, tok[0], it, depth, resolve, arg, err, errsz);
    if (ntok != 2) {
        set_err(err, errsz, "'%s': too many words (expected [DAYS|DATE] [HH:MM-HH:MM])", item);
        return -1;
    }
    if (is_digit(tok[0][0]) && strchr(tok[0], ':') != NULL) {
        set_err(err, errsz, "'%s': the time range comes after the days or the date", item);
        return -1;
    }
    if (is_digit(tok[0][0])) {
        it->kind = ITEM_DATE;
        if (parse_date_spec(tok[0], &it->date_from, &it->date_to, &why) < 0) {
            set_err(err, errsz, "'%s': %s", item, why);
            return -1;
        }
    } else {
        int rc = parse_days(tok[0], &it->day_from, &it->day_to);
        if (rc == -2) {
            set_err(err, errsz, "'%s': day range with equal ends (write one day, or mon-sun)",
                    item);
            return -1;
        }
        if (rc < 0) {
            set_err(err, errsz, "'%s': bad day '%s' (" DAYS_HINT ")", item, tok[0]);
            return -1;
        }
        it->kind = ITEM_WEEK;
        it->days = days_mask(it->day_from, it->day_to);
    }
    if (parse_time_range(tok[1], &it->t_from, &it->t_to, &why) < 0) {
        set_err(err, errsz, "'%s': %s", item, why);
        return -1;
    }
    return 0;
}

struct timewin *
timewin_parse(const char *expr, timewin_resolve_fn resolve, void *arg, char *err, size_t errsz)
{
    struct timewin *w;
    size_t n = 1, idx = 0;
    const char *p;

    if (expr == NULL) {
        set_err(err, errsz, "empty time expression");
        return NULL;
    }
    for (p = expr; *p != '\0'; p++)
        if (*p == ',')
            n++;
    if (n > TIMEWIN_MAX_ITEMS) {
        set_err(err, errsz, "too many items (at most %d)", TIMEWIN_MAX_ITEMS);
        return NULL;
    }
    w = calloc(1, sizeof(*w) + n * sizeof(w->items[0]));
    if (w == NULL) {
        set_err(err, errsz, "out of memory");
        return NULL;
    }
    p = expr;
    for (;;) {
        const char *end = strchr(p, ',');
        const char *b = p, *e = end != NULL ? end : p + strlen(p);
        char item[ITEM_MAX_LEN + 1], buf[ITEM_MAX_LEN + 1];
        size_t len;

        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        len = (size_t)(e - b);
        if (len == 0) {
            if (n == 1)
                set_err(err, errsz, "empty time expression");
            else
                set_err(err, errsz, "item %zu is empty (stray comma?)", idx + 1);
            goto fail;
        }
        if (len > ITEM_MAX_LEN) {
            set_err(err, errsz, "'%.40s...': item too long", b);
            goto fail;
        }
        memcpy(item, b, len);
        item[len] = '\0';
        memcpy(buf, item, len + 1);
        if (parse_item(item, buf, &w->items[idx], &w->depth, resolve, arg, err, errsz) < 0)
            goto fail;
        idx++;
        if (end == NULL)
            break;
        p = end + 1;
    }
    w->n = idx;
    return w;

fail:
    free(w);
    return NULL;
}

void
timewin_set_except(struct timewin *w, struct timewin *ex)
{
    timewin_free(w->except);
    w->except = ex;
    /* The exception is part of the same schedule: no extra level, but its
     * references count towards the limit for whoever refers to w. */
    if (ex != NULL && ex->depth > w->depth)
        w->depth = ex->depth;
}

void
timewin_free(struct timewin *w)
{
    if (w == NULL)
        return;
    timewin_free(w->except);
    free(w);
}

/* ---------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------- */

static int
day_ok(const struct item *it, int64_t day)
{
    if (it->kind == ITEM_DATE)
        return day >= it->date_from && day <= it->date_to;
    return (it->days >> weekday(day)) & 1u;
}

static int match_at(const struct timewin *w, int64_t day, int minute, int depth);

static int
item_match(const struct item *it, int64_t day, int minute, int depth)
{
    switch (it->kind) {
    case ITEM_ALWAYS: return 1;
    case ITEM_NEVER: return 0;
    case ITEM_REF: return match_at(it->ref, day, minute, depth + 1);
    case ITEM_WEEK:
    case ITEM_DATE:
        if (it->t_from < 0)
            return day_ok(it, day);
        if (it->t_from < it->t_to)
            return minute >= it->t_from && minute < it->t_to && day_ok(it, day);
        /* Crosses midnight: the part after midnight belongs to yesterday. */
        return (minute >= it->t_from && day_ok(it, day)) ||
               (minute < it->t_to && day_ok(it, day - 1));
    }
    return 0;
}

/* depth only guards against a chain longer than parsing allows. */
static int
match_at(const struct timewin *w, int64_t day, int minute, int depth)
{
    int hit = 0;

    if (depth > TIMEWIN_MAX_DEPTH)
        return 0;
    for (size_t i = 0; i < w->n && !hit; i++)
        hit = item_match(&w->items[i], day, minute, depth);
    if (hit && w->except != NULL && match_at(w->except, day, minute, depth))
        hit = 0;
    return hit;
}

int
timewin_match(const struct timewin *w, const struct tm *local)
{
    int64_t day;
    int minute;

    local_position(local, &day, &minute);
    return match_at(w, day, minute, 0);
}

static int is_never_at(const struct timewin *w, int depth);

static int
is_always_at(const struct timewin *w, int depth)
{
    if (depth > TIMEWIN_MAX_DEPTH)
        return 0;
    if (w->except != NULL && !is_never_at(w->except, depth))
        return 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct item *it = &w->items[i];
        if (it->kind == ITEM_ALWAYS)
            return 1;
        if (it->kind == ITEM_REF && is_always_at(it->ref, depth + 1))
            return 1;
        if (it->kind == ITEM_WEEK && it->days == ALL_DAYS &&
            (it->t_from < 0 || (it->t_from == 0 && it->t_to == DAY_MINUTES)))
            return 1;
    }
    return 0;
}

static int
is_never_at(const struct timewin *w, int depth)
{
    if (depth > TIMEWIN_MAX_DEPTH)
        return 0;
    if (w->except != NULL && is_always_at(w->except, depth))
        return 1;
    for (size_t i = 0; i < w->n; i++) {
        const struct item *it = &w->items[i];
        if (it->kind == ITEM_NEVER)
            continue;
        if (it->kind == ITEM_REF && is_never_at(it->ref, depth + 1))
            continue;
        return 0;
    }
    return 1;
}

int
timewin_is_always(const struct timewin *w)
{
    return is_always_at(w, 0);
}

int
timewin_is_never(const struct timewin *w)
{
    return is_never_at(w, 0);
}

/* ---------------------------------------------------------------------------
 * Describing
 * ------------------------------------------------------------------------- */

struct out {
    char *buf;
    size_t n, len; /* len counts what would have been written */
};

static void
put(struct out *o, const char *s)
{
    size_t l = strlen(s);

    if (o->len + 1 < o->n) {
        size_t room = o->n - 1 - o->len;
        memcpy(o->buf + o->len, s, l < room ? l : room);
    }
    o->len += l;
}

static void
put_date(struct out *o, int64_t day)
{
    char tmp[32];
    int64_t y;
    int m, d;

    civil_from_days(day, &y, &m, &d);
    snprintf(tmp, sizeof(tmp), "%04lld-%02d-%02d", (long long)y, m, d);
    put(o, tmp);
}

static void
put_item(struct out *o, const struct item *it)
{
    char tmp[32];

    switch (it->kind) {
    case ITEM_ALWAYS: put(o, "always"); return;
    case ITEM_NEVER: put(o, "never"); return;
    case ITEM_REF: put(o, it->name); return;
    case ITEM_WEEK:
        if (it->day_from >= 0) {
            put(o, day_names[it->day_from]);
            if (it->day_to != it->day_from) {
                put(o, "-");
                put(o, day_names[it->day_to]);
            }
        }
        break;
    case ITEM_DATE:
        put_date(o, it->date_from);
        if (it->date_to != it->date_from) {
            put(o, "..");
            put_date(o, it->date_to);
        }
        break;
    }
    if (it->t_from >= 0) {
        if (it->kind == ITEM_DATE || it->day_from >= 0)
            put(o, " ");
        snprintf(tmp, sizeof(tmp), "%02d:%02d-%02d:%02d", it->t_from / 60, it->t_from % 60,
                 it->t_to / 60, it->t_to % 60);
        put(o, tmp);
    }
}

static void
put_expr(struct out *o, const struct timewin *w)
{
    for (size_t i = 0; i < w->n; i++) {
        if (i > 0)
            put(o, ", ");
        put_item(o, &w->items[i]);
    }
    if (w->except != NULL) {
        int group = w->except->n > 1 || w->except->except != NULL;
        put(o, group ? " except (" : " except ");
        put_expr(o, w->except);
        if (group)
            put(o, ")");
    }
}

size_t
timewin_describe(const struct timewin *w, char *buf, size_t n)
{
    struct out o = {buf, n, 0};

    put_expr(&o, w);
    if (n > 0)
        buf[o.len < n ? o.len : n - 1] = '\0';
    return o.len;
}

/* ---------------------------------------------------------------------------
 * Quotas
 * ------------------------------------------------------------------------- */

#define QUOTA_HINT "expected e.g. 30m/day, 2h/day, 1h30m/day, 5h/week"

/* Digits at *pp, capped well above any valid quota so it cannot overflow. */
static int
quota_number(const char **pp, unsigned long *v)
{
    const char *p = *pp;

    *v = 0;
    if (!is_digit(*p))
        return -1;
    while (is_digit(*p)) {
        if (*v < 1000000)
            *v = *v * 10 + (unsigned long)(*p - '0');
        p++;
    }
    *pp = p;
    return 0;
}

int
timewin_parse_quota(const char *s, unsigned *minutes, int *weekly, char *err, size_t errsz)
{
    const char *p = s;
    unsigned long v, total = 0, limit;
    int week;

    if (s == NULL || quota_number(&p, &v) < 0) {
        set_err(err, errsz, "bad quota '%s' (" QUOTA_HINT ")", s != NULL ? s : "");
        return -1;
    }
    if (*p == 'h' || *p == 'H') {
        total = v * 60;
        p++;
        if (is_digit(*p)) {
            if (quota_number(&p, &v) < 0 || (*p != 'm' && *p != 'M') || v > 59) {
                set_err(err, errsz, "bad quota '%s' (" QUOTA_HINT ")", s);
                return -1;
            }
            total += v;
            p++;
        }
    } else if (*p == 'm' || *p == 'M') {
        total = v;
        p++;
    } else {
        set_err(err, errsz, "bad quota '%s': missing unit m or h (" QUOTA_HINT ")", s);
        return -1;
    }
    if (*p != '/') {
        set_err(err, errsz, "bad quota '%s': missing /day or /week (" QUOTA_HINT ")", s);
        return -1;
    }
    p++;
    if (strcasecmp(p, "day") == 0) {
        week = 0;
        limit = DAY_MINUTES;
    } else if (strcasecmp(p, "week") == 0) {
        week = 1;
        limit = WEEK_MINUTES;
    } else {
        set_err(err, errsz, "bad quota '%s': the period is day or week", s);
        return -1;
    }
    if (total == 0) {
        set_err(err, errsz, "bad quota '%s': must be at least 1m", s);
        return -1;
    }
    if (total > limit) {
        set_err(err, errsz, "bad quota '%s': more than a %s has", s, week ? "week" : "day");
        return -1;
    }
    *minutes = (unsigned)total;
    *weekly = week;
    return 0;
}

/* ---------------------------------------------------------------------------
 * explain --at
 * ------------------------------------------------------------------------- */

#define AT_HINT                                                                                    \
    "expected \"YYYY-MM-DD HH:MM\", \"HH:MM\", \"tomorrow HH:MM\" or a day and a time "            \
    "(\"mon 10:00\")"

static const char *const long_day_names[7] = {"monday", "tuesday",  "wednesday", "thursday",
                                              "friday", "saturday", "sunday"};

/* "Y-M-D" with a 4-digit year and 1- or 2-digit month and day, a date that
 * exists, in s[0..len). 0 and *day; -1 when it has not that shape; -2 when
 * it has but names no date. */
static int
parse_at_date(const char *s, size_t len, int64_t *day)
{
    int64_t v[3] = {0, 0, 0};
    int field = 0, nd = 0;

    for (size_t i = 0; i < len; i++) {
        if (is_digit(s[i])) {
            if (++nd > (field == 0 ? 4 : 2))
                return -1;
            v[field] = v[field] * 10 + (s[i] - '0');
        } else if (s[i] == '-' && field < 2 && nd > 0) {
            if (field == 0 && nd != 4)
                return -1;
            field++;
            nd = 0;
        } else {
            return -1;
        }
    }
    if (field != 2 || nd == 0)
        return -1;
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > month_days(v[0], (int)v[1]))
        return -2;
    *day = days_from_civil(v[0], v[1], v[2]);
    return 0;
}

/* "H:MM" or "HH:MM", 00:00..23:59, the whole of s. */
static int
parse_at_clock(const char *s, int *minutes)
{
    const char *why;
    if (parse_clock(&s, minutes, &why) < 0 || *s != '\0' || *minutes >= DAY_MINUTES)
        return -1;
    return 0;
}

int
timewin_parse_at(const char *s, const struct tm *today, struct tm *out, char *err, size_t errsz)
{
    char words[2][32];
    size_t nwords = 0;
    const char *p = s != NULL ? s : "";

    /* Up to two blank-separated words, each shorter than a buffer. */
    for (;;) {
        while (is_space(*p))
            p++;
        if (*p == '\0')
            break;
        size_t n = 0;
        while (p[n] != '\0' && !is_space(p[n]))
            n++;
        if (nwords == 2 || n >= sizeof(words[0])) {
            set_err(err, errsz, AT_HINT);
            return -1;
        }
        memcpy(words[nwords], p, n);
        words[nwords++][n] = '\0';
        p += n;
    }
    if (nwords == 0) {
        set_err(err, errsz, AT_HINT);
        return -1;
    }
    int64_t now_day = timewin_day_number(today), day = now_day;
    const char *clock = words[nwords - 1];
    if (nwords == 2) {
        const char *w = words[0];
        int wd = -1, r;
        for (int i = 0; i < 7 && wd < 0; i++)
            if (strcasecmp(w, day_names[i]) == 0 || strcasecmp(w, long_day_names[i]) == 0)
                wd = i;
        if (wd >= 0) {
            day = now_day + floor_mod(wd - weekday(now_day), 7);
        } else if (strcasecmp(w, "today") == 0) {
            day = now_day;
        } else if (strcasecmp(w, "tomorrow") == 0) {
            day = now_day + 1;
        } else if ((r = parse_at_date(w, strlen(w), &day)) < 0) {
            if (r == -2)
                set_err(err, errsz, "no such date: %s", w);
            else
                set_err(err, errsz, "'%s' is no date or day (" DAYS_HINT "); " AT_HINT, w);
            return -1;
        }
    }
    int minutes;
    if (parse_at_clock(clock, &minutes) < 0) {
        set_err(err, errsz, "'%s' is no time of day (00:00 to 23:59); " AT_HINT, clock);
        return -1;
    }
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    if (y < 1900 || y > 9999) {
        set_err(err, errsz, "year %lld is out of range", (long long)y);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    out->tm_year = (int)(y - 1900);
    out->tm_mon = m - 1;
    out->tm_mday = d;
    out->tm_hour = minutes / 60;
    out->tm_min = minutes % 60;
    out->tm_wday = (weekday(day) + 1) % 7; /* struct tm counts from Sunday */
    out->tm_yday = (int)(day - days_from_civil(y, 1, 1));
    out->tm_isdst = -1;
    return 0;
}
