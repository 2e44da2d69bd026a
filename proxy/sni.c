#include "sni.h"

#include <stdlib.h>
#include <string.h>

const char *
sni_strstatus(enum sni_status st)
{
    switch (st) {
    case SNI_OK: return "ok";
    case SNI_PARTIAL: return "partial";
    case SNI_NOT_TLS: return "not-tls";
    case SNI_MALFORMED: return "malformed";
    }
    return "?";
}

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

static int
host_ok(const uint8_t *s, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

/* RFC 6066 3 */
static int
parse_sni_ext(struct rd *e, struct sni_info *out)
{
    unsigned listlen;
    if (u16(e, &listlen) < 0 || listlen != e->len - e->pos)
        return -1;
    while (e->pos < e->len) {
        unsigned type, n;
        if (u8(e, &type) < 0 || u16(e, &n) < 0 || !need(e, n))
            return -1;
        if (type == 0 && !out->has_sni) {
            if (!host_ok(e->p + e->pos, n))
                return -1;
            memcpy(out->sni, e->p + e->pos, n);
            out->sni[n] = '\0';
            out->has_sni = 1;
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

static enum sni_status
parse_hello(const uint8_t *h, size_t len, struct sni_info *out)
{
    struct rd r = {h, len, 0};
    unsigned v, n;
    if (u16(&r, &v) < 0 || (v >> 8) != 3)
        return SNI_MALFORMED;
    if (skip(&r, 32) < 0)           /* random */
        return SNI_MALFORMED;
    if (u8(&r, &n) < 0 || n > 32 || skip(&r, n) < 0) /* session id */
        return SNI_MALFORMED;
    if (u16(&r, &n) < 0 || n < 2 || (n & 1) || skip(&r, n) < 0) /* cipher suites */
        return SNI_MALFORMED;
    if (u8(&r, &n) < 0 || n < 1 || skip(&r, n) < 0) /* compression methods */
        return SNI_MALFORMED;
    if (r.pos == r.len)
        return SNI_OK; /* no extensions */
    if (u16(&r, &n) < 0 || n != r.len - r.pos)
        return SNI_MALFORMED;
    while (r.pos < r.len) {
        unsigned type, elen;
        if (u16(&r, &type) < 0 || u16(&r, &elen) < 0 || !need(&r, elen))
            return SNI_MALFORMED;
        struct rd e = {r.p + r.pos, elen, 0};
        if (type == 0 && parse_sni_ext(&e, out) < 0)
            return SNI_MALFORMED;
        if (type == 16 && parse_alpn_ext(&e, out) < 0)
            return SNI_MALFORMED;
        if (type == 0xfe0d) /* encrypted_client_hello */
            out->ech = 1;
        r.pos += elen;
    }
    return SNI_OK;
}

enum sni_status
sni_parse(const uint8_t *p, size_t len, struct sni_info *out)
{
    memset(out, 0, sizeof(*out));
    /* Gather the handshake bytes of consecutive handshake records. */
    uint8_t *hs = NULL;
    uint8_t hdr[4] = {0}; /* handshake type and 24-bit length */
    size_t hlen = 0, pos = 0, want = 0;
    enum sni_status st = SNI_PARTIAL;

    if (len >= 1 && p[0] != 22)
        return SNI_NOT_TLS;
    if (len >= 2 && p[1] != 3)
        return SNI_NOT_TLS;
    for (;;) {
        if (len - pos < 5) {
            st = SNI_PARTIAL;
            break;
        }
        const uint8_t *rec = p + pos;
        size_t rlen = (size_t)rec[3] << 8 | rec[4];
        if (rec[0] != 22 || rec[1] != 3) {
            st = pos == 0 ? SNI_NOT_TLS : SNI_MALFORMED;
            break;
        }
        if (rlen == 0 || rlen > 16384 + 2048) {
            st = SNI_MALFORMED;
            break;
        }
        if (len - pos - 5 < rlen) {
            st = SNI_PARTIAL;
            break;
        }
        const uint8_t *body = rec + 5;
        size_t blen = rlen;
        pos += 5 + rlen;
        /* A record may be as short as one byte (RFC 8446 5.1 lets a
         * handshake message be fragmented anywhere), so even the 4-byte
         * handshake header can span records. */
        while (hlen < 4 && blen > 0) {
            hdr[hlen++] = *body++;
            blen--;
        }
        if (hdr[0] != 1) { /* hlen >= 1 here: the record was not empty */
            st = SNI_MALFORMED;
            break;
        }
        if (hlen < 4)
            continue;
        if (hs == NULL) {
            /* The header tells the hello's size: check it early. */
            want = 4 + ((size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3]);
            if (want > SNI_MAX_HELLO || want < 4 + 38) {
                st = SNI_MALFORMED;
                break;
            }
            hs = malloc(want);
            if (hs == NULL) {
                st = SNI_MALFORMED;
                break;
            }
            memcpy(hs, hdr, 4);
        }
        size_t take = blen < want - hlen ? blen : want - hlen;
        memcpy(hs + hlen, body, take);
        hlen += take;
        if (hlen == want) {
            out->consumed = pos;
            st = parse_hello(hs + 4, want - 4, out);
            break;
        }
    }
    free(hs);
    return st;
}
