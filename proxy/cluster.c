#include "cluster.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "accesslog.h"
#include "clusterkey.h"
#include "config.h"
#include "decision.h"
#include "log.h"
#include "logfmt.h"
#include "policy.h"
#include "stats.h"
#include "usage.h"
#include "util/escape.h"

/* One active minute: KEYS[1] the identity's minute bitmap on the platform;
 * with a quota rule, KEYS[2] its minute bitmap for the rule and KEYS[3] its
 * counter. ARGV: the minute's bit, the bitmaps' lifetime, the counter's,
 * the channel, the start of the message and the count this gateway last
 * read (a Redis that restarted without its data gets it back from the
 * first mark). The counter goes up only when the minute is new for the
 * rule on every gateway, and the new count is published. Returns {minute
 * new, count or -1, counted}. */
static const char MARK_SCRIPT[] =
    "local fresh = redis.call('SETBIT', KEYS[1], ARGV[1], 1) == 0\n"
    "if fresh then redis.call('EXPIRE', KEYS[1], ARGV[2]) end\n"
    "if #KEYS < 3 then return {fresh and 1 or 0, -1, 0} end\n"
    "if tonumber(ARGV[6]) > 0 and redis.call('EXISTS', KEYS[3]) == 0 then\n"
    "  redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[3])\n"
    "end\n"
    "if redis.call('SETBIT', KEYS[2], ARGV[1], 1) == 1 then\n"
    "  return {fresh and 1 or 0, tonumber(redis.call('GET', KEYS[3]) or '0'), 0}\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
    "local n = redis.call('INCR', KEYS[3])\n"
    "redis.call('EXPIRE', KEYS[3], ARGV[3])\n"
    "redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\\31' .. n)\n"
    "return {fresh and 1 or 0, n, 1}\n";

enum { ST_INIT, ST_UP, ST_DOWN };

/* A connection to Redis, owned by one worker thread. */
struct link {
    struct event_base *base;
    redisAsyncContext *ac; /* NULL while not connected */
    int sub;               /* the subscriber */
    int ready;             /* authenticated, script loaded or subscribed */
    int stopping;
    unsigned backoff_ms;
    struct event *retry_ev;
};

struct wlinks {
    struct link cmd, sub;   /* sub: worker 0 only */
    struct event *hb_ev;    /* worker 0: the heartbeat */
    struct event *watch_ev; /* every worker: drops links to a Redis that hangs */
    int id, stopping;
};

/* This thread's links (a worker's), NULL elsewhere. */
static _Thread_local struct wlinks *tl;

/* Set by cluster_init, read-only afterwards. */
static struct {
    int on, nlinks;
    char host[108];
    int port;
    char *password;
    char redis[160]; /* as written, escaped for the log */
    char gw[80];     /* " gw=NAME" or "" */
    char sha[41];
    char hb_channel[64];
} cl;

/* An active minute: what the script needs and what the reply logs. */
struct mark {
    char *identity, *rule, *user, *client, *platform; /* into text */
    char k1[CLUSTERKEY_MAX], k2[CLUSTERKEY_MAX], k3[CLUSTERKEY_MAX], prefix[600];
    int32_t period;
    int weekly, replay;
    unsigned quota_min;
    int64_t minute;
    char text[];
};

static pthread_mutex_t jmu = PTHREAD_MUTEX_INITIALIZER; /* the journal and the state */
static int state = ST_INIT;                             /* under jmu */
static int nready;                                      /* links ready, under jmu */
static int64_t down_since_ms = -1;                      /* under jmu */
static int auth_warned;                                 /* under jmu */
static struct mark **journal;                           /* a ring, under jmu */
static size_t jhead, jlen;

static atomic_int st_up;
static atomic_uint generation; /* of the subscription: 0 none yet */
static atomic_llong last_heard_ms;
static atomic_ullong n_outages, outage_ms, n_dropped;

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
cluster_on(void)
{
    return cl.on;
}

/* ev=cluster state=up|down: once per change of the gateway's state. */
static void
log_state(const char *what, const char *reason, size_t merged)
{
    char line[1024], t[48], r[400];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    logfmt_time(&ts, t, sizeof(t));
    int n;
    if (reason) {
        escape_log_value(reason, strlen(reason), r, sizeof(r));
        n = snprintf(line, sizeof(line), "%s ev=cluster state=%s%s redis=%s reason=%s\n", t, what,
                     cl.gw, cl.redis, r);
    } else {
        n = snprintf(line, sizeof(line), "%s ev=cluster state=%s%s redis=%s merged=%zu\n", t, what,
                     cl.gw, cl.redis, merged);
    }
    if (n > 0 && (size_t)n < sizeof(line))
        accesslog_write(line, (size_t)n);
    if (reason)
        log_warnx("[cluster] Redis %s unreachable (%s): counting locally until it is back",
                  cl.redis, reason);
    else if (merged)
        log_info("[cluster] Redis %s back: %zu minutes counted meanwhile sent again", cl.redis,
                 merged);
    else
        log_info("[cluster] Redis %s connected", cl.redis);
}

/* Caller holds jmu. Takes m; drops the oldest when full. */
static void
journal_push(struct mark *m)
{
    if (jlen == CLUSTER_JOURNAL_MAX) {
        free(journal[jhead]);
        jhead = (jhead + 1) % CLUSTER_JOURNAL_MAX;
        jlen--;
        atomic_fetch_add(&n_dropped, 1);
    }
    journal[(jhead + jlen) % CLUSTER_JOURNAL_MAX] = m;
    jlen++;
}

static int send_mark(struct link *l, struct mark *m);
static void link_connect(struct link *l);

/* A link can no longer be used: the gateway is down until every link is
 * back. */
static void
link_lost(struct link *l, const char *reason)
{
    pthread_mutex_lock(&jmu);
    if (l->ready) {
        l->ready = 0;
        nready--;
    }
    if (state != ST_DOWN) {
        state = ST_DOWN;
        atomic_store(&st_up, 0);
        atomic_fetch_add(&n_outages, 1);
        down_since_ms = now_ms();
        log_state("down", reason, 0);
    }
    pthread_mutex_unlock(&jmu);
}

/* A link is ready; the last one brings the gateway up, and the marks
 * counted locally meanwhile are sent again on this thread's link. */
static void
link_ready(struct link *l)
{
    l->ready = 1;
    l->backoff_ms = 0;
    atomic_store(&last_heard_ms, now_ms()); /* it answered */
    struct mark **back = NULL;
    size_t nback = 0;
    pthread_mutex_lock(&jmu);
    nready++;
    if (nready == cl.nlinks && state != ST_UP) {
        if (down_since_ms >= 0)
            atomic_fetch_add(&outage_ms, (unsigned long long)(now_ms() - down_since_ms));
        down_since_ms = -1;
        back = jlen ? malloc(jlen * sizeof(*back)) : NULL;
        if (back) {
            for (; jlen; jlen--, jhead = (jhead + 1) % CLUSTER_JOURNAL_MAX)
                back[nback++] = journal[jhead];
        }
        state = ST_UP;
        atomic_store(&st_up, 1);
        log_state("up", NULL, nback);
    }
    pthread_mutex_unlock(&jmu);
    for (size_t i = 0; i < nback; i++) {
        back[i]->replay = 1;
        if (send_mark(&tl->cmd, back[i]) < 0) {
            pthread_mutex_lock(&jmu);
            journal_push(back[i]);
            pthread_mutex_unlock(&jmu);
        }
    }
    free(back);
}

static void
retry_later(struct link *l)
{
    if (l->stopping)
        return;
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : 100;
    if (l->backoff_ms > 2000)
        l->backoff_ms = 2000;
    struct timeval tv = {l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000};
    evtimer_add(l->retry_ev, &tv);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_connect(arg);
}

/* --- the subscriber: what the other gateways counted ------------------- */

static void
apply_message(const char *p, size_t len)
{
    struct clusterkey_msg m;
    if (clusterkey_msg_parse(p, len, &m) < 0)
        return;
    if (m.kind == 'q')
        usage_quota_sync(m.identity, m.name, (int32_t)m.period, (unsigned)m.minutes, -1);
    else
        usage_continue_merge(m.identity, m.name, m.until);
}

static void
on_sub(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct link *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->stopping)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        link_lost(l, reply->str);
        redisAsyncDisconnect(l->ac);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str, *chan = reply->element[1]->str;
    atomic_store(&last_heard_ms, now_ms());
    if (strcmp(kind, "subscribe") == 0) {
        /* Both channels: from now on every change reaches this gateway;
         * what was read before may be missing some. */
        if (strcmp(chan, cl.hb_channel) == 0) {
            atomic_fetch_add(&generation, 1);
            link_ready(l);
        }
    } else if (strcmp(kind, "message") == 0 && strcmp(chan, CLUSTERKEY_CHANNEL) == 0 &&
               reply->element[2]->type == REDIS_REPLY_STRING) {
        apply_message(reply->element[2]->str, reply->element[2]->len);
    }
}

/* --- connecting ---------------------------------------------------------- */

static void
on_script(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct link *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->stopping)
        return;
    if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, cl.sha) != 0) {
        link_lost(l, reply->type == REDIS_REPLY_ERROR ? reply->str : "SCRIPT LOAD failed");
        redisAsyncDisconnect(l->ac);
        return;
    }
    link_ready(l);
}

static void
link_setup(struct link *l)
{
    int rc;
    if (l->sub) {
        const char *argv[] = {"SUBSCRIBE", CLUSTERKEY_CHANNEL, cl.hb_channel};
        rc = redisAsyncCommandArgv(l->ac, on_sub, l, 3, argv, NULL);
    } else {
        const char *argv[] = {"SCRIPT", "LOAD", MARK_SCRIPT};
        rc = redisAsyncCommandArgv(l->ac, on_script, l, 3, argv, NULL);
    }
    if (rc != REDIS_OK)
        redisAsyncDisconnect(l->ac);
}

static void
on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct link *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->stopping)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[300];
        snprintf(why, sizeof(why), "password_file refused: %s", reply->str);
        pthread_mutex_lock(&jmu);
        int warn = !auth_warned;
        auth_warned = 1;
        pthread_mutex_unlock(&jmu);
        if (warn)
            log_warnx("[cluster] Redis %s refused the password of password_file: %s; "
                      "counting locally meanwhile",
                      cl.redis, reply->str);
        link_lost(l, why);
        redisAsyncDisconnect(l->ac);
        return;
    }
    link_setup(l);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (status != REDIS_OK) {
        l->ac = NULL; /* hiredis frees it */
        if (!l->stopping) {
            link_lost(l, ac->errstr);
            retry_later(l);
        }
        return;
    }
    if (cl.password) {
        const char *argv[] = {"AUTH", cl.password};
        if (redisAsyncCommandArgv(l->ac, on_auth, l, 2, argv, NULL) != REDIS_OK)
            redisAsyncDisconnect(l->ac);
        return;
    }
    link_setup(l);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    l->ac = NULL; /* hiredis frees it */
    if (l->stopping)
        return;
    link_lost(l, status == REDIS_OK ? "connection closed" : ac->errstr);
    retry_later(l);
}

static void
link_connect(struct link *l)
{
    if (l->stopping || l->ac)
        return;
    redisAsyncContext *ac =
        cl.port ? redisAsyncConnect(cl.host, cl.port) : redisAsyncConnectUnix(cl.host);
    if (ac == NULL || ac->err) {
        link_lost(l, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        retry_later(l);
        return;
    }
    ac->data = l;
    if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
        redisAsyncFree(ac);
        link_lost(l, "cannot attach to the event loop");
        retry_later(l);
        return;
    }
    l->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wlinks *w = arg;
    if (w->cmd.ready && w->cmd.ac) {
        const char *argv[] = {"PUBLISH", cl.hb_channel, "h"};
        redisAsyncCommandArgv(w->cmd.ac, NULL, NULL, 3, argv, NULL);
    }
}

/* A Redis that stopped answering without closing (a hung host, a
 * partition that drops packets): every link of this thread is dropped and
 * connected again, so the gateway counts locally instead of asking a
 * silent Redis before each decision. */
static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wlinks *w = arg;
    if (now_ms() - atomic_load(&last_heard_ms) <= CLUSTER_DEAD_MS)
        return;
    struct link *ls[2] = {&w->cmd, w->id == 0 ? &w->sub : NULL};
    for (size_t i = 0; i < 2; i++) {
        struct link *l = ls[i];
        if (l == NULL || !l->ready || l->ac == NULL)
            continue;
        link_lost(l, "no answer from Redis for 5 seconds");
        redisAsyncContext *ac = l->ac;
        l->stopping = 1; /* on_disconnect: no reconnect from inside the free */
        redisAsyncFree(ac);
        l->ac = NULL;
        l->stopping = 0;
        retry_later(l);
    }
}

/* --- marks ------------------------------------------------------------ */

static void
log_quota(const struct mark *m, unsigned used, int crossed)
{
    if (crossed == 100)
        stats_count(STATS_QUOTA_EXHAUSTED);
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = logfmt_quota(m->user, m->client, m->platform, m->rule, used, m->quota_min, crossed,
                            &ts, line, sizeof(line));
    accesslog_write(line, n);
}

static void
on_mark(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct mark *m = privdata;
    redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_INTEGER) {
        /* Lost on the way: counted here, and sent again when Redis is
         * back (a minute Redis did count counts once all the same). */
        if (m->rule && !m->replay) {
            int crossed;
            unsigned used = usage_quota_mark(m->identity, m->rule, m->period, m->minute,
                                             m->quota_min, &crossed);
            if (crossed)
                log_quota(m, used, crossed);
        }
        pthread_mutex_lock(&jmu);
        journal_push(m);
        pthread_mutex_unlock(&jmu);
        return;
    }
    /* The minute was active on another gateway first: its ev=usage counts it. */
    if (reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer == 0 &&
        !m->replay)
        usage_activity_seen(m->user, m->client, m->platform, m->minute);
    long long n = reply->element[1]->integer;
    if (m->rule && n >= 0) {
        unsigned used = usage_quota_sync(m->identity, m->rule, m->period, (unsigned)n, m->minute);
        int crossed =
            reply->element[2]->integer == 1 ? usage_threshold((unsigned)n, m->quota_min) : 0;
        if (crossed && !m->replay)
            log_quota(m, used, crossed);
    }
    free(m);
}

static int
send_mark(struct link *l, struct mark *m)
{
    if (l->ac == NULL || !l->ready)
        return -1;
    char bit[24], ttl[24], qttl[24], base[24];
    snprintf(base, sizeof(base), "%u",
             m->rule ? usage_quota_shared(m->identity, m->rule, m->period) : 0);
    snprintf(bit, sizeof(bit), "%u", clusterkey_bit(m->minute));
    snprintf(ttl, sizeof(ttl), "%u", (unsigned)CLUSTERKEY_BITMAP_TTL);
    snprintf(qttl, sizeof(qttl), "%u", clusterkey_quota_ttl(m->weekly));
    const char *argv[12];
    int argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = cl.sha;
    argv[argc++] = m->rule ? "3" : "1";
    argv[argc++] = m->k1;
    if (m->rule) {
        argv[argc++] = m->k2;
        argv[argc++] = m->k3;
    }
    argv[argc++] = bit;
    argv[argc++] = ttl;
    argv[argc++] = qttl;
    argv[argc++] = CLUSTERKEY_CHANNEL;
    argv[argc++] = m->prefix;
    argv[argc++] = base;
    return redisAsyncCommandArgv(l->ac, on_mark, m, argc, argv, NULL) == REDIS_OK ? 0 : -1;
}

static char *
copy_into(char **p, const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = *p;
    size_t n = strlen(s) + 1;
    memcpy(d, s, n);
    *p += n;
    return d;
}

int
cluster_mark(const char *identity, const char *platform, const char *rule, int32_t period,
             int weekly, unsigned quota_min, int64_t minute, const char *user, const char *client,
             int fresh)
{
    if (!cl.on || tl == NULL)
        return 0;
    if (!fresh) /* sent by the connection that saw the minute first, unless Redis is away */
        return atomic_load(&st_up) && tl->cmd.ready;
    size_t need = strlen(identity) + strlen(platform) + (rule ? strlen(rule) : 0) +
                  (user ? strlen(user) : 0) + (client ? strlen(client) : 0) + 5;
    struct mark *m = calloc(1, sizeof(*m) + need);
    if (m == NULL)
        return 0;
    char *p = m->text;
    m->identity = copy_into(&p, identity);
    m->platform = copy_into(&p, platform);
    m->rule = copy_into(&p, rule);
    m->user = copy_into(&p, user);
    m->client = copy_into(&p, client);
    m->period = period;
    m->weekly = weekly;
    m->quota_min = quota_min;
    m->minute = minute;
    if (clusterkey_make(m->k1, sizeof(m->k1), CLUSTERKEY_MINUTES, identity, platform, minute) < 0 ||
        (rule &&
         (clusterkey_make(m->k2, sizeof(m->k2), CLUSTERKEY_RULE_MINUTES, identity, rule, minute) <
              0 ||
          clusterkey_make(m->k3, sizeof(m->k3), CLUSTERKEY_QUOTA, identity, rule, period) < 0 ||
          clusterkey_msg_quota_prefix(m->prefix, sizeof(m->prefix), identity, rule, period) < 0))) {
        free(m); /* a name the store cannot carry: counted here only */
        return 0;
    }
    pthread_mutex_lock(&jmu);
    int up = state == ST_UP && tl->cmd.ready;
    if (!up)
        journal_push(m);
    pthread_mutex_unlock(&jmu);
    if (!up)
        return 0;
    if (send_mark(&tl->cmd, m) < 0) {
        pthread_mutex_lock(&jmu);
        journal_push(m);
        pthread_mutex_unlock(&jmu);
        return 0;
    }
    return 1;
}

/* --- Continues ----------------------------------------------------------- */

static void
continue_hook(const char *identity, const char *platform, int64_t until)
{
    if (tl == NULL || !tl->cmd.ready || tl->cmd.ac == NULL)
        return; /* Redis away: this gateway's Continue only */
    char key[CLUSTERKEY_MAX], msg[600], val[24], ttl[24];
    if (clusterkey_make(key, sizeof(key), CLUSTERKEY_CONTINUE, identity, platform, 0) < 0 ||
        clusterkey_msg_continue(msg, sizeof(msg), identity, platform, until) < 0)
        return;
    int64_t left = until - (int64_t)time(NULL);
    snprintf(val, sizeof(val), "%lld", (long long)until);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(left > 0 ? left : 1));
    const char *set[] = {"SET", key, val, "EX", ttl};
    const char *pub[] = {"PUBLISH", CLUSTERKEY_CHANNEL, msg};
    redisAsyncCommandArgv(tl->cmd.ac, NULL, NULL, 5, set, NULL);
    redisAsyncCommandArgv(tl->cmd.ac, NULL, NULL, 3, pub, NULL);
}

/* --- asking before deciding -------------------------------------------- */

struct cluster_ask {
    struct event *timer;
    cluster_done_fn done; /* NULL: cancelled */
    void *arg;
    int answered;
    unsigned generation;
    size_t nrules;
    char **rules; /* into the block */
    int32_t *periods;
    char identity[256], platform[128];
};

static void
ask_free(struct cluster_ask *a)
{
    for (size_t i = 0; i < a->nrules; i++)
        free(a->rules[i]);
    if (a->timer)
        event_free(a->timer);
    free(a);
}

static void
ask_answer(struct cluster_ask *a)
{
    if (a->answered)
        return;
    a->answered = 1;
    if (a->done && !(tl && tl->stopping))
        a->done(a->arg);
}

static void
ask_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ask_answer(arg);
}

static int
parse_u64(const redisReply *r, long long *out)
{
    if (r->type != REDIS_REPLY_STRING)
        return -1;
    char *end;
    long long v = strtoll(r->str, &end, 10);
    if (end == r->str || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

static void
on_ask(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct cluster_ask *a = privdata;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == a->nrules + 1) {
        long long v;
        for (size_t i = 0; i < a->nrules; i++)
            if (parse_u64(reply->element[i], &v) == 0 && v <= UINT32_MAX)
                usage_quota_sync(a->identity, a->rules[i], a->periods[i], (unsigned)v, -1);
        if (parse_u64(reply->element[a->nrules], &v) == 0)
            usage_continue_merge(a->identity, a->platform, v);
        usage_sync_set(a->identity, a->generation);
    }
    ask_answer(a);
    ask_free(a);
}

int
cluster_fresh(const char *identity)
{
    if (!cl.on || tl == NULL || !atomic_load(&st_up) || !tl->cmd.ready)
        return 1; /* nothing to ask: the local counts decide */
    if (now_ms() - atomic_load(&last_heard_ms) > CLUSTER_STALE_MS)
        return 0;
    return usage_sync_get(identity) == atomic_load(&generation);
}

struct cluster_ask *
cluster_ask(const char *identity, const char *platform, const struct policy *pol,
            const struct tm *local, cluster_done_fn done, void *arg)
{
    if (!cl.on || tl == NULL || !tl->cmd.ready || tl->cmd.ac == NULL)
        return NULL;
    size_t nr = 0, total = policy_rule_count(pol);
    for (size_t i = 0; i < total; i++)
        if (policy_rule(pol, i)->quota_min)
            nr++;
    struct cluster_ask *a = calloc(1, sizeof(*a) + nr * (sizeof(char *) + sizeof(int32_t)));
    if (a == NULL)
        return NULL;
    a->rules = (char **)(a + 1);
    a->periods = (int32_t *)(a->rules + nr);
    snprintf(a->identity, sizeof(a->identity), "%s", identity);
    snprintf(a->platform, sizeof(a->platform), "%s", platform);
    const char **argv = calloc(nr + 2, sizeof(*argv));
    char(*keys)[CLUSTERKEY_MAX] = calloc(nr + 1, sizeof(*keys));
    a->timer = evtimer_new(tl->cmd.base, ask_timeout, a);
    int ok = argv && keys && a->timer;
    size_t argc = 0;
    if (ok)
        argv[argc++] = "MGET";
    for (size_t i = 0; ok && i < total; i++) {
        const struct policy_rule *r = policy_rule(pol, i);
        if (!r->quota_min)
            continue;
        a->rules[a->nrules] = strdup(r->name); /* the reply may outlive a reload */
        if (a->rules[a->nrules] == NULL)
            ok = 0;
        a->periods[a->nrules] = decision_period(r, local);
        if (clusterkey_make(keys[a->nrules], CLUSTERKEY_MAX, CLUSTERKEY_QUOTA, identity, r->name,
                            a->periods[a->nrules]) < 0)
            ok = 0;
        argv[argc++] = keys[a->nrules++];
    }
    if (ok &&
        clusterkey_make(keys[nr], CLUSTERKEY_MAX, CLUSTERKEY_CONTINUE, identity, platform, 0) < 0)
        ok = 0;
    if (ok)
        argv[argc++] = keys[nr];
    a->generation = atomic_load(&generation);
    a->done = done;
    a->arg = arg;
    struct timeval tv = {CLUSTER_ASK_MS / 1000, (CLUSTER_ASK_MS % 1000) * 1000};
    if (ok && redisAsyncCommandArgv(tl->cmd.ac, on_ask, a, (int)argc, argv, NULL) != REDIS_OK)
        ok = 0;
    free(argv);
    free(keys);
    if (!ok) {
        ask_free(a);
        return NULL;
    }
    evtimer_add(a->timer, &tv);
    return a;
}

void
cluster_ask_cancel(struct cluster_ask *a)
{
    if (a)
        a->done = NULL; /* freed by its reply, which always comes */
}

/* --- life ------------------------------------------------------------ */

int
cluster_init(const struct config *cfg, int nworkers)
{
    if (cfg->cluster_redis == NULL)
        return 0;
    memset(&cl, 0, sizeof(cl));
    snprintf(cl.host, sizeof(cl.host), "%s", cfg->cluster_host);
    cl.port = cfg->cluster_port;
    escape_log_value(cfg->cluster_redis, strlen(cfg->cluster_redis), cl.redis, sizeof(cl.redis));
    if (cfg->cluster_name)
        snprintf(cl.gw, sizeof(cl.gw), " gw=%s", cfg->cluster_name);
    if (cfg->cluster_password && (cl.password = strdup(cfg->cluster_password)) == NULL)
        return -1;
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)MARK_SCRIPT, strlen(MARK_SCRIPT), md);
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(cl.sha + 2 * i, 3, "%02x", md[i]);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(cl.hb_channel, sizeof(cl.hb_channel), CLUSTERKEY_PREFIX "hb:%ld.%ld", (long)getpid(),
             (long)ts.tv_nsec);
    journal = calloc(CLUSTER_JOURNAL_MAX, sizeof(*journal));
    if (journal == NULL)
        return -1;
    cl.nlinks = nworkers + 1;
    atomic_store(&last_heard_ms, now_ms());
    usage_set_continue_hook(continue_hook);
    cl.on = 1;
    return 0;
}

static int
link_init(struct link *l, struct event_base *base, int sub)
{
    l->base = base;
    l->sub = sub;
    l->retry_ev = evtimer_new(base, retry_cb, l);
    return l->retry_ev ? 0 : -1;
}

void
cluster_worker_start(struct event_base *base, int id)
{
    if (!cl.on)
        return;
    struct wlinks *w = calloc(1, sizeof(*w));
    if (w == NULL || link_init(&w->cmd, base, 0) < 0 ||
        (id == 0 && link_init(&w->sub, base, 1) < 0)) {
        log_warnx("[cluster] worker %d: out of memory; counting locally", id);
        free(w);
        return;
    }
    w->id = id;
    tl = w;
    w->watch_ev = event_new(base, -1, EV_PERSIST, watch_cb, w);
    struct timeval sec = {1, 0};
    if (w->watch_ev)
        event_add(w->watch_ev, &sec);
    link_connect(&w->cmd);
    if (id == 0) {
        link_connect(&w->sub);
        w->hb_ev = event_new(base, -1, EV_PERSIST, heartbeat_cb, w);
        struct timeval tv = {0, CLUSTER_HEARTBEAT_MS * 1000};
        if (w->hb_ev)
            event_add(w->hb_ev, &tv);
    }
}

static void
link_stop(struct link *l)
{
    l->stopping = 1;
    if (l->ac)
        redisAsyncFree(l->ac); /* every pending callback gets NULL */
    l->ac = NULL;
    if (l->retry_ev)
        event_free(l->retry_ev);
}

void
cluster_worker_stop(void)
{
    struct wlinks *w = tl;
    if (w == NULL)
        return;
    w->stopping = 1;
    if (w->hb_ev)
        event_free(w->hb_ev);
    if (w->watch_ev)
        event_free(w->watch_ev);
    link_stop(&w->cmd);
    if (w->id == 0)
        link_stop(&w->sub);
    tl = NULL;
    free(w);
}

void
cluster_shutdown(void)
{
    if (!cl.on)
        return;
    pthread_mutex_lock(&jmu);
    for (; jlen; jlen--, jhead = (jhead + 1) % CLUSTER_JOURNAL_MAX)
        free(journal[jhead]);
    free(journal);
    journal = NULL;
    pthread_mutex_unlock(&jmu);
    if (cl.password) {
        explicit_bzero(cl.password, strlen(cl.password));
        free(cl.password);
        cl.password = NULL;
    }
}

void
cluster_figures(int *up, uint64_t *outages, uint64_t *outage_seconds, uint64_t *dropped)
{
    *up = atomic_load(&st_up);
    *outages = atomic_load(&n_outages);
    uint64_t ms = atomic_load(&outage_ms);
    pthread_mutex_lock(&jmu);
    if (down_since_ms >= 0)
        ms += (uint64_t)(now_ms() - down_since_ms);
    pthread_mutex_unlock(&jmu);
    *outage_seconds = ms / 1000;
    *dropped = atomic_load(&n_dropped);
}
