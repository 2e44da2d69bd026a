/* A host name as a client names it (request-target, Host, SNI, or
 * `socialgate explain`): catalog_normalize on raw bytes, IDNs through
 * libidn2, then catalog_classify against a small catalog. Checks: the
 * result fits, is lower case without a trailing dot, and normalising it
 * again changes nothing; classifying the raw name and looking up the
 * normalised one agree. */
#include <string.h>

#include "catalog.h"
#include "fuzz.h"
#include "rules.h"

static struct rules *rules;

static const char catalog_text[] = "[platform facebook]\n"
                                   "category = social\n"
                                   "domains = facebook.com, fbcdn.net, xn--bcher-kva.example\n"
                                   "host_regex = ^(www\\.)?fb[0-9]+\\.example$\n"
                                   "[platform youtube]\n"
                                   "category = video\n"
                                   "domains = youtube.com, youtu.be, 10.in-addr.arpa\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (rules == NULL) {
        struct diag d;
        memset(&d, 0, sizeof(d));
        rules = rules_load_string(catalog_text, "catalog.ini", &d);
        if (rules == NULL)
            abort();
        diag_free(&d);
    }
    const struct catalog *cat = rules->catalog;
    /* Every caller passes a C string and its strlen (the proxy's hosts
     * and SNI, explain's argument): a NUL ends the name here too. The IP
     * literal paths would take "::1\0junk" as "::1" of length 8. */
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul != NULL)
        size = (size_t)(nul - data);
    char *host = (char *)fuzz_memdup(data, size);
    char out[CATALOG_MAX_HOST + 1], again[CATALOG_MAX_HOST + 1];
    int is_ip = -1, is_ip2 = -1;
    int n = catalog_normalize(host, size, out, sizeof(out), &is_ip);
    FUZZ_CHECK(n >= -1 && n <= CATALOG_MAX_HOST);
    FUZZ_CHECK(is_ip == 0 || is_ip == 1);
    if (n > 0) { /* 0 ("empty") leaves out as it was: callers do not read it */
        FUZZ_CHECK(strlen(out) == (size_t)n);
        /* IP literals are kept as written (they are never classified). */
        for (int i = 0; i < n && !is_ip; i++)
            FUZZ_CHECK(!(out[i] >= 'A' && out[i] <= 'Z'));
        if (!is_ip)
            FUZZ_CHECK(out[n - 1] != '.');
        int m = catalog_normalize(out, (size_t)n, again, sizeof(again), &is_ip2);
        if (!is_ip) {
            /* Idempotent: a normalised name normalises to itself. */
            FUZZ_CHECK(m == n && memcmp(again, out, (size_t)n) == 0);
            FUZZ_CHECK(is_ip2 == 0);
        }
    }
    struct catalog_match m1, m2;
    catalog_classify(cat, host, size, &m1);
    FUZZ_CHECK(m1.platform >= -1 && m1.platform < (int)catalog_platform_count(cat));
    if (n > 0 && !is_ip) {
        catalog_lookup(cat, out, (size_t)n, &m2);
        FUZZ_CHECK(m1.platform == m2.platform);
    }
    /* A buffer too small for the result is refused, not overrun. */
    char small[8];
    int k = catalog_normalize(host, size, small, sizeof(small), &is_ip2);
    FUZZ_CHECK(k < (int)sizeof(small));
    free(host);
    return 0;
}
