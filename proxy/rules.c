#include "rules.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inifile.h"
#include "util/addr.h"

struct load {
    struct rules *r;
    struct diag *d;
    const char *file;
    int line;
    char section[128]; /* the section the keys belong to */
    int kind;          /* K_* of that section */
    int platform;      /* index for a platform section, -1 if broken */
    unsigned seen;     /* keys seen in this section */
    int section_line;  /* header line of the current section */
};

enum { K_NONE, K_PLATFORM, K_POLICY, K_ECH, K_BROKEN };

static const char *const platform_keys[] = {"category", "domains", "host_regex"};
static const char *const ech_keys[] = {"client_facing"};

static int
valid_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* A new section starts (libinih only tells us through the keys). */
static void
begin_section(struct load *l, const char *section)
{
    snprintf(l->section, sizeof(l->section), "%s", section ? section : "");
    l->seen = 0;
    l->platform = -1;
    l->kind = K_BROKEN;
    const char *sp = strchr(section, ' ');
    char kind[32];
    size_t kl = sp ? (size_t)(sp - section) : strlen(section);
    if (kl >= sizeof(kind)) {
        diag_error(l->d, l->file, l->line, "unknown section [%s]", section);
        return;
    }
    memcpy(kind, section, kl);
    kind[kl] = '\0';
    const char *name = sp ? sp + 1 : "";
    while (*name == ' ')
        name++;
    if (strcmp(kind, "platform") == 0) {
        if (!valid_name(name)) {
            diag_error(l->d, l->file, l->line,
                       "[%s]: a platform needs a name of a-z, 0-9, - and _", section);
            return;
        }
        if (strcmp(name, "unclassified") == 0) {
            diag_error(l->d, l->file, l->line, "[%s]: 'unclassified' is reserved", section);
            return;
        }
        const char *err;
        int p = catalog_add_platform(l->r->catalog, name, NULL, l->file, l->line, &err);
        if (p < 0) {
            const struct catalog_platform *o =
                catalog_platform(l->r->catalog, catalog_find_platform(l->r->catalog, name));
            if (o)
                diag_error(l->d, l->file, l->line, "duplicate platform '%s' (first at %s:%d)",
                           name, o->file, o->line);
            else
                diag_error(l->d, l->file, l->line, "platform '%s': %s", name, err);
            return;
        }
        l->kind = K_PLATFORM;
        l->platform = p;
        return;
    }
    if (strcmp(kind, "role") == 0 || strcmp(kind, "schedule") == 0 || strcmp(kind, "rule") == 0) {
        if (policy_begin_section(l->r->policy, kind, name, l->file, l->line, l->d) == 0)
            l->kind = K_POLICY;
        return;
    }
    if (strcmp(kind, "ech") == 0) {
        if (*name != '\0')
            diag_error(l->d, l->file, l->line, "[%s]: the [ech] section takes no name", section);
        else
            l->kind = K_ECH;
        return;
    }
    diag_error(l->d, l->file, l->line,
               "unknown section [%s] (expected platform, role, schedule, rule or ech)", section);
}

struct item_ctx {
    struct load *l;
    int failed;
};

static int
add_domain_item(void *arg, const char *item)
{
    struct item_ctx *x = arg;
    struct load *l = x->l;
    char err[512];
    if (item == NULL) {
        diag_error(l->d, l->file, l->line, "domain too long");
        x->failed = 1;
        return 0;
    }
    if (catalog_add_domain(l->r->catalog, l->platform, item, l->file, l->line, err,
                           sizeof(err)) < 0) {
        diag_error(l->d, l->file, l->line, "%s", err);
        x->failed = 1;
    }
    return 0; /* report every bad item of the line */
}

static int
add_ech_item(void *arg, const char *item)
{
    struct item_ctx *x = arg;
    struct load *l = x->l;
    char err[512];
    if (item == NULL) {
        diag_error(l->d, l->file, l->line, "domain too long");
        x->failed = 1;
        return 0;
    }
    if (catalog_add_ech_name(l->r->catalog, item, err, sizeof(err)) < 0) {
        diag_error(l->d, l->file, l->line, "%s", err);
        x->failed = 1;
    }
    return 0; /* report every bad item of the line */
}

/* [ech] client_facing = NAME, ...: the outer SNI names of ECH servers. */
static int
ech_key(struct load *l, const char *key, const char *value, int continued)
{
    if (strcmp(key, ech_keys[0]) != 0) {
        diag_error(l->d, l->file, l->line, "unknown key '%s' in [ech] (expected client_facing)",
                   key);
        return -1;
    }
    if (!continued) {
        if (l->seen & 1u) {
            diag_error(l->d, l->file, l->line, "duplicate key '%s' in [ech]", key);
            return -1;
        }
        l->seen |= 1u;
    }
    struct item_ctx x = {l, 0};
    list_foreach(value, add_ech_item, &x);
    return x.failed ? -1 : 0;
}

static int
on_key(void *arg, const char *file, int line, int section_line, const char *section, const char *key,
       const char *value, int continued)
{
    struct load *l = arg;
    l->file = file;
    l->line = line;
    if (section[0] == '\0') {
        diag_error(l->d, file, line, "%s: key outside of a section", key);
        return -1;
    }
    if (strcmp(section, l->section) != 0 || section_line != l->section_line) {
        l->section_line = section_line;
        /* Sections are reported at their header line. */
        l->line = section_line > 0 ? section_line : line;
        begin_section(l, section);
        l->line = line;
    }
    if (l->kind == K_BROKEN)
        return 0; /* already reported once for the section */
    if (l->kind == K_POLICY)
        return policy_key(l->r->policy, key, value, continued, file, line, l->d);
    if (l->kind == K_ECH)
        return ech_key(l, key, value, continued);

    int idx = -1;
    for (size_t i = 0; i < sizeof(platform_keys) / sizeof(platform_keys[0]); i++)
        if (strcmp(key, platform_keys[i]) == 0)
            idx = (int)i;
    if (idx < 0) {
        diag_error(l->d, file, line, "unknown key '%s' in [%s] (expected category, domains, "
                                     "host_regex)", key, section);
        return -1;
    }
    if (continued && idx != 1) {
        diag_error(l->d, file, line, "%s: only lists continue on indented lines", key);
        return -1;
    }
    if (!continued) {
        if (l->seen & (1u << idx)) {
            diag_error(l->d, file, line, "duplicate key '%s' in [%s]", key, section);
            return -1;
        }
        l->seen |= 1u << idx;
    }
    struct catalog_platform *p =
        (struct catalog_platform *)catalog_platform(l->r->catalog, l->platform);
    if (idx == 0) {
        int rc = 0;
        if (!valid_name(value)) {
            diag_error(l->d, file, line, "category = %s: expected a name of a-z, 0-9, - and _",
                       value);
            rc = -1;
        } else if (strcmp(value, POLICY_OPAQUE) == 0) {
            diag_error(l->d, file, line,
                       "category = %s: reserved for tunnels that cannot be classified", value);
            rc = -1;
        }
        /* Kept even when refused (the load fails anyway), so that the
         * platform is not also reported as having no category. */
        char *cat = strdup(value[0] ? value : "-");
        if (cat == NULL)
            return -1;
        free(p->category);
        p->category = cat;
        return rc;
    }
    if (idx == 1) {
        struct item_ctx x = {l, 0};
        list_foreach(value, add_domain_item, &x);
        return x.failed ? -1 : 0;
    }
    char err[512];
    if (catalog_add_regex(l->r->catalog, l->platform, value, file, line, err, sizeof(err)) < 0) {
        diag_error(l->d, file, line, "%s", err);
        return -1;
    }
    return 0;
}

static struct rules *
rules_new(void)
{
    struct rules *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->catalog = catalog_new();
    r->policy = policy_new();
    if (r->catalog == NULL || r->policy == NULL) {
        catalog_free(r->catalog);
        policy_free(r->policy);
        free(r);
        return NULL;
    }
    return r;
}

static void
check_platforms(struct rules *r, struct diag *d)
{
    for (size_t i = 0; i < catalog_platform_count(r->catalog); i++) {
        const struct catalog_platform *p = catalog_platform(r->catalog, (int)i);
        if (p->category[0] == '\0')
            diag_error(d, p->file, p->line, "platform '%s' has no category", p->name);
    }
}

static int
ini_name(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 4 && strcmp(e->d_name + n - 4, ".ini") == 0;
}

/* After every file is read: names in rules refer to platforms, roles and
 * schedules of any file. Runs after errors too, so that one check reports
 * every problem; the can-never-match lint only on a clean load. */
static struct rules *
finish(struct rules *r, const struct policy_idfiles *ids, size_t before, struct diag *d)
{
    check_platforms(r, d);
    if (policy_finish(r->policy, r->catalog, d->errors == before, d) == 0)
        r->nrules = policy_rule_count(r->policy);
    if (ids != NULL)
        policy_check_identities(r->policy, ids, d);
    if (d->errors != before) {
        rules_free(r);
        return NULL;
    }
    return r;
}

struct rules *
rules_load_ids(const char *dir, const struct policy_idfiles *ids, struct diag *d)
{
    size_t before = d->errors;
    struct rules *r = rules_new();
    if (r == NULL) {
        diag_error(d, dir, 0, "out of memory");
        return NULL;
    }
    struct dirent **list;
    int n = scandir(dir, &list, ini_name, alphasort);
    if (n < 0) {
        diag_error(d, dir, 0, "cannot read the rules folder");
        rules_free(r);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
        struct load l = {.r = r, .d = d, .kind = K_NONE, .platform = -1};
        inifile_parse(path, path, on_key, &l, d);
        r->nfiles++;
        free(list[i]);
    }
    free(list);
    return finish(r, ids, before, d);
}

struct rules *
rules_load(const char *dir, struct diag *d)
{
    return rules_load_ids(dir, NULL, d);
}

struct rules *
rules_load_string(const char *text, const char *name, struct diag *d)
{
    size_t before = d->errors;
    struct rules *r = rules_new();
    if (r == NULL)
        return NULL;
    struct load l = {.r = r, .d = d, .kind = K_NONE, .platform = -1};
    inifile_parse_string(text, name, on_key, &l, d);
    r->nfiles = 1;
    return finish(r, NULL, before, d);
}

void
rules_free(struct rules *r)
{
    if (r == NULL)
        return;
    catalog_free(r->catalog);
    policy_free(r->policy);
    free(r);
}
