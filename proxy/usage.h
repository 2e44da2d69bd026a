/* Counters that outlive a connection, in one place with one owner: active
 * minutes per identity and quota rule, and remembered warn Continues.
 * Thread-safe (one mutex; callers come at most once per connection and
 * clock minute). No libevent; the clock is passed in. Saved to and loaded
 * from state_dir so quotas survive restarts. */
#ifndef SG_USAGE_H
#define SG_USAGE_H

#include <stdint.h>

#include "diag.h"

/* Marks `minute` (Unix time / 60) as active for identity under a quota
 * rule in `period` (a day or week number). Counting a minute twice has no
 * effect. Returns the minutes used in that period after marking; sets
 * *crossed to 80 or 100 when this minute reached that share of quota_min
 * (else 0), so the caller can log ev=quota once per threshold. */
unsigned usage_quota_mark(const char *identity, const char *rule, int32_t period, int64_t minute,
                          unsigned quota_min, int *crossed);

/* What an ev=usage line says of one identity on one platform. */
struct usage_row {
    const char *user;     /* NULL: anonymous */
    const char *client;   /* address */
    const char *roles;
    const char *platform, *category;
    unsigned active_min;  /* in the interval */
    unsigned today_min;
    unsigned quota_min;   /* 0: none */
    uint64_t requests, up, down;
};

/* Activity of identity on a platform: once per connection and clock
 * minute with traffic (minute >= 0), and once per finished transaction
 * with its bytes (requests = 1). `day` is the local day number. Returns 1
 * when `minute` is new for identity on platform (on this gateway). */
int usage_activity(const struct usage_row *who, int32_t day, int64_t minute, uint64_t requests,
                   uint64_t up, uint64_t down);
/* Calls fn for every (identity, platform) active since the last call and
 * starts a new interval; forgets entries idle since an earlier day. */
void usage_interval_flush(int32_t today, void (*fn)(void *arg, const struct usage_row *row),
                          void *arg);
/* In a pool of gateways: `minute`, just counted active here for the user
 * (or, anonymous, the client address) on platform, had already been active
 * on another gateway. It leaves the interval's active minutes, so that the
 * pool's ev=usage lines together count each minute once (today_min stays
 * this gateway's own count). Nothing changes once the interval was
 * written or a later minute counted. */
void usage_activity_seen(const char *user, const char *client, const char *platform,
                         int64_t minute);
/* Minutes used so far in period (0 when another period is stored). */
unsigned usage_quota_used(const char *identity, const char *rule, int32_t period);

/* A Continue on a warn page: identity may use platform until `until`. */
void usage_continue_set(const char *identity, const char *platform, int64_t until);
int usage_continue_ok(const char *identity, const char *platform, int64_t now);

/* Writes the state to dir/state (write, fsync, rename). 0 or -1 (errno). */
int usage_save(const char *dir, int64_t now);
/* Reads dir/state. A missing file is fine; a corrupt one is renamed to
 * state.corrupt and reported in d as a warning. Returns entries loaded. */
int usage_load(const char *dir, int64_t now, struct diag *d);
/* usage_load for readers that must change nothing (socialgate explain): a
 * corrupt state file is left where it is and read as empty. */
int usage_peek(const char *dir, int64_t now, struct diag *d);
/* Distinct identities with platform traffic since `minute`. */
size_t usage_active_identities(int64_t since_minute);
/* --- a pool of gateways (cluster.c keeps these in step with Redis) --- */

/* 80 or 100 when `minutes` is the first minute at or past that share of
 * quota_min, else 0: what usage_quota_mark reports in *crossed. */
int usage_threshold(unsigned minutes, unsigned quota_min);
/* Merges a count read from the shared store: a later period replaces the
 * local one, the same period keeps the larger count (the shared count
 * holds every gateway's minutes, merged ones included; the local one may
 * hold minutes counted during an outage and not merged yet), an earlier
 * period is ignored. minute >= 0 also marks that minute as counted here,
 * so that local counting after an outage begins does not count it again.
 * Returns the minutes used in `period` after the merge. */
unsigned usage_quota_sync(const char *identity, const char *rule, int32_t period, unsigned minutes,
                          int64_t minute);
/* The last count read from the shared store for period (0: none). */
unsigned usage_quota_shared(const char *identity, const char *rule, int32_t period);
/* A Continue read from the shared store: the later expiry wins, and the
 * change hook (usage_set_continue_hook) is not called. */
void usage_continue_merge(const char *identity, const char *platform, int64_t until);
/* Called by usage_continue_set on the caller's thread (a Continue a user
 * made here, to be shared). Set once before the workers start. */
void usage_set_continue_hook(void (*fn)(const char *identity, const char *platform, int64_t until));
/* The generation of the shared store's view in which identity's counters
 * were last read (0: never). */
void usage_sync_set(const char *identity, unsigned generation);
unsigned usage_sync_get(const char *identity);

/* Forgets what can no longer count, so that the state of a long-running
 * gateway is bounded by who was active lately, not by who ever was:
 * Continues that have expired by now, quota counts written to more than
 * USAGE_QUOTA_KEEP_SECONDS ago (a week is the longest quota period, so
 * theirs has ended), and shared-store sync marks older than
 * USAGE_SYNC_KEEP_SECONDS (the identity's counters are then asked again).
 * Returns the entries kept. */
#define USAGE_QUOTA_KEEP_SECONDS (8 * 86400)
#define USAGE_SYNC_KEEP_SECONDS 86400
size_t usage_prune(int64_t now);

/* Drops everything (tests). */
void usage_reset(void);

#endif
