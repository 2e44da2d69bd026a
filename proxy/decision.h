/* One policy decision from what a connection knows: identity, roles, the
 * clock in the configured zone, quota usage. Shared by the daemon and
 * `explain`, so both decide the same way. No libevent. */
#ifndef SG_DECISION_H
#define SG_DECISION_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "policy.h"

struct snapshot;

struct decision_in {
    const struct snapshot *snap;
    const char *user; /* authenticated user, NULL: anonymous */
    const struct sockaddr *client;
    int platform;     /* catalog index, -1: unclassified */
    const char *method, *path; /* NULL in a tunnel */
    size_t path_len;
    const struct tm *local;    /* NULL: now, in the process time zone */
    policy_trace_fn trace;
    void *trace_arg;
};

struct decision {
    enum policy_action action;
    int rule;           /* -1: no rule matched */
    unsigned quota_used; /* of the deciding rule */
    char roles[512];    /* comma-joined, "-" when none */
    char identity[300]; /* the user, or the client address */
};

void decision_make(const struct decision_in *in, struct decision *out);
/* Quota period of a rule at local time tm (day or week number). */
int decision_period(const struct policy_rule *r, const struct tm *tm);
void decision_identity(const char *user, const struct sockaddr *client, char *buf, size_t size);

#endif
