/* Unit tests for proxy/http1.c: request and response heads, targets,
 * authorities, token lists and the chunked scanner. Every input is handed
 * to the parser from a guard-page buffer (guard.h), so an over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "http1.h"

#define MAXH 65536
/* A string literal with its length, NULs included. */
#define R(s) s, sizeof(s) - 1

static struct guard G;

static int
setup(void **state)
{
    (void)state;
    guard_init(&G, 1 << 20);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    guard_free(&G);
    return 0;
}

static const char *
stname(enum http1_status st)
{
    return http1_strerror(st);
}

static int
span_is(const struct http1_span *s, const char *want)
{
    if (want == NULL)
        return s->len == 0;
    return s->len == strlen(want) && (s->len == 0 || memcmp(s->p, want, s->len) == 0);
}

static enum http1_status
req(const void *raw, size_t len, size_t max_head, struct http1_head *h)
{
    return http1_parse_request(guard_put(&G, raw, len), len, max_head, h);
}

static enum http1_status
resp(const void *raw, size_t len, size_t max_head, int head_request, struct http1_head *h)
{
    return http1_parse_response(guard_put(&G, raw, len), len, max_head, head_request, h);
}

/* ---------------------------------------------------------------------------
 * Requests that parse
 * ------------------------------------------------------------------------- */

struct req_ok {
    const char *name;
    const char *raw;
    size_t len;
    const char *method, *target;
    int minor;
    size_t nheaders;
    enum http1_body body;
    uint64_t cl;
    unsigned flags;
    const char *host;            /* NULL: no Host field */
    const char *h0name, *h0value; /* first field, when checked */
};

static const struct req_ok req_ok[] = {
    {"absolute-form GET", R("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     "GET", "http://example.com/", 1, 1, HTTP1_BODY_NONE, 0, 0, "example.com", "Host",
     "example.com"},
    {"HTTP/1.0 no fields", R("GET / HTTP/1.0\r\n\r\n"), "GET", "/", 0, 0, HTTP1_BODY_NONE, 0, 0,
     NULL, NULL, NULL},
    {"HTTP/1.2 is 1.1", R("GET / HTTP/1.2\r\n\r\n"), "GET", "/", 1, 0, HTTP1_BODY_NONE, 0, 0,
     NULL, NULL, NULL},
    {"one leading CRLF", R("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), "GET", "/", 1, 1,
     HTTP1_BODY_NONE, 0, 0, "a", NULL, NULL},
    {"four leading CRLFs", R("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), "GET", "/", 1,
     1, HTTP1_BODY_NONE, 0, 0, "a", NULL, NULL},
    {"content-length",
     R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n"), "POST",
     "http://a/", 1, 2, HTTP1_BODY_LENGTH, 42, HTTP1_F_HAS_CL, "a", NULL, NULL},
    {"content-length 0 is no body",
     R("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), "POST", "http://a/",
     1, 2, HTTP1_BODY_NONE, 0, HTTP1_F_HAS_CL, "a", NULL, NULL},
    {"identical duplicate content-length",
     R("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"), "POST", "/", 1, 2,
     HTTP1_BODY_LENGTH, 5, HTTP1_F_HAS_CL, NULL, NULL, NULL},
    {"identical content-length list", R("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
     "POST", "/", 1, 1, HTTP1_BODY_LENGTH, 5, HTTP1_F_HAS_CL, NULL, NULL, NULL},
    {"content-length with leading zeros", R("POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n"),
     "POST", "/", 1, 1, HTTP1_BODY_LENGTH, 7, HTTP1_F_HAS_CL, NULL, NULL, NULL},
    {"large content-length",
     R("PUT / HTTP/1.1\r\nContent-Length: 4611686018427387904\r\n\r\n"), "PUT", "/", 1, 1,
     HTTP1_BODY_LENGTH, 4611686018427387904ULL, HTTP1_F_HAS_CL, NULL, NULL, NULL},
    {"chunked", R("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), "POST", "/", 1, 1,
     HTTP1_BODY_CHUNKED, 0, HTTP1_F_HAS_TE, NULL, "Transfer-Encoding", "chunked"},
    {"chunked any case", R("POST / HTTP/1.1\r\ntransfer-encoding: ChUnKeD\r\n\r\n"), "POST", "/",
     1, 1, HTTP1_BODY_CHUNKED, 0, HTTP1_F_HAS_TE, NULL, NULL, NULL},
    {"connection close", R("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), "GET", "/", 1, 1,
     HTTP1_BODY_NONE, 0, HTTP1_F_CONN_CLOSE, NULL, NULL, NULL},
    {"keep-alive and upgrade",
     R("GET / HTTP/1.1\r\nConnection: Keep-Alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"), "GET",
     "/", 1, 2, HTTP1_BODY_NONE, 0,
     HTTP1_F_CONN_KEEPALIVE | HTTP1_F_CONN_UPGRADE | HTTP1_F_UPGRADE, NULL, NULL, NULL},
    {"expect 100-continue",
     R("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"), "PUT", "/", 1, 2,
     HTTP1_BODY_LENGTH, 3, HTTP1_F_EXPECT_CONTINUE | HTTP1_F_HAS_CL, NULL, NULL, NULL},
    {"value trimmed, inner blanks kept", R("GET / HTTP/1.1\r\nX-A: \t v a\tl \t\r\n\r\n"), "GET",
     "/", 1, 1, HTTP1_BODY_NONE, 0, 0, NULL, "X-A", "v a\tl"},
    {"empty value", R("GET / HTTP/1.1\r\nX-Empty:\r\n\r\n"), "GET", "/", 1, 1, HTTP1_BODY_NONE,
     0, 0, NULL, "X-Empty", ""},
    {"blank value", R("GET / HTTP/1.1\r\nX-Empty:   \r\n\r\n"), "GET", "/", 1, 1,
     HTTP1_BODY_NONE, 0, 0, NULL, "X-Empty", ""},
    {"obs-text in value", R("GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n"), "GET", "/", 1,
     1, HTTP1_BODY_NONE, 0, 0, NULL, "X-Name", "caf\xc3\xa9 \xff"},
    {"colon in value", R("GET / HTTP/1.1\r\nX-T: a:b::c\r\n\r\n"), "GET", "/", 1, 1,
     HTTP1_BODY_NONE, 0, 0, NULL, "X-T", "a:b::c"},
    {"every tchar in a name", R("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: x\r\n\r\n"), "GET", "/",
     1, 1, HTTP1_BODY_NONE, 0, 0, NULL, "!#$%&'*+-.^_`|~09azAZ", "x"},
    {"CONNECT", R("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
     "CONNECT", "example.com:443", 1, 1, HTTP1_BODY_NONE, 0, 0, "example.com:443", NULL, NULL},
    {"OPTIONS *", R("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), "OPTIONS", "*", 1, 1,
     HTTP1_BODY_NONE, 0, 0, "a", NULL, NULL},
    {"odd method and target",
     R("M-SEARCH /a/b;c?d=e&f=%20~!$'()*+,;= HTTP/1.1\r\n\r\n"), "M-SEARCH",
     "/a/b;c?d=e&f=%20~!$'()*+,;=", 1, 0, HTTP1_BODY_NONE, 0, 0, NULL, NULL, NULL},
    {"32-byte method", R("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 / HTTP/1.1\r\n\r\n"),
     "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "/", 1, 0, HTTP1_BODY_NONE, 0, 0, NULL, NULL, NULL},
    {"TE in a 1.1 request with fields around",
     R("POST http://a/x HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nTransfer-Encoding: chunked\r\n"
       "Accept: */*\r\n\r\n"),
     "POST", "http://a/x", 1, 4, HTTP1_BODY_CHUNKED, 0, HTTP1_F_HAS_TE, "a", NULL, NULL},
};

static void
check_req_ok(const struct req_ok *t, size_t max_head)
{
    struct http1_head h;
    enum http1_status st = req(t->raw, t->len, max_head, &h);
    if (st != HTTP1_OK)
        fail_msg("%s: got %s at %zu", t->name, stname(st), h.err_off);
    if (h.head_len != t->len)
        fail_msg("%s: head_len %zu, want %zu", t->name, h.head_len, t->len);
    if (!span_is(&h.method, t->method) || !span_is(&h.target, t->target))
        fail_msg("%s: method or target", t->name);
    if (h.minor != t->minor || h.nheaders != t->nheaders)
        fail_msg("%s: minor %d nheaders %zu", t->name, h.minor, h.nheaders);
    if (h.body != t->body || h.content_length != t->cl)
        fail_msg("%s: body %d cl %llu", t->name, (int)h.body, (unsigned long long)h.content_length);
    if (h.flags != t->flags)
        fail_msg("%s: flags %#x want %#x", t->name, h.flags, t->flags);
    if (t->host ? !span_is(&h.host, t->host) : h.host.len != 0)
        fail_msg("%s: host", t->name);
    if (t->h0name && (!span_is(&h.headers[0].name, t->h0name) ||
                      !span_is(&h.headers[0].value, t->h0value)))
        fail_msg("%s: first field is '%.*s: %.*s'", t->name, (int)h.headers[0].name.len,
                 h.headers[0].name.p, (int)h.headers[0].value.len, h.headers[0].value.p);
}

static void
test_request_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(req_ok) / sizeof(req_ok[0]); i++) {
        const struct req_ok *t = &req_ok[i];
        check_req_ok(t, MAXH);
        /* A head of exactly max_head bytes is allowed. */
        check_req_ok(t, t->len);

        /* Bytes after the head (body, next request) change nothing. */
        char buf[1024];
        memcpy(buf, t->raw, t->len);
        memcpy(buf + t->len, "XYZ\r\n\r\n", 7);
        struct http1_head h;
        enum http1_status st = req(buf, t->len + 7, MAXH, &h);
        if (st != HTTP1_OK || h.head_len != t->len)
            fail_msg("%s + trailing bytes: %s head_len %zu", t->name, stname(st), h.head_len);
    }
}

/* Every proper prefix of a valid head is PARTIAL, whatever the cut. */
static void
test_request_every_prefix_partial(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(req_ok) / sizeof(req_ok[0]); i++) {
        const struct req_ok *t = &req_ok[i];
        for (size_t n = 0; n < t->len; n++) {
            struct http1_head h;
            enum http1_status st = req(t->raw, n, MAXH, &h);
            if (st != HTTP1_PARTIAL)
                fail_msg("%s: prefix of %zu bytes gives %s", t->name, n, stname(st));
            /* The same with the tightest max_head the whole head allows. */
            st = req(t->raw, n, t->len, &h);
            if (st != HTTP1_PARTIAL)
                fail_msg("%s: prefix of %zu bytes, max_head %zu gives %s", t->name, n, t->len,
                         stname(st));
        }
    }
}

/* ---------------------------------------------------------------------------
 * Requests that are refused
 * ------------------------------------------------------------------------- */

struct req_bad {
    const char *name;
    const char *raw;
    size_t len;
    enum http1_status st;
    int code;
    /* 1: refused before the head is complete, i.e. without its final
     * CRLF (the parser promises to refuse as soon as the bytes seen cannot
     * form a valid head; framing checks need the whole head). */
    int early;
};

#define RL "POST http://a/ HTTP/1.1\r\nHost: a\r\n"
static const struct req_bad req_bad[] = {
    /* framing */
    {"CL and TE", R(RL "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP1_ERR_CL_AND_TE, 400, 0},
    {"TE and CL", R(RL "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
     HTTP1_ERR_CL_AND_TE, 400, 0},
    {"differing duplicate CL", R(RL "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"),
     HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"differing CL list", R(RL "Content-Length: 5, 6\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL +5", R(RL "Content-Length: +5\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL -1", R(RL "Content-Length: -1\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL ' 5 5'", R(RL "Content-Length:  5 5\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL overflow", R(RL "Content-Length: 99999999999999999999999\r\n\r\n"),
     HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL over 2^62", R(RL "Content-Length: 4611686018427387905\r\n\r\n"),
     HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL hex", R(RL "Content-Length: 0x10\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL decimal point", R(RL "Content-Length: 5.0\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL empty", R(RL "Content-Length:\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"CL only commas", R(RL "Content-Length: , ,\r\n\r\n"), HTTP1_ERR_CONTENT_LENGTH, 400, 1},
    {"TE xchunked", R(RL "Transfer-Encoding: xchunked\r\n\r\n"), HTTP1_ERR_TRANSFER_ENCODING, 400,
     0},
    {"TE chunked, identity", R(RL "Transfer-Encoding: chunked, identity\r\n\r\n"),
     HTTP1_ERR_TRANSFER_ENCODING, 400, 0},
    {"TE chunked twice", R(RL "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP1_ERR_TRANSFER_ENCODING, 400, 0},
    {"TE gzip alone", R(RL "Transfer-Encoding: gzip\r\n\r\n"), HTTP1_ERR_TRANSFER_ENCODING, 400,
     0},
    {"TE gzip, chunked", R(RL "Transfer-Encoding: gzip, chunked\r\n\r\n"), HTTP1_ERR_TE_CODING,
     501, 0},
    {"TE codings over two fields", R(RL "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP1_ERR_TE_CODING, 501, 0},
    {"TE empty", R(RL "Transfer-Encoding:\r\n\r\n"), HTTP1_ERR_TRANSFER_ENCODING, 400, 0},
    {"TE only commas", R(RL "Transfer-Encoding: ,\r\n\r\n"), HTTP1_ERR_TRANSFER_ENCODING, 400, 0},
    {"TE in HTTP/1.0", R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP1_ERR_TRANSFER_ENCODING, 400, 0},
    /* field syntax */
    {"obs-fold", R(RL "X-A: b\r\n c\r\n\r\n"), HTTP1_ERR_OBS_FOLD, 400, 1},
    {"obs-fold tab", R(RL "X-A: b\r\n\tc\r\n\r\n"), HTTP1_ERR_OBS_FOLD, 400, 1},
    {"blank before first field", R("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HTTP1_ERR_OBS_FOLD, 400,
     1},
    {"bare CR in value", R(RL "X-A: b\rc\r\n\r\n"), HTTP1_ERR_LINE_ENDING, 400, 1},
    {"bare CR ending a field", R(RL "X-A: b\r\r\n\r\n"), HTTP1_ERR_LINE_ENDING, 400, 1},
    {"bare LF ending a field", R(RL "X-A: b\n\r\n"), HTTP1_ERR_LINE_ENDING, 400, 1},
    {"bare LF ending the head", R(RL "X-A: b\r\n\n"), HTTP1_ERR_LINE_ENDING, 400, 0},
    {"bare LF lines", R("GET / HTTP/1.1\nHost: a\n\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"NUL in value", R(RL "X-A: a\0b\r\n\r\n"), HTTP1_ERR_HEADER_VALUE, 400, 1},
    {"SOH in value", R(RL "X-A: a\x01\r\n\r\n"), HTTP1_ERR_HEADER_VALUE, 400, 1},
    {"ESC in value", R(RL "X-A: \x1b[31m\r\n\r\n"), HTTP1_ERR_HEADER_VALUE, 400, 1},
    {"DEL in value", R(RL "X-A: a\x7f\r\n\r\n"), HTTP1_ERR_HEADER_VALUE, 400, 1},
    {"no colon", R(RL "NoColonHere\r\n\r\n"), HTTP1_ERR_HEADER_NAME, 400, 1},
    {"space before colon", R(RL "Host : a\r\n\r\n"), HTTP1_ERR_HEADER_NAME, 400, 1},
    {"tab before colon", R(RL "X-A\t: a\r\n\r\n"), HTTP1_ERR_HEADER_NAME, 400, 1},
    {"empty name", R(RL ": a\r\n\r\n"), HTTP1_ERR_HEADER_NAME, 400, 1},
    {"space in name", R(RL "X A: b\r\n\r\n"), HTTP1_ERR_HEADER_NAME, 400, 1},
    {"bracket in name", R(RL "X(A): b\r\n\r\n"), HTTP1_ERR_HEADER_NAME, 400, 1},
    {"non-ASCII in name", R(RL "X\xc3\xa9: b\r\n\r\n"), HTTP1_ERR_HEADER_NAME, 400, 1},
    {"duplicate Host", R("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), HTTP1_ERR_HOST,
     400, 1},
    {"duplicate Host any case", R("GET http://a/ HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n"),
     HTTP1_ERR_HOST, 400, 1},
    /* request line */
    {"two spaces after method", R("GET  / HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"two spaces before version", R("GET /  HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"tab separator", R("GET\t/ HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"leading space", R(" GET / HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"lowercase version", R("GET / http/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"HTTP/2.0", R("GET / HTTP/2.0\r\n\r\n"), HTTP1_ERR_VERSION, 505, 1},
    {"HTTP/0.9", R("GET / HTTP/0.9\r\n\r\n"), HTTP1_ERR_VERSION, 505, 1},
    {"HTTP/x.1", R("GET / HTTP/x.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"HTTP/1.x", R("GET / HTTP/1.x\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"HTTP/11", R("GET / HTTP/11\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"HTTP/1.10", R("GET / HTTP/1.10\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"space after version", R("GET / HTTP/1.1 \r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"no version", R("GET /\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"no target", R("GET HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"bad method char", R("G(T / HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"33-byte method", R("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456 / HTTP/1.1\r\n\r\n"),
     HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"CTL in target", R("GET /\x01 HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"non-ASCII in target", R("GET /\xc3\xa9 HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"five leading CRLFs", R("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
     HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"leading bare LF", R("\nGET / HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"leading bare CR", R("\rGET / HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"NUL request line", R("GET /\0 HTTP/1.1\r\n\r\n"), HTTP1_ERR_REQUEST_LINE, 400, 1},
    {"TLS ClientHello", R("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
     HTTP1_ERR_REQUEST_LINE, 400, 1},
};

/* Whole input: the exact status and code. Every prefix: PARTIAL or that
 * same status, never OK nor another error (the verdict must not depend on
 * how the bytes arrive). */
static void
check_req_bad(const char *name, const void *raw, size_t len, size_t max_head,
              enum http1_status want, int code, int early)
{
    struct http1_head h;
    enum http1_status st = req(raw, len, max_head, &h);
    if (st != want)
        fail_msg("%s: got %s, want %s", name, stname(st), stname(want));
    if (http1_error_code(st) != code)
        fail_msg("%s: code %d, want %d", name, http1_error_code(st), code);
    for (size_t n = 0; n < len; n++) {
        st = req(raw, n, max_head, &h);
        if (st != HTTP1_PARTIAL && st != want)
            fail_msg("%s: prefix of %zu bytes gives %s, want partial or %s", name, n, stname(st),
                     stname(want));
    }
    if (early && len >= 2) {
        st = req(raw, len - 2, max_head, &h);
        if (st != want)
            fail_msg("%s: without the final CRLF gives %s, want %s early", name, stname(st),
                     stname(want));
    }
}

static void
test_request_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(req_bad) / sizeof(req_bad[0]); i++) {
        const struct req_bad *t = &req_bad[i];
        check_req_bad(t->name, t->raw, t->len, MAXH, t->st, t->code, t->early);
    }
}

/* Incomplete inputs that already cannot become a valid head. */
struct early {
    const char *name;
    const char *raw;
    size_t len;
    size_t max_head;
    enum http1_status st;
};

static const struct early early[] = {
    {"CTL in target", R("GET /\x01"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"two spaces", R("GET  "), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"CTL in method", R("G\x01"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"TLS record", R("\x16\x03"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"leading LF", R("\n"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"long method", R("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"lowercase version", R("GET / h"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"version 2", R("GET / HTTP/2"), MAXH, HTTP1_ERR_VERSION},
    {"version x", R("GET / HTTP/x"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"no CRLF after version", R("GET / HTTP/1.1x"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"bare LF after version", R("GET / HTTP/1.1\n"), MAXH, HTTP1_ERR_REQUEST_LINE},
    {"space in name", R("GET / HTTP/1.1\r\nX A"), MAXH, HTTP1_ERR_HEADER_NAME},
    {"space before colon", R("GET / HTTP/1.1\r\nHost "), MAXH, HTTP1_ERR_HEADER_NAME},
    {"empty name", R("GET / HTTP/1.1\r\n:"), MAXH, HTTP1_ERR_HEADER_NAME},
    {"line without colon ends", R("GET / HTTP/1.1\r\nX\r"), MAXH, HTTP1_ERR_HEADER_NAME},
    {"fold at first field", R("GET / HTTP/1.1\r\n "), MAXH, HTTP1_ERR_OBS_FOLD},
    {"fold", R("GET / HTTP/1.1\r\nHost: a\r\n\t"), MAXH, HTTP1_ERR_OBS_FOLD},
    {"CTL in partial value", R("GET / HTTP/1.1\r\nX: a\x01"), MAXH, HTTP1_ERR_HEADER_VALUE},
    {"NUL in partial value", R("GET / HTTP/1.1\r\nX: a\0"), MAXH, HTTP1_ERR_HEADER_VALUE},
    {"bare CR", R("GET / HTTP/1.1\r\nX: a\rb"), MAXH, HTTP1_ERR_LINE_ENDING},
    {"bare LF", R("GET / HTTP/1.1\r\nX: a\n"), MAXH, HTTP1_ERR_LINE_ENDING},
    {"duplicate Host", R("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n"), MAXH, HTTP1_ERR_HOST},
    {"bad CL", R("GET / HTTP/1.1\r\nContent-Length: x\r\n"), MAXH, HTTP1_ERR_CONTENT_LENGTH},
    /* max_head bytes and still no end: the head can only be too large, even
     * when the request line itself is not complete yet. */
    {"max_head inside target", R("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 32,
     HTTP1_ERR_HEAD_TOO_LARGE},
    {"max_head inside version", R("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1"), 32,
     HTTP1_ERR_HEAD_TOO_LARGE},
    {"max_head inside fields", R("GET / HTTP/1.1\r\nX-A: aaaaaaaaaaaaaaaaaaa"), 32,
     HTTP1_ERR_HEAD_TOO_LARGE},
};

static void
test_request_fails_early(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
        const struct early *t = &early[i];
        struct http1_head h;
        enum http1_status st = req(t->raw, t->len, t->max_head, &h);
        if (st != t->st)
            fail_msg("%s: got %s, want %s", t->name, stname(st), stname(t->st));
    }
}

static char *
make_request_with_target(size_t target_len, size_t *len)
{
    char *buf = malloc(target_len + 64);
    assert_non_null(buf);
    size_t n = 0;
    memcpy(buf, "GET /", 5);
    n = 5;
    memset(buf + n, 'a', target_len - 1);
    n += target_len - 1;
    static const char rest[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
    memcpy(buf + n, rest, sizeof(rest) - 1);
    n += sizeof(rest) - 1;
    *len = n;
    return buf;
}

static void
test_request_line_limit(void **state)
{
    (void)state;
    struct http1_head h;
    size_t len;
    /* "GET " + target is what HTTP1_MAX_REQUEST_LINE counts. */
    size_t fits = HTTP1_MAX_REQUEST_LINE - 4;

    char *ok = make_request_with_target(fits, &len);
    enum http1_status st = req(ok, len, MAXH, &h);
    assert_int_equal(st, HTTP1_OK);
    assert_int_equal(h.target.len, fits);
    for (size_t n = 0; n < len; n++) {
        st = req(ok, n, MAXH, &h);
        if (st != HTTP1_PARTIAL)
            fail_msg("longest request line: prefix %zu gives %s", n, stname(st));
    }
    free(ok);

    char *bad = make_request_with_target(fits + 1, &len);
    check_req_bad("request line too long", bad, len, MAXH, HTTP1_ERR_URI_TOO_LONG, 414, 1);
    /* Refused without waiting for the rest of the line. */
    st = req(bad, HTTP1_MAX_REQUEST_LINE + 1, MAXH, &h);
    assert_int_equal(st, HTTP1_ERR_URI_TOO_LONG);
    free(bad);
}

static void
test_head_size_limit(void **state)
{
    (void)state;
    static const char head[] = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
                               "User-Agent: test\r\nAccept: */*\r\n\r\n";
    size_t len = sizeof(head) - 1;
    struct http1_head h;

    assert_int_equal(req(head, len, len, &h), HTTP1_OK);
    for (size_t max = 16; max < len; max++) {
        char name[64];
        snprintf(name, sizeof(name), "head of %zu, max_head %zu", len, max);
        check_req_bad(name, head, len, max, HTTP1_ERR_HEAD_TOO_LARGE, 431, max <= len - 2);
    }

    /* A body after a head of exactly max_head bytes is not part of the head. */
    char buf[512];
    memcpy(buf, head, len);
    memset(buf + len, 'b', 300);
    assert_int_equal(req(buf, len + 300, len, &h), HTTP1_OK);
    assert_int_equal(h.head_len, len);
}

static void
test_header_count_limit(void **state)
{
    (void)state;
    char buf[4096];
    struct http1_head h;
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
        for (int i = 0; i < HTTP1_MAX_HEADERS + extra; i++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: %d\r\n", i, i);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
        if (!extra) {
            assert_int_equal(req(buf, n, MAXH, &h), HTTP1_OK);
            assert_int_equal(h.nheaders, HTTP1_MAX_HEADERS);
            assert_true(span_is(&h.headers[HTTP1_MAX_HEADERS - 1].name, "X-127"));
        } else {
            check_req_bad("too many fields", buf, n, MAXH, HTTP1_ERR_TOO_MANY_HEADERS, 431, 1);
        }
    }
}

static void
test_error_codes(void **state)
{
    (void)state;
    static const struct {
        enum http1_status st;
        int code;
        const char *text;
    } t[] = {
        {HTTP1_ERR_REQUEST_LINE, 400, "bad-request-line"},
        {HTTP1_ERR_URI_TOO_LONG, 414, "request-line-too-long"},
        {HTTP1_ERR_HEAD_TOO_LARGE, 431, "head-too-large"},
        {HTTP1_ERR_TOO_MANY_HEADERS, 431, "too-many-headers"},
        {HTTP1_ERR_VERSION, 505, "unsupported-version"},
        {HTTP1_ERR_LINE_ENDING, 400, "bad-line-ending"},
        {HTTP1_ERR_HEADER_NAME, 400, "bad-header-name"},
        {HTTP1_ERR_HEADER_VALUE, 400, "bad-header-value"},
        {HTTP1_ERR_OBS_FOLD, 400, "obs-fold"},
        {HTTP1_ERR_CONTENT_LENGTH, 400, "bad-content-length"},
        {HTTP1_ERR_TRANSFER_ENCODING, 400, "bad-transfer-encoding"},
        {HTTP1_ERR_CL_AND_TE, 400, "content-length-and-transfer-encoding"},
        {HTTP1_ERR_HOST, 400, "bad-host"},
        {HTTP1_ERR_STATUS_LINE, 400, "bad-status-line"},
        {HTTP1_ERR_TARGET, 400, "bad-target"},
        {HTTP1_ERR_SCHEME, 400, "unsupported-scheme"},
        {HTTP1_ERR_CHUNK, 400, "bad-chunk"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_int_equal(http1_error_code(t[i].st), t[i].code);
        assert_string_equal(http1_strerror(t[i].st), t[i].text);
    }
    assert_string_equal(http1_strerror(HTTP1_OK), "ok");
    assert_string_equal(http1_strerror(HTTP1_PARTIAL), "incomplete");
}

/* ---------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------- */

struct resp_ok {
    const char *name;
    const char *raw;
    size_t len;
    int head_request;
    int status;
    const char *reason;
    int minor;
    enum http1_body body;
    uint64_t cl;
};

static const struct resp_ok resp_ok[] = {
    {"length", R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), 0, 200, "OK", 1,
     HTTP1_BODY_LENGTH, 5},
    {"length 0", R("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, 200, "OK", 1,
     HTTP1_BODY_NONE, 0},
    {"identical length list", R("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n"), 0, 200, "OK",
     1, HTTP1_BODY_LENGTH, 3},
    {"chunked", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, 200, "OK", 1,
     HTTP1_BODY_CHUNKED, 0},
    {"gzip, chunked", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 0, 200,
     "OK", 1, HTTP1_BODY_CHUNKED, 0},
    {"TE not chunked is close-delimited", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
     0, 200, "OK", 1, HTTP1_BODY_CLOSE, 0},
    {"TE xchunked is close-delimited",
     R("HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n"), 0, 200, "OK", 1,
     HTTP1_BODY_CLOSE, 0},
    {"no framing is close-delimited", R("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), 0, 200, "OK", 1,
     HTTP1_BODY_CLOSE, 0},
    {"HTTP/1.0 close-delimited", R("HTTP/1.0 200 OK\r\n\r\n"), 0, 200, "OK", 0, HTTP1_BODY_CLOSE,
     0},
    {"HEAD: length is no body", R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), 1, 200, "OK",
     1, HTTP1_BODY_NONE, 5},
    {"HEAD: chunked is no body", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 1,
     200, "OK", 1, HTTP1_BODY_NONE, 0},
    {"HEAD: nothing is no body", R("HTTP/1.1 200 OK\r\n\r\n"), 1, 200, "OK", 1, HTTP1_BODY_NONE,
     0},
    {"100", R("HTTP/1.1 100 Continue\r\n\r\n"), 0, 100, "Continue", 1, HTTP1_BODY_NONE, 0},
    {"101", R("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
     0, 101, "Switching Protocols", 1, HTTP1_BODY_NONE, 0},
    {"103 with length", R("HTTP/1.1 103 Early Hints\r\nContent-Length: 9\r\n\r\n"), 0, 103,
     "Early Hints", 1, HTTP1_BODY_NONE, 9},
    {"204 with length", R("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"), 0, 204,
     "No Content", 1, HTTP1_BODY_NONE, 10},
    {"204 bare", R("HTTP/1.1 204 No Content\r\n\r\n"), 0, 204, "No Content", 1, HTTP1_BODY_NONE,
     0},
    {"304 with chunked", R("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"), 0,
     304, "Not Modified", 1, HTTP1_BODY_NONE, 0},
    {"304 bare", R("HTTP/1.1 304 Not Modified\r\n\r\n"), 0, 304, "Not Modified", 1,
     HTTP1_BODY_NONE, 0},
    {"205 is not 204", R("HTTP/1.1 205 Reset Content\r\n\r\n"), 0, 205, "Reset Content", 1,
     HTTP1_BODY_CLOSE, 0},
    {"no reason, no space", R("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n"), 0, 200, "", 1,
     HTTP1_BODY_LENGTH, 1},
    {"empty reason", R("HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n"), 0, 404, "", 1,
     HTTP1_BODY_LENGTH, 1},
    {"reason with spaces and obs-text", R("HTTP/1.1 404 Nicht gefunden \xe9\r\n\r\n"), 0, 404,
     "Nicht gefunden \xe9", 1, HTTP1_BODY_CLOSE, 0},
    {"999", R("HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\n"), 0, 999, "Odd", 1,
     HTTP1_BODY_LENGTH, 2},
};

static void
check_resp_ok(const struct resp_ok *t, size_t max_head)
{
    struct http1_head h;
    enum http1_status st = resp(t->raw, t->len, max_head, t->head_request, &h);
    if (st != HTTP1_OK)
        fail_msg("%s: got %s at %zu", t->name, stname(st), h.err_off);
    if (h.head_len != t->len || h.status != t->status || h.minor != t->minor)
        fail_msg("%s: head_len %zu status %d minor %d", t->name, h.head_len, h.status, h.minor);
    if (!span_is(&h.reason, t->reason))
        fail_msg("%s: reason '%.*s'", t->name, (int)h.reason.len, h.reason.p);
    if (h.body != t->body || h.content_length != t->cl)
        fail_msg("%s: body %d cl %llu", t->name, (int)h.body, (unsigned long long)h.content_length);
}

static void
test_response_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(resp_ok) / sizeof(resp_ok[0]); i++) {
        const struct resp_ok *t = &resp_ok[i];
        check_resp_ok(t, MAXH);
        check_resp_ok(t, t->len);
        for (size_t n = 0; n < t->len; n++) {
            struct http1_head h;
            enum http1_status st = resp(t->raw, n, MAXH, t->head_request, &h);
            if (st != HTTP1_PARTIAL)
                fail_msg("%s: prefix of %zu bytes gives %s", t->name, n, stname(st));
            st = resp(t->raw, n, t->len, t->head_request, &h);
            if (st != HTTP1_PARTIAL)
                fail_msg("%s: prefix of %zu bytes, tight max_head gives %s", t->name, n,
                         stname(st));
        }
        char buf[512];
        memcpy(buf, t->raw, t->len);
        memcpy(buf + t->len, "hello\r\n\r\n", 9);
        struct http1_head h;
        enum http1_status st = resp(buf, t->len + 9, MAXH, t->head_request, &h);
        if (st != HTTP1_OK || h.head_len != t->len)
            fail_msg("%s + body: %s head_len %zu", t->name, stname(st), h.head_len);
    }
}

struct resp_bad {
    const char *name;
    const char *raw;
    size_t len;
    size_t max_head;
    enum http1_status st;
    size_t early_len; /* this prefix already fails; 0: no promise */
};

static const struct resp_bad resp_bad[] = {
    {"HTTP/2", R("HTTP/2 200 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 6},
    {"lowercase", R("http/1.1 200 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 1},
    {"two-digit status", R("HTTP/1.1 20 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 12},
    {"status 099", R("HTTP/1.1 099 X\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 10},
    {"four-digit status", R("HTTP/1.1 2000 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 13},
    {"two spaces", R("HTTP/1.1  200 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 10},
    {"letters in status", R("HTTP/1.1 2x0 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 11},
    {"minor not a digit", R("HTTP/1.x 200 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 8},
    {"leading CRLF", R("\r\nHTTP/1.1 200 OK\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 1},
    {"HTML instead", R("<html><body>hi</body></html>\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 1},
    {"CTL in reason", R("HTTP/1.1 200 O\x01K\r\n\r\n"), MAXH, HTTP1_ERR_STATUS_LINE, 0},
    {"bare CR in status line", R("HTTP/1.1 200 OK\rX\r\n\r\n"), MAXH, HTTP1_ERR_LINE_ENDING, 17},
    {"bare LF status line", R("HTTP/1.1 200 OK\n\r\n"), MAXH, HTTP1_ERR_LINE_ENDING, 16},
    {"CL and TE", R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     MAXH, HTTP1_ERR_CL_AND_TE, 0},
    {"differing CL", R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n"), MAXH,
     HTTP1_ERR_CONTENT_LENGTH, 0},
    {"CL -1", R("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), MAXH, HTTP1_ERR_CONTENT_LENGTH,
     0},
    {"chunked not last", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), MAXH,
     HTTP1_ERR_TRANSFER_ENCODING, 0},
    {"obs-fold", R("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n"), MAXH, HTTP1_ERR_OBS_FOLD, 0},
    {"NUL in value", R("HTTP/1.1 200 OK\r\nX-A: \0\r\n\r\n"), MAXH, HTTP1_ERR_HEADER_VALUE, 0},
    {"space before colon", R("HTTP/1.1 200 OK\r\nServer : x\r\n\r\n"), MAXH,
     HTTP1_ERR_HEADER_NAME, 0},
    {"head too large", R("HTTP/1.1 200 OK\r\nServer: xxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n"), 32,
     HTTP1_ERR_HEAD_TOO_LARGE, 32},
    {"status line too large", R("HTTP/1.1 200 OKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK\r\n\r\n"), 24,
     HTTP1_ERR_HEAD_TOO_LARGE, 24},
};

static void
test_response_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(resp_bad) / sizeof(resp_bad[0]); i++) {
        const struct resp_bad *t = &resp_bad[i];
        struct http1_head h;
        enum http1_status st = resp(t->raw, t->len, t->max_head, 0, &h);
        if (st != t->st)
            fail_msg("%s: got %s, want %s", t->name, stname(st), stname(t->st));
        for (size_t n = 0; n < t->len; n++) {
            st = resp(t->raw, n, t->max_head, 0, &h);
            if (st != HTTP1_PARTIAL && st != t->st)
                fail_msg("%s: prefix of %zu gives %s", t->name, n, stname(st));
            if (t->early_len && n >= t->early_len && st != t->st)
                fail_msg("%s: prefix of %zu should already fail, gives %s", t->name, n,
                         stname(st));
        }
    }
}

/* ---------------------------------------------------------------------------
 * Targets and authorities
 * ------------------------------------------------------------------------- */

struct target_case {
    const char *target;
    int is_connect;
    enum http1_status st;
    enum http1_target_form form;
    const char *host;
    int ipv6;
    uint16_t port;
    const char *path;
    size_t path_only_len;
};

static const struct target_case targets[] = {
    /* origin-form */
    {"/", 0, HTTP1_OK, HTTP1_FORM_ORIGIN, NULL, 0, 0, "/", 1},
    {"/a/b?x=1&y", 0, HTTP1_OK, HTTP1_FORM_ORIGIN, NULL, 0, 0, "/a/b?x=1&y", 4},
    {"/a#frag", 0, HTTP1_OK, HTTP1_FORM_ORIGIN, NULL, 0, 0, "/a#frag", 2},
    {"//double", 0, HTTP1_OK, HTTP1_FORM_ORIGIN, NULL, 0, 0, "//double", 8},
    {"*", 0, HTTP1_OK, HTTP1_FORM_ASTERISK, NULL, 0, 0, NULL, 0},
    /* absolute-form */
    {"http://example.com", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "", 0},
    {"http://example.com/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "/", 1},
    {"http://Example.COM:8080/a/b?q=1#frag", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "Example.COM", 0,
     8080, "/a/b?q=1", 4},
    {"HTTP://example.com/x", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "/x", 2},
    {"hTtP://example.com/x", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "/x", 2},
    {"http://example.com:/x", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "/x", 2},
    {"http://example.com?q=1", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "?q=1", 0},
    {"http://example.com#f", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "", 0},
    {"http://a:65535/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "a", 0, 65535, "/", 1},
    {"http://a:1/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "a", 0, 1, "/", 1},
    {"http://192.0.2.1:81/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "192.0.2.1", 0, 81, "/", 1},
    {"http://under_score.example-host.com/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE,
     "under_score.example-host.com", 0, 80, "/", 1},
    {"http://[::1]:8080/x", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "::1", 1, 8080, "/x", 2},
    {"http://[2001:DB8::1]/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "2001:DB8::1", 1, 80, "/", 1},
    {"http://[::ffff:192.0.2.1]/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "::ffff:192.0.2.1", 1, 80,
     "/", 1},
    {"http://[::1]", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "::1", 1, 80, "", 0},
    /* bad absolute-form */
    {"http://[]/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://[::1/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://[::1]x/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://[::1]:/", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "::1", 1, 80, "/", 1},
    {"http://[192.0.2.1]/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://[:::]/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://[1:2:3:4:5:6:7:8:9]/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://[fe80::1%25eth0]/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://[v1.x]/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://user@example.com/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://user:pw@example.com/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://@example.com/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com/a@b", 0, HTTP1_OK, HTTP1_FORM_ABSOLUTE, "example.com", 0, 80, "/a@b", 4},
    {"http://", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http:///x", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://:80/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:0/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:65536/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:99999999999999999999/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:-1/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:+80/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:8o/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:80:80/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://ex%41mple.com/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://ex!ample.com/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http:/example.com/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http:example.com", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"example.com/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"example.com:80", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"://x/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"1http://x/", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"**", 0, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    /* other schemes */
    {"https://example.com/", 0, HTTP1_ERR_SCHEME, 0, NULL, 0, 0, NULL, 0},
    {"HTTPS://example.com/", 0, HTTP1_ERR_SCHEME, 0, NULL, 0, 0, NULL, 0},
    {"ftp://example.com/", 0, HTTP1_ERR_SCHEME, 0, NULL, 0, 0, NULL, 0},
    {"ws://example.com/", 0, HTTP1_ERR_SCHEME, 0, NULL, 0, 0, NULL, 0},
    {"httpx://example.com/", 0, HTTP1_ERR_SCHEME, 0, NULL, 0, 0, NULL, 0},
    {"svn+ssh://example.com/", 0, HTTP1_ERR_SCHEME, 0, NULL, 0, 0, NULL, 0},
    /* authority-form (CONNECT) */
    {"example.com:443", 1, HTTP1_OK, HTTP1_FORM_AUTHORITY, "example.com", 0, 443, NULL, 0},
    {"EXAMPLE.com:8443", 1, HTTP1_OK, HTTP1_FORM_AUTHORITY, "EXAMPLE.com", 0, 8443, NULL, 0},
    {"192.0.2.1:443", 1, HTTP1_OK, HTTP1_FORM_AUTHORITY, "192.0.2.1", 0, 443, NULL, 0},
    {"[2001:db8::1]:443", 1, HTTP1_OK, HTTP1_FORM_AUTHORITY, "2001:db8::1", 1, 443, NULL, 0},
    {"example.com", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"example.com:", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"example.com:0", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"example.com:70000", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"example.com:443/", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"[::1]", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"::1:443", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"user@example.com:443", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"http://example.com:443", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"/", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {":443", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
    {"", 1, HTTP1_ERR_TARGET, 0, NULL, 0, 0, NULL, 0},
};

static void
test_parse_target(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        const struct target_case *c = &targets[i];
        size_t len = strlen(c->target);
        struct http1_span sp = {(const char *)guard_put(&G, c->target, len), len};
        struct http1_target t;
        enum http1_status st = http1_parse_target(&sp, c->is_connect, &t);
        if (st != c->st)
            fail_msg("'%s'%s: got %s, want %s", c->target, c->is_connect ? " (CONNECT)" : "",
                     stname(st), stname(c->st));
        if (st != HTTP1_OK)
            continue;
        if (t.form != c->form)
            fail_msg("'%s': form %d, want %d", c->target, (int)t.form, (int)c->form);
        if (c->form == HTTP1_FORM_ABSOLUTE || c->form == HTTP1_FORM_AUTHORITY) {
            if (!span_is(&t.host, c->host) || t.host_is_ipv6 != c->ipv6 || t.port != c->port)
                fail_msg("'%s': host '%.*s' ipv6 %d port %u", c->target, (int)t.host.len,
                         t.host.p, t.host_is_ipv6, t.port);
        }
        if (c->path && (!span_is(&t.path, c->path) || t.path_only_len != c->path_only_len))
            fail_msg("'%s': path '%.*s' path_only_len %zu", c->target, (int)t.path.len, t.path.p,
                     t.path_only_len);
    }
}

static void
test_target_host_length(void **state)
{
    (void)state;
    char buf[600];
    struct http1_target t;
    for (size_t hl = HTTP1_MAX_HOST - 1; hl <= HTTP1_MAX_HOST + 1; hl++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "http://");
        memset(buf + n, 'h', hl);
        n += hl;
        memcpy(buf + n, "/x", 2);
        n += 2;
        struct http1_span sp = {(const char *)guard_put(&G, buf, n), n};
        enum http1_status st = http1_parse_target(&sp, 0, &t);
        assert_int_equal(st, hl <= HTTP1_MAX_HOST ? HTTP1_OK : HTTP1_ERR_TARGET);
    }
}

struct authority_case {
    const char *in;
    int require_port;
    uint16_t def_port;
    enum http1_status st;
    const char *host;
    int ipv6;
    uint16_t port;
};

static const struct authority_case authorities[] = {
    {"example.com", 0, 80, HTTP1_OK, "example.com", 0, 80},
    {"example.com", 0, 443, HTTP1_OK, "example.com", 0, 443},
    {"example.com:8080", 0, 80, HTTP1_OK, "example.com", 0, 8080},
    {"example.com:", 0, 80, HTTP1_OK, "example.com", 0, 80},
    {"example.com:", 1, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"example.com", 1, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"example.com:443", 1, 0, HTTP1_OK, "example.com", 0, 443},
    {"a_b-c.d", 0, 80, HTTP1_OK, "a_b-c.d", 0, 80},
    {"[::1]", 0, 80, HTTP1_OK, "::1", 1, 80},
    {"[::1]:81", 0, 80, HTTP1_OK, "::1", 1, 81},
    {"[::1]81", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"[", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"[]", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"[g::1]", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {":80", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"exa mple.com", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"example.com:80 ", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"example.com/", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"example.com:0", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"example.com:65536", 0, 80, HTTP1_ERR_TARGET, NULL, 0, 0},
    {"example.com:00080", 0, 80, HTTP1_OK, "example.com", 0, 80},
};

static void
test_parse_authority(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(authorities) / sizeof(authorities[0]); i++) {
        const struct authority_case *c = &authorities[i];
        size_t len = strlen(c->in);
        struct http1_target t;
        memset(&t, 0xa5, sizeof(t));
        enum http1_status st = http1_parse_authority((const char *)guard_put(&G, c->in, len), len,
                                                     c->require_port, c->def_port, &t);
        if (st != c->st)
            fail_msg("'%s' require_port=%d: got %s", c->in, c->require_port, stname(st));
        if (st == HTTP1_OK &&
            (!span_is(&t.host, c->host) || t.host_is_ipv6 != c->ipv6 || t.port != c->port))
            fail_msg("'%s': host '%.*s' ipv6 %d port %u", c->in, (int)t.host.len, t.host.p,
                     t.host_is_ipv6, t.port);
    }
    /* Only len bytes count: a longer string is cut where the caller says. */
    static const char s[] = "example.com:8080/garbage";
    struct http1_target t;
    assert_int_equal(http1_parse_authority(s, 16, 0, 80, &t), HTTP1_OK);
    assert_int_equal(t.port, 8080);
    assert_int_equal(http1_parse_authority(s, 13, 0, 80, &t), HTTP1_OK);
    assert_int_equal(t.port, 8);
}

/* ---------------------------------------------------------------------------
 * Token lists, Connection, hop-by-hop
 * ------------------------------------------------------------------------- */

static void
test_list_has(void **state)
{
    (void)state;
    static const struct {
        const char *value, *token;
        int want;
    } t[] = {
        {"close", "close", 1},
        {"Close", "close", 1},
        {"CLOSE", "close", 1},
        {"keep-alive, close", "close", 1},
        {"keep-alive,close", "close", 1},
        {" \tclose\t ", "close", 1},
        {",,close,,", "close", 1},
        {"close, keep-alive", "keep-alive", 1},
        {"closed", "close", 0},
        {"xclose", "close", 0},
        {"clo se", "close", 0},
        {"close-x", "close", 0},
        {"", "close", 0},
        {",", "close", 0},
        {"a, b, c", "b", 1},
        {"a, b, c", "d", 0},
        {"gzip, chunked", "chunked", 1},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t len = strlen(t[i].value);
        struct http1_span v = {(const char *)guard_put(&G, t[i].value, len), len};
        if (http1_list_has(&v, t[i].token) != t[i].want)
            fail_msg("'%s' has '%s': want %d", t[i].value, t[i].token, t[i].want);
    }
}

static void
test_connection_names(void **state)
{
    (void)state;
    static const char raw[] = "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, close\r\n"
                              "X-Foo: 1\r\nconnection: keep-alive\r\nX-Bar: 2\r\n\r\n";
    struct http1_head h;
    assert_int_equal(req(raw, sizeof(raw) - 1, MAXH, &h), HTTP1_OK);
    static const struct {
        const char *name;
        int want;
    } t[] = {
        {"x-foo", 1}, {"X-FOO", 1}, {"X-Foo", 1}, {"close", 1}, {"keep-alive", 1},
        {"x-bar", 0}, {"x-fo", 0},  {"host", 0},  {"", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct http1_span n = {t[i].name, strlen(t[i].name)};
        if (http1_connection_names(&h, &n) != t[i].want)
            fail_msg("Connection names '%s': want %d", t[i].name, t[i].want);
    }
    assert_int_equal(h.flags & (HTTP1_F_CONN_CLOSE | HTTP1_F_CONN_KEEPALIVE),
                     HTTP1_F_CONN_CLOSE | HTTP1_F_CONN_KEEPALIVE);

    static const char none[] = "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(req(none, sizeof(none) - 1, MAXH, &h), HTTP1_OK);
    struct http1_span n = {"host", 4};
    assert_int_equal(http1_connection_names(&h, &n), 0);
}

static void
test_hop_by_hop(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int want;
    } t[] = {
        {"Connection", 1},         {"keep-alive", 1},        {"Proxy-Connection", 1},
        {"Proxy-Authorization", 1}, {"TE", 1},                {"te", 1},
        {"Trailer", 1},            {"Transfer-Encoding", 1}, {"UPGRADE", 1},
        {"Proxy-Authenticate", 1}, {"Host", 0},              {"Content-Length", 0},
        {"Transfer-Encoding-X", 0}, {"tee", 0},               {"t", 0},
        {"Trailers", 0},           {"Authorization", 0},     {"", 0},
        {"X-Connection", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t len = strlen(t[i].name);
        struct http1_span n = {(const char *)guard_put(&G, t[i].name, len), len};
        if (http1_is_hop_by_hop(&n) != t[i].want)
            fail_msg("hop-by-hop '%s': want %d", t[i].name, t[i].want);
    }
    struct http1_span n = {"HoSt", 4};
    assert_true(http1_name_is(&n, "host"));
    assert_false(http1_name_is(&n, "hos"));
}

/* ---------------------------------------------------------------------------
 * Chunked scanner
 * ------------------------------------------------------------------------- */

struct chunk_run {
    enum http1_status st;
    int done;
    size_t consumed;      /* bytes used when done */
    char payload[16384];
    size_t plen;
    size_t err_at;        /* offset of the piece that failed */
};

static uint32_t rng_state;

static uint32_t
rng(void)
{
    /* xorshift32: deterministic splits, same on every machine */
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

/* Feeds raw[0..len) in pieces (each copied to the guard page), as a caller
 * would: step until the piece is used up or the message is done. */
static void
chunk_feed(const uint8_t *raw, size_t len, enum split mode, struct chunk_run *r)
{
    struct http1_chunked c;
    memset(&c, 0, sizeof(c));
    memset(r, 0, sizeof(*r));
    size_t off = 0;
    while (off < len) {
        size_t piece = len - off;
        if (mode == SPLIT_BYTES)
            piece = 1;
        else if (mode == SPLIT_RANDOM)
            piece = 1 + rng() % 13;
        if (piece > len - off)
            piece = len - off;
        const uint8_t *p = guard_put(&G, raw + off, piece);
        size_t pos = 0;
        while (pos < piece) {
            size_t used = (size_t)-1;
            int is_data = -1, done = -1;
            enum http1_status st = http1_chunked_step(&c, p + pos, piece - pos, &used, &is_data,
                                                      &done);
            if (st != HTTP1_OK) {
                r->st = st;
                r->err_at = off + pos;
                return;
            }
            assert_true(used <= piece - pos);
            assert_true(is_data == 0 || is_data == 1);
            if (is_data) {
                assert_true(r->plen + used <= sizeof(r->payload));
                memcpy(r->payload + r->plen, p + pos, used);
                r->plen += used;
            }
            pos += used;
            if (done == 1) {
                r->done = 1;
                r->consumed = off + pos;
                /* Done is sticky and consumes nothing more. */
                if (pos < piece) {
                    st = http1_chunked_step(&c, p + pos, piece - pos, &used, &is_data, &done);
                    assert_int_equal(st, HTTP1_OK);
                    assert_int_equal(used, 0);
                    assert_int_equal(done, 1);
                    assert_int_equal(is_data, 0);
                }
                r->st = HTTP1_OK;
                return;
            }
            if (used == 0)
                fail_msg("no progress at offset %zu without done", off + pos);
        }
        off += piece;
    }
    r->st = HTTP1_OK;
}

struct chunk_ok {
    const char *name;
    const char *raw;
    size_t len;
    const char *payload;
    size_t plen;
};

static const struct chunk_ok chunk_ok[] = {
    {"empty body", R("0\r\n\r\n"), R("")},
    {"one chunk", R("5\r\nhello\r\n0\r\n\r\n"), R("hello")},
    {"two chunks", R("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), R("hello world")},
    {"upper hex", R("A\r\n0123456789\r\n0\r\n\r\n"), R("0123456789")},
    {"lower hex", R("a\r\n0123456789\r\n0\r\n\r\n"), R("0123456789")},
    {"two hex digits", R("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"),
     R("abcdefghijklmnopqrstuvwxyz")},
    {"leading zeros", R("00005\r\nhello\r\n000\r\n\r\n"), R("hello")},
    {"extension", R("5;name=value\r\nhello\r\n0;last\r\n\r\n"), R("hello")},
    {"extensions with BWS", R("5 ; a=b ; c\r\nhello\r\n0\t;x\r\n\r\n"), R("hello")},
    {"quoted extension", R("5;a=\"b c;d\"\r\nhello\r\n0\r\n\r\n"), R("hello")},
    {"blank before CRLF", R("5  \r\nhello\r\n0\r\n\r\n"), R("hello")},
    {"trailers", R("5\r\nhello\r\n0\r\nExpires: never\r\nX-A: b c\r\n\r\n"), R("hello")},
    {"payload looks like framing", R("7\r\n0\r\n\r\nXY\r\n0\r\n\r\n"), R("0\r\n\r\nXY")},
    {"binary payload", R("4\r\n\0\r\n\xff\r\n0\r\n\r\n"), R("\0\r\n\xff")},
    {"single bytes", R("1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"), R("abc")},
};

static void
check_chunk_ok(const char *name, const uint8_t *raw, size_t len, const void *payload, size_t plen)
{
    /* What follows the message must stay where it is. */
    static const char next[] = "GET /next HTTP/1.1\r\n\r\n";
    uint8_t *buf = malloc(len + sizeof(next));
    assert_non_null(buf);
    memcpy(buf, raw, len);
    memcpy(buf + len, next, sizeof(next) - 1);
    static struct chunk_run r;
    for (int mode = SPLIT_WHOLE; mode <= SPLIT_RANDOM; mode++) {
        int rounds = mode == SPLIT_RANDOM ? 40 : 1;
        for (int k = 0; k < rounds; k++) {
            rng_state = 0x9e3779b9u + (uint32_t)k;
            chunk_feed(buf, len + sizeof(next) - 1, (enum split)mode, &r);
            if (r.st != HTTP1_OK || !r.done)
                fail_msg("%s (mode %d, round %d): %s done=%d at %zu", name, mode, k, stname(r.st),
                         r.done, r.err_at);
            if (r.consumed != len)
                fail_msg("%s (mode %d): consumed %zu, message is %zu", name, mode, r.consumed,
                         len);
            if (r.plen != plen || memcmp(r.payload, payload, plen) != 0)
                fail_msg("%s (mode %d): payload of %zu bytes, want %zu", name, mode, r.plen, plen);
        }
        /* Without the following bytes: done exactly at the end. */
        chunk_feed(raw, len, (enum split)mode, &r);
        if (r.st != HTTP1_OK || !r.done || r.consumed != len)
            fail_msg("%s alone (mode %d): %s done=%d", name, mode, stname(r.st), r.done);
    }
    /* Every proper prefix: no error and not done. */
    for (size_t n = 0; n < len; n++) {
        chunk_feed(raw, n, SPLIT_WHOLE, &r);
        if (r.st != HTTP1_OK || r.done)
            fail_msg("%s: prefix of %zu: %s done=%d", name, n, stname(r.st), r.done);
    }
    free(buf);
}

static void
test_chunked_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunk_ok) / sizeof(chunk_ok[0]); i++) {
        const struct chunk_ok *t = &chunk_ok[i];
        check_chunk_ok(t->name, (const uint8_t *)t->raw, t->len, t->payload, t->plen);
    }
}

static void
test_chunked_large(void **state)
{
    (void)state;
    /* Sizes across several hex digits, with long extensions and trailers
     * that stay within the limits. */
    static char raw[20000], payload[12000];
    size_t n = 0, pl = 0;
    static const size_t sizes[] = {0x1, 0xff, 0x1000, 0x10, 0x7ff};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "%zx;ext=%zu\r\n", sizes[i], i);
        for (size_t k = 0; k < sizes[i]; k++) {
            char c = (char)('a' + (pl + k) % 26);
            raw[n++] = c;
            payload[pl + k] = c;
        }
        pl += sizes[i];
        raw[n++] = '\r';
        raw[n++] = '\n';
    }
    n += (size_t)snprintf(raw + n, sizeof(raw) - n, "0;");
    memset(raw + n, 'e', 3000);
    n += 3000;
    n += (size_t)snprintf(raw + n, sizeof(raw) - n, "\r\nX-Trailer: ");
    memset(raw + n, 't', 2000);
    n += 2000;
    n += (size_t)snprintf(raw + n, sizeof(raw) - n, "\r\n\r\n");
    check_chunk_ok("large", (const uint8_t *)raw, n, payload, pl);
}

struct chunk_bad {
    const char *name;
    const char *raw;
    size_t len;
};

static const struct chunk_bad chunk_bad[] = {
    {"empty size line", R("\r\n")},
    {"not hex", R("x\r\n")},
    {"negative", R("-1\r\n")},
    {"plus", R("+5\r\nhello\r\n0\r\n\r\n")},
    {"0x prefix", R("0x5\r\nhello\r\n0\r\n\r\n")},
    {"extension without size", R(";a\r\n")},
    {"leading blank", R(" 5\r\nhello\r\n0\r\n\r\n")},
    {"two numbers", R("5 6\r\nhello\r\n0\r\n\r\n")},
    {"junk after blank", R("5 x\r\nhello\r\n0\r\n\r\n")},
    {"16 hex digits", R("1000000000000000\r\n")},
    {"overflow", R("10000000000000000\r\n")},
    {"all f", R("ffffffffffffffffffff\r\n")},
    {"16 digits of leading zeros", R("0000000000000005\r\nhello\r\n0\r\n\r\n")},
    {"bare LF after size", R("5\nhello\r\n0\r\n\r\n")},
    {"CR without LF after size", R("5\rhello\r\n0\r\n\r\n")},
    {"missing CRLF after data", R("5\r\nhelloX\r\n0\r\n\r\n")},
    {"data longer than size", R("3\r\nhello\r\n0\r\n\r\n")},
    {"bare LF after data", R("5\r\nhello\n0\r\n\r\n")},
    {"CR without LF after data", R("5\r\nhello\r0\r\n\r\n")},
    {"CTL in extension", R("5;a\x01" "b\r\nhello\r\n0\r\n\r\n")},
    {"bare LF in extension", R("5;a\nhello\r\n0\r\n\r\n")},
    {"NUL in extension", R("5;\0\r\nhello\r\n0\r\n\r\n")},
    {"obs-fold in trailers", R("0\r\nX-A: b\r\n c\r\n\r\n")},
    {"blank-led trailer", R("0\r\n X-A: b\r\n\r\n")},
    {"bare LF in trailers", R("0\r\nX-A: b\n\r\n")},
    {"CTL in trailer", R("0\r\nX-A: \x01\r\n\r\n")},
    {"bad trailer name", R("0\r\n(bad): x\r\n\r\n")},
    {"bare LF ending the body", R("0\r\n\n")},
    {"CR without LF ending the body", R("0\r\n\rX")},
};

static void
check_chunk_bad(const char *name, const uint8_t *raw, size_t len)
{
    static struct chunk_run r;
    for (int mode = SPLIT_WHOLE; mode <= SPLIT_RANDOM; mode++) {
        int rounds = mode == SPLIT_RANDOM ? 20 : 1;
        for (int k = 0; k < rounds; k++) {
            rng_state = 0x12345u + (uint32_t)k;
            chunk_feed(raw, len, (enum split)mode, &r);
            if (r.st != HTTP1_ERR_CHUNK || r.done)
                fail_msg("%s (mode %d): %s done=%d, want bad-chunk", name, mode, stname(r.st),
                         r.done);
        }
    }
}

static void
test_chunked_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunk_bad) / sizeof(chunk_bad[0]); i++)
        check_chunk_bad(chunk_bad[i].name, (const uint8_t *)chunk_bad[i].raw, chunk_bad[i].len);
}

static void
test_chunked_limits(void **state)
{
    (void)state;
    static char raw[40000];
    size_t n;

    /* A size line (extensions included) over HTTP1_MAX_CHUNK_LINE. */
    n = (size_t)snprintf(raw, sizeof(raw), "5;");
    memset(raw + n, 'a', HTTP1_MAX_CHUNK_LINE);
    n += HTTP1_MAX_CHUNK_LINE;
    n += (size_t)snprintf(raw + n, sizeof(raw) - n, "\r\nhello\r\n0\r\n\r\n");
    check_chunk_bad("long chunk line", (const uint8_t *)raw, n);

    /* Trailers over HTTP1_MAX_TRAILERS. */
    n = (size_t)snprintf(raw, sizeof(raw), "0\r\n");
    while (n < HTTP1_MAX_TRAILERS + 100)
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "X-Pad: %0100d\r\n", 0);
    n += (size_t)snprintf(raw + n, sizeof(raw) - n, "\r\n");
    check_chunk_bad("long trailers", (const uint8_t *)raw, n);

    /* The largest size: 15 hex digits. The scanner then wants data. */
    static const char big[] = "fffffffffffffff\r\n";
    struct http1_chunked c;
    memset(&c, 0, sizeof(c));
    size_t used;
    int is_data, done;
    const uint8_t *p = guard_put(&G, big, sizeof(big) - 1);
    assert_int_equal(http1_chunked_step(&c, p, sizeof(big) - 1, &used, &is_data, &done),
                     HTTP1_OK);
    assert_int_equal(used, sizeof(big) - 1);
    assert_int_equal(is_data, 0);
    assert_int_equal(done, 0);
    p = guard_put(&G, "abc", 3);
    assert_int_equal(http1_chunked_step(&c, p, 3, &used, &is_data, &done), HTTP1_OK);
    assert_int_equal(used, 3);
    assert_int_equal(is_data, 1);
    assert_int_equal(c.remain, 0xfffffffffffffffULL - 3);

    /* Zero bytes in: nothing used, no error. */
    memset(&c, 0, sizeof(c));
    p = guard_put(&G, "", 0);
    assert_int_equal(http1_chunked_step(&c, p, 0, &used, &is_data, &done), HTTP1_OK);
    assert_int_equal(used, 0);
    assert_int_equal(done, 0);
}

/* The payload and framing come back in separate steps, so a proxy can
 * dechunk by keeping only is_data spans. */
static void
test_chunked_is_data_spans(void **state)
{
    (void)state;
    static const char raw[] = "3\r\nabc\r\n2;x\r\nde\r\n0\r\nT: v\r\n\r\nNEXT";
    static const struct {
        size_t used;
        int is_data;
        int done;
    } want[] = {
        {3, 0, 0},  /* "3\r\n" */
        {3, 1, 0},  /* "abc" */
        {7, 0, 0},  /* "\r\n2;x\r\n" */
        {2, 1, 0},  /* "de" */
        {13, 0, 1}, /* "\r\n0\r\nT: v\r\n\r\n" */
    };
    struct http1_chunked c;
    memset(&c, 0, sizeof(c));
    size_t len = sizeof(raw) - 1, off = 0;
    const uint8_t *p = guard_put(&G, raw, len);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t used;
        int is_data, done;
        assert_int_equal(http1_chunked_step(&c, p + off, len - off, &used, &is_data, &done),
                         HTTP1_OK);
        if (used != want[i].used || is_data != want[i].is_data || done != want[i].done)
            fail_msg("step %zu: used %zu is_data %d done %d", i, used, is_data, done);
        off += used;
    }
    assert_int_equal(len - off, 4); /* "NEXT" is left */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_ok),
        cmocka_unit_test(test_request_every_prefix_partial),
        cmocka_unit_test(test_request_bad),
        cmocka_unit_test(test_request_fails_early),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_head_size_limit),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_bad),
        cmocka_unit_test(test_parse_target),
        cmocka_unit_test(test_target_host_length),
        cmocka_unit_test(test_parse_authority),
        cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_connection_names),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_chunked_ok),
        cmocka_unit_test(test_chunked_large),
        cmocka_unit_test(test_chunked_bad),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_is_data_spans),
    };
    return cmocka_run_group_tests_name("http1", tests, setup, teardown);
}
