/* Time windows for `when =` and `except =`, and quota expressions (pure: no
 * libevent, no logging, no clock reads; the caller passes the local time).
 *
 * An expression is a comma-separated list of items and matches when any
 * item matches. An item is `always`, `never`, a schedule name, a window
 * `[DAYS] [HH:MM-HH:MM]` (DAYS: `mon` or `mon-fri`; `fri-mon` wraps around
 * the week) or a date `YYYY-MM-DD[..YYYY-MM-DD] [HH:MM-HH:MM]`. A time range
 * whose end is before its start crosses midnight and belongs to the day it
 * starts on: `fri 22:00-02:00` matches Saturday 01:30. Start is inclusive,
 * end exclusive, at minute resolution.
 *
 * A parsed expression is immutable and may be read by any number of threads
 * at once. */
#ifndef SG_TIMEWIN_H
#define SG_TIMEWIN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TIMEWIN_MAX_ITEMS 64
#define TIMEWIN_MAX_NAME 63  /* characters of a schedule name */
#define TIMEWIN_MAX_DEPTH 8  /* schedules referring to schedules */

struct timewin;

/* Looks up a schedule defined earlier; NULL when there is none. The result
 * is borrowed: it must outlive every expression that refers to it. */
typedef const struct timewin *(*timewin_resolve_fn)(void *arg, const char *name);

/* Parses `expr`. Schedule names are looked up through resolve (may be NULL:
 * then every name is unknown). Returns an owned expression (free with
 * timewin_free), or NULL with a message naming the bad item in err
 * (err may be NULL). NULL with "out of memory" on allocation failure. */
struct timewin *timewin_parse(const char *expr, timewin_resolve_fn resolve, void *arg,
                              char *err, size_t errsz);

/* Makes w a schedule that matches when w matches and ex does not. Takes
 * ownership of ex (NULL removes the exception); a previous one is freed. */
void timewin_set_except(struct timewin *w, struct timewin *ex);

/* 1 when w matches at the local wall-clock time `local` (as produced by
 * localtime_r in the configured time zone), else 0. Only tm_year, tm_mon,
 * tm_mday, tm_hour and tm_min are read; the weekday is derived from the
 * date, so a struct tm filled in by hand (explain --at) works as well. */
int timewin_match(const struct timewin *w, const struct tm *local);

/* 1 when w certainly matches at every instant (`always`, `mon-sun`,
 * `00:00-24:00`, a schedule that is one of those, no exception); 0 when it
 * may not. Conservative: meant for the "rule can never be reached" lint. */
int timewin_is_always(const struct timewin *w);

/* 1 when w certainly never matches (`never` items only, or an exception
 * that is always); 0 when it may match. */
int timewin_is_never(const struct timewin *w);

/* Writes the normalized form of w into buf ("mon-fri 12:00-13:30, lunch",
 * a schedule with an exception as "mon-fri except 2026-12-25"). Always
 * NUL-terminates when n > 0; returns the length the full text needs, like
 * snprintf, so a result >= n means it was truncated. */
size_t timewin_describe(const struct timewin *w, char *buf, size_t n);

/* 1 when name may name a schedule: [a-z][a-z0-9_-]*, at most
 * TIMEWIN_MAX_NAME characters, and not a word the expression syntax
 * reserves (always, never, a day name or a day range such as mon-fri). */
int timewin_name_ok(const char *name);

/* Frees w and its exception (NULL is fine). Schedules it refers to are
 * borrowed and stay. */
void timewin_free(struct timewin *w);

/* Days since 1970-01-01 of the local date in `local` (negative before).
 * Daily quotas reset when it changes, i.e. at local midnight. */
int32_t timewin_day_number(const struct tm *local);

/* The day number of the Monday of the week holding `local`. Weekly quotas
 * reset when it changes, i.e. at Monday 00:00 local time. */
int32_t timewin_week_number(const struct tm *local);

/* Parses the time of `socialgate explain --at`, a wall-clock time in the
 * configured zone: "YYYY-MM-DD HH:MM", "HH:MM" (today), "today HH:MM",
 * "tomorrow HH:MM", or a day name ("mon".."sun" or "monday".."sunday",
 * any case) and "HH:MM": the next such day, today when today is that day.
 * Words are separated by blanks; hours run 00..23. `today` is the local
 * date to count from (only tm_year, tm_mon and tm_mday are read). On
 * success fills *out (date, hour, minute, tm_wday, tm_yday, tm_isdst = -1,
 * seconds 0) and returns 0; otherwise -1 with a message in err. */
int timewin_parse_at(const char *s, const struct tm *today, struct tm *out, char *err,
                     size_t errsz);

/* Parses a quota: "30m/day", "2h/day", "1h30m/day", "5h/week". On success
 * returns 0 with *minutes (1..1440 per day, 1..10080 per week) and *weekly
 * (0: per day, 1: per week); -1 with a message in err otherwise. */
int timewin_parse_quota(const char *s, unsigned *minutes, int *weekly, char *err,
                        size_t errsz);

#endif
