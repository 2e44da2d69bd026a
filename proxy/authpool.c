#include "authpool.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "htpasswd.h"

#define CACHE_SLOTS 4096
#define CACHE_SECONDS 120

struct auth_job {
    struct auth_job *next;
    struct event *ev;
    char *user, *password, *hash;
    auth_done_fn done;
    void *arg;
    int cancelled; /* touched only in the base's thread */
    int ok;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct auth_job *head, *tail;
static pthread_t *threads;
static int nthreads, stopping;

struct cache_slot {
    unsigned char digest[32];
    time_t until;
};
static struct cache_slot cache[CACHE_SLOTS];

static void
digest_of(const char *user, const char *password, const char *hash, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, user, strlen(user) + 1) ||
        !EVP_DigestUpdate(ctx, password, strlen(password) + 1) ||
        !EVP_DigestUpdate(ctx, hash, strlen(hash)) || !EVP_DigestFinal_ex(ctx, out, &n))
        memset(out, 0, 32); /* an all-zero digest is never stored */
    EVP_MD_CTX_free(ctx);
}

static int
zero(const unsigned char *d)
{
    for (int i = 0; i < 32; i++)
        if (d[i])
            return 0;
    return 1;
}

int
authpool_cached(const char *user, const char *password, const char *hash)
{
    unsigned char d[32];
    digest_of(user, password, hash, d);
    if (zero(d))
        return -1;
    unsigned slot = ((unsigned)d[0] | (unsigned)d[1] << 8) % CACHE_SLOTS;
    pthread_mutex_lock(&mu);
    int hit = cache[slot].until > time(NULL) && CRYPTO_memcmp(cache[slot].digest, d, 32) == 0;
    pthread_mutex_unlock(&mu);
    return hit ? 1 : -1;
}

static void
cache_put(const char *user, const char *password, const char *hash)
{
    unsigned char d[32];
    digest_of(user, password, hash, d);
    if (zero(d))
        return;
    unsigned slot = ((unsigned)d[0] | (unsigned)d[1] << 8) % CACHE_SLOTS;
    pthread_mutex_lock(&mu);
    memcpy(cache[slot].digest, d, 32);
    cache[slot].until = time(NULL) + CACHE_SECONDS;
    pthread_mutex_unlock(&mu);
}

static void
job_free(struct auth_job *j)
{
    if (j->password)
        OPENSSL_cleanse(j->password, strlen(j->password));
    free(j->user);
    free(j->password);
    free(j->hash);
    if (j->ev)
        event_free(j->ev);
    free(j);
}

static void *
run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (head == NULL && !stopping)
            pthread_cond_wait(&cv, &mu);
        if (head == NULL && stopping)
            break;
        struct auth_job *j = head;
        head = j->next;
        if (head == NULL)
            tail = NULL;
        pthread_mutex_unlock(&mu);
        j->ok = htpasswd_check_hash(j->hash, j->password);
        if (j->ok)
            cache_put(j->user, j->password, j->hash);
        event_active(j->ev, EV_READ, 0); /* back to the worker's thread */
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct auth_job *j = arg;
    (void)fd;
    (void)what;
    if (!j->cancelled)
        j->done(j->arg, j->ok);
    job_free(j);
}

struct auth_job *
authpool_check(struct event_base *base, const char *user, const char *password, const char *hash,
               auth_done_fn done, void *arg)
{
    struct auth_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->user = strdup(user);
    j->password = strdup(password);
    j->hash = strdup(hash);
    j->ev = event_new(base, -1, 0, done_cb, j);
    j->done = done;
    j->arg = arg;
    if (j->user == NULL || j->password == NULL || j->hash == NULL || j->ev == NULL ||
        nthreads == 0) {
        job_free(j);
        return NULL;
    }
    pthread_mutex_lock(&mu);
    if (tail)
        tail->next = j;
    else
        head = j;
    tail = j;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return j;
}

void
authpool_cancel(struct auth_job *job)
{
    job->cancelled = 1;
}

int
authpool_start(int n)
{
    threads = calloc((size_t)n, sizeof(*threads));
    if (threads == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&threads[i], NULL, run, NULL) != 0)
            return -1;
        nthreads++;
    }
    return 0;
}

void
authpool_stop(void)
{
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    nthreads = 0;
}
