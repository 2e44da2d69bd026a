/* Roles, schedules and rules: who may use which platform when (pure: no
 * libevent, no clock, no logging). Loaded section by section from the
 * rules folder, then resolved and checked once every file is read;
 * evaluated per request with the time and quota usage passed in. */
#ifndef SG_POLICY_H
#define SG_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "diag.h"

struct catalog;
struct htgroups;
struct htpasswd;
struct timewin;

enum policy_action { POLICY_ALLOW, POLICY_DENY, POLICY_WARN, POLICY_MONITOR };

#define POLICY_UNCLASSIFIED (-2) /* in a rule's platform list */
/* The pseudo-category of tunnels whose bytes cannot be classified (TLS
 * without SNI to an IP address, neither TLS nor HTTP, an unreadable
 * ClientHello). No platform has it; only a rule naming it in `categories`,
 * or naming no platform or category at all, matches such a tunnel. */
#define POLICY_OPAQUE "opaque"

struct policy_role {
    char *name;
    const char *file;
    int line;
    char **users;
    size_t nusers;
    char **groups;
    size_t ngroups;
    void *networks; /* struct cidrset *, owned */
    int line_users, line_groups; /* first line of each key, 0: none */
};

struct policy_rule {
    char *name;
    const char *file;
    int line;
    int any_role;          /* roles = * or no roles key */
    int *roles;            /* indices */
    size_t nroles;
    int *platforms;        /* catalog indices or POLICY_UNCLASSIFIED */
    size_t nplatforms;
    char **categories;
    size_t ncategories;
    struct timewin *when;  /* NULL: always */
    char **methods;
    size_t nmethods;
    void *path_re;         /* pcre2_code *, owned */
    char *path_regex;
    enum policy_action action;
    unsigned quota_min;    /* 0: no quota */
    int quota_weekly;
    uint64_t warn_for_ms;
    char *message;
    /* raw text kept until policy_finish resolves names */
    char *raw_roles, *raw_platforms, *raw_when;
    int line_roles, line_platforms, line_when;
    int line_categories; /* first categories line */
    int line_action;     /* 0: no action key (an error) */
};

struct policy;

struct policy *policy_new(void);
void policy_free(struct policy *p);

/* Starts a [role|schedule|rule NAME] section. 0, or -1 after a diag. */
int policy_begin_section(struct policy *p, const char *kind, const char *name,
                         const char *file, int line, struct diag *d);
/* A key of the current section; `continued` for indented continuation
 * lines of lists. 0, or -1 after a diag. */
int policy_key(struct policy *p, const char *key, const char *value, int continued,
               const char *file, int line, struct diag *d);
/* After the last file: resolves role, platform and schedule names against
 * each other and the catalog, compiles windows and, with `lint`, warns
 * about rules that can never match. Runs after errors in the files too, so
 * that one check reports every problem; a name whose section was itself
 * reported (a schedule that did not compile) is not reported again where
 * it is used. Pass lint = 0 when the files had errors: the lint would judge
 * rules that are only partly read. 0, or -1 after diags. */
int policy_finish(struct policy *p, const struct catalog *cat, int lint, struct diag *d);

/* What the roles' users and groups are checked against: the [auth] files
 * (NULL path: not configured; a configured file that failed to load has a
 * NULL table and is not checked against). `config` names proxy.ini in the
 * messages. */
struct policy_idfiles {
    const char *config;
    const char *htpasswd_path;
    const struct htpasswd *htpasswd;
    const char *groups_path;
    const struct htgroups *groups;
    int user_helper;  /* [auth] basic_helper or negotiate_helper: any name may sign in */
    int group_helper; /* [auth] group_helper: groups are the directory's */
};

/* Checks every role's users and groups against ids, as FILE:LINE messages
 * at the role's keys. Errors: users without any [auth] htpasswd, or groups
 * without any [auth] groups file (the role could never match by them).
 * Warnings: a user not in the htpasswd file, a group not in the groups
 * file (either may be added later). */
void policy_check_identities(const struct policy *p, const struct policy_idfiles *ids,
                             struct diag *d);

size_t policy_rule_count(const struct policy *p);
size_t policy_role_count(const struct policy *p);
const struct policy_rule *policy_rule(const struct policy *p, size_t i);
const struct policy_role *policy_role(const struct policy *p, size_t i);
const char *policy_action_name(enum policy_action a);

/* Who is asking. */
struct policy_who {
    const char *user;                /* NULL: anonymous */
    const struct sockaddr *client;
    const struct htgroups *groups;   /* NULL: none */
    /* With [auth] group_helper: the groups the directory said the user is
     * in (of those the roles name); groups is NULL then. */
    const char *const *member_of;
    size_t nmember_of;
};

/* Marks in held[i] (policy_role_count entries) every role the client holds.
 * Why each holds is written by policy_role_reason. */
void policy_roles(const struct policy *p, const struct policy_who *who, uint8_t *held);
/* "user alice", "group marketing", "network 10.0.0.0/8" into buf. */
void policy_role_reason(const struct policy *p, size_t role, const struct policy_who *who,
                        char *buf, size_t size);
/* Comma-joined names of the held roles ("-" when none). */
void policy_roles_text(const struct policy *p, const uint8_t *held, char *buf, size_t size);

/* What is asked. */
struct policy_req {
    int platform;          /* catalog index, -1: unclassified */
    const char *category;  /* NULL when unclassified; POLICY_OPAQUE (platform -1) */
    const char *method;    /* NULL in a tunnel */
    const char *path;      /* NULL in a tunnel */
    size_t path_len;
    const struct tm *local;
    /* Minutes used in the current period of a quota rule, for this client. */
    unsigned (*quota_used)(void *arg, const struct policy_rule *r);
    void *quota_arg;
};

struct policy_result {
    enum policy_action action;
    int rule;              /* index of the deciding rule, -1: none */
    unsigned quota_used;   /* of the deciding rule, when it has a quota */
};

/* Called for every rule tried: `failed` names the condition that did not
 * hold, NULL for the rule that decides. */
typedef void (*policy_trace_fn)(void *arg, const struct policy_rule *r, const char *failed);

/* First matching rule decides; none: allow with rule -1. */
void policy_eval(const struct policy *p, const uint8_t *held, const struct policy_req *req,
                 struct policy_result *res, policy_trace_fn trace, void *trace_arg);
/* For a tunnel before any request inside it is read (req->method and
 * req->path are ignored): the index of the first rule that could decide a
 * request inside it and has `methods` or `path_regex`, -1 when there is
 * none. A rule "could decide" when its roles, platforms or categories,
 * schedule and quota hold; the first such rule without methods or
 * path_regex decides every request inside alike, and the rules after it
 * are never reached. -1 means the tunnel's own decision is every
 * request's: it need not be decrypted. */
int policy_needs_inspection(const struct policy *p, const uint8_t *held,
                            const struct policy_req *req);
/* True when rule r's platforms (or categories) cover platform idx. */
int policy_rule_has_platform(const struct policy_rule *r, const struct catalog *cat, int idx);
/* The stricter of two actions: deny > warn > monitor > allow. */
enum policy_action policy_stricter(enum policy_action a, enum policy_action b);

#endif
