#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>

#include "accesslog.h"
#include "authpool.h"
#include "decision.h"
#include "local.h"
#include "timewin.h"
#include "usage.h"
#include "catalog.h"
#include "config.h"
#include "rules.h"
#include "sni.h"
#include "splice.h"
#include "errpage.h"
#include "htpasswd.h"
#include "http1.h"
#include "log.h"
#include "snapshot.h"
#include "stats.h"
#include "util/addr.h"
#include "worker.h"

/* A side's output above this stops reading from the other side until it
 * drains to half (backpressure: a transfer's memory stays bounded whatever
 * the speeds of the two peers). */
#define CONN_MAX_BUFFER (256 * 1024)
/* After a final response with Connection: close, unread client bytes are
 * read and dropped for this long so the response is not lost to a reset. */
#define CONN_LINGER_MS 2000
#define CONN_LINGER_BYTES (256 * 1024)

enum cstate {
    CS_HEAD,       /* waiting for or reading a request head */
    CS_RESOLVING,  /* DNS for the upstream */
    CS_DECIDING,   /* waiting for a password check */
    CS_CONNECTING, /* TCP connect to the upstream */
    CS_FORWARD,    /* request and response in flight */
    CS_TUNNEL,     /* CONNECT or upgraded: bytes relayed both ways */
    CS_CLOSING,    /* final bytes going out, then linger */
};

struct txn {
    int active;
    char method[24];
    char *host;        /* owned, lower-case */
    uint16_t port;
    char *path;        /* owned, path without query (for the log) */
    int is_connect, is_head, upgrade;
    int client_minor;
    int client_close;  /* close the client connection after this response */
    struct evbuffer *uhead; /* upstream head not yet sent (owned) */
    char poolkey[280];
    int reused;        /* upstream came from the pool */
    int retried;
    int status;        /* status the client saw (0: none yet) */
    uint64_t up, down; /* bytes from / to the client */
    struct timespec start;
    const char *reason;

    enum http1_body req_body;
    uint64_t req_remain;
    struct http1_chunked req_ch;
    int req_done;

    int resp_head_done;
    int resp_minor, resp_conn_close;
    enum http1_body resp_body;
    uint64_t resp_remain;
    struct http1_chunked resp_ch;
    int dechunk;
    int resp_done;
    uint64_t resp_bytes; /* from the upstream */

    int platform;      /* catalog index, -1: unclassified */
    char *sni;         /* owned, from the ClientHello */
    int peek;          /* tunnel: waiting for the client's first bytes */
    int mismatch;      /* CONNECT host and SNI classify differently */
    int ech;

    char *user;        /* owned: the name sent in Proxy-Authorization */
    char *pass;        /* owned, wiped when freed */
    int auth;          /* 0 none sent, 1 verified, -1 wrong */
    int decoy;         /* an unknown user: checked against the decoy hash */
    struct auth_job *auth_job;
    int local;         /* a request for socialgate.local itself */
    char *url;         /* owned: the absolute URL asked for (warn pages) */
    char *target;      /* owned: path and query (local pages) */
    int rule;          /* deciding rule, -1: none */
    int action;        /* enum policy_action, -1: not decided */
    char roles[512];
    char identity[300];
    int64_t last_minute; /* last clock minute counted for the quota */
    int answered_here; /* the response came from socialgate itself */
    int forwarded;     /* an upstream connection was used */

    struct evutil_addrinfo *ai, *ai_next; /* owned list and the next to try */
    struct evdns_getaddrinfo_request *dnsreq;
    int last_errno;
};

struct conn {
    TAILQ_ENTRY(conn) link;
    struct worker *w;
    struct snapshot *snap;
    const struct config *cfg;
    struct bufferevent *cbev, *ubev;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct event *timer;
    enum cstate state;
    int closed;           /* torn down; freed from the timer */
    int draining;
    int head_bytes_seen;  /* for the header timeout */
    uint64_t last_active; /* ms, monotonic */
    uint64_t linger_until;
    size_t lingered;
    int cli_eof, up_eof;  /* tunnel half-closes */
    int cli_shut, up_shut;
    struct splicer *spl;  /* the tunnel relays in the kernel */
    struct event *gone_ev; /* EV_CLOSED on the client while its reading is off */
    int watching;          /* gone_ev is armed for this request */
    uint64_t connect_deadline; /* ms, monotonic: the end of DNS + connect */
    size_t head_scanned;   /* bytes of a partial head parsed so far */
    struct txn t;
};

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void upstream_read_cb(struct bufferevent *bev, void *arg);
static void upstream_write_cb(struct bufferevent *bev, void *arg);
static void upstream_event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void process_head(struct conn *c);
static void connect_next(struct conn *c);
static void pump_request_body(struct conn *c);
static void pump_response(struct conn *c);
static void watch_client(struct conn *c, int on);
static void await_answer(struct conn *c);
static void response_try_splice(struct conn *c);
static void txn_done(struct conn *c);
static void relay(struct conn *c, struct bufferevent *from, struct bufferevent *to);
static void usage_who(struct conn *c, struct usage_row *row, char *ip, size_t ipsize);
static void reply_page(struct conn *c, const char *page, size_t n, int status,
                       const char *reason);

/* localtime_r takes glibc's time-zone lock: once a second per thread is
 * enough for decisions, quotas and usage. */
static void
local_tm(time_t t, struct tm *out)
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

static void
touch(struct conn *c)
{
    c->last_active = now_ms(c);
}

static void
arm(struct conn *c, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

static void
txn_reset(struct conn *c)
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
static void
txn_log(struct conn *c)
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
        usage_who(c, &row, ip, sizeof(ip));
        struct timeval tv;
        event_base_gettimeofday_cached(c->w->base, &tv);
        time_t now = tv.tv_sec;
        struct tm local;
        local_tm(now, &local);
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

static void
free_upstream(struct conn *c)
{
    if (c->ubev) {
        bufferevent_free(c->ubev);
        c->ubev = NULL;
    }
}

/* The single teardown. Safe to call from any callback; the conn itself is
 * freed from the timer once the current callback has returned. */
static void
conn_close(struct conn *c, const char *reason)
{
    if (c->closed)
        return;
    if (c->t.active && c->t.reason == NULL)
        c->t.reason = reason;
    txn_log(c);
    log_debug("conn %p closed: %s", (void *)c, reason);
    c->closed = 1;
    splicer_stop(c->spl); /* before its sockets close */
    if (c->gone_ev)
        event_del(c->gone_ev);
    txn_reset(c);
    free_upstream(c);
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
static void
close_after_write(struct conn *c)
{
    c->state = CS_CLOSING;
    free_upstream(c);
    txn_log(c);
    c->linger_until = 0;
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    arm(c, c->cfg->idle_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
        client_write_cb(c->cbev, c);
}

/* Answers with an error page and closes. Only before any response byte. */
static void
reply_error(struct conn *c, int status, const char *reason, const char *detail)
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
    close_after_write(c);
}

/* Starts a transaction record for a refusal before any request was read. */
static void
refuse_early(struct conn *c, int status, const char *reason, const char *detail)
{
    c->t.active = 1;
    clock_gettime(CLOCK_MONOTONIC, &c->t.start);
    reply_error(c, status, reason, detail);
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
conn_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t len,
         int over_client_limit)
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
    touch(c);
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
    arm(c, c->cfg->header_timeout_ms);
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

/* True when an incoming Via names this very proxy: a forwarding loop. */
static int
via_loops(const struct http1_head *h)
{
    const char *me = worker_via();
    size_t n = strlen(me);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "via"))
            continue;
        for (size_t k = 0; k + n <= f->value.len; k++)
            if (memcmp(f->value.p + k, me, n) == 0)
                return 1;
    }
    return 0;
}

/* Builds the head sent upstream: origin-form, a correct Host, hop-by-hop
 * fields removed (RFC 9110 7.6.1), Via added. */
static void
build_upstream_head(struct conn *c, const struct http1_head *h, const struct http1_target *tg)
{
    struct evbuffer *b = evbuffer_new();
    struct txn *t = &c->t;
    if (b == NULL)
        return;
    const char *path = tg->path.len ? tg->path.p : "/";
    size_t plen = tg->path.len ? tg->path.len : 1;
    evbuffer_add_printf(b, "%.*s %.*s HTTP/1.1\r\n", (int)h->method.len, h->method.p, (int)plen,
                        path);
    if (tg->host_is_ipv6)
        evbuffer_add_printf(b, "Host: [%s]", t->host);
    else
        evbuffer_add_printf(b, "Host: %s", t->host);
    if (t->port != 80)
        evbuffer_add_printf(b, ":%u", t->port);
    evbuffer_add(b, "\r\n", 2);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        /* Content-Length is written once below, as the value parsed: no
         * Connection option removes it, and identical duplicates ("5, 5")
         * reach the origin as one value (RFC 9112 6.3). */
        if (http1_name_is(&f->name, "host") || http1_name_is(&f->name, "content-length"))
            continue;
        if (http1_is_hop_by_hop(&f->name) || http1_connection_names(h, &f->name)) {
            if (!(t->upgrade && http1_name_is(&f->name, "upgrade")))
                continue;
        }
        evbuffer_add(b, f->name.p, f->name.len);
        evbuffer_add(b, ": ", 2);
        evbuffer_add(b, f->value.p, f->value.len);
        evbuffer_add(b, "\r\n", 2);
    }
    if (h->flags & HTTP1_F_HAS_CL)
        evbuffer_add_printf(b, "Content-Length: %llu\r\n", (unsigned long long)h->content_length);
    if (h->body == HTTP1_BODY_CHUNKED)
        evbuffer_add(b, "Transfer-Encoding: chunked\r\n", 28);
    if (t->upgrade)
        evbuffer_add(b, "Connection: Upgrade\r\n", 21);
    evbuffer_add(b, worker_via_header(), worker_via_header_len());
    evbuffer_add(b, "\r\n", 2);
    t->uhead = b;
}

static int
is_local_name(const char *host)
{
    return strcmp(host, "socialgate.local") == 0;
}

/* Keeps the Proxy-Authorization credentials for the decision; the field
 * itself is hop-by-hop and never forwarded. A malformed one counts as wrong
 * credentials. Without [auth] htpasswd they are ignored. */
static void
read_credentials(struct conn *c, const struct http1_head *h)
{
    if (c->snap->users == NULL)
        return; /* no [auth]: credentials mean nothing here */
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "proxy-authorization"))
            continue;
        char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
        if (htpasswd_parse_basic(f->value.p, f->value.len, user, sizeof(user), pass,
                                 sizeof(pass)) < 0) {
            c->t.auth = -1;
            return;
        }
        c->t.user = strdup(user);
        c->t.pass = strdup(pass);
        OPENSSL_cleanse(pass, sizeof(pass));
        if (c->t.user == NULL || c->t.pass == NULL)
            c->t.auth = -1;
        return;
    }
}

/* With [auth] required = yes, a head that carries no credentials of a
 * known user is held to these limits instead of max_header_bytes and
 * HTTP1_MAX_HEADERS: all it can earn is a 407. */
#define PREAUTH_HEAD_BYTES 16384
#define PREAUTH_FIELDS 64

static int
preauth_limited(const struct conn *c)
{
    return c->snap->users != NULL && c->cfg->auth_required &&
           (size_t)c->cfg->max_header_bytes > PREAUTH_HEAD_BYTES;
}

/* Whether the field lines parsed so far hold Basic credentials naming a
 * user of the htpasswd file (the password is checked later). */
static int
names_known_user(const struct conn *c, const struct http1_head *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "proxy-authorization"))
            continue;
        char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
        int ok = htpasswd_parse_basic(f->value.p, f->value.len, user, sizeof(user), pass,
                                      sizeof(pass)) == 0 &&
                 htpasswd_hash(c->snap->users, user) != NULL;
        OPENSSL_cleanse(pass, sizeof(pass));
        return ok;
    }
    return 0;
}

/* Parses what the client input holds; on a whole head, starts the
 * transaction. */
static void
try_head(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return;
    if (!c->head_bytes_seen) {
        c->head_bytes_seen = 1;
        arm(c, c->cfg->header_timeout_ms);
    }
    size_t max = (size_t)c->cfg->max_header_bytes;
    size_t n = avail < max + 1 ? avail : max + 1;
    int preauth = preauth_limited(c);
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
    struct http1_head *h = malloc(sizeof(*h));
    if (p == NULL || h == NULL) {
        free(h);
        conn_close(c, "out-of-memory");
        return;
    }
    enum http1_status st = http1_parse_request(p, n, max, h);
    c->head_scanned = st == HTTP1_PARTIAL ? n : 0;
    struct txn *t = &c->t;
    if (preauth &&
        ((st == HTTP1_PARTIAL && n > PREAUTH_HEAD_BYTES) ||
         (st == HTTP1_OK && (h->head_len > PREAUTH_HEAD_BYTES || h->nheaders > PREAUTH_FIELDS))) &&
        !names_known_user(c, h)) {
        /* Anonymous, or an unknown user: a 407 now, and the rest of the
         * head is never read. */
        free(h);
        c->head_scanned = 0;
        t->active = 1;
        clock_gettime(CLOCK_MONOTONIC, &t->start);
        t->up = n;
        t->reason = "head-too-large-before-auth";
        size_t ml = 0;
        while (ml < n && ml < sizeof(t->method) - 1 && p[ml] > 0x20 && p[ml] < 0x7f)
            ml++;
        if (ml < n && p[ml] == ' ')
            memcpy(t->method, p, ml);
        char page[4096];
        reply_page(c, page, local_auth_page(c->snap, page, sizeof(page)), 407, NULL);
        return;
    }
    if (st == HTTP1_PARTIAL) {
        free(h);
        return;
    }
    t->active = 1;
    clock_gettime(CLOCK_MONOTONIC, &t->start);
    if (st != HTTP1_OK) {
        /* Log what can be told of the request line. */
        size_t ml = 0;
        while (ml < n && ml < sizeof(t->method) - 1 && p[ml] > 0x20 && p[ml] < 0x7f)
            ml++;
        if (ml < n && p[ml] == ' ')
            memcpy(t->method, p, ml);
        free(h);
        reply_error(c, http1_error_code(st), http1_strerror(st),
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
        t->path = tg.form == HTTP1_FORM_ABSOLUTE
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
        const char *why = st == HTTP1_ERR_SCHEME
                              ? "Only http:// URLs can be requested this way; "
                                "https goes through CONNECT."
                              : "The request target is malformed.";
        free(h);
        reply_error(c, 400, http1_strerror(st), why);
        return;
    }
    if (h->minor == 1 && h->host.p == NULL && !t->is_connect) {
        /* RFC 9112 3.2: an HTTP/1.1 request without Host is refused, whatever
         * its target says (CONNECT is let through: its target is the host). */
        free(h);
        reply_error(c, 400, "missing-host", "An HTTP/1.1 request needs a Host header field.");
        return;
    }
    read_credentials(c, h);
    if ((tg.form == HTTP1_FORM_ORIGIN || tg.form == HTTP1_FORM_ABSOLUTE) && t->host &&
        is_local_name(t->host)) {
        /* socialgate.local: answered here, after identity is known */
        t->local = 1;
        if (t->port == 0)
            t->port = 80;
        t->target = tg.path.len ? span_dup(tg.path.p, tg.path.len) : span_dup("/", 1);
        int body = h->body != HTTP1_BODY_NONE;
        evbuffer_drain(in, h->head_len);
        free(h);
        if (body) {
            reply_error(c, 400, "local-body", "socialgate's own pages take no request body.");
            return;
        }
        process_head(c);
        return;
    }
    if (tg.form == HTTP1_FORM_ORIGIN || tg.form == HTTP1_FORM_ASTERISK) {
        free(h);
        reply_error(c, 400, "not-a-proxy-request",
                    "This is a proxy: configure your browser to use it, "
                    "or request an absolute http:// URL.");
        return;
    }
    if (t->host == NULL || (tg.form == HTTP1_FORM_ABSOLUTE && t->path == NULL)) {
        free(h);
        conn_close(c, "out-of-memory");
        return;
    }
    if (via_loops(h)) {
        free(h);
        reply_error(c, 508, "forwarding-loop", "This request has already passed this proxy.");
        return;
    }
    if (t->is_connect) {
        evbuffer_drain(in, h->head_len);
        free(h);
        if (!config_connect_port_allowed(c->cfg, t->port)) {
            reply_error(c, 403, "connect-port-denied",
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
    t->upgrade = (h->flags & HTTP1_F_UPGRADE) && (h->flags & HTTP1_F_CONN_UPGRADE) &&
                 h->minor == 1;
    t->req_body = h->body;
    t->req_remain = h->content_length;
    t->req_done = h->body == HTTP1_BODY_NONE;
    build_upstream_head(c, h, &tg);
    evbuffer_drain(in, h->head_len);
    free(h);
    if (t->uhead == NULL) {
        conn_close(c, "out-of-memory");
        return;
    }
    snprintf(t->poolkey, sizeof(t->poolkey), "%s:%u", t->host, t->port);
    process_head(c);
}

/* --- the decision point and the upstream ------------------------------ */

/* Every request and tunnel passes here after its head is parsed and before
 * any upstream connection: classification and policy hook in here. */
/* Writes a whole prepared response and closes after it. */
static void
reply_page(struct conn *c, const char *page, size_t n, int status, const char *reason)
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
    close_after_write(c);
}

static void
reply_auth(struct conn *c)
{
    if (c->t.auth < 0)
        stats_count(STATS_AUTH_FAILURES);
    char page[4096];
    reply_page(c, page, local_auth_page(c->snap, page, sizeof(page)), 407, NULL);
}

static void proceed(struct conn *c);

/* The policy part of the decision, once the identity is settled. Returns
 * 0 to go on, 1 when it answered. */
static int
finish_decision(struct conn *c)
{
    struct txn *t = &c->t;
    const struct snapshot *snap = c->snap;
    if (t->auth < 0) {
        reply_auth(c);
        return 1;
    }
    const char *user = t->auth > 0 ? t->user : NULL;
    if (snap->users && c->cfg->auth_required && user == NULL) {
        t->reason = "auth-required";
        reply_auth(c);
        return 1;
    }
    time_t now = time(NULL);
    struct tm local;
    local_tm(now, &local);
    struct decision d;
    struct decision_in in = {
        .snap = snap,
        .user = user,
        .client = (const struct sockaddr *)&c->peer,
        .platform = t->platform,
        .method = t->is_connect ? NULL : t->method,
        .path = t->is_connect ? NULL : t->path,
        .path_len = t->path ? strlen(t->path) : 0,
        .local = &local,
    };
    if (t->local) {
        decision_identity(user, in.client, t->identity, sizeof(t->identity));
        struct policy_who who = {user, in.client, snap->groups};
        size_t nroles = policy_role_count(snap->rules->policy);
        uint8_t *held = calloc(nroles ? nroles : 1, 1);
        if (held) {
            policy_roles(snap->rules->policy, &who, held);
            policy_roles_text(snap->rules->policy, held, t->roles, sizeof(t->roles));
            free(held);
        }
        char page[16384];
        int status = 0;
        size_t n = local_answer(snap, t->identity, user, t->roles, t->target, now, &local, page,
                                sizeof(page), &status);
        reply_page(c, page, n, status, NULL);
        return 1;
    }
    decision_make(&in, &d);
    t->rule = d.rule;
    t->action = (int)d.action;
    snprintf(t->roles, sizeof(t->roles), "%s", d.roles);
    snprintf(t->identity, sizeof(t->identity), "%s", d.identity);
    if (d.action == POLICY_DENY) {
        /* An anonymous client may hold a role that allows it once signed in. */
        if (user == NULL && snap->users) {
            /* Not a denial yet: the client is asked who it is. */
            t->rule = -1;
            t->action = -1;
            t->reason = "auth-required";
            reply_auth(c);
            return 1;
        }
        char page[4096];
        reply_page(c, page, local_deny_page(snap, t->platform, d.rule, page, sizeof(page)), 403,
                   NULL);
        return 1;
    }
    if (d.action == POLICY_WARN && !t->is_connect) {
        const struct catalog_platform *p = catalog_platform(snap->rules->catalog, t->platform);
        if (!usage_continue_ok(t->identity, p ? p->name : "unclassified", (int64_t)now)) {
            char page[8192];
            reply_page(c, page,
                       local_warn_page(snap, t->platform, d.rule, t->url, page, sizeof(page)),
                       403, NULL);
            return 1;
        }
    }
    return 0;
}

static void
auth_done(void *arg, int ok)
{
    struct conn *c = arg;
    c->t.auth_job = NULL;
    if (c->closed)
        return;
    c->t.auth = ok && !c->t.decoy ? 1 : -1;
    if (finish_decision(c) == 0)
        proceed(c);
}

/* Every request and tunnel passes here after its head is parsed and before
 * any upstream connection: classification, identity, policy. Returns 0 to
 * go on now, 1 when it answered or will go on later (a password check). */
static int
decide(struct conn *c)
{
    struct txn *t = &c->t;
    struct catalog_match m;
    catalog_classify(c->snap->rules->catalog, t->host, strlen(t->host), &m);
    t->platform = m.platform;
    if (t->user && t->auth == 0) {
        const char *hash = c->snap->users ? htpasswd_hash(c->snap->users, t->user) : NULL;
        if (hash == NULL) {
            /* An unknown name costs a check too, whose result is ignored. */
            t->decoy = 1;
            hash = htpasswd_decoy_hash(c->snap->users);
        }
        if (hash == NULL) {
            t->auth = -1;
        } else if (!t->decoy && authpool_cached(t->user, t->pass, hash) == 1) {
            t->auth = 1;
        } else {
            t->auth_job = authpool_check(c->w->base, t->user, t->pass, hash, auth_done, c);
            if (t->auth_job) {
                c->state = CS_DECIDING;
                arm(c, c->cfg->connect_timeout_ms);
                return 1;
            }
            /* no pool: inline */
            t->auth = htpasswd_check_hash(hash, t->pass) && !t->decoy ? 1 : -1;
        }
    }
    return finish_decision(c);
}

/* The second decision of a tunnel, once the ClientHello was read: the SNI
 * is classified too; when it names another platform than the CONNECT host
 * (domain fronting) the log says so. Returns 0 to go on relaying. */
static int
decide_sni(struct conn *c, const struct sni_info *info)
{
    struct txn *t = &c->t;
    t->ech = info->ech;
    if (!info->has_sni)
        return 0;
    t->sni = strdup(info->sni);
    struct catalog_match m;
    catalog_classify(c->snap->rules->catalog, info->sni, strlen(info->sni), &m);
    if (m.platform == t->platform)
        return 0;
    /* Domain fronting, or a CONNECT to an address: decide for the SNI too;
     * the stricter decision wins and its platform is the one logged. */
    t->mismatch = 1;
    struct decision d;
    struct decision_in in = {
        .snap = c->snap,
        .user = t->auth > 0 ? t->user : NULL,
        .client = (const struct sockaddr *)&c->peer,
        .platform = m.platform,
    };
    decision_make(&in, &d);
    enum policy_action before = t->action < 0 ? POLICY_ALLOW : (enum policy_action)t->action;
    int stricter = policy_stricter(before, d.action) != before;
    /* Equally strict: the classified name is the better one to log. */
    if (stricter || (d.action == before && t->platform < 0)) {
        t->platform = m.platform;
        t->rule = d.rule;
        t->action = (int)d.action;
    }
    if (t->action == POLICY_DENY) {
        conn_close(c, "sni-denied"); /* 200 was sent: no page can be shown */
        return 1;
    }
    return 0;
}

static void
usage_who(struct conn *c, struct usage_row *row, char *ip, size_t ipsize)
{
    struct txn *t = &c->t;
    const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
    addr_format_ip((const struct sockaddr *)&c->peer, ip, ipsize);
    memset(row, 0, sizeof(*row));
    row->user = t->auth > 0 ? t->user : NULL;
    row->client = ip;
    row->roles = t->roles[0] && strcmp(t->roles, "-") != 0 ? t->roles : NULL;
    row->platform = p ? p->name : "unclassified";
    row->category = p ? p->category : NULL;
    const struct policy_rule *r =
        t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    row->quota_min = r ? r->quota_min : 0;
}

/* Once per connection and clock minute with traffic: counts the minute as
 * active for the identity on its platform, and for the deciding rule's
 * quota. A transfer whose quota ran out is decided again at its first
 * traffic in a new minute and closed unless another rule still allows it. */
static void
mark_active(struct conn *c)
{
    struct txn *t = &c->t;
    if (t->platform < 0 || t->action < 0)
        return;
    struct timeval tv;
    event_base_gettimeofday_cached(c->w->base, &tv);
    int64_t minute = (int64_t)tv.tv_sec / 60;
    if (minute == t->last_minute)
        return;
    t->last_minute = minute;
    time_t now = tv.tv_sec;
    struct tm local;
    local_tm(now, &local);
    const struct policy_rule *r =
        t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    if (r && r->quota_min) {
        int period = decision_period(r, &local);
        if (usage_quota_used(t->identity, r->name, period) >= r->quota_min) {
            struct decision d;
            struct decision_in in = {
                .snap = c->snap,
                .user = t->auth > 0 ? t->user : NULL,
                .client = (const struct sockaddr *)&c->peer,
                .platform = t->platform,
                .local = &local,
            };
            decision_make(&in, &d);
            t->rule = d.rule;
            t->action = (int)d.action;
            if (d.action == POLICY_DENY) {
                conn_close(c, "quota-exhausted");
                return;
            }
            r = d.rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)d.rule) : NULL;
        }
    }
    char ip[64];
    struct usage_row row;
    usage_who(c, &row, ip, sizeof(ip));
    usage_activity(&row, timewin_day_number(&local), minute, 0, 0, 0);
    if (r && r->quota_min) {
        int crossed;
        unsigned used = usage_quota_mark(t->identity, r->name, decision_period(r, &local),
                                         minute, r->quota_min, &crossed);
        if (crossed == 100)
            stats_count(STATS_QUOTA_EXHAUSTED);
        if (crossed) {
            char line[2048];
            struct timespec ts = {now, (long)tv.tv_usec * 1000};
            size_t n = logfmt_quota(row.user, ip, row.platform, r->name, used, r->quota_min,
                                    crossed, &ts, line, sizeof(line));
            accesslog_write(line, n);
        }
    }
}

/* Tunnel: looks at the client's first bytes for a ClientHello. Returns 1
 * while more bytes are needed (nothing is relayed yet). */
static int
peek_hello(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return 1;
    const uint8_t *p = evbuffer_pullup(in, -1);
    struct sni_info info;
    enum sni_status st = p ? sni_parse(p, n, &info) : SNI_NOT_TLS;
    if (st == SNI_PARTIAL)
        return 1;
    c->t.peek = 0;
    if (st == SNI_OK && decide_sni(c, &info))
        return 1;
    return 0;
}

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
        reply_error(c, 502, "dns-failed", msg);
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
        reply_error(c, 403, "destination-blocked",
                    "The destination address is not allowed by this proxy.");
        return;
    }
    c->t.ai = keep;
    c->t.ai_next = keep;
    c->state = CS_CONNECTING;
    connect_next(c);
}

static void
resolve(struct conn *c)
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
    arm(c, ct < CONN_WATCH_AFTER_MS ? ct : CONN_WATCH_AFTER_MS);
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
            reply_error(c, 508, "forwarding-loop", "The request is addressed to this proxy.");
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
        free_upstream(c);
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "Could not connect to %s port %u (%s).", t->host, t->port,
             t->last_errno ? strerror(t->last_errno) : "no address");
    stats_count(STATS_UPSTREAM_ERRORS);
    reply_error(c, 502, "connect-failed", msg);
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


static void
await_answer(struct conn *c)
{
    uint64_t idle = c->cfg->idle_timeout_ms;
    arm(c, idle < CONN_WATCH_AFTER_MS ? idle : CONN_WATCH_AFTER_MS);
}

static void
watch_client(struct conn *c, int on)
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
    set_tcp_nodelay(bufferevent_getfd(c->ubev));
    touch(c);
    arm(c, c->cfg->idle_timeout_ms);
    if (t->ai) {
        evutil_freeaddrinfo(t->ai);
        t->ai = t->ai_next = NULL;
    }
    if (t->is_connect) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        watch_client(c, 0); /* the client is read from now on */
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
    pump_request_body(c);
}

static void
process_head(struct conn *c)
{
    /* While the upstream is prepared, the client's next bytes wait. */
    bufferevent_disable(c->cbev, EV_READ);
    if (decide(c) != 0)
        return;
    proceed(c);
}

/* The decision allows: on to the upstream. */
static void
proceed(struct conn *c)
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
    resolve(c);
}

/* --- request body -------------------------------------------------------- */

/* Moves up to the end of the current message from src to dst following
 * `body` framing. Returns bytes moved, or -1 on a framing error. Sets *done
 * at the end of the message. When dechunk is set only payload is copied. */
static ssize_t
move_body(struct evbuffer *src, struct evbuffer *dst, enum http1_body body, uint64_t *remain,
          struct http1_chunked *ch, int dechunk, int *done)
{
    size_t avail = evbuffer_get_length(src);
    if (avail == 0)
        return 0;
    if (body == HTTP1_BODY_LENGTH) {
        size_t n = avail < *remain ? avail : (size_t)*remain;
        evbuffer_remove_buffer(src, dst, n);
        *remain -= n;
        *done = *remain == 0;
        return (ssize_t)n;
    }
    if (body == HTTP1_BODY_CLOSE) {
        evbuffer_remove_buffer(src, dst, avail);
        return (ssize_t)avail;
    }
    /* Chunked: scan the first chain in place; framing bytes are moved (or
     * dropped when dechunking), payload is moved. Nothing past the end of
     * this message is touched: it belongs to the next one. */
    size_t total = 0;
    while (!*done) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(src, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t used;
        int is_data;
        if (http1_chunked_step(ch, v.iov_base, v.iov_len, &used, &is_data, done) != HTTP1_OK)
            return -1;
        if (used == 0)
            break;
        if (dechunk && !is_data) {
            evbuffer_drain(src, used);
        } else {
            evbuffer_remove_buffer(src, dst, used);
            total += used;
        }
    }
    return (ssize_t)total;
}

static void
pump_request_body(struct conn *c)
{
    struct txn *t = &c->t;
    if (c->state != CS_FORWARD || t->req_done) {
        bufferevent_disable(c->cbev, EV_READ);
        if (c->state == CS_FORWARD && !t->resp_head_done)
            await_answer(c);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    struct evbuffer *out = bufferevent_get_output(c->ubev);
    ssize_t n = move_body(in, out, t->req_body, &t->req_remain, &t->req_ch, 0, &t->req_done);
    if (n < 0) {
        reply_error(c, 400, "bad-request-body", "The request body framing is malformed.");
        return;
    }
    t->up += (uint64_t)n;
    if (t->req_done) {
        bufferevent_disable(c->cbev, EV_READ); /* the next request waits its turn */
        if (!t->resp_head_done)
            await_answer(c);
    } else if (evbuffer_get_length(out) >= CONN_MAX_BUFFER) {
        bufferevent_disable(c->cbev, EV_READ);
        bufferevent_setwatermark(c->ubev, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    } else {
        bufferevent_enable(c->cbev, EV_READ);
    }
}

/* --- response ------------------------------------------------------------ */

/* Builds the client's response head from the upstream's. */
static void
write_response_head(struct conn *c, const struct http1_head *h, int interim)
{
    struct txn *t = &c->t;
    struct evbuffer *out = bufferevent_get_output(c->cbev);
    size_t before = evbuffer_get_length(out);
    evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", h->status, (int)h->reason.len,
                        h->reason.p);
    int upgrading = h->status == 101;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (http1_name_is(&f->name, "content-length"))
            continue; /* written once below, as in build_upstream_head */
        if (http1_is_hop_by_hop(&f->name) || http1_connection_names(h, &f->name)) {
            int keep = (upgrading && http1_name_is(&f->name, "upgrade")) ||
                       (!t->dechunk && !interim && http1_name_is(&f->name, "transfer-encoding"));
            if (!keep)
                continue;
        }
        evbuffer_add(out, f->name.p, f->name.len);
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, f->value.p, f->value.len);
        evbuffer_add(out, "\r\n", 2);
    }
    if (h->flags & HTTP1_F_HAS_CL)
        evbuffer_add_printf(out, "Content-Length: %llu\r\n",
                            (unsigned long long)h->content_length);
    if (upgrading)
        evbuffer_add(out, "Connection: Upgrade\r\n", 21);
    else if (!interim && t->client_close)
        evbuffer_add(out, "Connection: close\r\n", 19);
    evbuffer_add(out, worker_via_header(), worker_via_header_len());
    evbuffer_add(out, "\r\n", 2);
    t->down += evbuffer_get_length(out) - before;
}

static void
txn_done(struct conn *c)
{
    struct txn *t = &c->t;
    watch_client(c, 0);
    int reuse_up = t->resp_minor == 1 && !t->resp_conn_close && t->resp_body != HTTP1_BODY_CLOSE &&
                   t->req_done && !c->draining && !t->upgrade;
    txn_log(c);
    if (c->ubev) {
        if (reuse_up && evbuffer_get_length(bufferevent_get_input(c->ubev)) == 0 &&
            evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0) {
            bufferevent_setwatermark(c->ubev, EV_WRITE, 0, 0);
            worker_pool_put(c->w, t->poolkey, c->ubev);
        } else {
            bufferevent_free(c->ubev);
        }
        c->ubev = NULL;
    }
    if (t->client_close || !t->req_done || c->draining) {
        close_after_write(c);
        return;
    }
    txn_reset(c);
    c->state = CS_HEAD;
    c->head_bytes_seen = 0;
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    touch(c);
    arm(c, c->cfg->idle_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
        try_head(c); /* pipelined */
}

static void
on_response_head(struct conn *c)
{
    struct txn *t = &c->t;
    struct evbuffer *in = bufferevent_get_input(c->ubev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        size_t max = (size_t)c->cfg->max_header_bytes;
        size_t n = avail < max + 1 ? avail : max + 1;
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
        struct http1_head *h = malloc(sizeof(*h));
        if (p == NULL || h == NULL) {
            free(h);
            conn_close(c, "out-of-memory");
            return;
        }
        enum http1_status st = http1_parse_response(p, n, max, t->is_head, h);
        if (st == HTTP1_PARTIAL) {
            free(h);
            return;
        }
        if (st != HTTP1_OK) {
            char msg[256];
            snprintf(msg, sizeof(msg), "The server sent an invalid response (%s).",
                     http1_strerror(st));
            free(h);
            reply_error(c, 502, "bad-response", msg);
            return;
        }
        t->resp_bytes += h->head_len;
        if (t->uhead) {
            evbuffer_free(t->uhead);
            t->uhead = NULL;
        }
        if (h->status == 101) {
            if (!t->upgrade) {
                free(h);
                reply_error(c, 502, "unexpected-101", "The server switched protocols unasked.");
                return;
            }
            t->status = 101;
            t->upgrade = 2;
            write_response_head(c, h, 1);
            evbuffer_drain(in, h->head_len);
            free(h);
            c->state = CS_TUNNEL;
            t->req_done = 1;
            bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
            bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
            if (evbuffer_get_length(in))
                relay(c, c->ubev, c->cbev);
            if (!c->closed && evbuffer_get_length(bufferevent_get_input(c->cbev)))
                relay(c, c->cbev, c->ubev);
            return;
        }
        if (h->status < 200) {
            if (t->client_minor == 1) /* HTTP/1.0 clients get no 1xx */
                write_response_head(c, h, 1);
            evbuffer_drain(in, h->head_len);
            free(h);
            continue;
        }
        t->resp_head_done = 1;
        t->status = h->status;
        t->resp_minor = h->minor;
        t->resp_conn_close = (h->flags & HTTP1_F_CONN_CLOSE) != 0;
        t->resp_body = h->body;
        t->resp_remain = h->content_length;
        t->resp_done = h->body == HTTP1_BODY_NONE;
        t->dechunk = h->body == HTTP1_BODY_CHUNKED && t->client_minor == 0;
        if (h->body == HTTP1_BODY_CLOSE || t->dechunk || !t->req_done)
            t->client_close = 1;
        write_response_head(c, h, 0);
        evbuffer_drain(in, h->head_len);
        free(h);
        watch_client(c, 0); /* from here a gone client shows as a failed write */
        pump_response(c);
        return;
    }
}

static void
pump_response(struct conn *c)
{
    struct txn *t = &c->t;
    mark_active(c);
    if (c->closed)
        return;
    struct evbuffer *in = bufferevent_get_input(c->ubev);
    struct evbuffer *out = bufferevent_get_output(c->cbev);
    if (!t->resp_done) {
        size_t before = evbuffer_get_length(out);
        ssize_t n = move_body(in, out, t->resp_body, &t->resp_remain, &t->resp_ch, t->dechunk,
                              &t->resp_done);
        if (n < 0) {
            conn_close(c, "bad-response-body");
            return;
        }
        t->down += evbuffer_get_length(out) - before;
    }
    if (t->resp_done) {
        if (evbuffer_get_length(in) > 0)
            t->resp_conn_close = 1; /* bytes after the response: never reuse */
        txn_done(c);
        return;
    }
    if (evbuffer_get_length(out) >= CONN_MAX_BUFFER) {
        bufferevent_disable(c->ubev, EV_READ);
        bufferevent_setwatermark(c->cbev, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    }
}

/* --- tunnel -------------------------------------------------------------- */

static void
tunnel_maybe_done(struct conn *c)
{
    if (c->cli_eof && c->up_eof &&
        evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0)
        conn_close(c, NULL);
}

static void
relay(struct conn *c, struct bufferevent *from, struct bufferevent *to)
{
    mark_active(c);
    if (c->closed)
        return;
    struct evbuffer *src = bufferevent_get_input(from);
    struct evbuffer *dst = bufferevent_get_output(to);
    size_t n = evbuffer_get_length(src);
    if (from == c->cbev)
        c->t.up += n;
    else
        c->t.down += n;
    evbuffer_add_buffer(dst, src);
    if (evbuffer_get_length(dst) >= CONN_MAX_BUFFER) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    }
}

static void
splice_event(void *arg, enum splice_event ev, int dir, size_t bytes, int err)
{
    struct conn *c = arg;
    if (c->closed)
        return;
    switch (ev) {
    case SPLICE_MOVED:
        touch(c);
        if (dir == 0)
            c->t.up += bytes;
        else
            c->t.down += bytes;
        mark_active(c);
        break;
    case SPLICE_DONE:
        conn_close(c, NULL);
        break;
    case SPLICE_ERROR:
        log_debug("tunnel relay: %s", strerror(err));
        conn_close(c, dir == 0 ? "upstream-error" : "client-error");
        break;
    }
}

/* Response bodies at least this long go through the kernel (splice). */
#define SPLICE_MIN_BODY (64 * 1024)

static void
body_splice_event(void *arg, enum splice_event ev, int dir, size_t bytes, int err)
{
    struct conn *c = arg;
    struct txn *t = &c->t;
    (void)dir;
    if (c->closed)
        return;
    switch (ev) {
    case SPLICE_MOVED:
        touch(c);
        t->down += bytes;
        t->resp_remain -= bytes < t->resp_remain ? bytes : t->resp_remain;
        mark_active(c);
        break;
    case SPLICE_DONE:
        splicer_free(c->spl);
        c->spl = NULL;
        t->resp_remain = 0;
        t->resp_done = 1;
        bufferevent_enable(c->cbev, EV_WRITE);
        bufferevent_enable(c->ubev, EV_WRITE);
        txn_done(c);
        break;
    case SPLICE_ERROR:
        conn_close(c, err ? "transfer-error" : "upstream-closed-mid-body");
        break;
    }
}

/* A long body of known length with nothing left in user space: let the
 * kernel move it (splice); the bufferevents take over again after it. */
static void
response_try_splice(struct conn *c)
{
    struct txn *t = &c->t;
    if (c->spl || c->closed || c->state != CS_FORWARD || !t->resp_head_done || t->resp_done ||
        t->resp_body != HTTP1_BODY_LENGTH || t->dechunk || !t->req_done ||
        t->resp_remain < SPLICE_MIN_BODY)
        return;
    if (evbuffer_get_length(bufferevent_get_input(c->ubev)) ||
        evbuffer_get_length(bufferevent_get_output(c->cbev)) ||
        evbuffer_get_length(bufferevent_get_output(c->ubev)))
        return;
    bufferevent_disable(c->ubev, EV_READ | EV_WRITE);
    bufferevent_disable(c->cbev, EV_READ | EV_WRITE);
    c->spl = splicer_start_body(c->w, bufferevent_getfd(c->ubev), bufferevent_getfd(c->cbev),
                                t->resp_remain, body_splice_event, c);
    if (c->spl == NULL) {
        bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
        bufferevent_enable(c->cbev, EV_WRITE);
    }
}

/* Once a tunnel needs no more inspection and no bytes wait in user space,
 * the kernel relays it (splice). Until then, and when that fails, the
 * bufferevents do. */
static void
tunnel_try_splice(struct conn *c)
{
    if (c->spl || c->closed || c->state != CS_TUNNEL || c->t.peek)
        return;
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) ||
        evbuffer_get_length(bufferevent_get_output(c->cbev)) ||
        evbuffer_get_length(bufferevent_get_input(c->ubev)) ||
        evbuffer_get_length(bufferevent_get_output(c->ubev)))
        return;
    if (c->cli_eof != c->up_shut || c->up_eof != c->cli_shut)
        return; /* a half-close is still on its way */
    bufferevent_disable(c->cbev, EV_READ | EV_WRITE);
    bufferevent_disable(c->ubev, EV_READ | EV_WRITE);
    c->spl = splicer_start(c->w, bufferevent_getfd(c->cbev), bufferevent_getfd(c->ubev),
                           c->cli_eof, c->up_eof, splice_event, c);
    if (c->spl == NULL) { /* stay with the bufferevents */
        if (!c->cli_eof)
            bufferevent_enable(c->cbev, EV_READ);
        if (!c->up_eof)
            bufferevent_enable(c->ubev, EV_READ);
        bufferevent_enable(c->cbev, EV_WRITE);
        bufferevent_enable(c->ubev, EV_WRITE);
    }
}

/* A side said EOF: pass the half-close on once its data is out. */
static void
tunnel_eof(struct conn *c, struct bufferevent *from)
{
    struct bufferevent *to = from == c->cbev ? c->ubev : c->cbev;
    int *eof = from == c->cbev ? &c->cli_eof : &c->up_eof;
    *eof = 1;
    relay(c, from, to);
    if (c->closed)
        return;
    if (evbuffer_get_length(bufferevent_get_output(to)) == 0) {
        shutdown(bufferevent_getfd(to), SHUT_WR);
        if (to == c->ubev)
            c->up_shut = 1;
        else
            c->cli_shut = 1;
    } else {
        bufferevent_setwatermark(to, EV_WRITE, 0, 0);
    }
    tunnel_maybe_done(c);
}

static void
tunnel_writable(struct conn *c, struct bufferevent *to)
{
    struct bufferevent *from = to == c->cbev ? c->ubev : c->cbev;
    int from_eof = from == c->cbev ? c->cli_eof : c->up_eof;
    int *shut = to == c->cbev ? &c->cli_shut : &c->up_shut;
    if (from_eof) {
        if (!*shut && evbuffer_get_length(bufferevent_get_output(to)) == 0) {
            shutdown(bufferevent_getfd(to), SHUT_WR);
            *shut = 1;
        }
        tunnel_maybe_done(c);
        return;
    }
    bufferevent_setwatermark(to, EV_WRITE, 0, 0);
    bufferevent_enable(from, EV_READ);
    tunnel_try_splice(c);
}

/* --- callbacks ----------------------------------------------------------- */

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    touch(c);
    switch (c->state) {
    case CS_HEAD:
        try_head(c);
        break;
    case CS_FORWARD:
        pump_request_body(c);
        break;
    case CS_TUNNEL:
        if (c->t.peek && peek_hello(c))
            break;
        relay(c, bev, c->ubev);
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
    touch(c);
    switch (c->state) {
    case CS_FORWARD:
        if (c->ubev && c->spl == NULL) {
            bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
            bufferevent_enable(c->ubev, EV_READ);
            response_try_splice(c);
        }
        break;
    case CS_TUNNEL:
        tunnel_writable(c, c->cbev);
        break;
    case CS_CLOSING:
        if (c->linger_until == 0 && evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0) {
            shutdown(bufferevent_getfd(c->cbev), SHUT_WR);
            c->linger_until = now_ms(c) + CONN_LINGER_MS;
            arm(c, CONN_LINGER_MS);
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
    touch(c);
    if (c->state == CS_TUNNEL) {
        relay(c, bev, c->cbev);
        return;
    }
    if (c->state != CS_FORWARD)
        return;
    if (!c->t.resp_head_done)
        on_response_head(c);
    else
        pump_response(c);
}

static void
upstream_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    touch(c);
    if (c->state == CS_TUNNEL) {
        tunnel_writable(c, c->ubev);
    } else if (c->state == CS_FORWARD && !c->t.req_done) {
        bufferevent_setwatermark(c->ubev, EV_WRITE, 0, 0);
        pump_request_body(c);
    }
}

/* A pooled connection died before sending anything: try once more on a new
 * one when the request had no body (nothing of it is lost). */
static int
retry_fresh(struct conn *c)
{
    struct txn *t = &c->t;
    if (!t->reused || t->retried || t->resp_bytes > 0 || t->req_body != HTTP1_BODY_NONE ||
        t->uhead == NULL || evbuffer_get_length(bufferevent_get_input(c->ubev)) > 0)
        return 0;
    t->retried = 1;
    t->reused = 0;
    free_upstream(c);
    resolve(c);
    return 1;
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
        free_upstream(c);
        connect_next(c);
        return;
    }
    if (c->state == CS_TUNNEL && (what & BEV_EVENT_EOF)) {
        tunnel_eof(c, c->ubev);
        return;
    }
    if (c->state == CS_FORWARD) {
        if ((what & BEV_EVENT_EOF) && t->resp_head_done && t->resp_body == HTTP1_BODY_CLOSE) {
            pump_response(c);
            if (c->closed || c->state != CS_FORWARD)
                return;
            t->resp_done = 1;
            free_upstream(c);
            txn_done(c);
            return;
        }
        if (!t->resp_head_done) {
            if (retry_fresh(c))
                return;
            reply_error(c, 502, "upstream-closed",
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
            reply_error(c, 408, "header-timeout", "The request head took too long to arrive.");
        else
            conn_close(c, NULL); /* idle: close quietly */
        break;
    case CS_DECIDING:
        reply_error(c, 503, "auth-timeout", "The password check took too long.");
        break;
    case CS_RESOLVING:
    case CS_CONNECTING: {
        if (now < c->connect_deadline) {
            /* A slow connect: from now on notice a client that leaves. */
            if (!c->watching) {
                c->watching = 1;
                watch_client(c, 1);
            }
            arm(c, c->connect_deadline - now);
            break;
        }
        char msg[512];
        snprintf(msg, sizeof(msg), "No connection to %s port %u within the connect timeout.",
                 c->t.host, c->t.port);
        stats_count(STATS_UPSTREAM_ERRORS);
        reply_error(c, 504, "connect-timeout", msg);
        break;
    }
    case CS_FORWARD:
    case CS_TUNNEL:
        if (c->state == CS_FORWARD && c->t.req_done && !c->t.resp_head_done && !c->watching) {
            /* A slow answer: from now on notice a client that leaves. */
            c->watching = 1;
            watch_client(c, 1);
        }
        if (now - c->last_active < idle) {
            arm(c, idle - (now - c->last_active));
            break;
        }
        if (c->state == CS_FORWARD && !c->t.resp_head_done) {
            stats_count(STATS_UPSTREAM_ERRORS);
            reply_error(c, 504, "upstream-timeout", "The server did not answer in time.");
        }
        else
            conn_close(c, "idle-timeout");
        break;
    case CS_CLOSING:
        conn_close(c, NULL);
        break;
    }
}
