#include "upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "errpage.h"
#include "log.h"
#include "snapshot.h"
#include "stats.h"
#include "util/addr.h"
#include "worker.h"

#define POOL_MAX_PER_WORKER 256
#define POOL_IDLE_SECONDS 30

/* Fast answers and connects need no watching (it costs two epoll_ctl calls
 * a request): the timer arms the watch if they take longer than this. */
#define WATCH_AFTER_MS 500

/* --- the idle pool ------------------------------------------------------- */

static void
pool_drop(struct pooled *p)
{
    struct worker *w = p->w;
    TAILQ_REMOVE(&w->pool, p, link);
    w->npool--;
    bufferevent_free(p->bev);
    free(p);
}

/* An idle pooled connection that becomes readable was closed or spoke
 * out of turn: either way it is useless. */
static void
pool_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pool_drop(arg);
}

static void
pool_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    pool_drop(arg);
}

static struct bufferevent *
pool_get(struct worker *w, const char *key)
{
    struct pooled *p;
    TAILQ_FOREACH_REVERSE(p, &w->pool, pool_head_s, link)
    {
        if (strcmp(p->key, key) == 0) {
            struct bufferevent *bev = p->bev;
            TAILQ_REMOVE(&w->pool, p, link);
            w->npool--;
            free(p);
            /* Reading stays on: the taker sets its own callbacks before
             * returning to the loop (upstream_open), and the forward phase
             * reads it at once (turning it off and on again cost two
             * epoll_ctl a request). */
            return bev;
        }
    }
    return NULL;
}

static void
pool_put(struct worker *w, const char *key, struct bufferevent *bev)
{
    struct pooled *p = w->draining ? NULL : calloc(1, sizeof(*p));
    if (p == NULL) {
        bufferevent_free(bev);
        return;
    }
    if (w->npool >= POOL_MAX_PER_WORKER)
        pool_drop(TAILQ_FIRST(&w->pool));
    p->w = w;
    p->bev = bev;
    snprintf(p->key, sizeof(p->key), "%s", key);
    struct timeval idle = {POOL_IDLE_SECONDS, 0};
    bufferevent_setcb(bev, pool_read_cb, NULL, pool_event_cb, p);
    bufferevent_set_timeouts(bev, &idle, NULL);
    bufferevent_enable(bev, EV_READ);
    TAILQ_INSERT_TAIL(&w->pool, p, link);
    w->npool++;
}

void
upstream_pool_clear(struct worker *w)
{
    while (!TAILQ_EMPTY(&w->pool))
        pool_drop(TAILQ_FIRST(&w->pool));
}

void
upstream_release(struct conn *c, int reusable)
{
    if (c->ubev == NULL)
        return;
    if (reusable && evbuffer_get_length(bufferevent_get_input(c->ubev)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0) {
        bufferevent_setwatermark(c->ubev, EV_WRITE, 0, 0);
        pool_put(c->w, c->t.rq.poolkey, c->ubev);
        c->ubev = NULL;
        return;
    }
    conn_free_upstream(c);
}

/* --- resolve and connect: the connecting phase ---------------------------- */

static enum conn_rc connect_next(struct conn *c);

/* --- TLS to the origin (requests read inside a decrypted tunnel) ---------- */

/* This thread's client context: the system's trust store (which honours
 * SSL_CERT_FILE and SSL_CERT_DIR), TLS 1.2 or later, the peer verified.
 * Kept for the thread's life (upstream_tls_thread_cleanup): a trust store
 * changed on disk is read by a restart. */
static _Thread_local SSL_CTX *client_ctx_cached;

void
upstream_tls_thread_cleanup(void)
{
    SSL_CTX_free(client_ctx_cached);
    client_ctx_cached = NULL;
}

static SSL_CTX *
client_ctx(void)
{
    SSL_CTX *ctx = client_ctx_cached;
    if (ctx)
        return ctx;
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    if (x == NULL)
        return NULL;
    if (SSL_CTX_set_default_verify_paths(x) != 1 ||
        SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(x);
        return NULL;
    }
    SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    client_ctx_cached = x;
    return x;
}

/* An SSL for the origin named host: its name sent (SNI, unless an
 * address), checked against the certificate, ALPN http/1.1 alone. */
static SSL *
client_ssl(const char *host)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX *ctx = client_ctx();
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (ssl == NULL)
        return NULL;
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    int ok = SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1) == 0;
    if (is_ip)
        ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    else
        ok = ok && SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return ssl;
}

static enum conn_rc after_tls(struct conn *c);

static enum conn_rc
tls_connecting_event(struct conn *c, short what)
{
    if (what & BEV_EVENT_CONNECTED)
        return after_tls(c);
    SSL *ssl = bufferevent_openssl_get_ssl(c->ubev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(c->ubev);
    char msg[512];
    stats_count(STATS_UPSTREAM_ERRORS);
    if (vr != X509_V_OK) {
        /* Never a plain forward or an unverified one instead: the page. */
        log_debug("%s port %u: certificate: %s", c->t.rq.host, c->t.rq.port,
                  X509_verify_cert_error_string(vr));
        snprintf(msg, sizeof(msg),
                 "The server %s could not prove its identity: its certificate is not trusted "
                 "(%s). Nothing was sent to it.",
                 c->t.rq.host, X509_verify_cert_error_string(vr));
        return conn_reply_error(c, 502, "upstream-certificate", msg);
    }
    if (e)
        log_debug("%s port %u: TLS: %s", c->t.rq.host, c->t.rq.port, ERR_reason_error_string(e));
    snprintf(msg, sizeof(msg), "The server %s did not complete a secure connection.", c->t.rq.host);
    return conn_reply_error(c, 502, "upstream-tls-failed", msg);
}

/* The origin did not connect (TCP) or finish its handshake (TLS) within
 * connect_timeout: 504 with the page that names the host and the time. */
static enum conn_rc
reply_connect_timeout(struct conn *c)
{
    char msg[512];
    errpage_upstream_text(msg, sizeof(msg), ERRPAGE_TIMEOUT, c->t.rq.host, c->t.rq.port,
                          c->cfg->connect_timeout_ms);
    stats_count(STATS_UPSTREAM_ERRORS);
    return conn_reply_error(c, 504, "connect-timeout", msg);
}

static enum conn_rc
tls_connecting_timeout(struct conn *c, uint64_t now)
{
    (void)now;
    return reply_connect_timeout(c);
}

static const struct conn_ops tls_connecting_ops = {
    .name = "tls-connect",
    .upstream_event = tls_connecting_event,
    .timeout = tls_connecting_timeout,
};

/* The TCP connection to the origin is up: TLS over the same socket, with
 * connect_timeout for the handshake too. */
static enum conn_rc
tls_start(struct conn *c)
{
    SSL *ssl = client_ssl(c->t.rq.host);
    if (ssl == NULL)
        return conn_reply_error(c, 502, "upstream-tls-failed",
                                "A secure connection to the server could not be prepared.");
    evutil_socket_t fd = bufferevent_getfd(c->ubev);
    bufferevent_setfd(c->ubev, -1); /* the socket goes to the TLS bufferevent */
    conn_free_upstream(c);
    c->ubev = bufferevent_openssl_socket_new(c->w->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE);
    if (c->ubev == NULL) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return conn_reply_error(c, 502, "upstream-tls-failed",
                                "A secure connection to the server could not be prepared.");
    }
    /* an origin that closes without close_notify ends its answer (as
     * browsers take it); a body of known length is still checked */
    bufferevent_openssl_set_allow_dirty_shutdown(c->ubev, 1);
    conn_attach_upstream(c);
    conn_set_phase(c, &tls_connecting_ops);
    conn_arm(c, c->cfg->connect_timeout_ms);
    bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    return CONN_SUSPENDED;
}

/* The upstream is connected (fresh or from the pool). */
static enum conn_rc
ready(struct conn *c)
{
    struct txn *t = &c->t;
    t->forwarded = 1;
    if (!t->reused) {
        int one = 1; /* a pooled one has it */
        setsockopt(bufferevent_getfd(c->ubev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (t->rq.tls)
            return tls_start(c);
    }
    return after_tls(c);
}

/* Connected, and TLS set up when the request needs it. */
static enum conn_rc
after_tls(struct conn *c)
{
    struct txn *t = &c->t;
    conn_touch(c);
    conn_arm(c, c->cfg->idle_timeout_ms);
    if (t->ai) {
        evutil_freeaddrinfo(t->ai);
        t->ai = t->ai_next = NULL;
    }
    return c->up_ready(c);
}

static void
dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct conn *c = arg;
    if (result == EVUTIL_EAI_CANCEL) {
        if (res)
            evutil_freeaddrinfo(res);
        return; /* the conn is gone or moved on */
    }
    c->t.dnsreq = NULL;
    if (c->closed || c->closing) {
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    if (result != 0 || res == NULL) {
        if (res)
            evutil_freeaddrinfo(res);
        stats_count(STATS_DNS_FAILURES);
        char msg[512];
        /* The resolver's own words stay in the debug log. */
        enum errpage_upstream why = result == EVUTIL_EAI_NONAME || result == EVUTIL_EAI_NODATA
                                        ? ERRPAGE_NAME_UNKNOWN
                                        : ERRPAGE_NAME_FAILED;
        log_debug("%s: %s", c->t.rq.host, evutil_gai_strerror(result));
        errpage_upstream_text(msg, sizeof(msg), why, c->t.rq.host, c->t.rq.port, 0);
        conn_reply_error(c, 502, "dns-failed", msg);
        return;
    }
    /* Keep only allowed destinations. */
    struct evutil_addrinfo *keep = NULL, **tail = &keep, *next;
    for (struct evutil_addrinfo *ai = res; ai; ai = next) {
        next = ai->ai_next;
        ai->ai_next = NULL;
        if (cidrset_match(&c->cfg->block_destinations, ai->ai_addr)) {
            evutil_freeaddrinfo(ai);
            continue;
        }
        *tail = ai;
        tail = &ai->ai_next;
    }
    if (keep == NULL) {
        conn_reply_error(c, 403, "destination-blocked",
                         "The destination address is not allowed by this proxy.");
        return;
    }
    c->t.ai = keep;
    c->t.ai_next = keep;
    connect_next(c);
}

/* A destination that one of our listeners would accept: the request would
 * come back to this proxy from its own address. */
static int
is_own_listener(struct conn *c, const struct sockaddr *sa)
{
    for (size_t i = 0; i < c->cfg->nlisten; i++)
        if (addr_reaches_listener(sa, (const struct sockaddr *)&c->cfg->listen[i].ss,
                                  &c->snap->local_addrs))
            return 1;
    return 0;
}

static enum conn_rc
connect_next(struct conn *c)
{
    struct txn *t = &c->t;
    while (t->ai_next) {
        struct evutil_addrinfo *ai = t->ai_next;
        t->ai_next = ai->ai_next;
        if (is_own_listener(c, ai->ai_addr))
            return conn_reply_error(c, 508, "forwarding-loop",
                                    "The request is addressed to this proxy.");
        c->ubev = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (c->ubev == NULL)
            break;
        conn_attach_upstream(c);
        if (bufferevent_socket_connect(c->ubev, ai->ai_addr, (int)ai->ai_addrlen) == 0)
            return CONN_SUSPENDED; /* BEV_EVENT_CONNECTED or an error follows */
        t->last_errno = errno;
        conn_free_upstream(c);
    }
    char msg[512];
    if (t->last_errno)
        log_debug("%s port %u: %s", t->rq.host, t->rq.port, strerror(t->last_errno));
    errpage_upstream_text(msg, sizeof(msg), errpage_connect_error(t->last_errno), t->rq.host,
                          t->rq.port, 0);
    stats_count(STATS_UPSTREAM_ERRORS);
    return conn_reply_error(c, 502, "connect-failed", msg);
}

static enum conn_rc
connecting_event(struct conn *c, short what)
{
    if (what & BEV_EVENT_CONNECTED)
        return ready(c);
    c->t.last_errno = EVUTIL_SOCKET_ERROR();
    conn_free_upstream(c);
    return connect_next(c);
}

static enum conn_rc
connecting_timeout(struct conn *c, uint64_t now)
{
    uint64_t deadline = c->t.connect_deadline;
    if (now < deadline) {
        /* A slow connect: from now on notice a client that leaves. */
        if (!c->watching)
            conn_watch_client(c, 1);
        conn_arm(c, deadline - now);
        return CONN_SUSPENDED;
    }
    return reply_connect_timeout(c);
}

static const struct conn_ops connecting_ops = {
    .name = "connect",
    .upstream_event = connecting_event,
    .timeout = connecting_timeout,
};

enum conn_rc
upstream_open(struct conn *c, int may_reuse)
{
    struct txn *t = &c->t;
    if (may_reuse) {
        struct bufferevent *pooled = pool_get(c->w, t->rq.poolkey);
        if (pooled) {
            c->ubev = pooled;
            t->reused = 1;
            conn_attach_upstream(c);
            bufferevent_set_timeouts(c->ubev, NULL, NULL);
            return ready(c);
        }
    }
    conn_set_phase(c, &connecting_ops);
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    char port[8];
    snprintf(port, sizeof(port), "%u", t->rq.port);
    /* The timer first arms the watch for a client that leaves (after
     * WATCH_AFTER_MS), then ends the wait at connect_timeout. */
    uint64_t ct = c->cfg->connect_timeout_ms;
    t->connect_deadline = conn_now_ms(c) + ct;
    conn_arm(c, ct < WATCH_AFTER_MS ? ct : WATCH_AFTER_MS);
    /* The callback may run before this returns (literals, hosts file). */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(c->w->dns, t->rq.host, port, &hints, dns_cb, c);
    if (c->closed || c->closing)
        return CONN_CLOSED;
    if (req != NULL && t->ai == NULL && c->ubev == NULL)
        t->dnsreq = req;
    return CONN_SUSPENDED;
}
