/* One policy decision from what a connection knows: identity, roles, the
 * clock in the configured zone, quota usage. Shared by the daemon and
 * `explain`, so both decide the same way. No libevent. */
#ifndef SG_DECISION_H
#define SG_DECISION_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "policy.h"
#include "request.h"

struct snapshot;

/* Everything a decision depends on, built in one place by its caller
 * (gate.c for the daemon, explain.c for `socialgate explain`). */
struct decision_in {
    const struct snapshot *snap;
    const char *user;       /* the name the client gave, NULL: none */
    enum request_auth auth; /* what is known of its password */
    const struct sockaddr *client;
    int platform;     /* catalog index, -1: unclassified */
    const char *method, *path; /* NULL in a tunnel; path normalised
                                * (request_normalize_path) */
    size_t path_len;
    int tunnel;       /* a CONNECT (no page can be shown inside it, unless tls_pages) */
    int tls_pages;    /* a tunnel that gets its deny, warn or quota page inside TLS
                       * (decision_tls_page): a warn shows its page there */
    int opaque;       /* a tunnel whose bytes cannot be classified: the
                       * pseudo-category opaque (platform ignored), denied
                       * when no rule matches */
    int local;        /* a request for socialgate.local itself */
    time_t now;       /* wall clock, for warn Continues */
    const struct tm *local_tm; /* now in the configured zone; NULL: computed */
    /* [auth] group_helper: the groups (of those the roles name) the user
     * is in, asked before the decision (gate.c); NULL/0 otherwise. */
    const char *const *groups;
    size_t ngroups;
    policy_trace_fn trace;
    void *trace_arg;
};

/* The one verdict the daemon acts on and explain prints. */
enum verdict {
    VERDICT_ALLOW,          /* on to the upstream (allow, monitor, a warn
                             * already continued, any warn in a tunnel) */
    VERDICT_DENY_PAGE,      /* 403 deny page */
    VERDICT_WARN_PAGE,      /* 403 warn page with its Continue link */
    VERDICT_QUOTA_PAGE,     /* denied because a quota that allowed it is used up */
    VERDICT_ASK_AUTH,       /* 407: wrong credentials, or sign-in required, or
                             * an anonymous denial that signing in could turn
                             * (decision_sign_in_helps) */
    VERDICT_LOCAL,          /* socialgate.local answers */
    VERDICT_CHECK_PASSWORD, /* credentials to verify first, then decide again */
};

struct decision {
    enum verdict verdict;
    enum policy_action action; /* of the policy; meaningful when rule >= 0 or allowed */
    int rule;            /* -1: no rule matched (or no policy was needed) */
    int evaluated;       /* the policy ran (not for sign-in, local or checks) */
    unsigned quota_used; /* of the deciding rule */
    int quota_rule;      /* VERDICT_QUOTA_PAGE: the rule whose used-up quota
                          * made the next rule decide; -1 otherwise */
    const char *reason;  /* for the log (reason=), NULL: none */
    char roles[512];     /* comma-joined, "-" when none */
    char identity[300];  /* the user, or the client address */
};

/* The verdict for in: identity and sign-in first, then the policy. */
enum verdict decision_eval(const struct decision_in *in, struct decision *out);
/* The policy alone (roles, rules, schedules, quotas), for the verdict and
 * for the re-decision of an open transfer. in->auth must be settled: only
 * AUTH_OK makes in->user the identity. */
void decision_make(const struct decision_in *in, struct decision *out);
/* For a tunnel (in->method and in->path are not looked at): the first rule
 * that could decide a request inside it and needs its method or path
 * (policy_needs_inspection), -1 when the tunnel's own decision is every
 * request's. An opaque tunnel is never read: -1. in->auth must be
 * settled, as for decision_make. */
int decision_inspect_rule(const struct decision_in *in);
const char *decision_verdict_name(enum verdict v);
/* Whether an anonymous client denied for in could be allowed (or warned)
 * by signing in: some role that users hold by name or group, added to the
 * roles the client holds now, makes the policy not deny. Quotas are those
 * of the client as it is. */
int decision_sign_in_helps(const struct decision_in *in);
/* 1 when a tunnel to platform (-1: unclassified) that is denied, warned
 * about or out of quota gets its page inside TLS: [tls] has a CA, pages
 * is on, and neither the platform nor its category is exempt. */
int decision_tls_page(const struct snapshot *snap, int platform);
/* 1 when a tunnel to platform may be decrypted for its requests
 * (decision_inspect_rule tells whether it is): [tls] has a CA, inspect is
 * auto, and neither the platform nor its category is exempt. */
int decision_tls_inspects(const struct snapshot *snap, int platform);
/* Quota period of a rule at local time tm (day or week number). */
int decision_period(const struct policy_rule *r, const struct tm *tm);
void decision_identity(const char *user, const struct sockaddr *client, char *buf, size_t size);

#endif
