#include "tlsmint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

struct tlsmint_ca {
    X509 *cert;
    EVP_PKEY *key;
    uint64_t id; /* tells CAs apart in the thread caches (never reused) */
};

static _Atomic uint64_t next_ca_id = 1;
static _Atomic uint64_t minted_count, hit_count;

static int
fail(char *err, size_t errsz, enum tlsmint_err_key *which, enum tlsmint_err_key k, const char *fmt,
     const char *arg)
{
    (void)fmt; /* always "%s" */
    snprintf(err, errsz, "%s", arg);
    *which = k;
    return -1;
}

struct tlsmint_ca *
tlsmint_ca_load(const char *cert_path, const char *key_path, char *err, size_t errsz,
                enum tlsmint_err_key *which)
{
    struct tlsmint_ca *ca = calloc(1, sizeof(*ca));
    if (ca == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_CERT, "%s", "out of memory");
        return NULL;
    }
    FILE *f = fopen(cert_path, "r");
    if (f == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_CERT, "%s", strerror(errno));
        goto bad;
    }
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (ca->cert == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_CERT, "%s", "not a PEM certificate");
        goto bad;
    }
    /* X509_get_extension_flags computes the flags: CA:TRUE in
     * basicConstraints sets EXFLAG_CA (a v1 self-signed root is not
     * enough: browsers refuse it as an issuer). */
    if (!(X509_get_extension_flags(ca->cert) & EXFLAG_BCONS) ||
        !(X509_get_extension_flags(ca->cert) & EXFLAG_CA)) {
        fail(err, errsz, which, TLSMINT_ERR_CERT, "%s",
             "not a CA certificate (needs basicConstraints CA:TRUE)");
        goto bad;
    }
    struct stat st;
    if (stat(key_path, &st) != 0) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s", strerror(errno));
        goto bad;
    }
    if (st.st_mode & 077) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s", "refused: readable by others; chmod 600");
        goto bad;
    }
    f = fopen(key_path, "r");
    if (f == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s", strerror(errno));
        goto bad;
    }
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (ca->key == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s",
             "not a PEM private key (an encrypted key needs its passphrase removed)");
        goto bad;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s", "does not match ca_cert");
        goto bad;
    }
    ERR_clear_error();
    ca->id = atomic_fetch_add(&next_ca_id, 1);
    return ca;
bad:
    ERR_clear_error();
    tlsmint_ca_free(ca);
    return NULL;
}

/* The key file's permissions, as for ca_key: 0 when only its owner may
 * read it, -1 with a message otherwise. */
static int
check_key_file(const char *key_path, char *err, size_t errsz, enum tlsmint_err_key *which)
{
    struct stat st;
    if (stat(key_path, &st) != 0)
        return fail(err, errsz, which, TLSMINT_ERR_KEY, "%s", strerror(errno));
    if (st.st_mode & 077)
        return fail(err, errsz, which, TLSMINT_ERR_KEY, "%s",
                    "refused: readable by others; chmod 600");
    return 0;
}

SSL_CTX *
tlsmint_server_ctx_load(const char *cert_path, const char *key_path, char *err, size_t errsz,
                        enum tlsmint_err_key *which)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_CERT, "%s", "out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    FILE *f = fopen(cert_path, "r");
    if (f == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_CERT, "%s", strerror(errno));
        goto bad;
    }
    fclose(f);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        fail(err, errsz, which, TLSMINT_ERR_CERT, "%s", "not a PEM certificate");
        goto bad;
    }
    if (check_key_file(key_path, err, errsz, which) < 0)
        goto bad;
    f = fopen(key_path, "r");
    if (f == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s", strerror(errno));
        goto bad;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s",
             "not a PEM private key (an encrypted key needs its passphrase removed)");
        goto bad;
    }
    int used = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (used != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        fail(err, errsz, which, TLSMINT_ERR_KEY, "%s", "does not match tls_cert");
        goto bad;
    }
    ERR_clear_error();
    return ctx;
bad:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

void
tlsmint_server_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

void
tlsmint_ca_free(struct tlsmint_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

X509 *
tlsmint_ca_cert(const struct tlsmint_ca *ca)
{
    return ca->cert;
}

EVP_PKEY *
tlsmint_new_key(void)
{
    return EVP_EC_gen("P-256");
}

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

X509 *
tlsmint_leaf(const struct tlsmint_ca *ca, EVP_PKEY *key, const char *name, time_t now)
{
    size_t len = strlen(name);
    if (len == 0 || len > 253)
        return NULL;
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (!is_ip)
        for (const char *p = name; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
                return NULL; /* SNI names are ASCII (punycode); no wildcard */
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    if (x == NULL || bn == NULL)
        goto bad;
    if (X509_set_version(x, 2) != 1)
        goto bad;
    /* A random positive 128-bit serial: no two leaves share one. */
    if (BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto bad;
    if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 0, TLSMINT_LEAF_SECONDS, &now) == NULL)
        goto bad;
    X509_NAME *subj = X509_get_subject_name(x);
    /* A CN holds at most 64 characters (RFC 5280 ub-common-name); the SAN
     * is what clients check. */
    if (len <= 64 && X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
                                                (const unsigned char *)name, -1, -1, 0) != 1)
        goto bad;
    if (X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        X509_set_pubkey(x, key) != 1)
        goto bad;
    char san[300];
    snprintf(san, sizeof(san), "%s:%s", is_ip ? "IP" : "DNS", name);
    if (add_ext(x, ca->cert, NID_subject_alt_name, san) < 0 ||
        add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth") < 0 ||
        add_ext(x, ca->cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, ca->cert, NID_authority_key_identifier, "keyid") < 0)
        goto bad;
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
        goto bad;
    BN_free(bn);
    atomic_fetch_add_explicit(&minted_count, 1, memory_order_relaxed);
    return x;
bad:
    ERR_clear_error();
    BN_free(bn);
    X509_free(x);
    return NULL;
}

/* --- the per-thread cache -------------------------------------------------
 * A hash of names over a fixed array of entries, with the entries on a
 * list from the most to the least recently used; the last is reused when
 * the array is full. Indexes, not pointers: -1 ends a chain. */

struct entry {
    char name[256];
    X509 *leaf;
    time_t minted;
    int hnext;      /* next in the hash chain */
    int prev, next; /* on the use list */
};

struct cache {
    uint64_t ca_id;
    EVP_PKEY *key; /* the leaves' key */
    SSL_CTX *ctx;  /* every session's: TLS versions, ALPN; no certificate */
    struct entry *e;
    int *bucket;
    size_t cap, nbuckets, used;
    int head, tail; /* most, least recently used */
};

static _Thread_local struct cache tc;
static _Thread_local size_t tc_cap_wanted;

static uint64_t
hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void
cache_empty(struct cache *c)
{
    for (size_t i = 0; i < c->used; i++)
        X509_free(c->e[i].leaf);
    free(c->e);
    free(c->bucket);
    c->e = NULL;
    c->bucket = NULL;
    c->cap = c->nbuckets = c->used = 0;
    c->head = c->tail = -1;
}

static int
cache_init(struct cache *c)
{
    c->cap = tc_cap_wanted ? tc_cap_wanted : TLSMINT_CACHE_NAMES;
    c->nbuckets = 2 * c->cap;
    c->e = calloc(c->cap, sizeof(*c->e));
    c->bucket = malloc(c->nbuckets * sizeof(*c->bucket));
    if (c->e == NULL || c->bucket == NULL) {
        cache_empty(c);
        return -1;
    }
    for (size_t i = 0; i < c->nbuckets; i++)
        c->bucket[i] = -1;
    c->used = 0;
    c->head = c->tail = -1;
    return 0;
}

static void
list_unlink(struct cache *c, int i)
{
    struct entry *e = &c->e[i];
    if (e->prev >= 0)
        c->e[e->prev].next = e->next;
    else
        c->head = e->next;
    if (e->next >= 0)
        c->e[e->next].prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = -1;
}

static void
list_push_front(struct cache *c, int i)
{
    struct entry *e = &c->e[i];
    e->prev = -1;
    e->next = c->head;
    if (c->head >= 0)
        c->e[c->head].prev = i;
    c->head = i;
    if (c->tail < 0)
        c->tail = i;
}

static void
hash_unlink(struct cache *c, int i)
{
    int *at = &c->bucket[hash_name(c->e[i].name) % c->nbuckets];
    while (*at >= 0 && *at != i)
        at = &c->e[*at].hnext;
    if (*at == i)
        *at = c->e[i].hnext;
}

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char mine[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, mine, sizeof(mine) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no ALPN: the client's HTTP/1.1 default */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The thread's context: the same for every name (a context per name
 * would cost more than the minting: SSL_CTX_new reads OpenSSL's
 * configuration each time). */
static SSL_CTX *
thread_ctx(struct cache *c)
{
    if (c->ctx != NULL)
        return c->ctx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* One answer per connection: no session to resume, no tickets. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    c->ctx = ctx;
    return ctx;
}

/* The leaf for name from the cache, or minted now (and cached). Borrowed. */
static X509 *
cached_leaf(struct cache *c, const struct tlsmint_ca *ca, const char *name, time_t now)
{
    size_t len = strlen(name);
    size_t b = hash_name(name) % c->nbuckets;
    for (int i = c->bucket[b]; i >= 0; i = c->e[i].hnext) {
        struct entry *e = &c->e[i];
        if (strcmp(e->name, name) != 0)
            continue;
        if (now - e->minted < TLSMINT_LEAF_SECONDS / 2 && now >= e->minted) {
            list_unlink(c, i);
            list_push_front(c, i);
            atomic_fetch_add_explicit(&hit_count, 1, memory_order_relaxed);
            return e->leaf;
        }
        /* Half its life gone (or the clock went back): minted again. */
        X509 *leaf = tlsmint_leaf(ca, c->key, name, now);
        if (leaf == NULL)
            return NULL;
        X509_free(e->leaf);
        e->leaf = leaf;
        e->minted = now;
        list_unlink(c, i);
        list_push_front(c, i);
        return leaf;
    }
    X509 *leaf = tlsmint_leaf(ca, c->key, name, now);
    if (leaf == NULL)
        return NULL;
    int i;
    if (c->used < c->cap) {
        i = (int)c->used++;
    } else {
        i = c->tail;
        list_unlink(c, i);
        hash_unlink(c, i);
        X509_free(c->e[i].leaf);
    }
    struct entry *e = &c->e[i];
    memcpy(e->name, name, len + 1);
    e->leaf = leaf;
    e->minted = now;
    e->hnext = c->bucket[b];
    c->bucket[b] = i;
    list_push_front(c, i);
    return leaf;
}

SSL *
tlsmint_server_ssl(const struct tlsmint_ca *ca, const char *name, time_t now)
{
    struct cache *c = &tc;
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof(c->e[0].name))
        return NULL;
    if (c->e != NULL && c->ca_id != ca->id)
        cache_empty(c); /* another CA (a reload): nothing cached is valid */
    if (c->e == NULL && cache_init(c) < 0)
        return NULL;
    c->ca_id = ca->id;
    if (c->key == NULL && (c->key = tlsmint_new_key()) == NULL)
        return NULL;
    SSL_CTX *ctx = thread_ctx(c);
    X509 *leaf = ctx ? cached_leaf(c, ca, name, now) : NULL;
    SSL *ssl = leaf ? SSL_new(ctx) : NULL;
    if (ssl == NULL || SSL_use_certificate(ssl, leaf) != 1 ||
        SSL_use_PrivateKey(ssl, c->key) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

void
tlsmint_thread_cleanup(void)
{
    cache_empty(&tc);
    EVP_PKEY_free(tc.key);
    tc.key = NULL;
    SSL_CTX_free(tc.ctx);
    tc.ctx = NULL;
    tc.ca_id = 0;
}

void
tlsmint_thread_set_capacity(size_t names)
{
    cache_empty(&tc);
    tc_cap_wanted = names;
}

size_t
tlsmint_thread_cached(void)
{
    return tc.used;
}

void
tlsmint_counters(uint64_t *minted, uint64_t *cache_hits)
{
    *minted = atomic_load_explicit(&minted_count, memory_order_relaxed);
    *cache_hits = atomic_load_explicit(&hit_count, memory_order_relaxed);
}
