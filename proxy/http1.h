/* HTTP/1.x message heads and body framing (pure: no libevent, no clock, no
 * logging). RFC 9112 and RFC 9110.
 *
 * Parsers are stateless over a contiguous buffer: they never allocate, and
 * the spans they return point into the caller's buffer (valid until the
 * caller drains it). A parser is called again from the start when more input
 * arrives; it returns HTTP1_PARTIAL until a whole head is present, and an
 * error as soon as the bytes seen so far can no longer form a valid head,
 * so a client sending garbage is refused without waiting for the end. */
#ifndef SG_HTTP1_H
#define SG_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEADERS 128        /* fields per head */
#define HTTP1_MAX_REQUEST_LINE 8192  /* bytes, before 414 */
#define HTTP1_MAX_CHUNK_LINE 4096    /* chunk-size line with extensions */
#define HTTP1_MAX_TRAILERS 16384     /* bytes of trailer section */
#define HTTP1_MAX_HOST 255

enum http1_status {
    HTTP1_OK = 0,
    HTTP1_PARTIAL,
    HTTP1_ERR_REQUEST_LINE,     /* 400 */
    HTTP1_ERR_URI_TOO_LONG,     /* 414 */
    HTTP1_ERR_HEAD_TOO_LARGE,   /* 431 */
    HTTP1_ERR_TOO_MANY_HEADERS, /* 431 */
    HTTP1_ERR_VERSION,          /* 505 */
    HTTP1_ERR_LINE_ENDING,      /* bare CR or LF */
    HTTP1_ERR_HEADER_NAME,      /* empty, bad char, space before colon, no colon */
    HTTP1_ERR_HEADER_VALUE,     /* NUL or other control character */
    HTTP1_ERR_OBS_FOLD,         /* line folding */
    HTTP1_ERR_CONTENT_LENGTH,   /* not digits, overflow, differing duplicates */
    HTTP1_ERR_TRANSFER_ENCODING,/* unsupported coding, chunked not last, HTTP/1.0 */
    HTTP1_ERR_CL_AND_TE,        /* both framings present */
    HTTP1_ERR_HOST,             /* duplicate or bad Host */
    HTTP1_ERR_STATUS_LINE,      /* responses */
    HTTP1_ERR_TARGET,           /* request-target forms */
    HTTP1_ERR_SCHEME,           /* absolute-form with another scheme than http */
    HTTP1_ERR_CHUNK,            /* chunked body framing */
    HTTP1_ERR_TE_CODING,        /* 501: a request transfer coding besides chunked */
};

/* The value of a hex digit, -1 when c is none (chunk sizes, %XX). */
int http1_hexval(uint8_t c);
/* Short, stable text for logs (reason=...). */
const char *http1_strerror(enum http1_status st);
/* The status code a client gets for a request-side error. */
int http1_error_code(enum http1_status st);

struct http1_span {
    const char *p;
    size_t len;
};

struct http1_header {
    struct http1_span name, value;
};

enum http1_body {
    HTTP1_BODY_NONE,    /* no body */
    HTTP1_BODY_LENGTH,  /* content_length bytes */
    HTTP1_BODY_CHUNKED, /* chunked transfer coding */
    HTTP1_BODY_CLOSE,   /* until the connection closes (responses only) */
};

enum {
    HTTP1_F_CONN_CLOSE = 1 << 0,     /* Connection: close */
    HTTP1_F_CONN_KEEPALIVE = 1 << 1, /* Connection: keep-alive */
    HTTP1_F_CONN_UPGRADE = 1 << 2,   /* Connection: upgrade */
    HTTP1_F_EXPECT_CONTINUE = 1 << 3,
    HTTP1_F_UPGRADE = 1 << 4,        /* an Upgrade field is present */
    HTTP1_F_HAS_CL = 1 << 5,
    HTTP1_F_HAS_TE = 1 << 6,
    HTTP1_F_TE_CODED = 1 << 7,       /* a transfer coding besides chunked */
};

struct http1_head {
    /* request line */
    struct http1_span method, target;
    /* status line */
    int status;
    struct http1_span reason;
    int minor; /* HTTP/1.minor: 0 or 1 */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t nheaders;
    size_t head_len; /* bytes of the head, final CRLF included */
    enum http1_body body;
    uint64_t content_length;
    unsigned flags;
    struct http1_span host; /* Host field value, len 0 when absent */
    size_t err_off;         /* offset of the offending byte on error */
};

/* Request head in p[0..len). max_head caps the whole head (431 beyond).
 * Leading empty lines are skipped (RFC 9112 2.2) and counted in head_len. */
enum http1_status http1_parse_request(const uint8_t *p, size_t len, size_t max_head,
                                      struct http1_head *h);

/* Response head. `head_request` says whether the request was HEAD,
 * for framing (RFC 9112 6.3): no body after HEAD, 1xx, 204 and 304. */
enum http1_status http1_parse_response(const uint8_t *p, size_t len, size_t max_head,
                                       int head_request, struct http1_head *h);

/* Case-insensitive field-name compare. */
int http1_name_is(const struct http1_span *name, const char *lower);
/* True when the comma-separated token list `value` contains `token`. */
int http1_list_has(const struct http1_span *value, const char *token);
/* True when any Connection field of h names `name` (so it is hop-by-hop). */
int http1_connection_names(const struct http1_head *h, const struct http1_span *name);
/* True for the fixed hop-by-hop fields a proxy never forwards. */
int http1_is_hop_by_hop(const struct http1_span *name);

enum http1_target_form {
    HTTP1_FORM_ORIGIN,    /* /path?q */
    HTTP1_FORM_ABSOLUTE,  /* http://host[:port]/path?q */
    HTTP1_FORM_AUTHORITY, /* host:port (CONNECT) */
    HTTP1_FORM_ASTERISK,  /* * (OPTIONS) */
};

struct http1_target {
    enum http1_target_form form;
    struct http1_span host; /* without brackets for IPv6 literals */
    int host_is_ipv6;
    uint16_t port;          /* default 80 for http:// */
    struct http1_span path; /* path and query; empty means "/" */
    size_t path_only_len;   /* bytes of path before '?' */
};

/* Splits a request-target by its form; `is_connect` selects authority-form,
 * which requires a port. Userinfo, empty hosts, bad ports and other schemes
 * are errors (HTTP1_ERR_TARGET, HTTP1_ERR_SCHEME). */
enum http1_status http1_parse_target(const struct http1_span *target, int is_connect,
                                     struct http1_target *t);
/* host[:port] as in a Host field or authority; port defaults to def_port. */
enum http1_status http1_parse_authority(const char *p, size_t len, int require_port,
                                        uint16_t def_port, struct http1_target *t);

/* Incremental chunked-body scanner (RFC 9112 7.1). Start zeroed. */
struct http1_chunked {
    int state;
    uint64_t remain;    /* payload bytes left in this chunk */
    uint32_t line_len;  /* bytes in the current size or trailer line */
    uint32_t trailer_len;
    int ndigits;
};

/* Consumes a prefix of p[0..len): *used bytes, which are chunk payload when
 * *is_data is set (framing otherwise). *done becomes 1 after the final CRLF
 * of the message; no byte after it is consumed. Returns HTTP1_OK or
 * HTTP1_ERR_CHUNK. Call in a loop until used == len or done. */
enum http1_status http1_chunked_step(struct http1_chunked *c, const uint8_t *p, size_t len,
                                     size_t *used, int *is_data, int *done);

#endif
