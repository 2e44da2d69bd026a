/* A client's request head through the request stage: http1_parse_request,
 * then request_from_head under three fixed configurations (no [auth]; an
 * htpasswd file; the same with required = yes), all with connect_ports
 * 443 and 8000-8999, http_ports 80, 443 and 1025-65535, and this proxy's
 * Via "1.1 fuzz (socialgate)".
 *
 * Besides memory errors and leaks (request_free always runs) it checks
 * what the callers rely on: a refusal has a reason, and a detail when it
 * has a page; the method kept is a prefix of the one received; a
 * forwarded request has a head that starts with its method, ends with an
 * empty line, parses again as a request with the same body framing, holds
 * one Host and no Proxy-Authorization, a request-target in origin form
 * ("/..." or "*" for OPTIONS), an Upgrade only when it is websocket; a
 * tunnel's port and a forwarded request's port are allowed (connect_ports,
 * http_ports); only an OPTIONS or TRACE with Max-Forwards: 0 is answered by
 * the proxy, a TRACE answer echoing no credentials; a local request has
 * no body and a target starting with '/'; credentials mean nothing without a users file; a
 * forwarded or tunnelled host is one the catalog can normalise; path_regex
 * gets the normalised path (npath) of a forwarded request. The
 * pre-authentication limits are checked on every input, parsed or not.
 * The same head is also read as a request inside a decrypted tunnel
 * (request_from_inner_head): it goes to the tunnel's host alone, over TLS. */
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "fuzz.h"
#include "htpasswd.h"
#include "http1.h"
#include "request.h"
#include "snapshot.h"

#define MAX_HEAD 65536

enum { SNAP_PLAIN, SNAP_USERS, SNAP_REQUIRED, NSNAP };
static struct config cfgs[NSNAP];
static struct snapshot snaps[NSNAP];

static void
init(void)
{
    static int done;
    static uint16_t ports[] = {443};
    static uint16_t ranges[][2] = {{8000, 8999}};
    static uint16_t http_ports[] = {80, 443};
    static uint16_t http_ranges[][2] = {{1025, 65535}};
    if (done)
        return;
    done = 1;
    struct diag d = {0};
    /* carol:password, cat:hunter2 */
    struct htpasswd *users = htpasswd_load_string("carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
                                                  "cat:{SHA}87u9ZqY9S/F0eUBXjsPQEDUw4h0=\n",
                                                  "users", &d);
    diag_free(&d);
    if (users == NULL)
        abort();
    for (int i = 0; i < NSNAP; i++) {
        cfgs[i].connect_ports = (struct portset){ports, 1, ranges, 1};
        cfgs[i].http_ports = (struct portset){http_ports, 2, http_ranges, 1};
        cfgs[i].max_header_bytes = MAX_HEAD;
        snaps[i].cfg = &cfgs[i];
        snaps[i].users = i == SNAP_PLAIN ? NULL : users; /* kept for the process */
    }
    cfgs[SNAP_REQUIRED].auth_required = 1;
    request_set_via("fuzz");
}

static int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Whether a field line of head p[0..len) is named `name` (lower-case). */
static int
has_field(const char *p, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i + 2 + n + 1 <= len; i++) {
        if (p[i] != '\r' || p[i + 1] != '\n')
            continue;
        size_t k = 0;
        while (k < n && lower((unsigned char)p[i + 2 + k]) == name[k])
            k++;
        if (k == n && p[i + 2 + n] == ':')
            return 1;
    }
    return 0;
}

static void
check_forward(const struct request *req, const struct http1_head *h, int s)
{
    static struct http1_head u;
    FUZZ_CHECK(req->host != NULL && req->path != NULL && req->path[0] == '/');
    /* path_regex sees the normalised path, the log the one sent */
    size_t nl = 0;
    char *np = request_normalize_path(req->path, strlen(req->path), &nl);
    FUZZ_CHECK(np != NULL && req->npath != NULL && strcmp(req->npath, np) == 0);
    free(np);
    FUZZ_CHECK(req->target == NULL);
    FUZZ_CHECK(req->url != NULL && strncmp(req->url, "http://", 7) == 0);
    FUZZ_CHECK(req->poolkey != NULL && req->poolkey[0] != '\0');
    FUZZ_CHECK(req->uhead != NULL && req->uhead_len >= h->method.len + 4);
    FUZZ_CHECK(req->uhead[req->uhead_len] == '\0');
    FUZZ_CHECK(memcmp(req->uhead, h->method.p, h->method.len) == 0);
    FUZZ_CHECK(req->uhead[h->method.len] == ' ');
    FUZZ_CHECK(memcmp(req->uhead + req->uhead_len - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(!has_field(req->uhead, req->uhead_len, "proxy-authorization"));
    FUZZ_CHECK(!has_field(req->uhead, req->uhead_len, "proxy-connection"));
    FUZZ_CHECK(req->body == h->body && req->content_length == h->content_length);
    FUZZ_CHECK(config_http_port_allowed(snaps[s].cfg, req->port));
    /* origin form, or "*" for a server-wide OPTIONS */
    const char *tgt = req->uhead + h->method.len + 1;
    FUZZ_CHECK(tgt[0] == '/' || (tgt[0] == '*' && tgt[1] == ' ' && h->method.len == 7 &&
                                 memcmp(h->method.p, "OPTIONS", 7) == 0));
    if (req->upgrade == UPGRADE_NONE)
        FUZZ_CHECK(!has_field(req->uhead, req->uhead_len, "upgrade"));
    else
        FUZZ_CHECK(strstr(req->uhead, "\r\nUpgrade: websocket\r\n") != NULL);
    int options = h->method.len == 7 && memcmp(h->method.p, "OPTIONS", 7) == 0;
    int trace = h->method.len == 5 && memcmp(h->method.p, "TRACE", 5) == 0;
    if (req->reply != NULL) {
        /* the last hop: Max-Forwards reached 0 */
        FUZZ_CHECK(options || trace);
        FUZZ_CHECK(has_field(req->uhead, req->uhead_len, "max-forwards"));
        FUZZ_CHECK(strstr(req->uhead, "\r\nMax-Forwards: 0\r\n") != NULL);
        FUZZ_CHECK(req->reply_len == strlen(req->reply));
        FUZZ_CHECK(strncmp(req->reply, "HTTP/1.1 200 OK\r\n", 17) == 0);
        FUZZ_CHECK(!has_field(req->reply, req->reply_len, "authorization"));
        FUZZ_CHECK(!has_field(req->reply, req->reply_len, "proxy-authorization"));
        FUZZ_CHECK(!has_field(req->reply, req->reply_len, "cookie"));
    } else {
        FUZZ_CHECK(req->reply_len == 0);
    }
    /* The origin gets a head it can parse, framed as the client's. */
    enum http1_status st =
        http1_parse_request((const uint8_t *)req->uhead, req->uhead_len, (size_t)-1, &u);
    if (st == HTTP1_ERR_TOO_MANY_HEADERS) {
        /* Host, Content-Length, Transfer-Encoding, Connection and Via may
         * come on top of the client's fields (the origin has its limits). */
        FUZZ_CHECK(h->nheaders + 4 > HTTP1_MAX_HEADERS);
        return;
    }
    FUZZ_CHECK(st == HTTP1_OK);
    FUZZ_CHECK(u.head_len == req->uhead_len && u.minor == 1);
    FUZZ_CHECK(u.body == h->body && u.content_length == h->content_length);
    FUZZ_CHECK(u.host.len > 0);
    FUZZ_CHECK(request_via_loops(&u));
}

static void
check_one(const struct http1_head *h, int s)
{
    struct request req;
    struct request_refusal ref;
    int rc = request_from_head(h, &snaps[s], &req, &ref);
    size_t ml = strlen(req.method);
    FUZZ_CHECK(ml < sizeof(req.method) && ml <= h->method.len);
    FUZZ_CHECK(memcmp(req.method, h->method.p, ml) == 0);
    FUZZ_CHECK(req.head_len == h->head_len);
    if (snaps[s].users == NULL)
        FUZZ_CHECK(req.auth == AUTH_NONE && req.user == NULL && req.pass == NULL);
    if (req.auth == AUTH_UNCHECKED)
        FUZZ_CHECK(req.user != NULL && req.user[0] != '\0' && req.pass != NULL);
    FUZZ_CHECK(req.auth != AUTH_OK); /* only the decision checks a password */
    if (req.host != NULL)
        for (const char *c = req.host; *c; c++)
            FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z'));
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(ref.reason != NULL && ref.reason[0] != '\0');
        FUZZ_CHECK(ref.status == 0 || ref.status == 400 || ref.status == 403 || ref.status == 508);
        if (ref.status != 0)
            FUZZ_CHECK(ref.detail != NULL && ref.detail[0] != '\0');
        FUZZ_CHECK(req.uhead == NULL);
    } else {
        switch (req.kind) {
        case REQUEST_FORWARD:
            check_forward(&req, h, s);
            break;
        case REQUEST_CONNECT:
            FUZZ_CHECK(req.host != NULL && req.port != 0 && req.path == NULL);
            FUZZ_CHECK(req.npath == NULL);
            FUZZ_CHECK(config_connect_port_allowed(snaps[s].cfg, req.port));
            FUZZ_CHECK(req.uhead == NULL && req.url == NULL && req.reply == NULL);
            break;
        case REQUEST_LOCAL:
            FUZZ_CHECK(req.host != NULL && strcmp(req.host, "socialgate.local") == 0);
            FUZZ_CHECK(req.port != 0 && req.target != NULL && req.target[0] == '/');
            FUZZ_CHECK(h->body == HTTP1_BODY_NONE);
            FUZZ_CHECK(req.uhead == NULL);
            break;
        default:
            FUZZ_CHECK(0);
        }
        if (req.kind != REQUEST_LOCAL) { /* answered here: no loop possible */
            FUZZ_CHECK(!request_via_loops(h));
            /* a host the catalog cannot read is refused (bad-host) */
            char norm[CATALOG_MAX_HOST + 1];
            int is_ip;
            FUZZ_CHECK(catalog_normalize(req.host, strlen(req.host), norm, sizeof(norm), &is_ip) >
                       0);
        }
    }
    request_free(&req);
    FUZZ_CHECK(req.host == NULL && req.uhead == NULL && req.pass == NULL);
}

/* The same head read inside a decrypted tunnel to www.linkedin.com:443:
 * it goes there and nowhere else (one Host, that one), over TLS, with no
 * credentials read. */
static void
check_inner(const struct http1_head *h)
{
    static struct http1_head u;
    static const char host[] = "www.linkedin.com";
    struct request req;
    struct request_refusal ref;
    int rc = request_from_inner_head(h, &snaps[SNAP_USERS], host, 443, &req, &ref);
    FUZZ_CHECK(req.user == NULL && req.pass == NULL && req.auth == AUTH_NONE);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && ref.reason != NULL && ref.reason[0] != '\0');
        FUZZ_CHECK(ref.status == 0 || ref.status == 400 || ref.status == 508);
        FUZZ_CHECK(req.uhead == NULL);
    } else {
        FUZZ_CHECK(req.kind == REQUEST_FORWARD && req.tls == 1 && req.port == 443);
        FUZZ_CHECK(req.host != NULL && strcmp(req.host, host) == 0);
        FUZZ_CHECK(req.url != NULL && strncmp(req.url, "https://www.linkedin.com:443/", 29) == 0);
        FUZZ_CHECK(req.poolkey != NULL && strcmp(req.poolkey, "tls:www.linkedin.com:443") == 0);
        FUZZ_CHECK(req.path != NULL && req.npath != NULL && req.npath[0] == '/');
        FUZZ_CHECK(req.uhead != NULL && req.uhead[req.uhead_len] == '\0');
        FUZZ_CHECK(!has_field(req.uhead, req.uhead_len, "proxy-authorization"));
        enum http1_status st =
            http1_parse_request((const uint8_t *)req.uhead, req.uhead_len, (size_t)-1, &u);
        FUZZ_CHECK(st == HTTP1_OK || st == HTTP1_ERR_TOO_MANY_HEADERS);
        if (st == HTTP1_OK)
            FUZZ_CHECK(u.host.len == sizeof(host) - 1 &&
                       memcmp(u.host.p, host, sizeof(host) - 1) == 0);
    }
    request_free(&req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http1_head h;
    init();

    char method[24];
    request_note_method(data, size, method, sizeof(method));
    size_t ml = strlen(method);
    FUZZ_CHECK(ml < sizeof(method) && ml <= size && memcmp(method, data, ml) == 0);

    enum http1_status st = http1_parse_request(data, size, MAX_HEAD, &h);
    if (st == HTTP1_OK || st == HTTP1_PARTIAL) {
        for (int s = 0; s < NSNAP; s++) {
            int refused = request_preauth_refused(&snaps[s], st, size, &h);
            FUZZ_CHECK(refused == 0 || refused == 1);
            if (refused)
                FUZZ_CHECK(request_preauth_limited(&snaps[s]));
        }
    }
    if (st != HTTP1_OK)
        return 0;
    for (int s = 0; s < NSNAP; s++)
        check_one(&h, s);
    check_inner(&h);
    return 0;
}
