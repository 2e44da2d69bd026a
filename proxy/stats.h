/* Counters for /metrics: lock-free increments from every worker. Labels
 * are bounded: platform names come from the catalog (plus
 * "unclassified"), at most STATS_MAX_PLATFORMS of them. */
#ifndef SG_STATS_H
#define SG_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STATS_MAX_PLATFORMS 1024

enum stats_kind { STATS_REQUEST, STATS_TUNNEL };
enum stats_counter {
    STATS_DNS_FAILURES,
    STATS_UPSTREAM_ERRORS,
    STATS_QUOTA_EXHAUSTED,
    STATS_RELOAD_OK,
    STATS_RELOAD_ERROR,
    STATS_AUTH_FAILURES,
    STATS_AUTH_BUSY, /* checks refused: AUTHPOOL_MAX_QUEUE were waiting */
    STATS_NCOUNTERS
};

/* One finished request or tunnel. action: "allow", "deny", ... or NULL. */
void stats_transaction(enum stats_kind kind, const char *platform, const char *action,
                       uint64_t up, uint64_t down);
void stats_count(enum stats_counter c);
void stats_set_config_time(int64_t unix_seconds);
/* [cluster] name (NULL: none): every sample gets a gateway="name" label.
 * Call before the workers start. */
void stats_set_gateway(const char *name);

/* Writes the Prometheus text exposition into buf; returns its length
 * (cut at size). `open_conns` and `active_users` are gauges read by the
 * caller. */
size_t stats_format(char *buf, size_t size, long open_conns, size_t active_users, int draining);

#endif
