#define _XOPEN_SOURCE 700 /* nftw, in fuzz_tmp.h */
/* A rules file (platform, role, schedule and rule sections) through
 * rules_load_string. When it loads, the result is used as the proxy uses
 * it: a few hosts are classified, and the policy is evaluated for a few
 * identities, requests and local times. The same text is then loaded from
 * a folder with rules_load, as the daemon does: same verdict, same number
 * of problems and of rules. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "catalog.h"
#include "fuzz.h"
#include "fuzz_tmp.h"
#include "htpasswd.h"
#include "policy.h"
#include "rules.h"

static struct htgroups *groups;

static unsigned
quota_used(void *arg, const struct policy_rule *r)
{
    (void)r;
    return *(const unsigned *)arg;
}

static void
trace(void *arg, const struct policy_rule *r, const char *failed)
{
    (void)failed;
    FUZZ_CHECK(r != NULL && r->name != NULL);
    (*(size_t *)arg)++;
}

static void
use(const struct rules *r)
{
    static const char *const hosts[] = {
        "www.facebook.com", "m.YouTube.com.", "example.org:443", "xn--bcher-kva.example",
        "10.1.2.3", "[::1]", "a.b.c.d.e.f.g.h.tiktok.com", "", "-bad-.com", "bücher.example",
    };
    const struct catalog *cat = r->catalog;
    size_t nplat = catalog_platform_count(cat);
    for (size_t i = 0; i < nplat; i++) {
        const struct catalog_platform *p = catalog_platform(cat, (int)i);
        FUZZ_CHECK(p != NULL && p->name != NULL && p->category != NULL && p->category[0]);
        FUZZ_CHECK(catalog_find_platform(cat, p->name) == (int)i);
    }
    (void)catalog_domain_count(cat);
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        struct catalog_match m;
        catalog_classify(cat, hosts[i], strlen(hosts[i]), &m);
        FUZZ_CHECK(m.platform >= -1 && m.platform < (int)nplat);
    }

    const struct policy *pol = r->policy;
    size_t nroles = policy_role_count(pol);
    size_t nrules = policy_rule_count(pol);
    FUZZ_CHECK(nrules == r->nrules);
    uint8_t *held = calloc(nroles ? nroles : 1, 1);
    if (held == NULL)
        abort();

    struct sockaddr_in v4;
    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    inet_pton(AF_INET, "10.20.1.2", &v4.sin_addr);
    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof(v6));
    v6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::1", &v6.sin6_addr);
    const struct policy_who who[] = {
        {"alice", (const struct sockaddr *)&v4, groups, NULL, 0},
        {"carol", (const struct sockaddr *)&v6, groups, NULL, 0},
        {NULL, (const struct sockaddr *)&v4, NULL, NULL, 0},
    };
    struct tm tms[3];
    memset(tms, 0, sizeof(tms));
    tms[0].tm_year = 126, tms[0].tm_mon = 10, tms[0].tm_mday = 30, tms[0].tm_hour = 12;
    tms[1].tm_year = 126, tms[1].tm_mon = 11, tms[1].tm_mday = 25, tms[1].tm_hour = 23,
    tms[1].tm_min = 59;
    tms[2].tm_year = 124, tms[2].tm_mon = 1, tms[2].tm_mday = 29, tms[2].tm_hour = 0;
    static const unsigned used_min[] = {0, 45, 100000};

    for (size_t w = 0; w < sizeof(who) / sizeof(who[0]); w++) {
        memset(held, 0, nroles ? nroles : 1);
        policy_roles(pol, &who[w], held);
        char buf[256];
        policy_roles_text(pol, held, buf, sizeof(buf));
        FUZZ_CHECK(strlen(buf) < sizeof(buf));
        for (size_t i = 0; i < nroles; i++) {
            FUZZ_CHECK(held[i] == 0 || held[i] == 1);
            policy_role_reason(pol, i, &who[w], buf, sizeof(buf));
            const struct policy_role *ro = policy_role(pol, i);
            FUZZ_CHECK(ro != NULL && ro->name != NULL);
        }
        /* Every platform, and unclassified; with and without a request. */
        for (int pl = -1; pl < (int)nplat && pl < 8; pl++) {
            for (size_t t = 0; t < 3; t++) {
                struct policy_req req;
                memset(&req, 0, sizeof(req));
                req.platform = pl;
                req.category = pl >= 0 ? catalog_platform(cat, pl)->category : NULL;
                req.method = t == 1 ? NULL : "GET";
                req.path = t == 1 ? NULL : "/watch?v=dQw4w9WgXcQ";
                req.path_len = req.path ? strlen(req.path) : 0;
                req.local = &tms[t];
                req.quota_used = quota_used;
                req.quota_arg = (void *)&used_min[t];
                struct policy_result res;
                size_t tried = 0;
                policy_eval(pol, held, &req, &res, trace, &tried);
                FUZZ_CHECK(res.rule >= -1 && res.rule < (int)nrules);
                FUZZ_CHECK(tried <= nrules);
                FUZZ_CHECK(policy_action_name(res.action) != NULL);
                if (res.rule >= 0) {
                    const struct policy_rule *ru = policy_rule(pol, (size_t)res.rule);
                    FUZZ_CHECK(ru->action == res.action);
                    FUZZ_CHECK(policy_rule_has_platform(ru, cat, pl));
                }
            }
        }
    }
    free(held);
}

/* Texts with a NUL are left out: the file reader reports it, the string
 * ends there. */
static void
same_from_dir(const uint8_t *data, size_t size, const struct rules *r, const struct diag *d)
{
    if (memchr(data, '\0', size) != NULL)
        return;
    fuzz_tmp_write("fuzz.ini", data, size);
    struct diag d2;
    memset(&d2, 0, sizeof(d2));
    struct rules *r2 = rules_load(fuzz_tmp, &d2);
    FUZZ_CHECK((r2 == NULL) == (r == NULL));
    FUZZ_CHECK(d2.errors == d->errors && d2.warnings == d->warnings);
    if (r != NULL) {
        FUZZ_CHECK(r2->nrules == r->nrules && r2->nfiles == 1);
        FUZZ_CHECK(catalog_platform_count(r2->catalog) == catalog_platform_count(r->catalog));
        FUZZ_CHECK(catalog_domain_count(r2->catalog) == catalog_domain_count(r->catalog));
        FUZZ_CHECK(policy_role_count(r2->policy) == policy_role_count(r->policy));
    }
    rules_free(r2);
    diag_free(&d2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tmp_init("rules");
    if (groups == NULL) {
        struct diag gd;
        memset(&gd, 0, sizeof(gd));
        groups = htgroups_load_string("marketing: alice bob\nstaff: carol alice\n", "groups", &gd);
        if (groups == NULL)
            abort();
        diag_free(&gd);
    }
    char *text = fuzz_strndup(data, size);
    struct diag d;
    memset(&d, 0, sizeof(d));
    struct rules *r = rules_load_string(text, "fuzz.ini", &d);
    if (r != NULL) {
        FUZZ_CHECK(d.errors == 0);
        use(r);
    } else {
        FUZZ_CHECK(d.errors > 0);
    }
    same_from_dir(data, size, r, &d);
    rules_free(r);
    diag_free(&d);
    free(text);
    return 0;
}
