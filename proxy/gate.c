#include "gate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "accesslog.h"
#include "authpool.h"
#include "catalog.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "decision.h"
#include "helper.h"
#include "helperproto.h"
#include "htpasswd.h"
#include "local.h"
#include "logfmt.h"
#include "negotiate.h"
#include "policy.h"
#include "rules.h"
#include "snapshot.h"
#include "sni.h"
#include "stats.h"
#include "timewin.h"
#include "tlspage.h"
#include "usage.h"
#include "worker.h"

#include <event2/bufferevent.h>

/* The one place a decision's input is built from a transaction: the
 * first decision, the SNI's, and every re-decision of an open transfer
 * see the same identity, method, path and clock. */
static void
build_in(struct conn *c, int platform, struct decision_in *in, struct tm *local)
{
    struct txn *t = &c->t;
    time_t now;
    conn_wall_clock(c, &now, NULL);
    conn_local_tm(now, local);
    memset(in, 0, sizeof(*in));
    in->snap = c->snap;
    in->user = t->rq.user;
    in->auth = t->rq.auth;
    in->client = (const struct sockaddr *)&c->peer;
    in->platform = platform;
    in->method = t->is_connect ? NULL : t->rq.method;
    in->path = t->is_connect ? NULL : t->rq.npath; /* normalised: what path_regex sees */
    in->path_len = in->path ? strlen(in->path) : 0;
    in->tunnel = t->is_connect;
    in->tls_pages = t->is_connect && decision_tls_page(c->snap, platform);
    in->local = t->rq.kind == REQUEST_LOCAL;
    in->now = now;
    in->local_tm = local;
    in->groups = (const char *const *)t->groups_in;
    in->ngroups = t->ngroups_in;
}

static int
classify(struct conn *c, const char *host)
{
    struct catalog_match m;
    catalog_classify(c->snap->rules->catalog, host, strlen(host), &m);
    return m.platform;
}

/* Keeps the decision's rule, roles and identity in the transaction. -1
 * when out of memory: the caller closes (a transaction without its
 * identity would count its minutes to no one). */
static int
keep(struct txn *t, const struct decision *d)
{
    t->rule = d->evaluated ? d->rule : -1;
    t->action = d->evaluated ? (int)d->action : -1;
    size_t rl = strlen(d->roles), il = strlen(d->identity);
    char *who = malloc(rl + il + 2);
    free(t->who);
    t->who = who;
    if (who == NULL) {
        t->roles = t->identity = "";
        return -1;
    }
    memcpy(who, d->roles, rl + 1);
    memcpy(who + rl + 1, d->identity, il + 1);
    t->roles = who;
    t->identity = who + rl + 1;
    return 0;
}

/* A CONNECT whose requests a rule needs to read ([tls] inspect = auto):
 * decrypted, and each request inside decided on its own, whatever the
 * tunnel's own verdict would have been. Never for an exempt platform,
 * nor when the identity is still to be settled. */
static int
wants_inspection(struct conn *c, enum verdict v, const struct decision_in *in)
{
    struct txn *t = &c->t;
    if (!t->is_connect || c->insp.on || !decision_tls_inspects(c->snap, t->platform))
        return 0;
    if (v != VERDICT_ALLOW && v != VERDICT_DENY_PAGE && v != VERDICT_QUOTA_PAGE &&
        v != VERDICT_WARN_PAGE)
        return 0;
    return decision_inspect_rule(in) >= 0;
}

/* Starts the password check of the transaction's credentials: settles
 * t->rq.auth at once (cache, or no pool), or suspends. */
static enum conn_rc check_password(struct conn *c);

static enum conn_rc act(struct conn *c);

/* An answer that settled the identity (a password or helper check, the
 * groups, Redis) has come back: decide again, and go on where the
 * transaction stopped when the decision allows. */
static void
decide_again(struct conn *c)
{
    conn_cont_fn resume = c->t.resume;
    if (act(c) == CONN_GO_ON)
        (void)resume(c);
}

static void
cluster_done(void *arg)
{
    struct conn *c = arg;
    struct txn *t = &c->t;
    t->cluster_ask = NULL;
    if (c->closed || c->closing)
        return;
    t->stage = STAGE_HEAD;
    decide_again(c);
}

/* In a pool of gateways, before classified traffic is allowed (or warned
 * about) on counts that may be older than CLUSTER_STALE_MS: asks Redis
 * and decides again on its answer, or after CLUSTER_ASK_MS on the cache.
 * Once per transaction. */
static enum conn_rc
ask_cluster(struct conn *c, enum verdict v, const struct tm *local)
{
    struct txn *t = &c->t;
    if ((v != VERDICT_ALLOW && v != VERDICT_WARN_PAGE) || t->platform < 0 || t->cluster_asked ||
        !cluster_on() || cluster_fresh(t->identity))
        return CONN_GO_ON;
    t->cluster_asked = 1;
    const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
    t->cluster_ask = cluster_ask(t->identity, p ? p->name : "unclassified", c->snap->rules->policy,
                                 local, cluster_done, c);
    if (t->cluster_ask == NULL)
        return CONN_GO_ON; /* nothing to ask: the cache decides */
    t->stage = STAGE_DECIDING;
    conn_arm(c, c->cfg->connect_timeout_ms);
    return CONN_SUSPENDED;
}

/* With [auth] group_helper and a signed-in user: asks the helper about
 * every group the roles name, in parallel (cache first). CONN_GO_ON when
 * known (t->groups_state 2), CONN_SUSPENDED while asking, or an answer. */
static enum conn_rc resolve_groups(struct conn *c);
static void gate_txn_free_asks(struct conn *c);

/* The directory could not say (BH, garbage, timeout, a crashed helper):
 * never an allow, never a guess. */
static enum conn_rc
auth_unavailable(struct conn *c)
{
    return conn_reply_error(c, 503, "auth-unavailable",
                            "The directory that checks sign-ins cannot be reached; try again "
                            "shortly.");
}

/* Acts on the verdict once the identity is settled. */
static enum conn_rc
act(struct conn *c)
{
    struct txn *t = &c->t;
    const struct snapshot *snap = c->snap;
    for (;;) {
        if (t->groups_state != 2 && t->rq.auth == AUTH_OK && snap->cfg->auth_group_helper) {
            enum conn_rc rc = resolve_groups(c);
            if (rc != CONN_GO_ON)
                return rc;
        }
        struct decision_in in;
        struct tm local;
        build_in(c, t->platform, &in, &local);
        struct decision d;
        enum verdict v = decision_eval(&in, &d);
        if (keep(t, &d) < 0)
            return conn_close(c, "out-of-memory");
        if (d.reason && t->reason == NULL)
            t->reason = d.reason;
        if (cluster_on() && !t->cluster_asked) {
            enum conn_rc rc = ask_cluster(c, v, &local);
            if (rc != CONN_GO_ON)
                return rc;
            if (t->cluster_asked)
                continue; /* asked nothing: decide again, as asked */
        }
        if (wants_inspection(c, v, &in)) {
            /* The tunnel itself decides nothing: its requests do. */
            t->inspect = 1;
            t->tls = "inspect";
            t->rule = -1;
            t->action = -1;
            t->reason = NULL;
            return CONN_GO_ON;
        }
        /* A tunnel's page is shown inside TLS ([tls] pages), before any
         * upstream is opened. */
        if (in.tls_pages &&
            (v == VERDICT_DENY_PAGE || v == VERDICT_QUOTA_PAGE || v == VERDICT_WARN_PAGE))
            return tlspage_start(c, v, v == VERDICT_QUOTA_PAGE ? d.quota_rule : -1);
        char *page = NULL;
        size_t n = 0;
        int status = 403;
        switch (v) {
        case VERDICT_CHECK_PASSWORD: {
            enum conn_rc rc = check_password(c);
            if (rc != CONN_GO_ON)
                return rc;
            continue; /* settled at once: decide again */
        }
        case VERDICT_ASK_AUTH:
            if (c->insp.on) {
                /* Inside a decrypted tunnel nobody can sign in any more
                 * (the identity is the tunnel's): the denial stands. */
                decision_make(&in, &d);
                if (keep(t, &d) < 0)
                    return conn_close(c, "out-of-memory");
                t->reason = NULL;
                if (d.verdict == VERDICT_QUOTA_PAGE)
                    n = local_quota_page(snap, t->platform, d.quota_rule, t->rq.host, t->identity,
                                         &local, &page);
                else
                    n = local_deny_page(snap, t->platform, d.rule, t->rq.host, t->identity, &page);
                break;
            }
            if (t->rq.auth == AUTH_FAILED)
                stats_count(STATS_AUTH_FAILURES);
            n = local_auth_page_message(snap, t->rq.host, t->auth_message, &page);
            status = 407;
            break;
        case VERDICT_LOCAL: {
            char buf[16384];
            const char *user = t->rq.auth == AUTH_OK ? t->rq.user : NULL, *why = NULL;
            n = local_answer(snap, t->identity, user, t->roles, t->rq.target, in.now, &local, buf,
                             sizeof(buf), &status, &why);
            return conn_reply_page(c, buf, n, status, why);
        }
        case VERDICT_DENY_PAGE:
            n = local_deny_page(snap, t->platform, d.rule, t->rq.host, t->identity, &page);
            break;
        case VERDICT_QUOTA_PAGE:
            n = local_quota_page(snap, t->platform, d.quota_rule, t->rq.host, t->identity, &local,
                                 &page);
            break;
        case VERDICT_WARN_PAGE:
            n = local_warn_page(snap, t->platform, d.rule, t->rq.url, t->rq.host, t->identity,
                                in.now, &page);
            break;
        case VERDICT_ALLOW:
            return CONN_GO_ON;
        default:
            return conn_close(c, "bad-verdict");
        }
        enum conn_rc rc = conn_reply_page(c, page, n, status, NULL);
        free(page);
        return rc;
    }
}

static void
auth_done(void *arg, int ok)
{
    struct conn *c = arg;
    struct txn *t = &c->t;
    t->auth_job = NULL;
    if (c->closed || c->closing)
        return;
    t->rq.auth = ok && !t->decoy ? AUTH_OK : AUTH_FAILED;
    t->stage = STAGE_HEAD;
    decide_again(c);
}

static void
helper_auth_done(void *arg, const struct helper_answer *a)
{
    struct conn *c = arg;
    struct txn *t = &c->t;
    t->helper_job = NULL;
    if (c->closed || c->closing)
        return;
    t->stage = STAGE_HEAD;
    int v = helper_verdict(a);
    if (v < 0) {
        (void)auth_unavailable(c);
        return;
    }
    t->rq.auth = v == 1 ? AUTH_OK : AUTH_FAILED;
    if (v == 0 && a->reply.message && t->auth_message == NULL)
        t->auth_message = strdup(a->reply.message);
    decide_again(c);
}

/* [auth] basic_helper: the helper says yes or no (cache first). */
static enum conn_rc
check_with_helper(struct conn *c)
{
    struct txn *t = &c->t;
    char line[HTPASSWD_MAX_USER * 3 + HTPASSWD_MAX_PASSWORD * 3 + 8];
    if (helperproto_basic_request(t->rq.user, t->rq.pass, line, sizeof(line)) < 0) {
        t->rq.auth = AUTH_FAILED;
        return CONN_GO_ON;
    }
    struct helper_answer a;
    if (helper_cached(HELPER_BASIC, line, &a)) {
        int v = helper_verdict(&a);
        if (v == 0 && a.reply.message && t->auth_message == NULL)
            t->auth_message = strdup(a.reply.message);
        helper_answer_free(&a);
        OPENSSL_cleanse(line, sizeof(line));
        if (v < 0)
            return auth_unavailable(c);
        t->rq.auth = v == 1 ? AUTH_OK : AUTH_FAILED;
        return CONN_GO_ON;
    }
    errno = 0;
    t->helper_job =
        helper_submit(c->w->base, HELPER_BASIC, line, HELPER_F_CACHE, NULL, helper_auth_done, c);
    OPENSSL_cleanse(line, sizeof(line));
    if (t->helper_job) {
        t->stage = STAGE_DECIDING;
        conn_arm(c, c->cfg->connect_timeout_ms + 1000); /* the pool's own timeout answers first */
        return CONN_SUSPENDED;
    }
    if (errno == EAGAIN)
        return conn_reply_error(c, 503, "auth-busy",
                                "Too many sign-ins are being checked; try again shortly.");
    return auth_unavailable(c);
}

/* The answer to one group: in, out, or the directory could not say. */
static void
group_settled(struct txn *t, const char *group, int v)
{
    if (v < 0) {
        t->groups_failed = 1;
        return;
    }
    if (v == 0)
        return;
    for (size_t i = 0; i < t->ngroups_in; i++)
        if (strcmp(t->groups_in[i], group) == 0)
            return;
    char **nv = realloc(t->groups_in, (t->ngroups_in + 1) * sizeof(*nv));
    char *dup = strdup(group);
    if (nv == NULL || dup == NULL) {
        free(dup);
        if (nv)
            t->groups_in = nv;
        t->groups_failed = 1;
        return;
    }
    t->groups_in = nv;
    t->groups_in[t->ngroups_in++] = dup;
}

static void
groups_finished(struct conn *c)
{
    struct txn *t = &c->t;
    t->stage = STAGE_HEAD;
    free(t->group_asks);
    t->group_asks = NULL;
    t->ngroup_asks = 0;
    if (t->groups_failed) {
        (void)auth_unavailable(c);
        return;
    }
    t->groups_state = 2;
    decide_again(c);
}

static void
group_done(void *arg, const struct helper_answer *a)
{
    struct group_ask *g = arg;
    struct conn *c = g->c;
    struct txn *t = &c->t;
    g->req = NULL;
    if (c->closed || c->closing)
        return;
    group_settled(t, g->group, helper_verdict(a));
    if (--t->groups_pending == 0)
        groups_finished(c);
}

static enum conn_rc
resolve_groups(struct conn *c)
{
    struct txn *t = &c->t;
    const struct policy *pol = c->snap->rules->policy;
    size_t nroles = policy_role_count(pol), total = 0;
    if (t->groups_state == 1)
        return CONN_SUSPENDED;
    for (size_t i = 0; i < nroles; i++)
        total += policy_role(pol, i)->ngroups;
    t->groups_failed = 0;
    if (total == 0) {
        t->groups_state = 2;
        return CONN_GO_ON;
    }
    t->group_asks = calloc(total, sizeof(*t->group_asks));
    if (t->group_asks == NULL)
        return conn_close(c, "out-of-memory");
    for (size_t i = 0; i < nroles; i++) {
        const struct policy_role *r = policy_role(pol, i);
        for (size_t k = 0; k < r->ngroups; k++) {
            const char *group = r->groups[k];
            int seen = 0;
            for (size_t j = 0; j < t->ngroup_asks && !seen; j++)
                seen = strcmp(t->group_asks[j].group, group) == 0;
            if (seen)
                continue;
            struct group_ask *g = &t->group_asks[t->ngroup_asks++];
            g->c = c;
            g->group = group;
            char line[HTPASSWD_MAX_USER * 3 + 3 * 256 + 8];
            struct helper_answer a;
            if (helperproto_group_request(t->rq.user, group, line, sizeof(line)) < 0) {
                group_settled(t, group, 0); /* a name too long for any directory */
                continue;
            }
            if (helper_cached(HELPER_GROUP, line, &a)) {
                group_settled(t, group, helper_verdict(&a));
                helper_answer_free(&a);
                continue;
            }
            errno = 0;
            g->req = helper_submit(c->w->base, HELPER_GROUP, line, HELPER_F_CACHE, NULL,
                                   group_done, g);
            if (g->req == NULL) {
                t->groups_failed = 1;
                break;
            }
            t->groups_pending++;
        }
        if (t->groups_failed)
            break;
    }
    if (t->groups_failed) {
        int busy = errno == EAGAIN;
        gate_txn_free_asks(c);
        return busy ? conn_reply_error(c, 503, "auth-busy",
                                       "Too many sign-ins are being checked; try again shortly.")
                    : auth_unavailable(c);
    }
    if (t->groups_pending == 0) {
        free(t->group_asks);
        t->group_asks = NULL;
        t->ngroup_asks = 0;
        t->groups_state = 2;
        return CONN_GO_ON;
    }
    t->groups_state = 1;
    t->stage = STAGE_DECIDING;
    conn_arm(c, c->cfg->connect_timeout_ms + 1000);
    return CONN_SUSPENDED;
}

static enum conn_rc
check_password(struct conn *c)
{
    struct txn *t = &c->t;
    if (c->snap->cfg->auth_basic_helper)
        return check_with_helper(c);
    const char *hash = c->snap->users ? htpasswd_hash(c->snap->users, t->rq.user) : NULL;
    if (hash == NULL) {
        /* An unknown name costs a check too, whose result is ignored. */
        t->decoy = 1;
        hash = htpasswd_decoy_hash(c->snap->users);
    }
    if (hash == NULL) {
        t->rq.auth = AUTH_FAILED;
        return CONN_GO_ON;
    }
    if (!t->decoy && authpool_cached(t->rq.user, t->rq.pass, hash) == 1) {
        t->rq.auth = AUTH_OK;
        return CONN_GO_ON;
    }
    errno = 0;
    t->auth_job = authpool_check(c->w->base, t->rq.user, t->rq.pass, hash, auth_done, c);
    if (t->auth_job) {
        t->stage = STAGE_DECIDING;
        conn_arm(c, c->cfg->connect_timeout_ms);
        return CONN_SUSPENDED;
    }
    if (errno == EAGAIN) /* the queue of checks is full */
        return conn_reply_error(c, 503, "auth-busy",
                                "Too many sign-ins are being checked; try again shortly.");
    /* no pool: inline */
    t->rq.auth = htpasswd_check_hash(hash, t->rq.pass) && !t->decoy ? AUTH_OK : AUTH_FAILED;
    return CONN_GO_ON;
}

/* --- Negotiate ---------------------------------------------------------------
 * The client's token goes to the negotiate helper ("YR" for a first leg,
 * "KK" after a TT); the exchange's legs stay on one child (a pin). The
 * user it gives sticks to the connection: later requests on it need no
 * token (RFC 4559), and a CONNECT carries it into its tunnel. */

/* The exchange is over (or abandoned): its child serves others again. */
static void
negotiate_end(struct conn *c)
{
    helper_pin_free(c->neg_pin);
    c->neg_pin = NULL;
}

/* A TT: the client's next leg is expected on this same connection, so the
 * 407 keeps it open when nothing of the request is left to read. */
static enum conn_rc
negotiate_continue(struct conn *c, const char *token)
{
    struct txn *t = &c->t;
    char *page = NULL;
    int keep = t->rq.body == HTTP1_BODY_NONE && !t->rq.client_close && !c->draining;
    size_t n = local_negotiate_page(c->snap, t->rq.host, token, keep, &page);
    if (n == 0 || !keep) {
        /* The connection ends: so does the exchange (the client starts
         * again on a new one). */
        enum conn_rc rc = conn_reply_page(c, page, n, 407, NULL);
        free(page);
        return rc;
    }
    t->status = 407;
    t->answered_here = 1;
    t->down += n;
    int bad = bufferevent_write(c->cbev, page, n) != 0;
    free(page);
    if (bad)
        return conn_close(c, "out-of-memory");
    (void)conn_keepalive(c);
    return CONN_CLOSED; /* this transaction is over; the connection reads the next */
}

static void
negotiate_done(void *arg, const struct helper_answer *a)
{
    struct conn *c = arg;
    struct txn *t = &c->t;
    t->neg_req = NULL;
    if (c->closed || c->closing)
        return;
    t->stage = STAGE_HEAD;
    enum helper_code code = a->result == HELPER_ANSWER ? a->reply.code : HELPER_CODE_BH;
    if (a->result == HELPER_LOST)
        code = HELPER_CODE_ERR; /* the exchange is gone: the client starts again */
    if (code == HELPER_CODE_TT && a->reply.token) {
        (void)negotiate_continue(c, a->reply.token);
        return;
    }
    negotiate_end(c);
    if (code == HELPER_CODE_OK && a->reply.user) {
        char realm[256], name[HTPASSWD_MAX_USER + 1];
        int nrealms = negotiate_realms(c->cfg->auth_negotiate_helper, realm, sizeof(realm));
        if (negotiate_user_name(a->reply.user, nrealms, realm, name, sizeof(name)) == 0) {
            free(c->neg_user);
            free(t->rq.user);
            c->neg_user = strdup(name);
            t->rq.user = strdup(name);
            if (c->neg_user == NULL || t->rq.user == NULL) {
                (void)conn_close(c, "out-of-memory");
                return;
            }
            t->rq.auth = AUTH_OK;
            decide_again(c);
            return;
        }
        code = HELPER_CODE_ERR; /* a name that cannot be used is no sign-in */
    }
    if (code == HELPER_CODE_ERR) {
        /* NA: a 407 again (Negotiate, and Basic when it can be checked). */
        free(c->neg_user);
        c->neg_user = NULL;
        t->rq.auth = AUTH_FAILED;
        decide_again(c);
        return;
    }
    /* BH, garbage, a timeout, a helper that cannot run: never an allow. */
    (void)auth_unavailable(c);
}

/* Sends the request's Negotiate token to the helper: suspends, or answers. */
static enum conn_rc
negotiate_leg(struct conn *c)
{
    struct txn *t = &c->t;
    int first = c->neg_pin == NULL;
    if (first && (c->neg_pin = helper_pin_new(HELPER_NEGOTIATE)) == NULL)
        return conn_reply_error(c, 503, "auth-unavailable",
                                "The sign-in service is not available; try again shortly.");
    size_t size = strlen(t->rq.neg_token) + 8;
    char *line = malloc(size);
    if (line == NULL)
        return conn_close(c, "out-of-memory");
    if (helperproto_negotiate_request(first, t->rq.neg_token, line, size) < 0) {
        free(line);
        negotiate_end(c);
        t->rq.auth = AUTH_FAILED;
        return act(c);
    }
    errno = 0;
    t->neg_req = helper_submit(c->w->base, HELPER_NEGOTIATE, line, 0, c->neg_pin, negotiate_done, c);
    free(line);
    if (t->neg_req == NULL) {
        int e = errno;
        negotiate_end(c);
        if (e == EAGAIN)
            return conn_reply_error(c, 503, "auth-busy",
                                    "Too many sign-ins are being checked; try again shortly.");
        return conn_reply_error(c, 503, "auth-unavailable",
                                "The sign-in service is not available; try again shortly.");
    }
    t->stage = STAGE_DECIDING;
    /* The pool's own timeout (connect_timeout) answers first. */
    conn_arm(c, c->cfg->connect_timeout_ms + 2000);
    return CONN_SUSPENDED;
}

static void
gate_txn_free_asks(struct conn *c)
{
    struct txn *t = &c->t;
    for (size_t i = 0; i < t->ngroup_asks; i++)
        if (t->group_asks[i].req)
            helper_cancel(t->group_asks[i].req);
    free(t->group_asks);
    t->group_asks = NULL;
    t->ngroup_asks = 0;
    t->groups_pending = 0;
}

enum conn_rc
gate_decide(struct conn *c, conn_cont_fn resume)
{
    struct txn *t = &c->t;
    t->platform = classify(c, t->rq.host);
    t->resume = resume;
    if (!c->insp.on && t->rq.neg_token && c->cfg->auth_negotiate_helper)
        return negotiate_leg(c);
    if (!c->insp.on && c->neg_user && c->cfg->auth_negotiate_helper && t->rq.auth == AUTH_NONE) {
        /* Signed in with Negotiate earlier on this connection. */
        if ((t->rq.user = strdup(c->neg_user)) == NULL)
            return conn_close(c, "out-of-memory");
        t->rq.auth = AUTH_OK;
    }
    return act(c);
}

/* For a tunnel whose first bytes name another platform than its CONNECT
 * host (domain fronting, or a CONNECT to an address), or cannot be
 * classified (opaque): decides for that too; the stricter decision wins
 * and its platform is the one logged. Returns 1 when it won. */
static int
stricter_with(struct conn *c, int platform, int opaque)
{
    struct txn *t = &c->t;
    struct decision_in in;
    struct tm local;
    build_in(c, platform, &in, &local);
    in.opaque = opaque;
    struct decision d;
    decision_make(&in, &d);
    enum policy_action before = t->action < 0 ? POLICY_ALLOW : (enum policy_action)t->action;
    int stricter = policy_stricter(before, d.action) != before;
    /* Equally strict: the classified name is the better one to log. */
    if (stricter || (d.action == before && t->platform < 0)) {
        t->platform = opaque ? -1 : platform;
        t->rule = d.rule;
        t->action = (int)d.action;
        return 1;
    }
    return 0;
}

/* The platform of a name from a tunnel's bytes; 0, or -1 when it is no
 * host name (sni_normalize). */
static int
name_platform(struct conn *c, const char *name, int *platform)
{
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip;
    int n = sni_normalize(name, strlen(name), norm, sizeof(norm), &is_ip);
    if (n < 0)
        return -1;
    *platform = n > 0 ? classify(c, norm) : -1;
    return 0;
}

static int
connect_to_address(const struct conn *c)
{
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip = 0;
    const char *h = c->t.rq.host;
    return catalog_normalize(h, strlen(h), norm, sizeof(norm), &is_ip) >= 0 && is_ip;
}

enum conn_rc
gate_decide_opaque(struct conn *c)
{
    struct txn *t = &c->t;
    t->opaque = 1;
    stricter_with(c, -1, 1);
    if (t->action == POLICY_DENY)
        return conn_close_denied(c, "opaque"); /* after the 200: no page */
    return CONN_GO_ON;
}

enum conn_rc
gate_decide_sni(struct conn *c, const struct sni_info *info)
{
    struct txn *t = &c->t;
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip = 0;
    int n = info->has_sni ? sni_normalize(info->sni, info->sni_len, norm, sizeof(norm), &is_ip) : 0;
    /* An ECH extension alone says nothing (Chromium sends a GREASE one on
     * every connection); with an outer name of a known ECH server it is
     * real: the server the client asks for is encrypted. Logged only: the
     * decision is the outer name's, as for any hello. */
    if (n > 0 && info->ech && catalog_ech_client_facing(c->snap->rules->catalog, norm, (size_t)n))
        t->ech = 1;
    if (n != 0 && t->sni == NULL) {
        t->sni = strdup(info->sni); /* logged as sent, even when it is no name */
        if (t->sni == NULL)
            return conn_close(c, "out-of-memory");
    }
    if (n < 0)
        return gate_decide_opaque(c); /* a name that is none: unclassifiable */
    if (n == 0) {
        /* No name (or an address): the CONNECT host decides, unless it
         * is an address too and the bytes are TLS; then nothing says
         * where the tunnel goes. Plain HTTP is readable: with no name but
         * an address it is unclassified, as the same request sent to the
         * proxy would be. */
        return !info->http && connect_to_address(c) ? gate_decide_opaque(c) : CONN_GO_ON;
    }
    if (strcmp(t->sni, info->sni) != 0) {
        /* A later hello names another server: decided too, and kept for
         * the re-decisions of the open tunnel; the log names the one
         * whose decision wins. */
        char *other = strdup(info->sni);
        if (other == NULL)
            return conn_close(c, "out-of-memory");
        free(t->sni2);
        t->sni2 = other;
    }
    int platform = classify(c, norm);
    if (platform == t->platform)
        return CONN_GO_ON;
    t->mismatch = 1;
    if (stricter_with(c, platform, 0) && t->sni2 && strcmp(t->sni2, info->sni) == 0) {
        char *won = t->sni2;
        t->sni2 = t->sni;
        t->sni = won;
    }
    if (t->action == POLICY_DENY) {
        /* Denied by its first hello, none of whose bytes went on: its page
         * inside TLS ([tls] pages) instead of the origin. */
        if (t->peek_verdicts == 1 && !info->http && decision_tls_page(c->snap, t->platform))
            return tlspage_take_over(c, VERDICT_DENY_PAGE, info->has_sni ? info->sni : NULL);
        return conn_close_denied(c, "sni-denied"); /* after the 200: no page */
    }
    if (t->action == POLICY_WARN && t->peek_verdicts == 1 && !info->http &&
        decision_tls_page(c->snap, t->platform)) {
        /* Warned about by its first hello only: the warn page inside TLS,
         * unless the user continued already. */
        const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
        time_t now;
        conn_wall_clock(c, &now, NULL);
        if (!usage_continue_ok(t->identity, p ? p->name : "unclassified", (int64_t)now))
            return tlspage_take_over(c, VERDICT_WARN_PAGE, info->has_sni ? info->sni : NULL);
    }
    return CONN_GO_ON;
}

/* An open transfer decided again: under the snapshot current now (a
 * reload), with the same identity, method, path, names and opacity. */
static void
redecide(struct conn *c, int reloaded)
{
    struct txn *t = &c->t;
    if (reloaded) /* catalog indexes of the old snapshot mean nothing now */
        t->platform = classify(c, t->rq.host);
    struct decision_in in;
    struct tm local;
    build_in(c, t->platform, &in, &local);
    struct decision d;
    decision_make(&in, &d);
    t->rule = d.rule;
    t->action = (int)d.action;
    const char *names[] = {t->sni, t->sni2};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int sp;
        if (names[i] && name_platform(c, names[i], &sp) == 0 && sp != t->platform)
            stricter_with(c, sp, 0);
    }
    if (t->opaque)
        stricter_with(c, -1, 1);
}

/* Once per connection and clock minute with traffic: counts the minute as
 * active for the identity on its platform, and for the deciding rule's
 * quota. A transfer whose quota ran out, or whose configuration was
 * reloaded, is decided again at its first traffic in a new minute and
 * closed unless a rule still allows it. */
enum conn_rc
gate_mark_active(struct conn *c)
{
    struct txn *t = &c->t;
    if (t->action < 0)
        return CONN_GO_ON;
    time_t now;
    long usec;
    conn_wall_clock(c, &now, &usec);
    int64_t minute = (int64_t)now / 60;
    if (minute == t->last_minute)
        return CONN_GO_ON;
    t->last_minute = minute;
    struct tm local;
    conn_local_tm(now, &local);
    int reloaded = conn_snapshot_refresh(c);
    const struct policy_rule *r =
        t->rule >= 0 && !reloaded ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    int used_up =
        r && r->quota_min &&
        usage_quota_used(t->identity, r->name, decision_period(r, &local)) >= r->quota_min;
    if (reloaded || used_up) {
        int rule = t->rule, action = t->action, platform = t->platform;
        redecide(c, reloaded);
        if (t->action == POLICY_DENY && used_up) {
            /* Nothing denied it: the rule that allowed it ran out. The
             * log keeps that rule and its action, so that a count of
             * action=deny counts denials; reason=quota-exhausted says why
             * it ended. */
            t->rule = rule;
            t->action = action;
            t->platform = platform;
            return conn_close(c, "quota-exhausted");
        }
        if (t->action == POLICY_DENY)
            return conn_close(c, "policy-changed");
    }
    if (t->platform < 0)
        return CONN_GO_ON;
    r = t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    char ip[64];
    struct usage_row row;
    conn_usage_who(c, &row, ip, sizeof(ip));
    int fresh = usage_activity(&row, timewin_day_number(&local), minute, 0, 0, 0);
    int shared =
        cluster_on() &&
        cluster_mark(t->identity, row.platform, r && r->quota_min ? r->name : NULL,
                     r && r->quota_min ? decision_period(r, &local) : 0, r ? r->quota_weekly : 0,
                     r ? r->quota_min : 0, minute, row.user, ip, fresh);
    if (r && r->quota_min && !shared) {
        int crossed;
        unsigned used = usage_quota_mark(t->identity, r->name, decision_period(r, &local), minute,
                                         r->quota_min, &crossed);
        if (crossed == 100)
            stats_count(STATS_QUOTA_EXHAUSTED);
        if (crossed) {
            char line[2048];
            struct timespec ts = {now, usec * 1000};
            size_t n = logfmt_quota(row.user, ip, row.platform, r->name, used, r->quota_min,
                                    crossed, &ts, line, sizeof(line));
            accesslog_write(line, n);
        }
    }
    return CONN_GO_ON;
}
