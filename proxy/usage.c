#include "usage.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USAGE_BUCKETS 4096
#define USAGE_MAX_KEY 600

enum { E_QUOTA = 'q', E_CONTINUE = 'w', E_USAGE = 'u', E_SYNC = 's' };

struct entry {
    struct entry *next;
    int32_t period;      /* quota: day or week number */
    int64_t last_minute; /* quota: last minute counted */
    unsigned minutes;    /* quota: minutes in period */
    unsigned shared;     /* quota: the last count read from the shared store, same period */
    int64_t until;       /* continue: expiry, Unix seconds */
    unsigned generation; /* sync: see usage_sync_set */
    int64_t written;     /* Unix seconds of the last write (see usage_prune) */
    struct usage_acc *acc; /* usage: owned */
    char key[];          /* kind, identity, 0x1f, name */
};

/* Usage of one identity on one platform. */
struct usage_acc {
    char *user, *client, *roles, *platform, *category; /* owned, from the latest activity */
    int32_t day;
    int64_t last_minute;
    unsigned today_min, int_min, quota_min;
    uint64_t int_requests, int_up, int_down;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static void (*continue_hook)(const char *identity, const char *platform, int64_t until);
static struct entry *table[USAGE_BUCKETS];

static size_t
make_key(char *buf, int kind, const char *identity, const char *name)
{
    int n = snprintf(buf, USAGE_MAX_KEY, "%c%s\x1f%s", kind, identity, name);
    return n < 0 ? 0 : (size_t)n < USAGE_MAX_KEY ? (size_t)n : USAGE_MAX_KEY - 1;
}

static unsigned
hash(const char *s)
{
    return hash_fnv1a_str(s) % USAGE_BUCKETS;
}

/* Caller holds mu. Creates when asked. */
static struct entry *
lookup(const char *key, int create)
{
    unsigned b = hash(key);
    for (struct entry *e = table[b]; e; e = e->next)
        if (strcmp(e->key, key) == 0) {
            if (create)
                e->written = (int64_t)time(NULL);
            return e;
        }
    if (!create)
        return NULL;
    size_t n = strlen(key) + 1;
    struct entry *e = calloc(1, sizeof(*e) + n);
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, n);
    e->last_minute = -1;
    e->written = (int64_t)time(NULL);
    e->next = table[b];
    table[b] = e;
    return e;
}

unsigned
usage_quota_mark(const char *identity, const char *rule, int32_t period, int64_t minute,
                 unsigned quota_min, int *crossed)
{
    *crossed = 0;
    char key[USAGE_MAX_KEY];
    make_key(key, E_QUOTA, identity, rule);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 1);
    unsigned used = 0;
    if (e) {
        if (e->period != period) { /* a new day or week: start over */
            e->period = period;
            e->minutes = 0;
            e->shared = 0;
            e->last_minute = -1;
        }
        if (minute > e->last_minute) {
            e->minutes++;
            e->last_minute = minute;
            *crossed = usage_threshold(e->minutes, quota_min);
        }
        used = e->minutes;
    }
    pthread_mutex_unlock(&mu);
    return used;
}

int
usage_threshold(unsigned minutes, unsigned quota_min)
{
    if (quota_min && minutes == quota_min)
        return 100;
    if (quota_min && minutes == (quota_min * 4 + 4) / 5 && minutes < quota_min)
        return 80; /* the first minute at or past 80% */
    return 0;
}

unsigned
usage_quota_sync(const char *identity, const char *rule, int32_t period, unsigned minutes,
                 int64_t minute)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_QUOTA, identity, rule);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 1);
    unsigned used = 0;
    if (e) {
        if (e->minutes == 0 && e->last_minute < 0)
            e->period = period; /* new */
        if (e->period < period) {
            e->period = period;
            e->minutes = minutes;
            e->shared = minutes;
            e->last_minute = -1;
        } else if (e->period == period) {
            if (minutes > e->minutes)
                e->minutes = minutes;
            if (minutes > e->shared)
                e->shared = minutes;
        }
        if (e->period == period && minute > e->last_minute)
            e->last_minute = minute;
        used = e->period == period ? e->minutes : 0;
    }
    pthread_mutex_unlock(&mu);
    return used;
}

unsigned
usage_quota_shared(const char *identity, const char *rule, int32_t period)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_QUOTA, identity, rule);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 0);
    unsigned n = e && e->period == period ? e->shared : 0;
    pthread_mutex_unlock(&mu);
    return n;
}

void
usage_continue_merge(const char *identity, const char *platform, int64_t until)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_CONTINUE, identity, platform);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 1);
    if (e && until > e->until)
        e->until = until;
    pthread_mutex_unlock(&mu);
}

void
usage_set_continue_hook(void (*fn)(const char *identity, const char *platform, int64_t until))
{
    continue_hook = fn;
}

void
usage_sync_set(const char *identity, unsigned generation)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_SYNC, identity, "");
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 1);
    if (e)
        e->generation = generation;
    pthread_mutex_unlock(&mu);
}

unsigned
usage_sync_get(const char *identity)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_SYNC, identity, "");
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 0);
    unsigned g = e ? e->generation : 0;
    pthread_mutex_unlock(&mu);
    return g;
}

unsigned
usage_quota_used(const char *identity, const char *rule, int32_t period)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_QUOTA, identity, rule);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 0);
    unsigned used = e && e->period == period ? e->minutes : 0;
    pthread_mutex_unlock(&mu);
    return used;
}

void
usage_continue_set(const char *identity, const char *platform, int64_t until)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_CONTINUE, identity, platform);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 1);
    if (e)
        e->until = until;
    pthread_mutex_unlock(&mu);
    if (continue_hook)
        continue_hook(identity, platform, until);
}

int
usage_continue_ok(const char *identity, const char *platform, int64_t now)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_CONTINUE, identity, platform);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 0);
    int ok = e && e->until > now;
    pthread_mutex_unlock(&mu);
    return ok;
}

static void
acc_free(struct usage_acc *a)
{
    if (a == NULL)
        return;
    free(a->user);
    free(a->client);
    free(a->roles);
    free(a->platform);
    free(a->category);
    free(a);
}

/* Replaces *dst with a copy of src when they differ. */
static void
set_str(char **dst, const char *src)
{
    if (src == NULL) {
        free(*dst);
        *dst = NULL;
        return;
    }
    if (*dst && strcmp(*dst, src) == 0)
        return;
    char *n = strdup(src);
    if (n == NULL)
        return; /* keep the old value */
    free(*dst);
    *dst = n;
}

int
usage_activity(const struct usage_row *who, int32_t day, int64_t minute, uint64_t requests,
               uint64_t up, uint64_t down)
{
    int fresh = 0;
    char key[USAGE_MAX_KEY];
    make_key(key, E_USAGE, who->user ? who->user : who->client, who->platform);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 1);
    if (e && e->acc == NULL)
        e->acc = calloc(1, sizeof(*e->acc));
    struct usage_acc *a = e ? e->acc : NULL;
    if (a) {
        if (a->day != day) {
            a->day = day;
            a->today_min = 0;
        }
        set_str(&a->user, who->user);
        set_str(&a->client, who->client);
        set_str(&a->roles, who->roles);
        set_str(&a->platform, who->platform);
        set_str(&a->category, who->category);
        if (who->quota_min)
            a->quota_min = who->quota_min;
        if (minute >= 0 && minute > a->last_minute) {
            a->last_minute = minute;
            a->today_min++;
            a->int_min++;
            fresh = 1;
        }
        a->int_requests += requests;
        a->int_up += up;
        a->int_down += down;
    }
    pthread_mutex_unlock(&mu);
    return fresh;
}

void
usage_activity_seen(const char *user, const char *client, const char *platform, int64_t minute)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_USAGE, user ? user : client, platform);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 0);
    struct usage_acc *a = e ? e->acc : NULL;
    if (a && a->last_minute == minute && a->int_min > 0)
        a->int_min--;
    pthread_mutex_unlock(&mu);
}

void
usage_interval_flush(int32_t today, void (*fn)(void *arg, const struct usage_row *row), void *arg)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < USAGE_BUCKETS; i++) {
        struct entry **pp = &table[i];
        while (*pp) {
            struct entry *e = *pp;
            struct usage_acc *a = e->acc;
            if (e->key[0] != E_USAGE || a == NULL) {
                pp = &e->next;
                continue;
            }
            if (a->int_min || a->int_requests) {
                struct usage_row r = {a->user,        a->client,      a->roles,
                                      a->platform,    a->category,    a->int_min,
                                      a->day == today ? a->today_min : 0,
                                      a->quota_min,   a->int_requests, a->int_up,
                                      a->int_down};
                fn(arg, &r);
                a->int_min = 0;
                a->int_requests = a->int_up = a->int_down = 0;
                pp = &e->next;
            } else if (a->day != today) {
                *pp = e->next; /* idle since an earlier day */
                acc_free(a);
                free(e);
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&mu);
}

size_t
usage_prune(int64_t now)
{
    size_t kept = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < USAGE_BUCKETS; i++) {
        struct entry **pp = &table[i];
        while (*pp) {
            struct entry *e = *pp;
            int gone = 0;
            switch (e->key[0]) {
            case E_CONTINUE:
                gone = e->until <= now;
                break;
            case E_QUOTA: /* a week at most: its period has ended */
                gone = e->written < now - USAGE_QUOTA_KEEP_SECONDS;
                break;
            case E_SYNC: /* asked again on the identity's next request */
                gone = e->written < now - USAGE_SYNC_KEEP_SECONDS;
                break;
            default: /* E_USAGE: usage_interval_flush */
                break;
            }
            if (gone) {
                *pp = e->next;
                acc_free(e->acc);
                free(e);
            } else {
                kept++;
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return kept;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t
usage_active_identities(int64_t since_minute)
{
    size_t n = 0, cap = 0, distinct = 0;
    char **ids = NULL;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < USAGE_BUCKETS; i++) {
        for (struct entry *e = table[i]; e; e = e->next) {
            if (e->key[0] != E_USAGE || e->acc == NULL || e->acc->last_minute < since_minute)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                char **nv = realloc(ids, ncap * sizeof(*nv));
                if (nv == NULL)
                    break;
                ids = nv;
                cap = ncap;
            }
            ids[n++] = e->key + 1; /* identity, 0x1f, platform: compare up to 0x1f */
        }
    }
    /* Sort then count runs of equal identities (the part before 0x1f). */
    if (n > 1) /* ids is NULL when n == 0, which qsort may not be given */
        qsort(ids, n, sizeof(*ids), cmp_str);
    for (size_t i = 0; i < n; i++) {
        size_t li = strcspn(ids[i], "\x1f");
        if (i == 0 || strcspn(ids[i - 1], "\x1f") != li || strncmp(ids[i - 1], ids[i], li) != 0)
            distinct++;
    }
    pthread_mutex_unlock(&mu);
    free(ids);
    return distinct;
}

void
usage_reset(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < USAGE_BUCKETS; i++) {
        struct entry *e = table[i], *next;
        for (; e; e = next) {
            next = e->next;
            acc_free(e->acc);
            free(e);
        }
        table[i] = NULL;
    }
    pthread_mutex_unlock(&mu);
}

/* State file: a header line, then one entry per line:
 *   q <period> <last_minute> <minutes> <identity>\x1f<rule>
 *   w <until> <identity>\x1f<platform>
 * Identities and names never hold newlines (log-safe names). */
#define STATE_HEADER "socialgate-state 1\n"

int
usage_save(const char *dir, int64_t now)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/state", dir);
    snprintf(tmp, sizeof(tmp), "%s/state.tmp", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return -1;
    }
    fputs(STATE_HEADER, f);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < USAGE_BUCKETS; i++) {
        for (struct entry *e = table[i]; e; e = e->next) {
            if (e->key[0] == E_USAGE || e->key[0] == E_SYNC)
                continue; /* usage figures restart with the process */
            if (e->key[0] == E_QUOTA)
                fprintf(f, "q %" PRId32 " %" PRId64 " %u %s\n", e->period, e->last_minute,
                        e->minutes, e->key + 1);
            else if (e->until > now)
                fprintf(f, "w %" PRId64 " %s\n", e->until, e->key + 1);
        }
    }
    pthread_mutex_unlock(&mu);
    int bad = fflush(f) != 0 || fsync(fd) != 0;
    int e = errno;
    if (fclose(f) != 0)
        bad = 1;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        errno = bad ? e : errno;
        return -1;
    }
    return 0;
}

static int
load_state(const char *dir, int64_t now, struct diag *d, int set_aside)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/state", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    char line[1024];
    int n = 0, lineno = 0, corrupt = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            corrupt = lineno;
            break;
        }
        line[--len] = '\0';
        if (lineno == 1) {
            if (strcmp(line, "socialgate-state 1") != 0) {
                corrupt = 1;
                break;
            }
            continue;
        }
        int32_t period;
        int64_t last, until;
        unsigned minutes;
        int off = 0;
        if (sscanf(line, "q %" SCNd32 " %" SCNd64 " %u %n", &period, &last, &minutes, &off) == 3 &&
            off > 0 && strchr(line + off, '\x1f')) {
            char key[USAGE_MAX_KEY];
            snprintf(key, sizeof(key), "%c%s", E_QUOTA, line + off);
            pthread_mutex_lock(&mu);
            struct entry *e = lookup(key, 1);
            if (e) {
                e->period = period;
                e->last_minute = last;
                e->minutes = minutes;
            }
            pthread_mutex_unlock(&mu);
            n++;
        } else if (sscanf(line, "w %" SCNd64 " %n", &until, &off) == 1 && off > 0 &&
                   strchr(line + off, '\x1f')) {
            if (until > now) {
                char key[USAGE_MAX_KEY];
                snprintf(key, sizeof(key), "%c%s", E_CONTINUE, line + off);
                pthread_mutex_lock(&mu);
                struct entry *e = lookup(key, 1);
                if (e)
                    e->until = until;
                pthread_mutex_unlock(&mu);
                n++;
            }
        } else {
            corrupt = lineno;
            break;
        }
    }
    fclose(f);
    if (corrupt) {
        usage_reset();
        if (!set_aside) {
            diag_warning(d, path, corrupt, "corrupt state file; counters read as zero");
            return 0;
        }
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.corrupt", path);
        rename(path, aside);
        diag_warning(d, path, corrupt, "corrupt state file set aside as %s; counters start over",
                     aside);
        return 0;
    }
    return n;
}

int
usage_load(const char *dir, int64_t now, struct diag *d)
{
    return load_state(dir, now, d, 1);
}

int
usage_peek(const char *dir, int64_t now, struct diag *d)
{
    return load_state(dir, now, d, 0);
}
