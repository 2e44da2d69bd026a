#include "admin.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "log.h"
#include "snapshot.h"
#include "stats.h"
#include "usage.h"
#include "util/addr.h"
#include "worker.h"

static struct evhttp *http;
static int draining;

static int
allowed(struct evhttp_request *req, const struct config *cfg)
{
    struct evhttp_connection *ec = evhttp_request_get_connection(req);
    const struct sockaddr *sa = ec ? evhttp_connection_get_addr(ec) : NULL;
    return sa != NULL && cidrset_match(&cfg->admin_allow, sa);
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason, const char *type,
           const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(b, body, len);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

size_t
admin_pac(const struct config *cfg, char *buf, size_t size)
{
    size_t o = 0;
    int n;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        n = snprintf(buf + o, o < size ? size - o : 0, __VA_ARGS__);                               \
        if (n > 0)                                                                                 \
            o += (size_t)n;                                                                        \
    } while (0)
    PUT("// socialgate proxy auto-config: everything goes through the gateway,\n"
        "// except what [admin] pac_direct lists. No DIRECT fallback: a fallback\n"
        "// would let browsers bypass the policy when the gateway is down.\n"
        "function FindProxyForURL(url, host) {\n");
    for (size_t i = 0; i < cfg->npac_direct; i++) {
        const char *d = cfg->pac_direct[i];
        struct cidr c;
        const char *err;
        if (addr_parse_cidr(d, &c, &err) == 0 && c.family == AF_INET) {
            char ip[INET_ADDRSTRLEN];
            uint32_t mask = c.prefix ? 0xffffffffu << (32 - c.prefix) : 0;
            struct in_addr m = {htonl(mask)};
            char ms[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, c.addr, ip, sizeof(ip));
            inet_ntop(AF_INET, &m, ms, sizeof(ms));
            PUT("    if (isInNet(host, \"%s\", \"%s\")) return \"DIRECT\";\n", ip, ms);
        } else if (strncmp(d, "*.", 2) == 0) {
            PUT("    if (dnsDomainIs(host, \"%s\") || host == \"%s\") return \"DIRECT\";\n", d + 1,
                d + 2);
        } else {
            PUT("    if (host == \"%s\") return \"DIRECT\";\n", d);
        }
    }
    /* Several gateways: the browser tries them in order (failover). With
     * the HTTPS proxy port, every gateway's HTTPS port first (Basic
     * credentials do not cross the LAN in clear; its port is this
     * gateway's first listen_tls), then every plain port, for a browser
     * that cannot speak to an HTTPS proxy. */
    static const char *const dflt[] = {"127.0.0.1:3128"};
    char *const *gws = cfg->npac_proxy ? cfg->pac_proxy : (char *const *)dflt;
    size_t ngw = cfg->npac_proxy ? cfg->npac_proxy : 1;
    PUT("    return \"");
    if (cfg->nlisten_tls > 0) {
        int tls_port = addr_port((const struct sockaddr *)&cfg->listen_tls[0].ss);
        for (size_t i = 0; i < ngw; i++) {
            const char *colon = strrchr(gws[i], ':');
            int hostlen = colon ? (int)(colon - gws[i]) : (int)strlen(gws[i]);
            PUT("HTTPS %.*s:%d; ", hostlen, gws[i], tls_port);
        }
    }
    for (size_t i = 0; i < ngw; i++)
        PUT("%sPROXY %s", i ? "; " : "", gws[i]);
    PUT("\";\n}\n");
#undef PUT
    return o < size ? o : (size ? size - 1 : 0);
}

static void
handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct snapshot *s = snapshot_acquire();
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?");
    if (!allowed(req, s->cfg)) {
        reply_text(req, 403, "Forbidden", "text/plain", "forbidden\n", 10);
    } else if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
               evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        reply_text(req, 405, "Method Not Allowed", "text/plain", "GET only\n", 9);
    } else if (plen == 8 && strncmp(uri, "/metrics", 8) == 0) {
        size_t size = 1 << 20;
        char *buf = malloc(size);
        if (buf == NULL) {
            evhttp_send_error(req, 500, NULL);
        } else {
            size_t n = stats_format(buf, size, worker_total_connections(),
                                    usage_active_identities((int64_t)time(NULL) / 60 - 5),
                                    draining);
            reply_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", buf, n);
            free(buf);
        }
    } else if (plen == 8 && strncmp(uri, "/healthz", 8) == 0) {
        if (draining)
            reply_text(req, 503, "Service Unavailable", "text/plain", "draining\n", 9);
        else
            reply_text(req, 200, "OK", "text/plain", "ok\n", 3);
    } else if (plen == 7 && strncmp(uri, "/readyz", 7) == 0) {
        if (draining)
            reply_text(req, 503, "Service Unavailable", "text/plain", "draining\n", 9);
        else
            reply_text(req, 200, "OK", "text/plain", "ready\n", 6);
    } else if ((plen == 10 && strncmp(uri, "/proxy.pac", 10) == 0) ||
               (plen == 9 && strncmp(uri, "/wpad.dat", 9) == 0)) {
        /* WPAD (DHCP option 252, DNS wpad.<domain>) asks for /wpad.dat: the
         * same file. */
        char pac[16384];
        size_t n = admin_pac(s->cfg, pac, sizeof(pac));
        reply_text(req, 200, "OK", "application/x-ns-proxy-autoconfig", pac, n);
    } else {
        reply_text(req, 404, "Not Found", "text/plain", "not found\n", 10);
    }
    snapshot_release(s);
}

int
admin_start(struct event_base *base, const struct config *cfg)
{
    if (!cfg->admin_enabled)
        return 0;
    http = evhttp_new(base);
    if (http == NULL)
        return -1;
    evhttp_set_gencb(http, handle, NULL);
    evhttp_set_timeout(http, 10);
    evhttp_set_max_headers_size(http, 16384);
    evhttp_set_max_body_size(http, 0);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    char ip[64];
    addr_format_ip((const struct sockaddr *)&cfg->admin_listen.ss, ip, sizeof(ip));
    if (evhttp_bind_socket(http, ip, (ev_uint16_t)addr_port(
                                         (const struct sockaddr *)&cfg->admin_listen.ss)) != 0) {
        log_warn("admin: cannot listen on %s", cfg->admin_listen.text);
        return -1;
    }
    log_info("admin endpoint on %s", cfg->admin_listen.text);
    return 0;
}

void
admin_set_draining(void)
{
    draining = 1;
}

void
admin_stop(void)
{
    if (http)
        evhttp_free(http);
    http = NULL;
}
