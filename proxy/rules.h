/* The rules folder: every *.ini file in name order, any kind of section in
 * any file (pure: file I/O only). [platform NAME] sections and the [ech]
 * list of ECH client-facing names go into the catalog, [role], [schedule]
 * and [rule] sections into the policy; every problem is a FILE:LINE
 * message in the diag. */
#ifndef SG_RULES_H
#define SG_RULES_H

#include <stddef.h>

#include "catalog.h"
#include "diag.h"
#include "policy.h"

struct rules {
    struct catalog *catalog; /* owned */
    struct policy *policy;   /* owned */
    size_t nfiles;
    size_t nrules;
};

/* Loads every *.ini in dir. Returns owned rules, or NULL when d got errors.
 * Every problem of every file is reported, not only the first file's. */
struct rules *rules_load(const char *dir, struct diag *d);
/* The same, and checks the roles' users and groups against ids
 * (policy_check_identities). */
struct rules *rules_load_ids(const char *dir, const struct policy_idfiles *ids,
                             struct diag *d);
/* Loads one text as if it were a file of that name (tests, fuzzing). */
struct rules *rules_load_string(const char *text, const char *name, struct diag *d);
void rules_free(struct rules *r);

#endif
