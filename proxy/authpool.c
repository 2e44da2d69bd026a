#include "authpool.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "htpasswd.h"
#include "stats.h"

#define CACHE_SLOTS 4096
#define CACHE_SECONDS 120

/* Where a job is; changes under `mu`. Who frees it: a queued job,
 * authpool_cancel or authpool_stop; a running one, no one (cancel only
 * flags it); a finished one, done_cb or authpool_stop. */
enum job_state {
    JOB_QUEUED,   /* in `queue`: no thread has taken it */
    JOB_RUNNING,  /* a pool thread is checking it; in no list */
    JOB_FINISHED, /* in `finished`: its event is (about to be) active */
};

struct auth_job {
    TAILQ_ENTRY(auth_job) link; /* in `queue` or `finished`, under mu */
    enum job_state state;       /* under mu */
    struct event *ev;           /* in the caller's base; runs done_cb */
    char *user, *password, *hash;
    auth_done_fn done;
    void *arg;
    int cancelled; /* touched only in the base's thread */
    int ok;        /* set under mu when the job finishes */
};

TAILQ_HEAD(job_list, auth_job);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
/* Checks waiting for a thread (at most AUTHPOOL_MAX_QUEUE), and checks
 * done whose done_cb has not run yet: authpool_stop frees what is left in
 * both once the workers' loops have ended. */
static struct job_list queue = TAILQ_HEAD_INITIALIZER(queue);
static struct job_list finished = TAILQ_HEAD_INITIALIZER(finished);
static size_t nqueued;
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
        while (TAILQ_EMPTY(&queue) && !stopping)
            pthread_cond_wait(&cv, &mu);
        if (stopping)
            break; /* what is still queued is authpool_stop's to drop */
        struct auth_job *j = TAILQ_FIRST(&queue);
        TAILQ_REMOVE(&queue, j, link);
        nqueued--;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&mu);
        /* Running, the job is freed by no one: cancel only flags it, and
         * authpool_stop joins this thread first. */
        int ok = htpasswd_check_hash(j->hash, j->password);
        if (ok)
            cache_put(j->user, j->password, j->hash);
        pthread_mutex_lock(&mu);
        j->ok = ok;
        j->state = JOB_FINISHED;
        TAILQ_INSERT_TAIL(&finished, j, link);
        pthread_mutex_unlock(&mu);
        /* Outside mu: event_active takes the base's lock. The base lives
         * until authpool_stop has joined this thread. */
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
    pthread_mutex_lock(&mu);
    TAILQ_REMOVE(&finished, j, link);
    pthread_mutex_unlock(&mu);
    if (!j->cancelled)
        j->done(j->arg, j->ok);
    job_free(j);
}

struct auth_job *
authpool_check(struct event_base *base, const char *user, const char *password, const char *hash,
               auth_done_fn done, void *arg)
{
    if (nthreads == 0) {
        errno = ESRCH; /* no pool: the caller checks inline */
        return NULL;
    }
    struct auth_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    j->user = strdup(user);
    j->password = strdup(password);
    j->hash = strdup(hash);
    j->ev = event_new(base, -1, 0, done_cb, j);
    j->done = done;
    j->arg = arg;
    if (j->user == NULL || j->password == NULL || j->hash == NULL || j->ev == NULL) {
        job_free(j);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&mu);
    if (nqueued >= AUTHPOOL_MAX_QUEUE) {
        pthread_mutex_unlock(&mu);
        job_free(j);
        stats_count(STATS_AUTH_BUSY);
        errno = EAGAIN;
        return NULL;
    }
    j->state = JOB_QUEUED;
    TAILQ_INSERT_TAIL(&queue, j, link);
    nqueued++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return j;
}

void
authpool_cancel(struct auth_job *job)
{
    pthread_mutex_lock(&mu);
    if (job->state == JOB_QUEUED) {
        /* No thread has it, and none can take it now: drop it here. */
        TAILQ_REMOVE(&queue, job, link);
        nqueued--;
        pthread_mutex_unlock(&mu);
        job_free(job);
        return;
    }
    pthread_mutex_unlock(&mu);
    job->cancelled = 1; /* done_cb frees it */
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
    struct job_list dropped = TAILQ_HEAD_INITIALIZER(dropped);
    pthread_mutex_lock(&mu);
    stopping = 1;
    TAILQ_CONCAT(&dropped, &queue, link);
    nqueued = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    /* Each thread ends after the check it is running, if any. */
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    nthreads = 0;
    /* No thread left, no loop running: the jobs are this thread's. The
     * finished ones' events may be active in their base; event_free takes
     * them out. */
    struct auth_job *j;
    while ((j = TAILQ_FIRST(&dropped)) != NULL) {
        TAILQ_REMOVE(&dropped, j, link);
        job_free(j);
    }
    while ((j = TAILQ_FIRST(&finished)) != NULL) {
        TAILQ_REMOVE(&finished, j, link);
        job_free(j);
    }
}
