/* The request stage (pure: no libevent, no clock, no logging): from a
 * parsed request head to a routed request or a refusal. It holds every
 * check that needs only the head and the configuration: the target and its
 * form, Host, a host name the catalog can read, socialgate.local, CONNECT
 * and plain HTTP ports, forwarding loops (Via), Max-Forwards, the path
 * path_regex sees, the credentials sent, the limits before authentication,
 * and the head sent upstream (origin form, a correct Host, hop-by-hop
 * fields removed, Via added). The connection core and the phases never
 * look at a raw head. */
#ifndef SG_REQUEST_H
#define SG_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "http1.h"

struct snapshot;

/* With [auth] required = yes, a head that carries no credentials of a
 * known user is held to these limits instead of max_header_bytes and
 * HTTP1_MAX_HEADERS: all it can earn is a 407. */
#define PREAUTH_HEAD_BYTES 16384
#define PREAUTH_FIELDS 64

enum request_kind {
    REQUEST_FORWARD, /* plain HTTP to an origin */
    REQUEST_CONNECT, /* a CONNECT tunnel */
    REQUEST_LOCAL,   /* socialgate.local: answered by socialgate itself */
};

/* What the client said about who it is (Proxy-Authorization). */
enum request_auth {
    AUTH_NONE,      /* no credentials (or no [auth] htpasswd: ignored) */
    AUTH_UNCHECKED, /* user and password read, password not checked yet */
    AUTH_OK,        /* the password matched */
    AUTH_FAILED,    /* malformed credentials or a wrong password */
};

enum request_upgrade {
    UPGRADE_NONE,
    UPGRADE_ASKED,    /* Upgrade: websocket + Connection: upgrade on HTTP/1.1
                       * (other protocols, h2c among them, are dropped with
                       * the hop-by-hop Upgrade field) */
    UPGRADE_SWITCHED, /* the origin answered 101: relayed as a tunnel */
};

struct request {
    enum request_kind kind;
    char method[24];   /* as received, truncated to fit */
    char *host;        /* owned, lower-case; NULL until known */
    uint16_t port;     /* 80 for http:// without a port */
    int host_is_ipv6;  /* host was a bracketed literal */
    char *path;        /* owned: path without the query, as sent, for the
                        * log; NULL for CONNECT */
    char *npath;       /* owned: path normalised for path_regex
                        * (request_normalize_path); REQUEST_FORWARD only */
    char *target;      /* owned: path and query (REQUEST_LOCAL only) */
    char *url;         /* owned: "http://host:port/path?q" (REQUEST_FORWARD) */
    int is_head;       /* method HEAD (response framing) */
    int client_minor;  /* HTTP/1.minor of the client */
    int client_close;  /* Connection: close or HTTP/1.0 */
    enum request_upgrade upgrade;
    enum http1_body body; /* request body framing */
    uint64_t content_length;
    size_t head_len;   /* bytes of the client's head */

    char *user;        /* owned: the name in Proxy-Authorization */
    char *pass;        /* owned, wiped by request_free */
    enum request_auth auth;
    char *neg_token;   /* owned: the Negotiate token of Proxy-Authorization (with
                        * [auth] negotiate_helper), for the helper; auth stays
                        * AUTH_NONE until the exchange settles it */

    int tls;           /* read inside a decrypted tunnel: https to the origin */
    char *uhead;       /* owned: the head to send upstream (REQUEST_FORWARD) */
    size_t uhead_len;
    char *poolkey;     /* "host:port", the upstream pool key (REQUEST_FORWARD; in
                        * url's allocation, not owned), NULL otherwise */

    /* owned: the whole answer to an OPTIONS or TRACE with Max-Forwards: 0
     * (RFC 9110 7.6.2), which this proxy gives itself instead of
     * forwarding, once the decision allows the request; NULL otherwise
     * (REQUEST_FORWARD only) */
    char *reply;
    size_t reply_len;
};

/* The methods the Allow field of that OPTIONS answer lists. */
#define REQUEST_ALLOW "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT"

struct request_refusal {
    int status;         /* 400, 403, 508 ...; 0: close without a page */
    const char *reason; /* for the log (reason=), static */
    const char *detail; /* one sentence for the error page, static;
                         * NULL with status 0 */
};

/* Fills req (zeroed first) from the parsed head h, under the snapshot's
 * configuration and users. Returns 0 when the request goes on to the
 * decision, -1 when it is refused: then *ref says how, and req still holds
 * what was learnt before the refusal (method, host, path) for the log;
 * kind is REQUEST_CONNECT for every CONNECT, refused or not. A plain HTTP
 * request to a port outside http_ports is refused (403,
 * http-port-denied); an OPTIONS or TRACE whose Max-Forwards is 0 goes on
 * to the decision with req->reply set. Either way free req with
 * request_free. Out of memory is a refusal with status 0
 * and reason "out-of-memory". */
int request_from_head(const struct http1_head *h, const struct snapshot *snap,
                      struct request *req, struct request_refusal *ref);
/* Like request_from_head for a request read inside a decrypted tunnel
 * (inspection) to host:port: the target is in origin form (or "*"), the
 * request goes to that host whatever its Host field says, over TLS
 * (req->tls; the URL is https://, the pool key apart from plain HTTP's),
 * and no credentials are read (the tunnel's identity is the caller's to
 * set). Returns 0 or -1 with *ref, as request_from_head does. */
int request_from_inner_head(const struct http1_head *h, const struct snapshot *snap,
                            const char *host, uint16_t port, struct request *req,
                            struct request_refusal *ref);
/* The path as a rule's path_regex sees it (RFC 3986 6.2.2), from
 * p[0..len), a path without its query:
 * percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) decoded,
 * other percent-encodings upper-cased ("%2f" becomes "%2F": an encoded
 * slash stays encoded) and a '%' that starts no encoding written as "%25";
 * then repeated slashes merged and dot segments removed (RFC 3986 5.2.4),
 * ".." never climbing above the root. Decoding happens once ("%252e" stays
 * "%252e"). The result always starts with '/', holds no NUL unless p did,
 * and normalises to itself. Returns it owned (free), its length in
 * *outlen; NULL out of memory. */
char *request_normalize_path(const char *p, size_t len, size_t *outlen);
/* Frees what req owns (the password wiped) and zeroes it. NULL-safe. */
void request_free(struct request *req);

/* 1 when heads are held to the PREAUTH limits under this snapshot. */
int request_preauth_limited(const struct snapshot *snap);
/* For a head still being read (st PARTIAL over n bytes) or just parsed
 * (st OK): 1 when it is over the PREAUTH limits and does not name a known
 * user, so it gets a 407 at once and the rest is never read. 0 otherwise
 * (also when the snapshot does not limit heads). */
int request_preauth_refused(const struct snapshot *snap, enum http1_status st, size_t n,
                            const struct http1_head *h);
/* For the log line of a head refused by the parser: the method, when the
 * bytes start with a token and a space ("" otherwise). */
void request_note_method(const uint8_t *p, size_t n, char *method, size_t size);

/* The Via field value this proxy adds, e.g. "1.1 gw1 (socialgate)", set
 * once at start before any worker runs. */
void request_set_via(const char *hostname);
const char *request_via(void);
/* "Via: 1.1 gw1 (socialgate)\r\n" and its length, built once. */
const char *request_via_header(void);
size_t request_via_header_len(void);
/* 1 when a Via field of h already names this proxy (a forwarding loop). */
int request_via_loops(const struct http1_head *h);

#endif
