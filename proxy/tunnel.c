#include "tunnel.h"

#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "gate.h"
#include "log.h"
#include "sni.h"
#include "splice.h"

static enum conn_rc
maybe_done(struct conn *c)
{
    if (c->cli_eof && c->up_eof && evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0)
        return conn_close(c, NULL);
    return CONN_GO_ON;
}

/* Moves the first n bytes `from` has read (all: (size_t)-1) to `to`'s
 * output, pausing `from` when full. */
static enum conn_rc
relay_n(struct conn *c, struct bufferevent *from, struct bufferevent *to, size_t n)
{
    struct evbuffer *src = bufferevent_get_input(from);
    struct evbuffer *dst = bufferevent_get_output(to);
    if (n > evbuffer_get_length(src))
        n = evbuffer_get_length(src);
    if (n == 0)
        return CONN_GO_ON;
    if (gate_mark_active(c) == CONN_CLOSED)
        return CONN_CLOSED;
    if (from == c->cbev)
        c->t.up += n;
    else
        c->t.down += n;
    if (n == evbuffer_get_length(src))
        evbuffer_add_buffer(dst, src);
    else
        evbuffer_remove_buffer(src, dst, n);
    if (evbuffer_get_length(dst) >= CONN_MAX_BUFFER) {
        bufferevent_disable(from, EV_READ);
        bufferevent_setwatermark(to, EV_WRITE, CONN_MAX_BUFFER / 2, 0);
    }
    return CONN_GO_ON;
}

/* --- the watch over a tunnel's first bytes ------------------------------
 *
 * A CONNECT tunnel is answered 200 at once, but none of the client's bytes
 * reach the origin before they are decided (t->peek):
 *  - TLS records are read as a server reads them (sni.c); each ClientHello
 *    is decided by its SNI (gate_decide_sni) and relayed, then the
 *    client's later bytes are held again until the server answers: a
 *    HelloRetryRequest means another ClientHello is coming, decided in
 *    turn; any other answer ends the watch (a hello in progress is still
 *    finished and decided first) and the tunnel is spliced as before;
 *  - bytes that are not TLS are read as a plain HTTP request head, whose
 *    Host (or target) is decided like an SNI; the watch ends there;
 *  - what cannot be classified is decided as opaque (gate_decide_opaque):
 *    a hello or head that cannot be read, bytes that are neither TLS nor
 *    HTTP, a client that half-closes with an unfinished hello or head, an
 *    origin that speaks before the client's first bytes are decided (no
 *    TLS or HTTP server does). An opaque tunnel a rule allows is not
 *    watched further.
 * The parsers are fed each byte once (incremental); held bytes are bounded
 * by SNI_MAX_PEEK and SNI_MAX_HTTP_HEAD. */

static int
hello_pending(const struct txn *t)
{
    return t->sw && sni_pending(&t->sw->hello);
}

static void
watch_end(struct conn *c)
{
    struct txn *t = &c->t;
    t->peek = 0;
    t->peek_fed = t->peek_ok = 0;
    conn_sni_watch_free(c);
}

/* One verdict of the client's parser acted on. */
static enum conn_rc
client_verdict(struct conn *c, enum sni_status st, const struct sni_info *info)
{
    struct txn *t = &c->t;
    t->peek_verdicts++;
    enum conn_rc rc =
        st == SNI_OK || st == SNI_NO_SNI ? gate_decide_sni(c, info) : gate_decide_opaque(c);
    if (rc == CONN_CLOSED)
        return rc;
    if (st == SNI_OK || st == SNI_NO_SNI)
        t->peek_ok = t->peek_fed;
    /* Nothing more to read after a plain HTTP head or an allowed opaque
     * tunnel; a ClientHello waits for the server's answer. */
    if (t->peek_http || t->opaque)
        watch_end(c);
    return CONN_GO_ON;
}

/* Feeds the client's new bytes to the parser, acting on each verdict. */
static enum conn_rc
watch_client(struct conn *c)
{
    struct txn *t = &c->t;
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    while (t->peek && t->peek_fed < evbuffer_get_length(in)) {
        struct evbuffer_ptr at;
        struct evbuffer_iovec v;
        if (evbuffer_ptr_set(in, &at, t->peek_fed, EVBUFFER_PTR_SET) < 0 ||
            evbuffer_peek(in, -1, &at, &v, 1) < 1 || v.iov_len == 0)
            return conn_close(c, "internal-error");
        size_t avail = evbuffer_get_length(in) - t->peek_fed;
        size_t len = v.iov_len < avail ? v.iov_len : avail;
        struct sni_info info;
        enum sni_status st;
        size_t used = len;
        struct sni_watch *sw = conn_sni_watch(c);
        if (sw == NULL)
            return conn_close(c, "out-of-memory");
        if (t->peek_http) {
            st = sni_http_feed(&sw->http, v.iov_base, len, &info);
        } else {
            st = sni_feed(&sw->hello, v.iov_base, len, &used, &info);
            if (st == SNI_NOT_TLS) { /* read the same bytes as HTTP */
                t->peek_http = 1;
                t->peek_fed = 0;
                continue;
            }
        }
        t->peek_fed += used;
        if (st == SNI_PARTIAL)
            continue;
        if (client_verdict(c, st, &info) == CONN_CLOSED)
            return CONN_CLOSED;
    }
    if (t->peek && t->srv_done && !hello_pending(t))
        watch_end(c); /* the hellos are over */
    if (t->peek && c->cli_eof) {
        /* No more bytes will come: what is held and undecided cannot be
         * classified; nothing held, nothing to decide. */
        int undecided =
            t->peek_http || t->peek_verdicts == 0 ? t->peek_fed > 0 : hello_pending(t);
        if (undecided && gate_decide_opaque(c) == CONN_CLOSED)
            return CONN_CLOSED;
        watch_end(c);
    }
    return CONN_GO_ON;
}

/* Reads the server's new bytes (all of them are relayed next): a
 * HelloRetryRequest keeps the watch on, anything else ends the hellos.
 * An origin that speaks before the client was decided makes it opaque. */
static enum conn_rc
watch_server(struct conn *c)
{
    struct txn *t = &c->t;
    struct evbuffer *in = bufferevent_get_input(c->ubev);
    if (evbuffer_get_length(in) == 0)
        return CONN_GO_ON;
    if (t->peek_verdicts == 0) {
        if (gate_decide_opaque(c) == CONN_CLOSED)
            return CONN_CLOSED;
        watch_end(c);
        return CONN_GO_ON;
    }
    struct sni_watch *sw = conn_sni_watch(c);
    if (sw == NULL)
        return conn_close(c, "out-of-memory");
    struct evbuffer_iovec v[8];
    size_t off = 0, total = evbuffer_get_length(in);
    while (!t->srv_done && off < total) {
        struct evbuffer_ptr at;
        if (evbuffer_ptr_set(in, &at, off, EVBUFFER_PTR_SET) < 0)
            break;
        int nv = evbuffer_peek(in, -1, &at, v, 8);
        if (nv < 1)
            break;
        for (int i = 0; i < nv && i < 8 && !t->srv_done; i++) {
            const uint8_t *p = v[i].iov_base;
            size_t len = v[i].iov_len < total - off ? v[i].iov_len : total - off;
            while (len > 0 && !t->srv_done) {
                size_t used;
                if (sni_server_feed(&sw->srv, p, len, &used) == SNI_SERVER_DONE)
                    t->srv_done = 1;
                p += used;
                len -= used;
                off += used;
            }
        }
    }
    if (t->srv_done && !hello_pending(t))
        watch_end(c);
    return CONN_GO_ON;
}

/* Moves what `from` has read on, as far as the watch allows. */
static enum conn_rc
pass(struct conn *c, struct bufferevent *from)
{
    struct txn *t = &c->t;
    if (from == c->ubev) {
        if (t->peek && watch_server(c) == CONN_CLOSED)
            return CONN_CLOSED;
        if (relay_n(c, c->ubev, c->cbev, (size_t)-1) == CONN_CLOSED)
            return CONN_CLOSED;
        if (t->peek)
            return CONN_GO_ON;
        /* The watch may have ended here: the client's held bytes go on. */
    } else if (t->peek && watch_client(c) == CONN_CLOSED) {
        return CONN_CLOSED;
    }
    size_t n = t->peek ? t->peek_ok : (size_t)-1;
    if (t->peek) {
        t->peek_fed -= t->peek_ok;
        t->peek_ok = 0;
    }
    return relay_n(c, c->cbev, c->ubev, n);
}

static void
splice_event(void *arg, enum splice_event ev, int dir, size_t bytes, int err)
{
    struct conn *c = arg;
    if (c->closed || c->closing)
        return;
    switch (ev) {
    case SPLICE_MOVED:
        conn_touch(c);
        if (dir == 0)
            c->t.up += bytes;
        else
            c->t.down += bytes;
        (void)gate_mark_active(c); /* may close: splicer_stop ends the callbacks */
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

/* Once a tunnel needs no more inspection and no bytes wait in user space,
 * the kernel relays it (splice). Until then, and when that fails, the
 * bufferevents do. */
static void
try_splice(struct conn *c)
{
    /* TLS on the client side (a decrypted tunnel, the HTTPS proxy port):
     * the bytes are not the socket's, so no splice; the bufferevents copy. */
    if (c->spl || c->t.peek || c->insp.on || c->tls_port || !conn_buffers_empty(c))
        return;
    if (c->cli_eof != c->up_shut || c->up_eof != c->cli_shut)
        return; /* a half-close is still on its way */
    conn_io_pause(c);
    c->spl = splicer_start(c->w, bufferevent_getfd(c->cbev), bufferevent_getfd(c->ubev), c->cli_eof,
                           c->up_eof, splice_event, c);
    if (c->spl == NULL) { /* stay with the bufferevents */
        if (!c->cli_eof)
            bufferevent_enable(c->cbev, EV_READ);
        if (!c->up_eof)
            bufferevent_enable(c->ubev, EV_READ);
        conn_io_resume(c);
        return;
    }
    /* The splicer watches the sockets from now on: the bufferevents go
     * (an idle tunnel then holds little more than its sockets). */
    (void)conn_park(c, 0);
}

/* A tunnel whose client has not sent its first byte yet (the 200 is out,
 * nothing is held): parked until either side speaks. Thousands of
 * browser tunnels opened ahead of use sit here. */
static void
try_park(struct conn *c)
{
    struct txn *t = &c->t;
    if (c->spl == NULL && t->peek && !t->peek_parked && t->peek_fed == 0 &&
        t->peek_verdicts == 0 && !c->cli_eof && !c->up_eof && !c->insp.on &&
        conn_park(c, 1) == 0)
        t->peek_parked = 1;
}

/* A side said EOF: pass the half-close on once its data is out. */
static enum conn_rc
side_eof(struct conn *c, struct bufferevent *from)
{
    struct bufferevent *to = from == c->cbev ? c->ubev : c->cbev;
    int *eof = from == c->cbev ? &c->cli_eof : &c->up_eof;
    *eof = 1;
    if (pass(c, from) == CONN_CLOSED)
        return CONN_CLOSED;
    if (evbuffer_get_length(bufferevent_get_output(to)) == 0) {
        if (to == c->cbev)
            conn_client_shutdown(c);
        else
            shutdown(bufferevent_getfd(to), SHUT_WR);
        if (to == c->ubev)
            c->up_shut = 1;
        else
            c->cli_shut = 1;
    } else {
        bufferevent_setwatermark(to, EV_WRITE, 0, 0);
    }
    return maybe_done(c);
}

/* `to` drained: reading from the other side resumes. */
static enum conn_rc
side_writable(struct conn *c, struct bufferevent *to)
{
    struct bufferevent *from = to == c->cbev ? c->ubev : c->cbev;
    int from_eof = from == c->cbev ? c->cli_eof : c->up_eof;
    int *shut = to == c->cbev ? &c->cli_shut : &c->up_shut;
    if (from_eof) {
        if (!*shut && evbuffer_get_length(bufferevent_get_output(to)) == 0) {
            if (to == c->cbev)
                conn_client_shutdown(c);
            else
                shutdown(bufferevent_getfd(to), SHUT_WR);
            *shut = 1;
        }
        return maybe_done(c);
    }
    bufferevent_setwatermark(to, EV_WRITE, 0, 0);
    bufferevent_enable(from, EV_READ);
    try_splice(c);
    try_park(c);
    return CONN_GO_ON;
}

static enum conn_rc
tunnel_client_read(struct conn *c)
{
    if (pass(c, c->cbev) == CONN_CLOSED)
        return CONN_CLOSED;
    try_splice(c);
    return CONN_GO_ON;
}

static enum conn_rc
tunnel_client_drained(struct conn *c)
{
    return side_writable(c, c->cbev);
}

static enum conn_rc
tunnel_client_event(struct conn *c, short what)
{
    if (what & BEV_EVENT_EOF)
        return side_eof(c, c->cbev);
    return conn_close(c, "client-error");
}

static enum conn_rc
tunnel_upstream_read(struct conn *c)
{
    if (pass(c, c->ubev) == CONN_CLOSED)
        return CONN_CLOSED;
    try_splice(c);
    return CONN_GO_ON;
}

static enum conn_rc
tunnel_upstream_drained(struct conn *c)
{
    return side_writable(c, c->ubev);
}

static enum conn_rc
tunnel_upstream_event(struct conn *c, short what)
{
    if (what & BEV_EVENT_EOF)
        return side_eof(c, c->ubev);
    return conn_close(c, "upstream-error");
}

static enum conn_rc
tunnel_timeout(struct conn *c, uint64_t now)
{
    if (conn_rearm_idle(c, now))
        return CONN_GO_ON;
    return conn_close(c, "idle-timeout");
}

const struct conn_ops tunnel_ops = {
    .name = "tunnel",
    .client_read = tunnel_client_read,
    .client_drained = tunnel_client_drained,
    .client_event = tunnel_client_event,
    .upstream_read = tunnel_upstream_read,
    .upstream_drained = tunnel_upstream_drained,
    .upstream_event = tunnel_upstream_event,
    .timeout = tunnel_timeout,
};

enum conn_rc
tunnel_start(struct conn *c)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    struct txn *t = &c->t;
    conn_watch_client(c, 0); /* the client is read from now on */
    t->status = 200;
    t->down += sizeof(ok) - 1;
    bufferevent_write(c->cbev, ok, sizeof(ok) - 1);
    t->peek = 1; /* its parsers are made when the first bytes come */
    bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
        conn_kick_read(c); /* the client did not wait for the 200 */
    return CONN_GO_ON;
}

enum conn_rc
tunnel_start_upgraded(struct conn *c)
{
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    if (relay_n(c, c->ubev, c->cbev, (size_t)-1) == CONN_CLOSED)
        return CONN_CLOSED;
    return relay_n(c, c->cbev, c->ubev, (size_t)-1);
}
