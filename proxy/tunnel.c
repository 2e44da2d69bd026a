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

/* Looks at the client's first bytes for a ClientHello. CONN_SUSPENDED
 * while more bytes are needed (nothing is relayed yet), CONN_GO_ON to relay,
 * CONN_CLOSED when the SNI was denied. */
static enum conn_rc
peek_hello(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return CONN_SUSPENDED;
    const uint8_t *p = evbuffer_pullup(in, -1);
    struct sni_info info;
    enum sni_status st = p ? sni_parse(p, n, &info) : SNI_NOT_TLS;
    if (st == SNI_PARTIAL)
        return CONN_SUSPENDED;
    c->t.peek = 0;
    if (st == SNI_OK)
        return gate_decide_sni(c, &info);
    return CONN_GO_ON;
}

static enum conn_rc
maybe_done(struct conn *c)
{
    if (c->cli_eof && c->up_eof && evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0)
        return conn_close(c, NULL);
    return CONN_GO_ON;
}

/* Moves what `from` has read to `to`'s output, pausing `from` when full. */
static enum conn_rc
relay(struct conn *c, struct bufferevent *from, struct bufferevent *to)
{
    if (gate_mark_active(c) == CONN_CLOSED)
        return CONN_CLOSED;
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
    return CONN_GO_ON;
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
    if (c->spl || c->t.peek || !conn_buffers_empty(c))
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
    }
}

/* A side said EOF: pass the half-close on once its data is out. */
static enum conn_rc
side_eof(struct conn *c, struct bufferevent *from)
{
    struct bufferevent *to = from == c->cbev ? c->ubev : c->cbev;
    int *eof = from == c->cbev ? &c->cli_eof : &c->up_eof;
    *eof = 1;
    if (relay(c, from, to) == CONN_CLOSED)
        return CONN_CLOSED;
    if (evbuffer_get_length(bufferevent_get_output(to)) == 0) {
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
            shutdown(bufferevent_getfd(to), SHUT_WR);
            *shut = 1;
        }
        return maybe_done(c);
    }
    bufferevent_setwatermark(to, EV_WRITE, 0, 0);
    bufferevent_enable(from, EV_READ);
    try_splice(c);
    return CONN_GO_ON;
}

static enum conn_rc
tunnel_client_read(struct conn *c)
{
    if (c->t.peek) {
        enum conn_rc rc = peek_hello(c);
        if (rc != CONN_GO_ON)
            return rc;
    }
    if (relay(c, c->cbev, c->ubev) == CONN_CLOSED)
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
    return relay(c, c->ubev, c->cbev);
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
    t->peek = 1;
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
    if (evbuffer_get_length(bufferevent_get_input(c->ubev)) &&
        relay(c, c->ubev, c->cbev) == CONN_CLOSED)
        return CONN_CLOSED;
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
        return relay(c, c->cbev, c->ubev);
    return CONN_GO_ON;
}
