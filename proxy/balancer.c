#include "balancer.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "proxyproto.h"
#include "util/addr.h"
#include "worker.h"

/* Reads the header from what the client input holds. The client address
 * replaces the balancer's (LOCAL, UNKNOWN and UNSPEC keep the balancer's:
 * its own health checks); bytes after the header stay for the next phase.
 * A connection from a balancer without a header, or with a broken one, is
 * answered 400 and logged: a balancer that sends the PROXY protocol sends
 * it on every connection, health checks included. On the HTTPS proxy
 * port the header comes before TLS: it is read from the plain socket, no
 * further than its end (proxyproto_room), the errors above are answered in
 * plain text (TLS has not started), and then TLS starts over the same
 * socket with the ClientHello still unread. */
static enum conn_rc
header_read(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return CONN_GO_ON;
    c->head_bytes_seen = 1;
    size_t n = avail < PROXYPROTO_MAX ? avail : PROXYPROTO_MAX;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
    if (p == NULL)
        return conn_close(c, "out-of-memory");
    struct proxyproto_result r;
    const char *why = NULL;
    enum proxyproto_status st = proxyproto_parse(p, n, &r, &why);
    char ip[64];
    switch (st) {
    case PROXYPROTO_PARTIAL:
        /* a header is never longer than PROXYPROTO_MAX; on the HTTPS proxy
         * port, the next read stops where the header may end */
        if (c->tls_after_header)
            bufferevent_setwatermark(c->cbev, EV_READ, 0, n + proxyproto_room(p, n));
        return CONN_GO_ON;
    case PROXYPROTO_NONE:
        log_warnx("PROXY protocol: %s sent no header",
                  addr_format((const struct sockaddr *)&c->peer, ip, sizeof(ip)));
        return conn_reply_error(c, 400, "proxy-protocol-missing",
                                "A connection from a load balancer must start with a PROXY "
                                "protocol header.");
    case PROXYPROTO_INVALID:
        log_warnx("PROXY protocol: bad header from %s: %s",
                  addr_format((const struct sockaddr *)&c->peer, ip, sizeof(ip)), why);
        return conn_reply_error(c, 400, "proxy-protocol-invalid",
                                "The PROXY protocol header could not be understood.");
    case PROXYPROTO_OK:
        break;
    }
    evbuffer_drain(in, r.consumed);
    c->head_bytes_seen = 0;
    if (c->tls_after_header) {
        /* The ClientHello is still in the socket: OpenSSL reads it. */
        if (evbuffer_get_length(in) > 0)
            return conn_close(c, "proxy-protocol-invalid"); /* cannot happen: read by room */
        if (conn_start_tls(c) == CONN_CLOSED)
            return CONN_CLOSED;
    }
    unsigned count = 0;
    if (!r.local) {
        count = worker_conn_readdress(c->w, (const struct sockaddr *)&c->peer,
                                      (const struct sockaddr *)&r.src);
        socklen_t alen = r.srclen < sizeof(c->peer) ? r.srclen : sizeof(c->peer);
        memcpy(&c->peer, &r.src, alen); /* AF_INET or AF_INET6 (proxyproto.h) */
        c->peerlen = alen;
        if (count == 0)
            return conn_close(c, "out-of-memory");
    }
    return conn_admit(c, !r.local && count > c->cfg->max_per_client);
}

static enum conn_rc
header_event(struct conn *c, short what)
{
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)
        return conn_close(c, NULL); /* a balancer's TCP check: connect, close */
    conn_txn_begin(c);
    return conn_close(c, (what & BEV_EVENT_EOF) ? "client-closed" : "client-error");
}

static enum conn_rc
header_timeout(struct conn *c, uint64_t now)
{
    (void)now;
    if (c->head_bytes_seen)
        return conn_reply_error(c, 408, "header-timeout",
                                "The PROXY protocol header took too long to arrive.");
    return conn_close(c, NULL);
}

const struct conn_ops balancer_ops = {
    .name = "proxy-protocol",
    .client_read = header_read,
    .client_event = header_event,
    .timeout = header_timeout,
};
