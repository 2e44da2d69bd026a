#include "gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "accesslog.h"
#include "authpool.h"
#include "catalog.h"
#include "config.h"
#include "conn.h"
#include "conn_types.h"
#include "decision.h"
#include "htpasswd.h"
#include "http1.h"
#include "local.h"
#include "logfmt.h"
#include "policy.h"
#include "rules.h"
#include "snapshot.h"
#include "sni.h"
#include "stats.h"
#include "timewin.h"
#include "usage.h"
#include "util/addr.h"
#include "worker.h"

/* Keeps the Proxy-Authorization credentials for the decision; the field
 * itself is hop-by-hop and never forwarded. A malformed one counts as wrong
 * credentials. Without [auth] htpasswd they are ignored. */
void
gate_read_credentials(struct conn *c, const struct http1_head *h)
{
    if (c->snap->users == NULL)
        return; /* no [auth]: credentials mean nothing here */
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "proxy-authorization"))
            continue;
        char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
        if (htpasswd_parse_basic(f->value.p, f->value.len, user, sizeof(user), pass, sizeof(pass)) <
            0) {
            c->t.auth = -1;
            return;
        }
        c->t.user = strdup(user);
        c->t.pass = strdup(pass);
        OPENSSL_cleanse(pass, sizeof(pass));
        if (c->t.user == NULL || c->t.pass == NULL)
            c->t.auth = -1;
        return;
    }
}

int
gate_preauth_limited(const struct conn *c)
{
    return c->snap->users != NULL && c->cfg->auth_required &&
           (size_t)c->cfg->max_header_bytes > PREAUTH_HEAD_BYTES;
}

/* Whether the field lines parsed so far hold Basic credentials naming a
 * user of the htpasswd file (the password is checked later). */
int
gate_names_known_user(const struct conn *c, const struct http1_head *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!http1_name_is(&f->name, "proxy-authorization"))
            continue;
        char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
        int ok = htpasswd_parse_basic(f->value.p, f->value.len, user, sizeof(user), pass,
                                      sizeof(pass)) == 0 &&
                 htpasswd_hash(c->snap->users, user) != NULL;
        OPENSSL_cleanse(pass, sizeof(pass));
        return ok;
    }
    return 0;
}

static void
reply_auth(struct conn *c)
{
    if (c->t.auth < 0)
        stats_count(STATS_AUTH_FAILURES);
    char page[4096];
    conn_reply_page(c, page, local_auth_page(c->snap, page, sizeof(page)), 407, NULL);
}

/* The policy part of the decision, once the identity is settled. Returns
 * 0 to go on, 1 when it answered. */
static int
finish_decision(struct conn *c)
{
    struct txn *t = &c->t;
    const struct snapshot *snap = c->snap;
    if (t->auth < 0) {
        reply_auth(c);
        return 1;
    }
    const char *user = t->auth > 0 ? t->user : NULL;
    if (snap->users && c->cfg->auth_required && user == NULL) {
        t->reason = "auth-required";
        reply_auth(c);
        return 1;
    }
    time_t now = time(NULL);
    struct tm local;
    conn_local_tm(now, &local);
    struct decision d;
    struct decision_in in = {
        .snap = snap,
        .user = user,
        .client = (const struct sockaddr *)&c->peer,
        .platform = t->platform,
        .method = t->is_connect ? NULL : t->method,
        .path = t->is_connect ? NULL : t->path,
        .path_len = t->path ? strlen(t->path) : 0,
        .local = &local,
    };
    if (t->local) {
        decision_identity(user, in.client, t->identity, sizeof(t->identity));
        struct policy_who who = {user, in.client, snap->groups};
        size_t nroles = policy_role_count(snap->rules->policy);
        uint8_t *held = calloc(nroles ? nroles : 1, 1);
        if (held) {
            policy_roles(snap->rules->policy, &who, held);
            policy_roles_text(snap->rules->policy, held, t->roles, sizeof(t->roles));
            free(held);
        }
        char page[16384];
        int status = 0;
        size_t n = local_answer(snap, t->identity, user, t->roles, t->target, now, &local, page,
                                sizeof(page), &status);
        conn_reply_page(c, page, n, status, NULL);
        return 1;
    }
    decision_make(&in, &d);
    t->rule = d.rule;
    t->action = (int)d.action;
    snprintf(t->roles, sizeof(t->roles), "%s", d.roles);
    snprintf(t->identity, sizeof(t->identity), "%s", d.identity);
    if (d.action == POLICY_DENY) {
        /* An anonymous client may hold a role that allows it once signed in. */
        if (user == NULL && snap->users) {
            /* Not a denial yet: the client is asked who it is. */
            t->rule = -1;
            t->action = -1;
            t->reason = "auth-required";
            reply_auth(c);
            return 1;
        }
        char page[4096];
        conn_reply_page(c, page, local_deny_page(snap, t->platform, d.rule, page, sizeof(page)),
                        403, NULL);
        return 1;
    }
    if (d.action == POLICY_WARN && !t->is_connect) {
        const struct catalog_platform *p = catalog_platform(snap->rules->catalog, t->platform);
        if (!usage_continue_ok(t->identity, p ? p->name : "unclassified", (int64_t)now)) {
            char page[8192];
            conn_reply_page(c, page,
                            local_warn_page(snap, t->platform, d.rule, t->url, page, sizeof(page)),
                            403, NULL);
            return 1;
        }
    }
    return 0;
}

static void
auth_done(void *arg, int ok)
{
    struct conn *c = arg;
    c->t.auth_job = NULL;
    if (c->closed)
        return;
    c->t.auth = ok && !c->t.decoy ? 1 : -1;
    if (finish_decision(c) == 0)
        conn_proceed(c);
}

/* Every request and tunnel passes here after its head is parsed and before
 * any upstream connection: classification, identity, policy. Returns 0 to
 * go on now, 1 when it answered or will go on later (a password check). */
int
gate_decide(struct conn *c)
{
    struct txn *t = &c->t;
    struct catalog_match m;
    catalog_classify(c->snap->rules->catalog, t->host, strlen(t->host), &m);
    t->platform = m.platform;
    if (t->user && t->auth == 0) {
        const char *hash = c->snap->users ? htpasswd_hash(c->snap->users, t->user) : NULL;
        if (hash == NULL) {
            /* An unknown name costs a check too, whose result is ignored. */
            t->decoy = 1;
            hash = htpasswd_decoy_hash(c->snap->users);
        }
        if (hash == NULL) {
            t->auth = -1;
        } else if (!t->decoy && authpool_cached(t->user, t->pass, hash) == 1) {
            t->auth = 1;
        } else {
            t->auth_job = authpool_check(c->w->base, t->user, t->pass, hash, auth_done, c);
            if (t->auth_job) {
                c->state = CS_DECIDING;
                conn_arm(c, c->cfg->connect_timeout_ms);
                return 1;
            }
            /* no pool: inline */
            t->auth = htpasswd_check_hash(hash, t->pass) && !t->decoy ? 1 : -1;
        }
    }
    return finish_decision(c);
}

/* The second decision of a tunnel, once the ClientHello was read: the SNI
 * is classified too; when it names another platform than the CONNECT host
 * (domain fronting) the log says so. Returns 0 to go on relaying. */
int
gate_decide_sni(struct conn *c, const struct sni_info *info)
{
    struct txn *t = &c->t;
    t->ech = info->ech;
    if (!info->has_sni)
        return 0;
    t->sni = strdup(info->sni);
    struct catalog_match m;
    catalog_classify(c->snap->rules->catalog, info->sni, strlen(info->sni), &m);
    if (m.platform == t->platform)
        return 0;
    /* Domain fronting, or a CONNECT to an address: decide for the SNI too;
     * the stricter decision wins and its platform is the one logged. */
    t->mismatch = 1;
    struct decision d;
    struct decision_in in = {
        .snap = c->snap,
        .user = t->auth > 0 ? t->user : NULL,
        .client = (const struct sockaddr *)&c->peer,
        .platform = m.platform,
    };
    decision_make(&in, &d);
    enum policy_action before = t->action < 0 ? POLICY_ALLOW : (enum policy_action)t->action;
    int stricter = policy_stricter(before, d.action) != before;
    /* Equally strict: the classified name is the better one to log. */
    if (stricter || (d.action == before && t->platform < 0)) {
        t->platform = m.platform;
        t->rule = d.rule;
        t->action = (int)d.action;
    }
    if (t->action == POLICY_DENY) {
        conn_close(c, "sni-denied"); /* 200 was sent: no page can be shown */
        return 1;
    }
    return 0;
}

void
gate_usage_who(struct conn *c, struct usage_row *row, char *ip, size_t ipsize)
{
    struct txn *t = &c->t;
    const struct catalog_platform *p = catalog_platform(c->snap->rules->catalog, t->platform);
    addr_format_ip((const struct sockaddr *)&c->peer, ip, ipsize);
    memset(row, 0, sizeof(*row));
    row->user = t->auth > 0 ? t->user : NULL;
    row->client = ip;
    row->roles = t->roles[0] && strcmp(t->roles, "-") != 0 ? t->roles : NULL;
    row->platform = p ? p->name : "unclassified";
    row->category = p ? p->category : NULL;
    const struct policy_rule *r =
        t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    row->quota_min = r ? r->quota_min : 0;
}

/* Once per connection and clock minute with traffic: counts the minute as
 * active for the identity on its platform, and for the deciding rule's
 * quota. A transfer whose quota ran out is decided again at its first
 * traffic in a new minute and closed unless another rule still allows it. */
void
gate_mark_active(struct conn *c)
{
    struct txn *t = &c->t;
    if (t->platform < 0 || t->action < 0)
        return;
    struct timeval tv;
    event_base_gettimeofday_cached(c->w->base, &tv);
    int64_t minute = (int64_t)tv.tv_sec / 60;
    if (minute == t->last_minute)
        return;
    t->last_minute = minute;
    time_t now = tv.tv_sec;
    struct tm local;
    conn_local_tm(now, &local);
    const struct policy_rule *r =
        t->rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)t->rule) : NULL;
    if (r && r->quota_min) {
        int period = decision_period(r, &local);
        if (usage_quota_used(t->identity, r->name, period) >= r->quota_min) {
            struct decision d;
            struct decision_in in = {
                .snap = c->snap,
                .user = t->auth > 0 ? t->user : NULL,
                .client = (const struct sockaddr *)&c->peer,
                .platform = t->platform,
                .local = &local,
            };
            decision_make(&in, &d);
            t->rule = d.rule;
            t->action = (int)d.action;
            if (d.action == POLICY_DENY) {
                conn_close(c, "quota-exhausted");
                return;
            }
            r = d.rule >= 0 ? policy_rule(c->snap->rules->policy, (size_t)d.rule) : NULL;
        }
    }
    char ip[64];
    struct usage_row row;
    gate_usage_who(c, &row, ip, sizeof(ip));
    usage_activity(&row, timewin_day_number(&local), minute, 0, 0, 0);
    if (r && r->quota_min) {
        int crossed;
        unsigned used = usage_quota_mark(t->identity, r->name, decision_period(r, &local), minute,
                                         r->quota_min, &crossed);
        if (crossed == 100)
            stats_count(STATS_QUOTA_EXHAUSTED);
        if (crossed) {
            char line[2048];
            struct timespec ts = {now, (long)tv.tv_usec * 1000};
            size_t n = logfmt_quota(row.user, ip, row.platform, r->name, used, r->quota_min,
                                    crossed, &ts, line, sizeof(line));
            accesslog_write(line, n);
        }
    }
}
