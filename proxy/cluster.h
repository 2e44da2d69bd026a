/* A pool of gateways ([cluster]): quotas, active minutes and Continues
 * shared through Redis (hiredis, asynchronous on the worker loops).
 *
 * Each worker holds one connection for its commands; worker 0 holds one
 * more, subscribed to CLUSTERKEY_CHANNEL, on which every gateway hears the
 * counts and Continues the others made. Decisions read usage.c, the local
 * cache that those messages and the replies keep in step, and never wait
 * for Redis, except when the cache may be older than CLUSTER_STALE_MS for
 * an identity (its counters never read since the subscription began, or
 * nothing heard from Redis for that long): then the request asks first and
 * waits for the answer, at most CLUSTER_ASK_MS.
 *
 * When Redis cannot be reached every gateway counts locally (usage.c, as
 * without [cluster]), remembers what it counted, and sends it again when
 * Redis returns: the scripts' minute bitmaps make a minute two gateways
 * both counted count once. */
#ifndef SG_CLUSTER_H
#define SG_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct config;
struct event_base;
struct policy;

/* The bound of the closing note: a minute recorded anywhere is in every
 * gateway's cache within this time, or the gateway asks. */
#define CLUSTER_STALE_MS 2000
/* How long a request waits for an answer before deciding on the cache. */
#define CLUSTER_ASK_MS 1000
/* A heartbeat through Redis and back, this often. */
#define CLUSTER_HEARTBEAT_MS 500
/* Nothing heard for this long (a Redis that hangs without closing its
 * connections): the gateway drops them and counts locally. */
#define CLUSTER_DEAD_MS 5000
/* Marks remembered during an outage; beyond, the oldest are dropped. */
#define CLUSTER_JOURNAL_MAX 65536

/* Takes [cluster] from cfg (a no-op without it). Call before the workers
 * start; nworkers is how many will call cluster_worker_start. 0 or -1. */
int cluster_init(const struct config *cfg, int nworkers);
/* 1 with [cluster]. */
int cluster_on(void);
/* In worker `id`'s thread, before its loop runs: connects (without
 * waiting). cluster_worker_stop in the same thread once the loop ended. */
void cluster_worker_start(struct event_base *base, int id);
void cluster_worker_stop(void);

/* An active minute of identity on platform, and the deciding rule's quota
 * (rule NULL: none). `fresh`: the minute is new for identity on platform
 * on this gateway (usage_activity); else another connection sent it
 * already. Worker thread. Returns 1 when Redis counts it (the reply
 * updates the cache and writes ev=quota when a threshold is crossed), 0
 * when the caller counts locally (usage_quota_mark): without [cluster], or
 * Redis is away (the mark is then remembered and merged back later). */
int cluster_mark(const char *identity, const char *platform, const char *rule, int32_t period,
                 int weekly, unsigned quota_min, int64_t minute, const char *user,
                 const char *client, int fresh);

/* 1 when decisions may trust the cache for identity (always without
 * [cluster], and while Redis is away: local counting). */
int cluster_fresh(const char *identity);

struct cluster_ask;
typedef void (*cluster_done_fn)(void *arg);
/* Reads identity's quota counters (every quota rule of pol, in the
 * period of `local`) and its Continue on platform into the cache; `done`
 * runs later in this worker's thread, at the latest after CLUSTER_ASK_MS.
 * NULL when nothing can be asked (then decide on the cache). */
struct cluster_ask *cluster_ask(const char *identity, const char *platform,
                                const struct policy *pol, const struct tm *local,
                                cluster_done_fn done, void *arg);
/* The caller goes away: `done` will not be called. Same thread. */
void cluster_ask_cancel(struct cluster_ask *a);

/* At exit, once every worker has stopped: frees what is left (the marks
 * not merged yet are lost; their minutes are in the saved local state). */
void cluster_shutdown(void);

/* For /metrics: 1 while Redis serves every connection (0 before that or
 * during an outage), outages so far, their seconds, marks dropped. */
void cluster_figures(int *up, uint64_t *outages, uint64_t *outage_seconds, uint64_t *dropped);

#endif
