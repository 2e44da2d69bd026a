#include "stats.h"

#include "helper.h"
#include "tlsmint.h"
#include "util/hash.h"

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const actions[] = {"none", "allow", "deny", "warn", "monitor"};
#define NACTIONS 5

struct plat {
    _Atomic(char *) name; /* set once, then read without a lock */
    atomic_ulong req[NACTIONS], tun[NACTIONS];
    atomic_ulong up, down;
};

static struct plat plats[STATS_MAX_PLATFORMS];
static pthread_mutex_t claim_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong counters[STATS_NCOUNTERS];
static atomic_llong config_time;

static unsigned
hash(const char *s)
{
    return hash_fnv1a_str(s);
}

/* The slot of a platform name, claimed on first use; NULL when full. */
static struct plat *
slot(const char *name)
{
    unsigned h = hash(name);
    for (unsigned i = 0; i < STATS_MAX_PLATFORMS; i++) {
        struct plat *p = &plats[(h + i) % STATS_MAX_PLATFORMS];
        char *n = atomic_load(&p->name);
        if (n == NULL) {
            pthread_mutex_lock(&claim_mu);
            n = atomic_load(&p->name);
            if (n == NULL) {
                char *copy = strdup(name);
                if (copy)
                    atomic_store(&p->name, copy);
                n = copy;
            }
            pthread_mutex_unlock(&claim_mu);
            if (n == NULL)
                return NULL;
        }
        if (strcmp(n, name) == 0)
            return p;
    }
    return NULL;
}

static int
action_index(const char *a)
{
    for (int i = 1; a && i < NACTIONS; i++)
        if (strcmp(actions[i], a) == 0)
            return i;
    return 0;
}

void
stats_transaction(enum stats_kind kind, const char *platform, const char *action, uint64_t up,
                  uint64_t down)
{
    struct plat *p = slot(platform ? platform : "unclassified");
    if (p == NULL)
        return;
    int a = action_index(action);
    atomic_fetch_add_explicit(kind == STATS_TUNNEL ? &p->tun[a] : &p->req[a], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&p->up, up, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->down, down, memory_order_relaxed);
}

void
stats_count(enum stats_counter c)
{
    atomic_fetch_add_explicit(&counters[c], 1, memory_order_relaxed);
}

void
stats_set_config_time(int64_t t)
{
    atomic_store(&config_time, t);
}

struct out {
    char *buf;
    size_t size, len;
};

static void
emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void
emit(struct out *o, const char *fmt, ...)
{
    if (o->len >= o->size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n < o->size - o->len ? (size_t)n : o->size - o->len - 1;
}

static void
header(struct out *o, const char *name, const char *type, const char *help)
{
    emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

size_t
stats_format(char *buf, size_t size, long open_conns, size_t active_users, int draining)
{
    struct out o = {buf, size, 0};
    if (size)
        buf[0] = '\0';
    header(&o, "socialgate_up", "gauge", "1 while socialgate accepts connections, 0 while draining.");
    emit(&o, "socialgate_up %d\n", draining ? 0 : 1);
    header(&o, "socialgate_connections_open", "gauge", "Client connections open now.");
    emit(&o, "socialgate_connections_open %ld\n", open_conns);
    header(&o, "socialgate_active_users", "gauge",
           "Users or client addresses with platform traffic in the last 5 minutes.");
    emit(&o, "socialgate_active_users %zu\n", active_users);
    const char *kinds[2] = {"socialgate_requests_total", "socialgate_tunnels_total"};
    const char *helps[2] = {"Finished HTTP requests by policy action and platform.",
                            "Finished CONNECT tunnels by policy action and platform."};
    for (int k = 0; k < 2; k++) {
        header(&o, kinds[k], "counter", helps[k]);
        for (int i = 0; i < STATS_MAX_PLATFORMS; i++) {
            char *n = atomic_load(&plats[i].name);
            if (n == NULL)
                continue;
            for (int a = 0; a < NACTIONS; a++) {
                unsigned long v = atomic_load(k ? &plats[i].tun[a] : &plats[i].req[a]);
                if (v)
                    emit(&o, "%s{action=\"%s\",platform=\"%s\"} %lu\n", kinds[k], actions[a], n,
                         v);
            }
        }
    }
    header(&o, "socialgate_bytes_total", "counter",
           "Bytes from (up) and to (down) clients, by platform.");
    for (int i = 0; i < STATS_MAX_PLATFORMS; i++) {
        char *n = atomic_load(&plats[i].name);
        if (n == NULL)
            continue;
        emit(&o, "socialgate_bytes_total{direction=\"up\",platform=\"%s\"} %lu\n", n,
             atomic_load(&plats[i].up));
        emit(&o, "socialgate_bytes_total{direction=\"down\",platform=\"%s\"} %lu\n", n,
             atomic_load(&plats[i].down));
    }
    header(&o, "socialgate_quota_exhaustions_total", "counter",
           "Times an identity used up a rule's quota.");
    emit(&o, "socialgate_quota_exhaustions_total %lu\n", atomic_load(&counters[STATS_QUOTA_EXHAUSTED]));
    header(&o, "socialgate_config_reloads_total", "counter", "Configuration reloads by result.");
    emit(&o, "socialgate_config_reloads_total{result=\"ok\"} %lu\n",
         atomic_load(&counters[STATS_RELOAD_OK]));
    emit(&o, "socialgate_config_reloads_total{result=\"error\"} %lu\n",
         atomic_load(&counters[STATS_RELOAD_ERROR]));
    header(&o, "socialgate_config_timestamp_seconds", "gauge",
           "When the running configuration was loaded (Unix time).");
    emit(&o, "socialgate_config_timestamp_seconds %lld\n", (long long)atomic_load(&config_time));
    header(&o, "socialgate_dns_failures_total", "counter", "Upstream names that did not resolve.");
    emit(&o, "socialgate_dns_failures_total %lu\n", atomic_load(&counters[STATS_DNS_FAILURES]));
    header(&o, "socialgate_upstream_errors_total", "counter",
           "Upstream connections refused, timed out or broken.");
    emit(&o, "socialgate_upstream_errors_total %lu\n",
         atomic_load(&counters[STATS_UPSTREAM_ERRORS]));
    header(&o, "socialgate_auth_failures_total", "counter", "Wrong or malformed proxy credentials.");
    emit(&o, "socialgate_auth_failures_total %lu\n", atomic_load(&counters[STATS_AUTH_FAILURES]));
    header(&o, "socialgate_auth_busy_total", "counter",
           "Proxy credentials refused unchecked (503): too many password checks were waiting.");
    emit(&o, "socialgate_auth_busy_total %lu\n", atomic_load(&counters[STATS_AUTH_BUSY]));
    /* [auth] helpers, labelled helper="basic" / "negotiate" / "group":
     * only those configured (or used since start). */
    static const struct {
        const char *name, *help;
        size_t off;
    } hm[] = {
        {"socialgate_helper_requests_total", "Questions sent to an [auth] helper.",
         offsetof(struct helper_stats, requests)},
        {"socialgate_helper_cache_hits_total",
         "Helper answers taken from the cache (helper_ttl, 30 s for a no).",
         offsetof(struct helper_stats, cache_hits)},
        {"socialgate_helper_timeouts_total",
         "Helper questions not answered in time (503 auth-unavailable).",
         offsetof(struct helper_stats, timeouts)},
        {"socialgate_helper_restarts_total", "Helper processes restarted after they died or hung.",
         offsetof(struct helper_stats, restarts)},
        {"socialgate_helper_failures_total",
         "Helper questions that failed: no program, or died twice with the question.",
         offsetof(struct helper_stats, failures)},
    };
    struct helper_stats hs[HELPER_KINDS];
    int shown[HELPER_KINDS];
    for (int k = 0; k < HELPER_KINDS; k++) {
        helper_stats((enum helper_kind)k, &hs[k]);
        shown[k] = helper_configured((enum helper_kind)k) || hs[k].requests || hs[k].cache_hits;
    }
    for (size_t i = 0; i < sizeof(hm) / sizeof(hm[0]); i++) {
        header(&o, hm[i].name, "counter", hm[i].help);
        for (int k = 0; k < HELPER_KINDS; k++)
            if (shown[k])
                emit(&o, "%s{helper=\"%s\"} %llu\n", hm[i].name,
                     helper_kind_name((enum helper_kind)k),
                     (unsigned long long)*(const uint64_t *)((const char *)&hs[k] + hm[i].off));
    }
    uint64_t minted, hits;
    tlsmint_counters(&minted, &hits);
    header(&o, "socialgate_tls_certificates_minted_total", "counter",
           "Certificates minted from [tls] ca_cert for HTTPS pages.");
    emit(&o, "socialgate_tls_certificates_minted_total %llu\n", (unsigned long long)minted);
    header(&o, "socialgate_tls_certificate_cache_hits_total", "counter",
           "HTTPS pages served with a certificate minted before (cached per worker).");
    emit(&o, "socialgate_tls_certificate_cache_hits_total %llu\n", (unsigned long long)hits);
    return o.len;
}
