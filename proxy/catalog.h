/* The platform catalog: host name to platform (pure: no libevent, no
 * clock, no logging). Domains match themselves and every subdomain, the
 * longest suffix wins; host_regex patterns (PCRE2, JIT when allowed) are
 * tried only when no domain matched. Built once per configuration load,
 * then read-only and shared by all threads. */
#ifndef SG_CATALOG_H
#define SG_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#define CATALOG_MAX_HOST 253

struct catalog;

struct catalog_platform {
    char *name;
    char *category;
    char *file; /* where its section starts */
    int line;
};

struct catalog_match {
    int platform;         /* index into the platforms, -1: unclassified */
    const char *file;     /* the line that matched */
    int line;
    const char *pattern;  /* the domain or regex that matched */
};

/* Returns an owned, empty catalog; NULL on allocation failure. */
struct catalog *catalog_new(void);
void catalog_free(struct catalog *c);

/* Adds a platform; returns its index, or -1 (duplicate name: *err set). */
int catalog_add_platform(struct catalog *c, const char *name, const char *category,
                         const char *file, int line, const char **err);
/* Adds a domain to platform p. The domain is lower-cased and converted to
 * its ASCII (punycode) form. Returns 0, or -1 with a message in err
 * (bad domain, claimed by another platform: the owner is named). */
int catalog_add_domain(struct catalog *c, int p, const char *domain, const char *file, int line,
                       char *err, size_t errsz);
/* Compiles a PCRE2 pattern for platform p (caseless). -1 with the PCRE2
 * message and offset in err. */
int catalog_add_regex(struct catalog *c, int p, const char *pattern, const char *file, int line,
                      char *err, size_t errsz);
/* Adds a name that servers offering Encrypted Client Hello (ECH) put in
 * the outer, readable SNI (an [ech] client_facing item): the same checks
 * and normal form as a domain; listed twice is harmless. 0, or -1 with a
 * message in err. */
int catalog_add_ech_name(struct catalog *c, const char *name, char *err, size_t errsz);
/* Whether an already normalised host is such a name or a subdomain of
 * one: a ClientHello naming it with an ECH extension carries real ECH (its
 * real server is encrypted), where any other name's ECH extension may be
 * GREASE (sent by Chromium on every connection), which cannot be told
 * apart by its bytes. */
int catalog_ech_client_facing(const struct catalog *c, const char *host, size_t len);
size_t catalog_ech_count(const struct catalog *c);
/* Sets whether JIT compilation failed for any regex (for one log line). */
int catalog_jit_failed(const struct catalog *c);

size_t catalog_platform_count(const struct catalog *c);
size_t catalog_domain_count(const struct catalog *c);
const struct catalog_platform *catalog_platform(const struct catalog *c, int idx);
/* Index of a platform by name, or -1. */
int catalog_find_platform(const struct catalog *c, const char *name);

/* Normalises a host for matching: lower case, no port, no trailing dot,
 * IDNs as punycode. Writes into out (size >= CATALOG_MAX_HOST + 1).
 * Returns the length, 0 when empty, -1 when it is not a host name. Sets
 * *is_ip for IP literals. */
int catalog_normalize(const char *host, size_t len, char *out, size_t outsz, int *is_ip);

/* Classifies an already normalised host. Thread-safe. */
void catalog_lookup(const struct catalog *c, const char *host, size_t len,
                    struct catalog_match *m);
/* Normalises, then classifies. IP literals are unclassified. */
void catalog_classify(const struct catalog *c, const char *host, size_t len,
                      struct catalog_match *m);

#endif
