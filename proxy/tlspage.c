#define _GNU_SOURCE /* memmem(3) */
#include "tlspage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "catalog.h"
#include "config.h"
#include "conn.h"
#include "errpage.h"
#include "http1.h"
#include "local.h"
#include "policy.h"
#include "rules.h"
#include "snapshot.h"
#include "sni.h"
#include "tlsmint.h"
#include "usage.h"

/* The request inside TLS is read up to this much (max_header_bytes is the
 * tighter bound when smaller): its head is all a page needs. */
#define TLSPAGE_MAX_REQUEST 65536
/* Client bytes waiting for OpenSSL beyond this close the connection. */
#define TLSPAGE_MAX_PENDING (256 * 1024)

struct tlspage {
    enum verdict v;
    int quota_rule; /* VERDICT_QUOTA_PAGE: the rule whose quota is used up */
    SSL *ssl;       /* NULL until the name to mint for is known */
    BIO *rbio;      /* the client's TLS bytes, to OpenSSL (owned by ssl) */
    BIO *wbio;      /* OpenSSL's bytes, to the client (owned by ssl) */
    int named;      /* the ClientHello was read (or the name was given) */
    size_t fed;     /* bytes of the client input given to the hello parser */
    char name[CATALOG_MAX_HOST + 1];
    int handshake_done;
    uint8_t *req; /* the plaintext request so far */
    size_t req_len;
    int head_only; /* the request inside is a HEAD: no page body */
};

static void
state_free(void *arg)
{
    struct tlspage *s = arg;
    if (s == NULL)
        return;
    SSL_free(s->ssl);
    free(s->req);
    free(s);
}

static struct tlspage *
state(struct conn *c)
{
    return c->t.phase_state;
}

/* What OpenSSL wrote goes to the client. */
static enum conn_rc
flush_tls(struct conn *c)
{
    struct tlspage *s = state(c);
    char buf[16384];
    int n;
    while ((n = BIO_read(s->wbio, buf, sizeof(buf))) > 0) {
        if (bufferevent_write(c->cbev, buf, (size_t)n) != 0)
            return conn_close(c, "out-of-memory");
        c->t.down += (uint64_t)n;
    }
    return CONN_GO_ON;
}

/* The page for the tunnel's verdict, from the same renderer and templates
 * as the pages of plain HTTP (local.h): the one place that builds it.
 * `authority` and `url` are the request's, inside TLS; the page's {host} is
 * the name the certificate was minted for. Its length, *out malloc'd. */
static size_t
page_for(struct conn *c, enum verdict v, const char *authority, const char *url, char **out)
{
    struct tlspage *s = state(c);
    struct txn *t = &c->t;
    time_t now;
    conn_wall_clock(c, &now, NULL);
    if (v == VERDICT_WARN_PAGE)
        return local_warn_page_tls(c->snap, t->platform, t->rule, authority, url, s->name,
                                   t->identity, now, out);
    if (v == VERDICT_QUOTA_PAGE) {
        struct tm local;
        conn_local_tm(now, &local);
        return local_quota_page(c->snap, t->platform, s->quota_rule, s->name, t->identity, &local,
                                out);
    }
    return local_deny_page(c->snap, t->platform, t->rule, s->name, t->identity, out);
}

/* Writes a whole HTTP response inside TLS, then close_notify, and closes
 * once it has gone out. */
static enum conn_rc
answer(struct conn *c, const char *resp, size_t n, int status, const char *reason)
{
    struct tlspage *s = state(c);
    struct txn *t = &c->t;
    if (n == 0)
        return conn_close(c, "page-too-large");
    if (reason && t->reason == NULL)
        t->reason = reason;
    t->status = status;
    t->answered_here = 1;
    if (s->head_only) { /* RFC 9110 9.3.2: the head alone */
        const char *end = memmem(resp, n, "\r\n\r\n", 4);
        if (end)
            n = (size_t)(end + 4 - resp);
    }
    if (SSL_write(s->ssl, resp, (int)n) != (int)n) {
        ERR_clear_error();
        return conn_close(c, "tls-error");
    }
    (void)SSL_shutdown(s->ssl);
    ERR_clear_error();
    if (flush_tls(c) == CONN_CLOSED)
        return CONN_CLOSED;
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    evbuffer_drain(in, evbuffer_get_length(in));
    return conn_close_after_write(c);
}

/* The request inside TLS is here: its answer. */
static enum conn_rc
on_request(struct conn *c, const struct http1_head *h)
{
    struct tlspage *s = state(c);
    struct txn *t = &c->t;
    char page[16384];
    struct local_tls_route rt;
    s->head_only = h->method.len == 4 && memcmp(h->method.p, "HEAD", 4) == 0;
    if (local_tls_route(s->name, t->rq.port, h->host.p, h->host.len, h->target.p, h->target.len,
                        s->v == VERDICT_WARN_PAGE, &rt) < 0) {
        static const char too_long[] = "HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
        return answer(c, too_long, sizeof(too_long) - 1, 414, "uri-too-long");
    }
    if (rt.is_continue) {
        /* The warn page's Continue link, on the warned host itself. */
        time_t now;
        conn_wall_clock(c, &now, NULL);
        struct tm local;
        conn_local_tm(now, &local);
        int status = 0;
        const char *why = NULL;
        const char *user = t->rq.auth == AUTH_OK ? t->rq.user : NULL;
        size_t n = local_answer(c->snap, t->identity, user, t->roles, rt.target, now, &local, page,
                                sizeof(page), &status, &why);
        return answer(c, page, n, status, why);
    }
    if (s->v == VERDICT_WARN_PAGE) {
        /* A Continue recorded since this tunnel was decided (a browser
         * opens several at once and keeps the spare ones): the page asked
         * for again, on a new tunnel, which is then spliced untouched. */
        const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
        time_t now;
        conn_wall_clock(c, &now, NULL);
        if (usage_continue_ok(t->identity, p ? p->name : "unclassified", (int64_t)now)) {
            int rn = snprintf(page, sizeof(page),
                              "HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\n"
                              "Cache-Control: no-store\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n",
                              rt.url);
            return answer(c, page, rn > 0 && (size_t)rn < sizeof(page) ? (size_t)rn : 0, 307, NULL);
        }
    }
    char *body = NULL;
    size_t n = page_for(c, s->v, rt.authority, rt.url, &body);
    enum conn_rc rc = answer(c, body, n, 403, NULL);
    free(body);
    return rc;
}

/* A handshake that failed: a client that does not trust the CA says so
 * with an alert (unknown_ca 48, bad_certificate 42; certificate_unknown 46
 * from some clients). */
static enum conn_rc
handshake_failed(struct conn *c)
{
    unsigned long e;
    const char *why = "tls-handshake-failed";
    while ((e = ERR_get_error()) != 0) {
        int alert = ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET;
        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            (alert == SSL_AD_UNKNOWN_CA || alert == SSL_AD_BAD_CERTIFICATE ||
             alert == SSL_AD_CERTIFICATE_UNKNOWN))
            why = "tls-untrusted";
    }
    (void)flush_tls(c); /* our own alert, if any */
    return conn_close_denied(c, why);
}

/* Creates the TLS session for s->name and feeds it what the client sent. */
static enum conn_rc
start_tls(struct conn *c)
{
    struct tlspage *s = state(c);
    time_t now;
    conn_wall_clock(c, &now, NULL);
    if ((s->ssl = tlsmint_server_ssl(c->cfg->tls_ca, s->name, now)) == NULL)
        return conn_close(c, "tls-mint-failed");
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (s->rbio == NULL || s->wbio == NULL) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        s->rbio = s->wbio = NULL;
        return conn_close(c, "out-of-memory");
    }
    BIO_set_mem_eof_return(s->rbio, -1); /* empty: want more, not EOF */
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    return CONN_GO_ON;
}

/* Reads the ClientHello's SNI from the client input (not consumed: it
 * goes to OpenSSL next). CONN_SUSPENDED while incomplete. */
static enum conn_rc
read_name(struct conn *c)
{
    struct tlspage *s = state(c);
    struct txn *t = &c->t;
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t avail = evbuffer_get_length(in);
    while (s->fed < avail) {
        struct evbuffer_ptr at;
        struct evbuffer_iovec v;
        if (evbuffer_ptr_set(in, &at, s->fed, EVBUFFER_PTR_SET) < 0 ||
            evbuffer_peek(in, -1, &at, &v, 1) < 1 || v.iov_len == 0)
            return conn_close(c, "internal-error");
        size_t len = v.iov_len < avail - s->fed ? v.iov_len : avail - s->fed;
        size_t used = len;
        struct sni_info info;
        struct sni_watch *sw = conn_sni_watch(c);
        if (sw == NULL)
            return conn_close(c, "out-of-memory");
        enum sni_status st = sni_feed(&sw->hello, v.iov_base, len, &used, &info);
        s->fed += used;
        if (st == SNI_PARTIAL)
            continue;
        if (st == SNI_NOT_TLS || st == SNI_INVALID)
            return conn_close_denied(c, "tls-page-not-tls");
        char norm[CATALOG_MAX_HOST + 1];
        int is_ip = 0;
        if (st == SNI_OK && info.has_sni && t->sni == NULL) {
            t->sni = strdup(info.sni);
            if (t->sni == NULL)
                return conn_close(c, "out-of-memory");
        }
        if (st == SNI_OK && info.has_sni &&
            sni_normalize(info.sni, info.sni_len, norm, sizeof(norm), &is_ip) > 0)
            snprintf(s->name, sizeof(s->name), "%s", norm);
        s->named = 1;
        return start_tls(c);
    }
    if (s->fed > SNI_MAX_PEEK)
        return conn_close_denied(c, "tls-page-not-tls");
    return CONN_SUSPENDED;
}

static enum conn_rc
tlspage_client_read(struct conn *c)
{
    struct tlspage *s = state(c);
    struct txn *t = &c->t;
    if (!s->named) {
        enum conn_rc rc = read_name(c);
        if (rc != CONN_GO_ON)
            return rc == CONN_SUSPENDED ? CONN_GO_ON : rc;
    }
    /* Everything the client sent goes to OpenSSL. */
    struct evbuffer *in = bufferevent_get_input(c->cbev);
    size_t n = evbuffer_get_length(in);
    while (n > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        int w = BIO_write(s->rbio, v.iov_base, (int)(v.iov_len < 65536 ? v.iov_len : 65536));
        if (w <= 0)
            return conn_close(c, "out-of-memory");
        evbuffer_drain(in, (size_t)w);
        t->up += (uint64_t)w;
        n -= (size_t)w;
    }
    /* What OpenSSL has not read yet stays bounded: a handshake and one
     * request head never need more. */
    if (BIO_ctrl_pending(s->rbio) > TLSPAGE_MAX_PENDING)
        return conn_close_denied(c, "tls-too-much-data");
    if (!s->handshake_done) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int err = SSL_get_error(s->ssl, r);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return flush_tls(c);
            return handshake_failed(c);
        }
        s->handshake_done = 1;
        conn_arm(c, c->cfg->header_timeout_ms); /* now for the request */
    }
    size_t max = c->cfg->max_header_bytes < TLSPAGE_MAX_REQUEST ? c->cfg->max_header_bytes
                                                                : TLSPAGE_MAX_REQUEST;
    for (;;) {
        if (s->req == NULL && (s->req = malloc(max + 1)) == NULL)
            return conn_close(c, "out-of-memory");
        if (s->req_len > max)
            break;
        int r = SSL_read(s->ssl, s->req + s->req_len, (int)(max + 1 - s->req_len));
        if (r <= 0) {
            int err = SSL_get_error(s->ssl, r);
            ERR_clear_error();
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                break;
            if (err == SSL_ERROR_ZERO_RETURN)
                return conn_close(c, "client-closed");
            return conn_close_denied(c, "tls-error");
        }
        s->req_len += (size_t)r;
    }
    if (flush_tls(c) == CONN_CLOSED)
        return CONN_CLOSED;
    if (s->req_len == 0)
        return CONN_GO_ON;
    struct http1_head *h = conn_scratch_head();
    enum http1_status st = http1_parse_request(s->req, s->req_len, max, h);
    if (st == HTTP1_PARTIAL)
        return CONN_GO_ON;
    if (st != HTTP1_OK) {
        char resp[256];
        int code = http1_error_code(st);
        int rn = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code,
                          errpage_reason_phrase(code));
        return answer(c, resp, rn > 0 ? (size_t)rn : 0, code, http1_strerror(st));
    }
    return on_request(c, h);
}

static enum conn_rc
tlspage_client_event(struct conn *c, short what)
{
    struct tlspage *s = state(c);
    if (what & BEV_EVENT_EOF) {
        c->cli_eof = 1;
        /* An alert that came with the end is read first. */
        if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0 &&
            tlspage_client_read(c) == CONN_CLOSED)
            return CONN_CLOSED;
        return conn_close(c, s->handshake_done ? "client-closed" : "tls-handshake-failed");
    }
    return conn_close(c, "client-error");
}

static enum conn_rc
tlspage_timeout(struct conn *c, uint64_t now)
{
    (void)now;
    struct tlspage *s = state(c);
    return conn_close(c, s->handshake_done ? "header-timeout" : "tls-handshake-timeout");
}

const struct conn_ops tlspage_ops = {
    .name = "tlspage",
    .client_read = tlspage_client_read,
    .client_event = tlspage_client_event,
    .timeout = tlspage_timeout,
};

/* The phase's state, the name from the CONNECT host until the hello
 * says otherwise. */
static enum conn_rc
enter(struct conn *c, enum verdict v, int quota_rule)
{
    struct txn *t = &c->t;
    struct tlspage *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return conn_close(c, "out-of-memory");
    s->v = v;
    s->quota_rule = quota_rule;
    const char *h = t->rq.host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') /* an IPv6 literal */
        snprintf(s->name, sizeof(s->name), "%.*s", (int)(hl - 2), h + 1);
    else
        snprintf(s->name, sizeof(s->name), "%s", h);
    if (t->phase_free)
        t->phase_free(t->phase_state);
    t->phase_state = s;
    t->phase_free = state_free;
    t->tls = "page";
    conn_set_phase(c, &tlspage_ops);
    conn_arm(c, c->cfg->header_timeout_ms); /* for the handshake */
    return CONN_GO_ON;
}

enum conn_rc
tlspage_start(struct conn *c, enum verdict v, int quota_rule)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    struct txn *t = &c->t;
    if (enter(c, v, quota_rule) == CONN_CLOSED)
        return CONN_CLOSED;
    conn_watch_client(c, 0);
    t->status = 200;
    t->down += sizeof(ok) - 1;
    conn_sni_watch_free(c); /* the hello is read again, from its start */
    bufferevent_write(c->cbev, ok, sizeof(ok) - 1);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
        conn_kick_read(c); /* the client did not wait for the 200 */
    return CONN_SUSPENDED;
}

enum conn_rc
tlspage_take_over(struct conn *c, enum verdict v, const char *sni)
{
    struct txn *t = &c->t;
    conn_free_upstream(c);
    t->peek = 0;
    t->forwarded = 0;
    if (enter(c, v, -1) == CONN_CLOSED)
        return CONN_CLOSED;
    struct tlspage *s = state(c);
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip = 0;
    if (sni && sni_normalize(sni, strlen(sni), norm, sizeof(norm), &is_ip) > 0)
        snprintf(s->name, sizeof(s->name), "%s", norm);
    s->named = 1;
    if (start_tls(c) == CONN_CLOSED)
        return CONN_CLOSED;
    bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
    bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
    conn_kick_read(c); /* the held hello */
    return CONN_CLOSED;
}
