#include "num.h"

#include <string.h>
#include <strings.h>

int
num_parse_u64(const char *p, size_t len, uint64_t max, uint64_t *out, const char **err)
{
    uint64_t v = 0;

    if (len == 0) {
        *err = "missing number";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)p[i] - '0';
        if (d > 9) {
            *err = "not a number";
            return -1;
        }
        /* d > max first: max - d would wrap for a small max. */
        if (d > max || v > (max - d) / 10) {
            *err = "number too large";
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Splits "123unit" into digits and suffix. */
static size_t
digits_len(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

int
num_parse_duration(const char *s, uint64_t *ms, const char **err)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1000},        {"ms", 1},          {"s", 1000},
                 {"m", 60 * 1000},  {"h", 3600 * 1000}, {"d", 86400ULL * 1000}};
    size_t n = digits_len(s);
    uint64_t v;

    if (num_parse_u64(s, n, UINT64_MAX, &v, err) < 0) {
        if (n == 0)
            *err = "bad duration (expected e.g. 500ms, 10s, 5m, 1h)";
        return -1;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(s + n, units[i].unit) == 0) {
            if (v > UINT64_MAX / 1000 / units[i].mult) {
                *err = "duration too large";
                return -1;
            }
            *ms = v * units[i].mult;
            return 0;
        }
    }
    *err = "bad duration unit (expected ms, s, m, h or d)";
    return -1;
}

int
num_parse_size(const char *s, uint64_t *bytes, const char **err)
{
    size_t n = digits_len(s);
    uint64_t v, mult;

    if (num_parse_u64(s, n, UINT64_MAX, &v, err) < 0) {
        if (n == 0)
            *err = "bad size (expected e.g. 512, 64k, 1m)";
        return -1;
    }
    const char *u = s + n;
    if (*u == '\0')
        mult = 1;
    else if (strcasecmp(u, "k") == 0 || strcasecmp(u, "kb") == 0)
        mult = 1024;
    else if (strcasecmp(u, "m") == 0 || strcasecmp(u, "mb") == 0)
        mult = 1024 * 1024;
    else if (strcasecmp(u, "g") == 0 || strcasecmp(u, "gb") == 0)
        mult = 1024ULL * 1024 * 1024;
    else {
        *err = "bad size unit (expected k, m or g)";
        return -1;
    }
    if (v > UINT64_MAX / mult) {
        *err = "size too large";
        return -1;
    }
    *bytes = v * mult;
    return 0;
}

int
num_parse_bool(const char *s, int *out, const char **err)
{
    static const char *const yes[] = {"yes", "on", "true", "1"};
    static const char *const no[] = {"no", "off", "false", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    *err = "expected yes or no";
    return -1;
}
