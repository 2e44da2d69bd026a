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
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "accesslog.h"
#include "authpool.h"
#include "catalog.h"
#include "config.h"
#include "conn_types.h"
#include "errpage.h"
#include "forward.h"
#include "gate.h"
#include "http1.h"
#include "local.h"
#include "log.h"
#include "rules.h"
#include "snapshot.h"
#include "splice.h"
#include "stats.h"
#include "timewin.h"
#include "tunnel.h"
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
static void process_head(struct conn *c);
static void connect_next(struct conn *c);

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

static uint64_t
now_ms(struct conn *c)
{
    struct timeval tv;
    event_base_gettimeofday_cached(c->w->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
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
    c->last_active = now_ms(c);
}

void
conn_arm(struct conn *c, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

void
conn_txn_reset(struct conn *c)
{
    struct txn *t = &c->t;
    free(t->host);
    free(t->path);
    free(t->sni);
    free(t->user);
    if (t->pass) {
        OPENSSL_cleanse(t->pass, strlen(t->pass));
        free(t->pass);
    }
    free(t->url);
    free(t->target);
    if (t->auth_job)
        authpool_cancel(t->auth_job);
    if (t->uhead)
        evbuffer_free(t->uhead);
    if (t->dnsreq)
        evdns_getaddrinfo_cancel(t->dnsreq); /* its callback frees nothing of ours */
    if (t->ai)
        evutil_freeaddrinfo(t->ai);
    memset(t, 0, sizeof(*t));
    t->platform = -1;
    t->rule = -1;
    t->action = -1;
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
    uint64_t ms = (uint64_t)(end.tv_sec - t->start.tv_sec) * 1000 +
                  (uint64_t)((end.tv_nsec - t->start.tv_nsec) / 1000000);
    if (end.tv_nsec < t->start.tv_nsec && ms > 0)
        ms = (uint64_t)(end.tv_sec - t->start.tv_sec - 1) * 1000 +
             (uint64_t)((end.tv_nsec + 1000000000L - t->start.tv_nsec) / 1000000);
    struct access_record r = {
        .ev = t->is_connect || t->upgrade == 2 ? "tunnel" : "request",
        .client = (const struct sockaddr *)&c->peer,
        .method = t->method[0] ? t->method : NULL,
        .host = t->host,
        .port = t->port,
        .path = t->is_connect ? NULL : t->path,
        .sni = t->sni,
        .status = t->status,
        .up = t->up,
        .down = t->down,
        .ms = ms,
        .reason = t->reason,
        .mismatch = t->mismatch ? "sni" : NULL,
        .ech = t->ech ? "yes" : NULL,
        .user = t->user,
        .roles = t->roles[0] && strcmp(t->roles, "-") != 0 ? t->roles : NULL,
        .auth = t->auth < 0 ? "fail" : NULL,
        .answered_here = t->answered_here,
        .forwarded = t->forwarded,
    };
    const struct policy_rule *rule =
        t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    if (rule)
        r.rule = rule->name;
    if (t->action >= 0)
        r.action = policy_action_name((enum policy_action)t->action);
    if (t->platform >= 0 && t->forwarded) {
        char ip[64];
        struct usage_row row;
        gate_usage_who(c, &row, ip, sizeof(ip));
        struct timeval tv;
        event_base_gettimeofday_cached(c->w->base, &tv);
        time_t now = tv.tv_sec;
        struct tm local;
        conn_local_tm(now, &local);
        usage_activity(&row, timewin_day_number(&local), -1, 1, t->up, t->down);
    }
    const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
    if (p) {
        r.platform = p->name;
        r.category = p->category;
    }
    accesslog_record(&r);
    stats_transaction(strcmp(r.ev, "tunnel") == 0 ? STATS_TUNNEL : STATS_REQUEST, r.platform,
                      r.action, t->up, t->down);
}

void
conn_free_upstream(struct conn *c)
{
    if (c->ubev) {
        bufferevent_free(c->ubev);
        c->ubev = NULL;
    }
}

/* The single teardown. Safe to call from any callback; the conn itself is
 * freed from the timer once the current callback has returned. */
void
conn_close(struct conn *c, const char *reason)
{
    if (c->closed)
        return;
    if (c->t.active && c->t.reason == NULL)
        c->t.reason = reason;
    conn_txn_log(c);
    log_debug("conn %p closed: %s", (void *)c, reason);
    c->closed = 1;
    splicer_stop(c->spl); /* before its sockets close */
    if (c->gone_ev)
        event_del(c->gone_ev);
    conn_txn_reset(c);
    conn_free_upstream(c);
    if (c->cbev) {
        bufferevent_free(c->cbev);
        c->cbev = NULL;
    }
    event_del(c->timer);
    struct timeval zero = {0, 0};
    evtimer_add(c->timer, &zero);
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
    worker_conn_closed(c->w, c, (struct sockaddr *)&c->peer);
    event_free(c->timer);
    snapshot_release(c->snap);
    free(c);
}

/* Sends what is in the client output, then shuts down and lingers. */
void
conn_close_after_write(struct conn *c)
{
    c->state = CS_CLOSING;
    conn_free_upstream(c);
    conn_txn_log(c);
    c->linger_until = 0;
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    conn_arm(c, c->cfg->idle_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
        client_write_cb(c->cbev, c);
}

/* Answers with an error page and closes. Only before any response byte. */
void
conn_reply_error(struct conn *c, int status, const char *reason, const char *detail)
{
    char page[4096];
    if (c->t.active && c->t.reason == NULL)
        c->t.reason = reason;
    if (c->t.status != 0 || c->t.resp_head_done) { /* too late for a page */
        conn_close(c, reason);
        return;
    }
    size_t n = errpage_format(page, sizeof(page), status, detail, "");
    c->t.status = status;
    c->t.answered_here = 1;
    c->t.down += n;
    /* Unread request bytes must not reach anyone: drop them. */
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    c->t.up += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_write(c->cbev, page, n);
    conn_close_after_write(c);
}

/* Starts a transaction record for a refusal before any request was read. */
static void
refuse_early(struct conn *c, int status, const char *reason, const char *detail)
{
    c->t.active = 1;
    clock_gettime(CLOCK_MONOTONIC, &c->t.start);
    conn_reply_error(c, status, reason, detail);
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

struct conn *
conn_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t len, int over_client_limit)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->w = w;
    c->t.platform = -1;
    c->t.rule = -1;
    c->t.action = -1;
    c->snap = snapshot_acquire();
    c->cfg = c->snap->cfg;
    memcpy(&c->peer, sa, len);
    c->peerlen = len;
    c->timer = evtimer_new(w->base, timer_cb, c);
    c->cbev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
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
    w->nconns++;
    set_tcp_nodelay(fd);
    bufferevent_setcb(c->cbev, client_read_cb, client_write_cb, client_event_cb, c);
    tune_bev(c->cbev);
    conn_touch(c);
    c->state = CS_HEAD;
    if (!cidrset_match(&c->cfg->clients, sa)) {
        refuse_early(c, 403, "client-not-allowed",
                     "Your address is not allowed to use this proxy.");
        return c;
    }
    if (over_client_limit) {
        refuse_early(c, 429, "max-per-client",
                     "Too many connections from your address; try again shortly.");
        return c;
    }
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    conn_arm(c, c->cfg->header_timeout_ms);
    return c;
}

void
conn_drain(struct conn *c)
{
    c->draining = 1;
    if (c->closed)
        return;
    if (c->state == CS_HEAD && !c->t.active &&
        evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)
        conn_close(c, "shutdown");
}

void
conn_abort(struct conn *c, const char *reason)
{
    conn_close(c, reason);
}

/* --- request head -------------------------------------------------------- */

static char *
lower_dup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        s[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] + 32) : p[i];
    s[n] = '\0';
    return s;
}

static char *
span_dup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static int
is_local_name(const char *host)
{
    return strcmp(host, "socialgate.local") == 0;
}

/* For the log line of a refused head: the method, when the bytes start
 * with a token and a space. */
static void
note_method(struct txn *t, const uint8_t *p, size_t n)
{
    size_t ml = 0;
    while (ml < n && ml < sizeof(t->method) - 1 && p[ml] > 0x20 && p[ml] < 0x7f)
        ml++;
    if (ml < n && p[ml] == ' ')
        memcpy(t->method, p, ml);
}

/* Parses what the client input holds; on a whole head, starts the
 * transaction. */
void
conn_try_head(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return;
    if (!c->head_bytes_seen) {
        c->head_bytes_seen = 1;
        conn_arm(c, c->cfg->header_timeout_ms);
    }
    size_t max = (size_t)c->cfg->max_header_bytes;
    size_t n = avail < max + 1 ? avail : max + 1;
    int preauth = gate_preauth_limited(c);
    /* A head arriving in small pieces is parsed again only when a new line
     * ends (or a limit is crossed), not on every read: a client sending a
     * byte at a time costs one parse per line, not one per byte. */
    if (c->head_scanned > 0 && n > c->head_scanned && n <= max &&
        !(preauth && n > PREAUTH_HEAD_BYTES)) {
        struct evbuffer_ptr from;
        if (evbuffer_ptr_set(in, &from, c->head_scanned, EVBUFFER_PTR_SET) == 0 &&
            evbuffer_search(in, "\n", 1, &from).pos < 0) {
            c->head_scanned = n;
            return;
        }
    }
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
    /* h is this thread's scratch head: dropped (h = NULL) before anything
     * that may parse again (conn_scratch_head). */
    struct http1_head *h = conn_scratch_head();
    if (p == NULL) {
        conn_close(c, "out-of-memory");
        return;
    }
    enum http1_status st = http1_parse_request(p, n, max, h);
    c->head_scanned = st == HTTP1_PARTIAL ? n : 0;
    struct txn *t = &c->t;
    if (preauth &&
        ((st == HTTP1_PARTIAL && n > PREAUTH_HEAD_BYTES) ||
         (st == HTTP1_OK && (h->head_len > PREAUTH_HEAD_BYTES || h->nheaders > PREAUTH_FIELDS))) &&
        !gate_names_known_user(c, h)) {
        /* Anonymous, or an unknown user: a 407 now, and the rest of the
         * head is never read. */
        h = NULL;
        c->head_scanned = 0;
        t->active = 1;
        clock_gettime(CLOCK_MONOTONIC, &t->start);
        t->up = n;
        t->reason = "head-too-large-before-auth";
        note_method(t, p, n);
        char page[4096];
        conn_reply_page(c, page, local_auth_page(c->snap, page, sizeof(page)), 407, NULL);
        return;
    }
    if (st == HTTP1_PARTIAL) {
        return;
    }
    t->active = 1;
    clock_gettime(CLOCK_MONOTONIC, &t->start);
    if (st != HTTP1_OK) {
        note_method(t, p, n);
        h = NULL;
        conn_reply_error(c, http1_error_code(st), http1_strerror(st),
                         "The request could not be understood.");
        return;
    }
    size_t ml = h->method.len < sizeof(t->method) - 1 ? h->method.len : sizeof(t->method) - 1;
    memcpy(t->method, h->method.p, ml);
    t->up = h->head_len;
    t->client_minor = h->minor;
    t->client_close = (h->flags & HTTP1_F_CONN_CLOSE) || h->minor == 0 || c->draining;
    t->is_connect = h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0;
    t->is_head = h->method.len == 4 && memcmp(h->method.p, "HEAD", 4) == 0;

    struct http1_target tg;
    st = http1_parse_target(&h->target, t->is_connect, &tg);
    if (st == HTTP1_OK && (tg.form == HTTP1_FORM_ABSOLUTE || tg.form == HTTP1_FORM_AUTHORITY)) {
        t->host = lower_dup(tg.host.p, tg.host.len);
        t->port = tg.port;
        t->path =
            tg.form == HTTP1_FORM_ABSOLUTE
                ? (tg.path_only_len ? span_dup(tg.path.p, tg.path_only_len) : span_dup("/", 1))
                : NULL;
    } else if (st == HTTP1_OK && tg.form == HTTP1_FORM_ORIGIN) {
        t->path = span_dup(tg.path.p, tg.path_only_len ? tg.path_only_len : 1);
        if (h->host.len) {
            struct http1_target ht;
            if (http1_parse_authority(h->host.p, h->host.len, 0, 80, &ht) == HTTP1_OK)
                t->host = lower_dup(ht.host.p, ht.host.len);
        }
    }
    if (st != HTTP1_OK) {
        const char *why = st == HTTP1_ERR_SCHEME ? "Only http:// URLs can be requested this way; "
                                                   "https goes through CONNECT."
                                                 : "The request target is malformed.";
        h = NULL;
        conn_reply_error(c, 400, http1_strerror(st), why);
        return;
    }
    if (h->minor == 1 && h->host.p == NULL && !t->is_connect) {
        /* RFC 9112 3.2: an HTTP/1.1 request without Host is refused, whatever
         * its target says (CONNECT is let through: its target is the host). */
        h = NULL;
        conn_reply_error(c, 400, "missing-host", "An HTTP/1.1 request needs a Host header field.");
        return;
    }
    gate_read_credentials(c, h);
    if ((tg.form == HTTP1_FORM_ORIGIN || tg.form == HTTP1_FORM_ABSOLUTE) && t->host &&
        is_local_name(t->host)) {
        /* socialgate.local: answered here, after identity is known */
        t->local = 1;
        if (t->port == 0)
            t->port = 80;
        t->target = tg.path.len ? span_dup(tg.path.p, tg.path.len) : span_dup("/", 1);
        int body = h->body != HTTP1_BODY_NONE;
        evbuffer_drain(in, h->head_len);
        h = NULL;
        if (body) {
            conn_reply_error(c, 400, "local-body", "socialgate's own pages take no request body.");
            return;
        }
        process_head(c);
        return;
    }
    if (tg.form == HTTP1_FORM_ORIGIN || tg.form == HTTP1_FORM_ASTERISK) {
        h = NULL;
        conn_reply_error(c, 400, "not-a-proxy-request",
                         "This is a proxy: configure your browser to use it, "
                         "or request an absolute http:// URL.");
        return;
    }
    if (t->host == NULL || (tg.form == HTTP1_FORM_ABSOLUTE && t->path == NULL)) {
        h = NULL;
        conn_close(c, "out-of-memory");
        return;
    }
    if (forward_via_loops(h)) {
        h = NULL;
        conn_reply_error(c, 508, "forwarding-loop", "This request has already passed this proxy.");
        return;
    }
    if (t->is_connect) {
        evbuffer_drain(in, h->head_len);
        h = NULL;
        if (!config_connect_port_allowed(c->cfg, t->port)) {
            conn_reply_error(c, 403, "connect-port-denied",
                             "Tunnels are only allowed to the configured ports.");
            return;
        }
        process_head(c);
        return;
    }
    {
        size_t ul = strlen(t->host) + tg.path.len + 32;
        if ((t->url = malloc(ul)) != NULL)
            snprintf(t->url, ul, "http://%s%s%s:%u%.*s", tg.host_is_ipv6 ? "[" : "", t->host,
                     tg.host_is_ipv6 ? "]" : "", t->port, (int)tg.path.len, tg.path.p);
    }
    t->upgrade = (h->flags & HTTP1_F_UPGRADE) && (h->flags & HTTP1_F_CONN_UPGRADE) && h->minor == 1;
    t->req_body = h->body;
    t->req_remain = h->content_length;
    t->req_done = h->body == HTTP1_BODY_NONE;
    forward_build_head(c, h, &tg);
    evbuffer_drain(in, h->head_len);
    h = NULL;
    if (t->uhead == NULL) {
        conn_close(c, "out-of-memory");
        return;
    }
    snprintf(t->poolkey, sizeof(t->poolkey), "%s:%u", t->host, t->port);
    process_head(c);
}

/* Writes a whole prepared response and closes after it. */
void
conn_reply_page(struct conn *c, const char *page, size_t n, int status, const char *reason)
{
    if (n == 0) {
        conn_close(c, "page-too-large");
        return;
    }
    c->t.status = status;
    c->t.answered_here = 1;
    c->t.down += n;
    if (reason && c->t.reason == NULL)
        c->t.reason = reason;
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_write(c->cbev, page, n);
    conn_close_after_write(c);
}

/* --- the upstream: after the gate allowed (gate.c) ----------------------- */

/* Fast answers and connects need no watching (it costs two epoll_ctl calls
 * a request): the timer arms the watch if they take longer than this. */
#define CONN_WATCH_AFTER_MS 500

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
    if (c->closed) {
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    if (result != 0 || res == NULL) {
        if (res)
            evutil_freeaddrinfo(res);
        stats_count(STATS_DNS_FAILURES);
        char msg[512];
        snprintf(msg, sizeof(msg), "The name %s could not be resolved (%s).", c->t.host,
                 evutil_gai_strerror(result));
        conn_reply_error(c, 502, "dns-failed", msg);
        return;
    }
    /* Keep only allowed destinations. */
    struct evutil_addrinfo *keep = NULL, **tail = &keep, *next;
    int blocked = 0;
    for (struct evutil_addrinfo *ai = res; ai; ai = next) {
        next = ai->ai_next;
        ai->ai_next = NULL;
        if (cidrset_match(&c->cfg->block_destinations, ai->ai_addr)) {
            blocked++;
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
    c->state = CS_CONNECTING;
    connect_next(c);
}

void
conn_resolve(struct conn *c)
{
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    char port[8];
    snprintf(port, sizeof(port), "%u", c->t.port);
    c->state = CS_RESOLVING;
    /* The timer first arms the watch for a client that leaves (after
     * CONN_WATCH_AFTER_MS), then ends the wait at connect_timeout. */
    uint64_t ct = c->cfg->connect_timeout_ms;
    c->connect_deadline = now_ms(c) + ct;
    conn_arm(c, ct < CONN_WATCH_AFTER_MS ? ct : CONN_WATCH_AFTER_MS);
    /* The callback may run before this returns (literals, hosts file). */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(c->w->dns, c->t.host, port, &hints, dns_cb, c);
    if (req != NULL && !c->closed && c->state == CS_RESOLVING)
        c->t.dnsreq = req;
}

static int
is_own_listener(struct conn *c, const struct sockaddr *sa)
{
    for (size_t i = 0; i < c->cfg->nlisten; i++) {
        const struct sockaddr *l = (const struct sockaddr *)&c->cfg->listen[i].ss;
        if (addr_equal(l, sa))
            return 1;
        if (addr_port(l) == addr_port(sa) && l->sa_family == AF_INET6 &&
            IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)l)->sin6_addr))
            return 1;
    }
    return 0;
}

static void
connect_next(struct conn *c)
{
    struct txn *t = &c->t;
    while (t->ai_next) {
        struct evutil_addrinfo *ai = t->ai_next;
        t->ai_next = ai->ai_next;
        if (is_own_listener(c, ai->ai_addr)) {
            conn_reply_error(c, 508, "forwarding-loop", "The request is addressed to this proxy.");
            return;
        }
        c->ubev = bufferevent_socket_new(c->w->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (c->ubev == NULL)
            break;
        bufferevent_setcb(c->ubev, upstream_read_cb, upstream_write_cb, upstream_event_cb, c);
        tune_bev(c->ubev);
        if (bufferevent_socket_connect(c->ubev, ai->ai_addr, (int)ai->ai_addrlen) == 0)
            return; /* BEV_EVENT_CONNECTED or an error follows */
        t->last_errno = errno;
        conn_free_upstream(c);
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "Could not connect to %s port %u (%s).", t->host, t->port,
             t->last_errno ? strerror(t->last_errno) : "no address");
    stats_count(STATS_UPSTREAM_ERRORS);
    conn_reply_error(c, 502, "connect-failed", msg);
}

/* While a request waits for its answer the client is not read (its next
 * request waits its turn), so a client that leaves would go unnoticed until
 * the origin answers or times out. The kernel tells us (EPOLLRDHUP). */
static void
client_gone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->closed || c->t.status != 0 ||
        (c->state != CS_FORWARD && c->state != CS_RESOLVING && c->state != CS_CONNECTING))
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
conn_await_answer(struct conn *c)
{
    uint64_t idle = c->cfg->idle_timeout_ms;
    conn_arm(c, idle < CONN_WATCH_AFTER_MS ? idle : CONN_WATCH_AFTER_MS);
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
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
        return; /* the next request is already here: nothing to learn */
    if (c->gone_ev == NULL)
        c->gone_ev = event_new(c->w->base, bufferevent_getfd(c->cbev),
                               EV_READ | EV_CLOSED | EV_PERSIST, client_gone_cb, c);
    if (c->gone_ev)
        event_add(c->gone_ev, NULL);
}

/* The upstream is connected (fresh or from the pool). */
static void
upstream_ready(struct conn *c)
{
    struct txn *t = &c->t;
    t->forwarded = 1;
    if (!t->reused)
        set_tcp_nodelay(bufferevent_getfd(c->ubev)); /* a pooled one has it */
    conn_touch(c);
    conn_arm(c, c->cfg->idle_timeout_ms);
    if (t->ai) {
        evutil_freeaddrinfo(t->ai);
        t->ai = t->ai_next = NULL;
    }
    if (t->is_connect) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        conn_watch_client(c, 0); /* the client is read from now on */
        c->state = CS_TUNNEL;
        t->status = 200;
        t->down += sizeof(ok) - 1;
        bufferevent_write(c->cbev, ok, sizeof(ok) - 1);
        t->peek = 1;
        bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
        bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
        if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
            client_read_cb(c->cbev, c);
        return;
    }
    c->state = CS_FORWARD;
    /* A bodiless request sent on a pooled connection keeps its head until
     * the answer starts, to be sent again if the origin had closed it. */
    if (t->reused && t->req_body == HTTP1_BODY_NONE) {
        size_t n = evbuffer_get_length(t->uhead);
        bufferevent_write(c->ubev, evbuffer_pullup(t->uhead, (ev_ssize_t)n), n);
    } else {
        bufferevent_write_buffer(c->ubev, t->uhead);
        evbuffer_free(t->uhead);
        t->uhead = NULL;
    }
    bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    forward_pump_request_body(c);
}

static void
process_head(struct conn *c)
{
    /* While the upstream is prepared, the client's next bytes wait. */
    bufferevent_disable(c->cbev, EV_READ);
    if (gate_decide(c) != 0)
        return;
    conn_proceed(c);
}

/* The decision allows: on to the upstream. */
void
conn_proceed(struct conn *c)
{
    struct txn *t = &c->t;
    if (!t->is_connect) {
        struct bufferevent *pooled = worker_pool_get(c->w, t->poolkey);
        if (pooled) {
            c->ubev = pooled;
            t->reused = 1;
            bufferevent_setcb(c->ubev, upstream_read_cb, upstream_write_cb, upstream_event_cb, c);
            bufferevent_set_timeouts(c->ubev, NULL, NULL);
            upstream_ready(c);
            return;
        }
    }
    conn_resolve(c);
}

/* --- callbacks ----------------------------------------------------------- */

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    conn_touch(c);
    switch (c->state) {
    case CS_HEAD:
        conn_try_head(c);
        break;
    case CS_FORWARD:
        forward_pump_request_body(c);
        break;
    case CS_TUNNEL:
        if (c->t.peek && tunnel_peek_hello(c))
            break;
        tunnel_relay(c, bev, c->ubev);
        tunnel_try_splice(c);
        break;
    case CS_CLOSING: {
        struct evbuffer *in = bufferevent_get_input(bev);
        c->lingered += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->lingered > CONN_LINGER_BYTES)
            conn_close(c, NULL);
        break;
    }
    default:
        /* resolving, connecting: reading is off; nothing to do */
        break;
    }
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    conn_touch(c);
    switch (c->state) {
    case CS_FORWARD:
        if (c->ubev && c->spl == NULL) {
            bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
            bufferevent_enable(c->ubev, EV_READ);
            forward_try_splice(c);
        }
        break;
    case CS_TUNNEL:
        tunnel_writable(c, c->cbev);
        break;
    case CS_CLOSING:
        if (c->linger_until == 0 && evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0) {
            shutdown(bufferevent_getfd(c->cbev), SHUT_WR);
            c->linger_until = now_ms(c) + CONN_LINGER_MS;
            conn_arm(c, CONN_LINGER_MS);
        }
        break;
    default:
        break;
    }
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (c->state == CS_TUNNEL && (what & BEV_EVENT_EOF)) {
        tunnel_eof(c, c->cbev);
        return;
    }
    if (c->state == CS_HEAD && !c->t.active &&
        evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0) {
        conn_close(c, NULL); /* idle keep-alive connection closed by the client */
        return;
    }
    if (c->state == CS_CLOSING) {
        conn_close(c, NULL);
        return;
    }
    if (!c->t.active) {
        c->t.active = 1;
        clock_gettime(CLOCK_MONOTONIC, &c->t.start);
    }
    conn_close(c, (what & BEV_EVENT_EOF) ? "client-closed" : "client-error");
}

static void
upstream_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    conn_touch(c);
    if (c->state == CS_TUNNEL) {
        tunnel_relay(c, bev, c->cbev);
        return;
    }
    if (c->state != CS_FORWARD)
        return;
    if (!c->t.resp_head_done)
        forward_on_response_head(c);
    else
        forward_pump_response(c);
}

static void
upstream_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    conn_touch(c);
    if (c->state == CS_TUNNEL) {
        tunnel_writable(c, c->ubev);
    } else if (c->state == CS_FORWARD && !c->t.req_done) {
        bufferevent_setwatermark(c->ubev, EV_WRITE, 0, 0);
        forward_pump_request_body(c);
    }
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct txn *t = &c->t;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        upstream_ready(c);
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    if (c->state == CS_CONNECTING) {
        t->last_errno = err;
        conn_free_upstream(c);
        connect_next(c);
        return;
    }
    if (c->state == CS_TUNNEL && (what & BEV_EVENT_EOF)) {
        tunnel_eof(c, c->ubev);
        return;
    }
    if (c->state == CS_FORWARD) {
        if ((what & BEV_EVENT_EOF) && t->resp_head_done && t->resp_body == HTTP1_BODY_CLOSE) {
            forward_pump_response(c);
            if (c->closed || c->state != CS_FORWARD)
                return;
            t->resp_done = 1;
            conn_free_upstream(c);
            forward_txn_done(c);
            return;
        }
        if (!t->resp_head_done) {
            if (forward_retry_fresh(c))
                return;
            conn_reply_error(c, 502, "upstream-closed",
                             "The server closed the connection without answering.");
            return;
        }
        conn_close(c, "upstream-closed-mid-body");
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
    uint64_t now = now_ms(c), idle = c->cfg->idle_timeout_ms;
    switch (c->state) {
    case CS_HEAD:
        if (c->head_bytes_seen)
            conn_reply_error(c, 408, "header-timeout", "The request head took too long to arrive.");
        else
            conn_close(c, NULL); /* idle: close quietly */
        break;
    case CS_DECIDING:
        conn_reply_error(c, 503, "auth-timeout", "The password check took too long.");
        break;
    case CS_RESOLVING:
    case CS_CONNECTING: {
        if (now < c->connect_deadline) {
            /* A slow connect: from now on notice a client that leaves. */
            if (!c->watching) {
                c->watching = 1;
                conn_watch_client(c, 1);
            }
            conn_arm(c, c->connect_deadline - now);
            break;
        }
        char msg[512];
        snprintf(msg, sizeof(msg), "No connection to %s port %u within the connect timeout.",
                 c->t.host, c->t.port);
        stats_count(STATS_UPSTREAM_ERRORS);
        conn_reply_error(c, 504, "connect-timeout", msg);
        break;
    }
    case CS_FORWARD:
    case CS_TUNNEL:
        if (c->state == CS_FORWARD && c->t.req_done && !c->t.resp_head_done && !c->watching) {
            /* A slow answer: from now on notice a client that leaves. */
            c->watching = 1;
            conn_watch_client(c, 1);
        }
        if (now - c->last_active < idle) {
            conn_arm(c, idle - (now - c->last_active));
            break;
        }
        if (c->state == CS_FORWARD && !c->t.resp_head_done) {
            stats_count(STATS_UPSTREAM_ERRORS);
            conn_reply_error(c, 504, "upstream-timeout", "The server did not answer in time.");
        } else
            conn_close(c, "idle-timeout");
        break;
    case CS_CLOSING:
        conn_close(c, NULL);
        break;
    }
}
