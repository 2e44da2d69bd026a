#include "policy.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog.h"
#include "htpasswd.h"
#include "timewin.h"
#include "util/addr.h"
#include "util/num.h"

struct policy_schedule {
    char *name;
    const char *file;
    int line;
    char *raw_when, *raw_except;
    int line_when, line_except;
    struct timewin *w; /* compiled by policy_finish */
};

enum { SEC_NONE, SEC_ROLE, SEC_SCHEDULE, SEC_RULE, SEC_BROKEN };

struct policy {
    struct policy_role *roles;
    size_t nroles;
    struct policy_schedule *scheds;
    size_t nscheds;
    struct policy_rule *rules;
    size_t nrules;
    char **files; /* interned */
    size_t nfiles;
    int sec;      /* kind of the current section */
    unsigned seen;
    int last_key; /* for continuation lines */
    const struct catalog *cat; /* set by policy_finish */
    /* Stands for a schedule that failed to compile, so that what refers to
     * it is not reported again as "unknown schedule" (one root cause, one
     * message). Created on first need; a policy holding it never loads. */
    struct timewin *broken_sched;
};

static const char *
intern(struct policy *p, const char *file)
{
    for (size_t i = 0; i < p->nfiles; i++)
        if (strcmp(p->files[i], file) == 0)
            return p->files[i];
    char **nv = realloc(p->files, (p->nfiles + 1) * sizeof(*nv));
    if (nv == NULL)
        return NULL;
    p->files = nv;
    if ((p->files[p->nfiles] = strdup(file)) == NULL)
        return NULL;
    return p->files[p->nfiles++];
}

struct policy *
policy_new(void)
{
    return calloc(1, sizeof(struct policy));
}

static void
free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nroles; i++) {
        struct policy_role *r = &p->roles[i];
        free(r->name);
        free_strv(r->users, r->nusers);
        free_strv(r->groups, r->ngroups);
        if (r->networks) {
            cidrset_free(r->networks);
            free(r->networks);
        }
    }
    free(p->roles);
    for (size_t i = 0; i < p->nscheds; i++) {
        free(p->scheds[i].name);
        free(p->scheds[i].raw_when);
        free(p->scheds[i].raw_except);
        timewin_free(p->scheds[i].w);
    }
    free(p->scheds);
    for (size_t i = 0; i < p->nrules; i++) {
        struct policy_rule *r = &p->rules[i];
        free(r->name);
        free(r->roles);
        free(r->platforms);
        free_strv(r->categories, r->ncategories);
        timewin_free(r->when);
        free_strv(r->methods, r->nmethods);
        pcre2_code_free(r->path_re);
        free(r->path_regex);
        free(r->message);
        free(r->raw_roles);
        free(r->raw_platforms);
        free(r->raw_when);
    }
    free(p->rules);
    timewin_free(p->broken_sched); /* after everything that may refer to it */
    free_strv(p->files, p->nfiles);
    free(p);
}

static int
valid_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

static int
grow(void **v, size_t n, size_t size)
{
    void *nv = realloc(*v, (n + 1) * size);
    if (nv == NULL)
        return -1;
    *v = nv;
    memset((char *)nv + n * size, 0, size);
    return 0;
}

int
policy_begin_section(struct policy *p, const char *kind, const char *name, const char *file,
                     int line, struct diag *d)
{
    const char *f = intern(p, file);
    p->sec = SEC_BROKEN;
    p->seen = 0;
    p->last_key = -1;
    if (f == NULL || !valid_name(name)) {
        diag_error(d, file, line, "[%s %s]: a %s needs a name of a-z, 0-9, - and _", kind, name,
                   kind);
        return -1;
    }
    if (strcmp(kind, "role") == 0) {
        for (size_t i = 0; i < p->nroles; i++)
            if (strcmp(p->roles[i].name, name) == 0) {
                diag_error(d, file, line, "duplicate role '%s' (first at %s:%d)", name,
                           p->roles[i].file, p->roles[i].line);
                return -1;
            }
        if (grow((void **)&p->roles, p->nroles, sizeof(*p->roles)) < 0)
            return -1;
        struct policy_role *r = &p->roles[p->nroles++];
        r->name = strdup(name);
        r->file = f;
        r->line = line;
        r->networks = calloc(1, sizeof(struct cidrset));
        p->sec = SEC_ROLE;
        return r->name && r->networks ? 0 : -1;
    }
    if (strcmp(kind, "schedule") == 0) {
        for (size_t i = 0; i < p->nscheds; i++)
            if (strcmp(p->scheds[i].name, name) == 0) {
                diag_error(d, file, line, "duplicate schedule '%s' (first at %s:%d)", name,
                           p->scheds[i].file, p->scheds[i].line);
                return -1;
            }
        if (grow((void **)&p->scheds, p->nscheds, sizeof(*p->scheds)) < 0)
            return -1;
        struct policy_schedule *s = &p->scheds[p->nscheds++];
        s->name = strdup(name);
        s->file = f;
        s->line = line;
        p->sec = SEC_SCHEDULE;
        return s->name ? 0 : -1;
    }
    for (size_t i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i].name, name) == 0) {
            diag_error(d, file, line, "duplicate rule '%s' (first at %s:%d)", name,
                       p->rules[i].file, p->rules[i].line);
            return -1;
        }
    if (grow((void **)&p->rules, p->nrules, sizeof(*p->rules)) < 0)
        return -1;
    struct policy_rule *r = &p->rules[p->nrules++];
    r->name = strdup(name);
    r->file = f;
    r->line = line;
    r->any_role = 1;
    r->action = POLICY_ALLOW;
    r->warn_for_ms = 3600 * 1000;
    r->line_when = line;
    p->sec = SEC_RULE;
    return r->name ? 0 : -1;
}

/* --- lists ---------------------------------------------------------------- */

struct strv_ctx {
    char ***v;
    size_t *n;
    int lower;
    int failed;
};

static int
strv_add(void *arg, const char *item)
{
    struct strv_ctx *x = arg;
    if (item == NULL) {
        x->failed = 1;
        return -1;
    }
    char *s = strdup(item);
    char **nv = s ? realloc(*x->v, (*x->n + 1) * sizeof(char *)) : NULL;
    if (nv == NULL) {
        free(s);
        x->failed = 1;
        return -1;
    }
    if (x->lower)
        for (char *q = s; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q + 32);
    nv[(*x->n)++] = s;
    *x->v = nv;
    return 0;
}

static int
add_list(char ***v, size_t *n, const char *value, int lower)
{
    struct strv_ctx x = {v, n, lower, 0};
    list_foreach(value, strv_add, &x);
    return x.failed ? -1 : 0;
}

/* Appends a continuation line to raw text kept for policy_finish. A list
 * continued on the next line usually ends its line with a comma
 * ("when = mon-fri 12:00-13:30,"): no second one is added. */
static int
append_raw(char **raw, const char *value)
{
    size_t a = *raw ? strlen(*raw) : 0, b = strlen(value);
    while (a && ((*raw)[a - 1] == ' ' || (*raw)[a - 1] == '\t'))
        a--;
    if (a && (*raw)[a - 1] == ',')
        a--;
    char *n = realloc(*raw, a + b + 3);
    if (n == NULL)
        return -1;
    if (a) {
        n[a] = ',';
        n[a + 1] = ' ';
        memcpy(n + a + 2, value, b + 1);
    } else {
        memcpy(n, value, b + 1);
    }
    *raw = n;
    return 0;
}

struct cidr_ctx {
    struct cidrset *set;
    const char *file;
    int line;
    struct diag *d;
    int failed;
};

static int
cidr_add(void *arg, const char *item)
{
    struct cidr_ctx *x = arg;
    struct cidr c;
    const char *err;
    if (item == NULL || addr_parse_cidr(item, &c, &err) < 0) {
        diag_error(x->d, x->file, x->line, "networks = %s: %s", item ? item : "...",
                   item ? err : "item too long");
        x->failed = 1;
        return 0;
    }
    if (cidrset_add(x->set, &c) < 0)
        x->failed = 1;
    return 0;
}

/* --- keys ------------------------------------------------------------------ */

static const char *const role_keys[] = {"users", "groups", "networks", NULL};
static const char *const sched_keys[] = {"when", "except", NULL};
static const char *const rule_keys[] = {"roles",  "platforms", "categories", "when",
                                        "methods", "path_regex", "action",   "quota",
                                        "warn_for", "message",   NULL};
/* Which keys take lists, or text (message), and so continuation lines. */
static const unsigned role_lists = 7, sched_lists = 3, rule_lists = 1 | 2 | 4 | 8 | 16 | 512;

static int
key_index(const char *const *keys, const char *key)
{
    for (int i = 0; keys[i]; i++)
        if (strcmp(keys[i], key) == 0)
            return i;
    return -1;
}

static int
rule_key(struct policy *p, struct policy_rule *r, int k, const char *value, const char *file,
         int line, struct diag *d)
{
    const char *err;
    char msg[512];
    switch (k) {
    case 0: /* roles */
        r->line_roles = r->raw_roles ? r->line_roles : line;
        return append_raw(&r->raw_roles, value);
    case 1: /* platforms */
    case 2: /* categories */
        if (k == 2) {
            r->line_categories = r->line_categories ? r->line_categories : line;
            return add_list(&r->categories, &r->ncategories, value, 1);
        }
        r->line_platforms = r->raw_platforms ? r->line_platforms : line;
        return append_raw(&r->raw_platforms, value);
    case 3: /* when */
        r->line_when = r->raw_when ? r->line_when : line;
        return append_raw(&r->raw_when, value);
    case 4: { /* methods */
        size_t first = r->nmethods;
        if (add_list(&r->methods, &r->nmethods, value, 0) < 0)
            return -1;
        /* Request methods are case-sensitive (RFC 9110 9.1) and compared as
         * sent: "get" in a rule is read as the GET clients send, and said. */
        for (size_t i = first; i < r->nmethods; i++) {
            char *m = r->methods[i];
            if (strpbrk(m, "abcdefghijklmnopqrstuvwxyz") == NULL)
                continue;
            char *was = strdup(m);
            if (was == NULL)
                return -1;
            for (char *q = m; *q; q++)
                if (*q >= 'a' && *q <= 'z')
                    *q = (char)(*q - 32);
            diag_warning(d, file, line,
                         "rule '%s': methods = %s: read as %s; request methods are "
                         "case-sensitive (RFC 9110 9.1) and a request that says '%s' does not "
                         "match",
                         r->name, was, m, was);
            free(was);
        }
        return 0;
    }
    case 5: { /* path_regex */
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)value, PCRE2_ZERO_TERMINATED,
                                       PCRE2_NO_AUTO_CAPTURE, &code, &off, NULL);
        if (re == NULL) {
            PCRE2_UCHAR m[256];
            pcre2_get_error_message(code, m, sizeof(m));
            diag_error(d, file, line, "path_regex: bad regex at offset %zu: %s", (size_t)off,
                       (char *)m);
            return -1;
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
        r->path_re = re;
        r->path_regex = strdup(value);
        return r->path_regex ? 0 : -1;
    }
    case 6: /* action */
        r->line_action = line;
        if (strcasecmp(value, "allow") == 0)
            r->action = POLICY_ALLOW;
        else if (strcasecmp(value, "deny") == 0)
            r->action = POLICY_DENY;
        else if (strcasecmp(value, "warn") == 0)
            r->action = POLICY_WARN;
        else if (strcasecmp(value, "monitor") == 0)
            r->action = POLICY_MONITOR;
        else {
            diag_error(d, file, line, "action = %s: expected allow, deny, warn or monitor",
                       value);
            return -1;
        }
        return 0;
    case 7: /* quota */
        if (timewin_parse_quota(value, &r->quota_min, &r->quota_weekly, msg, sizeof(msg)) < 0) {
            diag_error(d, file, line, "quota = %s: %s", value, msg);
            return -1;
        }
        return 0;
    case 8: { /* warn_for */
        uint64_t ms = 0;
        if (num_parse_duration(value, &ms, &err) < 0) {
            diag_error(d, file, line, "warn_for = %s: %s", value, err);
            return -1;
        }
        if (ms < 1000) {
            diag_error(d, file, line, "warn_for = %s: must be at least 1s", value);
            return -1;
        }
        r->warn_for_ms = ms;
        return 0;
    }
    case 9: /* message */
        free(r->message);
        r->message = strdup(value);
        return r->message ? 0 : -1;
    }
    (void)p;
    return -1;
}

int
policy_key(struct policy *p, const char *key, const char *value, int continued, const char *file,
           int line, struct diag *d)
{
    const char *const *keys;
    unsigned lists;
    const char *kind;
    switch (p->sec) {
    case SEC_ROLE:
        keys = role_keys, lists = role_lists, kind = "role";
        break;
    case SEC_SCHEDULE:
        keys = sched_keys, lists = sched_lists, kind = "schedule";
        break;
    case SEC_RULE:
        keys = rule_keys, lists = rule_lists, kind = "rule";
        break;
    default:
        return 0; /* the section was reported already */
    }
    int k = key_index(keys, key);
    if (k < 0) {
        char known[256] = "";
        for (int i = 0; keys[i]; i++) {
            strncat(known, i ? ", " : "", sizeof(known) - strlen(known) - 1);
            strncat(known, keys[i], sizeof(known) - strlen(known) - 1);
        }
        diag_error(d, file, line, "unknown key '%s' in a %s (expected %s)", key, kind, known);
        return -1;
    }
    if (continued && !(lists & (1u << k))) {
        diag_error(d, file, line, "%s: only lists continue on indented lines", key);
        return -1;
    }
    if (!continued) {
        if (p->seen & (1u << k)) {
            diag_error(d, file, line, "duplicate key '%s'", key);
            return -1;
        }
        p->seen |= 1u << k;
    }
    /* An empty condition would silently mean "everything" (platforms,
     * categories, methods, path_regex) or "nobody" (roles): refused. */
    if (p->sec == SEC_RULE && !continued && k <= 5 && k != 3 &&
        value[strspn(value, k == 5 ? " \t" : " \t,")] == '\0') {
        diag_error(d, file, line, "%s: empty value (leave the key out%s)", key,
                   k == 0 ? " or write roles = * for everyone" : " for no condition");
        return -1;
    }
    if (p->sec == SEC_ROLE) {
        struct policy_role *r = &p->roles[p->nroles - 1];
        if (k == 0) {
            r->line_users = r->line_users ? r->line_users : line;
            return add_list(&r->users, &r->nusers, value, 0);
        }
        if (k == 1) {
            r->line_groups = r->line_groups ? r->line_groups : line;
            return add_list(&r->groups, &r->ngroups, value, 0);
        }
        struct cidr_ctx x = {r->networks, file, line, d, 0};
        list_foreach(value, cidr_add, &x);
        return x.failed ? -1 : 0;
    }
    if (p->sec == SEC_SCHEDULE) {
        struct policy_schedule *s = &p->scheds[p->nscheds - 1];
        if (k == 0) {
            s->line_when = s->raw_when ? s->line_when : line;
            return append_raw(&s->raw_when, value);
        }
        s->line_except = s->raw_except ? s->line_except : line;
        return append_raw(&s->raw_except, value);
    }
    struct policy_rule *r = &p->rules[p->nrules - 1];
    if (k == 9 && continued && r->message) {
        /* A long message goes on over indented lines, joined by a space. */
        size_t n = strlen(r->message) + strlen(value) + 2;
        char *joined = malloc(n);
        if (joined == NULL)
            return -1;
        snprintf(joined, n, "%s%s%s", r->message, *r->message && *value ? " " : "", value);
        free(r->message);
        r->message = joined;
        return 0;
    }
    return rule_key(p, r, k, value, file, line, d);
}

/* --- finish: resolve names, compile windows, lint ----------------------- */

struct resolve_ctx {
    struct policy *p;
    size_t upto; /* schedules visible: only those defined before */
};

static const struct timewin *
resolve_sched(void *arg, const char *name)
{
    struct resolve_ctx *x = arg;
    for (size_t i = 0; i < x->upto; i++) {
        if (strcmp(x->p->scheds[i].name, name) != 0)
            continue;
        if (x->p->scheds[i].w != NULL)
            return x->p->scheds[i].w;
        /* Broken, and reported at its own line: what uses it is not. */
        if (x->p->broken_sched == NULL)
            x->p->broken_sched = timewin_parse("never", NULL, NULL, NULL, 0);
        return x->p->broken_sched;
    }
    return NULL;
}

struct idx_ctx {
    struct policy *p;
    const struct catalog *cat;
    struct policy_rule *r;
    struct diag *d;
    int failed;
    int which; /* 0 roles, 1 platforms */
};

static int
idx_add(void *arg, const char *item)
{
    struct idx_ctx *x = arg;
    struct policy_rule *r = x->r;
    int line = x->which ? r->line_platforms : r->line_roles;
    if (item == NULL) {
        x->failed = 1;
        return 0;
    }
    if (x->which == 0) {
        if (strcmp(item, "*") == 0) {
            r->any_role = 1;
            return 0;
        }
        for (size_t i = 0; i < x->p->nroles; i++) {
            if (strcmp(x->p->roles[i].name, item) == 0) {
                int *nv = realloc(r->roles, (r->nroles + 1) * sizeof(int));
                if (nv == NULL)
                    return -1;
                nv[r->nroles++] = (int)i;
                r->roles = nv;
                return 0;
            }
        }
        diag_error(x->d, r->file, line, "rule '%s': unknown role '%s'", r->name, item);
        x->failed = 1;
        return 0;
    }
    int idx = strcmp(item, "unclassified") == 0 ? POLICY_UNCLASSIFIED
                                                  : catalog_find_platform(x->cat, item);
    if (idx == -1 && strcmp(item, POLICY_OPAQUE) == 0) {
        diag_error(x->d, r->file, line,
                   "rule '%s': '%s' is a category: write categories = %s", r->name, item, item);
        x->failed = 1;
        return 0;
    }
    if (idx == -1) {
        diag_error(x->d, r->file, line, "rule '%s': unknown platform '%s'", r->name, item);
        x->failed = 1;
        return 0;
    }
    int *nv = realloc(r->platforms, (r->nplatforms + 1) * sizeof(int));
    if (nv == NULL)
        return -1;
    nv[r->nplatforms++] = idx;
    r->platforms = nv;
    return 0;
}

static int
category_known(const struct catalog *cat, const char *c)
{
    if (strcmp(c, POLICY_OPAQUE) == 0)
        return 1;
    for (size_t i = 0; i < catalog_platform_count(cat); i++)
        if (strcmp(catalog_platform(cat, (int)i)->category, c) == 0)
            return 1;
    return 0;
}

static int
has_int(const int *v, size_t n, int x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return 1;
    return 0;
}

static int
has_str(char *const *v, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], x) == 0)
            return 1;
    return 0;
}

int
policy_rule_has_platform(const struct policy_rule *r, const struct catalog *cat, int idx)
{
    if (r->nplatforms == 0 && r->ncategories == 0)
        return 1;
    if (has_int(r->platforms, r->nplatforms, idx < 0 ? POLICY_UNCLASSIFIED : idx))
        return 1;
    const struct catalog_platform *pl = catalog_platform(cat, idx);
    return pl && has_str(r->categories, r->ncategories, pl->category);
}

/* Rule a, with no condition but roles and platforms, decides before b
 * whenever b could match. */
static int
covers(const struct policy_rule *a, const struct policy_rule *b, const struct catalog *cat)
{
    if (a->when || a->quota_min || a->nmethods || a->path_re)
        return 0;
    if (!a->any_role) {
        if (b->any_role)
            return 0;
        for (size_t i = 0; i < b->nroles; i++)
            if (!has_int(a->roles, a->nroles, b->roles[i]))
                return 0;
    }
    if (a->nplatforms == 0 && a->ncategories == 0)
        return 1;
    if (b->nplatforms == 0 && b->ncategories == 0)
        return 0;
    for (size_t i = 0; i < b->nplatforms; i++)
        if (!policy_rule_has_platform(a, cat, b->platforms[i] == POLICY_UNCLASSIFIED
                                                  ? -1
                                                  : b->platforms[i]))
            return 0;
    for (size_t i = 0; i < b->ncategories; i++)
        if (!has_str(a->categories, a->ncategories, b->categories[i]))
            return 0;
    return 1;
}

int
policy_finish(struct policy *p, const struct catalog *cat, int lint, struct diag *d)
{
    size_t before = d->errors;
    char err[512];
    p->cat = cat;
    for (size_t i = 0; i < p->nscheds; i++) {
        struct policy_schedule *s = &p->scheds[i];
        struct resolve_ctx x = {p, i};
        if (s->raw_when == NULL) {
            diag_error(d, s->file, s->line, "schedule '%s' has no 'when'", s->name);
            continue;
        }
        s->w = timewin_parse(s->raw_when, resolve_sched, &x, err, sizeof(err));
        if (s->w == NULL) {
            diag_error(d, s->file, s->line_when, "schedule '%s': when = %s: %s", s->name,
                       s->raw_when, err);
            continue;
        }
        if (s->raw_except) {
            struct timewin *ex = timewin_parse(s->raw_except, resolve_sched, &x, err, sizeof(err));
            if (ex == NULL)
                diag_error(d, s->file, s->line_except, "schedule '%s': except = %s: %s",
                           s->name, s->raw_except, err);
            else
                timewin_set_except(s->w, ex);
        }
    }
    for (size_t i = 0; i < p->nrules; i++) {
        struct policy_rule *r = &p->rules[i];
        if (r->raw_roles) {
            r->any_role = 0;
            struct idx_ctx x = {p, cat, r, d, 0, 0};
            list_foreach(r->raw_roles, idx_add, &x);
        }
        if (r->raw_platforms) {
            struct idx_ctx x = {p, cat, r, d, 0, 1};
            list_foreach(r->raw_platforms, idx_add, &x);
        }
        if (r->line_action == 0)
            diag_error(d, r->file, r->line,
                       "rule '%s' has no action (expected allow, deny, warn or monitor)", r->name);
        for (size_t k = 0; k < r->ncategories; k++)
            if (!category_known(cat, r->categories[k]))
                diag_error(d, r->file, r->line_categories ? r->line_categories : r->line,
                           "rule '%s': no platform has category '%s'", r->name, r->categories[k]);
        if (r->raw_when) {
            struct resolve_ctx x = {p, p->nscheds};
            r->when = timewin_parse(r->raw_when, resolve_sched, &x, err, sizeof(err));
            if (r->when == NULL)
                diag_error(d, r->file, r->line_when, "rule '%s': when = %s: %s", r->name,
                           r->raw_when, err);
            else if (timewin_is_always(r->when)) {
                timewin_free(r->when);
                r->when = NULL;
            }
        }
        if (r->quota_min && r->action != POLICY_ALLOW && r->action != POLICY_MONITOR &&
            r->action != POLICY_WARN)
            diag_error(d, r->file, r->line, "rule '%s': a quota only makes sense on allow, "
                                            "warn or monitor", r->name);
    }
    if (d->errors != before)
        return -1;
    if (!lint)
        return 0;
    for (size_t j = 0; j < p->nrules; j++)
        for (size_t i = 0; i < j; i++)
            if (covers(&p->rules[i], &p->rules[j], cat)) {
                diag_warning(d, p->rules[j].file, p->rules[j].line,
                             "rule '%s' can never match: rule '%s' at %s:%d always decides "
                             "first",
                             p->rules[j].name, p->rules[i].name, p->rules[i].file,
                             p->rules[i].line);
                break;
            }
    return 0;
}

/* "a, b, c" from v into buf. */
static void
join(char *const *v, size_t n, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++) {
        int w = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", v[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

void
policy_check_identities(const struct policy *p, const struct policy_idfiles *ids,
                        struct diag *d)
{
    char list[512];
    for (size_t i = 0; i < p->nroles; i++) {
        const struct policy_role *r = &p->roles[i];
        /* A basic_helper or group_helper answers for names no file holds. */
        if (r->nusers && ids->htpasswd_path == NULL && !ids->user_helper) {
            join(r->users, r->nusers, list, sizeof(list));
            diag_warning(d, r->file, r->line_users,
                       "role '%s': users = %s, but %s sets no [auth] htpasswd, basic_helper or "
                       "negotiate_helper: no one signs in, so the role can never match by user",
                       r->name, list, ids->config);
        } else if (ids->htpasswd != NULL) {
            for (size_t k = 0; k < r->nusers; k++)
                if (htpasswd_hash(ids->htpasswd, r->users[k]) == NULL)
                    diag_warning(d, r->file, r->line_users,
                                 "role '%s': user '%s' is not in %s: the role does not match "
                                 "that name until it is added there",
                                 r->name, r->users[k], ids->htpasswd_path);
        }
        if (r->ngroups && ids->groups_path == NULL && !ids->group_helper) {
            join(r->groups, r->ngroups, list, sizeof(list));
            diag_warning(d, r->file, r->line_groups,
                       "role '%s': groups = %s, but %s sets no [auth] groups file or "
                       "group_helper: the role can never match by group",
                       r->name, list, ids->config);
        } else if (ids->groups != NULL) {
            for (size_t k = 0; k < r->ngroups; k++)
                if (!htgroups_has_group(ids->groups, r->groups[k]))
                    diag_warning(d, r->file, r->line_groups,
                                 "role '%s': group '%s' is not in the groups file %s: the "
                                 "role does not match by it until it is added there",
                                 r->name, r->groups[k], ids->groups_path);
        }
    }
}

size_t
policy_rule_count(const struct policy *p)
{
    return p->nrules;
}

size_t
policy_role_count(const struct policy *p)
{
    return p->nroles;
}

const struct policy_rule *
policy_rule(const struct policy *p, size_t i)
{
    return i < p->nrules ? &p->rules[i] : NULL;
}

const struct policy_role *
policy_role(const struct policy *p, size_t i)
{
    return i < p->nroles ? &p->roles[i] : NULL;
}

const char *
policy_action_name(enum policy_action a)
{
    switch (a) {
    case POLICY_ALLOW: return "allow";
    case POLICY_DENY: return "deny";
    case POLICY_WARN: return "warn";
    case POLICY_MONITOR: return "monitor";
    }
    return "?";
}

enum policy_action
policy_stricter(enum policy_action a, enum policy_action b)
{
    static const int rank[] = {[POLICY_ALLOW] = 0, [POLICY_MONITOR] = 1, [POLICY_WARN] = 2,
                               [POLICY_DENY] = 3};
    return rank[a] >= rank[b] ? a : b;
}

/* --- evaluation ------------------------------------------------------------ */

struct group_match {
    const struct policy_role *role;
    int hit;
    const char *name;
};

static int
role_holds(const struct policy_role *r, const struct policy_who *who, char *why, size_t size)
{
    if (who->user) {
        for (size_t i = 0; i < r->nusers; i++)
            if (strcmp(r->users[i], who->user) == 0) {
                if (why)
                    snprintf(why, size, "user %s", who->user);
                return 1;
            }
        if (who->groups)
            for (size_t i = 0; i < r->ngroups; i++)
                if (htgroups_member(who->groups, r->groups[i], who->user)) {
                    if (why)
                        snprintf(why, size, "group %s", r->groups[i]);
                    return 1;
                }
        for (size_t i = 0; i < r->ngroups; i++)
            for (size_t k = 0; k < who->nmember_of; k++)
                if (strcmp(r->groups[i], who->member_of[k]) == 0) {
                    if (why)
                        snprintf(why, size, "group %s", r->groups[i]);
                    return 1;
                }
    }
    const struct cidrset *nets = r->networks;
    if (who->client && nets) {
        for (size_t i = 0; i < nets->n; i++) {
            if (cidr_match(&nets->v[i], who->client)) {
                if (why) {
                    char ip[64];
                    struct sockaddr_storage ss;
                    memset(&ss, 0, sizeof(ss));
                    ss.ss_family = (sa_family_t)nets->v[i].family;
                    if (nets->v[i].family == AF_INET)
                        memcpy(&((struct sockaddr_in *)&ss)->sin_addr, nets->v[i].addr, 4);
                    else
                        memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, nets->v[i].addr, 16);
                    addr_format_ip((struct sockaddr *)&ss, ip, sizeof(ip));
                    snprintf(why, size, "network %s/%u", ip, nets->v[i].prefix);
                }
                return 1;
            }
        }
    }
    return 0;
}

void
policy_roles(const struct policy *p, const struct policy_who *who, uint8_t *held)
{
    for (size_t i = 0; i < p->nroles; i++)
        held[i] = (uint8_t)role_holds(&p->roles[i], who, NULL, 0);
}

void
policy_role_reason(const struct policy *p, size_t role, const struct policy_who *who, char *buf,
                   size_t size)
{
    buf[0] = '\0';
    if (role < p->nroles)
        role_holds(&p->roles[role], who, buf, size);
}

void
policy_roles_text(const struct policy *p, const uint8_t *held, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->nroles; i++) {
        if (!held[i])
            continue;
        int n = snprintf(buf + o, size - o, "%s%s", o ? "," : "", p->roles[i].name);
        if (n < 0 || (size_t)n >= size - o)
            break;
        o += (size_t)n;
    }
    if (o == 0)
        snprintf(buf, size, "-");
}

/* An opaque tunnel has no platform: rules naming platforms (unclassified
 * included) never match it, rules naming categories only when `opaque`
 * is one, rules naming neither always do. */
static int
rule_has_req(const struct policy *p, const struct policy_rule *r, const struct policy_req *req)
{
    if (req->platform < 0 && req->category && strcmp(req->category, POLICY_OPAQUE) == 0)
        return (r->nplatforms == 0 && r->ncategories == 0) ||
               has_str(r->categories, r->ncategories, POLICY_OPAQUE);
    return policy_rule_has_platform(r, p->cat, req->platform);
}

/* The condition of rule r that does not hold for req, NULL when r
 * decides. With `shape_unknown` (a tunnel not yet decrypted) methods and
 * path_regex are taken as holding: the requests inside are not known. */
static const char *
rule_fails_as(const struct policy *p, const struct policy_rule *r, const uint8_t *held,
              const struct policy_req *req, unsigned *used, int shape_unknown)
{
    if (!r->any_role) {
        int ok = 0;
        for (size_t i = 0; i < r->nroles && !ok; i++)
            ok = held[r->roles[i]];
        if (!ok)
            return "roles";
    }
    if (!rule_has_req(p, r, req))
        return r->nplatforms ? "platforms" : "categories";
    if (r->nmethods && !shape_unknown) {
        if (req->method == NULL || !has_str(r->methods, r->nmethods, req->method))
            return "methods";
    }
    if (r->path_re && !shape_unknown) {
        if (req->path == NULL)
            return "path_regex";
        pcre2_match_data *md = pcre2_match_data_create(1, NULL);
        int rc = md ? pcre2_match(r->path_re, (PCRE2_SPTR)req->path, req->path_len, 0, 0, md,
                                  NULL)
                    : -1;
        pcre2_match_data_free(md);
        if (rc < 0)
            return "path_regex";
    }
    if (r->when && !timewin_match(r->when, req->local))
        return "when";
    if (r->quota_min) {
        *used = req->quota_used ? req->quota_used(req->quota_arg, r) : 0;
        if (*used >= r->quota_min)
            return "quota";
    }
    return NULL;
}

static const char *
rule_fails(const struct policy *p, const struct policy_rule *r, const uint8_t *held,
           const struct policy_req *req, unsigned *used)
{
    return rule_fails_as(p, r, held, req, used, 0);
}

int
policy_needs_inspection(const struct policy *p, const uint8_t *held, const struct policy_req *req)
{
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];
        unsigned used = 0;
        if (rule_fails_as(p, r, held, req, &used, 1))
            continue;
        if (r->nmethods || r->path_re)
            return (int)i; /* it decides some requests inside, not others */
        return -1;         /* it decides every request inside alike */
    }
    return -1;
}

void
policy_eval(const struct policy *p, const uint8_t *held, const struct policy_req *req,
            struct policy_result *res, policy_trace_fn trace, void *trace_arg)
{
    res->action = POLICY_ALLOW;
    res->rule = -1;
    res->quota_used = 0;
    for (size_t i = 0; i < p->nrules; i++) {
        unsigned used = 0;
        const char *failed = rule_fails(p, &p->rules[i], held, req, &used);
        if (trace)
            trace(trace_arg, &p->rules[i], failed);
        if (failed)
            continue;
        res->action = p->rules[i].action;
        res->rule = (int)i;
        res->quota_used = used;
        return;
    }
}
