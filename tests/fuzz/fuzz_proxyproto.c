/* The first bytes of a connection from a load balancer, read as the proxy
 * reads them (proxyproto_parse on what has arrived so far).
 *
 * Checks: OK consumes at most the input and at least the signature, and
 * leaves a usable address (AF_INET or AF_INET6 with its length) unless
 * local; the verdict is the same on any longer input that starts with the
 * same bytes (a header is never judged before its end); a header that
 * parses is PARTIAL on every shorter non-empty prefix; INVALID names why. */
#include <string.h>

#include <netinet/in.h>

#include "fuzz.h"
#include "proxyproto.h"

static void
check_ok(const struct proxyproto_result *r, size_t size)
{
    FUZZ_CHECK(r->version == 1 || r->version == 2);
    FUZZ_CHECK(r->consumed <= size);
    FUZZ_CHECK(r->consumed >= (r->version == 1 ? 8u : 16u));
    FUZZ_CHECK(r->consumed <= (r->version == 1 ? PROXYPROTO_V1_MAX : PROXYPROTO_V2_MAX));
    if (!r->local) {
        FUZZ_CHECK(r->src.ss_family == AF_INET || r->src.ss_family == AF_INET6);
        FUZZ_CHECK(r->srclen == (r->src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                             : sizeof(struct sockaddr_in6)));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxyproto_result r, r2;
    const char *why = NULL;
    uint8_t *copy = fuzz_memdup(data, size);
    enum proxyproto_status st = proxyproto_parse(copy, size, &r, &why);
    FUZZ_CHECK(st == PROXYPROTO_OK || st == PROXYPROTO_PARTIAL || st == PROXYPROTO_NONE ||
               st == PROXYPROTO_INVALID);
    FUZZ_CHECK((st == PROXYPROTO_INVALID) == (why != NULL));
    FUZZ_CHECK(strcmp(proxyproto_strstatus(st), "?") != 0);
    if (st == PROXYPROTO_OK) {
        check_ok(&r, size);
        /* every shorter prefix is PARTIAL */
        size_t cuts[] = {1, r.consumed / 2, r.consumed - 1};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            if (cuts[i] == 0 || cuts[i] >= r.consumed)
                continue;
            uint8_t *pre = fuzz_memdup(data, cuts[i]);
            FUZZ_CHECK(proxyproto_parse(pre, cuts[i], &r2, NULL) == PROXYPROTO_PARTIAL);
            free(pre);
        }
        /* the bytes after the header do not matter */
        FUZZ_CHECK(proxyproto_parse(data, r.consumed, &r2, NULL) == PROXYPROTO_OK);
        FUZZ_CHECK(r2.consumed == r.consumed && r2.local == r.local && r2.srclen == r.srclen &&
                   memcmp(&r2.src, &r.src, sizeof(r.src)) == 0);
    }
    if (st != PROXYPROTO_PARTIAL && size > 0) {
        /* final: more bytes do not change the verdict */
        uint8_t *more = malloc(size + 8);
        FUZZ_CHECK(more != NULL);
        memcpy(more, data, size);
        memcpy(more + size, "\r\nGET / ", 8);
        FUZZ_CHECK(proxyproto_parse(more, size + 8, &r2, NULL) == st);
        if (st == PROXYPROTO_OK)
            FUZZ_CHECK(r2.consumed == r.consumed);
        free(more);
    }
    free(copy);
    return 0;
}
