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
 * effect. Returns the minutes used in that period after marking. */
unsigned usage_quota_mark(const char *identity, const char *rule, int32_t period, int64_t minute);
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
/* Drops everything (tests). */
void usage_reset(void);

#endif
