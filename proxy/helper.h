/* Squid helpers: pools of child processes speaking helperproto.h.
 *
 * One pool per configured helper kind ([auth] basic_helper,
 * negotiate_helper, group_helper), each of helper_children processes.
 * One helper thread with its own event loop owns every child and pipe
 * (non-blocking); workers submit request lines from their own threads
 * and get the answer back in their own event base's thread, never from
 * inside the submitting call (as authpool.h does).
 *
 * Command lines. The command is split on blanks (no shell; "..." and
 * '...' group words). A first word "concurrency=N" (Squid's
 * `concurrency=` helper option) says the helper speaks the concurrency
 * protocol: up to N requests in flight per child, each with a channel ID.
 * Without it a child gets one request at a time (a helper cannot be
 * probed safely: a non-concurrent helper would read the ID as the user).
 *
 * Lifecycle. helpers_start once, then helpers_configure at start and at
 * every reload (from the main thread): a pool whose command line and
 * children count are unchanged is kept as it is (children, cache, pins);
 * a changed one is replaced: new children start at once, the old ones
 * finish what they were given and are then stopped. helpers_stop at
 * shutdown, after the worker loops have ended: children get EOF on stdin,
 * then SIGTERM, then SIGKILL, and are all reaped (no zombies).
 *
 * Failures. A request not answered within the pool's timeout
 * (helper_spec.timeout_ms, [limits] connect_timeout; counted from the
 * submission, so time spent waiting for a free child counts) ends
 * HELPER_TIMEOUT and its child is restarted (a helper
 * that hangs on one request may hang on the next). A child that dies is
 * restarted with backoff (0.1 s doubling up to 10 s while it keeps dying
 * young) and the requests it held are retried once on another child;
 * failing again they end HELPER_FAILED. A reply that cannot be parsed is
 * HELPER_CODE_GARBAGE in the answer. BH, GARBAGE, TIMEOUT, FAILED and
 * BUSY are all "the directory cannot say": the caller answers 503
 * reason=auth-unavailable (BUSY: auth-busy), never an allow.
 *
 * Cache. Submitted with HELPER_F_CACHE, an OK answer is kept for the
 * pool's ttl and an ERR for HELPER_NEGATIVE_TTL seconds (or the ttl when
 * that is shorter), keyed by a SHA-256 digest of the kind and request
 * line (so user + password for basic, user + group for groups; the
 * password itself is not kept). BH, failures and an uncertain ERR
 * (helperproto.h: "BH Success") are never cached. HELPER_F_CACHE is
 * ignored for HELPER_NEGOTIATE: a token is never cached.
 *
 * Pins (negotiate, stateful helpers). A multi-leg exchange (TT answers)
 * must stay on one child. helper_pin_new gives a pin; the first request
 * submitted with it binds it to the child that takes it; later requests
 * with the pin go to that child only, and while the pin is bound that
 * child takes no other request. helper_pin_free ends the reservation
 * (call it when the exchange ends: AF/OK, NA/ERR, BH, or the client
 * connection goes away). If the bound child dies, or the pin is left
 * unused for HELPER_PIN_IDLE seconds, the next request with it ends
 * HELPER_LOST: start the exchange again (a new pin, YR). Pinned requests
 * are never retried on another child. An answer other than TT to a
 * pinned request releases the child at once (the exchange is over); the
 * pin stays valid, and its next request binds it anew. helpers_stop frees
 * the pins still held: none may be used after it.
 *
 * Thread safety: every function may be called from any thread, except
 * helpers_start/configure/stop (main thread). A request handle and a pin
 * are used by one thread at a time (the one that made them). */
#ifndef SG_HELPER_H
#define SG_HELPER_H

#include <stddef.h>
#include <stdint.h>

#include "helperproto.h"

struct event_base;
struct helper_req;
struct helper_pin;

enum helper_kind { HELPER_BASIC, HELPER_NEGOTIATE, HELPER_GROUP, HELPER_KINDS };

/* Requests outstanding per kind (waiting for a child or at one); more
 * are refused (helper_submit: EAGAIN, answer auth-busy). */
#define HELPER_MAX_QUEUE 256
/* How long an ERR (a no) is cached at most, in seconds. */
#define HELPER_NEGATIVE_TTL 30
/* A bound pin unused this long is released (its child serves others). */
#define HELPER_PIN_IDLE 60
/* Default [auth] helper_children and helper_ttl. */
#define HELPER_DEFAULT_CHILDREN 5
#define HELPER_DEFAULT_TTL 300

/* What one pool runs. cmdline NULL: the kind is not configured. */
struct helper_spec {
    const char *cmdline; /* as in proxy.ini, "concurrency=N" first word allowed */
    int children;        /* processes, >= 1 */
    int ttl;             /* seconds an OK is cached */
    uint64_t timeout_ms; /* per request: [limits] connect_timeout */
};

enum helper_result {
    HELPER_ANSWER,  /* the helper answered: see reply.code (BH/GARBAGE are errors) */
    HELPER_TIMEOUT, /* no answer within timeout_ms */
    HELPER_FAILED,  /* could not be started, or died twice with the request */
    HELPER_LOST,    /* pinned: the bound child is gone, start the exchange again */
};

struct helper_answer {
    enum helper_result result;
    struct helper_reply reply; /* with HELPER_ANSWER; owned by the pool, valid during the call */
    int cached;                /* 1: from the cache (helper_cached only) */
};

/* 1 when the answer is a definite yes, 0 a definite no, -1 the helper
 * could not say (BH, garbage, timeout, failure, lost): auth-unavailable.
 * TT is -1 here; negotiate callers look at reply.code themselves. */
int helper_verdict(const struct helper_answer *a);

/* Runs in the base's thread given to helper_submit. */
typedef void (*helper_done_fn)(void *arg, const struct helper_answer *a);

/* Starts the helper thread. 0 or -1. */
int helpers_start(void);
/* (Re)configures every kind; specs[k].cmdline NULL stops kind k's pool.
 * 0, or -1 with a message in err (a child that cannot be started is not
 * an error here: it is retried with backoff, and -t checks the program). */
int helpers_configure(const struct helper_spec specs[HELPER_KINDS], char *err, size_t errsize);
/* Ends every pending request without calling back, stops and reaps every
 * child, joins the thread, frees everything. Call it after the loops of
 * all bases given to helper_submit have ended, before they are freed. */
void helpers_stop(void);

/* 1 when kind has a pool. */
int helper_configured(enum helper_kind kind);

#define HELPER_F_CACHE 1u /* answer from / store into the cache */

/* From the cache only: 1 and *out filled (free with helper_answer_free)
 * when line has a live entry; 0 otherwise. */
int helper_cached(enum helper_kind kind, const char *line, struct helper_answer *out);
void helper_answer_free(struct helper_answer *a);

/* Sends `line` (a request from helperproto_*_request, with its '\n', no
 * channel ID: the pool adds it) to kind's pool. pin: NULL, or a pin of
 * that kind. `done` runs later in `base`'s thread. Returns a handle for
 * helper_cancel, or NULL (nothing will be called): errno EAGAIN when
 * HELPER_MAX_QUEUE requests wait already (answer auth-busy), ESRCH when
 * kind has no pool, ENOMEM. Even with HELPER_F_CACHE the cache is not
 * looked up here: call helper_cached first. */
struct helper_req *helper_submit(struct event_base *base, enum helper_kind kind, const char *line,
                                 unsigned flags, struct helper_pin *pin, helper_done_fn done,
                                 void *arg);
/* The caller goes away: `done` will not be called. Same thread as base. */
void helper_cancel(struct helper_req *req);

/* A reservation for a multi-leg exchange (see Pins above). NULL on no
 * memory or no pool. */
struct helper_pin *helper_pin_new(enum helper_kind kind);
/* Ends the reservation; the pin must have no request in flight (cancel
 * it first). */
void helper_pin_free(struct helper_pin *pin);

/* Counters of kind's pool (cumulative since start, kept across reloads). */
struct helper_stats {
    uint64_t requests, cache_hits, timeouts, restarts, failures;
};
void helper_stats(enum helper_kind kind, struct helper_stats *out);
/* "basic", "negotiate", "group": the helper label in /metrics. */
const char *helper_kind_name(enum helper_kind kind);

/* Splits a command line into argv (malloc'd, NULL terminated; free with
 * helper_argv_free) and reads a leading "concurrency=N" into
 * *concurrency (0 without it). NULL with a static message in *err. */
char **helper_argv(const char *cmdline, int *concurrency, const char **err);
void helper_argv_free(char **argv);

/* Synchronous, for `explain --user` and tests: starts the program once,
 * sends line, reads one reply within timeout_ms, stops it. 0 with *out
 * filled (free with helper_answer_free), -1 on failure. */
int helper_ask_once(const char *cmdline, int negotiate, const char *line, uint64_t timeout_ms,
                    struct helper_answer *out);

#endif
