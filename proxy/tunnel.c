#include "tunnel.h"

#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conn.h"
#include "conn_types.h"
#include "gate.h"
#include "log.h"
#include "sni.h"
#include "splice.h"

/* Tunnel: looks at the client's first bytes for a ClientHello. Returns 1
 * while more bytes are needed (nothing is relayed yet). */
int
tunnel_peek_hello(struct conn *c)
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
    if (st == SNI_OK && gate_decide_sni(c, &info))
        return 1;
    return 0;
}

static void
tunnel_maybe_done(struct conn *c)
{
    if (c->cli_eof && c->up_eof && evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(c->ubev)) == 0)
        conn_close(c, NULL);
}

void
tunnel_relay(struct conn *c, struct bufferevent *from, struct bufferevent *to)
{
    gate_mark_active(c);
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
        conn_touch(c);
        if (dir == 0)
            c->t.up += bytes;
        else
            c->t.down += bytes;
        gate_mark_active(c);
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
void
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
    c->spl = splicer_start(c->w, bufferevent_getfd(c->cbev), bufferevent_getfd(c->ubev), c->cli_eof,
                           c->up_eof, splice_event, c);
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
void
tunnel_eof(struct conn *c, struct bufferevent *from)
{
    struct bufferevent *to = from == c->cbev ? c->ubev : c->cbev;
    int *eof = from == c->cbev ? &c->cli_eof : &c->up_eof;
    *eof = 1;
    tunnel_relay(c, from, to);
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

void
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
