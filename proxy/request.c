#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "catalog.h"
#include "config.h"
#include "htpasswd.h"
#include "http1.h"
#include "local.h"
#include "negotiate.h"
#include "snapshot.h"

/* --- Via ------------------------------------------------------------------ */

/* Written once by request_set_via before any worker runs, read-only after.
 * A hostname too long for via[] is cut: the value sent and the one looked
 * for in incoming Via fields are the same string, so loops are still seen
 * (gethostname gives far less than fits here anyway). */
static char via[160] = "1.1 socialgate";
static char via_header[180] = "Via: 1.1 socialgate\r\n";
static size_t via_header_len = 21;

const char *
request_via(void)
{
    return via;
}

void
request_set_via(const char *hostname)
{
    snprintf(via, sizeof(via), "1.1 %s (socialgate)", hostname);
    int n = snprintf(via_header, sizeof(via_header), "Via: %s\r\n", via);
    via_header_len = n > 0 && (size_t)n < sizeof(via_header) ? (size_t)n : 0;
}

const char *
request_via_header(void)
{
    return via_header;
}

size_t
request_via_header_len(void)
{
    return via_header_len;
}

int
request_via_loops(const struct http1_head *h)
{
    const char *me = request_via();
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

/* --- credentials and the limits before authentication --------------------- */

int
request_preauth_limited(const struct snapshot *snap)
{
    /* Not with Negotiate: a Kerberos token alone can be larger than the
     * limit, and who it names is known only once the helper has read it. */
    return (snap->users != NULL || config_has_users(snap->cfg)) && snap->cfg->auth_required &&
           !snap->cfg->auth_negotiate_helper &&
           (size_t)snap->cfg->max_header_bytes > PREAUTH_HEAD_BYTES;
}

/* Whether the field lines parsed so far hold Basic credentials naming a
 * user of the htpasswd file (the password is checked later). Only the
 * first Proxy-Authorization field counts, as in read_credentials. */
static int
names_known_user(const struct snapshot *snap, const struct http1_head *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "proxy-authorization"))
            continue;
        char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
        /* A basic_helper answers for names no file holds: any name may
         * be a user's. */
        int ok = htpasswd_parse_basic(f->value.p, f->value.len, user, sizeof(user), pass,
                                      sizeof(pass)) == 0 &&
                 (snap->users == NULL || htpasswd_hash(snap->users, user) != NULL);
        OPENSSL_cleanse(pass, sizeof(pass));
        return ok;
    }
    return 0;
}

int
request_preauth_refused(const struct snapshot *snap, enum http1_status st, size_t n,
                        const struct http1_head *h)
{
    if (!request_preauth_limited(snap))
        return 0;
    int over =
        (st == HTTP1_PARTIAL && n > PREAUTH_HEAD_BYTES) ||
        (st == HTTP1_OK && (h->head_len > PREAUTH_HEAD_BYTES || h->nheaders > PREAUTH_FIELDS));
    return over && !names_known_user(snap, h);
}

/* Keeps the Proxy-Authorization credentials for the decision; the field
 * itself is hop-by-hop and never forwarded. A malformed one counts as wrong
 * credentials. Without [auth] htpasswd they are ignored. */
static void
read_credentials(struct request *req, const struct http1_head *h, const struct snapshot *snap)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "proxy-authorization"))
            continue;
        if (snap->cfg->auth_negotiate_helper) {
            char *tok = malloc(NEGOTIATE_MAX_TOKEN + 1);
            if (tok == NULL) {
                req->auth = AUTH_FAILED;
                return;
            }
            int r = negotiate_parse_authorization((const char *)f->value.p, f->value.len, tok,
                                                  NEGOTIATE_MAX_TOKEN + 1);
            if (r != 0) {
                if (r > 0)
                    req->neg_token = tok;
                else
                    free(tok);
                req->auth = r > 0 ? AUTH_NONE : AUTH_FAILED;
                return;
            }
            free(tok);
        }
        if (snap->users == NULL && !config_has_basic(snap->cfg))
            return; /* no htpasswd nor basic_helper: Basic credentials mean nothing here */
        char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
        if (htpasswd_parse_basic(f->value.p, f->value.len, user, sizeof(user), pass, sizeof(pass)) <
            0) {
            OPENSSL_cleanse(pass, sizeof(pass));
            req->auth = AUTH_FAILED;
            return;
        }
        req->user = strdup(user);
        req->pass = strdup(pass);
        OPENSSL_cleanse(pass, sizeof(pass));
        req->auth = req->user == NULL || req->pass == NULL ? AUTH_FAILED : AUTH_UNCHECKED;
        return;
    }
}

void
request_note_method(const uint8_t *p, size_t n, char *method, size_t size)
{
    if (size == 0)
        return;
    method[0] = '\0';
    size_t ml = 0;
    while (ml < n && ml < size - 1 && p[ml] > 0x20 && p[ml] < 0x7f)
        ml++;
    if (ml < n && p[ml] == ' ') {
        memcpy(method, p, ml);
        method[ml] = '\0';
    }
}

/* --- the head sent upstream ------------------------------------------------ */

/* An output that only counts while buf is NULL (the first pass, to size
 * the buffer) and writes in the second. */
struct out {
    char *buf;
    size_t cap, len;
};

static void
put(struct out *o, const char *p, size_t n)
{
    if (o->buf != NULL && n > 0 && o->len <= o->cap &&
        n <= o->cap - o->len) /* an empty span may have no pointer */
        memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void
put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void
put_span(struct out *o, const struct http1_span *s)
{
    put(o, s->p, s->len);
}

/* A decimal number (written by hand: every request head has some); 0
 * when it does not fit (it always does). */
static int
put_u64(struct out *o, uint64_t v)
{
    char num[24];
    size_t i = sizeof(num);
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, num + i, sizeof(num) - i);
    return 1;
}

static int
method_is(const struct http1_head *h, const char *m)
{
    size_t n = strlen(m);
    return h->method.len == n && memcmp(h->method.p, m, n) == 0; /* case-sensitive */
}

/* The request-target sent upstream in origin form: an empty path is "/"
 * ("http://a?x=1" goes as "/?x=1"), except for an OPTIONS with neither
 * path nor query, which asks about the server itself: "*" (RFC 9112
 * 3.2.4). */
static void
put_target(struct out *o, const struct http1_head *h, const struct http1_target *tg)
{
    if (tg->path.len == 0 && method_is(h, "OPTIONS")) {
        put(o, "*", 1);
        return;
    }
    if (tg->path.len == 0 || tg->path.p[0] != '/')
        put(o, "/", 1);
    put_span(o, &tg->path);
}

/* Writes the head sent upstream: origin-form, a correct Host, hop-by-hop
 * fields removed (RFC 9110 7.6.1) but for the websocket Upgrade of an
 * upgrade, Max-Forwards decremented when mf >= 0 (the value after the
 * decrement), Via added. Returns 0, or -1 when a number did not print. */
static int
write_head(struct out *o, const struct request *req, const struct http1_head *h,
           const struct http1_target *tg, int64_t mf)
{
    put_span(o, &h->method);
    put(o, " ", 1);
    put_target(o, h, tg);
    put_str(o, " HTTP/1.1\r\n");
    put_str(o, "Host: ");
    if (tg->host_is_ipv6) {
        put(o, "[", 1);
        put_str(o, req->host);
        put(o, "]", 1);
    } else {
        put_str(o, req->host);
    }
    if (req->port != (req->tls ? 443 : 80)) {
        put(o, ":", 1);
        if (!put_u64(o, req->port))
            return -1;
    }
    put(o, "\r\n", 2);
    int upgrade_done = 0, mf_done = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        /* Content-Length is written once below, as the value parsed: no
         * Connection option removes it, and identical duplicates ("5, 5")
         * reach the origin as one value (RFC 9112 6.3). */
        if (http1_name_is(&f->name, "host") || http1_name_is(&f->name, "content-length"))
            continue;
        if (http1_name_is(&f->name, "upgrade")) {
            /* Only a WebSocket upgrade goes on, named alone: h2c and the
             * rest are hop-by-hop and end here. */
            if (req->upgrade == UPGRADE_ASKED && !upgrade_done)
                put_str(o, "Upgrade: websocket\r\n");
            upgrade_done = 1;
            continue;
        }
        if (http1_is_hop_by_hop(&f->name) || http1_connection_names(h, &f->name))
            continue;
        if (mf >= 0 && http1_name_is(&f->name, "max-forwards")) {
            if (!mf_done) {
                put_str(o, "Max-Forwards: ");
                if (!put_u64(o, (uint64_t)mf))
                    return -1;
                put(o, "\r\n", 2);
            }
            mf_done = 1;
            continue;
        }
        /* the field line as received (name and value unchanged) */
        put_span(o, &f->name);
        put(o, ": ", 2);
        put_span(o, &f->value);
        put(o, "\r\n", 2);
    }
    if (h->flags & HTTP1_F_HAS_CL) {
        put_str(o, "Content-Length: ");
        if (!put_u64(o, h->content_length))
            return -1;
        put(o, "\r\n", 2);
    }
    if (h->body == HTTP1_BODY_CHUNKED)
        put_str(o, "Transfer-Encoding: chunked\r\n");
    if (req->upgrade == UPGRADE_ASKED)
        put_str(o, "Connection: Upgrade\r\n");
    put(o, request_via_header(), request_via_header_len());
    put(o, "\r\n", 2);
    return 0;
}

/* Builds req->uhead (NUL-terminated, uhead_len bytes without the NUL).
 * Returns 0, or -1 out of memory. */
static int
build_head(struct request *req, const struct http1_head *h, const struct http1_target *tg,
           int64_t mf)
{
    struct out o = {NULL, 0, 0};
    if (write_head(&o, req, h, tg, mf) < 0 || o.len == SIZE_MAX)
        return -1;
    size_t need = o.len;
    o.buf = malloc(need + 1);
    if (o.buf == NULL)
        return -1;
    o.cap = need;
    o.len = 0;
    if (write_head(&o, req, h, tg, mf) < 0 || o.len != need) {
        free(o.buf);
        return -1;
    }
    o.buf[need] = '\0';
    req->uhead = o.buf;
    req->uhead_len = need;
    return 0;
}

/* --- Max-Forwards: 0, answered here (RFC 9110 7.6.2) ---------------------- */

/* Largest Max-Forwards kept; a larger one is held here (no chain of
 * proxies is that long). */
#define MAX_FORWARDS_CAP 4294967295u

/* The Max-Forwards of h: 1 with *mf, 0 when there is none, -1 when a field
 * is not a number (1*DIGIT) or two fields disagree. */
static int
max_forwards(const struct http1_head *h, int64_t *mf)
{
    int found = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "max-forwards"))
            continue;
        if (f->value.len == 0)
            return -1;
        int64_t v = 0;
        for (size_t k = 0; k < f->value.len; k++) {
            char ch = f->value.p[k];
            if (ch < '0' || ch > '9')
                return -1;
            v = v * 10 + (ch - '0');
            if (v > MAX_FORWARDS_CAP)
                v = MAX_FORWARDS_CAP;
        }
        if (found && v != *mf)
            return -1;
        *mf = v;
        found = 1;
    }
    return found;
}

/* Fields a TRACE answer never echoes: they carry credentials, and the
 * answer may end up in a cache, a log or a script of another site. */
static int
secret_field(const struct http1_span *name)
{
    return http1_name_is(name, "authorization") || http1_name_is(name, "proxy-authorization") ||
           http1_name_is(name, "cookie");
}

/* The head of h as received, less its secret fields: the request line and
 * the field lines, each as parsed. */
static void
write_echo(struct out *o, const struct http1_head *h)
{
    put_span(o, &h->method);
    put(o, " ", 1);
    put_span(o, &h->target);
    put_str(o, h->minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (secret_field(&f->name))
            continue;
        put_span(o, &f->name);
        put(o, ": ", 2);
        put_span(o, &f->value);
        put(o, "\r\n", 2);
    }
    put(o, "\r\n", 2);
}

/* Builds req->reply for an OPTIONS or TRACE that this proxy answers.
 * Returns 0, or -1 out of memory. */
static int
build_reply(struct request *req, const struct http1_head *h)
{
    static const char options[] = "HTTP/1.1 200 OK\r\nAllow: " REQUEST_ALLOW "\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
    if (method_is(h, "OPTIONS")) {
        req->reply = strndup(options, sizeof(options) - 1);
        req->reply_len = sizeof(options) - 1;
        return req->reply ? 0 : -1;
    }
    struct out echo = {NULL, 0, 0};
    write_echo(&echo, h);
    char top[160];
    int n = snprintf(top, sizeof(top),
                     "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     echo.len);
    if (n < 0 || (size_t)n >= sizeof(top) || echo.len > SIZE_MAX - (size_t)n - 1)
        return -1;
    struct out o = {malloc((size_t)n + echo.len + 1), (size_t)n + echo.len, 0};
    if (o.buf == NULL)
        return -1;
    put(&o, top, (size_t)n);
    write_echo(&o, h);
    if (o.len != o.cap) {
        free(o.buf);
        return -1;
    }
    o.buf[o.len] = '\0';
    req->reply = o.buf;
    req->reply_len = o.len;
    return 0;
}

/* --- the path path_regex sees --------------------------------------------- */

/* RFC 3986 2.3 */
static int
unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-decoding of p[0..len) into out after a leading '/' (one is
 * added when p has none). Every '%' written starts an upper-case encoding
 * of a byte that is not unreserved, so a second pass changes nothing.
 * Returns the length; out has room for 3 * len + 2 bytes. */
static size_t
decode_unreserved(const char *p, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0, i = 0;
    out[w++] = '/';
    if (len > 0 && p[0] == '/')
        i = 1;
    for (; i < len; i++) {
        int hi = -1, lo = -1;
        if (p[i] == '%' && len - i >= 3) {
            hi = http1_hexval((uint8_t)p[i + 1]);
            lo = http1_hexval((uint8_t)p[i + 2]);
        }
        if (p[i] != '%') {
            out[w++] = p[i];
        } else if (hi < 0 || lo < 0) {
            memcpy(out + w, "%25", 3); /* a '%' that starts no encoding */
            w += 3;
        } else if (unreserved((unsigned char)(hi * 16 + lo))) {
            out[w++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[w++] = '%';
            out[w++] = hex[hi];
            out[w++] = hex[lo];
            i += 2;
        }
    }
    return w;
}

char *
request_normalize_path(const char *p, size_t len, size_t *outlen)
{
    if (len > (SIZE_MAX - 2) / 3)
        return NULL;
    char *out = malloc(3 * len + 2);
    if (out == NULL)
        return NULL;
    size_t n = decode_unreserved(p, len, out);
    /* Segments after the leading '/', rewritten in place: the output is
     * "/" then each kept segment followed by '/', and never longer than
     * what was read, so w <= start of the segment being read. An empty
     * segment (a repeated slash) and "." are dropped, ".." drops the last
     * kept segment (none at the root). */
    size_t w = 1, r = 1;
    int last_kept = 0;
    for (;;) {
        size_t s = r;
        while (r < n && out[r] != '/')
            r++;
        size_t sl = r - s;
        if (sl == 0 || (sl == 1 && out[s] == '.')) {
            last_kept = 0;
        } else if (sl == 2 && out[s] == '.' && out[s + 1] == '.') {
            if (w > 1) {
                w--; /* the '/' after the last kept segment */
                while (w > 1 && out[w - 1] != '/')
                    w--;
            }
            last_kept = 0;
        } else {
            memmove(out + w, out + s, sl);
            w += sl;
            out[w++] = '/';
            last_kept = 1;
        }
        if (r >= n)
            break;
        r++; /* the '/' */
    }
    if (last_kept)
        w--; /* "/a/b" keeps no trailing slash, "/a/b/" and "/a/." do */
    out[w] = '\0';
    *outlen = w;
    return out;
}

/* --- the request ----------------------------------------------------------- */

static char *
lower_dup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        s[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] + 32) : p[i];
    s[n] = '\0';
    return s;
}

/* The path and query of an absolute or origin-form target, owned: an
 * empty path is "/" ("http://a?x=1" asks for "/?x=1"). NULL out of
 * memory. */
static char *
path_and_query(const struct http1_target *tg)
{
    int slash = tg->path.len == 0 || tg->path.p[0] != '/';
    char *s = malloc(tg->path.len + 2);
    if (s == NULL)
        return NULL;
    if (slash)
        s[0] = '/';
    if (tg->path.len)
        memcpy(s + slash, tg->path.p, tg->path.len);
    s[slash + tg->path.len] = '\0';
    return s;
}

/* Whether an Upgrade field of h offers WebSocket, the one upgrade this
 * proxy lets through (RFC 6455; h2c and the rest stop here). */
static int
upgrades_to_websocket(const struct http1_head *h)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (http1_name_is(&h->headers[i].name, "upgrade") &&
            http1_list_has(&h->headers[i].value, "websocket"))
            return 1;
    return 0;
}

static int
refuse(struct request_refusal *ref, int status, const char *reason, const char *detail)
{
    ref->status = status;
    ref->reason = reason;
    ref->detail = detail;
    return -1;
}

static int
out_of_memory(struct request_refusal *ref)
{
    return refuse(ref, 0, "out-of-memory", NULL);
}

static int finish_forward(const struct http1_head *h, const struct http1_target *tg,
                          struct request *req, struct request_refusal *ref);

/* The checks run in a fixed order, and each refusal leaves in req what
 * was learnt before it: the method always; host and path once the target
 * parsed; the credentials once the Host check passed. kind is REQUEST_CONNECT
 * from the start for CONNECT, so a refused tunnel is logged as one. */
/* What every request takes from its head, whatever its form: the method,
 * the head's size, the client's HTTP version and its wish to close. The
 * caller adds its own reasons to close (a draining worker). */
static void
request_init(const struct http1_head *h, struct request *req, struct request_refusal *ref)
{
    memset(req, 0, sizeof(*req));
    memset(ref, 0, sizeof(*ref));
    size_t ml = h->method.len < sizeof(req->method) - 1 ? h->method.len : sizeof(req->method) - 1;
    memcpy(req->method, h->method.p, ml);
    req->head_len = h->head_len;
    req->client_minor = h->minor;
    req->client_close = (h->flags & HTTP1_F_CONN_CLOSE) || h->minor == 0;
    req->is_head = h->method.len == 4 && memcmp(h->method.p, "HEAD", 4) == 0;
    req->kind = REQUEST_FORWARD;
}

int
request_from_head(const struct http1_head *h, const struct snapshot *snap, struct request *req,
                  struct request_refusal *ref)
{
    request_init(h, req, ref);
    int is_connect = h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0;
    if (is_connect)
        req->kind = REQUEST_CONNECT;

    struct http1_target tg;
    enum http1_status st = http1_parse_target(&h->target, is_connect, &tg);
    if (st == HTTP1_OK && (tg.form == HTTP1_FORM_ABSOLUTE || tg.form == HTTP1_FORM_AUTHORITY)) {
        req->host = lower_dup(tg.host.p, tg.host.len);
        req->port = tg.port;
        req->host_is_ipv6 = tg.host_is_ipv6;
        req->path =
            tg.form == HTTP1_FORM_ABSOLUTE
                ? (tg.path_only_len ? strndup(tg.path.p, tg.path_only_len) : strndup("/", 1))
                : NULL;
    } else if (st == HTTP1_OK && tg.form == HTTP1_FORM_ORIGIN) {
        /* The host comes from the Host field, its port is not kept. */
        req->path = strndup(tg.path.p, tg.path_only_len ? tg.path_only_len : 1);
        if (h->host.len) {
            struct http1_target ht;
            if (http1_parse_authority(h->host.p, h->host.len, 0, 80, &ht) == HTTP1_OK)
                req->host = lower_dup(ht.host.p, ht.host.len);
        }
    }
    if (st != HTTP1_OK) {
        const char *why = st == HTTP1_ERR_SCHEME ? "Only http:// URLs can be requested this way; "
                                                   "https goes through CONNECT."
                                                 : "The request target is malformed.";
        return refuse(ref, 400, http1_strerror(st), why);
    }
    if (h->minor == 1 && h->host.p == NULL && !is_connect) {
        /* RFC 9112 3.2: an HTTP/1.1 request without Host is refused, whatever
         * its target says (CONNECT is let through: its target is the host). */
        return refuse(ref, 400, "missing-host", "An HTTP/1.1 request needs a Host header field.");
    }
    read_credentials(req, h, snap);
    if ((tg.form == HTTP1_FORM_ORIGIN || tg.form == HTTP1_FORM_ABSOLUTE) && req->host &&
        strcmp(req->host, LOCAL_HOST) == 0) {
        /* socialgate.local: answered here, after identity is known */
        req->kind = REQUEST_LOCAL;
        if (req->port == 0)
            req->port = 80;
        req->target = path_and_query(&tg);
        if (h->body != HTTP1_BODY_NONE)
            return refuse(ref, 400, "local-body", "socialgate's own pages take no request body.");
        if (req->target == NULL)
            return out_of_memory(ref);
        return 0;
    }
    if (tg.form == HTTP1_FORM_ORIGIN || tg.form == HTTP1_FORM_ASTERISK)
        return refuse(ref, 400, "not-a-proxy-request",
                      "This is a proxy: configure your browser to use it, "
                      "or request an absolute http:// URL.");
    if (req->host == NULL || (tg.form == HTTP1_FORM_ABSOLUTE && req->path == NULL))
        return out_of_memory(ref);
    /* A host the catalog cannot read (an empty label, over 253 bytes)
     * would be unclassified, so allowed where the policy means to deny. */
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip;
    if (catalog_normalize(req->host, strlen(req->host), norm, sizeof(norm), &is_ip) <= 0)
        return refuse(ref, 400, "bad-host", "The host name is malformed.");
    if (request_via_loops(h))
        return refuse(ref, 508, "forwarding-loop", "This request has already passed this proxy.");
    if (is_connect) {
        if (!config_connect_port_allowed(snap->cfg, req->port))
            return refuse(ref, 403, "connect-port-denied",
                          "Tunnels are only allowed to the configured ports.");
        return 0;
    }
    /* SMTP and the like speak enough of a line protocol to take a request
     * as commands: refused before any connection. */
    if (!config_http_port_allowed(snap->cfg, req->port))
        return refuse(ref, 403, "http-port-denied",
                      "Plain HTTP is only allowed to the configured ports.");
    return finish_forward(h, &tg, req, ref);
}

/* The rest of a request that goes to an origin: Max-Forwards, the path
 * path_regex sees, the URL, the upgrade, the body, the head sent upstream
 * and the pool key. */
static int
finish_forward(const struct http1_head *h, const struct http1_target *tgp, struct request *req,
               struct request_refusal *ref)
{
    const struct http1_target tg = *tgp;
    /* OPTIONS and TRACE stop where Max-Forwards reaches 0 (RFC 9110 7.6.2). */
    int64_t mf = -1;
    if (method_is(h, "OPTIONS") || method_is(h, "TRACE")) {
        int has = max_forwards(h, &mf);
        if (has < 0)
            return refuse(ref, 400, "bad-max-forwards",
                          "The Max-Forwards header field is not a number.");
        if (has == 0)
            mf = -1;
        else if (mf == 0 && build_reply(req, h) < 0)
            return out_of_memory(ref);
        else if (mf > 0)
            mf--;
    }

    size_t nl;
    req->npath = request_normalize_path(req->path, strlen(req->path), &nl);
    if (req->npath == NULL)
        return out_of_memory(ref);
    /* The pool key follows the URL in the same allocation. */
    size_t hl = strlen(req->host);
    size_t ul = hl + tg.path.len + 32, kl = hl + 32;
    req->url = malloc(ul + kl);
    if (req->url == NULL)
        return out_of_memory(ref);
    int slash = tg.path.len == 0 || tg.path.p[0] != '/';
    /* scheme://host:port/path, as "%s://%s%s%s:%u%s%.*s" would write it */
    struct out u = {req->url, ul, 0};
    put_str(&u, req->tls ? "https://" : "http://");
    if (tg.host_is_ipv6)
        put(&u, "[", 1);
    put_str(&u, req->host);
    if (tg.host_is_ipv6)
        put(&u, "]", 1);
    put(&u, ":", 1);
    put_u64(&u, req->port);
    if (slash)
        put(&u, "/", 1);
    put(&u, tg.path.p, tg.path.len ? strnlen(tg.path.p, tg.path.len) : 0);
    if (u.len >= ul)
        return out_of_memory(ref); /* cannot happen: ul has room for the rest */
    req->url[u.len] = '\0';
    int upgrade = (h->flags & HTTP1_F_UPGRADE) && (h->flags & HTTP1_F_CONN_UPGRADE) &&
                  h->minor == 1 && upgrades_to_websocket(h);
    req->upgrade = upgrade ? UPGRADE_ASKED : UPGRADE_NONE;
    req->body = h->body;
    req->content_length = h->content_length;
    if (build_head(req, h, &tg, mf) < 0)
        return out_of_memory(ref);
    /* a TLS connection is never handed to a plain request, nor the reverse */
    req->poolkey = req->url + u.len + 1;
    struct out k = {req->poolkey, kl, 0};
    if (req->tls)
        put(&k, "tls:", 4);
    put_str(&k, req->host);
    put(&k, ":", 1);
    put_u64(&k, req->port);
    if (k.len >= kl)
        return out_of_memory(ref); /* cannot happen: kl has room for the rest */
    req->poolkey[k.len] = '\0';
    return 0;
}

int
request_from_inner_head(const struct http1_head *h, const struct snapshot *snap, const char *host,
                        uint16_t port, struct request *req, struct request_refusal *ref)
{
    (void)snap;
    request_init(h, req, ref);
    req->tls = 1;
    req->port = port;
    req->host = strdup(host);
    if (req->host == NULL)
        return out_of_memory(ref);
    /* The host is the tunnel's (the name the client's TLS asked for):
     * whatever Host says, the request goes there and is decided as going
     * there. */
    req->host_is_ipv6 = strchr(host, ':') != NULL;
    if (h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0)
        return refuse(ref, 400, "connect-in-tunnel", "A tunnel cannot be opened inside another.");
    struct http1_target tg;
    enum http1_status st = http1_parse_target(&h->target, 0, &tg);
    if (st == HTTP1_OK && tg.form == HTTP1_FORM_ORIGIN)
        req->path = strndup(tg.path.p, tg.path_only_len ? tg.path_only_len : 1);
    else if (st == HTTP1_OK && tg.form == HTTP1_FORM_ASTERISK)
        req->path = strndup("*", 1);
    if (st != HTTP1_OK || (tg.form != HTTP1_FORM_ORIGIN && tg.form != HTTP1_FORM_ASTERISK))
        return refuse(ref, 400, st != HTTP1_OK ? http1_strerror(st) : "bad-target",
                      "The request target is malformed.");
    if (req->path == NULL)
        return out_of_memory(ref);
    if (tg.form == HTTP1_FORM_ASTERISK && !method_is(h, "OPTIONS")) /* RFC 9112 3.2.4 */
        return refuse(ref, 400, "bad-target",
                      "Only OPTIONS may ask about the server as a whole (*).");
    if (h->minor == 1 && h->host.p == NULL)
        return refuse(ref, 400, "missing-host", "An HTTP/1.1 request needs a Host header field.");
    if (request_via_loops(h))
        return refuse(ref, 508, "forwarding-loop", "This request has already passed this proxy.");
    tg.host_is_ipv6 = req->host_is_ipv6;
    return finish_forward(h, &tg, req, ref);
}

void
request_free(struct request *req)
{
    if (req == NULL)
        return;
    free(req->host);
    free(req->path);
    free(req->npath);
    free(req->target);
    free(req->url);
    free(req->user);
    free(req->neg_token);
    if (req->pass) {
        OPENSSL_cleanse(req->pass, strlen(req->pass));
        free(req->pass);
    }
    free(req->uhead);
    free(req->reply);
    memset(req, 0, sizeof(*req));
}
