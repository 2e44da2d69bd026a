/* Password checks off the event loop: bcrypt takes tens of milliseconds,
 * so a few threads verify while the workers go on. Successful checks are
 * cached briefly, keyed by a digest of user, password and stored hash, so
 * a changed password in the htpasswd file is never served from the cache. */
#ifndef SG_AUTHPOOL_H
#define SG_AUTHPOOL_H

struct event_base;
struct auth_job;

typedef void (*auth_done_fn)(void *arg, int ok);

int authpool_start(int threads);
void authpool_stop(void);

/* 1 or 0 from the cache, -1 when not cached. */
int authpool_cached(const char *user, const char *password, const char *hash);
/* Verifies in the pool; `done` runs later in `base`'s thread (never from
 * inside this call). Returns a handle for authpool_cancel, or NULL (then
 * nothing will be called). */
struct auth_job *authpool_check(struct event_base *base, const char *user, const char *password,
                                const char *hash, auth_done_fn done, void *arg);
/* The caller goes away: `done` will not be called. Same thread as base. */
void authpool_cancel(struct auth_job *job);

#endif
