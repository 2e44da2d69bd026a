/* The first bytes of a tunnel: a TLS ClientHello over one or more records.
 *
 * Checks: the names are NUL-terminated within their buffers, `consumed`
 * stays within the input, and the verdict is stable as bytes arrive: an OK
 * hello is PARTIAL on every shorter prefix and the same on longer ones, a
 * PARTIAL input has no refused prefix. The SNI is then normalised for the
 * catalog as the proxy does. */
#include <string.h>

#include "catalog.h"
#include "fuzz.h"
#include "sni.h"

static void
check_info(const struct sni_info *in, size_t size)
{
    FUZZ_CHECK(memchr(in->sni, '\0', sizeof(in->sni)) != NULL);
    FUZZ_CHECK(memchr(in->alpn, '\0', sizeof(in->alpn)) != NULL);
    FUZZ_CHECK(in->consumed <= size);
    FUZZ_CHECK(in->has_sni == (in->sni[0] != '\0'));
    FUZZ_CHECK(in->has_alpn == (in->alpn[0] != '\0'));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sni_info in, in2;
    enum sni_status st = sni_parse(data, size, &in);
    (void)sni_strstatus(st);
    if (st == SNI_OK) {
        check_info(&in, size);
        FUZZ_CHECK(in.consumed >= 5 + 4 + 38);
        if (in.has_sni) {
            char host[CATALOG_MAX_HOST + 1];
            int is_ip;
            int n = catalog_normalize(in.sni, strlen(in.sni), host, sizeof(host), &is_ip);
            FUZZ_CHECK(n < (int)sizeof(host));
        }
        size_t cuts[] = {0, 1, 5, in.consumed / 2, in.consumed - 1, in.consumed,
                         in.consumed + (size - in.consumed) / 2};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            size_t n = cuts[i];
            if (n > size)
                continue;
            uint8_t *pre = fuzz_memdup(data, n);
            enum sni_status s2 = sni_parse(pre, n, &in2);
            if (n < in.consumed) {
                FUZZ_CHECK(s2 == SNI_PARTIAL);
            } else {
                FUZZ_CHECK(s2 == SNI_OK);
                FUZZ_CHECK(in2.consumed == in.consumed);
                FUZZ_CHECK(strcmp(in2.sni, in.sni) == 0);
                FUZZ_CHECK(strcmp(in2.alpn, in.alpn) == 0);
                FUZZ_CHECK(in2.ech == in.ech);
            }
            free(pre);
        }
    } else if (st == SNI_PARTIAL) {
        size_t cuts[] = {size / 3, size / 2, size ? size - 1 : 0};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            uint8_t *pre = fuzz_memdup(data, cuts[i]);
            FUZZ_CHECK(sni_parse(pre, cuts[i], &in2) == SNI_PARTIAL);
            free(pre);
        }
    } else {
        FUZZ_CHECK(st == SNI_NOT_TLS || st == SNI_MALFORMED);
    }
    return 0;
}
