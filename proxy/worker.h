/* Worker threads: each runs its own event loop with its own listeners
 * (SO_REUSEPORT), resolver, upstream connection pool and connections.
 * Worker objects never leave their thread; the main thread talks to a
 * worker only through worker_command. */
#ifndef SG_WORKER_H
#define SG_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct event_base;
struct evdns_base;
struct evconnlistener;
struct event;
struct bufferevent;
struct conn;

struct pooled {
    TAILQ_ENTRY(pooled) link;
    struct worker *w;
    struct bufferevent *bev;
    char key[280]; /* host:port as requested */
};

struct snapshot;

struct worker {
    int id;
    struct snapshot *snap; /* this worker's reference to the current
                            * snapshot; see worker_snapshot */
    pthread_t thread;
    struct event_base *base;
    struct evdns_base *dns;
    struct evconnlistener **ls;
    size_t nls;
    struct event *cmd_ev;    /* activated by the main thread */
    atomic_int cmd;          /* WORKER_CMD_* bits */
    struct event *resume_ev; /* re-enables accepting after a pause */
    int paused;
    TAILQ_HEAD(conn_head_s, conn) conns;
    size_t nconns; /* counted by worker.c alone: accepted, then closed */
    TAILQ_HEAD(pool_head_s, pooled) pool;
    size_t npool;
    int draining;
    atomic_int finished; /* the loop has ended */
    int pipes[64][2];    /* empty pipes kept for splice relays */
    size_t npipes;
};

enum { WORKER_CMD_DRAIN = 1, WORKER_CMD_STOP = 2, WORKER_CMD_RELOAD = 4, WORKER_CMD_USAGE = 8 };

/* Creates a worker listening on the given sockets (taken), the last ntls
 * of them the HTTPS proxy port's. NULL on error. */
struct worker *worker_new(int id, const int *fds, size_t nfds, size_t ntls);
int worker_start(struct worker *w);
/* Thread-safe: ask a worker to drain, stop at once, or pick up a reload. */
void worker_command(struct worker *w, int cmd);
void worker_join_free(struct worker *w);
/* Thread-safe: asks each of the n workers to add the bytes its open
 * transactions moved to the usage counters (conn_usage_progress), and
 * activates `done` (an event of the caller's base) once the last has. A
 * worker whose loop has ended never answers: the caller keeps a timeout. */
void worker_usage_sync(struct worker **ws, int n, struct event *done);

/* Connections currently open in all workers. */
long worker_total_connections(void);
/* A connection's client address changes from `from` to `to` (a PROXY
 * protocol header): the per-client count moves with it. Returns the count
 * of `to` now, 0 when it could not be counted (out of memory). */
unsigned worker_conn_readdress(struct worker *w, const struct sockaddr *from,
                               const struct sockaddr *to);
/* Called by conn.c when a connection ends. */
void worker_conn_closed(struct worker *w, const struct sockaddr *peer);
/* The current snapshot, borrowed (the worker holds a reference; take one
 * with snapshot_ref to keep it). Refreshed here when a reload has made it
 * stale, so it is never older than the last completed reload. */
struct snapshot *worker_snapshot(struct worker *w);

/* An empty pipe for a splice relay (from the pool, or new). 0 or -1. */
int worker_pipe_get(struct worker *w, int p[2]);
/* Gives back an empty pipe (closed when the pool is full). */
void worker_pipe_put(struct worker *w, int p[2]);

#endif
