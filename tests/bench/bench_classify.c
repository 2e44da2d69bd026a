/* Benchmark of the platform catalog: load time of a large catalog and
 * lookups per second on one thread. `make bench-classify` builds and runs
 * it from the repository root.
 *
 * The catalog holds the shipped rules (rules/ when present) plus 100,000
 * synthetic domains of 2 to 4 labels. The hosts are a fixed mix of
 * 1,000,000 names: 70% that match nothing (cdn-123.example-456.com and
 * the like, 2 to 6 labels), 30% subdomains of catalog domains (0 to 3 more
 * labels). catalog_classify (normalise, then match) and catalog_lookup
 * (match an already normalised name) are timed separately. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "diag.h"
#include "rules.h"

#define NDOMAINS 100000
#define NHOSTS 1000000
#define NPLATFORMS 200

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint32_t
rng(void)
{
    /* xorshift64*: a fixed sequence, so every run times the same hosts. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *const tlds[] = {"com", "net", "org", "io", "tv", "app", "co.uk", "com.br"};
static const char *const words[] = {"social", "video", "chat", "media", "static", "img",
                                    "live", "news", "shop", "feed", "cdn", "api"};
#define NTLDS (sizeof(tlds) / sizeof(tlds[0]))
#define NWORDS (sizeof(words) / sizeof(words[0]))

/* The i-th synthetic domain: 2 to 4 labels. */
static void
synth_domain(size_t i, char *buf, size_t size)
{
    const char *tld = tlds[i % NTLDS];
    switch (i % 3) {
    case 0:
        snprintf(buf, size, "%s%zu.%s", words[i % NWORDS], i, tld);
        break;
    case 1:
        snprintf(buf, size, "plat-%zu-%s.%s", i, words[(i / 3) % NWORDS], tld);
        break;
    default:
        snprintf(buf, size, "%s.brand%zu.%s", words[(i / 7) % NWORDS], i, tld);
        break;
    }
}

/* Popular hosts of the shipped rules, used only when they were loaded. */
static const char *const shipped_hosts[] = {
    "www.facebook.com", "static.xx.fbcdn.net", "www.instagram.com",
    "scontent.cdninstagram.com", "web.whatsapp.com", "pbs.twimg.com", "x.com",
    "www.youtube.com", "rr3---sn-abc.googlevideo.com", "www.tiktok.com", "www.linkedin.com",
    "www.reddit.com", "i.redd.it", "discord.com", "web.telegram.org",
};
#define NSHIPPED (sizeof(shipped_hosts) / sizeof(shipped_hosts[0]))

struct hosts {
    char *text;     /* all names, NUL-separated */
    size_t *off;    /* start of each name */
    uint16_t *len;
    size_t n;
};

static void
make_hosts(struct hosts *h, int with_shipped)
{
    size_t cap = (size_t)NHOSTS * 64, used = 0;
    h->text = malloc(cap);
    h->off = malloc(NHOSTS * sizeof(*h->off));
    h->len = malloc(NHOSTS * sizeof(*h->len));
    if (h->text == NULL || h->off == NULL || h->len == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < NHOSTS; i++) {
        char name[256], dom[128];
        int n;
        unsigned r = rng() % 100;
        if (r < 70) {
            /* Not in the catalog: 2 to 6 labels. */
            unsigned extra = rng() % 4;
            if (extra == 3) { /* a few two-label names too */
                n = snprintf(name, sizeof(name), "example-%u.%s", rng() % 100000,
                             tlds[rng() % 2]);
            } else {
                size_t at = 0;
                for (unsigned k = 0; k < extra; k++)
                    at += (size_t)snprintf(name + at, sizeof(name) - at, "%s%u.",
                                           words[rng() % NWORDS], rng() % 100);
                n = (int)at + snprintf(name + at, sizeof(name) - at, "cdn-%u.example-%u.%s",
                                       rng() % 1000, rng() % 100000, tlds[rng() % NTLDS]);
            }
        } else if (with_shipped && r < 72) {
            n = snprintf(name, sizeof(name), "%s", shipped_hosts[rng() % NSHIPPED]);
        } else {
            /* A catalog domain with 0 to 3 more labels. */
            synth_domain(rng() % NDOMAINS, dom, sizeof(dom));
            switch (rng() % 4) {
            case 0:
                n = snprintf(name, sizeof(name), "%s", dom);
                break;
            case 1:
                n = snprintf(name, sizeof(name), "www.%s", dom);
                break;
            case 2:
                n = snprintf(name, sizeof(name), "%s%u.%s", words[rng() % NWORDS], rng() % 50,
                             dom);
                break;
            default:
                n = snprintf(name, sizeof(name), "v%u.edge-%u.%s.%s", rng() % 10, rng() % 100,
                             words[rng() % NWORDS], dom);
                break;
            }
        }
        if (n <= 0 || (size_t)n >= sizeof(name) || used + (size_t)n + 1 > cap) {
            fprintf(stderr, "host buffer too small\n");
            exit(1);
        }
        memcpy(h->text + used, name, (size_t)n + 1);
        h->off[i] = used;
        h->len[i] = (uint16_t)n;
        used += (size_t)n + 1;
    }
    h->n = NHOSTS;
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "rules";
    struct diag d = {0};
    double t0 = now_ms();

    /* The shipped rules first (when there), then the synthetic domains in
     * the same catalog. */
    struct rules *r = rules_load(dir, &d);
    int with_shipped = r != NULL;
    if (r == NULL) {
        fprintf(stderr, "bench: no shipped rules from %s (%s); synthetic domains only\n", dir,
                d.n ? d.msgs[0] : "?");
        r = calloc(1, sizeof(*r));
        if (r == NULL || (r->catalog = catalog_new()) == NULL) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
    }
    diag_free(&d);
    double t1 = now_ms();
    struct catalog *c = r->catalog;
    size_t shipped_platforms = catalog_platform_count(c);
    size_t shipped_domains = catalog_domain_count(c);
    int plat[NPLATFORMS];
    for (int i = 0; i < NPLATFORMS; i++) {
        char name[32];
        const char *err;
        snprintf(name, sizeof(name), "synth%d", i);
        plat[i] = catalog_add_platform(c, name, "social", "bench.ini", i + 1, &err);
        if (plat[i] < 0) {
            fprintf(stderr, "platform %s: %s\n", name, err);
            return 1;
        }
    }
    for (size_t i = 0; i < NDOMAINS; i++) {
        char dom[128], err[512];
        synth_domain(i, dom, sizeof(dom));
        if (catalog_add_domain(c, plat[i % NPLATFORMS], dom, "bench.ini", (int)i + 1, err,
                               sizeof(err)) < 0) {
            fprintf(stderr, "%s: %s\n", dom, err);
            return 1;
        }
    }
    double t2 = now_ms();

    struct hosts h;
    make_hosts(&h, with_shipped);

    /* One untimed pass to warm the caches the same way for both runs. */
    size_t matched = 0, matched2 = 0;
    struct catalog_match m;
    for (size_t i = 0; i < h.n; i++) {
        catalog_lookup(c, h.text + h.off[i], h.len[i], &m);
        matched += m.platform >= 0;
    }

    matched = 0;
    double t3 = now_ms();
    for (size_t i = 0; i < h.n; i++) {
        catalog_classify(c, h.text + h.off[i], h.len[i], &m);
        matched += m.platform >= 0;
    }
    double t4 = now_ms();
    for (size_t i = 0; i < h.n; i++) {
        catalog_lookup(c, h.text + h.off[i], h.len[i], &m);
        matched2 += m.platform >= 0;
    }
    double t5 = now_ms();
    if (matched != matched2) {
        fprintf(stderr, "classify and lookup disagree: %zu vs %zu\n", matched, matched2);
        return 1;
    }

    double classify_s = (t4 - t3) / 1e3, lookup_s = (t5 - t4) / 1e3;
    printf("catalog: platforms=%zu domains=%zu (shipped: platforms=%zu domains=%zu)\n",
           catalog_platform_count(c), catalog_domain_count(c), shipped_platforms,
           shipped_domains);
    printf("load_ms=%.1f (shipped rules %.1f, %d synthetic domains %.1f)\n", t2 - t0, t1 - t0,
           NDOMAINS, t2 - t1);
    printf("hosts=%zu matched=%zu (%.1f%%)\n", h.n, matched, 100.0 * (double)matched / (double)h.n);
    printf("classify: lookups_per_s=%.0f ns_per_lookup=%.1f\n", (double)h.n / classify_s,
           classify_s * 1e9 / (double)h.n);
    printf("lookup:   lookups_per_s=%.0f ns_per_lookup=%.1f\n", (double)h.n / lookup_s,
           lookup_s * 1e9 / (double)h.n);

    free(h.text);
    free(h.off);
    free(h.len);
    rules_free(r);
    return 0;
}
