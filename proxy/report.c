#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/escape.h"

/* ------------------------------------------------------------------------
 * Line parsing
 * ------------------------------------------------------------------------ */

/* Byte classes, one table look-up per byte: CL_KEY a key byte
 * ([A-Za-z0-9_.-]), CL_VAL a byte of a plain value (not space, '"', control
 * or DEL). */
enum { CL_KEY = 1, CL_VAL = 2 };
static const unsigned char byte_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    0, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 2, /* 20 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, /* 30 */
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 40 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 3, /* 50 */
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 60 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 0, /* 70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* a0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* b0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* c0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* d0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* e0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* f0 */
};

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Word-at-a-time scanning: a mask with the high bit set in each byte of w
 * that is below 0x21 (space and control bytes), '"' or DEL; or '='. A
 * borrow may flag a byte after a real hit, never before one, so the lowest
 * flagged byte is always a real hit. */
static uint64_t
value_stops(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), d = w ^ (ONES * 0x7f);
    return ((w - ONES * 0x21) & ~w & HIGHS) | ((q - ONES) & ~q & HIGHS) | ((d - ONES) & ~d & HIGHS);
}

static uint64_t
equals_signs(uint64_t w)
{
    uint64_t q = w ^ (ONES * '=');
    return (q - ONES) & ~q & HIGHS;
}

/* With a little-endian load and the GCC/Clang builtin, the lowest flagged
 * byte comes straight from the mask; elsewhere a byte loop finds it. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HAVE_CTZ 1
#endif

/* The end of a plain value starting at p: a space, '"', control byte, DEL
 * or end. */
static const unsigned char *
scan_plain(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 8) {
        uint64_t w, m;
        memcpy(&w, p, 8);
        if ((m = value_stops(w)) != 0) {
#ifdef HAVE_CTZ
            return p + (__builtin_ctzll(m) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && (byte_class[*p] & CL_VAL))
        p++;
    return p;
}

/* The first '=' at or after p, or end. Past a space it still looks: the
 * caller then finds the space in the key and refuses the line. */
static const unsigned char *
find_eq(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 8) {
        uint64_t w, m;
        memcpy(&w, p, 8);
        if ((m = equals_signs(w)) != 0) {
#ifdef HAVE_CTZ
            return p + (__builtin_ctzll(m) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && *p != '=')
        p++;
    return p;
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
hex_val(char c)
{
    return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Two digits at p, within [lo, hi]. */
static int
two_digits(const char *p, int lo, int hi)
{
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return -1;
    int v = (p[0] - '0') * 10 + (p[1] - '0');
    return v >= lo && v <= hi ? v : -1;
}

/* 2026-11-30T12:31:05.123+00:00 (fraction optional, 'Z' allowed for the
 * offset). Returns the length of the timestamp, or 0. */
static size_t
parse_ts(const char *s, size_t len)
{
    if (len < 20)
        return 0;
    for (int i = 0; i < 4; i++)
        if (!is_digit(s[i]))
            return 0;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return 0;
    if (two_digits(s + 5, 1, 12) < 0 || two_digits(s + 8, 1, 31) < 0 ||
        two_digits(s + 11, 0, 23) < 0 || two_digits(s + 14, 0, 59) < 0 ||
        two_digits(s + 17, 0, 60) < 0)
        return 0;
    size_t i = 19;
    if (s[i] == '.') {
        size_t d = ++i;
        while (i < len && is_digit(s[i]) && i - d < 9)
            i++;
        if (i == d)
            return 0;
    }
    if (i < len && s[i] == 'Z')
        return i + 1;
    if (i + 6 > len || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':' ||
        two_digits(s + i + 1, 0, 23) < 0 || two_digits(s + i + 4, 0, 59) < 0)
        return 0;
    return i + 6;
}

/* Keys the report reads or checks. */
enum field {
    F_NONE = -1,
    F_EV,
    F_CLIENT,
    F_USER,
    F_ROLES,
    F_HOST,
    F_PLATFORM,
    F_CATEGORY,
    F_RULE,
    F_ACTION,
    F_PORT,
    F_STATUS,
    F_UP,
    F_DOWN,
    F_MS,
    F_ACTIVE_MIN,
    F_TODAY_MIN,
    F_QUOTA_MIN,
    F_REQUESTS,
    F_USED_MIN,
    F_PCT,
    F_COUNT
};

static enum field
field_of(const char *k, size_t n)
{
#define KEY(s, f)                                                                                  \
    if (n == sizeof(s) - 1 && memcmp(k, s, n) == 0)                                                \
        return f;
    switch (n) {
    case 2:
        KEY("ev", F_EV);
        KEY("up", F_UP);
        KEY("ms", F_MS);
        break;
    case 3:
        KEY("pct", F_PCT);
        break;
    case 4:
        KEY("user", F_USER);
        KEY("host", F_HOST);
        KEY("rule", F_RULE);
        KEY("port", F_PORT);
        KEY("down", F_DOWN);
        break;
    case 5:
        KEY("roles", F_ROLES);
        break;
    case 6:
        KEY("client", F_CLIENT);
        KEY("action", F_ACTION);
        KEY("status", F_STATUS);
        break;
    case 8:
        KEY("platform", F_PLATFORM);
        KEY("category", F_CATEGORY);
        KEY("requests", F_REQUESTS);
        KEY("used_min", F_USED_MIN);
        break;
    case 9:
        KEY("today_min", F_TODAY_MIN);
        KEY("quota_min", F_QUOTA_MIN);
        break;
    case 10:
        KEY("active_min", F_ACTIVE_MIN);
        break;
    }
#undef KEY
    return F_NONE;
}

static int
str_is(struct report_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* Decimal digits, no overflow. */
static int
parse_u64(struct report_str s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0 || s.len > 20)
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* A number where the line has one: digits (at most 20), or "-" for none.
 * Only checked, not converted: these figures are not summed. */
static int
number_or_dash(const struct report_str *f, uint32_t seen, enum field i)
{
    if (!(seen & 1u << i) || (f[i].len == 1 && f[i].p[0] == '-'))
        return 0;
    if (f[i].len == 0 || f[i].len > 20)
        return -1;
    for (size_t k = 0; k < f[i].len; k++)
        if (!is_digit(f[i].p[k]))
            return -1;
    uint64_t v;
    return f[i].len < 20 || parse_u64(f[i], &v) == 0 ? 0 : -1;
}

int
report_parse_line(const char *line, size_t len, struct report_line *out)
{
    /* f[i] is only read when bit i of seen is set: no clearing per line. */
    struct report_str f[F_COUNT];
    uint32_t seen = 0;

    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    size_t tslen = parse_ts(line, len);
    if (tslen == 0)
        return -1;

    const unsigned char *p = (const unsigned char *)line + tslen;
    const unsigned char *end = (const unsigned char *)line + len;
    while (p < end) {
        if (*p++ != ' ')
            return -1;
        const unsigned char *k = p;
        p = find_eq(p, end);
        if (p == k || p == end)
            return -1; /* empty key, or a field without '=' */
        size_t klen = (size_t)(p - k);
        enum field id = field_of((const char *)k, klen);
        if (id == F_NONE) /* only a key the report does not know can hold a bad byte */
            for (size_t i = 0; i < klen; i++)
                if (!(byte_class[k[i]] & CL_KEY))
                    return -1; /* "a b=1", or a stray byte */
        const unsigned char *v = ++p;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p == end)
                    return -1; /* unterminated quote */
                unsigned char c = *p;
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (end - p >= 2 && (p[1] == '"' || p[1] == '\\'))
                        p += 2;
                    else if (end - p >= 4 && p[1] == 'x' && is_hex((char)p[2]) &&
                             is_hex((char)p[3]))
                        p += 4;
                    else
                        return -1;
                    continue;
                }
                if (c < 0x20 || c == 0x7f)
                    return -1;
                p++;
            }
            p++;
            if (p < end && *p != ' ')
                return -1; /* "a"b */
        } else {
            p = scan_plain(p, end);
            if (p < end && *p != ' ')
                return -1; /* a quote, control byte or DEL */
        }
        if (p == v)
            return -1; /* an empty value is written "-" */
        if (id != F_NONE && !(seen & 1u << id)) {
            seen |= 1u << id;
            f[id].p = (const char *)v;
            f[id].len = (size_t)(p - v);
        }
    }
    if (!(seen & 1u << F_EV))
        return -1;

#define GET(i) ((seen & 1u << (i)) ? f[i] : (struct report_str){NULL, 0})
    out->ts = line;
    out->active_min = out->requests = out->up = out->down = 0;
    out->ev = f[F_EV];
    out->client = GET(F_CLIENT);
    out->user = GET(F_USER);
    out->roles = GET(F_ROLES);
    out->host = GET(F_HOST);
    out->platform = GET(F_PLATFORM);
    out->category = GET(F_CATEGORY);
    out->rule = GET(F_RULE);
    out->action = GET(F_ACTION);
#undef GET
    const uint32_t need_rq = 1u << F_CLIENT | 1u << F_USER | 1u << F_ROLES | 1u << F_PLATFORM |
                             1u << F_CATEGORY | 1u << F_ACTION;
    const uint32_t need_usage = 1u << F_USER | 1u << F_PLATFORM | 1u << F_ACTIVE_MIN |
                                1u << F_REQUESTS | 1u << F_UP | 1u << F_DOWN;
    if (str_is(out->ev, "request") || str_is(out->ev, "tunnel")) {
        out->kind = out->ev.p[0] == 'r' ? REPORT_EV_REQUEST : REPORT_EV_TUNNEL;
        if ((seen & need_rq) != need_rq)
            return -1;
        static const enum field nums[] = {F_PORT, F_STATUS, F_UP, F_DOWN, F_MS};
        for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
            if (number_or_dash(f, seen, nums[i]) < 0)
                return -1;
    } else if (str_is(out->ev, "usage")) {
        out->kind = REPORT_EV_USAGE;
        if ((seen & need_usage) != need_usage || parse_u64(f[F_ACTIVE_MIN], &out->active_min) < 0 ||
            parse_u64(f[F_REQUESTS], &out->requests) < 0 || parse_u64(f[F_UP], &out->up) < 0 ||
            parse_u64(f[F_DOWN], &out->down) < 0 || number_or_dash(f, seen, F_TODAY_MIN) < 0 ||
            number_or_dash(f, seen, F_QUOTA_MIN) < 0)
            return -1;
    } else {
        out->kind = REPORT_EV_OTHER;
        if (str_is(out->ev, "quota") &&
            (number_or_dash(f, seen, F_USED_MIN) < 0 || number_or_dash(f, seen, F_QUOTA_MIN) < 0 ||
             number_or_dash(f, seen, F_PCT) < 0))
            return -1;
    }
    return 0;
}

size_t
report_unescape(const char *raw, size_t len, char *out)
{
    if (len < 2 || raw[0] != '"' || raw[len - 1] != '"') {
        memcpy(out, raw, len);
        return len;
    }
    size_t o = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (raw[i] != '\\' || i + 2 >= len) {
            out[o++] = raw[i];
        } else if (raw[i + 1] == 'x' && i + 4 < len && is_hex(raw[i + 2]) && is_hex(raw[i + 3])) {
            out[o++] = (char)(hex_val(raw[i + 2]) << 4 | hex_val(raw[i + 3]));
            i += 3;
        } else {
            out[o++] = raw[i + 1];
            i++;
        }
    }
    return o;
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

static const char *const key_names[] = {
    [REPORT_BY_USER] = "user",         [REPORT_BY_ROLE] = "role",
    [REPORT_BY_PLATFORM] = "platform", [REPORT_BY_CATEGORY] = "category",
    [REPORT_BY_DAY] = "day",           [REPORT_BY_HOUR] = "hour",
    [REPORT_BY_RULE] = "rule",         [REPORT_BY_ACTION] = "action",
};

int
report_parse_by(const char *s, struct report_opts *o, const char **err)
{
    struct report_opts tmp = *o;
    tmp.nby = 0;
    for (;;) {
        size_t n = strcspn(s, ",");
        size_t k;
        for (k = 0; k < REPORT_MAX_BY; k++)
            if (strlen(key_names[k]) == n && memcmp(s, key_names[k], n) == 0)
                break;
        if (k == REPORT_MAX_BY) {
            *err = "--by takes user, role, platform, category, day, hour, rule or action, "
                   "separated by commas";
            return -1;
        }
        for (size_t j = 0; j < tmp.nby; j++)
            if (tmp.by[j] == (enum report_key)k) {
                *err = "--by names a key twice";
                return -1;
            }
        tmp.by[tmp.nby++] = (enum report_key)k;
        if (s[n] == '\0')
            break;
        s += n + 1;
    }
    *o = tmp;
    return 0;
}

static int
leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
report_parse_when(const char *s, char out[17], const char **err)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = strlen(s);

    *err = "a date is YYYY-MM-DD or \"YYYY-MM-DD HH:MM\"";
    if (n != 10 && n != 16)
        return -1;
    for (int i = 0; i < 4; i++)
        if (!is_digit(s[i]))
            return -1;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int mo = s[4] == '-' ? two_digits(s + 5, 1, 12) : -1;
    if (mo < 0 || s[7] != '-')
        return -1;
    int d = two_digits(s + 8, 1, mdays[mo - 1] + (mo == 2 && leap(y)));
    if (d < 0)
        return -1;
    memcpy(out, s, 10);
    if (n == 10) {
        memcpy(out + 10, " 00:00", 7);
        return 0;
    }
    if ((s[10] != ' ' && s[10] != 'T') || s[13] != ':' || two_digits(s + 11, 0, 23) < 0 ||
        two_digits(s + 14, 0, 59) < 0)
        return -1;
    out[10] = ' ';
    memcpy(out + 11, s + 11, 5);
    out[16] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------
 * Aggregation: open addressing with the groups in the table itself (one
 * cache miss less per line than an index table); long keys in one arena
 * (offsets, so the arena may move while it grows).
 * ------------------------------------------------------------------------ */

/* Keys this short (a user and a platform, an hour and a user) are kept in
 * the slot, so finding a group costs one cache miss, not two. */
#define INLINE_KEY 24

struct group {
    uint64_t hash;
    size_t len; /* 0: an empty slot (a key has at least one NUL) */
    union {
        char in[INLINE_KEY];
        size_t off; /* in the arena, when longer */
    } k;
    struct report_counts c;
};

/* A line belongs to at most this many roles that are told apart; roles
 * past it are still counted, only not checked for repeats. */
#define MAX_ROLES 256

/* Groups are counted in batches: each key is hashed and its slot fetched
 * ahead (prefetch) while the next lines are parsed, so the cache misses of
 * a big table overlap instead of stalling one after the other. */
#define BATCH 16

struct pending {
    uint64_t hash;
    size_t off, len; /* the key, in t->pk */
    struct report_counts c;
};

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* One grouping of the counted lines: the --by rows, or one chart of the
 * HTML page. */
struct table {
    enum report_key by[REPORT_MAX_BY];
    size_t nby;
    int by_role;
    struct group *t;
    size_t nt; /* a power of two, at least twice ng */
    size_t ng;
    char *arena;
    size_t alen, acap;
    struct pending pend[BATCH];
    size_t npend;
    char *pk; /* the pending keys */
    size_t pklen, pkcap;
    struct report_row *rows; /* every group, sorted once counting is done */
    size_t nrows;            /* how many of them are shown */
};

/* The tables of an HTML report, in this order; a --by report has one. */
enum { T_USER, T_PLATFORM_DAY, T_RULE, T_HOUR, MAX_TABLES };

/* A set of keys (a NUL-separated client, host and second), for counting a
 * denial once. */
struct keyslot {
    uint64_t hash;
    size_t off, len; /* len 0: empty */
};
struct keyset {
    struct keyslot *s;
    size_t cap, n; /* cap: 0 or a power of two, at least twice n */
    char *arena;
    size_t alen, acap;
};

/* Denials already counted. Two generations: when the newer holds
 * SEEN_KEYS keys or SEEN_BYTES of them it becomes the older, and the older
 * is dropped. Memory stays bounded on any log, and a repeat is still
 * recognised when fewer than SEEN_KEYS other denials were logged between
 * the two lines (repeats come within the same second). */
#define SEEN_KEYS (1u << 16)
#define SEEN_BYTES (8u << 20)

struct report {
    struct report_opts o;
    struct table tab[MAX_TABLES];
    size_t ntab;
    struct keyset seen[2];
    size_t cur; /* the newer generation of seen */
    char *dk;   /* the key of the denial at hand */
    size_t dkcap;
    int failed;      /* out of memory while counting a batch */
    char *dec, *esc; /* quoted roles: decoded, then each part escaped again */
    size_t dcap, ecap;
    struct report_str roles[MAX_ROLES];
    int done;
    /* The first and last "YYYY-MM-DD HH:MM" counted (as written), or "". */
    char first[17], last[17];
};

static const char *
group_key(const struct table *t, const struct group *g)
{
    return g->len <= INLINE_KEY ? g->k.in : t->arena + g->k.off;
}

static int
table_init(struct table *t, const enum report_key *by, size_t nby)
{
    memcpy(t->by, by, nby * sizeof(*by));
    t->nby = nby;
    for (size_t i = 0; i < nby; i++)
        if (by[i] == REPORT_BY_ROLE)
            t->by_role = 1;
    t->nt = 256;
    t->t = calloc(t->nt, sizeof(*t->t));
    return t->t ? 0 : -1;
}

static void
table_free(struct table *t)
{
    free(t->t);
    free(t->arena);
    free(t->pk);
    free(t->rows);
}

static void
keyset_free(struct keyset *k)
{
    free(k->s);
    free(k->arena);
    memset(k, 0, sizeof(*k));
}

struct report *
report_new(const struct report_opts *o)
{
    static const enum report_key user[] = {REPORT_BY_USER},
                                 platform_day[] = {REPORT_BY_DAY, REPORT_BY_PLATFORM},
                                 rule[] = {REPORT_BY_RULE}, hour[] = {REPORT_BY_HOUR};
    struct report *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->o = *o;
    int rc;
    if (o->html) {
        r->ntab = MAX_TABLES;
        rc = table_init(&r->tab[T_USER], user, 1) |
             table_init(&r->tab[T_PLATFORM_DAY], platform_day, 2) |
             table_init(&r->tab[T_RULE], rule, 1) | table_init(&r->tab[T_HOUR], hour, 1);
    } else {
        r->ntab = 1;
        rc = table_init(&r->tab[0], o->by, o->nby);
    }
    if (rc < 0) {
        report_free(r);
        return NULL;
    }
    return r;
}

void
report_free(struct report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ntab; i++)
        table_free(&r->tab[i]);
    keyset_free(&r->seen[0]);
    keyset_free(&r->seen[1]);
    free(r->dk);
    free(r->dec);
    free(r->esc);
    free(r);
}

static int
reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* FNV-1a: keys are short (a user and a platform), so a byte loop is fine. */
static uint64_t
hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A zeroed table; a big one in huge pages where the kernel gives them on
 * request, for fewer TLB misses on its random accesses. */
static struct group *
table_alloc(size_t n)
{
    size_t bytes = n * sizeof(struct group);
    const size_t huge = 2u << 20;
    if (bytes < huge)
        return calloc(n, sizeof(struct group));
    void *t;
    bytes = (bytes + huge - 1) / huge * huge;
    if (posix_memalign(&t, huge, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(t, bytes, MADV_HUGEPAGE);
#endif
    memset(t, 0, bytes);
    return t;
}

static int
grow_table(struct table *tb)
{
    size_t n = tb->nt * 2;
    struct group *t = table_alloc(n);
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < tb->nt; i++) {
        if (tb->t[i].len == 0)
            continue;
        size_t j = (size_t)tb->t[i].hash & (n - 1);
        while (t[j].len)
            j = (j + 1) & (n - 1);
        t[j] = tb->t[i];
    }
    free(tb->t);
    tb->t = t;
    tb->nt = n;
    return 0;
}

static struct group *
lookup(struct table *tb, const char *key, size_t len, uint64_t h)
{
    size_t mask = tb->nt - 1;
    size_t j = (size_t)h & mask;
    for (; tb->t[j].len; j = (j + 1) & mask) {
        struct group *g = &tb->t[j];
        if (g->hash == h && g->len == len && memcmp(group_key(tb, g), key, len) == 0)
            return g;
    }
    if ((tb->ng + 1) * 2 > tb->nt) {
        if (grow_table(tb) < 0)
            return NULL;
        return lookup(tb, key, len, h); /* finds the new empty slot */
    }
    struct group *g = &tb->t[j];
    if (len <= INLINE_KEY) {
        memcpy(g->k.in, key, len);
    } else {
        if (reserve(&tb->arena, &tb->acap, tb->alen + len) < 0)
            return NULL;
        g->k.off = tb->alen;
        memcpy(tb->arena + tb->alen, key, len);
        tb->alen += len;
    }
    g->hash = h;
    g->len = len;
    tb->ng++;
    return g;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A client address without its port: 10.1.2.3:51514 and [2001:db8::1]:443
 * as 10.1.2.3 and 2001:db8::1; a bare address as it is. */
static struct report_str
client_addr(struct report_str s)
{
    if (s.p[0] == '[') { /* [v6]:port or [v6] */
        const char *rb = memchr(s.p, ']', s.len);
        if (rb)
            return (struct report_str){s.p + 1, (size_t)(rb - s.p - 1)};
        return s;
    }
    const char *c = memchr(s.p, ':', s.len);
    if (c && memchr(c + 1, ':', s.len - (size_t)(c + 1 - s.p)) == NULL)
        return (struct report_str){s.p, (size_t)(c - s.p)}; /* v4:port */
    return s;                                               /* v4, bare v6 */
}

/* The identity: the user, or the client address without its port when the
 * user is "-", so request lines (client=10.1.2.3:51514) and usage lines
 * (client=10.1.2.3) of one anonymous client meet in one group. */
static struct report_str
identity(const struct report_line *l)
{
    static const char dash[] = "-";
    struct report_str s = l->user;
    if (s.p && !str_is(s, "-"))
        return s;
    s = l->client;
    if (s.p == NULL || str_is(s, "-"))
        return (struct report_str){dash, 1};
    return client_addr(s);
}

/* Adds the pending batch to its groups. */
static int
flush_pending(struct report *r, struct table *t)
{
    for (size_t i = 0; i < t->npend; i++) {
        const struct pending *p = &t->pend[i];
        struct group *g = lookup(t, t->pk + p->off, p->len, p->hash);
        if (g == NULL) {
            r->failed = 1;
            return -1;
        }
        g->c.active_min = sat_add(g->c.active_min, p->c.active_min);
        g->c.requests = sat_add(g->c.requests, p->c.requests);
        g->c.up = sat_add(g->c.up, p->c.up);
        g->c.down = sat_add(g->c.down, p->c.down);
        g->c.denials = sat_add(g->c.denials, p->c.denials);
        g->c.warns = sat_add(g->c.warns, p->c.warns);
    }
    t->npend = 0;
    t->pklen = 0;
    return 0;
}

/* Builds the key of one group of table t the line belongs to (role: the
 * given one) and queues the line's counts for it. */
static int
count_in(struct report *r, struct table *t, const struct report_line *l, struct report_str role,
         const struct report_counts *c)
{
    static const char dash[] = "-";
    size_t k = t->pklen;
    for (size_t i = 0; i < t->nby; i++) {
        struct report_str v;
        char hour[13];
        switch (t->by[i]) {
        case REPORT_BY_USER:
            v = identity(l);
            break;
        case REPORT_BY_ROLE:
            v = role;
            break;
        case REPORT_BY_PLATFORM:
            v = l->platform;
            break;
        case REPORT_BY_CATEGORY:
            v = l->category;
            break;
        case REPORT_BY_RULE:
            v = l->kind == REPORT_EV_USAGE ? (struct report_str){NULL, 0} : l->rule;
            break;
        case REPORT_BY_ACTION:
            v = l->kind == REPORT_EV_USAGE ? (struct report_str){NULL, 0} : l->action;
            break;
        case REPORT_BY_DAY:
            v = (struct report_str){l->ts, 10};
            break;
        case REPORT_BY_HOUR:
        default:
            memcpy(hour, l->ts, 10);
            hour[10] = ' ';
            memcpy(hour + 11, l->ts + 11, 2);
            v = (struct report_str){hour, 13};
            break;
        }
        /* Usage lines of the first format had no category or roles; no
         * usage line names a rule or an action. */
        if (v.p == NULL)
            v = (struct report_str){dash, 1};
        /* A quoted value with a raw space is of the first log format:
         * grouped with the same value written today, a space as \x20. */
        int old_space = v.len > 0 && v.p[0] == '"' && memchr(v.p, ' ', v.len) != NULL;
        if (reserve(&t->pk, &t->pkcap, k + (old_space ? v.len * 4 : v.len) + 1) < 0)
            return -1;
        if (old_space) {
            for (size_t j = 0; j < v.len; j++) {
                if (v.p[j] == ' ') {
                    memcpy(t->pk + k, "\\x20", 4);
                    k += 4;
                } else {
                    t->pk[k++] = v.p[j];
                }
            }
        } else {
            memcpy(t->pk + k, v.p, v.len);
            k += v.len;
        }
        t->pk[k++] = '\0';
    }
    struct pending *p = &t->pend[t->npend++];
    p->off = t->pklen;
    p->len = k - t->pklen;
    p->hash = hash_bytes(t->pk + p->off, p->len);
    p->c = *c;
    t->pklen = k;
    const char *slot = (const char *)&t->t[p->hash & (t->nt - 1)];
    PREFETCH(slot);
    PREFETCH(slot + sizeof(struct group) - 1);
    return t->npend == BATCH ? flush_pending(r, t) : 0;
}

/* Counts the line once for each role of roles=a,b (a role named twice
 * counts once). The parts of a quoted value are decoded and escaped again,
 * so each shows as the log would write it alone. */
static int
count_roles(struct report *r, struct table *t, const struct report_line *l,
            const struct report_counts *c)
{
    static const char dash[] = "-";
    const char *s = l->roles.p;
    size_t len = l->roles.len, n = 0, eo = 0;
    int quoted = len >= 2 && s[0] == '"';

    if (s == NULL || str_is(l->roles, "-"))
        return count_in(r, t, l, (struct report_str){dash, 1}, c);
    if (quoted) {
        /* Sized once, so the parts kept in r->roles do not move. */
        if (reserve(&r->dec, &r->dcap, len) < 0 || reserve(&r->esc, &r->ecap, len * 4 + 16) < 0)
            return -1;
        len = report_unescape(s, len, r->dec);
        s = r->dec;
    }
    for (size_t i = 0; i <= len;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t srclen = comma ? (size_t)(comma - (s + i)) : len - i;
        struct report_str part = {s + i, srclen};
        i += srclen + 1;
        if (srclen == 0)
            continue;
        if (quoted) {
            size_t w = escape_log_value(part.p, srclen, r->esc + eo, r->ecap - eo);
            part.p = r->esc + eo;
            part.len = w;
            eo += w + 1;
        }
        /* Repeats are looked for among the first MAX_ROLES only: a
         * hostile line with thousands of roles stays linear. */
        int seen = 0;
        for (size_t j = 0; j < n && j < MAX_ROLES; j++)
            if (r->roles[j].len == part.len && memcmp(r->roles[j].p, part.p, part.len) == 0)
                seen = 1;
        if (seen)
            continue;
        if (n < MAX_ROLES)
            r->roles[n] = part;
        n++;
        if (count_in(r, t, l, part, c) < 0)
            return -1;
    }
    if (n == 0)
        return count_in(r, t, l, (struct report_str){dash, 1}, c);
    return 0;
}

/* 1 when key was not in k and is now, 0 when it was, -1 when out of
 * memory. */
static int
keyset_add(struct keyset *k, const char *key, size_t len, uint64_t h)
{
    if ((k->n + 1) * 2 > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        struct keyslot *s = calloc(cap, sizeof(*s));
        if (s == NULL)
            return -1;
        for (size_t i = 0; i < k->cap; i++) {
            if (k->s[i].len == 0)
                continue;
            size_t j = (size_t)k->s[i].hash & (cap - 1);
            while (s[j].len)
                j = (j + 1) & (cap - 1);
            s[j] = k->s[i];
        }
        free(k->s);
        k->s = s;
        k->cap = cap;
    }
    size_t j = (size_t)h & (k->cap - 1);
    for (; k->s[j].len; j = (j + 1) & (k->cap - 1))
        if (k->s[j].hash == h && k->s[j].len == len &&
            memcmp(k->arena + k->s[j].off, key, len) == 0)
            return 0;
    if (reserve(&k->arena, &k->acap, k->alen + len) < 0)
        return -1;
    memcpy(k->arena + k->alen, key, len);
    k->s[j] = (struct keyslot){h, k->alen, len};
    k->alen += len;
    k->n++;
    return 1;
}

static int
keyset_has(const struct keyset *k, const char *key, size_t len, uint64_t h)
{
    if (k->cap == 0)
        return 0;
    for (size_t j = (size_t)h & (k->cap - 1); k->s[j].len; j = (j + 1) & (k->cap - 1))
        if (k->s[j].hash == h && k->s[j].len == len &&
            memcmp(k->arena + k->s[j].off, key, len) == 0)
            return 1;
    return 0;
}

/* 1 when a denied line is the first with its client address, host and
 * second, 0 when one was counted already, -1 when out of memory. The
 * second keeps the offset ('Z' as +00:00): the hour repeated when clocks
 * go back is another hour. */
static int
first_denial(struct report *r, const struct report_line *l)
{
    static const char dash[] = "-";
    struct report_str c = l->client.p && !str_is(l->client, "-") ? client_addr(l->client)
                                                                 : (struct report_str){dash, 1};
    struct report_str h = l->host.p ? l->host : (struct report_str){dash, 1};
    /* The timestamp was checked: 19 bytes to the second, an optional
     * fraction, then 'Z' or +hh:mm. */
    const char *ts = l->ts;
    size_t off = 19;
    if (ts[off] == '.')
        for (off++; is_digit(ts[off]); off++)
            ;
    const char *zone = ts[off] == 'Z' ? "+00:00" : ts + off;
    size_t len = c.len + 1 + h.len + 1 + 19 + 6;
    if (reserve(&r->dk, &r->dkcap, len) < 0)
        return -1;
    char *k = r->dk;
    memcpy(k, c.p, c.len);
    k += c.len;
    *k++ = '\0';
    memcpy(k, h.p, h.len);
    k += h.len;
    *k++ = '\0';
    memcpy(k, ts, 19);
    memcpy(k + 19, zone, 6);
    uint64_t hash = hash_bytes(r->dk, len);
    if (keyset_has(&r->seen[r->cur ^ 1], r->dk, len, hash))
        return 0;
    struct keyset *cur = &r->seen[r->cur];
    int rc = keyset_add(cur, r->dk, len, hash);
    if (rc > 0 && (cur->n >= SEEN_KEYS || cur->alen >= SEEN_BYTES)) {
        r->cur ^= 1;
        keyset_free(&r->seen[r->cur]);
    }
    return rc;
}

/* Keeps the first and last time counted, as "YYYY-MM-DD HH:MM". */
static void
note_time(struct report *r, const char *ts)
{
    char t[17];
    memcpy(t, ts, 10);
    t[10] = ' ';
    memcpy(t + 11, ts + 11, 5);
    t[16] = '\0';
    if (r->first[0] == '\0' || strcmp(t, r->first) < 0)
        memcpy(r->first, t, 17);
    if (strcmp(t, r->last) > 0)
        memcpy(r->last, t, 17);
}

int
report_add(struct report *r, const struct report_line *l)
{
    struct report_counts c = {0};

    if (r->done)
        return 0;
    if (l->kind == REPORT_EV_USAGE) {
        c.active_min = l->active_min;
        c.requests = l->requests;
        c.up = l->up;
        c.down = l->down;
    } else if (l->kind == REPORT_EV_REQUEST || l->kind == REPORT_EV_TUNNEL) {
        if (str_is(l->action, "deny"))
            c.denials = 1;
        else if (str_is(l->action, "warn"))
            c.warns = 1;
        else
            return 0;
    } else {
        return 0;
    }
    /* Local date and time as written, compared as text: "YYYY-MM-DD" and
     * "HH:MM" sort like the times they name. */
    if (r->o.since[0] &&
        (memcmp(l->ts, r->o.since, 10) < 0 ||
         (memcmp(l->ts, r->o.since, 10) == 0 && memcmp(l->ts + 11, r->o.since + 11, 5) < 0)))
        return 0;
    if (r->o.until[0] &&
        (memcmp(l->ts, r->o.until, 10) > 0 ||
         (memcmp(l->ts, r->o.until, 10) == 0 && memcmp(l->ts + 11, r->o.until + 11, 5) >= 0)))
        return 0;
    if (c.denials) {
        int first = first_denial(r, l);
        if (first < 0)
            return -1;
        if (first == 0)
            return 0;
    }
    note_time(r, l->ts);

    for (size_t i = 0; i < r->ntab; i++) {
        struct table *t = &r->tab[i];
        int rc = t->by_role ? count_roles(r, t, l, &c)
                            : count_in(r, t, l, (struct report_str){NULL, 0}, &c);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int
report_feed(struct report *r, const char *line, size_t len)
{
    struct report_line l;
    if (report_parse_line(line, len, &l) < 0)
        return 1;
    return report_add(r, &l) < 0 ? -1 : 0;
}

static int
cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int
cmp_rows(const void *pa, const void *pb)
{
    const struct report_row *a = pa, *b = pb;
    if (a->c.active_min != b->c.active_min)
        return a->c.active_min > b->c.active_min ? -1 : 1;
    if (a->c.requests != b->c.requests)
        return a->c.requests > b->c.requests ? -1 : 1;
    /* Parts end in NUL, the smallest byte: "a\0" sorts before "ab\0". */
    return cmp_key(a->key, a->key_len, b->key, b->key_len);
}

/* Flushes every table and makes its rows, sorted by cmp_rows; only the
 * first table is cut to `top`. Returns 0, or -1 when out of memory. */
static int
finish(struct report *r)
{
    if (r->done)
        return r->failed ? -1 : 0;
    r->done = 1;
    for (size_t i = 0; i < r->ntab; i++) {
        struct table *t = &r->tab[i];
        if (flush_pending(r, t) < 0)
            return -1;
        if (t->ng == 0)
            continue;
        t->rows = malloc(t->ng * sizeof(*t->rows));
        if (t->rows == NULL) {
            r->failed = 1;
            return -1;
        }
        size_t k = 0;
        for (size_t j = 0; j < t->nt; j++) {
            if (t->t[j].len == 0)
                continue;
            t->rows[k].key = group_key(t, &t->t[j]);
            t->rows[k].key_len = t->t[j].len;
            t->rows[k].c = t->t[j].c;
            k++;
        }
        qsort(t->rows, t->ng, sizeof(*t->rows), cmp_rows);
        t->nrows = t->ng;
        if (i == 0 && r->o.top && t->nrows > r->o.top)
            t->nrows = r->o.top;
    }
    return 0;
}

const struct report_row *
report_rows(struct report *r, size_t *n)
{
    if (finish(r) < 0) {
        *n = 0;
        return NULL;
    }
    *n = r->tab[0].nrows;
    return r->tab[0].nrows ? r->tab[0].rows : NULL;
}

struct report_str
report_row_part(const struct report_row *row, size_t i)
{
    const char *p = row->key, *end = row->key + row->key_len;
    while (i-- > 0 && p < end)
        p += strlen(p) + 1;
    if (p >= end)
        return (struct report_str){NULL, 0};
    return (struct report_str){p, strlen(p)};
}

/* ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------ */

static const char *const count_names[] = {"active_min", "requests", "up",
                                          "down",       "denials",  "warns"};
#define NCOUNTS 6

static uint64_t
count_at(const struct report_counts *c, size_t i)
{
    const uint64_t v[NCOUNTS] = {c->active_min, c->requests, c->up, c->down, c->denials, c->warns};
    return v[i];
}

/* Terminal columns of a raw value: UTF-8 continuation bytes take none. */
static size_t
columns(const char *p, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)p[i] & 0xc0) != 0x80;
    return w;
}

static void
pad(FILE *out, size_t n)
{
    while (n-- > 0)
        putc(' ', out);
}

static int
print_table(struct report *r, const struct report_row *rows, size_t n, FILE *out)
{
    size_t nby = r->tab[0].nby;
    size_t width[REPORT_MAX_BY + NCOUNTS];
    char num[24];

    for (size_t i = 0; i < nby; i++)
        width[i] = strlen(key_names[r->tab[0].by[i]]);
    for (size_t i = 0; i < NCOUNTS; i++)
        width[nby + i] = strlen(count_names[i]);
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < nby; i++) {
            struct report_str v = report_row_part(&rows[j], i);
            size_t w = columns(v.p, v.len);
            if (w > width[i])
                width[i] = w;
        }
        for (size_t i = 0; i < NCOUNTS; i++) {
            size_t w = (size_t)snprintf(num, sizeof(num), "%llu",
                                        (unsigned long long)count_at(&rows[j].c, i));
            if (w > width[nby + i])
                width[nby + i] = w;
        }
    }
    /* Group values left-aligned, figures right-aligned, two spaces apart. */
    for (size_t i = 0; i < nby; i++) {
        const char *h = key_names[r->tab[0].by[i]];
        fputs(h, out);
        pad(out, width[i] - strlen(h) + 2);
    }
    for (size_t i = 0; i < NCOUNTS; i++) {
        pad(out, width[nby + i] - strlen(count_names[i]) + (i ? 2 : 0));
        fputs(count_names[i], out);
    }
    putc('\n', out);
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < nby; i++) {
            struct report_str v = report_row_part(&rows[j], i);
            fwrite(v.p, 1, v.len, out);
            pad(out, width[i] - columns(v.p, v.len) + 2);
        }
        for (size_t i = 0; i < NCOUNTS; i++) {
            size_t w = (size_t)snprintf(num, sizeof(num), "%llu",
                                        (unsigned long long)count_at(&rows[j].c, i));
            pad(out, width[nby + i] - w + (i ? 2 : 0));
            fputs(num, out);
        }
        putc('\n', out);
    }
    return 0;
}

static void
csv_field(FILE *out, const char *p, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n')
            quote = 1;
    if (!quote) {
        fwrite(p, 1, n, out);
        return;
    }
    putc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            putc('"', out);
        putc(p[i], out);
    }
    putc('"', out);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD so the output
 * always parses. */
static void
json_string(FILE *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            putc('\\', out);
            putc((int)c, out);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(p + i, 1, l, out);
                i += l;
            }
        }
    }
    putc('"', out);
}

/* ------------------------------------------------------------------------
 * The HTML page: one file to open in a browser or attach to a mail, so
 * nothing in it is fetched or run (inline style and SVG, no script, no
 * link). Every figure is also written as text and in a data- attribute.
 * ------------------------------------------------------------------------ */

/* How many users the page shows when --top is not given. */
#define HTML_TOP_USERS 10
/* Bar widths in pixels. */
#define BAR_W 320
#define BAR_H 14

static const char html_replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Decoded bytes as HTML text or a quoted attribute value: & < > " ' as
 * references; bytes that are not UTF-8, and the control characters and
 * noncharacters HTML does not allow, as U+FFFD. */
static void
html_text(FILE *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        const char *ref = c == '&'    ? "&amp;"
                          : c == '<'  ? "&lt;"
                          : c == '>'  ? "&gt;"
                          : c == '"'  ? "&quot;"
                          : c == '\'' ? "&#39;"
                                      : NULL;
        if (ref) {
            fputs(ref, out);
            i++;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            fputs(html_replacement, out);
            i++;
            continue;
        }
        size_t l = utf8_len(p + i, n - i);
        if (l == 0) {
            fputs(html_replacement, out);
            i++;
            continue;
        }
        uint32_t cp = l == 1 ? c : (uint32_t)(c & (0xff >> (l + 1)));
        for (size_t k = 1; k < l; k++)
            cp = cp << 6 | (p[i + k] & 0x3f);
        if ((cp >= 0x80 && cp < 0xa0) || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
            fputs(html_replacement, out);
        else
            fwrite(p + i, 1, l, out);
        i += l;
    }
}

/* A value as the log writes it, decoded, as HTML. */
static int
html_value(struct report *r, FILE *out, struct report_str v)
{
    if (reserve(&r->dec, &r->dcap, v.len + 1) < 0)
        return -1;
    html_text(out, r->dec, report_unescape(v.p, v.len, r->dec));
    return 0;
}

static unsigned long long
ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* "s" unless v is 1. */
static const char *
plural(uint64_t v)
{
    return v == 1 ? "" : "s";
}

/* A horizontal bar for v of max, with its title. The caller writes the
 * title's text between the two halves. */
static void
html_bar_open(FILE *out, const char *cls)
{
    fprintf(out, "<td><svg class=\"%s\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\"><title>",
            cls, BAR_W, BAR_H, BAR_W, BAR_H);
}

static void
html_bar_close(FILE *out, uint64_t v, uint64_t max)
{
    double w = max ? (double)v / (double)max * BAR_W : 0;
    fprintf(out, "</title><rect width=\"%.1f\" height=\"%d\"/></svg></td>", w, BAR_H);
}

/* Rows of the platform-per-day table: day ascending, then as the report
 * sorts (active minutes descending, ...). */
static int
cmp_day_rows(const void *pa, const void *pb)
{
    const struct report_row *a = pa, *b = pb;
    int c = memcmp(a->key, b->key, 10); /* both start with "YYYY-MM-DD\0" */
    return c ? c : cmp_rows(pa, pb);
}

/* Denials descending, then the key. */
static int
cmp_denial_rows(const void *pa, const void *pb)
{
    const struct report_row *a = pa, *b = pb;
    if (a->c.denials != b->c.denials)
        return a->c.denials > b->c.denials ? -1 : 1;
    return cmp_key(a->key, a->key_len, b->key, b->key_len);
}

static const char html_head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>socialgate report</title>\n"
    "<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;color:#222;background:#fff;max-width:64em;"
    "margin:1.5em auto;padding:0 1em}\n"
    "h1{font-size:1.5em;margin:0 0 .3em}\n"
    "h2{font-size:1.15em;margin:2em 0 .5em;border-bottom:1px solid #ccc}\n"
    "table{border-collapse:collapse}\n"
    "th,td{padding:2px 8px;text-align:left;vertical-align:middle}\n"
    "thead th{font-weight:normal;color:#666;border-bottom:1px solid #ddd}\n"
    "tbody th{padding-top:.8em}\n"
    ".n{text-align:right;font-variant-numeric:tabular-nums}\n"
    ".k{overflow-wrap:anywhere;max-width:22em}\n"
    "svg{display:block;max-width:100%;height:auto}\n"
    ".bar rect,.hours rect{fill:#3b6ea8}\n"
    ".deny rect{fill:#b8433a}\n"
    ".hours text{font-size:10px;text-anchor:middle;fill:#222}\n"
    ".hours text.h{fill:#666}\n"
    ".none,.period{color:#666}\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>socialgate report</h1>\n";

static void
html_totals(struct report *r, FILE *out)
{
    static const char *const label[NCOUNTS] = {"active minutes", "requests", "bytes up",
                                               "bytes down",     "denials",  "warns"};
    const struct table *t = &r->tab[T_USER];
    struct report_counts sum = {0};
    /* Every counted line is in exactly one user's group. */
    for (size_t j = 0; j < t->ng; j++) {
        sum.active_min = sat_add(sum.active_min, t->rows[j].c.active_min);
        sum.requests = sat_add(sum.requests, t->rows[j].c.requests);
        sum.up = sat_add(sum.up, t->rows[j].c.up);
        sum.down = sat_add(sum.down, t->rows[j].c.down);
        sum.denials = sat_add(sum.denials, t->rows[j].c.denials);
        sum.warns = sat_add(sum.warns, t->rows[j].c.warns);
    }
    if (r->first[0])
        fprintf(out, "<p class=\"period\">From %s to %s (local time as the log writes it).</p>\n",
                r->first, r->last);
    else
        fputs("<p class=\"period\">Nothing was counted.</p>\n", out);
    fputs("<table class=\"totals\">\n", out);
    for (size_t i = 0; i < NCOUNTS; i++)
        fprintf(out, "<tr><th>%s</th><td class=\"n\" data-total=\"%s\">%llu</td></tr>\n", label[i],
                count_names[i], ull(count_at(&sum, i)));
    fputs("</table>\n", out);
}

static int
html_platform_day(struct report *r, FILE *out)
{
    struct table *t = &r->tab[T_PLATFORM_DAY];
    uint64_t max = 0;
    size_t shown = 0;
    if (t->ng)
        qsort(t->rows, t->ng, sizeof(*t->rows), cmp_day_rows);
    for (size_t j = 0; j < t->ng; j++) {
        if (t->rows[j].c.active_min > max)
            max = t->rows[j].c.active_min;
        shown += t->rows[j].c.active_min > 0;
    }
    fputs("<h2 id=\"platform-day\">Active minutes per platform and day</h2>\n", out);
    if (shown == 0) {
        fputs("<p class=\"none\">No active minutes.</p>\n", out);
        return 0;
    }
    fputs("<table class=\"chart\">\n<thead><tr><th>platform</th><th></th>"
          "<th class=\"n\">active minutes</th></tr></thead>\n",
          out);
    const char *day = NULL;
    for (size_t j = 0; j < t->ng; j++) {
        const struct report_row *row = &t->rows[j];
        if (row->c.active_min == 0)
            continue;
        struct report_str d = report_row_part(row, 0), p = report_row_part(row, 1);
        if (day == NULL || memcmp(day, d.p, 10) != 0) {
            fprintf(out, "%s<tbody data-day=\"%.10s\">\n<tr><th colspan=\"3\">%.10s</th></tr>\n",
                    day ? "</tbody>\n" : "", d.p, d.p);
            day = d.p;
        }
        fprintf(out, "<tr data-day=\"%.10s\" data-platform=\"", d.p);
        if (html_value(r, out, p) < 0)
            return -1;
        fprintf(out, "\" data-active-min=\"%llu\"><td class=\"k\">", ull(row->c.active_min));
        html_value(r, out, p);
        fputs("</td>", out);
        html_bar_open(out, "bar");
        html_value(r, out, p);
        fprintf(out, ", %.10s: %llu active minute%s", d.p, ull(row->c.active_min),
                plural(row->c.active_min));
        html_bar_close(out, row->c.active_min, max);
        fprintf(out, "<td class=\"n\">%llu</td></tr>\n", ull(row->c.active_min));
    }
    fputs("</tbody>\n</table>\n", out);
    return 0;
}

static int
html_users(struct report *r, FILE *out)
{
    const struct table *t = &r->tab[T_USER];
    size_t n = r->o.top ? t->nrows : (t->nrows < HTML_TOP_USERS ? t->nrows : HTML_TOP_USERS);
    uint64_t max = n ? t->rows[0].c.active_min : 0; /* sorted by active minutes */
    size_t top = r->o.top ? r->o.top : HTML_TOP_USERS;
    fprintf(out, "<h2 id=\"users\">Top %zu user%s by active minutes</h2>\n", top, plural(top));
    if (n == 0) {
        fputs("<p class=\"none\">No users.</p>\n", out);
        return 0;
    }
    fputs("<table class=\"chart\">\n<thead><tr><th>user</th><th></th>"
          "<th class=\"n\">active minutes</th><th class=\"n\">requests</th>"
          "<th class=\"n\">denials</th></tr></thead>\n<tbody>\n",
          out);
    for (size_t j = 0; j < n; j++) {
        const struct report_row *row = &t->rows[j];
        struct report_str u = report_row_part(row, 0);
        fputs("<tr data-user=\"", out);
        if (html_value(r, out, u) < 0)
            return -1;
        fprintf(out, "\" data-active-min=\"%llu\" data-requests=\"%llu\" data-denials=\"%llu\">",
                ull(row->c.active_min), ull(row->c.requests), ull(row->c.denials));
        fputs("<td class=\"k\">", out);
        html_value(r, out, u);
        fputs("</td>", out);
        html_bar_open(out, "bar");
        html_value(r, out, u);
        fprintf(out, ": %llu active minute%s", ull(row->c.active_min), plural(row->c.active_min));
        html_bar_close(out, row->c.active_min, max);
        fprintf(out,
                "<td class=\"n\">%llu</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td>"
                "</tr>\n",
                ull(row->c.active_min), ull(row->c.requests), ull(row->c.denials));
    }
    fputs("</tbody>\n</table>\n", out);
    return 0;
}

static int
html_rules(struct report *r, FILE *out)
{
    struct table *t = &r->tab[T_RULE];
    if (t->ng)
        qsort(t->rows, t->ng, sizeof(*t->rows), cmp_denial_rows);
    uint64_t max = t->ng ? t->rows[0].c.denials : 0;
    fputs("<h2 id=\"rules\">Denials by rule</h2>\n", out);
    if (max == 0) {
        fputs("<p class=\"none\">No denials.</p>\n", out);
        return 0;
    }
    fputs("<table class=\"chart\">\n<thead><tr><th>rule</th><th></th>"
          "<th class=\"n\">denials</th></tr></thead>\n<tbody>\n",
          out);
    for (size_t j = 0; j < t->ng && t->rows[j].c.denials > 0; j++) {
        const struct report_row *row = &t->rows[j];
        struct report_str rule = report_row_part(row, 0);
        fputs("<tr data-rule=\"", out);
        if (html_value(r, out, rule) < 0)
            return -1;
        fprintf(out, "\" data-denials=\"%llu\"><td class=\"k\">", ull(row->c.denials));
        html_value(r, out, rule);
        fputs("</td>", out);
        html_bar_open(out, "deny");
        html_value(r, out, rule);
        fprintf(out, ": %llu denial%s", ull(row->c.denials), plural(row->c.denials));
        html_bar_close(out, row->c.denials, max);
        fprintf(out, "<td class=\"n\">%llu</td></tr>\n", ull(row->c.denials));
    }
    fputs("</tbody>\n</table>\n", out);
    return 0;
}

static void
html_hours(struct report *r, FILE *out)
{
    enum { SLOT = 30, TOP = 16, H = 120, BOTTOM = 18 };
    const struct table *t = &r->tab[T_HOUR];
    uint64_t min[24] = {0}, max = 0;
    for (size_t j = 0; j < t->ng; j++) {
        const char *k = t->rows[j].key; /* "YYYY-MM-DD HH" */
        int h = (k[11] - '0') * 10 + (k[12] - '0');
        min[h] = sat_add(min[h], t->rows[j].c.active_min);
    }
    for (int h = 0; h < 24; h++)
        if (min[h] > max)
            max = min[h];
    fputs("<h2 id=\"hours\">Active minutes by hour of the day</h2>\n", out);
    fprintf(out,
            "<svg class=\"hours\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">"
            "<title>Active minutes by hour of the day, all days together</title>\n",
            24 * SLOT, TOP + H + BOTTOM, 24 * SLOT, TOP + H + BOTTOM);
    for (int h = 0; h < 24; h++) {
        double bh = max ? (double)min[h] / (double)max * H : 0;
        int x = h * SLOT;
        fprintf(out,
                "<g data-hour=\"%02d\" data-active-min=\"%llu\">"
                "<title>%02d:00-%02d:00: %llu active minute%s</title>"
                "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\"/>"
                "<text x=\"%d\" y=\"%.1f\">%llu</text>"
                "<text class=\"h\" x=\"%d\" y=\"%d\">%02d</text></g>\n",
                h, ull(min[h]), h, h + 1, ull(min[h]), plural(min[h]), x + 3, TOP + H - bh,
                SLOT - 6, bh, x + SLOT / 2, TOP + H - bh - 3, ull(min[h]), x + SLOT / 2,
                TOP + H + BOTTOM - 4, h);
    }
    fputs("</svg>\n", out);
}

static int
print_html(struct report *r, FILE *out)
{
    fputs(html_head, out);
    html_totals(r, out);
    if (html_platform_day(r, out) < 0 || html_users(r, out) < 0 || html_rules(r, out) < 0)
        return -1;
    html_hours(r, out);
    fputs("<p class=\"period\">Active minutes, requests and bytes come from the ev=usage lines; "
          "denials and warns from the request and tunnel lines, a denial counted once per "
          "client address, host and second.</p>\n</body>\n</html>\n",
          out);
    return 0;
}

int
report_print(struct report *r, enum report_format f, FILE *out)
{
    size_t n;
    const struct report_row *rows = report_rows(r, &n);
    size_t nby = r->tab[0].nby;
    if (r->failed)
        return -1;
    char *buf = NULL;
    size_t bcap = 0;

    if (f == REPORT_TABLE) {
        print_table(r, rows, n, out);
        return ferror(out) ? -1 : 0;
    }
    if (f == REPORT_HTML) {
        if (!r->o.html || print_html(r, out) < 0)
            return -1;
        return ferror(out) ? -1 : 0;
    }
    if (f == REPORT_CSV) {
        for (size_t i = 0; i < nby; i++)
            fprintf(out, "%s,", key_names[r->tab[0].by[i]]);
        for (size_t i = 0; i < NCOUNTS; i++)
            fprintf(out, "%s%c", count_names[i], i + 1 < NCOUNTS ? ',' : '\n');
    } else {
        fputs(n ? "[\n" : "[", out);
    }
    for (size_t j = 0; j < n; j++) {
        if (f == REPORT_JSON)
            fputs("  {", out);
        for (size_t i = 0; i < nby; i++) {
            struct report_str v = report_row_part(&rows[j], i);
            if (reserve(&buf, &bcap, v.len + 1) < 0) {
                free(buf);
                return -1;
            }
            size_t dl = report_unescape(v.p, v.len, buf);
            if (f == REPORT_CSV) {
                csv_field(out, buf, dl);
                putc(',', out);
            } else {
                fprintf(out, "\"%s\": ", key_names[r->tab[0].by[i]]);
                json_string(out, buf, dl);
                fputs(", ", out);
            }
        }
        for (size_t i = 0; i < NCOUNTS; i++) {
            unsigned long long v = (unsigned long long)count_at(&rows[j].c, i);
            if (f == REPORT_CSV)
                fprintf(out, "%llu%c", v, i + 1 < NCOUNTS ? ',' : '\n');
            else
                fprintf(out, "\"%s\": %llu%s", count_names[i], v, i + 1 < NCOUNTS ? ", " : "}");
        }
        if (f == REPORT_JSON)
            fputs(j + 1 < n ? ",\n" : "\n", out);
    }
    if (f == REPORT_JSON)
        fputs("]\n", out);
    free(buf);
    return ferror(out) ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------ */

/* Big reads, lines parsed where they lie. A line longer than the buffer is
 * not a usage-log line (the daemon writes a few KiB at most). */
#define READ_BUF (4u << 20)

struct feed_state {
    struct report *r;
    char *buf;
    uint64_t malformed;
    char *first_file; /* where the first malformed line was */
    uint64_t first_line;
};

static void
note_malformed(struct feed_state *st, const char *name, uint64_t lineno)
{
    if (st->malformed++ == 0) {
        st->first_file = strdup(name);
        st->first_line = lineno;
    }
}

/* Reads one file or stdin. Returns 0, 1 on a read error (reported), or -1
 * when out of memory. */
static int
read_stream(struct feed_state *st, int fd, const char *name)
{
    size_t have = 0;  /* bytes in buf */
    int skipping = 0; /* inside a line too long for the buffer */
    uint64_t lineno = 0;

    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (;;) {
        ssize_t got = read(fd, st->buf + have, READ_BUF - have);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "socialgate report: %s: %s\n", name, strerror(errno));
            return 1;
        }
        size_t scan = have; /* no newline before here */
        have += (size_t)got;
        size_t start = 0;
        const char *nl;
        while ((nl = memchr(st->buf + scan, '\n', have - scan)) != NULL) {
            size_t end = (size_t)(nl - st->buf);
            lineno++;
            if (skipping) {
                skipping = 0;
            } else {
                int rc = report_feed(st->r, st->buf + start, end - start);
                if (rc < 0)
                    return -1;
                if (rc > 0)
                    note_malformed(st, name, lineno);
            }
            start = scan = end + 1;
        }
        if (got == 0) {
            if (start < have && !skipping) { /* the last line had no newline */
                lineno++;
                int rc = report_feed(st->r, st->buf + start, have - start);
                if (rc < 0)
                    return -1;
                if (rc > 0)
                    note_malformed(st, name, lineno);
            }
            return 0;
        }
        if (start == 0 && have == READ_BUF) {
            if (!skipping)
                note_malformed(st, name, lineno + 1);
            skipping = 1;
            have = 0;
            continue;
        }
        memmove(st->buf, st->buf + start, have - start);
        have -= start;
    }
}

/* One file of several read together: lines come one at a time, so that
 * the files can be merged in time order. */
struct line_reader {
    int fd;
    const char *name;
    char *buf;                /* READ_BUF bytes */
    size_t have, start, scan; /* bytes in buf; the next line; no newline before scan */
    int skipping;             /* inside a line too long for the buffer */
    int eof;
    uint64_t lineno;
};

/* The next line of lr (without its newline) in *p, *n: valid until the
 * next call on lr. 1, 0 at the end, -1 on a read error (reported). */
static int
lr_next(struct feed_state *st, struct line_reader *lr, const char **p, size_t *n)
{
    for (;;) {
        const char *nl = memchr(lr->buf + lr->scan, '\n', lr->have - lr->scan);
        if (nl != NULL) {
            size_t s = lr->start, end = (size_t)(nl - lr->buf);
            lr->lineno++;
            lr->start = lr->scan = end + 1;
            if (lr->skipping) {
                lr->skipping = 0;
                continue;
            }
            *p = lr->buf + s;
            *n = end - s;
            return 1;
        }
        lr->scan = lr->have;
        if (lr->eof) {
            if (lr->start < lr->have && !lr->skipping) { /* the last line had no newline */
                lr->lineno++;
                *p = lr->buf + lr->start;
                *n = lr->have - lr->start;
                lr->start = lr->scan = lr->have;
                return 1;
            }
            return 0;
        }
        if (lr->start == 0 && lr->have == READ_BUF) {
            if (!lr->skipping)
                note_malformed(st, lr->name, lr->lineno + 1);
            lr->skipping = 1;
            lr->have = lr->scan = 0;
        } else if (lr->start > 0) {
            memmove(lr->buf, lr->buf + lr->start, lr->have - lr->start);
            lr->have -= lr->start;
            lr->scan -= lr->start;
            lr->start = 0;
        }
        ssize_t got = read(lr->fd, lr->buf + lr->have, READ_BUF - lr->have);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "socialgate report: %s: %s\n", lr->name, strerror(errno));
            return -1;
        }
        if (got == 0)
            lr->eof = 1;
        lr->have += (size_t)got;
    }
}

static int
digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

int
report_line_time(const char *p, size_t n, int64_t *ms)
{
    /* 2026-12-03T13:15:46.123+01:00 (the milliseconds optional) */
    int y, mo, d, h, mi, sec, frac = 0, oh, om;
    size_t o = 19;
    if (n < 25 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':' ||
        digits(p, 4, &y) < 0 || digits(p + 5, 2, &mo) < 0 || digits(p + 8, 2, &d) < 0 ||
        digits(p + 11, 2, &h) < 0 || digits(p + 14, 2, &mi) < 0 || digits(p + 17, 2, &sec) < 0)
        return -1;
    if (p[o] == '.') {
        if (n < 29 || digits(p + 20, 3, &frac) < 0)
            return -1;
        o = 23;
    }
    if ((p[o] != '+' && p[o] != '-') || p[o + 3] != ':' || digits(p + o + 1, 2, &oh) < 0 ||
        digits(p + o + 4, 2, &om) < 0 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    /* days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */
    int yy = y - (mo <= 2);
    int era = yy / 400;
    int yoe = yy - era * 400;
    int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    int64_t off = (int64_t)(oh * 60 + om) * 60 * (p[o] == '-' ? -1 : 1);
    *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000 + frac;
    return 0;
}

/* Several files read together: their lines go to the report in time
 * order (each gateway of a pool writes its own log; the lines of one
 * moment are then counted together, and a denial repeated on another
 * gateway is recognised as the repeat it is). A line without a timestamp
 * goes first. Returns 0, 1 when a file could not be read, -1 when out of
 * memory. */
static int
merge_streams(struct feed_state *st, struct line_reader *lr, int n)
{
    const char **lp = calloc((size_t)n, sizeof(*lp));
    size_t *ln = calloc((size_t)n, sizeof(*ln));
    int64_t *key = calloc((size_t)n, sizeof(*key));
    int *live = calloc((size_t)n, sizeof(*live));
    int rc = 0;
    if (lp == NULL || ln == NULL || key == NULL || live == NULL) {
        rc = -1;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int r = lr_next(st, &lr[i], &lp[i], &ln[i]);
        if (r < 0)
            rc = 1;
        live[i] = r > 0;
        if (live[i] && report_line_time(lp[i], ln[i], &key[i]) < 0)
            key[i] = INT64_MIN;
    }
    for (;;) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (live[i] && (best < 0 || key[i] < key[best]))
                best = i;
        if (best < 0)
            break;
        int f = report_feed(st->r, lp[best], ln[best]);
        if (f < 0) {
            rc = -1;
            goto out;
        }
        if (f > 0)
            note_malformed(st, lr[best].name, lr[best].lineno);
        int r = lr_next(st, &lr[best], &lp[best], &ln[best]);
        if (r < 0)
            rc = 1;
        live[best] = r > 0;
        if (live[best] && report_line_time(lp[best], ln[best], &key[best]) < 0)
            key[best] = INT64_MIN;
    }
out:
    free(lp);
    free(ln);
    free(key);
    free(live);
    return rc;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: socialgate report [--by KEYS] [--since D] [--until D] [--top N]\n"
               "                         [--format table|csv|json|html] FILE... | -\n"
               "  --by KEYS    group by user, role, platform, category, day, hour, rule,\n"
               "               action; several separated by commas (default user,platform)\n"
               "  --since D    from D on (YYYY-MM-DD or \"YYYY-MM-DD HH:MM\", local time\n"
               "               as written in the log)\n"
               "  --until D    before D\n"
               "  --top N      only the first N rows (html: the N top users, default 10)\n"
               "  --format F   table (default), csv, json, or html: one page with charts of\n"
               "               active minutes per platform and day, the top users, denials\n"
               "               by rule and the hours of the day (no --by)\n"
               "  -            read standard input (zcat access.log.*.gz | socialgate report -)\n"
               "Active minutes, requests and bytes come from ev=usage lines (rule and action\n"
               "-); denials and warns from request and tunnel lines, a denial counted once\n"
               "per client address, host and second. Sorted by active minutes.\n"
               "exit status: 0 success, 1 a file could not be read, 2 usage error\n");
}

static int
usage_error(const char *msg, const char *arg)
{
    if (arg)
        fprintf(stderr, "socialgate report: %s: %s\n", msg, arg);
    else
        fprintf(stderr, "socialgate report: %s\n", msg);
    usage(stderr);
    return 2;
}

int
report_main(int argc, char **argv)
{
    struct report_opts o;
    enum report_format fmt = REPORT_TABLE;
    const char *err;
    int nfiles = 0, only_files = 0, by_given = 0;

    memset(&o, 0, sizeof(o));
    o.by[0] = REPORT_BY_USER;
    o.by[1] = REPORT_BY_PLATFORM;
    o.nby = 2;

    /* Options first, anywhere before "--"; files are picked up in a
     * second pass so their order is kept. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || strcmp(a, "-") == 0) {
            argv[++nfiles] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_files = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        static const char *const opts[] = {"--by", "--since", "--until", "--top", "--format"};
        size_t k, n = strcspn(a, "=");
        for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
            if (strlen(opts[k]) == n && memcmp(a, opts[k], n) == 0)
                break;
        if (k == sizeof(opts) / sizeof(opts[0]))
            return usage_error("unknown option", a);
        const char *v;
        if (a[n] == '=') {
            v = a + n + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return usage_error("missing value for", a);
        }
        switch (k) {
        case 0:
            if (report_parse_by(v, &o, &err) < 0)
                return usage_error(err, v);
            by_given = 1;
            break;
        case 1:
        case 2:
            if (report_parse_when(v, k == 1 ? o.since : o.until, &err) < 0)
                return usage_error(err, v);
            break;
        case 3: {
            uint64_t t;
            struct report_str s = {v, strlen(v)};
            if (parse_u64(s, &t) < 0 || t == 0 || t > SIZE_MAX)
                return usage_error("--top takes a positive number", v);
            o.top = (size_t)t;
            break;
        }
        default:
            if (strcmp(v, "table") == 0)
                fmt = REPORT_TABLE;
            else if (strcmp(v, "csv") == 0)
                fmt = REPORT_CSV;
            else if (strcmp(v, "json") == 0)
                fmt = REPORT_JSON;
            else if (strcmp(v, "html") == 0)
                fmt = REPORT_HTML;
            else
                return usage_error("--format takes table, csv, json or html", v);
            break;
        }
    }
    if (fmt == REPORT_HTML && by_given)
        return usage_error("--by does not apply to --format html, whose charts have their own "
                           "groups",
                           NULL);
    o.html = fmt == REPORT_HTML;
    if (nfiles == 0)
        return usage_error("no log file given (- reads standard input)", NULL);

    struct feed_state st = {0};
    st.r = report_new(&o);
    st.buf = malloc(READ_BUF);
    if (st.r == NULL || st.buf == NULL) {
        fprintf(stderr, "socialgate report: out of memory\n");
        report_free(st.r);
        free(st.buf);
        return 1;
    }
    int rc = 0;
    if (nfiles == 1) {
        const char *name = argv[1];
        int fd = strcmp(name, "-") == 0 ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "socialgate report: %s: %s\n", name, strerror(errno));
            rc = 1;
        } else {
            int r = read_stream(&st, fd, fd == STDIN_FILENO ? "(standard input)" : name);
            if (fd != STDIN_FILENO)
                close(fd);
            if (r < 0) {
                fprintf(stderr, "socialgate report: out of memory\n");
                rc = 1;
                goto out;
            }
            if (r > 0)
                rc = 1;
        }
    } else {
        /* Several files: merged in time order (merge_streams). */
        struct line_reader *lr = calloc((size_t)nfiles, sizeof(*lr));
        int nlr = 0, stdin_used = 0;
        if (lr == NULL) {
            fprintf(stderr, "socialgate report: out of memory\n");
            rc = 1;
            goto out;
        }
        for (int i = 1; i <= nfiles; i++) {
            const char *name = argv[i];
            int is_stdin = strcmp(name, "-") == 0;
            if (is_stdin && stdin_used)
                continue; /* read once */
            int fd = is_stdin ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                fprintf(stderr, "socialgate report: %s: %s\n", name, strerror(errno));
                rc = 1;
                continue;
            }
            stdin_used |= is_stdin;
            lr[nlr].fd = fd;
            lr[nlr].name = is_stdin ? "(standard input)" : name;
            lr[nlr].buf = malloc(READ_BUF);
            if (lr[nlr].buf == NULL) {
                if (!is_stdin)
                    close(fd);
                rc = -1;
                break;
            }
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
            nlr++;
        }
        int r = rc < 0 ? -1 : merge_streams(&st, lr, nlr);
        for (int i = 0; i < nlr; i++) {
            if (lr[i].fd != STDIN_FILENO)
                close(lr[i].fd);
            free(lr[i].buf);
        }
        free(lr);
        if (r < 0) {
            fprintf(stderr, "socialgate report: out of memory\n");
            rc = 1;
            goto out;
        }
        if (r > 0)
            rc = 1;
    }
    if (st.malformed)
        fprintf(stderr, "socialgate report: %llu malformed line%s skipped (first: %s:%llu)\n",
                (unsigned long long)st.malformed, st.malformed == 1 ? "" : "s",
                st.first_file ? st.first_file : "?", (unsigned long long)st.first_line);
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
    if (report_print(st.r, fmt, stdout) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "socialgate report: writing the report: %s\n", strerror(errno));
        rc = 1;
    }
out:
    report_free(st.r);
    free(st.buf);
    free(st.first_file);
    return rc;
}
