#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE_BUCKETS 4096
#define USAGE_MAX_KEY 600

enum { E_QUOTA = 'q', E_CONTINUE = 'w' };

struct entry {
    struct entry *next;
    int32_t period;      /* quota: day or week number */
    int64_t last_minute; /* quota: last minute counted */
    unsigned minutes;    /* quota: minutes in period */
    int64_t until;       /* continue: expiry, Unix seconds */
    char key[];          /* kind, identity, 0x1f, name */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
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
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % USAGE_BUCKETS;
}

/* Caller holds mu. Creates when asked. */
static struct entry *
lookup(const char *key, int create)
{
    unsigned b = hash(key);
    for (struct entry *e = table[b]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    if (!create)
        return NULL;
    size_t n = strlen(key) + 1;
    struct entry *e = calloc(1, sizeof(*e) + n);
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, n);
    e->last_minute = -1;
    e->next = table[b];
    table[b] = e;
    return e;
}

unsigned
usage_quota_mark(const char *identity, const char *rule, int32_t period, int64_t minute)
{
    char key[USAGE_MAX_KEY];
    make_key(key, E_QUOTA, identity, rule);
    pthread_mutex_lock(&mu);
    struct entry *e = lookup(key, 1);
    unsigned used = 0;
    if (e) {
        if (e->period != period) { /* a new day or week: start over */
            e->period = period;
            e->minutes = 0;
            e->last_minute = -1;
        }
        if (minute > e->last_minute) {
            e->minutes++;
            e->last_minute = minute;
        }
        used = e->minutes;
    }
    pthread_mutex_unlock(&mu);
    return used;
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

void
usage_reset(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < USAGE_BUCKETS; i++) {
        struct entry *e = table[i], *next;
        for (; e; e = next) {
            next = e->next;
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

int
usage_load(const char *dir, int64_t now, struct diag *d)
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
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.corrupt", path);
        rename(path, aside);
        diag_warning(d, path, corrupt, "corrupt state file set aside as %s; counters start over",
                     aside);
        usage_reset();
        return 0;
    }
    return n;
}
