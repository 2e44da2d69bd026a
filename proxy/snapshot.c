#include "snapshot.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Readers take a reference under the lock so a swap can never free a
 * snapshot between loading the pointer and counting the reference. Only
 * workers refreshing their own reference after a reload take it: requests
 * and accepts read the worker's reference. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *current;
static uint64_t next_generation = 1;
static _Atomic uint64_t current_generation;

struct snapshot *
snapshot_new(struct config *cfg, struct rules *rules)
{
    struct snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    s->rules = rules;
    return s;
}

/* The addresses of this machine's interfaces, as host routes. */
static void
load_local_addrs(struct cidrset *set)
{
    struct ifaddrs *ifa;
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        const struct sockaddr *sa = i->ifa_addr;
        struct cidr c;
        memset(&c, 0, sizeof(c));
        if (sa == NULL)
            continue;
        if (sa->sa_family == AF_INET) {
            c.family = AF_INET;
            c.prefix = 32;
            memcpy(c.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        } else if (sa->sa_family == AF_INET6) {
            c.family = AF_INET6;
            c.prefix = 128;
            memcpy(c.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        } else {
            continue;
        }
        if (cidrset_add(set, &c) < 0)
            break;
    }
    freeifaddrs(ifa);
}

struct snapshot *
snapshot_load(const char *path, struct diag *d)
{
    struct config *cfg = config_load(path, d);
    if (cfg == NULL)
        return NULL;
    struct rules *rules = rules_load(cfg->rules_dir, d);
    if (rules == NULL) {
        config_free(cfg);
        return NULL;
    }
    struct htpasswd *users = NULL;
    struct htgroups *groups = NULL;
    if (cfg->auth_htpasswd && (users = htpasswd_load(cfg->auth_htpasswd, d)) == NULL)
        goto fail;
    if (cfg->auth_groups && (groups = htgroups_load(cfg->auth_groups, d)) == NULL)
        goto fail;
    struct snapshot *s = snapshot_new(cfg, rules);
    if (s == NULL) {
        diag_error(d, path, 0, "out of memory");
        goto fail;
    }
    s->users = users;
    s->groups = groups;
    load_local_addrs(&s->local_addrs);
    return s;
fail:
    htpasswd_free(users);
    htgroups_free(groups);
    rules_free(rules);
    config_free(cfg);
    return NULL;
}

struct snapshot *
snapshot_acquire(void)
{
    pthread_mutex_lock(&mu);
    struct snapshot *s = current;
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&mu);
    return s;
}

uint64_t
snapshot_current_generation(void)
{
    return atomic_load_explicit(&current_generation, memory_order_acquire);
}

void
snapshot_ref(struct snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void
snapshot_release(struct snapshot *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        config_free(s->cfg);
        rules_free(s->rules);
        htpasswd_free(s->users);
        htgroups_free(s->groups);
        cidrset_free(&s->local_addrs);
        free(s);
    }
}

void
snapshot_install(struct snapshot *s)
{
    pthread_mutex_lock(&mu);
    struct snapshot *old = current;
    s->generation = next_generation++;
    current = s;
    atomic_store(&current_generation, s->generation);
    pthread_mutex_unlock(&mu);
    snapshot_release(old);
}

void
snapshot_clear(void)
{
    pthread_mutex_lock(&mu);
    struct snapshot *old = current;
    current = NULL;
    pthread_mutex_unlock(&mu);
    snapshot_release(old);
}
