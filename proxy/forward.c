#include "forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "conn_types.h"
#include "gate.h"
#include "http1.h"
#include "splice.h"
#include "tunnel.h"
#include "worker.h"

/* Response bodies at least this long go through the kernel (splice). */
#define SPLICE_MIN_BODY (64 * 1024)

/* True when an incoming Via names this very proxy: a forwarding loop. */
int
forward_via_loops(const struct http1_head *h)
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

/* Copies a field line as received (name and value unchanged). */
static void
add_field(struct evbuffer *b, const struct http1_header *f)
{
    evbuffer_add(b, f->name.p, f->name.len);
    evbuffer_add(b, ": ", 2);
    evbuffer_add(b, f->value.p, f->value.len);
    evbuffer_add(b, "\r\n", 2);
}

/* Builds the head sent upstream: origin-form, a correct Host, hop-by-hop
 * fields removed (RFC 9110 7.6.1), Via added. */
void
forward_build_head(struct conn *c, const struct http1_head *h, const struct http1_target *tg)
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
        add_field(b, f);
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

void
forward_pump_request_body(struct conn *c)
{
    struct txn *t = &c->t;
    if (c->state != CS_FORWARD || t->req_done) {
        bufferevent_disable(c->cbev, EV_READ);
        if (c->state == CS_FORWARD && !t->resp_head_done)
            conn_await_answer(c);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    struct evbuffer *out = bufferevent_get_output(c->ubev);
    ssize_t n = move_body(in, out, t->req_body, &t->req_remain, &t->req_ch, 0, &t->req_done);
    if (n < 0) {
        conn_reply_error(c, 400, "bad-request-body", "The request body framing is malformed.");
        return;
    }
    t->up += (uint64_t)n;
    if (t->req_done) {
        bufferevent_disable(c->cbev, EV_READ); /* the next request waits its turn */
        if (!t->resp_head_done)
            conn_await_answer(c);
    } else if (evbuffer_get_length(out) >= CONN_MAX_BUFFER) {
        bufferevent_disable(c->cbev, EV_READ);
        bufferevent_setwatermark(c->ubev, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    } else {
        bufferevent_enable(c->cbev, EV_READ);
    }
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
            continue; /* written once below, as in forward_build_head */
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
    else if (!interim && t->client_close)
        evbuffer_add(out, "Connection: close\r\n", 19);
    evbuffer_add(out, worker_via_header(), worker_via_header_len());
    evbuffer_add(out, "\r\n", 2);
    t->down += evbuffer_get_length(out) - before;
}

void
forward_txn_done(struct conn *c)
{
    struct txn *t = &c->t;
    conn_watch_client(c, 0);
    int reuse_up = t->resp_minor == 1 && !t->resp_conn_close && t->resp_body != HTTP1_BODY_CLOSE &&
                   t->req_done && !c->draining && !t->upgrade;
    conn_txn_log(c);
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
        conn_close_after_write(c);
        return;
    }
    conn_txn_reset(c);
    c->state = CS_HEAD;
    c->head_bytes_seen = 0;
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    conn_touch(c);
    conn_arm(c, c->cfg->idle_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
        conn_try_head(c); /* pipelined */
}

void
forward_on_response_head(struct conn *c)
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
        /* h is this thread's scratch head: dropped (h = NULL) before anything
         * that may parse again (conn_scratch_head). */
        struct http1_head *h = conn_scratch_head();
        if (p == NULL) {
            conn_close(c, "out-of-memory");
            return;
        }
        enum http1_status st = http1_parse_response(p, n, max, t->is_head, h);
        if (st == HTTP1_PARTIAL) {
            return;
        }
        if (st != HTTP1_OK) {
            char msg[256];
            snprintf(msg, sizeof(msg), "The server sent an invalid response (%s).",
                     http1_strerror(st));
            h = NULL;
            conn_reply_error(c, 502, "bad-response", msg);
            return;
        }
        t->resp_bytes += h->head_len;
        if (t->uhead) {
            evbuffer_free(t->uhead);
            t->uhead = NULL;
        }
        if (h->status == 101) {
            if (!t->upgrade) {
                h = NULL;
                conn_reply_error(c, 502, "unexpected-101",
                                 "The server switched protocols unasked.");
                return;
            }
            t->status = 101;
            t->upgrade = 2;
            write_response_head(c, h, 1);
            evbuffer_drain(in, h->head_len);
            h = NULL;
            c->state = CS_TUNNEL;
            t->req_done = 1;
            bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
            bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
            if (evbuffer_get_length(in))
                tunnel_relay(c, c->ubev, c->cbev);
            if (!c->closed && evbuffer_get_length(bufferevent_get_input(c->cbev)))
                tunnel_relay(c, c->cbev, c->ubev);
            return;
        }
        if (h->status < 200) {
            if (t->client_minor == 1) /* HTTP/1.0 clients get no 1xx */
                write_response_head(c, h, 1);
            evbuffer_drain(in, h->head_len);
            h = NULL;
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
        h = NULL;
        conn_watch_client(c, 0); /* from here a gone client shows as a failed write */
        forward_pump_response(c);
        return;
    }
}

void
forward_pump_response(struct conn *c)
{
    struct txn *t = &c->t;
    gate_mark_active(c);
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
        forward_txn_done(c);
        return;
    }
    if (evbuffer_get_length(out) >= CONN_MAX_BUFFER) {
        bufferevent_disable(c->ubev, EV_READ);
        bufferevent_setwatermark(c->cbev, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    }
}

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
        conn_touch(c);
        t->down += bytes;
        t->resp_remain -= bytes < t->resp_remain ? bytes : t->resp_remain;
        gate_mark_active(c);
        break;
    case SPLICE_DONE:
        splicer_free(c->spl);
        c->spl = NULL;
        t->resp_remain = 0;
        t->resp_done = 1;
        bufferevent_enable(c->cbev, EV_WRITE);
        bufferevent_enable(c->ubev, EV_WRITE);
        forward_txn_done(c);
        break;
    case SPLICE_ERROR:
        conn_close(c, err ? "transfer-error" : "upstream-closed-mid-body");
        break;
    }
}

/* A long body of known length with nothing left in user space: let the
 * kernel move it (splice); the bufferevents take over again after it. */
void
forward_try_splice(struct conn *c)
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

/* A pooled connection died before sending anything: try once more on a new
 * one when the request had no body (nothing of it is lost). */
int
forward_retry_fresh(struct conn *c)
{
    struct txn *t = &c->t;
    if (!t->reused || t->retried || t->resp_bytes > 0 || t->req_body != HTTP1_BODY_NONE ||
        t->uhead == NULL || evbuffer_get_length(bufferevent_get_input(c->ubev)) > 0)
        return 0;
    t->retried = 1;
    t->reused = 0;
    conn_free_upstream(c);
    conn_resolve(c);
    return 1;
}
