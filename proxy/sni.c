#include "sni.h"

#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "http1.h"

const char *
sni_strstatus(enum sni_status st)
{
    switch (st) {
    case SNI_OK: return "ok";
    case SNI_NO_SNI: return "no-sni";
    case SNI_PARTIAL: return "partial";
    case SNI_NOT_TLS: return "not-tls";
    case SNI_INVALID: return "invalid";
    }
    return "?";
}

/* TLS content types (RFC 8446 5.1). */
enum {
    CT_CCS = 20,
    CT_ALERT = 21,
    CT_HANDSHAKE = 22,
    CT_APPDATA = 23,
};

/* --- reading a ClientHello body ------------------------------------------ */

struct rd {
    const uint8_t *p;
    size_t len, pos;
};

static int
need(const struct rd *r, size_t n)
{
    return r->len - r->pos >= n;
}

static int
u8(struct rd *r, unsigned *v)
{
    if (!need(r, 1))
        return -1;
    *v = r->p[r->pos++];
    return 0;
}

static int
u16(struct rd *r, unsigned *v)
{
    if (!need(r, 2))
        return -1;
    *v = (unsigned)r->p[r->pos] << 8 | r->p[r->pos + 1];
    r->pos += 2;
    return 0;
}

static int
skip(struct rd *r, size_t n)
{
    if (!need(r, n))
        return -1;
    r->pos += n;
    return 0;
}

/* RFC 6066 3. The name is kept as sent: sni_normalize judges it. What
 * servers refuse is refused here too, so that no server reads a name this
 * parser did not: a second host_name (OpenSSL and Go refuse it), a NUL
 * byte, more than 255 bytes (OpenSSL). Other name types are skipped, as Go
 * does (OpenSSL refuses them). */
static int
parse_sni_ext(struct rd *e, struct sni_info *out)
{
    unsigned listlen;
    int seen = 0;
    if (u16(e, &listlen) < 0 || listlen != e->len - e->pos)
        return -1;
    while (e->pos < e->len) {
        unsigned type, n;
        if (u8(e, &type) < 0 || u16(e, &n) < 0 || !need(e, n))
            return -1;
        if (type == 0) {
            if (seen || n > SNI_MAX_NAME || memchr(e->p + e->pos, '\0', n) != NULL)
                return -1;
            seen = 1;
            memcpy(out->sni, e->p + e->pos, n);
            out->sni[n] = '\0';
            out->sni_len = n;
            out->has_sni = n > 0; /* an empty name names no server */
        }
        e->pos += n;
    }
    return 0;
}

/* RFC 7301 3.1 */
static int
parse_alpn_ext(struct rd *e, struct sni_info *out)
{
    unsigned listlen;
    if (u16(e, &listlen) < 0 || listlen != e->len - e->pos || listlen == 0)
        return -1;
    for (int first = 1; e->pos < e->len; first = 0) {
        unsigned n;
        if (u8(e, &n) < 0 || n == 0 || !need(e, n))
            return -1;
        /* Only the first protocol is reported: one too long for the
         * buffer leaves ALPN unset rather than naming the second. */
        if (first && !out->has_alpn && n < sizeof(out->alpn)) {
            for (unsigned i = 0; i < n; i++) {
                uint8_t c = e->p[e->pos + i];
                out->alpn[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
            }
            out->alpn[n] = '\0';
            out->has_alpn = 1;
        }
        e->pos += n;
    }
    return 0;
}

/* RFC 8446 4.1.2: the body of a ClientHello. */
static enum sni_status
parse_hello(const uint8_t *h, size_t len, struct sni_info *out)
{
    struct rd r = {h, len, 0};
    unsigned v, n;
    int sni_seen = 0;
    if (u16(&r, &v) < 0 || (v >> 8) != 3)
        return SNI_INVALID;
    if (skip(&r, 32) < 0) /* random */
        return SNI_INVALID;
    if (u8(&r, &n) < 0 || n > 32 || skip(&r, n) < 0) /* session id */
        return SNI_INVALID;
    if (u16(&r, &n) < 0 || n < 2 || (n & 1) || skip(&r, n) < 0) /* cipher suites */
        return SNI_INVALID;
    if (u8(&r, &n) < 0 || n < 1 || skip(&r, n) < 0) /* compression methods */
        return SNI_INVALID;
    if (r.pos == r.len)
        return SNI_NO_SNI; /* no extensions */
    if (u16(&r, &n) < 0 || n != r.len - r.pos)
        return SNI_INVALID;
    while (r.pos < r.len) {
        unsigned type, elen;
        if (u16(&r, &type) < 0 || u16(&r, &elen) < 0 || !need(&r, elen))
            return SNI_INVALID;
        struct rd e = {r.p + r.pos, elen, 0};
        if (type == 0) {
            /* A second server_name: servers refuse it, or might read the
             * other one. */
            if (sni_seen++ || parse_sni_ext(&e, out) < 0)
                return SNI_INVALID;
        }
        if (type == 16 && parse_alpn_ext(&e, out) < 0)
            return SNI_INVALID;
        if (type == 0xfe0d) /* encrypted_client_hello */
            out->ech = 1;
        r.pos += elen;
    }
    return out->has_sni ? SNI_OK : SNI_NO_SNI;
}

/* --- the client's records ------------------------------------------------ */

void
sni_init(struct sni_parser *s)
{
    memset(s, 0, sizeof(*s));
    s->sticky = SNI_PARTIAL;
}

void
sni_free(struct sni_parser *s)
{
    free(s->msg);
    s->msg = NULL;
}

int
sni_pending(const struct sni_parser *s)
{
    return s->rhdr_len > 0 || s->mhdr_len > 0;
}

/* Which records a server reads past on its way to (or between) hellos:
 * they carry no handshake byte. OpenSSL skips empty handshake records and
 * takes alerts and ChangeCipherSpec before a ClientHello; after a hello
 * the client may send early data (skipped by a server that answers with a
 * HelloRetryRequest, RFC 8446 4.2.10). Any other type is refused. */
static int
record_type_ok(const struct sni_parser *s, uint8_t type)
{
    return type == CT_HANDSHAKE || type == CT_CCS || type == CT_ALERT ||
           (type == CT_APPDATA && s->hellos > 0);
}

static enum sni_status
fail(struct sni_parser *s, enum sni_status st)
{
    s->sticky = st;
    return st;
}

enum sni_status
sni_feed(struct sni_parser *s, const uint8_t *p, size_t len, size_t *used, struct sni_info *out)
{
    size_t pos = 0;
    enum sni_status st = SNI_PARTIAL;
    memset(out, 0, sizeof(*out));
    *used = 0;
    if (s->sticky != SNI_PARTIAL)
        return s->sticky;
    while (pos < len) {
        if (s->rhdr_len < 5) {
            uint8_t b = p[pos];
            /* The stream's first bytes tell TLS from anything else: a
             * record of a type a server takes first, major version 3.
             * Nothing is taken then: the caller tries plain HTTP. */
            int first = s->consumed + pos < 2;
            if (first && s->rhdr_len == 0 && b != CT_HANDSHAKE && b != CT_CCS && b != CT_ALERT)
                return fail(s, SNI_NOT_TLS);
            if (first && s->rhdr_len == 1 && b != 3)
                return fail(s, SNI_NOT_TLS);
            if ((s->rhdr_len == 0 && !record_type_ok(s, b)) || (s->rhdr_len == 1 && b != 3)) {
                st = SNI_INVALID;
                break;
            }
            s->rhdr[s->rhdr_len++] = b;
            pos++;
            if (s->rhdr_len < 5)
                continue;
            s->rleft = (size_t)s->rhdr[3] << 8 | s->rhdr[4];
            if (s->rleft > SNI_MAX_RECORD) {
                st = SNI_INVALID;
                break;
            }
            if (s->rleft == 0)
                s->rhdr_len = 0; /* an empty record: nothing in it */
            continue;
        }
        size_t n = len - pos < s->rleft ? len - pos : s->rleft;
        if (s->rhdr[0] != CT_HANDSHAKE) {
            pos += n;
            s->rleft -= n;
            if (s->rleft == 0)
                s->rhdr_len = 0;
            continue;
        }
        /* Handshake bytes: a message may start, end or be cut anywhere in
         * a record (RFC 8446 5.1), even within its 4-byte header. */
        if (s->mhdr_len < 4) {
            s->mhdr[s->mhdr_len++] = p[pos++];
            if (--s->rleft == 0)
                s->rhdr_len = 0;
            if (s->mhdr[0] != 1) { /* refused at its first byte */
                st = SNI_INVALID;
                break;
            }
            if (s->mhdr_len < 4)
                continue;
            size_t want = (size_t)s->mhdr[1] << 16 | (size_t)s->mhdr[2] << 8 | s->mhdr[3];
            /* A client sends nothing but ClientHellos before the server
             * answers; the hello is checked for size as soon as known. */
            if (s->mhdr[0] != 1 || want > SNI_MAX_HELLO || want < 38) {
                st = SNI_INVALID;
                break;
            }
            if (want > s->msg_want || s->msg == NULL) {
                uint8_t *m = realloc(s->msg, want);
                if (m == NULL) {
                    st = SNI_INVALID;
                    break;
                }
                s->msg = m;
            }
            s->msg_want = want;
            s->msg_len = 0;
            continue;
        }
        size_t take = s->msg_want - s->msg_len < n ? s->msg_want - s->msg_len : n;
        memcpy(s->msg + s->msg_len, p + pos, take);
        s->msg_len += take;
        pos += take;
        s->rleft -= take;
        if (s->rleft == 0)
            s->rhdr_len = 0;
        if (s->msg_len == s->msg_want) {
            st = parse_hello(s->msg, s->msg_want, out);
            s->mhdr_len = 0;
            s->msg_len = 0;
            s->hellos++;
            break;
        }
    }
    s->consumed += pos;
    s->since += pos;
    *used = pos;
    if (st == SNI_INVALID)
        return fail(s, st);
    if (st != SNI_PARTIAL) {
        out->consumed = (size_t)s->consumed;
        s->since = 0;
        return st;
    }
    if (s->since > SNI_MAX_PEEK)
        return fail(s, SNI_INVALID);
    return SNI_PARTIAL;
}

enum sni_status
sni_parse(const uint8_t *p, size_t len, struct sni_info *out)
{
    struct sni_parser s;
    size_t used;
    sni_init(&s);
    enum sni_status st = sni_feed(&s, p, len, &used, out);
    sni_free(&s);
    return st;
}

/* --- plain HTTP ----------------------------------------------------------- */

enum { H_METHOD, H_TARGET, H_VERSION, H_FIELDS };

static int
tchar(uint8_t c)
{
    /* RFC 9110 5.6.2 */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

void
sni_http_free(struct sni_http *s)
{
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

/* One byte of the request line or of the fields. -1: not HTTP; 1: the
 * head ends with this byte; 0: go on. */
static int
http_step(struct sni_http *s, uint8_t b)
{
    static const char version[] = "HTTP/1.";
    switch (s->state) {
    case H_METHOD:
        if (b == ' ' && s->n > 0) {
            s->state = H_TARGET;
            s->n = 0;
            return 0;
        }
        return tchar(b) && ++s->n <= 32 ? 0 : -1;
    case H_TARGET:
        if (b == ' ' && s->n > 0) {
            s->state = H_VERSION;
            s->n = 0;
            return 0;
        }
        return b > 0x20 && b < 0x7f && ++s->n <= HTTP1_MAX_REQUEST_LINE ? 0 : -1;
    case H_VERSION:
        if (s->n < 7)
            return b == (uint8_t)version[s->n++] ? 0 : -1;
        if (s->n == 7)
            return b >= '0' && b <= '9' && ++s->n ? 0 : -1;
        if (s->n == 8 && b == '\r') {
            s->n = 9;
            return 0;
        }
        if (b != '\n')
            return -1;
        s->state = H_FIELDS;
        s->line_start = 1;
        s->cr = 0;
        return 0;
    default:
        /* The head ends with an empty line; http1.c judges the rest. */
        if (b == '\n') {
            if (s->line_start)
                return 1;
            s->line_start = 1;
            s->cr = 0;
        } else if (b == '\r') {
            s->cr = 1;
        } else {
            s->line_start = 0;
            s->cr = 0;
        }
        return 0;
    }
}

static int
names_differ(const char *a, size_t alen, const char *b, size_t blen)
{
    char na[CATALOG_MAX_HOST + 1], nb[CATALOG_MAX_HOST + 1];
    int ia, ib;
    int la = sni_normalize(a, alen, na, sizeof(na), &ia);
    int lb = sni_normalize(b, blen, nb, sizeof(nb), &ib);
    return la < 0 || lb < 0 || la != lb || memcmp(na, nb, (size_t)la) != 0;
}

/* The whole head is in s->buf: which server does it name? */
static enum sni_status
http_name(const struct sni_http *s, struct sni_info *out)
{
    struct http1_head h;
    if (http1_parse_request(s->buf, s->len, SNI_MAX_HTTP_HEAD, &h) != HTTP1_OK ||
        h.head_len != s->len)
        return SNI_INVALID;
    int is_connect = h.method.len == 7 && memcmp(h.method.p, "CONNECT", 7) == 0;
    struct http1_target t;
    if (http1_parse_target(&h.target, is_connect, &t) != HTTP1_OK)
        return SNI_INVALID;
    const char *name = h.host.p;
    size_t n = h.host.len;
    if (t.form == HTTP1_FORM_ABSOLUTE || t.form == HTTP1_FORM_AUTHORITY) {
        /* A server takes the target's host over Host (RFC 9112 3.2.2),
         * another might not: they must agree. */
        if (h.host.len && names_differ(t.host.p, t.host.len, h.host.p, h.host.len))
            return SNI_INVALID;
        name = t.host.p;
        n = t.host.len;
    }
    out->http = 1;
    out->consumed = s->len;
    if (n == 0)
        return SNI_NO_SNI;
    if (n > SNI_MAX_NAME)
        return SNI_INVALID;
    memcpy(out->sni, name, n);
    out->sni[n] = '\0';
    out->sni_len = n;
    out->has_sni = 1;
    return SNI_OK;
}

enum sni_status
sni_http_feed(struct sni_http *s, const uint8_t *p, size_t len, struct sni_info *out)
{
    memset(out, 0, sizeof(*out));
    if (s->state < 0)
        return SNI_INVALID;
    for (size_t i = 0; i < len; i++) {
        int r = http_step(s, p[i]);
        if (r < 0 || s->len >= SNI_MAX_HTTP_HEAD) {
            s->state = -1;
            return SNI_INVALID;
        }
        if (s->len == s->cap) {
            size_t ncap = s->cap ? s->cap * 2 : 1024;
            uint8_t *nb = realloc(s->buf, ncap);
            if (nb == NULL) {
                s->state = -1;
                return SNI_INVALID;
            }
            s->buf = nb;
            s->cap = ncap;
        }
        s->buf[s->len++] = p[i];
        if (r == 1) {
            enum sni_status st = http_name(s, out);
            s->state = -1; /* one head is all that is read */
            return st;
        }
    }
    return SNI_PARTIAL;
}

/* --- the server's side ----------------------------------------------------- */

/* RFC 8446 4.1.3: a HelloRetryRequest is a ServerHello with this random,
 * SHA-256 of "HelloRetryRequest". */
static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

enum sni_server_status
sni_server_feed(struct sni_server *s, const uint8_t *p, size_t len, size_t *used)
{
    size_t pos = 0;
    enum sni_server_status st = SNI_SERVER_PARTIAL;
    *used = 0;
    if (s->done)
        return SNI_SERVER_DONE;
    while (pos < len && st == SNI_SERVER_PARTIAL) {
        if (s->rhdr_len < 5) {
            uint8_t b = p[pos++];
            s->rhdr[s->rhdr_len++] = b;
            /* Handshake records are read; a server's ChangeCipherSpec
             * (middlebox compatibility, after a HelloRetryRequest) is
             * skipped; anything else ends the hellos. */
            if ((s->rhdr_len == 1 && b != CT_HANDSHAKE && b != CT_CCS) ||
                (s->rhdr_len == 2 && b != 3)) {
                st = SNI_SERVER_DONE;
                break;
            }
            if (s->rhdr_len == 5) {
                s->rleft = (size_t)s->rhdr[3] << 8 | s->rhdr[4];
                if (s->rleft == 0)
                    s->rhdr_len = 0;
            }
            continue;
        }
        size_t n = len - pos < s->rleft ? len - pos : s->rleft;
        if (s->rhdr[0] != CT_HANDSHAKE) {
            pos += n;
        } else if (s->mhdr_len < 4) {
            s->mhdr[s->mhdr_len++] = p[pos];
            n = 1;
            pos++;
            if (s->mhdr_len == 4) {
                s->mleft = (size_t)s->mhdr[1] << 16 | (size_t)s->mhdr[2] << 8 | s->mhdr[3];
                s->sh_len = 0;
                s->sh_want = s->mleft < sizeof(s->sh) ? s->mleft : sizeof(s->sh);
                /* The server's first message, and the one after each
                 * HelloRetryRequest, is a ServerHello. */
                if (s->mhdr[0] != 2 || s->mleft < sizeof(s->sh))
                    st = SNI_SERVER_DONE;
            }
        } else if (s->sh_len < s->sh_want) {
            size_t take = s->sh_want - s->sh_len < n ? s->sh_want - s->sh_len : n;
            memcpy(s->sh + s->sh_len, p + pos, take);
            s->sh_len += take;
            s->mleft -= take;
            pos += take;
            n = take;
            if (s->sh_len == s->sh_want) {
                st = memcmp(s->sh + 2, hrr_random, sizeof(hrr_random)) == 0 ? SNI_SERVER_HRR
                                                                            : SNI_SERVER_DONE;
                if (st == SNI_SERVER_HRR && s->mleft == 0)
                    s->mhdr_len = 0;
            }
        } else {
            n = s->mleft < n ? s->mleft : n; /* the rest of a HelloRetryRequest */
            s->mleft -= n;
            pos += n;
            if (s->mleft == 0)
                s->mhdr_len = 0;
        }
        s->rleft -= n;
        if (s->rleft == 0)
            s->rhdr_len = 0;
    }
    /* A HelloRetryRequest's bytes after its random are skipped on the
     * next call: mhdr_len stays 4 until its end. */
    *used = pos;
    if (st == SNI_SERVER_DONE)
        s->done = 1;
    return st;
}

/* --- names ------------------------------------------------------------------- */

int
sni_normalize(const char *name, size_t len, char *out, size_t outsz, int *is_ip)
{
    *is_ip = 0;
    if (len == 0)
        return 0;
    int n = catalog_normalize(name, len, out, outsz, is_ip);
    if (n <= 0 || *is_ip)
        return n < 0 ? -1 : 0;
    /* What the catalog compares is a DNS name: letters, digits, '-', '.'
     * and the '_' some hosts use. Anything else names no host the catalog
     * could know, so it cannot be classified. */
    for (int i = 0; i < n; i++) {
        char c = out[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return -1;
    }
    return n;
}
