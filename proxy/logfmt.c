#include "logfmt.h"

#include <stdio.h>
#include <string.h>

#include "util/addr.h"
#include "util/escape.h"

size_t
logfmt_time(const struct timespec *ts, char *buf, size_t size)
{
    struct tm tm;
    localtime_r(&ts->tv_sec, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%c%02ld:%02ld",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts->tv_nsec / 1000000, sign, off / 60, off % 60);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

struct out {
    char *buf;
    size_t size, len;
};

static void
put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 2 > o->size) /* keep room for '\n' and NUL */
        n = o->size - o->len - 2;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void
field(struct out *o, const char *key, const char *v)
{
    char esc[2048];
    size_t n = escape_log_value(v, v ? strlen(v) : 0, esc, sizeof(esc));
    put(o, " ", 1);
    put(o, key, strlen(key));
    put(o, "=", 1);
    put(o, esc, n);
}

static void
field_u64(struct out *o, const char *key, uint64_t v, int dash_if_zero)
{
    char tmp[32];
    if (dash_if_zero && v == 0)
        snprintf(tmp, sizeof(tmp), "-");
    else
        snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    put(o, " ", 1);
    put(o, key, strlen(key));
    put(o, "=", 1);
    put(o, tmp, strlen(tmp));
}

size_t
logfmt_access(const struct access_record *r, const struct timespec *ts, char *buf, size_t size)
{
    struct out o = {buf, size, 0};
    char t[48], client[80];

    if (size < 64)
        return 0;
    put(&o, t, logfmt_time(ts, t, sizeof(t)));
    field(&o, "ev", r->ev);
    field(&o, "client", r->client ? addr_format(r->client, client, sizeof(client)) : NULL);
    field(&o, "user", r->user);
    field(&o, "roles", r->roles);
    field(&o, "method", r->method);
    field(&o, "host", r->host);
    field_u64(&o, "port", (uint64_t)r->port, 1);
    field(&o, "path", r->path);
    field(&o, "sni", r->sni);
    field(&o, "platform", r->platform);
    field(&o, "category", r->category);
    field(&o, "rule", r->rule);
    field(&o, "action", r->action);
    field_u64(&o, "status", (uint64_t)r->status, 1);
    field_u64(&o, "up", r->up, 0);
    field_u64(&o, "down", r->down, 0);
    field_u64(&o, "ms", r->ms, 0);
    if (r->mismatch)
        field(&o, "mismatch", r->mismatch);
    if (r->ech)
        field(&o, "ech", r->ech);
    if (r->auth)
        field(&o, "auth", r->auth);
    if (r->reason)
        field(&o, "reason", r->reason);
    o.buf[o.len++] = '\n';
    o.buf[o.len] = '\0';
    return o.len;
}
