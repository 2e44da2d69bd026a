#include "catalog.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <idn2.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Suffix table: open addressing keyed by a hash of the domain read from
 * right to left, so that while scanning a host once from its end, the hash
 * of every label-aligned suffix is at hand (O(length) per lookup, O(1)
 * probes per label). */
struct dom_entry {
    uint64_t hash; /* 0: empty slot */
    char *name;
    uint32_t len;
    int platform;
    int line;
    const char *file;
};

struct regex_entry {
    pcre2_code *code;
    int platform;
    int line;
    const char *file;
    char *pattern;
};

struct catalog {
    struct catalog_platform *plats;
    size_t nplats, capplats;
    struct dom_entry *tab;
    size_t tabcap, ndoms; /* tabcap is a power of two */
    struct regex_entry *res;
    size_t nres, capres;
    char **files; /* interned file names */
    size_t nfiles;
    int jit_failed;
    char **ech; /* ECH client-facing names, normalised */
    size_t nech;
};

#define FNV_OFF 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t
fix_hash(uint64_t h)
{
    return h ? h : 1;
}

/* Hash of s read backwards; equal to the running hash in lookup. */
static uint64_t
rhash(const char *s, size_t len)
{
    uint64_t h = FNV_OFF;
    for (size_t i = len; i > 0; i--)
        h = (h ^ (unsigned char)s[i - 1]) * FNV_PRIME;
    return fix_hash(h);
}

struct catalog *
catalog_new(void)
{
    struct catalog *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->tabcap = 1024;
    c->tab = calloc(c->tabcap, sizeof(*c->tab));
    if (c->tab == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void
catalog_free(struct catalog *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nplats; i++) {
        free(c->plats[i].name);
        free(c->plats[i].category);
    }
    free(c->plats);
    for (size_t i = 0; i < c->tabcap; i++)
        free(c->tab[i].name);
    free(c->tab);
    for (size_t i = 0; i < c->nres; i++) {
        pcre2_code_free(c->res[i].code);
        free(c->res[i].pattern);
    }
    free(c->res);
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    for (size_t i = 0; i < c->nech; i++)
        free(c->ech[i]);
    free(c->ech);
    free(c);
}

static const char *
intern_file(struct catalog *c, const char *file)
{
    for (size_t i = 0; i < c->nfiles; i++)
        if (strcmp(c->files[i], file) == 0)
            return c->files[i];
    char **nv = realloc(c->files, (c->nfiles + 1) * sizeof(*nv));
    if (nv == NULL)
        return NULL;
    c->files = nv;
    char *s = strdup(file);
    if (s == NULL)
        return NULL;
    c->files[c->nfiles++] = s;
    return s;
}

int
catalog_add_platform(struct catalog *c, const char *name, const char *category,
                     const char *file, int line, const char **err)
{
    if (catalog_find_platform(c, name) >= 0) {
        *err = "duplicate platform";
        return -1;
    }
    if (c->nplats == c->capplats) {
        size_t ncap = c->capplats ? c->capplats * 2 : 32;
        struct catalog_platform *nv = realloc(c->plats, ncap * sizeof(*nv));
        if (nv == NULL) {
            *err = "out of memory";
            return -1;
        }
        c->plats = nv;
        c->capplats = ncap;
    }
    struct catalog_platform *p = &c->plats[c->nplats];
    p->name = strdup(name);
    p->category = strdup(category ? category : "");
    p->file = (char *)intern_file(c, file);
    p->line = line;
    if (p->name == NULL || p->category == NULL || p->file == NULL) {
        free(p->name);
        free(p->category);
        *err = "out of memory";
        return -1;
    }
    return (int)c->nplats++;
}

int
catalog_find_platform(const struct catalog *c, const char *name)
{
    for (size_t i = 0; i < c->nplats; i++)
        if (strcmp(c->plats[i].name, name) == 0)
            return (int)i;
    return -1;
}

size_t
catalog_platform_count(const struct catalog *c)
{
    return c->nplats;
}

size_t
catalog_domain_count(const struct catalog *c)
{
    return c->ndoms;
}

const struct catalog_platform *
catalog_platform(const struct catalog *c, int idx)
{
    if (idx < 0 || (size_t)idx >= c->nplats)
        return NULL;
    return &c->plats[idx];
}

int
catalog_jit_failed(const struct catalog *c)
{
    return c->jit_failed;
}

static struct dom_entry *
find_slot(struct dom_entry *tab, size_t cap, uint64_t h, const char *name, size_t len)
{
    size_t mask = cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct dom_entry *e = &tab[i];
        if (e->hash == 0)
            return e;
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
}

static int
grow(struct catalog *c)
{
    size_t ncap = c->tabcap * 2;
    struct dom_entry *nt = calloc(ncap, sizeof(*nt));
    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < c->tabcap; i++) {
        struct dom_entry *e = &c->tab[i];
        if (e->hash == 0)
            continue;
        *find_slot(nt, ncap, e->hash, e->name, e->len) = *e;
    }
    free(c->tab);
    c->tab = nt;
    c->tabcap = ncap;
    return 0;
}

static int
is_ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int
catalog_normalize(const char *host, size_t len, char *out, size_t outsz, int *is_ip)
{
    char tmp[CATALOG_MAX_HOST * 4 + 8];
    int ascii = 1;
    *is_ip = 0;
    if (len > 0 && host[0] == '[') { /* [v6] or [v6]:port */
        const char *end = memchr(host, ']', len);
        if (end == NULL || (size_t)(end - host - 1) >= outsz)
            return -1;
        size_t n = (size_t)(end - host - 1);
        memcpy(out, host + 1, n);
        out[n] = '\0';
        *is_ip = 1;
        return is_ip_literal(out) ? (int)n : -1;
    }
    /* Cut a port: one colon followed by digits. Two colons: an IPv6 literal. */
    const char *colon = memchr(host, ':', len);
    if (colon && memchr(colon + 1, ':', len - (size_t)(colon - host) - 1) == NULL) {
        for (const char *q = colon + 1; q < host + len; q++)
            if (*q < '0' || *q > '9')
                return -1;
        len = (size_t)(colon - host);
    } else if (colon) {
        if (len >= outsz)
            return -1;
        memcpy(out, host, len);
        out[len] = '\0';
        *is_ip = 1;
        return is_ip_literal(out) ? (int)len : -1;
    }
    while (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0)
        return 0;
    if (len >= sizeof(tmp))
        return -1;
    /* Lower-case straight into out when it fits: the common case copies
     * once. IDNs go through tmp to libidn2. */
    char *dst = (len < outsz && len <= CATALOG_MAX_HOST) ? out : tmp;
    int digits_dots = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch >= 0x80)
            ascii = 0;
        else if (ch <= 0x20 || ch == 0x7f || strchr("/\\?#@\"<>`{}|^", ch))
            return -1; /* no host name holds a delimiter of a URL or quote */
        if (ch == '.' && (i == 0 || host[i - 1] == '.'))
            return -1; /* empty label */
        if (!(ch == '.' || (ch >= '0' && ch <= '9')))
            digits_dots = 0;
        dst[i] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
    }
    dst[len] = '\0';
    if (!ascii) {
        if (dst != tmp)
            memcpy(tmp, dst, len + 1);
        char *a = NULL;
        if (idn2_to_ascii_8z(tmp, &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK)
            return -1;
        size_t n = strlen(a);
        /* UTS 46 maps some characters to ASCII ones that the rules above
         * refuse or read otherwise (U+3002 and U+FF0E to '.', U+FF1A to
         * ':', U+FF3B to '[', U+3000 to ' '): the result must be a name
         * they take as it is, as if a client had sent it in ASCII. */
        int r = catalog_normalize(a, n, out, outsz, is_ip);
        idn2_free(a);
        return r == (int)n ? r : -1;
    } else if (dst != out) {
        return -1; /* too long for a host name */
    }
    /* Only digits and dots can be an IPv4 literal here (IPv6 has colons). */
    if (digits_dots && is_ip_literal(out))
        *is_ip = 1;
    return (int)len;
}

/* A domain in a rules file: labels of [a-z0-9-_], no empty label, no
 * leading or trailing hyphen, at least two labels. */
static int
valid_domain(const char *d, size_t len)
{
    size_t lab = 0, labels = 1;
    if (len == 0 || len > CATALOG_MAX_HOST)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = d[i];
        if (ch == '.') {
            if (lab == 0 || d[i - 1] == '-')
                return 0;
            lab = 0;
            labels++;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return 0;
        if (lab == 0 && ch == '-')
            return 0;
        if (++lab > 63)
            return 0;
    }
    return lab > 0 && d[len - 1] != '-' && labels >= 2;
}

/* A domain of a rules file in its normal form (norm: CATALOG_MAX_HOST + 1
 * bytes). Its length, or -1 with a message in err. */
static int
domain_of(const char *domain, char *norm, char *err, size_t errsz)
{
    int is_ip;
    if (strchr(domain, '*') || strchr(domain, '/') || domain[0] == '.') {
        snprintf(err, errsz, "bad domain '%s' (write the domain itself: it covers subdomains)",
                 domain);
        return -1;
    }
    int n = catalog_normalize(domain, strlen(domain), norm, CATALOG_MAX_HOST + 1, &is_ip);
    if (n <= 0 || is_ip || strchr(domain, ':') || !valid_domain(norm, (size_t)n)) {
        snprintf(err, errsz, "bad domain '%s'", domain);
        return -1;
    }
    return n;
}

int
catalog_add_domain(struct catalog *c, int p, const char *domain, const char *file, int line,
                   char *err, size_t errsz)
{
    char norm[CATALOG_MAX_HOST + 1];
    int n = domain_of(domain, norm, err, errsz);
    if (n < 0)
        return -1;
    if ((c->ndoms + 1) * 2 > c->tabcap && grow(c) < 0) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    uint64_t h = rhash(norm, (size_t)n);
    struct dom_entry *e = find_slot(c->tab, c->tabcap, h, norm, (size_t)n);
    if (e->hash != 0) {
        const struct catalog_platform *owner = &c->plats[e->platform];
        if (e->platform == p)
            snprintf(err, errsz, "domain '%s' listed twice (also at %s:%d)", norm, e->file,
                     e->line);
        else
            snprintf(err, errsz, "domain '%s' is already claimed by platform %s (%s:%d)", norm,
                     owner->name, e->file, e->line);
        return -1;
    }
    e->name = strdup(norm);
    e->file = intern_file(c, file);
    if (e->name == NULL || e->file == NULL) {
        free(e->name);
        e->name = NULL;
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    e->hash = h;
    e->len = (uint32_t)n;
    e->platform = p;
    e->line = line;
    c->ndoms++;
    return 0;
}

int
catalog_add_regex(struct catalog *c, int p, const char *pattern, const char *file, int line,
                  char *err, size_t errsz)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_CASELESS | PCRE2_NO_AUTO_CAPTURE | PCRE2_UTF, &code,
                                   &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        snprintf(err, errsz, "bad host_regex at offset %zu: %s", (size_t)off, (char *)msg);
        return -1;
    }
    /* JIT is refused under MemoryDenyWriteExecute: the interpreter works. */
    if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0)
        c->jit_failed = 1;
    if (c->nres == c->capres) {
        size_t ncap = c->capres ? c->capres * 2 : 8;
        struct regex_entry *nv = realloc(c->res, ncap * sizeof(*nv));
        if (nv == NULL) {
            pcre2_code_free(re);
            snprintf(err, errsz, "out of memory");
            return -1;
        }
        c->res = nv;
        c->capres = ncap;
    }
    struct regex_entry *r = &c->res[c->nres];
    r->code = re;
    r->platform = p;
    r->line = line;
    r->file = intern_file(c, file);
    r->pattern = strdup(pattern);
    if (r->file == NULL || r->pattern == NULL) {
        free(r->pattern);
        pcre2_code_free(re);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    c->nres++;
    return 0;
}

int
catalog_add_ech_name(struct catalog *c, const char *name, char *err, size_t errsz)
{
    char norm[CATALOG_MAX_HOST + 1];
    if (domain_of(name, norm, err, errsz) < 0)
        return -1;
    for (size_t i = 0; i < c->nech; i++)
        if (strcmp(c->ech[i], norm) == 0)
            return 0; /* listed twice: harmless */
    char **grown = realloc(c->ech, (c->nech + 1) * sizeof(*c->ech));
    if (grown == NULL) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    c->ech = grown;
    if ((c->ech[c->nech] = strdup(norm)) == NULL) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    c->nech++;
    return 0;
}

size_t
catalog_ech_count(const struct catalog *c)
{
    return c->nech;
}

int
catalog_ech_client_facing(const struct catalog *c, const char *host, size_t len)
{
    for (size_t i = 0; i < c->nech; i++) {
        size_t n = strlen(c->ech[i]);
        if (len == n && memcmp(host, c->ech[i], n) == 0)
            return 1;
        if (len > n && host[len - n - 1] == '.' && memcmp(host + len - n, c->ech[i], n) == 0)
            return 1;
    }
    return 0;
}

void
catalog_lookup(const struct catalog *c, const char *host, size_t len, struct catalog_match *m)
{
    m->platform = -1;
    m->file = NULL;
    m->line = 0;
    m->pattern = NULL;
    if (len == 0)
        return;
    /* Walk from the end; at each label start (and the whole host) probe
     * the suffix. The last hit is the longest suffix. */
    uint64_t h = FNV_OFF;
    const struct dom_entry *best = NULL;
    size_t mask = c->tabcap - 1;
    for (size_t i = len; i > 0; i--) {
        h = (h ^ (unsigned char)host[i - 1]) * FNV_PRIME;
        if (i - 1 != 0 && host[i - 2] != '.')
            continue;
        uint64_t hh = fix_hash(h);
        size_t slen = len - (i - 1);
        for (size_t k = (size_t)hh & mask;; k = (k + 1) & mask) {
            const struct dom_entry *e = &c->tab[k];
            if (e->hash == 0)
                break;
            if (e->hash == hh && e->len == slen && memcmp(e->name, host + i - 1, slen) == 0) {
                best = e;
                break;
            }
        }
    }
    if (best) {
        m->platform = best->platform;
        m->file = best->file;
        m->line = best->line;
        m->pattern = best->name;
        return;
    }
    if (c->nres == 0)
        return;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (md == NULL)
        return;
    for (size_t i = 0; i < c->nres; i++) {
        const struct regex_entry *r = &c->res[i];
        if (pcre2_match(r->code, (PCRE2_SPTR)host, len, 0, 0, md, NULL) >= 0) {
            m->platform = r->platform;
            m->file = r->file;
            m->line = r->line;
            m->pattern = r->pattern;
            break;
        }
    }
    pcre2_match_data_free(md);
}

void
catalog_classify(const struct catalog *c, const char *host, size_t len, struct catalog_match *m)
{
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip;
    int n = catalog_normalize(host, len, norm, sizeof(norm), &is_ip);
    if (n <= 0 || is_ip) {
        m->platform = -1;
        m->file = NULL;
        m->line = 0;
        m->pattern = NULL;
        return;
    }
    catalog_lookup(c, norm, (size_t)n, m);
}
