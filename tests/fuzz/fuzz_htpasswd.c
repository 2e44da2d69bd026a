/* htpasswd and group files, and the credentials checked against them.
 * The input is three parts separated by NUL bytes:
 *   HTPASSWD \0 GROUPS \0 PROXY-AUTHORIZATION VALUE
 * Both files are loaded from text; the header is parsed as Basic
 * credentials, and its user is looked up and checked against its hash
 * (only when that is cheap: no high-cost bcrypt or SHA-crypt), and against
 * the groups. Every user named in the htpasswd text is looked up too. */
#include <string.h>

#include "fuzz.h"
#include "fuzz_auth.h"
#include "htpasswd.h"

struct order {
    const char *last;
    size_t n;
};

static void
each_group(void *arg, const char *group)
{
    struct order *o = arg;
    FUZZ_CHECK(group != NULL && group[0] != '\0');
    if (o->last != NULL)
        FUZZ_CHECK(strcmp(o->last, group) < 0);
    o->last = group;
    o->n++;
}

static void
check_user(const struct htpasswd *h, const struct htgroups *g, const char *user,
           const char *pass, int verify)
{
    const char *hash = htpasswd_hash(h, user);
    if (hash != NULL && verify && fuzz_hash_cheap(hash)) {
        int a = htpasswd_verify(h, user, pass);
        int b = htpasswd_check_hash(hash, pass);
        FUZZ_CHECK(a == b && (a == 0 || a == 1));
    } else if (hash == NULL) {
        FUZZ_CHECK(htpasswd_verify(h, user, pass) == 0);
    }
    struct order o = {NULL, 0};
    htgroups_foreach_of(g, user, each_group, &o);
    if (o.last != NULL)
        FUZZ_CHECK(htgroups_member(g, o.last, user) == 1);
    (void)htgroups_member(g, "staff", user);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2, n3;
    const uint8_t *p1 = fuzz_next(&data, &size, '\0', &n1);
    const uint8_t *p2 = fuzz_next(&data, &size, '\0', &n2);
    const uint8_t *p3 = fuzz_next(&data, &size, '\0', &n3);
    char *pw = fuzz_strndup(p1, n1);
    char *gr = fuzz_strndup(p2, n2);
    char *hdr = (char *)fuzz_memdup(p3, n3);

    struct diag d;
    memset(&d, 0, sizeof(d));
    struct htpasswd *h = htpasswd_load_string(pw, "users", &d);
    FUZZ_CHECK((h == NULL) == (d.errors > 0));
    diag_free(&d);
    memset(&d, 0, sizeof(d));
    struct htgroups *g = htgroups_load_string(gr, NULL, &d);
    FUZZ_CHECK((g == NULL) == (d.errors > 0));
    diag_free(&d);

    static char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
    if (fuzz_parse_basic(hdr, n3, user, sizeof(user), pass, sizeof(pass)) == 0)
        check_user(h, g, user, pass, 1);

    if (h != NULL) {
        size_t count = htpasswd_count(h), found = 0;
        /* Every "user:" at the start of a line (blanks trimmed) is there. */
        for (char *line = pw; line != NULL && *line != '\0';) {
            char *nl = strchr(line, '\n');
            if (nl != NULL)
                *nl = '\0';
            char *s = line;
            while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
                s++;
            char *colon = strchr(s, ':');
            if (*s != '#' && colon != NULL) {
                *colon = '\0';
                const char *hash = htpasswd_hash(h, s);
                FUZZ_CHECK(hash != NULL);
                /* Hashing is slow: a password check for the first two. */
                check_user(h, g, s, "password", found < 2);
                found++;
            }
            line = nl != NULL ? nl + 1 : NULL;
        }
        FUZZ_CHECK(found == count);
        FUZZ_CHECK(htpasswd_hash(h, NULL) == NULL);
        /* The decoy for unknown users is one of the stored hashes. */
        FUZZ_CHECK((htpasswd_decoy_hash(h) == NULL) == (count == 0));
    }
    /* A group trying to list a user with a space: warnings only. */
    memset(&d, 0, sizeof(d));
    htgroups_check_users(g, h, "groups", &d);
    FUZZ_CHECK(d.errors == 0 && d.n == d.warnings);
    diag_free(&d);
    FUZZ_CHECK(htpasswd_hash(NULL, "alice") == NULL);
    FUZZ_CHECK(htgroups_member(NULL, "staff", "alice") == 0);

    htpasswd_free(h);
    htgroups_free(g);
    free(pw);
    free(gr);
    free(hdr);
    return 0;
}
