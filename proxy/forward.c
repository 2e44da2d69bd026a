#include "forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "gate.h"
#include "http1.h"
#include "request.h"
#include "splice.h"
#include "stats.h"
#include "tunnel.h"
#include "upstream.h"

/* Response bodies at least this long go through the kernel (splice). */
#define SPLICE_MIN_BODY (64 * 1024)

/* Fast answers need no watching for a departing client (it costs two
 * epoll_ctl calls a request): the timer arms the watch after this long. */
#define WATCH_AFTER_MS 500

/* A bufferevent straight on its socket: no filter (TLS) under or in it. */
static int
plain_socket(struct bufferevent *bev)
{
    return bufferevent_get_underlying(bev) == NULL && bufferevent_openssl_get_ssl(bev) == NULL;
}

static enum conn_rc pump_response(struct conn *c);

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

/* The request is sent: wait for the answer, watching the client after a
 * while (forward_timeout). */
static void
await_answer(struct conn *c)
{
    uint64_t idle = c->cfg->idle_timeout_ms;
    conn_arm(c, idle < WATCH_AFTER_MS ? idle : WATCH_AFTER_MS);
}

static enum conn_rc
pump_request_body(struct conn *c)
{
    struct txn *t = &c->t;
    if (t->req_done) {
        bufferevent_disable(c->cbev, EV_READ); /* the next request waits its turn */
        if (!t->resp_head_done)
            await_answer(c);
        return CONN_GO_ON;
    }
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    struct evbuffer *out = bufferevent_get_output(c->ubev);
    ssize_t n = move_body(in, out, t->rq.body, &t->req_remain, &t->req_ch, 0, &t->req_done);
    if (n < 0)
        return conn_reply_error(c, 400, "bad-request-body",
                                "The request body framing is malformed.");
    t->up += (uint64_t)n;
    if (t->req_done) {
        bufferevent_disable(c->cbev, EV_READ);
        if (!t->resp_head_done)
            await_answer(c);
    } else if (evbuffer_get_length(out) >= CONN_MAX_BUFFER) {
        bufferevent_disable(c->cbev, EV_READ);
        bufferevent_setwatermark(c->ubev, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    } else {
        bufferevent_enable(c->cbev, EV_READ);
    }
    return CONN_GO_ON;
}

enum conn_rc
forward_start(struct conn *c)
{
    struct txn *t = &c->t;
    /* The head is kept until the answer starts, to be sent again if a
     * pooled connection turns out to have been closed by the origin. */
    size_t sent = 0;
    if (plain_socket(c->ubev) && (bufferevent_get_enabled(c->ubev) & EV_WRITE) &&
        evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0) {
        /* Sent at once when the socket takes it (it nearly always does):
         * no write interest to add to epoll and remove again. What it does
         * not take, or an error, goes through the bufferevent as before. */
        ssize_t n = send(bufferevent_getfd(c->ubev), t->rq.uhead, t->rq.uhead_len,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            sent = (size_t)n;
    }
    if (sent < t->rq.uhead_len) {
        bufferevent_write(c->ubev, t->rq.uhead + sent, t->rq.uhead_len - sent);
        bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    } else {
        bufferevent_enable(c->ubev, EV_READ); /* EV_WRITE is on already */
    }
    return pump_request_body(c);
}

/* The response head being built: in a buffer on the stack, added to the
 * client's output at once (one evbuffer_add, not one per piece). */
struct head_out {
    char *buf;
    size_t len, size;
    int over; /* did not fit: built again straight into the evbuffer */
};

static void
head_put(struct head_out *o, const void *p, size_t n)
{
    if (o->over || n > o->size - o->len) {
        o->over = 1;
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void
head_put_u64(struct head_out *o, uint64_t v)
{
    char rev[20];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char d[20];
    for (size_t i = 0; i < n; i++)
        d[i] = rev[n - 1 - i];
    head_put(o, d, n);
}

/* Is f named by a Connection field of h? conn[] holds the indexes of
 * those fields (usually none or one). */
static int
named_by_connection(const struct http1_head *h, const size_t *conn, size_t nconn,
                    const struct http1_header *f)
{
    for (size_t i = 0; i < nconn; i++) {
        struct http1_head one;
        one.headers[0] = h->headers[conn[i]];
        one.nheaders = 1;
        if (http1_connection_names(&one, &f->name))
            return 1;
    }
    return 0;
}

/* Could a field name of this length be hop-by-hop (http1_is_hop_by_hop:
 * te, trailer, upgrade, connection, keep-alive, proxy-connection,
 * transfer-encoding, proxy-authenticate, proxy-authorization)? Most
 * fields are not looked up further. */
static int
hop_len(size_t n)
{
    return n == 2 || n == 7 || n == 10 || n == 16 || n == 17 || n == 18 || n == 19;
}

/* Writes the client's response head (built from the upstream's h) into o. */
static void
build_response_head(struct conn *c, const struct http1_head *h, int interim, struct head_out *o)
{
    struct txn *t = &c->t;
    static const char version[] = "HTTP/1.1 ";
    head_put(o, version, sizeof(version) - 1);
    if (h->status >= 100 && h->status <= 999) {
        char code[4] = {(char)('0' + h->status / 100), (char)('0' + h->status / 10 % 10),
                        (char)('0' + h->status % 10), ' '};
        head_put(o, code, 4);
    } else {
        char code[16];
        int n = snprintf(code, sizeof(code), "%d ", h->status);
        head_put(o, code, (size_t)n);
    }
    head_put(o, h->reason.p, h->reason.len);
    head_put(o, "\r\n", 2);
    size_t conn[HTTP1_MAX_HEADERS], nconn = 0;
    for (size_t i = 0; i < h->nheaders; i++)
        if (http1_name_is(&h->headers[i].name, "connection"))
            conn[nconn++] = i;
    int upgrading = h->status == 101;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (f->name.len == 14 && http1_name_is(&f->name, "content-length"))
            continue; /* written once below, as in the request head */
        if ((hop_len(f->name.len) && http1_is_hop_by_hop(&f->name)) ||
            named_by_connection(h, conn, nconn, f)) {
            int keep = (upgrading && http1_name_is(&f->name, "upgrade")) ||
                       (!t->dechunk && !interim && http1_name_is(&f->name, "transfer-encoding"));
            if (!keep)
                continue;
        }
        head_put(o, f->name.p, f->name.len);
        head_put(o, ": ", 2);
        head_put(o, f->value.p, f->value.len);
        head_put(o, "\r\n", 2);
    }
    if (h->flags & HTTP1_F_HAS_CL) {
        head_put(o, "Content-Length: ", 16);
        head_put_u64(o, h->content_length);
        head_put(o, "\r\n", 2);
    }
    if (upgrading)
        head_put(o, "Connection: Upgrade\r\n", 21);
    else if (!interim && t->rq.client_close)
        head_put(o, "Connection: close\r\n", 19);
    head_put(o, request_via_header(), request_via_header_len());
    head_put(o, "\r\n", 2);
}

/* Sends the head in o, and the whole body after it in the upstream's
 * input when it is there already (a short response of known length),
 * straight to the client's socket in one sendmsg: no write interest to
 * add to epoll and remove again. Only for a plain socket with nothing
 * queued before it; never under a filter (TLS). What the socket does not
 * take goes through the bufferevent. Returns the body bytes sent; the
 * head is sent or queued whole. */
static size_t
send_response_direct(struct conn *c, const struct http1_head *h, const struct head_out *o)
{
    struct txn *t = &c->t;
    struct evbuffer *out = bufferevent_get_output(c->cbev);
    if (!plain_socket(c->cbev) || evbuffer_get_length(out) > 0 || c->spl != NULL || !t->req_done)
        return (size_t)-1;
    struct evbuffer *in = bufferevent_get_input(c->ubev);
    size_t avail = evbuffer_get_length(in) - h->head_len, body;
    if (h->body == HTTP1_BODY_NONE)
        body = 0;
    else if (h->body == HTTP1_BODY_LENGTH && h->content_length <= avail &&
             h->content_length < SPLICE_MIN_BODY)
        body = (size_t)h->content_length;
    else
        return (size_t)-1;
    struct iovec iov[9];
    iov[0].iov_base = o->buf;
    iov[0].iov_len = o->len;
    int niov = 1;
    if (body > 0) {
        struct evbuffer_ptr at;
        if (evbuffer_ptr_set(in, &at, h->head_len, EVBUFFER_PTR_SET) != 0)
            return (size_t)-1;
        struct evbuffer_iovec v[8];
        int n = evbuffer_peek(in, (ev_ssize_t)body, &at, v, 8);
        if (n < 1 || n > 8)
            return (size_t)-1;
        for (int i = 0; i < n; i++) {
            iov[niov].iov_base = v[i].iov_base;
            iov[niov].iov_len = v[i].iov_len;
            niov++;
        }
        /* the last chain may hold more than the body: cut it there */
        size_t total = 0;
        for (int i = 1; i < niov; i++) {
            if (total + iov[i].iov_len > body)
                iov[i].iov_len = body - total;
            total += iov[i].iov_len;
        }
    }
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)niov;
    ssize_t n = sendmsg(bufferevent_getfd(c->cbev), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    size_t sent = n > 0 ? (size_t)n : 0; /* an error shows through the bufferevent */
    if (sent < o->len) {
        evbuffer_add(out, o->buf + sent, o->len - sent);
        return 0;
    }
    return sent - o->len;
}

/* Builds the client's response head from the upstream's and queues it, or,
 * when *direct is set (a final response), tries to send it with the body
 * (send_response_direct): *direct becomes the body bytes sent that way,
 * (size_t)-1 when not tried. -1: out of memory. */
static int
write_response_head(struct conn *c, const struct http1_head *h, int interim, size_t *direct)
{
    struct txn *t = &c->t;
    char stack[8192];
    struct head_out o = {stack, 0, sizeof(stack), 0};
    build_response_head(c, h, interim, &o);
    char *heap = NULL;
    if (o.over) {
        /* Over 8 KiB: at most a byte more a field than the upstream's head
         * (": " for ":"), and the lines added here. */
        size_t need = h->head_len + h->nheaders + 256 + request_via_header_len();
        heap = malloc(need);
        if (heap == NULL)
            return -1;
        o = (struct head_out){heap, 0, need, 0};
        build_response_head(c, h, interim, &o);
        if (o.over) {
            free(heap);
            return -1;
        }
    }
    size_t sent = direct ? send_response_direct(c, h, &o) : (size_t)-1;
    if (sent == (size_t)-1)
        evbuffer_add(bufferevent_get_output(c->cbev), o.buf, o.len);
    if (direct)
        *direct = sent;
    t->down += o.len;
    free(heap);
    return 0;
}

/* The response is complete: log, pool the upstream, next request or close. */
static enum conn_rc
txn_done(struct conn *c)
{
    struct txn *t = &c->t;
    conn_watch_client(c, 0);
    int reuse_up = t->resp_minor == 1 && !t->resp_conn_close && t->resp_body != HTTP1_BODY_CLOSE &&
                   t->req_done && !c->draining && t->rq.upgrade == UPGRADE_NONE;
    upstream_release(c, reuse_up);
    if (t->rq.client_close || !t->req_done || c->draining)
        return conn_close_after_write(c);
    return conn_keepalive(c);
}

static enum conn_rc
on_response_head(struct conn *c)
{
    struct txn *t = &c->t;
    struct evbuffer *in = bufferevent_get_input(c->ubev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return CONN_GO_ON;
        size_t max = (size_t)c->cfg->max_header_bytes;
        size_t n = avail < max + 1 ? avail : max + 1;
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
        if (p == NULL)
            return conn_close(c, "out-of-memory");
        /* h is this thread's scratch head: not used after anything that
         * may parse again (conn_scratch_head). */
        struct http1_head *h = conn_scratch_head();
        enum http1_status st = http1_parse_response(p, n, max, t->rq.is_head, h);
        if (st == HTTP1_PARTIAL)
            return CONN_GO_ON;
        if (st != HTTP1_OK) {
            char msg[256];
            snprintf(msg, sizeof(msg), "The server sent an invalid response (%s).",
                     http1_strerror(st));
            return conn_reply_error(c, 502, "bad-response", msg);
        }
        t->resp_bytes += h->head_len;
        if (h->status == 101) {
            if (t->rq.upgrade != UPGRADE_ASKED)
                return conn_reply_error(c, 502, "unexpected-101",
                                        "The server switched protocols unasked.");
            t->status = 101;
            t->rq.upgrade = UPGRADE_SWITCHED;
            t->req_done = 1;
            if (write_response_head(c, h, 1, NULL) < 0)
                return conn_close(c, "out-of-memory");
            evbuffer_drain(in, h->head_len);
            conn_set_phase(c, &tunnel_ops);
            return tunnel_start_upgraded(c);
        }
        if (h->status < 200) {
            if (t->rq.client_minor == 1 && /* HTTP/1.0 clients get no 1xx */
                write_response_head(c, h, 1, NULL) < 0)
                return conn_close(c, "out-of-memory");
            evbuffer_drain(in, h->head_len);
            continue;
        }
        t->resp_head_done = 1;
        t->status = h->status;
        t->resp_minor = h->minor;
        t->resp_conn_close = (h->flags & HTTP1_F_CONN_CLOSE) != 0;
        t->resp_body = h->body;
        t->resp_remain = h->content_length;
        t->resp_done = h->body == HTTP1_BODY_NONE;
        t->dechunk = h->body == HTTP1_BODY_CHUNKED && t->rq.client_minor == 0;
        if (h->body == HTTP1_BODY_CLOSE || t->dechunk || !t->req_done)
            t->rq.client_close = 1;
        /* before anything is sent: an open transfer may be re-decided */
        if (gate_mark_active(c) == CONN_CLOSED)
            return CONN_CLOSED;
        size_t direct = 0;
        if (write_response_head(c, h, 0, &direct) < 0)
            return conn_close(c, "out-of-memory");
        evbuffer_drain(in, h->head_len);
        if (direct != (size_t)-1 && direct > 0) {
            evbuffer_drain(in, direct); /* body bytes sent with the head */
            t->down += direct;
            t->resp_remain -= direct;
            t->resp_done = t->resp_remain == 0;
        }
        conn_watch_client(c, 0); /* from here a gone client shows as a failed write */
        return pump_response(c);
    }
}

static enum conn_rc
pump_response(struct conn *c)
{
    struct txn *t = &c->t;
    if (gate_mark_active(c) == CONN_CLOSED)
        return CONN_CLOSED;
    struct evbuffer *in = bufferevent_get_input(c->ubev);
    struct evbuffer *out = bufferevent_get_output(c->cbev);
    if (!t->resp_done) {
        size_t before = evbuffer_get_length(out);
        ssize_t n = move_body(in, out, t->resp_body, &t->resp_remain, &t->resp_ch, t->dechunk,
                              &t->resp_done);
        if (n < 0)
            return conn_close(c, "bad-response-body");
        t->down += evbuffer_get_length(out) - before;
    }
    if (t->resp_done) {
        if (evbuffer_get_length(in) > 0)
            t->resp_conn_close = 1; /* bytes after the response: never reuse */
        return txn_done(c);
    }
    if (evbuffer_get_length(out) >= CONN_MAX_BUFFER) {
        bufferevent_disable(c->ubev, EV_READ);
        bufferevent_setwatermark(c->cbev, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    }
    return CONN_GO_ON;
}

static void
body_splice_event(void *arg, enum splice_event ev, int dir, size_t bytes, int err)
{
    struct conn *c = arg;
    struct txn *t = &c->t;
    (void)dir;
    if (c->closed || c->closing)
        return;
    switch (ev) {
    case SPLICE_MOVED:
        conn_touch(c);
        t->down += bytes;
        t->resp_remain -= bytes < t->resp_remain ? bytes : t->resp_remain;
        (void)gate_mark_active(c); /* may close: splicer_stop ends the callbacks */
        break;
    case SPLICE_DONE:
        splicer_free(c->spl);
        c->spl = NULL;
        t->resp_remain = 0;
        t->resp_done = 1;
        conn_io_resume(c);
        (void)txn_done(c);
        break;
    case SPLICE_ERROR:
        conn_close(c, err ? "transfer-error" : "upstream-closed-mid-body");
        break;
    }
}

/* A long body of known length with nothing left in user space: let the
 * kernel move it (splice); the bufferevents take over again after it. */
static void
try_splice(struct conn *c)
{
    struct txn *t = &c->t;
    if (c->spl || c->insp.on || c->tls_port || !t->resp_head_done || t->resp_done ||
        t->resp_body != HTTP1_BODY_LENGTH || t->dechunk || !t->req_done ||
        t->resp_remain < SPLICE_MIN_BODY || !conn_buffers_empty(c))
        return;
    conn_io_pause(c);
    c->spl = splicer_start_body(c->w, bufferevent_getfd(c->ubev), bufferevent_getfd(c->cbev),
                                t->resp_remain, body_splice_event, c);
    if (c->spl == NULL) {
        conn_io_resume(c);
        bufferevent_enable(c->ubev, EV_READ);
    }
}

/* A pooled connection died before sending anything: try once more on a new
 * one when the request had no body (nothing of it is lost). */
static int
may_retry_fresh(struct conn *c)
{
    struct txn *t = &c->t;
    return t->reused && !t->retried && t->resp_bytes == 0 && t->rq.body == HTTP1_BODY_NONE &&
           evbuffer_get_length(bufferevent_get_input(c->ubev)) == 0;
}

static enum conn_rc
forward_client_read(struct conn *c)
{
    return pump_request_body(c);
}

static enum conn_rc
forward_client_drained(struct conn *c)
{
    if (c->ubev && c->spl == NULL) {
        bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
        bufferevent_enable(c->ubev, EV_READ);
        try_splice(c);
    }
    return CONN_GO_ON;
}

static enum conn_rc
forward_upstream_read(struct conn *c)
{
    if (!c->t.resp_head_done)
        return on_response_head(c);
    return pump_response(c);
}

static enum conn_rc
forward_upstream_drained(struct conn *c)
{
    if (c->t.req_done)
        return CONN_GO_ON;
    bufferevent_setwatermark(c->ubev, EV_WRITE, 0, 0);
    return pump_request_body(c);
}

static enum conn_rc
forward_upstream_event(struct conn *c, short what)
{
    struct txn *t = &c->t;
    if ((what & BEV_EVENT_EOF) && t->resp_head_done && t->resp_body == HTTP1_BODY_CLOSE) {
        if (pump_response(c) == CONN_CLOSED)
            return CONN_CLOSED;
        t->resp_done = 1;
        conn_free_upstream(c);
        return txn_done(c);
    }
    if (!t->resp_head_done) {
        if (may_retry_fresh(c)) {
            t->retried = 1;
            t->reused = 0;
            conn_free_upstream(c);
            return upstream_open(c, 0);
        }
        return conn_reply_error(c, 502, "upstream-closed",
                                "The server closed the connection without answering.");
    }
    return conn_close(c, "upstream-closed-mid-body");
}

static enum conn_rc
forward_timeout(struct conn *c, uint64_t now)
{
    struct txn *t = &c->t;
    if (t->req_done && !t->resp_head_done && !c->watching)
        conn_watch_client(c, 1); /* a slow answer: notice a client that leaves */
    if (conn_rearm_idle(c, now))
        return CONN_GO_ON;
    if (!t->resp_head_done) {
        stats_count(STATS_UPSTREAM_ERRORS);
        return conn_reply_error(c, 504, "upstream-timeout", "The server did not answer in time.");
    }
    return conn_close(c, "idle-timeout");
}

const struct conn_ops forward_ops = {
    .name = "forward",
    .client_read = forward_client_read,
    .client_drained = forward_client_drained,
    .upstream_read = forward_upstream_read,
    .upstream_drained = forward_upstream_drained,
    .upstream_event = forward_upstream_event,
    .timeout = forward_timeout,
};
