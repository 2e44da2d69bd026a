#include "snapshot.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog.h"

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

void
snapshot_file_sig(const char *path, struct file_sig *out)
{
    struct stat st;
    memset(out, 0, sizeof(*out));
    if (path == NULL || stat(path, &st) != 0)
        return;
    out->exists = 1;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    out->size = st.st_size;
    out->mtime = st.st_mtim;
}

int
snapshot_file_sig_equal(const struct file_sig *a, const struct file_sig *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Reads the [auth] files of cfg, each signed just before it is read (so a
 * change while or after it is read shows as a difference later). */
static int
load_auth(const struct config *cfg, struct htpasswd **users, struct htgroups **groups,
          struct file_sig *hsig, struct file_sig *gsig, struct diag *d)
{
    *users = NULL;
    *groups = NULL;
    snapshot_file_sig(cfg->auth_htpasswd, hsig);
    snapshot_file_sig(cfg->auth_groups, gsig);
    /* Both are read even when the first fails: every problem in one run. */
    int rc = 0;
    if (cfg->auth_htpasswd && (*users = htpasswd_load(cfg->auth_htpasswd, d)) == NULL)
        rc = -1;
    if (cfg->auth_groups && (*groups = htgroups_load(cfg->auth_groups, d)) == NULL)
        rc = -1;
    return rc;
}

struct snapshot *
snapshot_reload_auth(struct snapshot *cur, struct diag *d)
{
    struct htpasswd *users;
    struct htgroups *groups;
    struct file_sig hsig, gsig;
    if (load_auth(cur->cfg, &users, &groups, &hsig, &gsig, d) < 0) {
        htpasswd_free(users);
        htgroups_free(groups);
        return NULL;
    }
    struct snapshot *s = snapshot_new(cur->cfg, cur->rules);
    if (s == NULL) {
        diag_error(d, cur->cfg->auth_htpasswd ? cur->cfg->auth_htpasswd : cur->cfg->auth_groups, 0,
                   "out of memory");
        htpasswd_free(users);
        htgroups_free(groups);
        return NULL;
    }
    /* The owner of cfg and rules, never a chain of borrowers. */
    s->base = cur->base ? cur->base : cur;
    snapshot_ref(s->base);
    s->users = users;
    s->groups = groups;
    s->htpasswd_sig = hsig;
    s->groups_sig = gsig;
    load_local_addrs(&s->local_addrs);
    s->pages = cur->pages; /* owned by the base */
    memcpy(s->continue_key, cur->continue_key, sizeof(s->continue_key));
    s->has_continue_key = cur->has_continue_key;
    return s;
}

/* [pages] of cfg with the templates of its folder. NULL after errors in d. */
static struct pages *
load_pages(const struct config *cfg, struct diag *d)
{
    struct pages *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        diag_error(d, cfg->path, 0, "out of memory");
        return NULL;
    }
    p->show_rule = cfg->pages_show_rule;
    if (cfg->pages_contact && (p->contact = strdup(cfg->pages_contact)) == NULL) {
        diag_error(d, cfg->path, 0, "out of memory");
        free(p);
        return NULL;
    }
    if (cfg->pages_folder && pages_load(p, cfg->pages_folder, d) < 0) {
        pages_free(p);
        free(p);
        return NULL;
    }
    return p;
}

/* [tls] exempt names categories or platforms of the catalog. */
static int
check_exempt(const struct config *cfg, const struct rules *rules, struct diag *d)
{
    int rc = 0;
    const struct catalog *cat = rules->catalog;
    for (size_t i = 0; i < cfg->ntls_exempt; i++) {
        const char *name = cfg->tls_exempt[i];
        int known = catalog_find_platform(cat, name) >= 0;
        for (size_t p = 0; !known && p < catalog_platform_count(cat); p++)
            known = strcmp(catalog_platform(cat, (int)p)->category, name) == 0;
        if (!known) {
            diag_error(d, cfg->path, cfg->tls_exempt_line,
                       "exempt = %s: no such category or platform in the catalog", name);
            rc = -1;
        }
    }
    return rc;
}

struct snapshot *
snapshot_load(const char *path, struct diag *d)
{
    struct config *cfg = config_load(path, d);
    if (cfg == NULL)
        return NULL;
    /* Each file is read even when one before it failed: one check reports
     * every problem. The roles are checked against the [auth] files that
     * loaded. */
    struct htpasswd *users = NULL;
    struct htgroups *groups = NULL;
    struct file_sig hsig, gsig;
    int auth_ok = load_auth(cfg, &users, &groups, &hsig, &gsig, d) == 0;
    struct policy_idfiles ids = {cfg->path,
                                 cfg->auth_htpasswd,
                                 users,
                                 cfg->auth_groups,
                                 groups,
                                 cfg->auth_basic_helper != NULL ||
                                     cfg->auth_negotiate_helper != NULL,
                                 cfg->auth_group_helper != NULL};
    struct rules *rules = rules_load_ids(cfg->rules_dir, &ids, d);
    struct pages *pages = load_pages(cfg, d);
    if (rules == NULL || !auth_ok || pages == NULL)
        goto fail;
    htgroups_check_users(groups, users, cfg->auth_groups, d);
    if (check_exempt(cfg, rules, d) < 0)
        goto fail;
    struct snapshot *s = snapshot_new(cfg, rules);
    if (s == NULL) {
        diag_error(d, path, 0, "out of memory");
        goto fail;
    }
    s->users = users;
    s->groups = groups;
    s->pages = pages;
    s->htpasswd_sig = hsig;
    s->groups_sig = gsig;
    load_local_addrs(&s->local_addrs);
    return s;
fail:
    pages_free(pages);
    free(pages);
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
        if (s->base) {
            snapshot_release(s->base);
        } else {
            config_free(s->cfg);
            rules_free(s->rules);
            pages_free(s->pages);
            free(s->pages);
        }
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
