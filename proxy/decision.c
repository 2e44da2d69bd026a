#include "decision.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
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
};

static unsigned
quota_used(void *arg, const struct policy_rule *r)
{
    struct quota_arg *q = arg;
    return usage_quota_used(q->identity, r->name, decision_period(r, q->tm));
}

void
decision_make(const struct decision_in *in, struct decision *out)
{
    const struct policy *pol = in->snap->rules->policy;
    const struct catalog *cat = in->snap->rules->catalog;
    struct tm now_tm;
    const struct tm *tm = in->local;
    if (tm == NULL) {
        time_t t = time(NULL);
        localtime_r(&t, &now_tm);
        tm = &now_tm;
    }
    decision_identity(in->user, in->client, out->identity, sizeof(out->identity));
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
    struct policy_who who = {in->user, in->client, in->snap->groups};
    policy_roles(pol, &who, held);
    policy_roles_text(pol, held, out->roles, sizeof(out->roles));
    const struct catalog_platform *p = catalog_platform(cat, in->platform);
    struct quota_arg qa = {out->identity, tm};
    struct policy_req req = {
        .platform = in->platform,
        .category = p ? p->category : NULL,
        .method = in->method,
        .path = in->path,
        .path_len = in->path_len,
        .local = tm,
        .quota_used = quota_used,
        .quota_arg = &qa,
    };
    struct policy_result res;
    policy_eval(pol, held, &req, &res, in->trace, in->trace_arg);
    out->action = res.action;
    out->rule = res.rule;
    out->quota_used = res.quota_used;
    if (held != stack_held)
        free(held);
}
