#include "forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
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

static enum conn_rc pump_response(struct conn *c);

/* Copies a field line as received (name and value unchanged). */
static void
add_field(struct evbuffer *b, const struct http1_header *f)
{
    evbuffer_add(b, f->name.p, f->name.len);
    evbuffer_add(b, ": ", 2);
    evbuffer_add(b, f->value.p, f->value.len);
    evbuffer_add(b, "\r\n", 2);
}

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
    bufferevent_write(c->ubev, t->rq.uhead, t->rq.uhead_len);
    bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    return pump_request_body(c);
}

/* Builds the client's response head from the upstream's. */
static void
write_response_head(struct conn *c, const struct http1_head *h, int interim)
{
    struct txn *t = &c->t;
    struct evbuffer *out = bufferevent_get_output(c->cbev);
    size_t before = evbuffer_get_length(out);
    evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", h->status, (int)h->reason.len, h->reason.p);
    int upgrading = h->status == 101;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (http1_name_is(&f->name, "content-length"))
            continue; /* written once below, as in the request head */
        if (http1_is_hop_by_hop(&f->name) || http1_connection_names(h, &f->name)) {
            int keep = (upgrading && http1_name_is(&f->name, "upgrade")) ||
                       (!t->dechunk && !interim && http1_name_is(&f->name, "transfer-encoding"));
            if (!keep)
                continue;
        }
        add_field(out, f);
    }
    if (h->flags & HTTP1_F_HAS_CL)
        evbuffer_add_printf(out, "Content-Length: %llu\r\n", (unsigned long long)h->content_length);
    if (upgrading)
        evbuffer_add(out, "Connection: Upgrade\r\n", 21);
    else if (!interim && t->rq.client_close)
        evbuffer_add(out, "Connection: close\r\n", 19);
    evbuffer_add(out, request_via_header(), request_via_header_len());
    evbuffer_add(out, "\r\n", 2);
    t->down += evbuffer_get_length(out) - before;
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
            write_response_head(c, h, 1);
            evbuffer_drain(in, h->head_len);
            conn_set_phase(c, &tunnel_ops);
            return tunnel_start_upgraded(c);
        }
        if (h->status < 200) {
            if (t->rq.client_minor == 1) /* HTTP/1.0 clients get no 1xx */
                write_response_head(c, h, 1);
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
        write_response_head(c, h, 0);
        evbuffer_drain(in, h->head_len);
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
