/* Password checks off the event loop: bcrypt takes tens of milliseconds,
 * so a few threads verify while the workers go on. Successful checks are
 * cached briefly, keyed by a digest of user, password and stored hash, so
 * a changed password in the htpasswd file is never served from the cache. */
#ifndef SG_AUTHPOOL_H
#define SG_AUTHPOOL_H

struct event_base;
struct auth_job;

/* At most this many checks wait for a thread; more are refused (the client
 * gets 503, reason=auth-busy) instead of growing the queue without bound.
 * With two threads and bcrypt at cost 10 (60-80 ms a check) the last of
 * them is served after about [limits] connect_timeout's default of 10 s,
 * when its client would be answered auth-timeout anyway; cheaper hashes
 * (apr1, SHA-crypt, htpasswd's default bcrypt cost 5) clear it in well
 * under a second, so a burst of sign-ins after a restart still fits. */
#define AUTHPOOL_MAX_QUEUE 256

typedef void (*auth_done_fn)(void *arg, int ok);

/* Starts `threads` checking threads. 0 or -1. */
int authpool_start(int threads);
/* Drops the checks no thread has started (their `done` is never called),
 * waits for the ones in progress (at most one bcrypt per thread) and frees
 * every job. Call it once the loops of all bases given to authpool_check
 * have ended and before those bases are freed: it frees the jobs' events,
 * and after it returns no pool thread touches any base. */
void authpool_stop(void);

/* 1 or 0 from the cache, -1 when not cached. */
int authpool_cached(const char *user, const char *password, const char *hash);
/* Verifies in the pool; `done` runs later in `base`'s thread (never from
 * inside this call). Returns a handle for authpool_cancel, or NULL (then
 * nothing will be called): with errno EAGAIN when AUTHPOOL_MAX_QUEUE checks
 * are already waiting (refuse the client), with another errno when there
 * is no pool or no memory (check inline). */
struct auth_job *authpool_check(struct event_base *base, const char *user, const char *password,
                                const char *hash, auth_done_fn done, void *arg);
/* The caller goes away: `done` will not be called. A check not started yet
 * is dropped at once (no thread spends a bcrypt on it); one in progress
 * finishes and is freed in `base`'s thread. Same thread as base. */
void authpool_cancel(struct auth_job *job);

#endif
