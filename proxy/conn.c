#define _GNU_SOURCE /* memmem(3) */
#include "conn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cluster.h"
#include "accesslog.h"
#include "authpool.h"
#include "catalog.h"
#include "config.h"
#include "errpage.h"
#include "helper.h"
#include "http1.h"
#include "local.h"
#include "log.h"
#include "policy.h"
#include "proxyproto.h"
#include "rules.h"
#include "snapshot.h"
#include "splice.h"
#include "stats.h"
#include "timewin.h"
#include "usage.h"
#include "util/addr.h"
#include "worker.h"

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void upstream_read_cb(struct bufferevent *bev, void *arg);
static void upstream_write_cb(struct bufferevent *bev, void *arg);
static void upstream_event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

/* localtime_r takes glibc's time-zone lock: once a second per thread is
 * enough for decisions, quotas and usage. */
void
conn_local_tm(time_t t, struct tm *out)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local struct tm cached;
    if (t != cached_sec) {
        localtime_r(&t, &cached);
        cached_sec = t;
    }
    *out = cached;
}

uint64_t
conn_now_ms(struct conn *c)
{
    struct timeval tv;
    event_base_gettimeofday_cached(c->w->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

void
conn_wall_clock(struct conn *c, time_t *sec, long *usec)
{
    struct timeval tv;
    event_base_gettimeofday_cached(c->w->base, &tv);
    *sec = tv.tv_sec;
    if (usec)
        *usec = (long)tv.tv_usec;
}

struct http1_head *
conn_scratch_head(void)
{
    static _Thread_local struct http1_head scratch;
    return &scratch;
}

void
conn_touch(struct conn *c)
{
    c->last_active = conn_now_ms(c);
}

void
conn_arm(struct conn *c, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

int
conn_rearm_idle(struct conn *c, uint64_t now)
{
    uint64_t idle = c->cfg->idle_timeout_ms;
    if (now - c->last_active < idle) {
        conn_arm(c, idle - (now - c->last_active));
        return 1;
    }
    return 0;
}

void
conn_set_phase(struct conn *c, const struct conn_ops *ops)
{
    c->ops = ops;
}

/* The worker's snapshot, brought up to date first: the generation check
 * is one atomic load, so a request never runs on a configuration older
 * than the last completed reload, even before the worker has handled its
 * reload command. */
static struct snapshot *
current_snapshot(struct conn *c)
{
    return worker_snapshot(c->w);
}

static void
take_snapshot(struct conn *c, struct snapshot *s)
{
    if (c->snap == s)
        return;
    snapshot_ref(s);
    snapshot_release(c->snap);
    c->snap = s;
    c->cfg = s->cfg;
}

void
conn_txn_begin(struct conn *c)
{
    struct txn *t = &c->t;
    if (t->active)
        return;
    t->active = 1;
    clock_gettime(CLOCK_MONOTONIC, &t->start);
    take_snapshot(c, current_snapshot(c));
}

int
conn_snapshot_refresh(struct conn *c)
{
    struct snapshot *s = current_snapshot(c);
    if (s == c->snap)
        return 0;
    take_snapshot(c, s);
    return 1;
}

struct sni_watch *
conn_sni_watch(struct conn *c)
{
    if (c->t.sw == NULL) {
        c->t.sw = calloc(1, sizeof(*c->t.sw));
        if (c->t.sw)
            sni_init(&c->t.sw->hello);
    }
    return c->t.sw;
}

void
conn_sni_watch_free(struct conn *c)
{
    if (c->t.sw) {
        sni_free(&c->t.sw->hello);
        sni_http_free(&c->t.sw->http);
        free(c->t.sw);
        c->t.sw = NULL;
    }
}

/* Frees what the transaction owns and zeroes it for the next one. */
static void
txn_reset(struct conn *c)
{
    struct txn *t = &c->t;
    request_free(&t->rq);
    free(t->sni);
    free(t->sni2);
    conn_sni_watch_free(c);
    if (t->auth_job)
        authpool_cancel(t->auth_job);
    if (t->cluster_ask)
        cluster_ask_cancel(t->cluster_ask);
    if (t->neg_req)
        helper_cancel(t->neg_req);
    /* [auth] helper questions still open, and what gate.c kept of them */
    if (t->helper_job)
        helper_cancel(t->helper_job);
    for (size_t i = 0; i < t->ngroup_asks; i++)
        if (t->group_asks[i].req)
            helper_cancel(t->group_asks[i].req);
    free(t->group_asks);
    for (size_t i = 0; i < t->ngroups_in; i++)
        free(t->groups_in[i]);
    free(t->groups_in);
    free(t->auth_message);
    if (t->dnsreq)
        evdns_getaddrinfo_cancel(t->dnsreq); /* its callback frees nothing of ours */
    if (t->ai)
        evutil_freeaddrinfo(t->ai);
    if (t->phase_free)
        t->phase_free(t->phase_state);
    free(t->who);
    memset(t, 0, sizeof(*t));
    t->roles = t->identity = "";
    t->platform = -1;
    t->rule = -1;
    t->action = -1;
}

void
conn_usage_who(struct conn *c, struct usage_row *row, char *ip, size_t ipsize)
{
    struct txn *t = &c->t;
    const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
    addr_format_ip((const struct sockaddr *)&c->peer, ip, ipsize);
    memset(row, 0, sizeof(*row));
    row->user = t->rq.auth == AUTH_OK ? t->rq.user : NULL;
    row->client = ip;
    row->roles = t->roles[0] && strcmp(t->roles, "-") != 0 ? t->roles : NULL;
    row->platform = p ? p->name : "unclassified";
    row->category = p ? p->category : NULL;
    const struct policy_rule *r =
        t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    row->quota_min = r ? r->quota_min : 0;
}

/* The transaction's bytes not yet in the usage counters go there now, with
 * `requests` (1 when it ends). */
static void
usage_add(struct conn *c, uint64_t requests)
{
    struct txn *t = &c->t;
    if (t->platform < 0 || !t->forwarded)
        return;
    uint64_t up = t->up - t->usage_up, down = t->down - t->usage_down;
    if (requests == 0 && up == 0 && down == 0)
        return;
    char ip[64];
    struct usage_row row;
    conn_usage_who(c, &row, ip, sizeof(ip));
    time_t now;
    conn_wall_clock(c, &now, NULL);
    struct tm local;
    conn_local_tm(now, &local);
    usage_activity(&row, timewin_day_number(&local), -1, requests, up, down);
    t->usage_up = t->up;
    t->usage_down = t->down;
}

void
conn_usage_progress(struct conn *c)
{
    if (!c->closed && c->t.active)
        usage_add(c, 0);
}

/* Writes the usage-log line of the current transaction, once. */
void
conn_txn_log(struct conn *c)
{
    struct txn *t = &c->t;
    if (!t->active)
        return;
    t->active = 0;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    int64_t ns = (int64_t)(end.tv_sec - t->start.tv_sec) * 1000000000 +
                 (int64_t)(end.tv_nsec - t->start.tv_nsec);
    uint64_t ms = ns > 0 ? (uint64_t)ns / 1000000 : 0;
    int tunnel = t->is_connect || t->rq.upgrade == UPGRADE_SWITCHED;
    struct access_record r = {
        .ev = tunnel ? "tunnel" : "request",
        .client = (const struct sockaddr *)&c->peer,
        .method = t->rq.method[0] ? t->rq.method : NULL,
        .host = t->rq.host,
        .port = t->rq.port,
        .path = t->is_connect ? NULL : t->rq.path,
        .sni = t->sni,
        .status = t->status,
        .up = t->up,
        .down = t->down,
        .ms = ms,
        /* An opaque tunnel says so even when a rule let it through
         * (grep ' reason=opaque ' finds all of them), unless something
         * more particular ended it. */
        .reason = t->reason ? t->reason : t->opaque ? "opaque" : NULL,
        .mismatch = t->mismatch ? "sni" : NULL,
        .ech = t->ech ? "yes" : NULL,
        .user = t->rq.user,
        .roles = t->roles[0] && strcmp(t->roles, "-") != 0 ? t->roles : NULL,
        .auth = t->rq.auth == AUTH_FAILED ? "fail" : NULL,
        .tls = t->tls       ? t->tls
               : c->insp.on ? "inspect"
                            : NULL,
        .answered_here = t->answered_here,
        .forwarded = t->forwarded,
    };
    const struct policy_rule *rule =
        t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    if (rule)
        r.rule = rule->name;
    if (t->action >= 0)
        r.action = policy_action_name((enum policy_action)t->action);
    usage_add(c, 1);
    const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
    if (p) {
        r.platform = p->name;
        r.category = p->category;
    } else if (t->opaque) {
        r.category = POLICY_OPAQUE;
    }
    accesslog_record(&r);
    stats_transaction(tunnel ? STATS_TUNNEL : STATS_REQUEST, r.platform, r.action, t->up, t->down);
}

void
conn_free_upstream(struct conn *c)
{
    if (c->ubev) {
        bufferevent_free(c->ubev);
        c->ubev = NULL;
    }
}

static void
park_events_free(struct conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->park_ev[i])
            event_free(c->park_ev[i]);
        c->park_ev[i] = NULL;
    }
}

/* The single teardown. Safe to call from any handler; the conn itself is
 * freed from the timer once the current callback has returned. */
enum conn_rc
conn_close(struct conn *c, const char *reason)
{
    if (c->closed)
        return CONN_CLOSED;
    if (c->t.active && c->t.reason == NULL)
        c->t.reason = reason;
    conn_txn_log(c);
    log_debug("conn %p closed: %s", (void *)c, reason);
    c->closed = 1;
    splicer_stop(c->spl); /* before its sockets close */
    if (c->gone_ev)
        event_del(c->gone_ev);
    if (c->parked) {
        park_events_free(c);
        close(c->park_fd[0]);
        close(c->park_fd[1]);
        c->parked = 0;
    }
    txn_reset(c);
    conn_free_upstream(c);
    free(c->insp.host);
    free(c->insp.user);
    memset(&c->insp, 0, sizeof(c->insp));
    free(c->neg_user);
    c->neg_user = NULL;
    helper_pin_free(c->neg_pin); /* after txn_reset: no leg in flight */
    c->neg_pin = NULL;
    if (c->cbev) {
        bufferevent_free(c->cbev);
        c->cbev = NULL;
    }
    event_del(c->timer);
    struct timeval zero = {0, 0};
    evtimer_add(c->timer, &zero);
    return CONN_CLOSED;
}

struct conn *
conn_next(struct conn *c)
{
    return TAILQ_NEXT(c, link);
}

static void
conn_free(struct conn *c)
{
    TAILQ_REMOVE(&c->w->conns, c, link);
    splicer_free(c->spl);
    if (c->gone_ev)
        event_free(c->gone_ev);
    worker_conn_closed(c->w, (struct sockaddr *)&c->peer);
    SSL_free(c->tls_after_header); /* closed before its header was read */
    event_free(c->timer);
    snapshot_release(c->snap);
    free(c);
}

/* The client's socket, under any TLS filter (a decrypted tunnel on the
 * HTTPS proxy port). */
static evutil_socket_t
client_fd(struct conn *c)
{
    if (c->parked)
        return c->park_fd[0];
    struct bufferevent *b = c->cbev, *u;
    while ((u = bufferevent_get_underlying(b)) != NULL)
        b = u;
    return bufferevent_getfd(b);
}

void
conn_client_shutdown(struct conn *c)
{
    SSL *ssl = c->tls_port && !c->tls_handshaking && c->cbev &&
                       bufferevent_get_underlying(c->cbev) == NULL
                   ? bufferevent_openssl_get_ssl(c->cbev)
                   : NULL;
    if (ssl) {
        /* close_notify first: a TLS client reads the end of the answer as
         * an end, not as a truncation. Best effort (the socket is
         * non-blocking; the alert is small). */
        (void)SSL_shutdown(ssl);
        ERR_clear_error();
    }
    shutdown(client_fd(c), SHUT_WR);
}

/* Closing: once the output is out, half-close and linger. */
static void
closing_flushed(struct conn *c)
{
    if (c->linger_until == 0 && evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0) {
        struct bufferevent *under = bufferevent_get_underlying(c->cbev);
        if (under && evbuffer_get_length(bufferevent_get_output(under)) > 0) {
            /* A decrypted tunnel on the HTTPS proxy port: the outer TLS
             * layer still holds bytes, and tells nobody when they are out.
             * Look again shortly (the idle timeout bounds the wait). */
            if (c->flush_deadline == 0)
                c->flush_deadline = conn_now_ms(c) + c->cfg->idle_timeout_ms;
            conn_arm(c, 10);
            return;
        }
        if (c->cli_eof) { /* the client has finished sending: nothing to linger for */
            conn_close(c, NULL);
            return;
        }
        conn_client_shutdown(c);
        c->linger_until = conn_now_ms(c) + CONN_LINGER_MS;
        conn_arm(c, CONN_LINGER_MS);
    }
}

/* Sends what is in the client output, then shuts down and lingers. */
enum conn_rc
conn_close_after_write(struct conn *c)
{
    if (c->closed || c->closing)
        return CONN_CLOSED;
    if (c->parked) /* nothing to write, no bufferevent to linger with */
        return conn_close(c, NULL);
    c->closing = 1;
    c->ops = NULL;
    splicer_stop(c->spl);
    if (c->gone_ev)
        event_del(c->gone_ev);
    c->watching = 0;
    conn_free_upstream(c);
    conn_txn_log(c);
    c->linger_until = 0;
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    short ev = c->cli_eof ? 0 : EV_READ;
    if (!(bufferevent_get_enabled(c->cbev) & EV_WRITE) ||
        evbuffer_get_length(bufferevent_get_output(c->cbev)) > 0)
        ev |= EV_WRITE; /* nothing to write: closing_flushed below goes on */
    if (ev)
        bufferevent_enable(c->cbev, ev);
    conn_arm(c, c->cfg->idle_timeout_ms);
    closing_flushed(c);
    return CONN_CLOSED;
}

enum conn_rc
conn_close_denied(struct conn *c, const char *reason)
{
    if (c->closed || c->closing)
        return CONN_CLOSED;
    if (c->t.active && c->t.reason == NULL)
        c->t.reason = reason;
    if (c->parked)
        return conn_close(c, NULL);
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    evbuffer_drain(in, evbuffer_get_length(in));
    return conn_close_after_write(c);
}

/* Drops unread client input (it must not reach anyone) and writes page.
 * count_input: the dropped bytes count as received (a refused head). */
static enum conn_rc
reply(struct conn *c, const char *page, size_t n, int status, int count_input)
{
    c->t.status = status;
    c->t.answered_here = 1;
    if (c->t.rq.is_head) {
        /* A HEAD is answered with the page's head alone (RFC 9110 9.3.2);
         * its Content-Length still says what a GET would get. */
        const char *end = memmem(page, n, "\r\n\r\n", 4);
        if (end)
            n = (size_t)(end + 4 - page);
    }
    c->t.down += n;
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    if (count_input)
        c->t.up += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_write(c->cbev, page, n);
    return conn_close_after_write(c);
}

enum conn_rc
conn_reply_error(struct conn *c, int status, const char *reason, const char *detail)
{
    if (c->closed || c->closing)
        return CONN_CLOSED;
    conn_txn_begin(c);
    if (c->t.reason == NULL)
        c->t.reason = reason;
    if (c->t.status != 0 || c->t.resp_head_done) /* too late for a page */
        return conn_close(c, reason);
    if (status == 502 || status == 504) {
        /* The origin could not be reached: the [pages] error page. */
        char *page = NULL;
        size_t n = local_error_page(c->snap, status, c->t.rq.host, detail, &page);
        if (n == 0)
            return conn_close(c, reason);
        enum conn_rc rc = reply(c, page, n, status, 1);
        free(page);
        return rc;
    }
    char page[4096];
    size_t n = errpage_format(page, sizeof(page), status, detail, "");
    return reply(c, page, n, status, 1);
}

enum conn_rc
conn_reply_page(struct conn *c, const char *page, size_t n, int status, const char *reason)
{
    if (c->closed || c->closing)
        return CONN_CLOSED;
    if (n == 0)
        return conn_close(c, "page-too-large");
    if (reason && c->t.reason == NULL)
        c->t.reason = reason;
    return reply(c, page, n, status, 0);
}

enum conn_rc
conn_keepalive(struct conn *c)
{
    conn_watch_client(c, 0);
    conn_txn_log(c);
    txn_reset(c);
    c->ops = c->home;
    c->head_bytes_seen = 0;
    c->head_scanned = 0;
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    /* Enabling writing adds the write event even with nothing to write
     * (the answer went out at once): leave it off epoll then, the next
     * bytes queued add it. */
    short ev = EV_READ;
    if (!(bufferevent_get_enabled(c->cbev) & EV_WRITE) ||
        evbuffer_get_length(bufferevent_get_output(c->cbev)) > 0)
        ev |= EV_WRITE;
    bufferevent_enable(c->cbev, ev);
    conn_touch(c);
    conn_arm(c, c->cfg->idle_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
        conn_kick_read(c); /* pipelined */
    return CONN_GO_ON;
}

void
conn_kick_read(struct conn *c)
{
    if (c->parked)
        return;
    bufferevent_trigger(c->cbev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

int
conn_buffers_empty(struct conn *c)
{
    if (c->parked)
        return 1;
    return evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0 &&
           evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0 &&
           evbuffer_get_length(bufferevent_get_input(c->ubev)) == 0 &&
           evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0;
}

void
conn_io_pause(struct conn *c)
{
    if (c->parked)
        return;
    bufferevent_disable(c->cbev, EV_READ | EV_WRITE);
    bufferevent_disable(c->ubev, EV_READ | EV_WRITE);
}

void
conn_io_resume(struct conn *c)
{
    if (c->parked)
        return;
    bufferevent_enable(c->cbev, EV_WRITE);
    bufferevent_enable(c->ubev, EV_WRITE);
}

static void
set_tcp_nodelay(evutil_socket_t fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* libevent reads and writes 16 KiB per call by default: bulk transfers
 * spend their time in the loop. Larger single operations cut the calls. */
#define CONN_IO_CHUNK (128 * 1024)

static void
tune_bev(struct bufferevent *bev)
{
    bufferevent_set_max_single_read(bev, CONN_IO_CHUNK);
    bufferevent_set_max_single_write(bev, CONN_IO_CHUNK);
}

/* Gives c->cbev the core's callbacks and I/O sizes. */
static void
attach_client(struct conn *c)
{
    bufferevent_setcb(c->cbev, client_read_cb, client_write_cb, client_event_cb, c);
    tune_bev(c->cbev);
}

void
conn_replace_client(struct conn *c, struct bufferevent *bev)
{
    if (c->gone_ev) {
        event_del(c->gone_ev);
        c->watching = 0;
    }
    bufferevent_setfd(c->cbev, -1); /* the socket stays open: bev has it */
    bufferevent_free(c->cbev);
    c->cbev = bev;
    attach_client(c);
}

void
conn_wrap_client(struct conn *c, struct bufferevent *bev)
{
    if (c->gone_ev) {
        event_del(c->gone_ev);
        c->watching = 0;
    }
    c->cbev = bev;
    attach_client(c);
}

void
conn_attach_upstream(struct conn *c)
{
    bufferevent_setcb(c->ubev, upstream_read_cb, upstream_write_cb, upstream_event_cb, c);
    tune_bev(c->ubev);
}

/* --- a parked tunnel ----------------------------------------------------------
 * A socket bufferevent with its two buffers and two events is some 800
 * bytes; an idle tunnel (waiting for its client's first bytes, or relayed
 * by the kernel) needs neither of its two. */

static void
park_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->closed || c->closing || !c->parked)
        return;
    /* The new bufferevents find the socket readable on the loop's next
     * turn and the phase reads as if nothing had happened. */
    if (conn_unpark(c) < 0)
        conn_close(c, "out-of-memory");
}

static int
plain_bev(struct bufferevent *bev)
{
    return bev && bufferevent_get_underlying(bev) == NULL &&
           bufferevent_openssl_get_ssl(bev) == NULL && bufferevent_getfd(bev) >= 0;
}

static void
bev_free_keep_fd(struct bufferevent *bev)
{
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_setfd(bev, -1); /* the socket stays open */
    bufferevent_free(bev);
}

int
conn_park(struct conn *c, int watch)
{
    if (c->parked || c->closed || c->closing || c->tls_port || !plain_bev(c->cbev) ||
        !plain_bev(c->ubev) || !conn_buffers_empty(c))
        return -1;
    int fd[2] = {bufferevent_getfd(c->cbev), bufferevent_getfd(c->ubev)};
    if (watch) {
        for (int i = 0; i < 2; i++) {
            c->park_ev[i] = event_new(c->w->base, fd[i], EV_READ, park_wake_cb, c);
            if (c->park_ev[i] == NULL) {
                park_events_free(c);
                return -1;
            }
        }
    }
    if (c->gone_ev) {
        event_del(c->gone_ev);
        c->watching = 0;
    }
    bev_free_keep_fd(c->cbev);
    bev_free_keep_fd(c->ubev);
    c->cbev = c->ubev = NULL;
    c->park_fd[0] = fd[0];
    c->park_fd[1] = fd[1];
    c->parked = 1;
    for (int i = 0; i < 2 && watch; i++)
        event_add(c->park_ev[i], NULL);
    return 0;
}

int
conn_unpark(struct conn *c)
{
    if (!c->parked)
        return 0;
    struct bufferevent *cb =
        bufferevent_socket_new(c->w->base, c->park_fd[0], BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *ub =
        cb ? bufferevent_socket_new(c->w->base, c->park_fd[1], BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (ub == NULL) {
        if (cb)
            bev_free_keep_fd(cb);
        return -1;
    }
    park_events_free(c);
    c->parked = 0;
    c->cbev = cb;
    c->ubev = ub;
    attach_client(c);
    conn_attach_upstream(c);
    bufferevent_enable(c->cbev, (short)((c->cli_eof ? 0 : EV_READ) | EV_WRITE));
    bufferevent_enable(c->ubev, (short)((c->up_eof ? 0 : EV_READ) | EV_WRITE));
    return 0;
}

struct conn *
conn_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t len, int over_client_limit,
         const struct conn_ops *home, const struct conn_ops *first, SSL *ssl)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    c->w = w;
    c->t.roles = c->t.identity = "";
    c->t.platform = -1;
    c->t.rule = -1;
    c->t.action = -1;
    c->snap = worker_snapshot(w);
    snapshot_ref(c->snap);
    c->cfg = c->snap->cfg;
    c->home = c->ops = home;
    if (len > sizeof(c->peer))
        len = sizeof(c->peer); /* cannot happen: listeners are TCP */
    memcpy(&c->peer, sa, len);
    c->peerlen = len;
    c->timer = evtimer_new(w->base, timer_cb, c);
    if (ssl && first) {
        /* A balancer's header comes first, in plain bytes: TLS starts after
         * it (balancer.c, conn_start_tls). No read may take a byte past the
         * header: the watermark says how many may come now. */
        c->cbev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (c->cbev == NULL) {
            SSL_free(ssl);
        } else {
            c->tls_after_header = ssl;
            bufferevent_setwatermark(c->cbev, EV_READ, 0, PROXYPROTO_MIN);
        }
    } else if (ssl) {
        c->cbev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
        c->tls_port = c->tls_handshaking = 1;
        if (c->cbev == NULL)
            SSL_free(ssl);
        else /* clients that close without close_notify are common; their
              * requests are complete all the same */
            bufferevent_openssl_set_allow_dirty_shutdown(c->cbev, 1);
    } else {
        c->cbev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->timer == NULL || c->cbev == NULL) {
        if (c->cbev)
            bufferevent_free(c->cbev);
        else
            close(fd);
        if (c->timer)
            event_free(c->timer);
        snapshot_release(c->snap);
        free(c);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    set_tcp_nodelay(fd);
    attach_client(c);
    conn_touch(c);
    if (first == NULL) {
        conn_admit(c, over_client_limit);
        return c;
    }
    c->ops = first;
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    conn_arm(c, c->cfg->header_timeout_ms);
    return c;
}

enum conn_rc
conn_admit(struct conn *c, int over_client_limit)
{
    c->ops = c->home;
    if (!cidrset_match(&c->cfg->clients, (const struct sockaddr *)&c->peer))
        return conn_reply_error(c, 403, "client-not-allowed",
                                "Your address is not allowed to use this proxy.");
    if (over_client_limit)
        return conn_reply_error(c, 429, "max-per-client",
                                "Too many connections from your address; try again shortly.");
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    conn_arm(c, c->cfg->header_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        conn_kick_read(c); /* what followed a PROXY protocol header */
    return CONN_GO_ON;
}

enum conn_rc
conn_start_tls(struct conn *c)
{
    SSL *ssl = c->tls_after_header;
    c->tls_after_header = NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(c->w->base, bufferevent_getfd(c->cbev), ssl,
                                       BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return conn_close(c, "out-of-memory");
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    c->tls_port = c->tls_handshaking = 1;
    conn_replace_client(c, bev);
    return CONN_GO_ON;
}

void
conn_drain(struct conn *c)
{
    c->draining = 1;
    if (c->closed)
        return;
    if (c->ops == c->home && !c->t.active && c->cbev &&
        evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)
        conn_close(c, "shutdown");
}

void
conn_abort(struct conn *c, const char *reason)
{
    conn_close(c, reason);
}

/* --- a client that leaves while its reading is off ------------------------ */

/* While a request waits for its answer the client is not read (its next
 * request waits its turn), so a client that leaves would go unnoticed until
 * the origin answers or times out. The kernel tells us (EPOLLRDHUP). */
static void
client_gone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->closed || c->closing || !c->watching || c->t.status != 0)
        return;
    if (!(what & EV_CLOSED)) {
        /* Readable: the end of the stream, a reset, or the next
         * (pipelined) request, which must stay unread for now. */
        char b;
        ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
            event_del(c->gone_ev); /* data waits: stop watching, no busy loop */
            return;
        }
    }
    conn_close(c, "client-closed");
}

void
conn_watch_client(struct conn *c, int on)
{
    if (!on) {
        if (c->watching && c->gone_ev)
            event_del(c->gone_ev);
        c->watching = 0;
        return;
    }
    c->watching = 1;
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        return; /* the next request is already here: nothing to learn */
    if (c->gone_ev == NULL)
        c->gone_ev = event_new(c->w->base, client_fd(c), EV_READ | EV_CLOSED | EV_PERSIST,
                               client_gone_cb, c);
    if (c->gone_ev)
        event_add(c->gone_ev, NULL);
}

/* --- dispatch to the phase ---------------------------------------------------
 * Each callback returns right after its handler: what the handler returned
 * matters to the handler's callers inside the phase, not here. */

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    conn_touch(c);
    if (c->closing) {
        struct evbuffer *in = bufferevent_get_input(bev);
        c->lingered += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->lingered > CONN_LINGER_BYTES)
            conn_close(c, NULL);
        return;
    }
    if (c->ops->client_read)
        (void)c->ops->client_read(c);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    conn_touch(c);
    if (c->closing) {
        closing_flushed(c);
        return;
    }
    if (c->ops->client_drained)
        (void)c->ops->client_drained(c);
}

/* The HTTPS proxy port's handshake failed or took too long: a line in the
 * daemon's log (what OpenSSL saw: a plain HTTP request, an unknown CA...),
 * and one in the usage log, then the connection closes. */
static void
handshake_failed(struct conn *c, const char *reason)
{
    unsigned long e, last = 0;
    while ((e = bufferevent_get_openssl_error(c->cbev)) != 0)
        if (last == 0 || ERR_reason_error_string(last) == NULL)
            last = e; /* the first that OpenSSL can name */
    ERR_clear_error();
    int eof = last == 0 || ERR_reason_error_string(last) == NULL;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    eof |= ERR_GET_REASON(last) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
#endif
    if (eof && strcmp(reason, "tls-handshake-timeout") != 0) {
        /* Closed before or amid a ClientHello (a TCP probe of a load
         * balancer): quietly, as an idle plain connection. */
        c->tls_handshaking = 0;
        conn_close(c, NULL);
        return;
    }
    char ip[INET6_ADDRSTRLEN + 8] = "?";
    addr_format((const struct sockaddr *)&c->peer, ip, sizeof(ip));
    char what[256];
    if (last) {
        const char *r = ERR_reason_error_string(last);
        if (r)
            snprintf(what, sizeof(what), "%s", r);
        else
            ERR_error_string_n(last, what, sizeof(what));
    } else {
        snprintf(what, sizeof(what), "%s",
                 strcmp(reason, "tls-handshake-timeout") == 0 ? "timed out" : "failed");
    }
    log_info("client %s: TLS handshake on the HTTPS proxy port: %s", ip, what);
    c->tls_handshaking = 0;
    conn_txn_begin(c);
    conn_close(c, reason);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (c->tls_handshaking && !c->closed) {
        if (what & BEV_EVENT_CONNECTED) {
            c->tls_handshaking = 0;
            conn_touch(c);
            return; /* the request head follows, within the same header_timeout */
        }
        handshake_failed(c, "tls-handshake-failed");
        return;
    }
    if (c->closing) {
        if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
            evbuffer_get_length(bufferevent_get_output(c->cbev)) > 0) {
            /* A client that half-closes after its request still gets the
             * whole answer: close once it has gone out. */
            c->cli_eof = 1;
            return;
        }
        conn_close(c, NULL);
        return;
    }
    if (c->ops->client_event) {
        (void)c->ops->client_event(c, what);
        return;
    }
    conn_txn_begin(c);
    conn_close(c, (what & BEV_EVENT_EOF) ? "client-closed" : "client-error");
}

static void
upstream_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    conn_touch(c);
    if (!c->closing && c->ops->upstream_read)
        (void)c->ops->upstream_read(c);
}

static void
upstream_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    conn_touch(c);
    if (!c->closing && c->ops->upstream_drained)
        (void)c->ops->upstream_drained(c);
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (c->closing)
        return;
    if (c->ops->upstream_event) {
        (void)c->ops->upstream_event(c, what);
        return;
    }
    conn_close(c, "upstream-error");
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->closed) {
        conn_free(c);
        return;
    }
    if (c->tls_handshaking) {
        handshake_failed(c, "tls-handshake-timeout");
        return;
    }
    if (c->closing) {
        if (c->linger_until == 0 && c->flush_deadline != 0 && conn_now_ms(c) < c->flush_deadline) {
            closing_flushed(c); /* the outer TLS layer may be out now */
            return;
        }
        conn_close(c, NULL);
        return;
    }
    if (c->ops->timeout)
        (void)c->ops->timeout(c, conn_now_ms(c));
    else
        conn_close(c, "idle-timeout");
}
