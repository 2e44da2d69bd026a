#include "logfmt.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "usage.h"
#include "util/addr.h"
#include "util/escape.h"

/* Writes v as exactly `width` decimal digits (v < 10^width). */
static char *
put_digits(char *p, unsigned long v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* The fields are written by hand (this runs for every log line); values
 * outside what the fixed widths hold take snprintf, which pads the same. */
size_t
logfmt_time(const struct timespec *ts, char *buf, size_t size)
{
    struct tm tm;
    localtime_r(&ts->tv_sec, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    long year = (long)tm.tm_year + 1900, ms = ts->tv_nsec / 1000000;
    char tmp[64];
    size_t n;
    if (year >= 0 && year <= 9999 && ms >= 0 && ms <= 999 && off / 60 <= 99 && tm.tm_mon >= 0 &&
        tm.tm_mon <= 98 && tm.tm_mday >= 0 && tm.tm_mday <= 99 && tm.tm_hour >= 0 &&
        tm.tm_hour <= 99 && tm.tm_min >= 0 && tm.tm_min <= 99 && tm.tm_sec >= 0 &&
        tm.tm_sec <= 99) {
        char *p = put_digits(tmp, (unsigned long)year, 4);
        *p++ = '-';
        p = put_digits(p, (unsigned long)tm.tm_mon + 1, 2);
        *p++ = '-';
        p = put_digits(p, (unsigned long)tm.tm_mday, 2);
        *p++ = 'T';
        p = put_digits(p, (unsigned long)tm.tm_hour, 2);
        *p++ = ':';
        p = put_digits(p, (unsigned long)tm.tm_min, 2);
        *p++ = ':';
        p = put_digits(p, (unsigned long)tm.tm_sec, 2);
        *p++ = '.';
        p = put_digits(p, (unsigned long)ms, 3);
        *p++ = sign;
        p = put_digits(p, (unsigned long)(off / 60), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned long)(off % 60), 2);
        n = (size_t)(p - tmp);
    } else {
        int r = snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%c%02ld:%02ld",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, ms, sign, off / 60, off % 60);
        if (r < 0)
            return 0;
        n = (size_t)r < sizeof(tmp) ? (size_t)r : sizeof(tmp) - 1;
    }
    if (size == 0)
        return 0;
    if (n >= size)
        n = size - 1;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
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

#define FIELD_MAX 2048 /* an escaped value's room, "..." and quote included */

static void
put_key(struct out *o, const char *key)
{
    put(o, " ", 1);
    put(o, key, strlen(key));
    put(o, "=", 1);
}

static void
field(struct out *o, const char *key, const char *v)
{
    put_key(o, key);
    size_t len = v ? strlen(v) : 0;
    if (o->size - o->len >= FIELD_MAX + 2) {
        /* Room for the longest escaped value: escape in place. */
        o->len += escape_log_value(v, len, o->buf + o->len, FIELD_MAX);
        return;
    }
    char esc[FIELD_MAX];
    size_t n = escape_log_value(v, len, esc, sizeof(esc));
    put(o, esc, n);
}

/* Decimal digits of v into tmp (at least 20 bytes); returns their count. */
static size_t
u64_digits(uint64_t v, char *tmp)
{
    char rev[20];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        tmp[i] = rev[n - 1 - i];
    return n;
}

static void
field_u64(struct out *o, const char *key, uint64_t v, int dash_if_zero)
{
    char tmp[32];
    size_t n;
    if (dash_if_zero && v == 0) {
        tmp[0] = '-';
        n = 1;
    } else {
        n = u64_digits(v, tmp);
    }
    put_key(o, key);
    put(o, tmp, n);
}

/* addr_format's text: an IPv4 (or IPv4-mapped) address by hand, others
 * through it. */
static const char *
client_text(const struct sockaddr *sa, char *buf, size_t size)
{
    const uint8_t *a = NULL;
    if (sa->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6))
            a = in6->s6_addr + 12;
    }
    if (a == NULL || size < 32)
        return addr_format(sa, buf, size);
    char *p = buf;
    for (int i = 0; i < 4; i++) {
        p += u64_digits(a[i], p);
        *p++ = i < 3 ? '.' : ':';
    }
    p += u64_digits((uint64_t)addr_port(sa), p);
    *p = '\0';
    return buf;
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
    field(&o, "client", r->client ? client_text(r->client, client, sizeof(client)) : NULL);
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
    if (r->tls)
        field(&o, "tls", r->tls);
    o.buf[o.len++] = '\n';
    o.buf[o.len] = '\0';
    return o.len;
}

size_t
logfmt_usage(const struct usage_row *r, const struct timespec *ts, char *buf, size_t size)
{
    struct out o = {buf, size, 0};
    char t[48];
    if (size < 64)
        return 0;
    put(&o, t, logfmt_time(ts, t, sizeof(t)));
    field(&o, "ev", "usage");
    field(&o, "user", r->user);
    field(&o, "platform", r->platform);
    field_u64(&o, "active_min", r->active_min, 0);
    field_u64(&o, "today_min", r->today_min, 0);
    field_u64(&o, "quota_min", r->quota_min, 1);
    field_u64(&o, "requests", r->requests, 0);
    field_u64(&o, "up", r->up, 0);
    field_u64(&o, "down", r->down, 0);
    field(&o, "client", r->client);
    field(&o, "roles", r->roles);
    field(&o, "category", r->category);
    o.buf[o.len++] = '\n';
    o.buf[o.len] = '\0';
    return o.len;
}

size_t
logfmt_quota(const char *user, const char *client, const char *platform, const char *rule,
             unsigned used, unsigned quota, int pct, const struct timespec *ts, char *buf,
             size_t size)
{
    struct out o = {buf, size, 0};
    char t[48];
    if (size < 64)
        return 0;
    put(&o, t, logfmt_time(ts, t, sizeof(t)));
    field(&o, "ev", "quota");
    field(&o, "user", user);
    field(&o, "platform", platform);
    field(&o, "rule", rule);
    field_u64(&o, "used_min", used, 0);
    field_u64(&o, "quota_min", quota, 0);
    field_u64(&o, "pct", (uint64_t)pct, 0);
    field(&o, "client", client);
    o.buf[o.len++] = '\n';
    o.buf[o.len] = '\0';
    return o.len;
}

/* Squid logs user names and URLs without spaces: encode what would split. */
static void
squid_token(const char *v, char *out, size_t size, int is_url)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (v == NULL || *v == '\0') {
        snprintf(out, size, "-");
        return;
    }
    for (; *v && o + 4 < size; v++) {
        unsigned char ch = (unsigned char)*v;
        /* URLs are already percent-encoded: only what would split a line. */
        if (ch <= 0x20 || ch >= 0x7f || (ch == '%' && !is_url)) {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

size_t
logfmt_squid(const struct access_record *r, const struct timespec *ts, char *buf, size_t size)
{
    char ip[64] = "-", url[2300], user[600], host[600];
    if (r->client)
        addr_format_ip(r->client, ip, sizeof(ip));
    const char *code;
    if ((r->action && strcmp(r->action, "deny") == 0) || r->status == 407 ||
        (r->answered_here && r->status == 403))
        code = "TCP_DENIED";
    else if (r->answered_here || !r->forwarded)
        code = "NONE";
    else if (strcmp(r->ev, "tunnel") == 0)
        code = "TCP_TUNNEL";
    else
        code = "TCP_MISS";
    int direct = strcmp(code, "TCP_MISS") == 0 || strcmp(code, "TCP_TUNNEL") == 0;
    squid_token(r->host, host, sizeof(host), 1);
    if (r->method && strcmp(r->method, "CONNECT") == 0)
        snprintf(url, sizeof(url), "%s:%d", host, r->port);
    else if (r->host && r->port && r->port != 80)
        snprintf(url, sizeof(url), "http://%s:%d%s", host, r->port, r->path ? r->path : "/");
    else if (r->host)
        snprintf(url, sizeof(url), "http://%s%s", host, r->path ? r->path : "/");
    else
        snprintf(url, sizeof(url), "error:invalid-request");
    char path_tok[2400];
    squid_token(url, path_tok, sizeof(path_tok), 1);
    squid_token(r->user, user, sizeof(user), 0);
    int n = snprintf(buf, size, "%lld.%03ld %6llu %s %s/%03d %llu %s %s %s %s/%s -\n",
                     (long long)ts->tv_sec, ts->tv_nsec / 1000000, (unsigned long long)r->ms, ip,
                     code, r->status, (unsigned long long)r->down,
                     r->method && *r->method ? r->method : "NONE", path_tok, user,
                     direct ? "HIER_DIRECT" : "HIER_NONE", direct ? host : "-");
    if (n < 0)
        return 0;
    if ((size_t)n >= size) {
        buf[size - 2] = '\n';
        return size - 1;
    }
    return (size_t)n;
}
