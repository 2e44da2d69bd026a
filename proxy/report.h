/* `socialgate report`: usage summaries from usage logs.
 *
 * The line parser and the aggregation are pure (no libevent, no global
 * state; the printer writes to the FILE * it is given), so unit tests and a
 * fuzz target link them alone. The parser allocates nothing: it fills views
 * into the line it is handed. */
#ifndef SG_REPORT_H
#define SG_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A value as written in the log: quotes and escapes included, "-" kept as
 * is. p == NULL when the line has no such field. */
struct report_str {
    const char *p;
    size_t len;
};

enum report_ev {
    REPORT_EV_OTHER, /* config, quota, ...: well-formed, not counted */
    REPORT_EV_REQUEST,
    REPORT_EV_TUNNEL,
    REPORT_EV_USAGE,
};

struct report_line {
    /* The timestamp, validated: ts[0..10) is the local date, ts[11..16) the
     * local "HH:MM" as written (the offset is not applied). */
    const char *ts;
    enum report_ev kind;
    struct report_str ev, client, user, roles, host, platform, category, rule, action;
    /* ev=usage: the summed figures (0 on other lines). */
    uint64_t active_min, requests, up, down;
};

/* Parses one usage-log line of len bytes (a trailing "\n" or "\r\n" is
 * ignored). Returns 0, or -1 when the line is malformed: no valid timestamp,
 * no ev=, a field without '=' or with an empty value or key, a quote left
 * open or closed before the field ends, an unknown escape, a control byte,
 * or a number that is not one where the kind of line needs it. Request and
 * tunnel lines need client, user, roles, platform, category and action;
 * usage lines user, platform, active_min, requests, up and down (host and
 * rule are optional: a line without them has p == NULL). When a key
 * repeats, the first one counts. No allocation; out holds views into line
 * (and is left unspecified when the line is malformed). */
int report_parse_line(const char *line, size_t len, struct report_line *out);

/* Decodes a value as written in the log (surrounding quotes, \" \\ \xHH)
 * into out, which needs room for len bytes; a plain value is copied as is.
 * Returns the decoded length (no NUL is added). */
size_t report_unescape(const char *raw, size_t len, char *out);

enum report_key {
    REPORT_BY_USER, /* the user, or the client address when user is - */
    REPORT_BY_ROLE, /* each role of roles=a,b */
    REPORT_BY_PLATFORM,
    REPORT_BY_CATEGORY,
    REPORT_BY_DAY,    /* YYYY-MM-DD */
    REPORT_BY_HOUR,   /* YYYY-MM-DD HH */
    REPORT_BY_RULE,   /* the deciding rule; - on ev=usage lines, which name none */
    REPORT_BY_ACTION, /* allow, deny, ...; - on ev=usage lines */
};
#define REPORT_MAX_BY 8

enum report_format {
    REPORT_TABLE,
    REPORT_CSV,
    REPORT_JSON,
    REPORT_HTML,
};

struct report_opts {
    enum report_key by[REPORT_MAX_BY];
    size_t nby;
    char since[17], until[17]; /* "YYYY-MM-DD HH:MM", or "" for no bound */
    size_t top;                /* 0: every row */
    /* Gather what the HTML page shows (active minutes per platform and day,
     * users, denials per rule, hours) instead of the `by` groups, which are
     * then ignored: report_rows gives the users. */
    int html;
};

/* "user,platform" into o->by. Returns 0, or -1 with *err set. */
int report_parse_by(const char *s, struct report_opts *o, const char **err);
/* "YYYY-MM-DD" or "YYYY-MM-DD HH:MM" (or with a 'T') into out as
 * "YYYY-MM-DD HH:MM" (00:00 for a date). Returns 0, or -1 with *err set. */
int report_parse_when(const char *s, char out[17], const char **err);

struct report_counts {
    uint64_t active_min, requests, up, down, denials, warns;
};

struct report_row {
    /* The group's values in --by order, as written in the log (day and hour
     * as above), each followed by a NUL: "alice\0facebook\0". */
    const char *key;
    size_t key_len;
    struct report_counts c;
};

struct report;

/* NULL when out of memory. */
struct report *report_new(const struct report_opts *o);
void report_free(struct report *r);

/* Counts one parsed line: usage figures, denials and warns, in every group
 * the line belongs to, when its time is within since/until. A denial is
 * counted once per client address (without its port), host and second of
 * its timestamp: a browser that retries a refused CONNECT logs several
 * denied lines for one page view. (The keys are remembered for at least
 * the last 65536 denials, so memory stays bounded; repeats lie close
 * together in a log.) Returns 0, or -1 when out of memory. */
int report_add(struct report *r, const struct report_line *l);
/* Parses and counts one line. Returns 0, 1 when the line is malformed (not
 * counted), or -1 when out of memory. */
int report_feed(struct report *r, const char *line, size_t len);

/* Sorts the groups (active minutes descending, then requests descending,
 * then the key ascending) and keeps the first `top`. The rows stay valid
 * until report_free; nothing may be added after this. NULL with *n == 0
 * when there are none. */
const struct report_row *report_rows(struct report *r, size_t *n);
/* The i-th value of a row's key. */
struct report_str report_row_part(const struct report_row *row, size_t i);

/* Writes the rows as an aligned table (values as the log writes them), CSV
 * (RFC 4180 quoting) or a JSON array of objects (values decoded; bytes that
 * are not UTF-8 become U+FFFD); or, for a report made with opts.html, one
 * self-contained HTML page (inline SVG bars, no script, no external
 * resource; values decoded and HTML-escaped, bytes that are not UTF-8 and
 * control characters shown as U+FFFD). Returns 0, or -1 on a write error,
 * when memory ran out, or for REPORT_HTML on a report made without
 * opts.html. */
int report_print(struct report *r, enum report_format f, FILE *out);

/* argv[0] is "report". Returns the process exit code: 0, 1 when a file
 * could not be read (the others are still counted), 2 on a usage error. */
int report_main(int argc, char **argv);
/* The time of a usage-log line (its first field, 2026-12-03T13:15:46.123+01:00,
 * the milliseconds optional) as milliseconds since the epoch. 0 or -1. */
int report_line_time(const char *p, size_t n, int64_t *ms);

#endif
