#define _GNU_SOURCE /* pipe2(2), F_SETPIPE_SZ */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "balancer.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "dns.h"
#include "log.h"
#include "snapshot.h"
#include "tlsmint.h"
#include "txn.h"
#include "upstream.h"
#include "util/addr.h"
#include "util/hash.h"

#define ACCEPT_PAUSE_MS 100

static atomic_long total_conns;

long
worker_total_connections(void)
{
    return atomic_load(&total_conns);
}

/* --- connections per client address --------------------------------------
 * Shared by all workers behind one mutex: a short hash lookup per accept
 * and per close. */
#define CC_BUCKETS 4096

struct cc_node {
    struct cc_node *next;
    uint8_t key[17];
    unsigned count;
};

static pthread_mutex_t cc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cc_node *cc_table[CC_BUCKETS];

static void
cc_key(const struct sockaddr *sa, uint8_t key[17])
{
    memset(key, 0, 17);
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            key[0] = 4;
            memcpy(key + 1, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, &in6->sin6_addr, 16);
        }
    }
}

static unsigned
cc_hash(const uint8_t key[17])
{
    return hash_fnv1a(key, 17) % CC_BUCKETS;
}

/* Returns the new count for this address (0 on allocation failure). */
static unsigned
cc_inc(const struct sockaddr *sa)
{
    uint8_t key[17];
    cc_key(sa, key);
    unsigned b = cc_hash(key), r = 0;
    pthread_mutex_lock(&cc_mu);
    struct cc_node *n = cc_table[b];
    while (n && memcmp(n->key, key, 17) != 0)
        n = n->next;
    if (n == NULL && (n = calloc(1, sizeof(*n))) != NULL) {
        memcpy(n->key, key, 17);
        n->next = cc_table[b];
        cc_table[b] = n;
    }
    if (n)
        r = ++n->count;
    pthread_mutex_unlock(&cc_mu);
    return r;
}

static void
cc_dec(const struct sockaddr *sa)
{
    uint8_t key[17];
    cc_key(sa, key);
    unsigned b = cc_hash(key);
    pthread_mutex_lock(&cc_mu);
    struct cc_node **pp = &cc_table[b];
    while (*pp && memcmp((*pp)->key, key, 17) != 0)
        pp = &(*pp)->next;
    if (*pp && --(*pp)->count == 0) {
        struct cc_node *dead = *pp;
        *pp = dead->next;
        free(dead);
    }
    pthread_mutex_unlock(&cc_mu);
}

unsigned
worker_conn_readdress(struct worker *w, const struct sockaddr *from, const struct sockaddr *to)
{
    (void)w;
    cc_dec(from);
    return cc_inc(to);
}

void
worker_conn_closed(struct worker *w, const struct sockaddr *peer)
{
    w->nconns--;
    atomic_fetch_sub(&total_conns, 1);
    cc_dec(peer);
    if (w->draining && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

/* --- accepting ----------------------------------------------------------- */

static void
pause_accepting(struct worker *w)
{
    if (w->paused)
        return;
    w->paused = 1;
    for (size_t i = 0; i < w->nls; i++)
        evconnlistener_disable(w->ls[i]);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(w->resume_ev, &tv);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    if (w->draining)
        return;
    w->paused = 0;
    for (size_t i = 0; i < w->nls; i++)
        evconnlistener_enable(w->ls[i]);
}

static void
accept_conn(struct worker *w, evutil_socket_t fd, struct sockaddr *sa, int len, int tls)
{
    const struct snapshot *s = worker_snapshot(w);
    long max_conn = (long)s->cfg->max_connections;
    unsigned max_client = (unsigned)s->cfg->max_per_client;

    if (atomic_fetch_add(&total_conns, 1) >= max_conn) {
        atomic_fetch_sub(&total_conns, 1);
        static atomic_long last_warn;
        long now = (long)time(NULL);
        if (atomic_exchange(&last_warn, now) != now)
            log_warnx("max_connections (%ld) reached: pausing accept", max_conn);
        close(fd);
        pause_accepting(w);
        return;
    }
    unsigned n = cc_inc(sa);
    if (n == 0) {
        atomic_fetch_sub(&total_conns, 1);
        close(fd);
        return;
    }
    SSL *ssl = NULL;
    if (tls) {
        /* The certificate of the snapshot current now: a reload's new one
         * serves the connections accepted after it. */
        ssl = s->cfg->proxy_tls ? SSL_new(s->cfg->proxy_tls) : NULL;
        if (ssl == NULL) {
            atomic_fetch_sub(&total_conns, 1);
            cc_dec(sa);
            close(fd);
            log_warnx("HTTPS proxy port: cannot start TLS for a new connection");
            ERR_clear_error();
            return;
        }
    }
    /* A balancer's connections are checked once its PROXY protocol header
     * has said whose they are (balancer.c). On the HTTPS proxy port the
     * client's bytes are TLS from the first one: no header is read there. */
    const struct conn_ops *first =
        !tls && cidrset_match(&s->cfg->proxy_protocol, sa) ? &balancer_ops : NULL;
    w->nconns++; /* before conn_new: it may close (and count) at once */
    if (conn_new(w, fd, sa, (socklen_t)len, first == NULL && n > max_client, &txn_head_ops, first,
                 ssl) == NULL) {
        w->nconns--;
        atomic_fetch_sub(&total_conns, 1);
        cc_dec(sa);
        log_warnx("out of memory for a new connection");
    }
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    accept_conn(arg, fd, sa, len, 0);
}

static void
accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    accept_conn(arg, fd, sa, len, 1);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)l;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        static atomic_long last_warn;
        long now = (long)time(NULL);
        if (atomic_exchange(&last_warn, now) != now)
            log_warnx("accept: %s: pausing accept for %d ms", strerror(err), ACCEPT_PAUSE_MS);
        pause_accepting(w);
        return;
    }
    log_warnx("accept: %s", strerror(err));
}

/* --- pipes for splice relays --------------------------------------------- */

#define PIPE_BYTES (256 * 1024)

int
worker_pipe_get(struct worker *w, int p[2])
{
    if (w->npipes > 0) {
        w->npipes--;
        p[0] = w->pipes[w->npipes][0];
        p[1] = w->pipes[w->npipes][1];
        return 0;
    }
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    /* Bigger pipes move more per splice; the default 64 KiB is kept when the
     * system refuses (pipe-user-pages limits). */
    fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
    return 0;
}

void
worker_pipe_put(struct worker *w, int p[2])
{
    if (w->npipes < sizeof(w->pipes) / sizeof(w->pipes[0])) {
        w->pipes[w->npipes][0] = p[0];
        w->pipes[w->npipes][1] = p[1];
        w->npipes++;
    } else {
        close(p[0]);
        close(p[1]);
    }
    p[0] = p[1] = -1;
}

/* --- commands and lifecycle --------------------------------------------- */

/* worker_usage_sync: workers still to answer, and what to activate then. */
static atomic_int usage_pending;
static _Atomic(struct event *) usage_done;

void
worker_usage_sync(struct worker **ws, int n, struct event *done)
{
    atomic_store(&usage_done, done);
    atomic_store(&usage_pending, n);
    for (int i = 0; i < n; i++)
        worker_command(ws[i], WORKER_CMD_USAGE);
}

static void
usage_progress(struct worker *w)
{
    for (struct conn *c = TAILQ_FIRST(&w->conns); c; c = conn_next(c))
        conn_usage_progress(c);
    if (atomic_fetch_sub(&usage_pending, 1) == 1)
        event_active(atomic_load(&usage_done), EV_TIMEOUT, 1);
}

static void
cmd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    int cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & WORKER_CMD_RELOAD)
        (void)worker_snapshot(w); /* drops the old snapshot now, not at the next request */
    if (cmd & WORKER_CMD_USAGE)
        usage_progress(w);
    if (cmd & (WORKER_CMD_DRAIN | WORKER_CMD_STOP)) {
        w->draining = 1;
        for (size_t i = 0; i < w->nls; i++)
            evconnlistener_free(w->ls[i]);
        w->nls = 0;
        upstream_pool_clear(w);
        struct conn *c, *next;
        for (c = TAILQ_FIRST(&w->conns); c; c = next) {
            next = conn_next(c);
            if (cmd & WORKER_CMD_STOP)
                conn_abort(c, "shutdown");
            else
                conn_drain(c);
        }
        if (w->nconns == 0)
            event_base_loopexit(w->base, NULL);
    }
}

struct snapshot *
worker_snapshot(struct worker *w)
{
    if (w->snap->generation != snapshot_current_generation()) {
        struct snapshot *s = snapshot_acquire();
        if (s != NULL) {
            snapshot_release(w->snap);
            w->snap = s;
        }
    }
    return w->snap;
}

static void
worker_free(struct worker *w)
{
    for (size_t i = 0; i < w->nls; i++)
        evconnlistener_free(w->ls[i]);
    upstream_pool_clear(w);
    free(w->ls);
    for (size_t i = 0; i < w->npipes; i++) {
        close(w->pipes[i][0]);
        close(w->pipes[i][1]);
    }
    if (w->cmd_ev)
        event_free(w->cmd_ev);
    if (w->resume_ev)
        event_free(w->resume_ev);
    if (w->dns)
        dns_free(w->dns);
    if (w->base)
        event_base_free(w->base);
    snapshot_release(w->snap);
    free(w);
}

struct worker *
worker_new(int id, const int *fds, size_t nfds, size_t ntls)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->id = id;
    TAILQ_INIT(&w->conns);
    TAILQ_INIT(&w->pool);
    w->snap = snapshot_acquire();
    /* A locking base: the main thread activates cmd_ev across threads.
     * (Not EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST: it saves epoll_ctl calls,
     * but a worker's delayed EPOLL_CTL_DEL then lands after close(), on a
     * descriptor number another worker may have been given meanwhile.) */
    w->base = event_base_new();
    if (w->base == NULL)
        goto fail;
    w->dns = dns_new(w->base, w->snap->cfg);
    if (w->dns == NULL)
        goto fail;
    w->cmd_ev = event_new(w->base, -1, 0, cmd_cb, w);
    w->resume_ev = evtimer_new(w->base, resume_cb, w);
    w->ls = calloc(nfds ? nfds : 1, sizeof(*w->ls));
    if (w->cmd_ev == NULL || w->resume_ev == NULL || w->ls == NULL)
        goto fail;
    for (size_t i = 0; i < nfds; i++) {
        w->ls[i] = evconnlistener_new(w->base, i + ntls >= nfds ? accept_tls_cb : accept_cb, w,
                                      LEV_OPT_CLOSE_ON_FREE, -1, fds[i]);
        if (w->ls[i] == NULL)
            goto fail;
        evconnlistener_set_error_cb(w->ls[i], accept_error_cb);
        w->nls++;
    }
    return w;
fail:
    log_warnx("worker %d: cannot initialise", id);
    for (size_t i = w->nls; i < nfds; i++)
        close(fds[i]); /* the sockets are taken, even on failure */
    worker_free(w);
    return NULL;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    cluster_worker_start(w->base, w->id);
    event_base_dispatch(w->base);
    /* Whatever is left when the loop ends is closed and logged. */
    struct conn *c, *next;
    for (c = TAILQ_FIRST(&w->conns); c; c = next) {
        next = conn_next(c);
        conn_abort(c, "shutdown");
    }
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    cluster_worker_stop();
    tlsmint_thread_cleanup(); /* this thread's minted certificates */
    upstream_tls_thread_cleanup();
    atomic_store(&w->finished, 1);
    return NULL;
}

int
worker_start(struct worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void
worker_command(struct worker *w, int cmd)
{
    atomic_fetch_or(&w->cmd, cmd);
    event_active(w->cmd_ev, EV_READ, 0);
}

void
worker_join_free(struct worker *w)
{
    pthread_join(w->thread, NULL);
    worker_free(w);
}
