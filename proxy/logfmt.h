/* Usage-log line formatting (pure). The field order is fixed by PRODUCT.md:
 * ev client user roles method host port path sni platform category rule
 * action status up down ms, then mismatch ech auth reason tls when set. */
#ifndef SG_LOGFMT_H
#define SG_LOGFMT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct access_record {
    const char *ev;     /* "request" or "tunnel" */
    const struct sockaddr *client;
    const char *user, *roles, *method, *host;
    int port;           /* 0: - */
    const char *path, *sni, *platform, *category, *rule, *action;
    int status;         /* 0: - (the client saw no status) */
    uint64_t up, down;  /* bytes from and to the client */
    uint64_t ms;
    const char *mismatch, *ech, *auth, *reason; /* NULL: omitted */
    const char *tls; /* "page": a tunnel answered inside TLS by socialgate; NULL: omitted */
    int answered_here; /* socialgate wrote the response (error, deny, warn, 407) */
    int forwarded;     /* an upstream was involved */
};

/* RFC 3339 local time with milliseconds and offset: 2026-11-30T12:31:05.123+00:00 */
size_t logfmt_time(const struct timespec *ts, char *buf, size_t size);
/* One line, '\n' included; returns its length (< size), cut if too long. */
size_t logfmt_access(const struct access_record *r, const struct timespec *ts, char *buf,
                     size_t size);

/* The same transaction in Squid's native access.log format (no extra
 * columns), for sarg, calamaris and lightsquid. */
size_t logfmt_squid(const struct access_record *r, const struct timespec *ts, char *buf,
                    size_t size);

struct usage_row;

/* ev=usage user platform active_min today_min quota_min requests up down,
 * then client roles category. */
size_t logfmt_usage(const struct usage_row *r, const struct timespec *ts, char *buf, size_t size);
/* ev=quota user platform rule used_min quota_min pct client. */
size_t logfmt_quota(const char *user, const char *client, const char *platform, const char *rule,
                    unsigned used, unsigned quota, int pct, const struct timespec *ts, char *buf,
                    size_t size);

#endif
