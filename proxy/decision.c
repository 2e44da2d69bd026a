#include "decision.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "snapshot.h"
#include "timewin.h"
#include "usage.h"
#include "util/addr.h"

void
decision_identity(const char *user, const struct sockaddr *client, char *buf, size_t size)
{
    if (user) {
        snprintf(buf, size, "%s", user);
        return;
    }
    if (client)
        addr_format_ip(client, buf, size);
    else
        snprintf(buf, size, "-");
}

int
decision_period(const struct policy_rule *r, const struct tm *tm)
{
    return r->quota_weekly ? timewin_week_number(tm) : timewin_day_number(tm);
}

struct quota_arg {
    const char *identity;
    const struct tm *tm;
    policy_trace_fn trace;
    void *trace_arg;
    const struct policy *pol;
    int quota_skipped; /* a rule that would have decided had its quota left */
    int quota_rule;    /* the first such rule, -1: none */
};

static unsigned
quota_used(void *arg, const struct policy_rule *r)
{
    struct quota_arg *q = arg;
    return usage_quota_used(q->identity, r->name, decision_period(r, q->tm));
}

static void
trace_quota(void *arg, const struct policy_rule *r, const char *failed)
{
    struct quota_arg *q = arg;
    if (failed && strcmp(failed, "quota") == 0) {
        q->quota_skipped = 1;
        if (q->quota_rule < 0)
            q->quota_rule = (int)(r - policy_rule(q->pol, 0));
    }
    if (q->trace)
        q->trace(q->trace_arg, r, failed);
}

/* Whether anyone can sign in: an htpasswd file, or a basic or negotiate
 * helper. */
static int
auth_on(const struct snapshot *snap)
{
    return snap->users != NULL || config_has_users(snap->cfg);
}

static const char *
effective_user(const struct decision_in *in)
{
    return in->auth == AUTH_OK ? in->user : NULL;
}

static const struct tm *
local_time(const struct decision_in *in, struct tm *buf)
{
    if (in->local_tm)
        return in->local_tm;
    time_t t = in->now ? in->now : time(NULL);
    localtime_r(&t, buf);
    return buf;
}

/* The policy for the roles in held; qa collects the quota rules skipped. */
static void
eval_held(const struct decision_in *in, const uint8_t *held, struct quota_arg *qa,
          struct policy_result *res)
{
    const struct catalog *cat = in->snap->rules->catalog;
    const struct catalog_platform *p = in->opaque ? NULL : catalog_platform(cat, in->platform);
    struct policy_req req = {
        .platform = in->opaque ? -1 : in->platform,
        .category = in->opaque ? POLICY_OPAQUE
                    : p        ? p->category
                               : NULL,
        .method = in->method,
        .path = in->path,
        .path_len = in->path_len,
        .local = qa->tm,
        .quota_used = quota_used,
        .quota_arg = qa,
    };
    policy_eval(in->snap->rules->policy, held, &req, res, trace_quota, qa);
}

void
decision_make(const struct decision_in *in, struct decision *out)
{
    const struct policy *pol = in->snap->rules->policy;
    struct tm now_tm;
    const struct tm *tm = local_time(in, &now_tm);
    const char *user = effective_user(in);
    out->verdict = VERDICT_ALLOW;
    out->reason = NULL;
    out->evaluated = 1;
    out->quota_rule = -1;
    decision_identity(user, in->client, out->identity, sizeof(out->identity));
    size_t nroles = policy_role_count(pol);
    uint8_t stack_held[64];
    uint8_t *held = nroles <= sizeof(stack_held) ? stack_held : calloc(nroles, 1);
    if (held == NULL) { /* no memory to tell the roles: fail closed */
        snprintf(out->roles, sizeof(out->roles), "-");
        out->action = POLICY_DENY;
        out->rule = -1;
        out->quota_used = 0;
        return;
    }
    struct policy_who who = {user, in->client, in->snap->groups, in->groups, in->ngroups};
    policy_roles(pol, &who, held);
    policy_roles_text(pol, held, out->roles, sizeof(out->roles));
    struct quota_arg qa = {out->identity, tm, in->trace, in->trace_arg, pol, 0, -1};
    struct policy_result res;
    eval_held(in, held, &qa, &res);
    out->action = res.action;
    out->rule = res.rule;
    out->quota_used = res.quota_used;
    /* What cannot be classified is not allowed by default: only a rule
     * lets an opaque tunnel through. */
    if (in->opaque && res.rule < 0)
        out->action = POLICY_DENY;
    if (in->opaque && out->action == POLICY_DENY)
        out->reason = "opaque";
    if (out->action == POLICY_DENY && qa.quota_skipped) {
        out->verdict = VERDICT_QUOTA_PAGE;
        out->quota_rule = qa.quota_rule;
    } else if (out->action == POLICY_DENY) {
        out->verdict = VERDICT_DENY_PAGE;
    }
    if (held != stack_held)
        free(held);
}

int
decision_sign_in_helps(const struct decision_in *in)
{
    const struct policy *pol = in->snap->rules->policy;
    struct tm now_tm;
    const struct tm *tm = local_time(in, &now_tm);
    char identity[300];
    decision_identity(NULL, in->client, identity, sizeof(identity));
    size_t nroles = policy_role_count(pol);
    uint8_t *held = calloc(nroles ? nroles : 1, 1);
    if (held == NULL)
        return 1; /* a 407 denies too */
    struct policy_who who = {NULL, in->client, in->snap->groups, NULL, 0};
    policy_roles(pol, &who, held);
    int helps = 0;
    /* First match: a client holding several roles gets the earliest rule
     * any one of them reaches, so trying each role alone is enough. */
    for (size_t i = 0; i < nroles && !helps; i++) {
        const struct policy_role *r = policy_role(pol, i);
        if (held[i] || (r->nusers == 0 && r->ngroups == 0))
            continue;
        held[i] = 1;
        struct quota_arg qa = {identity, tm, NULL, NULL, pol, 0, -1};
        struct policy_result res;
        eval_held(in, held, &qa, &res);
        helps = res.action != POLICY_DENY;
        held[i] = 0;
    }
    free(held);
    return helps;
}

int
decision_inspect_rule(const struct decision_in *in)
{
    if (in->opaque)
        return -1; /* nothing to read inside */
    const struct policy *pol = in->snap->rules->policy;
    const struct catalog *cat = in->snap->rules->catalog;
    struct tm now_tm;
    const struct tm *tm = local_time(in, &now_tm);
    const char *user = effective_user(in);
    char identity[300];
    decision_identity(user, in->client, identity, sizeof(identity));
    size_t nroles = policy_role_count(pol);
    uint8_t stack_held[64];
    uint8_t *held = nroles <= sizeof(stack_held) ? stack_held : calloc(nroles, 1);
    if (held == NULL)
        return -1; /* the tunnel's own decision stands (it failed closed too) */
    struct policy_who who = {user, in->client, in->snap->groups, in->groups, in->ngroups};
    policy_roles(pol, &who, held);
    const struct catalog_platform *p = catalog_platform(cat, in->platform);
    struct quota_arg qa = {identity, tm, NULL, NULL, pol, 0, -1};
    struct policy_req req = {
        .platform = in->platform,
        .category = p ? p->category : NULL,
        .local = tm,
        .quota_used = quota_used,
        .quota_arg = &qa,
    };
    int rule = policy_needs_inspection(pol, held, &req);
    if (held != stack_held)
        free(held);
    return rule;
}

/* Identity without the policy: for sign-in answers and local pages. */
static void
who_only(const struct decision_in *in, struct decision *out, enum verdict v, const char *reason)
{
    const struct policy *pol = in->snap->rules->policy;
    const char *user = effective_user(in);
    out->verdict = v;
    out->action = POLICY_ALLOW;
    out->rule = -1;
    out->evaluated = 0;
    out->quota_used = 0;
    out->quota_rule = -1;
    out->reason = reason;
    decision_identity(user, in->client, out->identity, sizeof(out->identity));
    snprintf(out->roles, sizeof(out->roles), "-");
    if (v != VERDICT_LOCAL)
        return;
    size_t nroles = policy_role_count(pol);
    uint8_t *held = calloc(nroles ? nroles : 1, 1);
    if (held == NULL)
        return;
    struct policy_who who = {user, in->client, in->snap->groups, in->groups, in->ngroups};
    policy_roles(pol, &who, held);
    policy_roles_text(pol, held, out->roles, sizeof(out->roles));
    free(held);
}

enum verdict
decision_eval(const struct decision_in *in, struct decision *out)
{
    const struct snapshot *snap = in->snap;
    if (in->auth == AUTH_FAILED) {
        who_only(in, out, VERDICT_ASK_AUTH, NULL);
        return out->verdict;
    }
    if (in->auth == AUTH_UNCHECKED) {
        who_only(in, out, VERDICT_CHECK_PASSWORD, NULL);
        return out->verdict;
    }
    const char *user = effective_user(in);
    if (auth_on(snap) && snap->cfg->auth_required && user == NULL) {
        who_only(in, out, VERDICT_ASK_AUTH, "auth-required");
        return out->verdict;
    }
    if (in->local) {
        who_only(in, out, VERDICT_LOCAL, NULL);
        return out->verdict;
    }
    decision_make(in, out);
    if (out->action == POLICY_DENY && user == NULL && auth_on(snap) && !in->opaque &&
        decision_sign_in_helps(in)) {
        /* Signing in could get the client a role that allows it: not a
         * denial yet, the client is asked who it is. Where no sign-in can
         * help, the denial (or quota page) stands, with its rule. (Not
         * for an opaque tunnel: it is known only after its 200.) */
        out->rule = -1;
        out->verdict = VERDICT_ASK_AUTH;
        out->reason = "auth-required";
        out->evaluated = 0;
        return out->verdict;
    }
    if (out->action == POLICY_WARN && (!in->tunnel || in->tls_pages)) {
        const struct catalog_platform *p = catalog_platform(snap->rules->catalog, in->platform);
        time_t now = in->now ? in->now : time(NULL);
        if (!usage_continue_ok(out->identity, p ? p->name : "unclassified", (int64_t)now))
            out->verdict = VERDICT_WARN_PAGE;
    }
    return out->verdict;
}

/* [tls] exempt names the platform or its category. */
static int
tls_exempt(const struct snapshot *snap, int platform)
{
    const struct config *cfg = snap->cfg;
    const struct catalog_platform *p = catalog_platform(snap->rules->catalog, platform);
    for (size_t i = 0; p && i < cfg->ntls_exempt; i++)
        if (strcmp(cfg->tls_exempt[i], p->name) == 0 ||
            strcmp(cfg->tls_exempt[i], p->category) == 0)
            return 1;
    return 0;
}

int
decision_tls_page(const struct snapshot *snap, int platform)
{
    const struct config *cfg = snap->cfg;
    if (cfg->tls_ca == NULL || !cfg->tls_pages)
        return 0;
    return !tls_exempt(snap, platform);
}

int
decision_tls_inspects(const struct snapshot *snap, int platform)
{
    const struct config *cfg = snap->cfg;
    if (cfg->tls_ca == NULL || !cfg->tls_inspect)
        return 0;
    return !tls_exempt(snap, platform);
}

const char *
decision_verdict_name(enum verdict v)
{
    static const char *const names[] = {"allow",     "deny-page", "warn-page",     "quota-page",
                                        "ask-auth",  "local",     "check-password"};
    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}
