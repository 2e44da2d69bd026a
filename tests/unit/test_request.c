/* Unit tests for proxy/request.c: from a parsed head to a routed request
 * or a refusal (status, reason and page sentence, and what the request
 * holds for the log), the head sent upstream byte for byte, credentials,
 * the limits before authentication, Via. Heads are parsed by
 * http1_parse_request from a guard-page buffer (guard.h), so a read past
 * the head crashes. The snapshot is made by hand: the request stage reads
 * only its configuration and its users. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "guard.h"
#include "htpasswd.h"
#include "http1.h"
#include "request.h"
#include "snapshot.h"

#define MAXH 65536
/* A string literal with its length. */
#define R(s) s, sizeof(s) - 1

/* Basic credentials of the users file below, and of a stranger. */
#define CAROL "Proxy-Authorization: Basic Y2Fyb2w6cGFzc3dvcmQ=\r\n" /* carol:password */
#define MALLORY "Proxy-Authorization: Basic bWFsbG9yeTp4\r\n"       /* mallory:x */
#define VIA "Via: 1.1 gw1 (socialgate)\r\n"
/* Host names of 253 bytes (the longest DNS name) and 254. */
#define L63 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define L61 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HOST253 L63 "." L63 "." L63 "." L61
#define HOST254 HOST253 "c"

static struct guard G;
static uint16_t ports[] = {443, 5228};
static uint16_t ranges[][2] = {{8000, 8999}};
/* plain HTTP: the default, CONFIG_DEFAULT_HTTP_PORTS */
static uint16_t http_ports[] = {80, 280, 443, 488, 591, 777};
static uint16_t http_ranges[][2] = {{1025, 65535}};
static struct htpasswd *users;

/* SNAP_PLAIN: no [auth]. SNAP_USERS: an htpasswd file, not required.
 * SNAP_REQUIRED: required = yes (heads held to the PREAUTH limits). */
enum { SNAP_PLAIN, SNAP_USERS, SNAP_REQUIRED, NSNAP };
static struct config cfgs[NSNAP];
static struct snapshot snaps[NSNAP];

static int
setup(void **state)
{
    (void)state;
    guard_init(&G, 1 << 20);
    struct diag d = {0};
    users = htpasswd_load_string("carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
                                 "cat:{SHA}87u9ZqY9S/F0eUBXjsPQEDUw4h0=\n",
                                 "users", &d);
    diag_free(&d);
    if (users == NULL)
        return -1;
    for (int i = 0; i < NSNAP; i++) {
        cfgs[i].connect_ports = (struct portset){ports, sizeof(ports) / sizeof(ports[0]), ranges,
                                                 sizeof(ranges) / sizeof(ranges[0])};
        cfgs[i].http_ports =
            (struct portset){http_ports, sizeof(http_ports) / sizeof(http_ports[0]), http_ranges,
                             sizeof(http_ranges) / sizeof(http_ranges[0])};
        cfgs[i].max_header_bytes = MAXH;
        snaps[i].cfg = &cfgs[i];
        snaps[i].users = i == SNAP_PLAIN ? NULL : users;
    }
    cfgs[SNAP_REQUIRED].auth_required = 1;
    /* The texts before request_set_via, then this proxy is "gw1". */
    if (strcmp(request_via(), "1.1 socialgate") != 0 ||
        strcmp(request_via_header(), "Via: 1.1 socialgate\r\n") != 0 ||
        request_via_header_len() != 21)
        return -1;
    request_set_via("gw1");
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    htpasswd_free(users);
    guard_free(&G);
    return 0;
}

/* Parses raw (must be a whole head) into *h from the guard buffer. */
static void
parse(const char *name, const char *raw, size_t len, struct http1_head *h)
{
    enum http1_status st = http1_parse_request(guard_put(&G, raw, len), len, MAXH, h);
    if (st != HTTP1_OK)
        fail_msg("%s: the head does not parse: %s", name, http1_strerror(st));
}

static int
str_eq(const char *got, const char *want)
{
    if (got == NULL || want == NULL)
        return got == want;
    return strcmp(got, want) == 0;
}

static void
check_str(const char *name, const char *what, const char *got, const char *want)
{
    if (!str_eq(got, want))
        fail_msg("%s: %s is '%s', want '%s'", name, what, got ? got : "(null)",
                 want ? want : "(null)");
}

/* ---------------------------------------------------------------------------
 * Refusals, in the order they are checked, and what req holds at each
 * ------------------------------------------------------------------------- */

static const char D_TARGET[] = "The request target is malformed.";
static const char D_SCHEME[] = "Only http:// URLs can be requested this way; "
                               "https goes through CONNECT.";
static const char D_HOST[] = "An HTTP/1.1 request needs a Host header field.";
static const char D_LOCAL_BODY[] = "socialgate's own pages take no request body.";
static const char D_NOT_PROXY[] = "This is a proxy: configure your browser to use it, "
                                  "or request an absolute http:// URL.";
static const char D_LOOP[] = "This request has already passed this proxy.";
static const char D_PORT[] = "Tunnels are only allowed to the configured ports.";
static const char D_BAD_HOST[] = "The host name is malformed.";
static const char D_HTTP_PORT[] = "Plain HTTP is only allowed to the configured ports.";
static const char D_MAX_FORWARDS[] = "The Max-Forwards header field is not a number.";

struct refused {
    const char *name;
    const char *raw;
    size_t len;
    int snap;
    int status;
    const char *reason, *detail;
    /* what the log line gets */
    enum request_kind kind;
    const char *method, *host, *path;
    enum request_auth auth;
};

static const struct refused refused[] = {
    {"userinfo", R("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400, "bad-target",
     D_TARGET, REQUEST_FORWARD, "GET", NULL, NULL, AUTH_NONE},
    {"bad port", R("GET http://a:0/ HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400, "bad-target",
     D_TARGET, REQUEST_FORWARD, "GET", NULL, NULL, AUTH_NONE},
    {"no scheme", R("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400, "bad-target", D_TARGET,
     REQUEST_FORWARD, "GET", NULL, NULL, AUTH_NONE},
    {"https absolute", R("GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400,
     "unsupported-scheme", D_SCHEME, REQUEST_FORWARD, "GET", NULL, NULL, AUTH_NONE},
    {"bad scheme before missing Host", R("GET ftp://a/ HTTP/1.1\r\n\r\n"), SNAP_PLAIN, 400,
     "unsupported-scheme", D_SCHEME, REQUEST_FORWARD, "GET", NULL, NULL, AUTH_NONE},
    {"CONNECT without port", R("CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-target", D_TARGET, REQUEST_CONNECT, "CONNECT", NULL, NULL, AUTH_NONE},
    {"CONNECT with a path", R("CONNECT a:443/x HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-target", D_TARGET, REQUEST_CONNECT, "CONNECT", NULL, NULL, AUTH_NONE},
    {"credentials not read before the target",
     R("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n" CAROL "\r\n"), SNAP_USERS, 400, "bad-target",
     D_TARGET, REQUEST_FORWARD, "GET", NULL, NULL, AUTH_NONE},
    {"HTTP/1.1 absolute without Host", R("GET http://a/x?q HTTP/1.1\r\n\r\n"), SNAP_PLAIN, 400,
     "missing-host", D_HOST, REQUEST_FORWARD, "GET", "a", "/x", AUTH_NONE},
    {"HTTP/1.1 origin without Host", R("GET /x HTTP/1.1\r\n\r\n"), SNAP_PLAIN, 400, "missing-host",
     D_HOST, REQUEST_FORWARD, "GET", NULL, "/x", AUTH_NONE},
    {"local with a body",
     R("POST http://socialgate.local/quota HTTP/1.1\r\nHost: socialgate.local\r\n"
       "Content-Length: 3\r\n\r\n"),
     SNAP_PLAIN, 400, "local-body", D_LOCAL_BODY, REQUEST_LOCAL, "POST", "socialgate.local",
     "/quota", AUTH_NONE},
    {"local with a chunked body",
     R("POST /quota HTTP/1.1\r\nHost: socialgate.local\r\nTransfer-Encoding: chunked\r\n\r\n"),
     SNAP_USERS, 400, "local-body", D_LOCAL_BODY, REQUEST_LOCAL, "POST", "socialgate.local",
     "/quota", AUTH_NONE},
    {"origin form", R("GET /a?b HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n"), SNAP_PLAIN, 400,
     "not-a-proxy-request", D_NOT_PROXY, REQUEST_FORWARD, "GET", "example.com", "/a", AUTH_NONE},
    {"origin form, credentials kept for the log", R("GET / HTTP/1.1\r\nHost: a\r\n" CAROL "\r\n"),
     SNAP_USERS, 400, "not-a-proxy-request", D_NOT_PROXY, REQUEST_FORWARD, "GET", "a", "/",
     AUTH_UNCHECKED},
    {"origin form, bad Host", R("GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n"), SNAP_PLAIN, 400,
     "not-a-proxy-request", D_NOT_PROXY, REQUEST_FORWARD, "GET", NULL, "/", AUTH_NONE},
    {"origin form HTTP/1.0 without Host", R("GET / HTTP/1.0\r\n\r\n"), SNAP_PLAIN, 400,
     "not-a-proxy-request", D_NOT_PROXY, REQUEST_FORWARD, "GET", NULL, "/", AUTH_NONE},
    {"asterisk form", R("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400,
     "not-a-proxy-request", D_NOT_PROXY, REQUEST_FORWARD, "OPTIONS", NULL, NULL, AUTH_NONE},
    {"Via names us", R("GET http://a/p HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"), SNAP_PLAIN, 508,
     "forwarding-loop", D_LOOP, REQUEST_FORWARD, "GET", "a", "/p", AUTH_NONE},
    {"Via names us in a list",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nvia: 1.0 x, 1.1 gw1 (socialgate), 1.1 y\r\n\r\n"),
     SNAP_PLAIN, 508, "forwarding-loop", D_LOOP, REQUEST_FORWARD, "GET", "a", "/", AUTH_NONE},
    {"Via names us in a second field",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nVia: 1.0 x\r\n" VIA "\r\n"), SNAP_PLAIN, 508,
     "forwarding-loop", D_LOOP, REQUEST_FORWARD, "GET", "a", "/", AUTH_NONE},
    /* Hosts the catalog cannot normalise would be unclassified: refused
     * before any decision (after the target, before loops and ports). */
    {"empty label", R("GET http://www..facebook.com/ HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"),
     SNAP_PLAIN, 400, "bad-host", D_BAD_HOST, REQUEST_FORWARD, "GET", "www..facebook.com", "/",
     AUTH_NONE},
    {"leading dot", R("GET http://.facebook.com/x HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-host", D_BAD_HOST, REQUEST_FORWARD, "GET", ".facebook.com", "/x", AUTH_NONE},
    {"only dots", R("GET http://../ HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400, "bad-host",
     D_BAD_HOST, REQUEST_FORWARD, "GET", "..", "/", AUTH_NONE},
    {"host of 254 bytes", R("GET http://" HOST254 "/ HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-host", D_BAD_HOST, REQUEST_FORWARD, "GET", HOST254, "/", AUTH_NONE},
    {"CONNECT empty label, before its port", R("CONNECT a..b:22 HTTP/1.1\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-host", D_BAD_HOST, REQUEST_CONNECT, "CONNECT", "a..b", NULL, AUTH_NONE},
    {"CONNECT of 254 bytes", R("CONNECT " HOST254 ":443 HTTP/1.1\r\n" CAROL "\r\n"), SNAP_USERS,
     400, "bad-host", D_BAD_HOST, REQUEST_CONNECT, "CONNECT", HOST254, NULL, AUTH_UNCHECKED},
    {"CONNECT loop before its port", R("CONNECT a:22 HTTP/1.1\r\nHost: a:22\r\n" VIA "\r\n"),
     SNAP_PLAIN, 508, "forwarding-loop", D_LOOP, REQUEST_CONNECT, "CONNECT", "a", NULL, AUTH_NONE},
    {"CONNECT to port 22", R("CONNECT A.example:22 HTTP/1.1\r\nHost: a.example:22\r\n\r\n"),
     SNAP_PLAIN, 403, "connect-port-denied", D_PORT, REQUEST_CONNECT, "CONNECT", "a.example", NULL,
     AUTH_NONE},
    {"CONNECT to port 80", R("CONNECT a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n"), SNAP_PLAIN, 403,
     "connect-port-denied", D_PORT, REQUEST_CONNECT, "CONNECT", "a", NULL, AUTH_NONE},
    {"CONNECT just past a range", R("CONNECT a:9000 HTTP/1.1\r\n\r\n"), SNAP_PLAIN, 403,
     "connect-port-denied", D_PORT, REQUEST_CONNECT, "CONNECT", "a", NULL, AUTH_NONE},
    {"CONNECT denied, credentials kept", R("CONNECT a:25 HTTP/1.1\r\n" CAROL "\r\n"), SNAP_USERS,
     403, "connect-port-denied", D_PORT, REQUEST_CONNECT, "CONNECT", "a", NULL, AUTH_UNCHECKED},
    /* Plain HTTP to a port outside http_ports (SMTP, SSH, FTP, ...) never
     * leaves the proxy. */
    {"GET to SMTP", R("GET http://mail.example:25/ HTTP/1.1\r\nHost: mail.example:25\r\n\r\n"),
     SNAP_PLAIN, 403, "http-port-denied", D_HTTP_PORT, REQUEST_FORWARD, "GET", "mail.example", "/",
     AUTH_NONE},
    {"POST to SSH, credentials kept",
     R("POST http://a:22/x HTTP/1.1\r\nHost: a:22\r\n" CAROL "Content-Length: 1\r\n\r\n"),
     SNAP_USERS, 403, "http-port-denied", D_HTTP_PORT, REQUEST_FORWARD, "POST", "a", "/x",
     AUTH_UNCHECKED},
    {"GET to FTP", R("GET http://a:21/ HTTP/1.1\r\nHost: a\r\n\r\n"), SNAP_PLAIN, 403,
     "http-port-denied", D_HTTP_PORT, REQUEST_FORWARD, "GET", "a", "/", AUTH_NONE},
    {"GET just below the range", R("GET http://[::1]:1024/ HTTP/1.1\r\nHost: a\r\n\r\n"),
     SNAP_PLAIN, 403, "http-port-denied", D_HTTP_PORT, REQUEST_FORWARD, "GET", "::1", "/",
     AUTH_NONE},
    {"OPTIONS to port 1, even with Max-Forwards: 0",
     R("OPTIONS http://a:1/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n"), SNAP_PLAIN, 403,
     "http-port-denied", D_HTTP_PORT, REQUEST_FORWARD, "OPTIONS", "a", "/", AUTH_NONE},
    /* Max-Forwards of OPTIONS and TRACE is read: it must be a number. */
    {"Max-Forwards not a number",
     R("TRACE http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: x\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-max-forwards", D_MAX_FORWARDS, REQUEST_FORWARD, "TRACE", "a", "/", AUTH_NONE},
    {"Max-Forwards negative",
     R("OPTIONS http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: -1\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-max-forwards", D_MAX_FORWARDS, REQUEST_FORWARD, "OPTIONS", "a", "/", AUTH_NONE},
    {"Max-Forwards empty", R("OPTIONS http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards:\r\n\r\n"),
     SNAP_PLAIN, 400, "bad-max-forwards", D_MAX_FORWARDS, REQUEST_FORWARD, "OPTIONS", "a", "/",
     AUTH_NONE},
    {"Max-Forwards as a list",
     R("TRACE http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0, 5\r\n\r\n"), SNAP_PLAIN, 400,
     "bad-max-forwards", D_MAX_FORWARDS, REQUEST_FORWARD, "TRACE", "a", "/", AUTH_NONE},
    {"Max-Forwards fields that disagree",
     R("TRACE http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nmax-forwards: 3\r\n\r\n"),
     SNAP_PLAIN, 400, "bad-max-forwards", D_MAX_FORWARDS, REQUEST_FORWARD, "TRACE", "a", "/",
     AUTH_NONE},
};

static void
test_refusals(void **state)
{
    (void)state;
    static struct http1_head h;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        const struct refused *t = &refused[i];
        struct request req;
        struct request_refusal ref;
        parse(t->name, t->raw, t->len, &h);
        if (request_from_head(&h, &snaps[t->snap], &req, &ref) != -1)
            fail_msg("%s: accepted", t->name);
        if (ref.status != t->status)
            fail_msg("%s: status %d, want %d", t->name, ref.status, t->status);
        check_str(t->name, "reason", ref.reason, t->reason);
        check_str(t->name, "detail", ref.detail, t->detail);
        if (req.kind != t->kind)
            fail_msg("%s: kind %d, want %d", t->name, (int)req.kind, (int)t->kind);
        check_str(t->name, "method", req.method, t->method);
        check_str(t->name, "host", req.host, t->host);
        check_str(t->name, "path", req.path, t->path);
        if (req.auth != t->auth)
            fail_msg("%s: auth %d, want %d", t->name, (int)req.auth, (int)t->auth);
        if (req.uhead != NULL || req.url != NULL)
            fail_msg("%s: an upstream head or url for a refused request", t->name);
        request_free(&req);
    }
}

/* ---------------------------------------------------------------------------
 * Accepted requests, and the head sent upstream byte for byte
 * ------------------------------------------------------------------------- */

struct accepted {
    const char *name;
    const char *raw;
    size_t len;
    enum request_kind kind;
    const char *method, *host;
    uint16_t port;
    int ipv6;
    const char *path, *target, *url;
    int is_head, minor, client_close;
    enum request_upgrade upgrade;
    enum http1_body body;
    uint64_t cl;
    const char *poolkey; /* "" when not REQUEST_FORWARD */
    const char *uhead;   /* NULL when not REQUEST_FORWARD */
};

#define OPTIONS_REPLY                                                                              \
    "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT\r\n"   \
    "Content-Length: 0\r\nConnection: close\r\n\r\n"
#define TRACE_REPLY(len)                                                                           \
    "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: " len                        \
    "\r\nConnection: close\r\n\r\n"

static const struct accepted accepted[] = {
    {"absolute GET",
     R("GET http://Example.COM/a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\n"
       "User-Agent: t/1\r\nAccept: */*\r\n\r\n"),
     REQUEST_FORWARD, "GET", "example.com", 80, 0, "/a/b", NULL, "http://example.com:80/a/b?x=1&y",
     0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "example.com:80",
     "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n" VIA
     "\r\n"},
    {"no path is /", R("GET http://a HTTP/1.1\r\nHost: a\r\n\r\n"), REQUEST_FORWARD, "GET", "a", 80,
     0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "GET / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"no path, a query: /?query", R("GET http://a?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/", NULL, "http://a:80/?x=1", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "GET /?x=1 HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"no path, a port and a query", R("GET http://a:8080?x=/y HTTP/1.1\r\nHost: a:8080\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 8080, 0, "/", NULL, "http://a:8080/?x=/y", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:8080", "GET /?x=/y HTTP/1.1\r\nHost: a:8080\r\n" VIA "\r\n"},
    {"OPTIONS without a path asks about the server",
     R("OPTIONS http://a HTTP/1.1\r\nHost: a\r\n\r\n"), REQUEST_FORWARD, "OPTIONS", "a", 80, 0, "/",
     NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "OPTIONS * HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"OPTIONS with a query is no server-wide OPTIONS",
     R("OPTIONS http://a?q HTTP/1.1\r\nHost: a\r\n\r\n"), REQUEST_FORWARD, "OPTIONS", "a", 80, 0,
     "/", NULL, "http://a:80/?q", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "OPTIONS /?q HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"plain HTTP to 443, a default port", R("GET http://a:443/ HTTP/1.1\r\nHost: a:443\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 443, 0, "/", NULL, "http://a:443/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:443", "GET / HTTP/1.1\r\nHost: a:443\r\n" VIA "\r\n"},
    {"plain HTTP to 1025, the range's start",
     R("GET http://a:1025/ HTTP/1.1\r\nHost: a:1025\r\n\r\n"), REQUEST_FORWARD, "GET", "a", 1025, 0,
     "/", NULL, "http://a:1025/", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:1025",
     "GET / HTTP/1.1\r\nHost: a:1025\r\n" VIA "\r\n"},
    /* Max-Forwards: OPTIONS and TRACE stop at 0, go on one less otherwise;
     * other methods carry it untouched (RFC 9110 7.6.2). */
    {"TRACE with Max-Forwards: 3 goes on with 2",
     R("TRACE http://a/ HTTP/1.1\r\nMax-Forwards: 3\r\nHost: a\r\nMax-Forwards: 03\r\n\r\n"),
     REQUEST_FORWARD, "TRACE", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 2\r\n" VIA "\r\n"},
    {"OPTIONS with a huge Max-Forwards",
     R("OPTIONS http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 99999999999999999999999\r\n\r\n"),
     REQUEST_FORWARD, "OPTIONS", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80",
     "OPTIONS / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 4294967294\r\n" VIA "\r\n"},
    {"GET with Max-Forwards: 0 is forwarded as it is",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n"), REQUEST_FORWARD, "GET", "a",
     80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "GET / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n" VIA "\r\n"},
    {"lower-case trace is another method",
     R("trace http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n"), REQUEST_FORWARD, "trace",
     "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "trace / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n" VIA "\r\n"},
    {"fragment cut", R("GET http://a/p#f HTTP/1.1\r\nHost: a\r\n\r\n"), REQUEST_FORWARD, "GET", "a",
     80, 0, "/p", NULL, "http://a:80/p", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "GET /p HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"port in Host, target wins over Host",
     R("GET http://a:8080/x HTTP/1.1\r\nHost: b\r\nX-A: 1\r\n\r\n"), REQUEST_FORWARD, "GET", "a",
     8080, 0, "/x", NULL, "http://a:8080/x", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:8080",
     "GET /x HTTP/1.1\r\nHost: a:8080\r\nX-A: 1\r\n" VIA "\r\n"},
    {"explicit :80 is dropped", R("GET http://a:80/ HTTP/1.1\r\nHost: a:80\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "GET / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"IPv6 literal with port", R("GET http://[::1]:8080/v6?q HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
     REQUEST_FORWARD, "GET", "::1", 8080, 1, "/v6", NULL, "http://[::1]:8080/v6?q", 0, 1, 0,
     UPGRADE_NONE, HTTP1_BODY_NONE, 0, "::1:8080",
     "GET /v6?q HTTP/1.1\r\nHost: [::1]:8080\r\n" VIA "\r\n"},
    {"IPv6 literal lower-cased",
     R("GET http://[2001:DB8::1]/ HTTP/1.1\r\nHost: [2001:DB8::1]\r\n\r\n"), REQUEST_FORWARD, "GET",
     "2001:db8::1", 80, 1, "/", NULL, "http://[2001:db8::1]:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "2001:db8::1:80", "GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n" VIA "\r\n"},
    {"hop-by-hop and Connection-named fields stripped",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\n"
       "Keep-Alive: timeout=5\r\nX-Secret: 1\r\nx-secret: 2\r\n" CAROL
       "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
       "Accept: */*\r\nVia: 1.0 other\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80",
     "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nVia: 1.0 other\r\n" VIA "\r\n"},
    {"Connection: close", R("GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 1, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "GET / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"HTTP/1.0 without Host", R("GET http://a/ HTTP/1.0\r\nX-A: 1\r\n\r\n"), REQUEST_FORWARD, "GET",
     "a", 80, 0, "/", NULL, "http://a:80/", 0, 0, 1, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n" VIA "\r\n"},
    {"HEAD", R("HEAD http://a/h HTTP/1.1\r\nHost: a\r\n\r\n"), REQUEST_FORWARD, "HEAD", "a", 80, 0,
     "/h", NULL, "http://a:80/h", 1, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "HEAD /h HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"identical Content-Lengths folded to one",
     R("POST http://a/f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-A: b\r\n"
       "content-length: 5\r\n\r\n"),
     REQUEST_FORWARD, "POST", "a", 80, 0, "/f", NULL, "http://a:80/f", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_LENGTH, 5, "a:80",
     "POST /f HTTP/1.1\r\nHost: a\r\nX-A: b\r\nContent-Length: 5\r\n" VIA "\r\n"},
    {"Content-Length list and leading zeros",
     R("PUT http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 007, 7\r\n\r\n"), REQUEST_FORWARD,
     "PUT", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_LENGTH, 7,
     "a:80", "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n" VIA "\r\n"},
    {"Content-Length kept even when Connection names it",
     R("POST http://a/ HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\n"
       "Content-Length: 0\r\n\r\n"),
     REQUEST_FORWARD, "POST", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n" VIA "\r\n"},
    {"chunked",
     R("POST http://a/up HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\nX-A: 1\r\n\r\n"),
     REQUEST_FORWARD, "POST", "a", 80, 0, "/up", NULL, "http://a:80/up", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_CHUNKED, 0, "a:80",
     "POST /up HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n" VIA "\r\n"},
    {"websocket upgrade",
     R("GET http://a:8080/ws HTTP/1.1\r\nHost: a:8080\r\nConnection: keep-alive, Upgrade\r\n"
       "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\nKeep-Alive: 1\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 8080, 0, "/ws", NULL, "http://a:8080/ws", 0, 1, 0, UPGRADE_ASKED,
     HTTP1_BODY_NONE, 0, "a:8080",
     "GET /ws HTTP/1.1\r\nHost: a:8080\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"
     "Connection: Upgrade\r\n" VIA "\r\n"},
    {"h2c upgrade: Upgrade stripped as hop-by-hop",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
       "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "GET / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"websocket among other upgrades: websocket alone goes on",
     R("GET http://a/ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n"
       "Upgrade: foo/2, WebSocket\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/ws", NULL, "http://a:80/ws", 0, 1, 0, UPGRADE_ASKED,
     HTTP1_BODY_NONE, 0, "a:80",
     "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" VIA "\r\n"},
    {"Upgrade without Connection: upgrade",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"), REQUEST_FORWARD, "GET",
     "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "a:80",
     "GET / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"no upgrade on HTTP/1.0",
     R("GET http://a/ HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/", NULL, "http://a:80/", 0, 0, 1, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "GET / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"long method truncated in req, whole upstream",
     R("ABCDEFGHIJKLMNOPQRSTUVWXYZ http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), REQUEST_FORWARD,
     "ABCDEFGHIJKLMNOPQRSTUVW", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80", "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"},
    {"another proxy's Via is no loop",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nVia: 1.1 gw2 (socialgate), 1.1 socialgate\r\n\r\n"),
     REQUEST_FORWARD, "GET", "a", 80, 0, "/", NULL, "http://a:80/", 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "a:80",
     "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 gw2 (socialgate), 1.1 socialgate\r\n" VIA "\r\n"},

    {"CONNECT 443", R("CONNECT Example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
     REQUEST_CONNECT, "CONNECT", "example.com", 443, 0, NULL, NULL, NULL, 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "", NULL},
    {"CONNECT listed port, no Host", R("CONNECT a:5228 HTTP/1.1\r\n\r\n"), REQUEST_CONNECT,
     "CONNECT", "a", 5228, 0, NULL, NULL, NULL, 0, 1, 0, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "",
     NULL},
    {"CONNECT in a range, IPv6", R("CONNECT [::1]:8999 HTTP/1.0\r\n\r\n"), REQUEST_CONNECT,
     "CONNECT", "::1", 8999, 1, NULL, NULL, NULL, 0, 0, 1, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "",
     NULL},
    {"CONNECT to socialgate.local is a tunnel",
     R("CONNECT socialgate.local:443 HTTP/1.1\r\nHost: socialgate.local:443\r\n\r\n"),
     REQUEST_CONNECT, "CONNECT", "socialgate.local", 443, 0, NULL, NULL, NULL, 0, 1, 0,
     UPGRADE_NONE, HTTP1_BODY_NONE, 0, "", NULL},

    {"local, origin form: port 80 whatever Host says",
     R("GET /quota?x=1 HTTP/1.1\r\nHost: SocialGate.Local:8080\r\n\r\n"), REQUEST_LOCAL, "GET",
     "socialgate.local", 80, 0, "/quota", "/quota?x=1", NULL, 0, 1, 0, UPGRADE_NONE,
     HTTP1_BODY_NONE, 0, "", NULL},
    {"local, absolute form",
     R("GET http://socialgate.local:81/continue?a=b HTTP/1.1\r\nHost: socialgate.local:81\r\n"
       "\r\n"),
     REQUEST_LOCAL, "GET", "socialgate.local", 81, 0, "/continue", "/continue?a=b", NULL, 0, 1, 0,
     UPGRADE_NONE, HTTP1_BODY_NONE, 0, "", NULL},
    {"local, no path", R("GET http://socialgate.local HTTP/1.0\r\n\r\n"), REQUEST_LOCAL, "GET",
     "socialgate.local", 80, 0, "/", "/", NULL, 0, 0, 1, UPGRADE_NONE, HTTP1_BODY_NONE, 0, "",
     NULL},
    {"local, empty body",
     R("POST /quota HTTP/1.1\r\nHost: socialgate.local\r\n"
       "Content-Length: 0\r\n\r\n"),
     REQUEST_LOCAL, "POST", "socialgate.local", 80, 0, "/quota", "/quota", NULL, 0, 1, 0,
     UPGRADE_NONE, HTTP1_BODY_NONE, 0, "", NULL},
};

static void
check_accepted(const struct accepted *t, const struct request *req)
{
    if (req->kind != t->kind)
        fail_msg("%s: kind %d, want %d", t->name, (int)req->kind, (int)t->kind);
    check_str(t->name, "method", req->method, t->method);
    check_str(t->name, "host", req->host, t->host);
    if (req->port != t->port || req->host_is_ipv6 != t->ipv6)
        fail_msg("%s: port %u ipv6 %d", t->name, req->port, req->host_is_ipv6);
    check_str(t->name, "path", req->path, t->path);
    check_str(t->name, "target", req->target, t->target);
    check_str(t->name, "url", req->url, t->url);
    if (req->is_head != t->is_head || req->client_minor != t->minor ||
        req->client_close != t->client_close)
        fail_msg("%s: is_head %d minor %d close %d", t->name, req->is_head, req->client_minor,
                 req->client_close);
    if (req->upgrade != t->upgrade)
        fail_msg("%s: upgrade %d", t->name, (int)req->upgrade);
    if (req->body != t->body || req->content_length != t->cl)
        fail_msg("%s: body %d cl %llu", t->name, (int)req->body,
                 (unsigned long long)req->content_length);
    if (req->head_len != t->len)
        fail_msg("%s: head_len %zu", t->name, req->head_len);
    check_str(t->name, "poolkey", req->poolkey ? req->poolkey : "", t->poolkey);
    if (req->reply != NULL || req->reply_len != 0)
        fail_msg("%s: answered by the proxy:\n%s", t->name, req->reply);
    if (t->uhead == NULL) {
        if (req->uhead != NULL || req->uhead_len != 0)
            fail_msg("%s: an upstream head", t->name);
    } else if (req->uhead == NULL || req->uhead_len != strlen(t->uhead) ||
               memcmp(req->uhead, t->uhead, req->uhead_len) != 0) {
        fail_msg("%s: upstream head\n%.*s\nwant\n%s", t->name, (int)req->uhead_len,
                 req->uhead ? req->uhead : "", t->uhead);
    }
}

static void
test_accepted(void **state)
{
    (void)state;
    static struct http1_head h;
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        const struct accepted *t = &accepted[i];
        for (int s = 0; s < NSNAP; s++) {
            struct request req;
            struct request_refusal ref;
            parse(t->name, t->raw, t->len, &h);
            if (request_from_head(&h, &snaps[s], &req, &ref) != 0)
                fail_msg("%s: refused %d %s", t->name, ref.status, ref.reason);
            if (strstr(t->raw, "Proxy-Authorization") == NULL && req.auth != AUTH_NONE)
                fail_msg("%s: credentials", t->name);
            /* What req holds is its own: the client's bytes may go. */
            guard_put(&G, t->raw, t->len);
            memset(G.end - t->len, 'Z', t->len);
            check_accepted(t, &req);
            request_free(&req);
        }
    }
}

/* ---------------------------------------------------------------------------
 * OPTIONS and TRACE with Max-Forwards: 0, answered by the proxy once the
 * decision allows them (RFC 9110 7.6.2)
 * ------------------------------------------------------------------------- */

struct answered {
    const char *name;
    const char *raw;
    size_t len;
    const char *uhead; /* still built: the decision sees a forwarded request */
    const char *reply;
};

static const struct answered answered[] = {
    {"OPTIONS", R("OPTIONS http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n"),
     "OPTIONS / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n" VIA "\r\n", OPTIONS_REPLY},
    {"OPTIONS for the server",
     R("OPTIONS http://a:8080 HTTP/1.1\r\nHost: a:8080\r\nMax-Forwards: 0\r\n\r\n"),
     "OPTIONS * HTTP/1.1\r\nHost: a:8080\r\nMax-Forwards: 0\r\n" VIA "\r\n", OPTIONS_REPLY},
    {"TRACE echoes the head without credentials",
     R("TRACE http://a/t?q HTTP/1.1\r\nHost: a\r\nMax-Forwards: 00\r\n" CAROL
       "Authorization: Basic eDp5\r\nCookie: s=1\r\nX-A:  b \r\n\r\n"),
     "TRACE /t?q HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nAuthorization: Basic eDp5\r\n"
     "Cookie: s=1\r\nX-A: b\r\n" VIA "\r\n",
     TRACE_REPLY("66") "TRACE http://a/t?q HTTP/1.1\r\nHost: a\r\nMax-Forwards: 00\r\n"
                       "X-A: b\r\n\r\n"},
    {"TRACE from HTTP/1.0", R("TRACE http://a HTTP/1.0\r\nmax-forwards: 0\r\n\r\n"),
     "TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n" VIA "\r\n",
     TRACE_REPLY("44") "TRACE http://a HTTP/1.0\r\nmax-forwards: 0\r\n\r\n"},
    {"TRACE, the same value twice",
     R("TRACE http://a/ HTTP/1.1\r\nMax-Forwards: 0\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n"),
     "TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n" VIA "\r\n",
     TRACE_REPLY("71") "TRACE http://a/ HTTP/1.1\r\nMax-Forwards: 0\r\nHost: a\r\n"
                       "Max-Forwards: 0\r\n\r\n"},
};

static void
test_answered(void **state)
{
    (void)state;
    static struct http1_head h;
    for (size_t i = 0; i < sizeof(answered) / sizeof(answered[0]); i++) {
        const struct answered *t = &answered[i];
        for (int s = 0; s < NSNAP; s++) {
            struct request req;
            struct request_refusal ref;
            parse(t->name, t->raw, t->len, &h);
            if (request_from_head(&h, &snaps[s], &req, &ref) != 0)
                fail_msg("%s: refused %d %s", t->name, ref.status, ref.reason);
            guard_put(&G, t->raw, t->len);
            memset(G.end - t->len, 'Z', t->len);
            if (req.kind != REQUEST_FORWARD)
                fail_msg("%s: kind %d", t->name, (int)req.kind);
            check_str(t->name, "upstream head", req.uhead, t->uhead);
            check_str(t->name, "reply", req.reply, t->reply);
            if (req.reply_len != strlen(t->reply))
                fail_msg("%s: reply_len %zu", t->name, req.reply_len);
            request_free(&req);
            if (req.reply != NULL)
                fail_msg("%s: reply kept after request_free", t->name);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Credentials
 * ------------------------------------------------------------------------- */

struct cred {
    const char *name;
    const char *raw;
    size_t len;
    int snap;
    enum request_auth auth;
    const char *user, *pass;
};

static const struct cred creds[] = {
    {"known user", R("GET http://a/ HTTP/1.1\r\nHost: a\r\n" CAROL "\r\n"), SNAP_USERS,
     AUTH_UNCHECKED, "carol", "password"},
    {"unknown user: checked later", R("GET http://a/ HTTP/1.1\r\nHost: a\r\n" MALLORY "\r\n"),
     SNAP_USERS, AUTH_UNCHECKED, "mallory", "x"},
    {"wrong password: checked later",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\n"
       "proxy-authorization: basic Y2F0OnNlY3JldA==\r\n\r\n"),
     SNAP_USERS, AUTH_UNCHECKED, "cat", "secret"},
    {"CONNECT", R("CONNECT a:443 HTTP/1.1\r\n" CAROL "\r\n"), SNAP_REQUIRED, AUTH_UNCHECKED,
     "carol", "password"},
    {"local page", R("GET /quota HTTP/1.1\r\nHost: socialgate.local\r\n" CAROL "\r\n"), SNAP_USERS,
     AUTH_UNCHECKED, "carol", "password"},
    {"another scheme",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Bearer abc\r\n\r\n"), SNAP_USERS,
     AUTH_FAILED, NULL, NULL},
    {"bad base64",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic Y2Fyb2w6c=\r\n\r\n"),
     SNAP_USERS, AUTH_FAILED, NULL, NULL},
    {"no colon",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic Y2Fyb2w=\r\n\r\n"),
     SNAP_USERS, AUTH_FAILED, NULL, NULL},
    {"only the first field counts",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: x\r\n" CAROL "\r\n"), SNAP_USERS,
     AUTH_FAILED, NULL, NULL},
    {"no users file: ignored", R("GET http://a/ HTTP/1.1\r\nHost: a\r\n" CAROL "\r\n"), SNAP_PLAIN,
     AUTH_NONE, NULL, NULL},
    {"no users file: malformed ignored",
     R("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: x\r\n\r\n"), SNAP_PLAIN,
     AUTH_NONE, NULL, NULL},
    {"no field", R("GET http://a/ HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eDp5\r\n\r\n"),
     SNAP_REQUIRED, AUTH_NONE, NULL, NULL},
};

static void
test_credentials(void **state)
{
    (void)state;
    static struct http1_head h;
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
        const struct cred *t = &creds[i];
        struct request req;
        struct request_refusal ref;
        parse(t->name, t->raw, t->len, &h);
        if (request_from_head(&h, &snaps[t->snap], &req, &ref) != 0)
            fail_msg("%s: refused %d %s", t->name, ref.status, ref.reason);
        if (req.auth != t->auth)
            fail_msg("%s: auth %d, want %d", t->name, (int)req.auth, (int)t->auth);
        check_str(t->name, "user", req.user, t->user);
        check_str(t->name, "pass", req.pass, t->pass);
        /* never forwarded */
        if (req.uhead && strstr(req.uhead, "roxy-") != NULL)
            fail_msg("%s: upstream head carries credentials:\n%s", t->name, req.uhead);
        request_free(&req);
        if (req.user != NULL || req.pass != NULL || req.host != NULL || req.uhead != NULL)
            fail_msg("%s: request_free left pointers", t->name);
    }
    request_free(NULL);
}

/* ---------------------------------------------------------------------------
 * Limits before authentication
 * ------------------------------------------------------------------------- */

static void
test_preauth_limited(void **state)
{
    (void)state;
    assert_int_equal(request_preauth_limited(&snaps[SNAP_PLAIN]), 0);
    assert_int_equal(request_preauth_limited(&snaps[SNAP_USERS]), 0);
    assert_int_equal(request_preauth_limited(&snaps[SNAP_REQUIRED]), 1);
    /* A max_header_bytes no larger than the PREAUTH limit is limit enough. */
    struct config c = cfgs[SNAP_REQUIRED];
    struct snapshot s = snaps[SNAP_REQUIRED];
    s.cfg = &c;
    c.max_header_bytes = PREAUTH_HEAD_BYTES;
    assert_int_equal(request_preauth_limited(&s), 0);
    c.max_header_bytes = PREAUTH_HEAD_BYTES + 1;
    assert_int_equal(request_preauth_limited(&s), 1);
    /* required without users cannot load; still not limited */
    s.users = NULL;
    assert_int_equal(request_preauth_limited(&s), 0);
}

/* A head: the request line, Host, creds_line, `fields` fields "X-N: v",
 * an X-Pad field of `pad` bytes when pad > 0, and the final CRLF when
 * whole (else it is PARTIAL). Returns its length in buf. */
static size_t
make_head(char *buf, size_t size, const char *creds_line, size_t fields, size_t pad, int whole)
{
    size_t n = (size_t)snprintf(buf, size, "GET http://a/ HTTP/1.1\r\nHost: a\r\n%s", creds_line);
    for (size_t i = 0; i < fields; i++)
        n += (size_t)snprintf(buf + n, size - n, "X-%zu: v\r\n", i);
    if (pad) {
        n += (size_t)snprintf(buf + n, size - n, "X-Pad: ");
        memset(buf + n, 'p', pad);
        n += pad;
        n += (size_t)snprintf(buf + n, size - n, "\r\n");
    }
    if (whole)
        n += (size_t)snprintf(buf + n, size - n, "\r\n");
    if (n >= size)
        abort();
    return n;
}

struct preauth {
    const char *name;
    const char *creds; /* a Proxy-Authorization line, or "" */
    size_t fields;     /* X-N fields besides Host and creds */
    size_t bytes;      /* 0, or the size of the head (whole) or of the input (partial) */
    int whole;
    int snap;
    int refused;
};

static const struct preauth preauth[] = {
    {"64 fields", "", 63, 0, 1, SNAP_REQUIRED, 0},
    {"65 fields", "", 64, 0, 1, SNAP_REQUIRED, 1},
    {"65 fields, known user", CAROL, 63, 0, 1, SNAP_REQUIRED, 0},
    {"65 fields, unknown user", MALLORY, 63, 0, 1, SNAP_REQUIRED, 1},
    {"65 fields, malformed credentials", "Proxy-Authorization: Basic !\r\n", 63, 0, 1,
     SNAP_REQUIRED, 1},
    {"65 fields, not required", "", 64, 0, 1, SNAP_USERS, 0},
    {"65 fields, no users", "", 64, 0, 1, SNAP_PLAIN, 0},
    {"head of 16384 bytes", "", 0, 16384, 1, SNAP_REQUIRED, 0},
    {"head of 16385 bytes", "", 0, 16385, 1, SNAP_REQUIRED, 1},
    {"head of 16385 bytes, known user", CAROL, 0, 16385, 1, SNAP_REQUIRED, 0},
    {"head of 20000 bytes, not required", "", 0, 20000, 1, SNAP_USERS, 0},
    {"partial, 16384 bytes", "", 0, 16384, 0, SNAP_REQUIRED, 0},
    {"partial, 16385 bytes", "", 0, 16385, 0, SNAP_REQUIRED, 1},
    {"partial, 16385 bytes, known user first", CAROL, 0, 16385, 0, SNAP_REQUIRED, 0},
    {"partial, 16385 bytes, unknown user", MALLORY, 0, 16385, 0, SNAP_REQUIRED, 1},
    {"partial, 16385 bytes, no users", "", 0, 16385, 0, SNAP_PLAIN, 0},
};

static void
test_preauth_refused(void **state)
{
    (void)state;
    static struct http1_head h;
    static char buf[32768];
    for (size_t i = 0; i < sizeof(preauth) / sizeof(preauth[0]); i++) {
        const struct preauth *t = &preauth[i];
        size_t pad = 0;
        if (t->bytes) /* an X-Pad field brings the head to t->bytes */
            pad = t->bytes - make_head(buf, sizeof(buf), t->creds, t->fields, 1, t->whole) + 1;
        size_t n = make_head(buf, sizeof(buf), t->creds, t->fields, pad, t->whole);
        if (t->bytes && n != t->bytes)
            fail_msg("%s: made %zu bytes", t->name, n);
        enum http1_status st = http1_parse_request(guard_put(&G, buf, n), n, MAXH, &h);
        if (st != (t->whole ? HTTP1_OK : HTTP1_PARTIAL))
            fail_msg("%s: parse %s", t->name, http1_strerror(st));
        if (request_preauth_refused(&snaps[t->snap], st, n, &h) != t->refused)
            fail_msg("%s: refused %d, want %d", t->name, !t->refused, t->refused);
    }
    /* A refused head gets no say under other limits. */
    size_t n = make_head(buf, sizeof(buf), "", 64, 0, 1);
    http1_parse_request(guard_put(&G, buf, n), n, MAXH, &h);
    assert_int_equal(request_preauth_refused(&snaps[SNAP_REQUIRED], HTTP1_ERR_HEADER_NAME, n, &h),
                     0);
}

/* ---------------------------------------------------------------------------
 * The method of a refused head, Via
 * ------------------------------------------------------------------------- */

static void
test_note_method(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t size;
        const char *want;
    } t[] = {
        {"GET / HTTP/1.1\r\n", 24, "GET"},
        {"M-SEARCH * HTTP/1.1", 24, "M-SEARCH"},
        {"GET", 24, ""},
        {"GET\t/", 24, ""},
        {" GET /", 24, ""},
        {"G\x01T /", 24, ""},
        {"G\xc3\xa9T /", 24, ""},
        {"", 24, ""},
        {"ABCDEFGHIJKLMNOPQRSTUVW x", 24, "ABCDEFGHIJKLMNOPQRSTUVW"}, /* 23 bytes fit */
        {"ABCDEFGHIJKLMNOPQRSTUVWX x", 24, ""},                       /* 24 do not */
        {"GET /", 4, "GET"},
        {"POST /", 4, ""},
        {"POST /", 1, ""},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char m[24];
        memset(m, 'x', sizeof(m));
        size_t n = strlen(t[i].in);
        request_note_method(guard_put(&G, t[i].in, n), n, m, t[i].size);
        if (strcmp(m, t[i].want) != 0)
            fail_msg("'%s' size %zu: '%s', want '%s'", t[i].in, t[i].size, m, t[i].want);
    }
    char m[2] = {'x', 'x'};
    request_note_method((const uint8_t *)"GET /", 5, m, 0); /* writes nothing */
    assert_int_equal(m[0], 'x');
}

/* ---------------------------------------------------------------------------
 * The path path_regex sees
 * ------------------------------------------------------------------------- */

static void
test_normalize_path(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } t[] = {
        {"/", "/"},
        {"", "/"},
        {"/invite/x", "/invite/x"},
        {"/invite", "/invite"},
        {"/invite/", "/invite/"},
        /* the bypasses of a deny on ^/invite(/|$) */
        {"/%69nvite/x", "/invite/x"},
        {"/./invite/x", "/invite/x"},
        {"/x/../invite/x", "/invite/x"},
        {"//invite/x", "/invite/x"},
        {"/%2e%2e/invite", "/invite"},
        {"/%2E/invite", "/invite"},
        {"/.%2e/x/..%2F/invite", "/x/..%2F/invite"},
        {"/a/%2e%2E/invite", "/invite"},
        {"///a////b//", "/a/b/"},
        /* RFC 3986 5.2.4 */
        {"/a/b/c/./../../g", "/a/g"},
        {"/mid/content=5/../6", "/mid/6"},
        {"/a/.", "/a/"},
        {"/a/..", "/"},
        {"/a/b/..", "/a/"},
        {"/..", "/"},
        {"/../../x", "/x"},
        {"/.", "/"},
        {"/...", "/..."},
        {"/..a/.b/a..", "/..a/.b/a.."},
        {"/a//../x", "/x"}, /* slashes merged before ".." is applied, as nginx */
        /* unreserved characters decoded, the rest upper-cased */
        {"/%41%7a%30%2D%2e%5F%7e", "/Az0-._~"},
        {"/a%2fb", "/a%2Fb"},
        {"/a%2Fb/..", "/"},
        {"/%2f%2F/x", "/%2F%2F/x"},
        {"/%20%3a%3F%23%25", "/%20%3A%3F%23%25"},
        {"/%c3%a9", "/%C3%A9"},
        {"/%00", "/%00"},
        /* decoded once */
        {"/%252e%252e/invite", "/%252e%252e/invite"},
        {"/%%32%65", "/%252e"},
        /* a '%' that starts no encoding */
        {"/100%", "/100%25"},
        {"/%4", "/%254"},
        {"/%zz", "/%25zz"},
        {"/%%", "/%25%25"},
        /* no leading slash: one is added */
        {"a/b", "/a/b"},
        {"../x", "/x"},
        /* other characters as they are */
        {"/a;b=c/d,e", "/a;b=c/d,e"},
        {"/a\\..\\b", "/a\\..\\b"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t n = strlen(t[i].in), got_len = 0;
        /* from a guard buffer: no byte after the path is read */
        char *got = request_normalize_path((const char *)guard_put(&G, t[i].in, n), n, &got_len);
        if (got == NULL)
            fail_msg("'%s': NULL", t[i].in);
        if (strcmp(got, t[i].want) != 0 || got_len != strlen(got))
            fail_msg("'%s': '%s' (%zu), want '%s'", t[i].in, got, got_len, t[i].want);
        size_t again_len;
        char *again = request_normalize_path(got, got_len, &again_len);
        if (again == NULL || strcmp(again, got) != 0)
            fail_msg("'%s': normalises again to '%s'", got, again ? again : "(null)");
        free(again);
        free(got);
    }
}

/* The request keeps the path as sent (the log) and the normalised one (path_regex). */
static void
test_npath(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        const char *path, *npath;
    } t[] = {
        {"GET http://a/x/../%69nvite//x?q=/../y HTTP/1.1\r\nHost: a\r\n\r\n", "/x/../%69nvite//x",
         "/invite/x"},
        {"GET http://a/./invite HTTP/1.1\r\nHost: a\r\n\r\n", "/./invite", "/invite"},
        {"GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n", "/", "/"},
        {"GET http://a/%2e%2e/%2E%2E/b#f HTTP/1.1\r\nHost: a\r\n\r\n", "/%2e%2e/%2E%2E/b", "/b"},
        {"GET http://a/plain HTTP/1.1\r\nHost: a\r\n\r\n", "/plain", "/plain"},
        {"GET http://" HOST253 "./x HTTP/1.1\r\nHost: a\r\n\r\n", "/x", "/x"},
        {"CONNECT a:443 HTTP/1.1\r\n\r\n", NULL, NULL},
        {"GET /../quota HTTP/1.1\r\nHost: socialgate.local\r\n\r\n", "/../quota", NULL},
    };
    static struct http1_head h;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct request req;
        struct request_refusal ref;
        parse(t[i].raw, t[i].raw, strlen(t[i].raw), &h);
        if (request_from_head(&h, &snaps[SNAP_PLAIN], &req, &ref) != 0)
            fail_msg("%s: refused %d %s", t[i].raw, ref.status, ref.reason);
        check_str(t[i].raw, "path", req.path, t[i].path);
        check_str(t[i].raw, "npath", req.npath, t[i].npath);
        request_free(&req);
        if (req.npath != NULL)
            fail_msg("%s: npath kept after request_free", t[i].raw);
    }
    /* The upstream gets the path as sent. */
    const char *raw = "GET http://a/x/../y HTTP/1.1\r\nHost: a\r\n\r\n";
    struct request req;
    struct request_refusal ref;
    parse(raw, raw, strlen(raw), &h);
    assert_int_equal(request_from_head(&h, &snaps[SNAP_PLAIN], &req, &ref), 0);
    assert_non_null(strstr(req.uhead, "GET /x/../y HTTP/1.1\r\n"));
    assert_string_equal(req.url, "http://a:80/x/../y");
    request_free(&req);
}

static void
test_via(void **state)
{
    (void)state;
    assert_string_equal(request_via(), "1.1 gw1 (socialgate)");
    assert_string_equal(request_via_header(), VIA);
    assert_int_equal(request_via_header_len(), strlen(VIA));
    static const struct {
        const char *raw;
        int loops;
    } t[] = {
        {"GET http://a/ HTTP/1.1\r\n" VIA "\r\n", 1},
        {"GET http://a/ HTTP/1.1\r\nVIA: x,1.1 gw1 (socialgate)\r\n\r\n", 1},
        {"GET http://a/ HTTP/1.1\r\nVia: 1.1 gw1 (socialgate\r\n\r\n", 0},
        {"GET http://a/ HTTP/1.1\r\nVia: 1.1 GW1 (socialgate)\r\n\r\n", 0},
        {"GET http://a/ HTTP/1.1\r\nX-Via: 1.1 gw1 (socialgate)\r\n\r\n", 0},
        {"GET http://a/ HTTP/1.1\r\nVia:\r\n\r\n", 0},
        {"GET http://a/ HTTP/1.1\r\n\r\n", 0},
    };
    static struct http1_head h;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        parse(t[i].raw, t[i].raw, strlen(t[i].raw), &h);
        if (request_via_loops(&h) != t[i].loops)
            fail_msg("%s: loops %d", t[i].raw, !t[i].loops);
    }
}

/* ---------------------------------------------------------------------------
 * Requests read inside a decrypted tunnel (request_from_inner_head)
 * ------------------------------------------------------------------------- */

struct inner {
    const char *name;
    const char *raw;
    size_t len;
    uint16_t port;
    const char *uhead; /* NULL: refused with `reason` */
    const char *url, *path, *reason;
};

static const struct inner inners[] = {
    {"origin form to the tunnel's host, whatever Host says",
     R("POST /feed/x?a=1 HTTP/1.1\r\nHost: evil.example\r\n" CAROL "Content-Length: 2\r\n\r\n"),
     443, "POST /feed/x?a=1 HTTP/1.1\r\nHost: www.linkedin.com\r\nContent-Length: 2\r\n" VIA "\r\n",
     "https://www.linkedin.com:443/feed/x?a=1", "/feed/x", NULL},
    {"another port is in Host", R("GET / HTTP/1.1\r\nHost: www.linkedin.com:8443\r\n\r\n"), 8443,
     "GET / HTTP/1.1\r\nHost: www.linkedin.com:8443\r\n" VIA "\r\n",
     "https://www.linkedin.com:8443/", "/", NULL},
    {"absolute form", R("GET https://www.linkedin.com/ HTTP/1.1\r\nHost: x\r\n\r\n"), 443, NULL,
     NULL, NULL, "unsupported-scheme"},
    {"CONNECT inside", R("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 443, NULL, NULL, NULL,
     "connect-in-tunnel"},
    {"no Host", R("GET / HTTP/1.1\r\n\r\n"), 443, NULL, NULL, NULL, "missing-host"},
    {"* is for OPTIONS only", R("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 443, NULL, NULL, NULL,
     "bad-target"},
    {"a loop", R("GET / HTTP/1.1\r\nHost: a\r\n" VIA "\r\n"), 443, NULL, NULL, NULL,
     "forwarding-loop"},
};

static void
test_inner(void **state)
{
    (void)state;
    static struct http1_head h;
    for (size_t i = 0; i < sizeof(inners) / sizeof(inners[0]); i++) {
        const struct inner *t = &inners[i];
        struct request req;
        struct request_refusal ref;
        parse(t->name, t->raw, t->len, &h);
        int rc = request_from_inner_head(&h, &snaps[SNAP_USERS], "www.linkedin.com", t->port, &req,
                                         &ref);
        /* the tunnel's identity is the caller's: nothing is read here */
        if (req.user != NULL || req.auth != AUTH_NONE)
            fail_msg("%s: credentials read", t->name);
        if (t->uhead == NULL) {
            if (rc != -1)
                fail_msg("%s: accepted", t->name);
            check_str(t->name, "reason", ref.reason, t->reason);
            request_free(&req);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: refused %d %s", t->name, ref.status, ref.reason);
        check_str(t->name, "uhead", req.uhead, t->uhead);
        check_str(t->name, "url", req.url, t->url);
        check_str(t->name, "path", req.path, t->path);
        check_str(t->name, "host", req.host, "www.linkedin.com");
        if (req.tls != 1 || req.port != t->port || req.poolkey == NULL || strncmp(req.poolkey, "tls:", 4) != 0)
            fail_msg("%s: not a TLS request (pool key %s)", t->name, req.poolkey);
        request_free(&req);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_answered),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_preauth_limited),
        cmocka_unit_test(test_preauth_refused),
        cmocka_unit_test(test_note_method),
        cmocka_unit_test(test_normalize_path),
        cmocka_unit_test(test_npath),
        cmocka_unit_test(test_via),
        cmocka_unit_test(test_inner),
    };
    return cmocka_run_group_tests_name("request", tests, setup, teardown);
}
