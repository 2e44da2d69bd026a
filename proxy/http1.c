#include "http1.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>

#include "util/num.h"

const char *
http1_strerror(enum http1_status st)
{
    switch (st) {
    case HTTP1_OK: return "ok";
    case HTTP1_PARTIAL: return "incomplete";
    case HTTP1_ERR_REQUEST_LINE: return "bad-request-line";
    case HTTP1_ERR_URI_TOO_LONG: return "request-line-too-long";
    case HTTP1_ERR_HEAD_TOO_LARGE: return "head-too-large";
    case HTTP1_ERR_TOO_MANY_HEADERS: return "too-many-headers";
    case HTTP1_ERR_VERSION: return "unsupported-version";
    case HTTP1_ERR_LINE_ENDING: return "bad-line-ending";
    case HTTP1_ERR_HEADER_NAME: return "bad-header-name";
    case HTTP1_ERR_HEADER_VALUE: return "bad-header-value";
    case HTTP1_ERR_OBS_FOLD: return "obs-fold";
    case HTTP1_ERR_CONTENT_LENGTH: return "bad-content-length";
    case HTTP1_ERR_TRANSFER_ENCODING: return "bad-transfer-encoding";
    case HTTP1_ERR_CL_AND_TE: return "content-length-and-transfer-encoding";
    case HTTP1_ERR_HOST: return "bad-host";
    case HTTP1_ERR_STATUS_LINE: return "bad-status-line";
    case HTTP1_ERR_TARGET: return "bad-target";
    case HTTP1_ERR_SCHEME: return "unsupported-scheme";
    case HTTP1_ERR_CHUNK: return "bad-chunk";
    case HTTP1_ERR_TE_CODING: return "unsupported-transfer-coding";
    }
    return "unknown";
}

int
http1_error_code(enum http1_status st)
{
    switch (st) {
    case HTTP1_ERR_URI_TOO_LONG: return 414;
    case HTTP1_ERR_HEAD_TOO_LARGE:
    case HTTP1_ERR_TOO_MANY_HEADERS: return 431;
    case HTTP1_ERR_VERSION: return 505;
    case HTTP1_ERR_TE_CODING: return 501;
    default: return 400;
    }
}

/* RFC 9110 5.6.2 tchar */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int
lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int
http1_name_is(const struct http1_span *name, const char *lc)
{
    size_t n = strlen(lc);
    if (name->len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)name->p[i]) != lc[i])
            return 0;
    return 1;
}

static int
span_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Calls fn on each trimmed, non-empty element of a comma list. Stops when fn
 * returns nonzero and returns that value. */
static int
list_each(const struct http1_span *v, int (*fn)(void *, const char *, size_t), void *arg)
{
    size_t i = 0;
    while (i < v->len) {
        size_t s = i;
        while (i < v->len && v->p[i] != ',')
            i++;
        size_t e = i;
        while (s < e && (v->p[s] == ' ' || v->p[s] == '\t'))
            s++;
        while (e > s && (v->p[e - 1] == ' ' || v->p[e - 1] == '\t'))
            e--;
        if (e > s) {
            int r = fn(arg, v->p + s, e - s);
            if (r)
                return r;
        }
        i++;
    }
    return 0;
}

struct tok_arg {
    const char *tok;
    size_t len;
};

static int
tok_eq(void *arg, const char *p, size_t n)
{
    struct tok_arg *t = arg;
    return span_ieq(p, n, t->tok, t->len);
}

int
http1_list_has(const struct http1_span *value, const char *token)
{
    struct tok_arg t = {token, strlen(token)};
    return list_each(value, tok_eq, &t);
}

int
http1_connection_names(const struct http1_head *h, const struct http1_span *name)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!http1_name_is(&h->headers[i].name, "connection"))
            continue;
        struct tok_arg t = {name->p, name->len};
        if (list_each(&h->headers[i].value, tok_eq, &t))
            return 1;
    }
    return 0;
}

int
http1_is_hop_by_hop(const struct http1_span *name)
{
    static const char *const hop[] = {"connection", "keep-alive",  "proxy-connection",
                                      "proxy-authorization", "te", "trailer",
                                      "transfer-encoding",   "upgrade", "proxy-authenticate"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (http1_name_is(name, hop[i]))
            return 1;
    return 0;
}

/* Finds the end of the line starting at pos. Returns the index of its LF,
 * or (size_t)-1 if incomplete; sets *bad when a bare CR or bare LF is seen. */
static size_t
line_end(const uint8_t *p, size_t len, size_t pos, size_t *bad)
{
    for (size_t i = pos; i < len; i++) {
        if (p[i] == '\n') {
            if (i == pos || p[i - 1] != '\r') {
                *bad = i;
                return (size_t)-1;
            }
            return i;
        }
        if (p[i] == '\r' && i + 1 < len && p[i + 1] != '\n') {
            *bad = i;
            return (size_t)-1;
        }
    }
    return (size_t)-1;
}

struct cl_state {
    int seen;
    int elems; /* elements in the current field */
    uint64_t value;
};

static int
cl_elem(void *arg, const char *p, size_t n)
{
    struct cl_state *st = arg;
    uint64_t v;
    const char *err;
    /* 2^62: large enough for any file, far from overflow in sums. */
    if (num_parse_u64(p, n, (uint64_t)1 << 62, &v, &err) < 0)
        return 1;
    if (st->seen && st->value != v)
        return 1;
    st->elems++;
    st->seen = 1;
    st->value = v;
    return 0;
}

struct te_state {
    int count;
    int last_chunked;
    int chunked_seen;
};

static int
te_elem(void *arg, const char *p, size_t n)
{
    struct te_state *st = arg;
    st->count++;
    int c = span_ieq(p, n, "chunked", 7);
    if (st->chunked_seen)
        return 1; /* anything after chunked, or chunked twice */
    st->chunked_seen = c;
    st->last_chunked = c;
    return 0;
}

/* Parses the field lines starting at pos; fills h->headers and framing
 * facts. Returns OK with h->head_len set, PARTIAL, or an error. */
static enum http1_status
parse_fields(const uint8_t *p, size_t len, size_t pos, size_t max_head, struct http1_head *h)
{
    struct cl_state cl = {0, 0, 0};
    struct te_state te = {0, 0, 0};
    int te_bad = 0, hosts = 0;

    h->nheaders = 0;
    for (;;) {
        size_t bad = (size_t)-1;
        size_t eol = line_end(p, len, pos, &bad);
        if (bad != (size_t)-1) {
            h->err_off = bad;
            return HTTP1_ERR_LINE_ENDING;
        }
        if (eol == (size_t)-1) {
            /* Validate the partial line so garbage fails early. A CR here
             * is the last byte (line_end refused any other). */
            size_t i = pos;
            for (; i < len && p[i] != ':' && p[i] != '\r'; i++) {
                if (!tchar[p[i]]) {
                    if (i == pos && (p[i] == ' ' || p[i] == '\t')) {
                        h->err_off = i;
                        return HTTP1_ERR_OBS_FOLD;
                    }
                    h->err_off = i;
                    return HTTP1_ERR_HEADER_NAME;
                }
            }
            if (i < len && p[i] == '\r' && i > pos) {
                h->err_off = i; /* the line ends without a colon */
                return HTTP1_ERR_HEADER_NAME;
            }
            if (i < len && p[i] == ':') {
                if (i == pos) {
                    h->err_off = i;
                    return HTTP1_ERR_HEADER_NAME;
                }
                for (i++; i < len && p[i] != '\r'; i++) {
                    if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
                        h->err_off = i;
                        return HTTP1_ERR_HEADER_VALUE;
                    }
                }
            }
            if (len >= max_head) {
                h->err_off = len;
                return HTTP1_ERR_HEAD_TOO_LARGE;
            }
            return HTTP1_PARTIAL;
        }
        if (eol + 1 > max_head) {
            h->err_off = max_head;
            return HTTP1_ERR_HEAD_TOO_LARGE;
        }
        size_t end = eol - 1; /* the CR */
        if (end == pos) {     /* empty line: end of head */
            h->head_len = eol + 1;
            break;
        }
        if (p[pos] == ' ' || p[pos] == '\t') {
            h->err_off = pos;
            return HTTP1_ERR_OBS_FOLD;
        }
        size_t i = pos;
        while (i < end && tchar[p[i]])
            i++;
        if (i == pos || i == end || p[i] != ':') {
            h->err_off = i;
            return HTTP1_ERR_HEADER_NAME;
        }
        if (h->nheaders == HTTP1_MAX_HEADERS) {
            h->err_off = pos;
            return HTTP1_ERR_TOO_MANY_HEADERS;
        }
        struct http1_header *f = &h->headers[h->nheaders++];
        f->name.p = (const char *)p + pos;
        f->name.len = i - pos;
        i++;
        for (size_t j = i; j < end; j++) {
            uint8_t c = p[j];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                h->err_off = j;
                return HTTP1_ERR_HEADER_VALUE;
            }
        }
        while (i < end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t ve = end;
        while (ve > i && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
            ve--;
        f->value.p = (const char *)p + i;
        f->value.len = ve - i;

        if (http1_name_is(&f->name, "content-length")) {
            h->flags |= HTTP1_F_HAS_CL;
            /* "Content-Length: ," has no value at all: as bad as an empty one. */
            cl.elems = 0;
            if (list_each(&f->value, cl_elem, &cl) || cl.elems == 0) {
                h->err_off = pos;
                return HTTP1_ERR_CONTENT_LENGTH;
            }
        } else if (http1_name_is(&f->name, "transfer-encoding")) {
            h->flags |= HTTP1_F_HAS_TE;
            if (list_each(&f->value, te_elem, &te))
                te_bad = 1;
        } else if (http1_name_is(&f->name, "connection")) {
            if (http1_list_has(&f->value, "close"))
                h->flags |= HTTP1_F_CONN_CLOSE;
            if (http1_list_has(&f->value, "keep-alive"))
                h->flags |= HTTP1_F_CONN_KEEPALIVE;
            if (http1_list_has(&f->value, "upgrade"))
                h->flags |= HTTP1_F_CONN_UPGRADE;
        } else if (http1_name_is(&f->name, "host")) {
            if (++hosts > 1) {
                h->err_off = pos;
                return HTTP1_ERR_HOST;
            }
            h->host = f->value;
        } else if (http1_name_is(&f->name, "expect")) {
            if (span_ieq(f->value.p, f->value.len, "100-continue", 12))
                h->flags |= HTTP1_F_EXPECT_CONTINUE;
        } else if (http1_name_is(&f->name, "upgrade")) {
            h->flags |= HTTP1_F_UPGRADE;
        }
        pos = eol + 1;
    }
    if (cl.seen)
        h->content_length = cl.value;
    if ((h->flags & HTTP1_F_HAS_TE) && (te_bad || te.count == 0))
        return HTTP1_ERR_TRANSFER_ENCODING;
    h->body = HTTP1_BODY_NONE;
    if (h->flags & HTTP1_F_HAS_TE) {
        if (h->flags & HTTP1_F_HAS_CL)
            return HTTP1_ERR_CL_AND_TE;
        h->body = te.last_chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_CLOSE;
        if (te.count > 1)
            h->flags |= HTTP1_F_TE_CODED;
    } else if (cl.seen) {
        h->body = HTTP1_BODY_LENGTH;
    }
    return HTTP1_OK;
}

/* The longest method accepted; longer ones are refused even before the
 * space arrives, so both paths must agree. */
#define HTTP1_MAX_METHOD 32

static enum http1_status
parse_version(const uint8_t *p, size_t n, int *minor)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return HTTP1_ERR_REQUEST_LINE;
    if (p[5] != '1')
        return HTTP1_ERR_VERSION;
    *minor = p[7] == '0' ? 0 : 1;
    return HTTP1_OK;
}

/* An incomplete request line: PARTIAL unless max_head bytes are already
 * there, since the head can then only end up larger than allowed (the caller
 * hands at most max_head + 1 bytes, so waiting would wait forever). */
static enum http1_status
request_line_partial(size_t len, size_t max_head, struct http1_head *h)
{
    if (len >= max_head) {
        h->err_off = len;
        return HTTP1_ERR_HEAD_TOO_LARGE;
    }
    return HTTP1_PARTIAL;
}

enum http1_status
http1_parse_request(const uint8_t *p, size_t len, size_t max_head, struct http1_head *h)
{
    size_t pos = 0;

    memset(h, 0, offsetof(struct http1_head, headers));
    h->nheaders = 0;
    h->head_len = 0;
    h->body = HTTP1_BODY_NONE;
    h->content_length = 0;
    h->flags = 0;
    h->host.p = NULL;
    h->host.len = 0;
    h->err_off = 0;

    /* RFC 9112 2.2: ignore at least one empty line before the request. */
    int k = 0;
    for (; k < 4 && len - pos >= 2 && p[pos] == '\r' && p[pos + 1] == '\n'; k++)
        pos += 2;
    if (k < 4 && len - pos == 1 && p[pos] == '\r')
        return request_line_partial(len, max_head, h); /* the LF may follow */

    /* method */
    size_t i = pos;
    while (i < len && tchar[p[i]])
        i++;
    if (i - pos > HTTP1_MAX_METHOD) {
        h->err_off = pos + HTTP1_MAX_METHOD;
        return HTTP1_ERR_REQUEST_LINE;
    }
    if (i == len)
        return request_line_partial(len, max_head, h);
    if (i == pos || p[i] != ' ') {
        h->err_off = i;
        return HTTP1_ERR_REQUEST_LINE;
    }
    h->method.p = (const char *)p + pos;
    h->method.len = i - pos;
    size_t ts = ++i;
    while (i < len && p[i] > 0x20 && p[i] < 0x7f)
        i++;
    if (i - pos > HTTP1_MAX_REQUEST_LINE) {
        h->err_off = i;
        return HTTP1_ERR_URI_TOO_LONG;
    }
    if (i == len)
        return request_line_partial(len, max_head, h);
    if (i == ts || p[i] != ' ') {
        h->err_off = i;
        return HTTP1_ERR_REQUEST_LINE;
    }
    h->target.p = (const char *)p + ts;
    h->target.len = i - ts;
    size_t vs = ++i;
    if (len - vs < 10) {
        /* Check what is there so far, with the verdicts parse_version
         * would give on the whole line. */
        static const char want[] = "HTTP/1.1\r\n";
        for (size_t j = 0; j < len - vs; j++) {
            uint8_t c = p[vs + j];
            int ok = (j == 5 || j == 7) ? (c >= '0' && c <= '9') : c == (uint8_t)want[j];
            if (!ok) {
                h->err_off = vs + j;
                return HTTP1_ERR_REQUEST_LINE;
            }
            if (j == 5 && c != '1') {
                h->err_off = vs + j;
                return HTTP1_ERR_VERSION;
            }
        }
        return request_line_partial(len, max_head, h);
    }
    enum http1_status st = parse_version(p + vs, 8, &h->minor);
    if (st != HTTP1_OK || p[vs + 8] != '\r' || p[vs + 9] != '\n') {
        h->err_off = vs;
        return st != HTTP1_OK ? st : HTTP1_ERR_REQUEST_LINE;
    }
    st = parse_fields(p, len, vs + 10, max_head, h);
    if (st != HTTP1_OK)
        return st;
    if (h->body == HTTP1_BODY_CLOSE)
        return HTTP1_ERR_TRANSFER_ENCODING; /* RFC 9112 6.3 (4): chunked must be last */
    if ((h->flags & HTTP1_F_HAS_TE) && h->minor == 0)
        return HTTP1_ERR_TRANSFER_ENCODING; /* RFC 9112 6.1: faulty framing */
    /* RFC 9112 6.1: a coding besides chunked (gzip, chunked) is not one the
     * proxy understands; it would have to forward it, and origins differ on
     * it. 501, as nginx and Squid answer. */
    if (h->body == HTTP1_BODY_CHUNKED && (h->flags & HTTP1_F_TE_CODED))
        return HTTP1_ERR_TE_CODING;
    if (h->body == HTTP1_BODY_LENGTH && h->content_length == 0)
        h->body = HTTP1_BODY_NONE;
    return HTTP1_OK;
}

enum http1_status
http1_parse_response(const uint8_t *p, size_t len, size_t max_head, int head_request,
                     struct http1_head *h)
{
    memset(h, 0, offsetof(struct http1_head, headers));
    h->nheaders = 0;
    h->head_len = 0;
    h->body = HTTP1_BODY_NONE;
    h->content_length = 0;
    h->flags = 0;
    h->host.p = NULL;
    h->host.len = 0;
    h->err_off = 0;

    /* "HTTP/1.1 200 " or "HTTP/1.1 200\r" at least: 13 bytes, checked as
     * they arrive so garbage fails early. */
    static const char pre[] = "HTTP/1.";
    for (size_t k = 0; k < len && k < 13; k++) {
        uint8_t c = p[k];
        int ok;
        if (k < 7)
            ok = c == (uint8_t)pre[k];
        else if (k == 8)
            ok = c == ' ';
        else if (k == 9)
            ok = c >= '1' && c <= '9';
        else if (k == 12)
            ok = c == ' ' || c == '\r';
        else
            ok = c >= '0' && c <= '9';
        if (!ok) {
            h->err_off = k;
            return HTTP1_ERR_STATUS_LINE;
        }
    }
    if (len < 13)
        return HTTP1_PARTIAL;
    h->minor = p[7] == '0' ? 0 : 1;
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    size_t bad = (size_t)-1;
    size_t eol = line_end(p, len, 12, &bad);
    if (bad != (size_t)-1) {
        h->err_off = bad;
        return HTTP1_ERR_LINE_ENDING;
    }
    if (eol == (size_t)-1) {
        if (len >= HTTP1_MAX_REQUEST_LINE || len >= max_head)
            return HTTP1_ERR_HEAD_TOO_LARGE;
        return HTTP1_PARTIAL;
    }
    for (size_t j = 12; j < eol - 1; j++) {
        if ((p[j] < 0x20 && p[j] != '\t') || p[j] == 0x7f) {
            h->err_off = j;
            return HTTP1_ERR_STATUS_LINE;
        }
    }
    h->reason.p = (const char *)p + (p[12] == ' ' ? 13 : 12);
    h->reason.len = eol - 1 - (size_t)(h->reason.p - (const char *)p);
    enum http1_status st = parse_fields(p, len, eol + 1, max_head, h);
    if (st != HTTP1_OK)
        return st;
    /* RFC 9112 6.3 */
    if (head_request || h->status < 200 || h->status == 204 || h->status == 304)
        h->body = HTTP1_BODY_NONE;
    else if (!(h->flags & (HTTP1_F_HAS_TE | HTTP1_F_HAS_CL)))
        h->body = HTTP1_BODY_CLOSE;
    else if (h->body == HTTP1_BODY_LENGTH && h->content_length == 0)
        h->body = HTTP1_BODY_NONE;
    return HTTP1_OK;
}

static int
host_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

enum http1_status
http1_parse_authority(const char *p, size_t len, int require_port, uint16_t def_port,
                      struct http1_target *t)
{
    size_t i = 0, hs, he;

    t->host_is_ipv6 = 0;
    if (len == 0)
        return HTTP1_ERR_TARGET;
    if (p[0] == '[') {
        hs = 1;
        while (i < len && p[i] != ']')
            i++;
        if (i == len || i == 1)
            return HTTP1_ERR_TARGET;
        he = i++;
        for (size_t k = hs; k < he; k++) {
            char c = p[k];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.'))
                return HTTP1_ERR_TARGET;
        }
        /* The characters alone let "[1.2.3.4]" or "[:::]" through, which
         * would then be looked up as names: require a real IPv6 address. */
        char a6[INET6_ADDRSTRLEN];
        struct in6_addr in6;
        if (he - hs >= sizeof(a6))
            return HTTP1_ERR_TARGET;
        memcpy(a6, p + hs, he - hs);
        a6[he - hs] = '\0';
        if (inet_pton(AF_INET6, a6, &in6) != 1)
            return HTTP1_ERR_TARGET;
        t->host_is_ipv6 = 1;
    } else {
        hs = 0;
        while (i < len && host_char((uint8_t)p[i]))
            i++;
        he = i;
        if (he == hs)
            return HTTP1_ERR_TARGET;
    }
    if (he - hs > HTTP1_MAX_HOST)
        return HTTP1_ERR_TARGET;
    t->host.p = p + hs;
    t->host.len = he - hs;
    if (i == len) {
        if (require_port)
            return HTTP1_ERR_TARGET;
        t->port = def_port;
        return HTTP1_OK;
    }
    if (p[i] != ':')
        return HTTP1_ERR_TARGET;
    i++;
    uint64_t port;
    const char *err;
    if (i == len && !require_port) { /* "host:" means the default port */
        t->port = def_port;
        return HTTP1_OK;
    }
    if (num_parse_u64(p + i, len - i, 65535, &port, &err) < 0 || port == 0)
        return HTTP1_ERR_TARGET;
    t->port = (uint16_t)port;
    return HTTP1_OK;
}

enum http1_status
http1_parse_target(const struct http1_span *target, int is_connect, struct http1_target *t)
{
    const char *p = target->p;
    size_t len = target->len;

    memset(t, 0, sizeof(*t));
    if (is_connect) {
        t->form = HTTP1_FORM_AUTHORITY;
        return http1_parse_authority(p, len, 1, 0, t);
    }
    if (len == 1 && p[0] == '*') {
        t->form = HTTP1_FORM_ASTERISK;
        return HTTP1_OK;
    }
    if (len > 0 && p[0] == '/') {
        t->form = HTTP1_FORM_ORIGIN;
        t->path = *target;
        size_t q = 0;
        while (q < len && p[q] != '?' && p[q] != '#')
            q++;
        t->path_only_len = q;
        return HTTP1_OK;
    }
    /* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
    size_t i = 0;
    while (i < len && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
                       (i > 0 && ((p[i] >= '0' && p[i] <= '9') || p[i] == '+' || p[i] == '-' ||
                                  p[i] == '.'))))
        i++;
    if (i == 0 || len - i < 3 || memcmp(p + i, "://", 3) != 0)
        return HTTP1_ERR_TARGET;
    if (!span_ieq(p, i, "http", 4))
        return HTTP1_ERR_SCHEME;
    t->form = HTTP1_FORM_ABSOLUTE;
    size_t as = i + 3, ae = as;
    while (ae < len && p[ae] != '/' && p[ae] != '?' && p[ae] != '#')
        ae++;
    for (size_t k = as; k < ae; k++)
        if (p[k] == '@')
            return HTTP1_ERR_TARGET; /* userinfo: RFC 9110 4.2.4 */
    enum http1_status st = http1_parse_authority(p + as, ae - as, 0, 80, t);
    if (st != HTTP1_OK)
        return st;
    t->path.p = p + ae;
    t->path.len = len - ae;
    /* A fragment is never sent; cut it. */
    for (size_t k = 0; k < t->path.len; k++) {
        if (t->path.p[k] == '#') {
            t->path.len = k;
            break;
        }
    }
    size_t q = 0;
    while (q < t->path.len && t->path.p[q] != '?')
        q++;
    t->path_only_len = q;
    return HTTP1_OK;
}

enum {
    CH_SIZE,
    CH_SIZE_WS, /* BWS after the size: only ';' or CRLF may follow */
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,
    CH_TRAILER,
    CH_TRAILER_LF,
    CH_FINAL_LF,
    CH_DONE,
};

int
http1_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum http1_status
http1_chunked_step(struct http1_chunked *c, const uint8_t *p, size_t len, size_t *used,
                   int *is_data, int *done)
{
    size_t i = 0;

    *is_data = 0;
    *done = c->state == CH_DONE;
    if (c->state == CH_DATA) {
        size_t n = len < c->remain ? len : (size_t)c->remain;
        c->remain -= n;
        if (c->remain == 0)
            c->state = CH_DATA_CR;
        *used = n;
        *is_data = n > 0;
        return HTTP1_OK;
    }
    while (i < len && c->state != CH_DATA && c->state != CH_DONE) {
        uint8_t b = p[i];
        switch (c->state) {
        case CH_SIZE: {
            int v = http1_hexval(b);
            if (v >= 0) {
                if (c->ndigits >= 15) /* < 2^60: no overflow, no absurd sizes */
                    return HTTP1_ERR_CHUNK;
                c->remain = (c->remain << 4) | (uint64_t)v;
                c->ndigits++;
            } else if (c->ndigits == 0) {
                return HTTP1_ERR_CHUNK;
            } else if (b == ';') {
                c->state = CH_EXT;
            } else if (b == ' ' || b == '\t') {
                c->state = CH_SIZE_WS;
            } else if (b == '\r') {
                c->state = CH_SIZE_LF;
            } else {
                return HTTP1_ERR_CHUNK;
            }
            break;
        }
        case CH_SIZE_WS:
            /* "5 6" must not pass as 5 with an extension: another parser
             * on the path could read it differently. */
            if (b == ';')
                c->state = CH_EXT;
            else if (b == '\r')
                c->state = CH_SIZE_LF;
            else if (b != ' ' && b != '\t')
                return HTTP1_ERR_CHUNK;
            break;
        case CH_EXT:
            if (b == '\r')
                c->state = CH_SIZE_LF;
            else if ((b < 0x20 && b != '\t') || b == 0x7f)
                return HTTP1_ERR_CHUNK;
            break;
        case CH_SIZE_LF:
            if (b != '\n')
                return HTTP1_ERR_CHUNK;
            c->line_len = 0;
            c->ndigits = 0;
            if (c->remain == 0) {
                c->state = CH_TRAILER_START;
            } else {
                c->state = CH_DATA;
                i++;
                *used = i;
                return HTTP1_OK;
            }
            i++;
            continue;
        case CH_DATA_CR:
            if (b != '\r')
                return HTTP1_ERR_CHUNK;
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (b != '\n')
                return HTTP1_ERR_CHUNK;
            c->state = CH_SIZE;
            c->remain = 0;
            c->line_len = 0;
            i++;
            continue;
        case CH_TRAILER_START:
            if (b == '\r') {
                c->state = CH_FINAL_LF;
            } else if (b == ' ' || b == '\t' || !tchar[b]) {
                return HTTP1_ERR_CHUNK; /* obs-fold or junk in trailers */
            } else {
                c->state = CH_TRAILER;
            }
            break;
        case CH_TRAILER:
            if (b == '\r')
                c->state = CH_TRAILER_LF;
            else if ((b < 0x20 && b != '\t') || b == 0x7f)
                return HTTP1_ERR_CHUNK;
            break;
        case CH_TRAILER_LF:
            if (b != '\n')
                return HTTP1_ERR_CHUNK;
            c->state = CH_TRAILER_START;
            break;
        case CH_FINAL_LF:
            if (b != '\n')
                return HTTP1_ERR_CHUNK;
            c->state = CH_DONE;
            break;
        }
        if (c->state == CH_SIZE || c->state == CH_SIZE_WS || c->state == CH_EXT ||
            c->state == CH_SIZE_LF) {
            if (++c->line_len > HTTP1_MAX_CHUNK_LINE)
                return HTTP1_ERR_CHUNK;
        } else if (c->state >= CH_TRAILER_START && c->state <= CH_FINAL_LF) {
            if (++c->trailer_len > HTTP1_MAX_TRAILERS)
                return HTTP1_ERR_CHUNK;
        }
        i++;
    }
    *used = i;
    *done = c->state == CH_DONE;
    return HTTP1_OK;
}
