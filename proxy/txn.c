#include "txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "forward.h"
#include "gate.h"
#include "http1.h"
#include "inspect.h"
#include "local.h"
#include "proxyproto.h"
#include "request.h"
#include "snapshot.h"
#include "tunnel.h"
#include "upstream.h"

/* The upstream is connected (fresh or from the pool): on to the phase. */
static enum conn_rc
upstream_ready(struct conn *c)
{
    if (c->t.is_connect) {
        conn_set_phase(c, &tunnel_ops);
        return tunnel_start(c);
    }
    conn_set_phase(c, &forward_ops);
    return forward_start(c);
}

/* The decision allowed: on to the upstream. */
static enum conn_rc
proceed(struct conn *c)
{
    /* An OPTIONS or TRACE with Max-Forwards: 0 ends here, allowed or not
     * as any request to its host. */
    if (c->t.rq.reply != NULL)
        return conn_reply_page(c, c->t.rq.reply, c->t.rq.reply_len, 200, NULL);
    c->t.stage = STAGE_HEAD;
    if (c->t.is_connect && c->t.inspect) {
        /* no upstream for the tunnel: one per request inside */
        conn_set_phase(c, &inspect_ops);
        return inspect_start(c);
    }
    c->up_ready = upstream_ready;
    return upstream_open(c, !c->t.is_connect);
}

static enum conn_rc
decide(struct conn *c)
{
    /* While the upstream is prepared, the client's next bytes wait. */
    bufferevent_disable(c->cbev, EV_READ);
    enum conn_rc rc = gate_decide(c, proceed);
    if (rc != CONN_GO_ON)
        return rc;
    return proceed(c);
}

/* A head over the limits before authentication: a 407 now, and the rest
 * of the head is never read. */
static enum conn_rc
refuse_preauth(struct conn *c, const uint8_t *p, size_t n)
{
    struct txn *t = &c->t;
    c->head_scanned = 0;
    conn_txn_begin(c);
    t->up = n;
    t->reason = "head-too-large-before-auth";
    request_note_method(p, n, t->rq.method, sizeof(t->rq.method));
    char *page = NULL;
    size_t len = local_auth_page(c->snap, NULL, &page);
    enum conn_rc rc = conn_reply_page(c, page, len, 407, NULL);
    free(page);
    return rc;
}

/* Parses what the client input holds; on a whole head, starts the
 * transaction. */
static enum conn_rc
head_read(struct conn *c)
{
    struct txn *t = &c->t;
    if (t->active)
        return CONN_GO_ON; /* a decision is pending: the next head waits */
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return CONN_GO_ON;
    if (!c->head_bytes_seen) {
        c->head_bytes_seen = 1;
        conn_arm(c, c->cfg->header_timeout_ms);
    }
    size_t max = (size_t)c->cfg->max_header_bytes;
    size_t n = avail < max + 1 ? avail : max + 1;
    /* Inside a decrypted tunnel the identity is the tunnel's, settled. */
    int preauth = !c->insp.on && request_preauth_limited(c->snap);
    /* A head arriving in small pieces is parsed again only when a new line
     * ends (or a limit is crossed), not on every read: a client sending a
     * byte at a time costs one parse per line, not one per byte. */
    if (c->head_scanned > 0 && n > c->head_scanned && n <= max &&
        !(preauth && n > PREAUTH_HEAD_BYTES)) {
        struct evbuffer_ptr from;
        if (evbuffer_ptr_set(in, &from, c->head_scanned, EVBUFFER_PTR_SET) == 0 &&
            evbuffer_search(in, "\n", 1, &from).pos < 0) {
            c->head_scanned = n;
            return CONN_GO_ON;
        }
    }
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
    if (p == NULL)
        return conn_close(c, "out-of-memory");
    /* A PROXY protocol header where none is expected: from a client not
     * in [proxy] proxy_protocol, or a second one after a balancer's (a
     * client behind the balancer claiming another address). */
    if (!c->first_head_checked && !c->insp.on) {
        struct proxyproto_result ppr;
        enum proxyproto_status pps = proxyproto_parse(p, n, &ppr, NULL);
        if (pps != PROXYPROTO_PARTIAL)
            c->first_head_checked = 1;
        if (pps == PROXYPROTO_OK || pps == PROXYPROTO_INVALID) {
            c->head_scanned = 0;
            return conn_reply_error(c, 400, "proxy-protocol-not-allowed",
                                    "This address may not send a PROXY protocol header.");
        }
    }
    /* h is this thread's scratch head: not used after anything that may
     * parse again (conn_scratch_head). */
    struct http1_head *h = conn_scratch_head();
    enum http1_status st = http1_parse_request(p, n, max, h);
    c->head_scanned = st == HTTP1_PARTIAL ? n : 0;
    if (preauth && request_preauth_refused(c->snap, st, n, h))
        return refuse_preauth(c, p, n);
    if (st == HTTP1_PARTIAL)
        return CONN_GO_ON;
    conn_txn_begin(c); /* the snapshot current now decides this request */
    if (st != HTTP1_OK) {
        request_note_method(p, n, t->rq.method, sizeof(t->rq.method));
        return conn_reply_error(c, http1_error_code(st), http1_strerror(st),
                                "The request could not be understood.");
    }
    struct request_refusal ref;
    int refused =
        c->insp.on ? request_from_inner_head(h, c->snap, c->insp.host, c->insp.port, &t->rq, &ref)
                   : request_from_head(h, c->snap, &t->rq, &ref);
    if (c->insp.on && c->insp.user && !(refused && ref.status == 0)) {
        /* the tunnel's identity is every request's */
        t->rq.user = strdup(c->insp.user);
        if (t->rq.user == NULL)
            return conn_close(c, "out-of-memory");
        t->rq.auth = c->insp.auth;
    }
    size_t head_len = h->head_len;
    h = NULL;
    t->is_connect = t->rq.kind == REQUEST_CONNECT; /* refused or not: logged ev=tunnel */
    if (refused) {
        /* The page counts every byte read so far (head and what followed)
         * as the client's: none of it goes anywhere. */
        if (ref.status == 0)
            return conn_close(c, ref.reason);
        return conn_reply_error(c, ref.status, ref.reason, ref.detail);
    }
    t->up = head_len;
    evbuffer_drain(in, head_len);
    if (c->draining)
        t->rq.client_close = 1;
    t->req_remain = t->rq.content_length;
    t->req_done = t->rq.body == HTTP1_BODY_NONE;
    return decide(c);
}

static enum conn_rc
head_event(struct conn *c, short what)
{
    if (!c->t.active && evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0) {
        if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
            evbuffer_get_length(bufferevent_get_output(c->cbev)) > 0) {
            /* The client half-closed before the last answer had gone out
             * (keep-alive): that answer is still owed. */
            c->cli_eof = 1;
            return conn_close_after_write(c);
        }
        return conn_close(c, NULL); /* idle keep-alive connection closed by the client */
    }
    conn_txn_begin(c);
    return conn_close(c, (what & BEV_EVENT_EOF) ? "client-closed" : "client-error");
}

static enum conn_rc
head_timeout(struct conn *c, uint64_t now)
{
    (void)now;
    if (c->t.stage == STAGE_DECIDING)
        return conn_reply_error(c, 503, "auth-timeout", "The password check took too long.");
    if (c->head_bytes_seen)
        return conn_reply_error(c, 408, "header-timeout",
                                "The request head took too long to arrive.");
    return conn_close(c, NULL); /* idle: close quietly */
}

const struct conn_ops txn_head_ops = {
    .name = "head",
    .client_read = head_read,
    .client_event = head_event,
    .timeout = head_timeout,
};
