/* The request a client sends inside a TLS page tunnel (tlspage.c), after
 * the handshake: http1_parse_request, then local_tls_route (is it the warn
 * page's Continue link, what page was asked for), in tunnels to a name, an
 * IPv4 and an IPv6 address, on port 443 and another, warned or denied. The
 * same route is also taken from raw bytes (Host and target split at the
 * first NUL), as a parser over spans must take anything.
 *
 * Checks: the url is https:// then the authority, and holds no byte a
 * Location header or the log could not carry (CR, LF, NUL); the authority
 * has no '/' and a port only when not 443 (the tunnel's exactly, when
 * the Host is no name to take the port from); only a warned
 * tunnel and a target under LOCAL_TLS_CONTINUE_PATH make a Continue,
 * whose target is /continue with the same query. */
#include <string.h>

#include "catalog.h"
#include "fuzz.h"
#include "http1.h"
#include "local.h"

static void
check(const struct local_tls_route *rt, int port, int named, int warn, const char *target,
      size_t tlen)
{
    size_t al = strlen(rt->authority);
    FUZZ_CHECK(al > 0 && strchr(rt->authority, '/') == NULL);
    FUZZ_CHECK(strncmp(rt->url, "https://", 8) == 0);
    FUZZ_CHECK(strncmp(rt->url + 8, rt->authority, al) == 0 && rt->url[8 + al] == '/');
    FUZZ_CHECK(strpbrk(rt->url, "\r\n") == NULL);
    FUZZ_CHECK(strpbrk(rt->authority, " \t\"<>") == NULL);
    const char *close = strrchr(rt->authority, ']');
    const char *colon = strrchr(close ? close : rt->authority, ':');
    if (colon != NULL) /* a port, never 443 */
        FUZZ_CHECK(strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
                   strcmp(colon + 1, "443") != 0 && colon[1] != '\0');
    if (!named && port != 443) {
        char want[16];
        snprintf(want, sizeof(want), ":%d", port);
        FUZZ_CHECK(al > strlen(want) && strcmp(rt->authority + al - strlen(want), want) == 0);
    }
    size_t cp = strlen(LOCAL_TLS_CONTINUE_PATH);
    if (rt->is_continue) {
        FUZZ_CHECK(warn && tlen >= cp && memcmp(target, LOCAL_TLS_CONTINUE_PATH, cp) == 0);
        FUZZ_CHECK(strncmp(rt->target, "/continue", 9) == 0);
        FUZZ_CHECK(strlen(rt->target) - 9 == tlen - cp &&
                   memcmp(rt->target + 9, target + cp, tlen - cp) == 0);
    } else {
        FUZZ_CHECK(rt->target[0] == '\0');
    }
}

static void
route_all(const char *host, size_t hlen, const char *target, size_t tlen)
{
    static const char *const names[] = {"www.facebook.com", "192.0.2.7", "2001:db8::1"};
    static const int ports[] = {443, 8443};
    /* A Host that is a name gives the authority, port included. */
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip = 0;
    int named = hlen > 0 && catalog_normalize(host, hlen, norm, sizeof(norm), &is_ip) > 0 && !is_ip;
    for (size_t n = 0; n < 3; n++)
        for (size_t p = 0; p < 2; p++)
            for (int warn = 0; warn < 2; warn++) {
                struct local_tls_route rt;
                if (local_tls_route(names[n], ports[p], host, hlen, target, tlen, warn, &rt) == 0)
                    check(&rt, ports[p], named, warn, target, tlen);
            }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = fuzz_memdup(data, size);
    struct http1_head *h = malloc(sizeof(*h));
    if (h == NULL)
        abort();
    if (http1_parse_request(copy, size, 65536, h) == HTTP1_OK)
        route_all(h->host.p, h->host.len, h->target.p, h->target.len);
    free(h);
    free(copy);

    size_t hl, tl;
    const uint8_t *hp = fuzz_next(&data, &size, 0, &hl);
    const uint8_t *tp = fuzz_next(&data, &size, 0, &tl);
    char *host = (char *)fuzz_memdup(hp, hl);
    char *target = (char *)fuzz_memdup(tp, tl);
    /* the phase only ever passes a parsed request's spans: no CR or LF */
    if (memchr(target, '\r', tl) == NULL && memchr(target, '\n', tl) == NULL &&
        memchr(target, 0, tl) == NULL)
        route_all(host, hl, target, tl);
    free(host);
    free(target);
    return 0;
}
