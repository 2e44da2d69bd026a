#include "inspect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "catalog.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "sni.h"
#include "tlsmint.h"
#include "worker.h"

/* The certificate is chosen once the ClientHello is read: minted for its
 * SNI when that names another host than the CONNECT (for which the
 * session was made), the CONNECT host's otherwise. Runs inside the
 * handshake (SSL_set_cert_cb): 1 to go on, 0 to fail it. */
static int
pick_certificate(SSL *ssl, void *arg)
{
    struct conn *c = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip = 0;
    int n = sni ? sni_normalize(sni, strlen(sni), norm, sizeof(norm), &is_ip) : 0;
    if (n <= 0 || strcmp(norm, c->t.rq.host) == 0)
        return 1;
    time_t now;
    conn_wall_clock(c, &now, NULL);
    SSL *other = tlsmint_server_ssl(c->cfg->tls_ca, norm, now);
    X509 *leaf = other ? SSL_get_certificate(other) : NULL;
    EVP_PKEY *key = other ? SSL_get_privatekey(other) : NULL;
    int ok =
        leaf && key && SSL_use_certificate(ssl, leaf) == 1 && SSL_use_PrivateKey(ssl, key) == 1;
    SSL_free(other);
    return ok;
}

/* The 200 has gone out: TLS with the client over the same socket. */
static enum conn_rc
accept_tls(struct conn *c)
{
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0) {
        /* Bytes sent before the 200 was read were read as plain text
         * already: they cannot be handed to TLS. (Clients wait for it.) */
        return conn_close(c, "tls-data-before-200");
    }
    time_t now;
    conn_wall_clock(c, &now, NULL);
    SSL *ssl = tlsmint_server_ssl(c->cfg->tls_ca, c->t.rq.host, now);
    if (ssl == NULL)
        return conn_close(c, "tls-mint-failed");
    SSL_set_cert_cb(ssl, pick_certificate, c);
    struct bufferevent *bev;
    if (c->tls_port) {
        /* The HTTPS proxy port: the tunnel's TLS runs inside the port's
         * own, a filter over the client's TLS bufferevent. */
        bev = bufferevent_openssl_filter_new(c->w->base, c->cbev, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            SSL_free(ssl);
            return conn_close(c, "out-of-memory");
        }
        conn_wrap_client(c, bev);
        bufferevent_enable(bufferevent_get_underlying(bev), EV_READ | EV_WRITE);
    } else {
        evutil_socket_t fd = bufferevent_getfd(c->cbev);
        bev = bufferevent_openssl_socket_new(c->w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            SSL_free(ssl);
            return conn_close(c, "out-of-memory");
        }
        conn_replace_client(c, bev);
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    conn_arm(c, c->cfg->header_timeout_ms);
    return CONN_GO_ON;
}

/* Whether the tunnel's own TLS with the client is set up (c->cbev is it):
 * on the HTTPS proxy port c->cbev is TLS from the start, and the tunnel's
 * is a filter over it. */
static int
tunnel_tls(struct conn *c)
{
    if (c->tls_port)
        return bufferevent_get_underlying(c->cbev) != NULL;
    return bufferevent_openssl_get_ssl(c->cbev) != NULL;
}

static enum conn_rc
inspect_client_drained(struct conn *c)
{
    if (tunnel_tls(c))
        return CONN_GO_ON; /* the handshake's own writes */
    return accept_tls(c);
}

/* The client's TLS is up: what the requests inside share, then the
 * tunnel's own line and on to the head phase over the decrypted side. */
static enum conn_rc
tls_ready(struct conn *c)
{
    struct txn *t = &c->t;
    SSL *ssl = bufferevent_openssl_get_ssl(c->cbev);
    const char *sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip = 0;
    int n = sni ? sni_normalize(sni, strlen(sni), norm, sizeof(norm), &is_ip) : 0;
    if (n < 0)
        return conn_close(c, "tls-bad-sni");
    if (sni && t->sni == NULL && (t->sni = strdup(sni)) == NULL)
        return conn_close(c, "out-of-memory");
    c->insp.host = strdup(n > 0 ? norm : t->rq.host);
    c->insp.port = t->rq.port;
    c->insp.auth = t->rq.auth == AUTH_OK ? AUTH_OK : AUTH_NONE;
    c->insp.user = c->insp.auth == AUTH_OK ? strdup(t->rq.user) : NULL;
    if (c->insp.host == NULL || (c->insp.auth == AUTH_OK && c->insp.user == NULL))
        return conn_close(c, "out-of-memory");
    c->insp.on = 1;
    return conn_keepalive(c);
}

/* A client that does not trust the CA says so with an alert. */
static int
untrusted_alert(unsigned long e)
{
    int r = ERR_GET_REASON(e);
    return r == SSL_R_TLSV1_ALERT_UNKNOWN_CA || r == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
           r == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN;
}

static enum conn_rc
inspect_client_event(struct conn *c, short what)
{
    if (what & BEV_EVENT_CONNECTED)
        return tls_ready(c);
    if (!tunnel_tls(c))
        return conn_close(c, (what & BEV_EVENT_EOF) ? "client-closed" : "client-error");
    unsigned long e, last = 0;
    int untrusted = 0;
    while ((e = bufferevent_get_openssl_error(c->cbev)) != 0) {
        untrusted |= untrusted_alert(e);
        last = e;
    }
    if (last)
        log_debug("client TLS: %s", ERR_reason_error_string(last));
    if (untrusted)
        return conn_close(c, "tls-untrusted");
    return conn_close(c, (what & BEV_EVENT_EOF) ? "client-closed" : "tls-handshake-failed");
}

static enum conn_rc
inspect_timeout(struct conn *c, uint64_t now)
{
    (void)now;
    return conn_close(c, "tls-handshake-timeout");
}

const struct conn_ops inspect_ops = {
    .name = "inspect",
    .client_drained = inspect_client_drained,
    .client_event = inspect_client_event,
    .timeout = inspect_timeout,
};

enum conn_rc
inspect_start(struct conn *c)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    struct txn *t = &c->t;
    conn_watch_client(c, 0);
    t->status = 200;
    t->down += sizeof(ok) - 1;
    /* Nothing more is read as plain text: the client's TLS waits in the
     * socket for the TLS bufferevent. */
    bufferevent_disable(c->cbev, EV_READ);
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    bufferevent_write(c->cbev, ok, sizeof(ok) - 1);
    bufferevent_enable(c->cbev, EV_WRITE);
    conn_arm(c, c->cfg->header_timeout_ms);
    return CONN_GO_ON;
}
