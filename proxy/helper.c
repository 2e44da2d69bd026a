/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34) */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"

extern char **environ;

#define CACHE_SLOTS 4096
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define YOUNG_SECONDS 5 /* a child dying younger than this backs off more */
#define STOP_GRACE_MS 1000

/* Where a request is. Changes under mu. */
enum req_state {
    REQ_INBOX,    /* submitted, not yet seen by the helper thread */
    REQ_HELPER,   /* the helper thread's: in a pool queue or at a child */
    REQ_FINISHED, /* in `finished`: its event is (about to be) active */
};

struct child;
struct pool;

struct helper_req {
    TAILQ_ENTRY(helper_req) link; /* inbox, finished (mu) / queue, inflight (helper thread) */
    enum req_state state;         /* under mu */
    int cancelled;                /* under mu */
    struct event *ev;             /* in the caller's base: done_cb */
    enum helper_kind kind;
    char *line;
    unsigned flags;
    struct helper_pin *pin;
    helper_done_fn done;
    void *arg;
    /* helper thread only */
    struct event *timer;
    struct child *child;
    struct pool *queued; /* the pool whose queue holds it, or NULL */
    unsigned long chan;
    int tries;
    struct helper_answer ans;
};
TAILQ_HEAD(req_list, helper_req);

struct helper_pin {
    TAILQ_ENTRY(helper_pin) link;      /* all_pins: helper thread (and stop) */
    TAILQ_ENTRY(helper_pin) free_link; /* pin_frees, under mu */
    enum helper_kind kind;
    /* helper thread only */
    struct child *child;
    unsigned gen;
    int bound, lost, freed, linked;
    int nreqs;
    time_t last_used;
};
TAILQ_HEAD(pin_list, helper_pin);

struct child {
    struct pool *pool;
    pid_t pid; /* 0: not running */
    unsigned gen;
    struct bufferevent *in, *out; /* its stdin (we write), its stdout (we read) */
    struct req_list inflight;
    int ninflight;
    unsigned long next_chan;
    struct helper_pin *pin;
    struct event *restart;
    int backoff_ms;
    time_t started;
    int stopping; /* retired: stop once idle */
};

struct pool {
    TAILQ_ENTRY(pool) link; /* retired pools */
    enum helper_kind kind;
    char *cmdline;
    char **argv;
    int concurrency; /* 0: one request at a time */
    int nchildren;
    int ttl;
    uint64_t timeout_ms;
    struct child *children;
    struct req_list queue;
    int spawn_failed; /* the last start failed: queued requests fail at once */
};
TAILQ_HEAD(pool_list, pool);

/* mu guards the hand-over lists, the request states, the cache, stats and
 * the configured flags; everything else belongs to the helper thread. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct req_list inbox = TAILQ_HEAD_INITIALIZER(inbox);
static struct req_list finished = TAILQ_HEAD_INITIALIZER(finished);
static struct pin_list pin_frees = TAILQ_HEAD_INITIALIZER(pin_frees);
static int outstanding[HELPER_KINDS];
static int configured[HELPER_KINDS];
static int ttl_of[HELPER_KINDS];
static struct helper_stats stats[HELPER_KINDS];
/* A configuration handed to the helper thread, and whether it is applied. */
static struct helper_spec *pending;
static int stop_asked;

static pthread_t thread;
static int running;
static struct event_base *hbase;
static struct event *wake, *tick;
static struct pool *pools[HELPER_KINDS];
static struct pool_list retired = TAILQ_HEAD_INITIALIZER(retired);
static struct pin_list all_pins = TAILQ_HEAD_INITIALIZER(all_pins);

struct cache_slot {
    unsigned char digest[32];
    time_t until;
    char *reply; /* the reply line without channel ID */
};
static struct cache_slot cache[HELPER_KINDS][CACHE_SLOTS];

static void pump(struct pool *p);
static void child_start(struct child *c);

/* --- small things ------------------------------------------------------- */

const char *
helper_kind_name(enum helper_kind kind)
{
    static const char *const names[] = {"basic", "negotiate", "group"};
    return (unsigned)kind < HELPER_KINDS ? names[kind] : "?";
}

int
helper_verdict(const struct helper_answer *a)
{
    if (a->result != HELPER_ANSWER)
        return -1;
    return a->reply.code == HELPER_CODE_OK ? 1 : a->reply.code == HELPER_CODE_ERR ? 0 : -1;
}

void
helper_answer_free(struct helper_answer *a)
{
    helperproto_reply_free(&a->reply);
}

void
helper_argv_free(char **argv)
{
    helperproto_argv_free(argv);
}

char **
helper_argv(const char *cmdline, int *concurrency, const char **err)
{
    return helperproto_argv(cmdline, concurrency, err);
}

static void
digest_of(enum helper_kind kind, const char *line, unsigned char out[32])
{
    unsigned char k = (unsigned char)kind;
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, &k, 1) || !EVP_DigestUpdate(ctx, line, strlen(line)) ||
        !EVP_DigestFinal_ex(ctx, out, &n))
        memset(out, 0, 32);
    EVP_MD_CTX_free(ctx);
}

static unsigned
slot_of(const unsigned char *d)
{
    return ((unsigned)d[0] | (unsigned)d[1] << 8) % CACHE_SLOTS;
}

int
helper_cached(enum helper_kind kind, const char *line, struct helper_answer *out)
{
    unsigned char d[32];
    digest_of(kind, line, d);
    struct cache_slot *s = &cache[kind][slot_of(d)];
    char *copy = NULL;
    pthread_mutex_lock(&mu);
    if (s->reply && s->until > time(NULL) && CRYPTO_memcmp(s->digest, d, 32) == 0) {
        copy = strdup(s->reply);
        if (copy)
            stats[kind].cache_hits++;
    }
    pthread_mutex_unlock(&mu);
    if (copy == NULL)
        return 0;
    memset(out, 0, sizeof(*out));
    int rc = helperproto_parse_reply(copy, strlen(copy), kind == HELPER_NEGOTIATE, &out->reply);
    free(copy);
    if (rc < 0)
        return 0;
    out->result = HELPER_ANSWER;
    out->cached = 1;
    return 1;
}

static void
cache_put(enum helper_kind kind, const char *line, const char *reply, size_t len, int ok)
{
    unsigned char d[32];
    digest_of(kind, line, d);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return;
    memcpy(copy, reply, len);
    copy[len] = '\0';
    struct cache_slot *s = &cache[kind][slot_of(d)];
    pthread_mutex_lock(&mu);
    free(s->reply);
    s->reply = copy;
    memcpy(s->digest, d, 32);
    int neg = ttl_of[kind] < HELPER_NEGATIVE_TTL ? ttl_of[kind] : HELPER_NEGATIVE_TTL;
    s->until = time(NULL) + (ok ? ttl_of[kind] : neg);
    pthread_mutex_unlock(&mu);
}

static void
cache_clear(enum helper_kind kind)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(cache[kind][i].reply);
        cache[kind][i].reply = NULL;
        cache[kind][i].until = 0;
    }
}

/* --- requests ------------------------------------------------------------- */

static void
req_free(struct helper_req *r)
{
    if (r->line) {
        OPENSSL_cleanse(r->line, strlen(r->line));
        free(r->line);
    }
    if (r->ev)
        event_free(r->ev);
    if (r->timer)
        event_free(r->timer);
    helperproto_reply_free(&r->ans.reply);
    free(r);
}

static void pin_done_with(struct helper_pin *pin);

/* Helper thread: the request leaves the pool; its done_cb runs in the
 * caller's thread. */
static void
finish(struct helper_req *r, enum helper_result result)
{
    r->ans.result = result;
    if (r->timer)
        evtimer_del(r->timer);
    if (r->pin) {
        r->pin->last_used = time(NULL);
        pin_done_with(r->pin);
        r->pin = NULL;
    }
    pthread_mutex_lock(&mu);
    if (r->cancelled)
        ; /* nobody asks any more: not counted */
    else if (result == HELPER_TIMEOUT)
        stats[r->kind].timeouts++;
    else if (result == HELPER_FAILED)
        stats[r->kind].failures++;
    outstanding[r->kind]--;
    r->state = REQ_FINISHED;
    TAILQ_INSERT_TAIL(&finished, r, link);
    pthread_mutex_unlock(&mu);
    event_active(r->ev, EV_READ, 0);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct helper_req *r = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&mu);
    TAILQ_REMOVE(&finished, r, link);
    int cancelled = r->cancelled;
    pthread_mutex_unlock(&mu);
    if (!cancelled)
        r->done(r->arg, &r->ans);
    req_free(r);
}

struct helper_req *
helper_submit(struct event_base *base, enum helper_kind kind, const char *line, unsigned flags,
              struct helper_pin *pin, helper_done_fn done, void *arg)
{
    if ((unsigned)kind >= HELPER_KINDS || !running) {
        errno = ESRCH;
        return NULL;
    }
    struct helper_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    r->kind = kind;
    r->line = strdup(line);
    r->ev = event_new(base, -1, 0, done_cb, r);
    r->flags = kind == HELPER_NEGOTIATE ? flags & ~HELPER_F_CACHE : flags;
    r->pin = pin;
    r->done = done;
    r->arg = arg;
    if (r->line == NULL || r->ev == NULL) {
        req_free(r);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&mu);
    if (!configured[kind]) {
        pthread_mutex_unlock(&mu);
        req_free(r);
        errno = ESRCH;
        return NULL;
    }
    if (outstanding[kind] >= HELPER_MAX_QUEUE) {
        pthread_mutex_unlock(&mu);
        req_free(r);
        errno = EAGAIN;
        return NULL;
    }
    outstanding[kind]++;
    stats[kind].requests++;
    r->state = REQ_INBOX;
    TAILQ_INSERT_TAIL(&inbox, r, link);
    pthread_mutex_unlock(&mu);
    event_active(wake, EV_READ, 0);
    return r;
}

void
helper_cancel(struct helper_req *r)
{
    pthread_mutex_lock(&mu);
    if (r->state == REQ_INBOX) {
        TAILQ_REMOVE(&inbox, r, link);
        outstanding[r->kind]--;
        pthread_mutex_unlock(&mu);
        req_free(r);
        return;
    }
    r->cancelled = 1; /* done_cb frees it; a queued one is dropped unsent */
    pthread_mutex_unlock(&mu);
}

static int
is_cancelled(struct helper_req *r)
{
    pthread_mutex_lock(&mu);
    int c = r->cancelled;
    pthread_mutex_unlock(&mu);
    return c;
}

/* --- pins ----------------------------------------------------------------- */

struct helper_pin *
helper_pin_new(enum helper_kind kind)
{
    if ((unsigned)kind >= HELPER_KINDS || !running)
        return NULL;
    struct helper_pin *p = calloc(1, sizeof(*p));
    if (p)
        p->kind = kind;
    return p;
}

void
helper_pin_free(struct helper_pin *pin)
{
    if (pin == NULL)
        return;
    pthread_mutex_lock(&mu);
    TAILQ_INSERT_TAIL(&pin_frees, pin, free_link);
    pthread_mutex_unlock(&mu);
    event_active(wake, EV_READ, 0);
}

static void
pin_unbind(struct helper_pin *pin)
{
    if (pin->bound && pin->child && pin->child->pin == pin)
        pin->child->pin = NULL;
    pin->bound = 0;
    pin->child = NULL;
}

static void
pin_release(struct helper_pin *pin)
{
    pin_unbind(pin);
    if (pin->linked)
        TAILQ_REMOVE(&all_pins, pin, link);
    free(pin);
}

static void
pin_done_with(struct helper_pin *pin)
{
    if (--pin->nreqs == 0 && pin->freed)
        pin_release(pin);
}

/* --- children ------------------------------------------------------------- */

static void
child_close_pipes(struct child *c)
{
    if (c->in)
        bufferevent_free(c->in);
    if (c->out)
        bufferevent_free(c->out);
    c->in = c->out = NULL;
}

/* Reaps pid, waiting at most STOP_GRACE_MS after SIGTERM before SIGKILL. */
static void
reap(pid_t pid, int term)
{
    if (pid <= 0)
        return;
    if (waitpid(pid, NULL, WNOHANG) == pid)
        return;
    if (term)
        kill(pid, SIGTERM);
    for (int waited = 0; waited < STOP_GRACE_MS; waited += 10) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* The child is gone or must go: its requests are retried once elsewhere
 * (pinned ones are lost), it is restarted after a backoff unless retired. */
static void
child_down(struct child *c, const char *why)
{
    struct pool *p = c->pool;
    pid_t pid = c->pid;
    child_close_pipes(c); /* EOF on its stdin: a helper ends there */
    c->pid = 0;
    c->gen++;
    reap(pid, 1);
    if (c->pin) {
        c->pin->lost = 1;
        pin_unbind(c->pin);
    }
    struct helper_req *r;
    while ((r = TAILQ_FIRST(&c->inflight)) != NULL) {
        TAILQ_REMOVE(&c->inflight, r, link);
        c->ninflight--;
        r->child = NULL;
        if (r->pin)
            finish(r, HELPER_LOST);
        else if (++r->tries >= 2)
            finish(r, HELPER_FAILED);
        else {
            TAILQ_INSERT_HEAD(&p->queue, r, link);
            r->queued = p;
        }
    }
    c->ninflight = 0;
    if (c->stopping)
        return;
    if (why)
        log_warnx("%s helper %ld: %s; restarting", helper_kind_name(p->kind), (long)pid, why);
    pthread_mutex_lock(&mu);
    stats[p->kind].restarts++;
    pthread_mutex_unlock(&mu);
    if (time(NULL) - c->started < YOUNG_SECONDS)
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    else
        c->backoff_ms = BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->restart, &tv);
    pump(p);
}

static struct helper_req *
find_chan(struct child *c, unsigned long chan)
{
    struct helper_req *r;
    TAILQ_FOREACH(r, &c->inflight, link)
    if (r->chan == chan)
        return r;
    return NULL;
}

static void
got_line(struct child *c, const char *line, size_t len)
{
    struct pool *p = c->pool;
    struct helper_req *r;
    const char *rest = line;
    size_t rest_len = len;
    if (p->concurrency) {
        unsigned long chan;
        if (helperproto_split_channel(line, len, &chan, &rest, &rest_len) < 0 ||
            (r = find_chan(c, chan)) == NULL) {
            child_down(c, "answered with an unknown channel");
            return;
        }
    } else {
        r = TAILQ_FIRST(&c->inflight);
        if (r == NULL) {
            child_down(c, "answered without a question");
            return;
        }
    }
    TAILQ_REMOVE(&c->inflight, r, link);
    c->ninflight--;
    r->child = NULL;
    if (helperproto_parse_reply(rest, rest_len, p->kind == HELPER_NEGOTIATE, &r->ans.reply) < 0)
        r->ans.reply.code = HELPER_CODE_GARBAGE;
    if ((r->flags & HELPER_F_CACHE) && !r->ans.reply.uncertain &&
        (r->ans.reply.code == HELPER_CODE_OK || r->ans.reply.code == HELPER_CODE_ERR))
        cache_put(p->kind, r->line, rest, rest_len, r->ans.reply.code == HELPER_CODE_OK);
    if (r->pin && r->ans.reply.code != HELPER_CODE_TT)
        pin_unbind(r->pin); /* the exchange is over: the child serves others */
    finish(r, HELPER_ANSWER);
    if (c->stopping && c->ninflight == 0) {
        child_down(c, NULL);
        return;
    }
    pump(p);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    struct child *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned gen = c->gen;
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
        if (line == NULL)
            break;
        got_line(c, line, n);
        free(line);
        if (c->gen != gen || c->out == NULL)
            return; /* the child went down while answering */
    }
    if (evbuffer_get_length(in) > HELPER_MAX_LINE)
        child_down(c, "answered a line too long");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct child *c = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        child_down(c, c->stopping ? NULL : "exited");
}

static int
set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static pid_t
spawn(char **argv, int *to, int *from)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    pid_t pid = -1;
    if (pipe(in) < 0 || pipe(out) < 0)
        goto fail;
    for (int i = 0; i < 2; i++) {
        fcntl(in[i], F_SETFD, FD_CLOEXEC);
        fcntl(out[i], F_SETFD, FD_CLOEXEC);
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    /* Nothing else of the daemon's (a client socket the helper kept open
     * would outlive its connection), whether it is close-on-exec or not;
     * stderr stays: helpers log there, as under Squid. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGHUP);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGCHLD);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        errno = rc;
        pid = -1;
        goto fail;
    }
    close(in[0]);
    close(out[1]);
    *to = in[1];
    *from = out[0];
    return pid;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    return -1;
}

static void
child_start(struct child *c)
{
    struct pool *p = c->pool;
    int to = -1, from = -1;
    c->started = time(NULL);
    pid_t pid = spawn(p->argv, &to, &from);
    if (pid < 0) {
        if (!p->spawn_failed)
            log_warn("%s helper: cannot start %s", helper_kind_name(p->kind), p->argv[0]);
        p->spawn_failed = 1;
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (c->backoff_ms > BACKOFF_MAX_MS)
            c->backoff_ms = BACKOFF_MAX_MS;
        struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
        evtimer_add(c->restart, &tv);
        pump(p);
        return;
    }
    p->spawn_failed = 0;
    set_nonblock(to);
    set_nonblock(from);
    c->pid = pid;
    c->in = bufferevent_socket_new(hbase, to, BEV_OPT_CLOSE_ON_FREE);
    c->out = bufferevent_socket_new(hbase, from, BEV_OPT_CLOSE_ON_FREE);
    if (c->in == NULL || c->out == NULL) {
        if (c->in == NULL)
            close(to);
        if (c->out == NULL)
            close(from);
        child_down(c, "out of memory");
        return;
    }
    bufferevent_setcb(c->in, NULL, NULL, event_cb, c);
    bufferevent_setcb(c->out, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->in, EV_WRITE);
    bufferevent_enable(c->out, EV_READ);
    pump(p);
}

static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    child_start(arg);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct helper_req *r = arg;
    (void)fd;
    (void)what;
    struct child *c = r->child;
    if (c == NULL) {
        /* still queued: no child took it in time */
        if (r->queued) {
            TAILQ_REMOVE(&r->queued->queue, r, link);
            r->queued = NULL;
        }
        finish(r, HELPER_TIMEOUT);
        return;
    }
    /* At a child that did not answer in time: it is restarted (a helper
     * stuck on one question is likely stuck on the next); the others it
     * held are retried. */
    TAILQ_REMOVE(&c->inflight, r, link);
    c->ninflight--;
    r->child = NULL;
    finish(r, HELPER_TIMEOUT);
    child_down(c, "did not answer in time");
}

/* A free child for r, or NULL. */
static struct child *
pick(struct pool *p, struct helper_req *r)
{
    int max = p->concurrency ? p->concurrency : 1;
    if (r->pin && r->pin->bound) {
        struct child *c = r->pin->child;
        return c->pid > 0 && c->ninflight < max ? c : NULL;
    }
    struct child *best = NULL;
    for (int i = 0; i < p->nchildren; i++) {
        struct child *c = &p->children[i];
        if (c->pid <= 0 || c->stopping || c->pin || c->ninflight >= max)
            continue;
        if (best == NULL || c->ninflight < best->ninflight)
            best = c;
    }
    return best;
}

static void
send_to(struct child *c, struct helper_req *r)
{
    struct pool *p = c->pool;
    r->child = c;
    r->chan = c->next_chan++ % 100000000UL;
    TAILQ_INSERT_TAIL(&c->inflight, r, link);
    c->ninflight++;
    if (r->pin && !r->pin->bound) {
        r->pin->bound = 1;
        r->pin->child = c;
        r->pin->gen = c->gen;
        c->pin = r->pin;
    }
    if (p->concurrency)
        evbuffer_add_printf(bufferevent_get_output(c->in), "%lu %s", r->chan, r->line);
    else
        bufferevent_write(c->in, r->line, strlen(r->line));
}

static void
pump(struct pool *p)
{
    struct helper_req *r, *next;
    int any_alive = 0;
    for (int i = 0; i < p->nchildren; i++)
        if (p->children[i].pid > 0)
            any_alive = 1;
    for (r = TAILQ_FIRST(&p->queue); r != NULL; r = next) {
        next = TAILQ_NEXT(r, link);
        if (is_cancelled(r)) {
            TAILQ_REMOVE(&p->queue, r, link);
            r->queued = NULL;
            finish(r, HELPER_FAILED);
            continue;
        }
        if (r->pin && (r->pin->lost || (r->pin->bound && (r->pin->child->gen != r->pin->gen ||
                                                          r->pin->child->pool != p)))) {
            TAILQ_REMOVE(&p->queue, r, link);
            r->queued = NULL;
            finish(r, HELPER_LOST);
            continue;
        }
        if (!any_alive && p->spawn_failed) {
            TAILQ_REMOVE(&p->queue, r, link);
            r->queued = NULL;
            finish(r, HELPER_FAILED);
            continue;
        }
        struct child *c = pick(p, r);
        if (c == NULL)
            continue;
        TAILQ_REMOVE(&p->queue, r, link);
        r->queued = NULL;
        send_to(c, r);
    }
}

/* --- pools ---------------------------------------------------------------- */

static struct pool *
pool_new(enum helper_kind kind, const struct helper_spec *s, char *err, size_t errsize)
{
    struct pool *p = calloc(1, sizeof(*p));
    const char *why;
    if (p == NULL)
        return NULL;
    TAILQ_INIT(&p->queue);
    p->kind = kind;
    p->cmdline = strdup(s->cmdline);
    p->argv = helper_argv(s->cmdline, &p->concurrency, &why);
    p->nchildren = s->children > 0 ? s->children : 1;
    p->ttl = s->ttl;
    p->timeout_ms = s->timeout_ms;
    p->children = calloc((size_t)p->nchildren, sizeof(*p->children));
    if (p->cmdline == NULL || p->argv == NULL || p->children == NULL) {
        if (p->argv == NULL && err)
            snprintf(err, errsize, "%s helper: %s", helper_kind_name(kind), why);
        free(p->cmdline);
        helper_argv_free(p->argv);
        free(p->children);
        free(p);
        return NULL;
    }
    for (int i = 0; i < p->nchildren; i++) {
        struct child *c = &p->children[i];
        c->pool = p;
        TAILQ_INIT(&c->inflight);
        c->restart = evtimer_new(hbase, restart_cb, c);
    }
    return p;
}

static void
pool_free(struct pool *p)
{
    for (int i = 0; i < p->nchildren; i++) {
        struct child *c = &p->children[i];
        c->stopping = 1;
        if (c->pid > 0)
            child_down(c, NULL);
        if (c->restart)
            event_free(c->restart);
    }
    free(p->cmdline);
    helper_argv_free(p->argv);
    free(p->children);
    free(p);
}

/* Retired: no new requests; each child stops once idle. Freed when all
 * have stopped (checked by tick). */
static void
pool_retire(struct pool *p, struct pool *successor)
{
    struct helper_req *r;
    while ((r = TAILQ_FIRST(&p->queue)) != NULL) {
        TAILQ_REMOVE(&p->queue, r, link);
        r->queued = NULL;
        if (successor && r->pin == NULL) {
            TAILQ_INSERT_TAIL(&successor->queue, r, link);
            r->queued = successor;
        } else
            finish(r, successor ? HELPER_LOST : HELPER_FAILED);
    }
    for (int i = 0; i < p->nchildren; i++) {
        struct child *c = &p->children[i];
        c->stopping = 1;
        evtimer_del(c->restart);
        if (c->pin) {
            c->pin->lost = 1;
            pin_unbind(c->pin);
        }
        if (c->pid > 0 && c->ninflight == 0)
            child_down(c, NULL);
    }
    TAILQ_INSERT_TAIL(&retired, p, link);
}

static int
pool_idle(const struct pool *p)
{
    for (int i = 0; i < p->nchildren; i++)
        if (p->children[i].pid > 0)
            return 0;
    return 1;
}

static void
apply(struct helper_spec *specs)
{
    for (int k = 0; k < HELPER_KINDS; k++) {
        struct pool *old = pools[k];
        const struct helper_spec *s = &specs[k];
        if (old && s->cmdline && strcmp(old->cmdline, s->cmdline) == 0 &&
            old->nchildren == (s->children > 0 ? s->children : 1)) {
            old->ttl = s->ttl;
            old->timeout_ms = s->timeout_ms;
            continue;
        }
        struct pool *p = s->cmdline ? pool_new((enum helper_kind)k, s, NULL, 0) : NULL;
        pools[k] = p;
        if (old)
            pool_retire(old, p);
        pthread_mutex_lock(&mu);
        cache_clear((enum helper_kind)k); /* another program: its answers may differ */
        pthread_mutex_unlock(&mu);
        if (p)
            for (int i = 0; i < p->nchildren; i++)
                child_start(&p->children[i]);
    }
}

/* --- the helper thread ---------------------------------------------------- */

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct req_list got = TAILQ_HEAD_INITIALIZER(got);
    struct pin_list freed = TAILQ_HEAD_INITIALIZER(freed);
    struct helper_spec *spec;
    int stop;
    pthread_mutex_lock(&mu);
    struct helper_req *r;
    while ((r = TAILQ_FIRST(&inbox)) != NULL) {
        TAILQ_REMOVE(&inbox, r, link);
        r->state = REQ_HELPER;
        TAILQ_INSERT_TAIL(&got, r, link);
    }
    TAILQ_CONCAT(&freed, &pin_frees, free_link);
    spec = pending;
    stop = stop_asked;
    pthread_mutex_unlock(&mu);
    if (spec) {
        apply(spec);
        pthread_mutex_lock(&mu);
        pending = NULL;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    int touched[HELPER_KINDS] = {0};
    while ((r = TAILQ_FIRST(&got)) != NULL) {
        TAILQ_REMOVE(&got, r, link);
        struct pool *p = pools[r->kind];
        if (r->pin) {
            r->pin->nreqs++;
            r->pin->last_used = time(NULL);
            if (!r->pin->linked) {
                r->pin->linked = 1;
                TAILQ_INSERT_TAIL(&all_pins, r->pin, link);
            }
        }
        if (p == NULL) {
            finish(r, HELPER_FAILED);
            continue;
        }
        r->timer = evtimer_new(hbase, timeout_cb, r);
        if (r->timer == NULL) {
            finish(r, HELPER_FAILED);
            continue;
        }
        struct timeval tv = {(time_t)(p->timeout_ms / 1000), (long)(p->timeout_ms % 1000) * 1000};
        evtimer_add(r->timer, &tv);
        TAILQ_INSERT_TAIL(&p->queue, r, link);
        r->queued = p;
        touched[r->kind] = 1;
    }
    struct helper_pin *pin;
    while ((pin = TAILQ_FIRST(&freed)) != NULL) {
        TAILQ_REMOVE(&freed, pin, free_link);
        pin->freed = 1;
        pin_unbind(pin);
        if (pin->nreqs == 0)
            pin_release(pin);
        for (int k = 0; k < HELPER_KINDS; k++)
            touched[k] = 1; /* an unbound child may take queued work */
    }
    for (int k = 0; k < HELPER_KINDS; k++)
        if (touched[k] && pools[k])
            pump(pools[k]);
    if (stop)
        event_base_loopbreak(hbase);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    time_t now = time(NULL);
    struct pool *p, *next;
    for (p = TAILQ_FIRST(&retired); p != NULL; p = next) {
        next = TAILQ_NEXT(p, link);
        if (pool_idle(p)) {
            TAILQ_REMOVE(&retired, p, link);
            pool_free(p);
        }
    }
    for (int k = 0; k < HELPER_KINDS; k++) {
        if (pools[k] == NULL)
            continue;
        for (int i = 0; i < pools[k]->nchildren; i++) {
            struct child *c = &pools[k]->children[i];
            if (c->pin && c->pin->nreqs == 0 && now - c->pin->last_used > HELPER_PIN_IDLE) {
                c->pin->lost = 1;
                pin_unbind(c->pin);
                pump(pools[k]);
            }
        }
    }
}

static void *
run(void *arg)
{
    (void)arg;
    event_base_dispatch(hbase);
    return NULL;
}

int
helpers_start(void)
{
    hbase = event_base_new();
    if (hbase == NULL)
        return -1;
    wake = event_new(hbase, -1, 0, wake_cb, NULL);
    tick = event_new(hbase, -1, EV_PERSIST, tick_cb, NULL);
    if (wake == NULL || tick == NULL)
        return -1;
    struct timeval one = {1, 0};
    evtimer_add(tick, &one);
    if (pthread_create(&thread, NULL, run, NULL) != 0)
        return -1;
    running = 1;
    return 0;
}

int
helpers_configure(const struct helper_spec specs[HELPER_KINDS], char *err, size_t errsize)
{
    struct helper_spec copy[HELPER_KINDS];
    for (int k = 0; k < HELPER_KINDS; k++) {
        copy[k] = specs[k];
        if (specs[k].cmdline) {
            int conc;
            const char *why;
            char **argv = helper_argv(specs[k].cmdline, &conc, &why);
            if (argv == NULL) {
                snprintf(err, errsize, "%s helper: %s", helper_kind_name((enum helper_kind)k), why);
                return -1;
            }
            helper_argv_free(argv);
        }
    }
    if (!running)
        return -1;
    pthread_mutex_lock(&mu);
    for (int k = 0; k < HELPER_KINDS; k++) {
        configured[k] = specs[k].cmdline != NULL;
        ttl_of[k] = specs[k].ttl;
    }
    pending = copy;
    pthread_mutex_unlock(&mu);
    event_active(wake, EV_READ, 0);
    pthread_mutex_lock(&mu);
    while (pending != NULL)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return 0;
}

int
helper_configured(enum helper_kind kind)
{
    if ((unsigned)kind >= HELPER_KINDS)
        return 0;
    pthread_mutex_lock(&mu);
    int c = configured[kind];
    pthread_mutex_unlock(&mu);
    return c;
}

void
helper_stats(enum helper_kind kind, struct helper_stats *out)
{
    pthread_mutex_lock(&mu);
    *out = stats[kind];
    pthread_mutex_unlock(&mu);
}

static void
drop_all(struct req_list *l)
{
    struct helper_req *r;
    while ((r = TAILQ_FIRST(l)) != NULL) {
        TAILQ_REMOVE(l, r, link);
        req_free(r);
    }
}

void
helpers_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stop_asked = 1;
    for (int k = 0; k < HELPER_KINDS; k++)
        configured[k] = 0;
    pthread_mutex_unlock(&mu);
    event_active(wake, EV_READ, 0);
    pthread_join(thread, NULL);
    running = 0;
    /* The thread is gone: everything is this one's. Requests still at a
     * pool or a child are dropped without a call back. */
    struct req_list dropped = TAILQ_HEAD_INITIALIZER(dropped);
    struct pool *all[HELPER_KINDS + 64];
    size_t n = 0;
    for (int k = 0; k < HELPER_KINDS; k++)
        if (pools[k])
            all[n++] = pools[k], pools[k] = NULL;
    struct pool *p;
    while ((p = TAILQ_FIRST(&retired)) != NULL) {
        TAILQ_REMOVE(&retired, p, link);
        if (n < sizeof(all) / sizeof(all[0]))
            all[n++] = p;
    }
    /* Stop every child first (EOF, then SIGTERM, then SIGKILL), all at once. */
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < all[i]->nchildren; j++) {
            struct child *c = &all[i]->children[j];
            c->stopping = 1;
            child_close_pipes(c);
            if (c->pid > 0)
                kill(c->pid, SIGTERM);
        }
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < all[i]->nchildren; j++) {
            struct child *c = &all[i]->children[j];
            reap(c->pid, 0);
            c->pid = 0;
            TAILQ_CONCAT(&dropped, &c->inflight, link);
            if (c->restart)
                event_free(c->restart);
            c->restart = NULL;
        }
        TAILQ_CONCAT(&dropped, &all[i]->queue, link);
        free(all[i]->cmdline);
        helper_argv_free(all[i]->argv);
        free(all[i]->children);
        free(all[i]);
    }
    drop_all(&dropped);
    drop_all(&inbox);
    drop_all(&finished);
    struct helper_pin *pin;
    while ((pin = TAILQ_FIRST(&pin_frees)) != NULL) {
        TAILQ_REMOVE(&pin_frees, pin, free_link);
        if (pin->linked)
            TAILQ_REMOVE(&all_pins, pin, link);
        free(pin);
    }
    while ((pin = TAILQ_FIRST(&all_pins)) != NULL) {
        TAILQ_REMOVE(&all_pins, pin, link);
        free(pin);
    }
    for (int k = 0; k < HELPER_KINDS; k++)
        cache_clear((enum helper_kind)k);
    event_free(wake);
    event_free(tick);
    event_base_free(hbase);
    wake = tick = NULL;
    hbase = NULL;
    stop_asked = 0;
}

/* --- one question, synchronously ------------------------------------------ */

int
helper_ask_once(const char *cmdline, int negotiate, const char *line, uint64_t timeout_ms,
                struct helper_answer *out)
{
    int conc;
    const char *why;
    memset(out, 0, sizeof(*out));
    char **argv = helper_argv(cmdline, &conc, &why);
    if (argv == NULL)
        return -1;
    int to, from;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    pid_t pid = spawn(argv, &to, &from);
    helper_argv_free(argv);
    if (pid < 0) {
        sigaction(SIGPIPE, &old, NULL);
        return -1;
    }
    char msg[HELPER_MAX_LINE];
    int n =
        conc ? snprintf(msg, sizeof(msg), "0 %s", line) : snprintf(msg, sizeof(msg), "%s", line);
    int rc = -1;
    if (n > 0 && (size_t)n < sizeof(msg) && write(to, msg, (size_t)n) == n) {
        size_t got = 0;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            long long el = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (el >= (long long)timeout_ms)
                break;
            struct pollfd pfd = {from, POLLIN, 0};
            int pr = poll(&pfd, 1, (int)((long long)timeout_ms - el));
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0)
                break;
            ssize_t k = read(from, msg + got, sizeof(msg) - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
            char *nl = memchr(msg, '\n', got);
            if (nl) {
                const char *rest = msg;
                size_t rest_len = (size_t)(nl - msg);
                unsigned long chan;
                if (conc && helperproto_split_channel(msg, rest_len, &chan, &rest, &rest_len) < 0)
                    rest_len = 0, rest = "";
                if (helperproto_parse_reply(rest, rest_len, negotiate, &out->reply) == 0) {
                    out->result = HELPER_ANSWER;
                    rc = 0;
                }
                break;
            }
            if (got >= sizeof(msg) - 1)
                break;
        }
    }
    close(to);
    close(from);
    reap(pid, 1);
    sigaction(SIGPIPE, &old, NULL);
    if (rc < 0)
        out->result = HELPER_TIMEOUT;
    return rc;
}
