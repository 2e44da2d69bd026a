/* Unit tests for proxy/tlsmint.c: the CA checks, minted leaves verified
 * against the CA (X509_verify_cert, host and address names), the bounded
 * per-thread cache, and the [tls] keys of proxy.ini. The CAs are made here,
 * in a fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "diag.h"
#include "tlsmint.h"

static char tmp[256];

static void
path_in(char *buf, size_t size, const char *rel)
{
    snprintf(buf, size, "%s/%s", tmp, rel);
}

static void
ext(X509 *x, int nid, const char *v)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A self-signed certificate for key: a CA when ca is set. Writes the
 * certificate and the key (mode key_mode) under the names given. */
static void
make_cert(const char *cert_name, const char *key_name, int ca, mode_t key_mode, EVP_PKEY *key)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 30 * 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"Test CA", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    if (ca) {
        ext(x, NID_basic_constraints, "critical,CA:TRUE");
        ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    ext(x, NID_subject_key_identifier, "hash");
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    char p[512];
    path_in(p, sizeof(p), cert_name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    path_in(p, sizeof(p), key_name);
    f = fopen(p, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    assert_int_equal(chmod(p, key_mode), 0);
    X509_free(x);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/sg-tlsmint-XXXXXX");
    if (mkdtemp(tmp) == NULL)
        return -1;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    EVP_PKEY *other = EVP_EC_gen("P-256");
    make_cert("ca.pem", "ca.key", 1, 0600, k);
    make_cert("ca-open.pem", "ca-open.key", 1, 0644, k);
    make_cert("leafonly.pem", "leafonly.key", 0, 0600, k);
    make_cert("other.pem", "other.key", 1, 0600, other);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static struct tlsmint_ca *
load(const char *cert, const char *key, char *err, size_t errsz, enum tlsmint_err_key *which)
{
    char c[512], k[512];
    path_in(c, sizeof(c), cert);
    path_in(k, sizeof(k), key);
    return tlsmint_ca_load(c, k, err, errsz, which);
}

static void
test_ca_checks(void **state)
{
    (void)state;
    char err[256];
    enum tlsmint_err_key which;
    struct tlsmint_ca *ca = load("ca.pem", "ca.key", err, sizeof(err), &which);
    assert_non_null(ca);
    tlsmint_ca_free(ca);

    assert_null(load("ca-open.pem", "ca-open.key", err, sizeof(err), &which));
    assert_int_equal(which, TLSMINT_ERR_KEY);
    assert_string_equal(err, "refused: readable by others; chmod 600");

    assert_null(load("leafonly.pem", "leafonly.key", err, sizeof(err), &which));
    assert_int_equal(which, TLSMINT_ERR_CERT);
    assert_non_null(strstr(err, "CA:TRUE"));

    assert_null(load("ca.pem", "other.key", err, sizeof(err), &which));
    assert_int_equal(which, TLSMINT_ERR_KEY);
    assert_string_equal(err, "does not match ca_cert");

    assert_null(load("ca.key", "ca.key", err, sizeof(err), &which));
    assert_int_equal(which, TLSMINT_ERR_CERT);
    assert_string_equal(err, "not a PEM certificate");

    char p[512];
    path_in(p, sizeof(p), "garbage.key");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("not a key\n", f);
    fclose(f);
    assert_int_equal(chmod(p, 0600), 0);
    assert_null(load("ca.pem", "garbage.key", err, sizeof(err), &which));
    assert_int_equal(which, TLSMINT_ERR_KEY);
    assert_non_null(strstr(err, "not a PEM private key"));

    assert_null(load("missing.pem", "ca.key", err, sizeof(err), &which));
    assert_int_equal(which, TLSMINT_ERR_CERT);
}

/* 1 when leaf verifies against ca alone, as a TLS server certificate. */
static int
verifies(struct tlsmint_ca *ca, X509 *leaf, time_t at)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, tlsmint_ca_cert(ca));
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, NULL);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    X509_STORE_CTX_set_time(ctx, 0, at);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok == 1;
}

static void
test_mint(void **state)
{
    (void)state;
    char err[256];
    enum tlsmint_err_key which;
    struct tlsmint_ca *ca = load("ca.pem", "ca.key", err, sizeof(err), &which);
    assert_non_null(ca);
    EVP_PKEY *key = tlsmint_new_key();
    assert_non_null(key);
    time_t now = time(NULL);

    X509 *leaf = tlsmint_leaf(ca, key, "www.facebook.com", now);
    assert_non_null(leaf);
    assert_true(verifies(ca, leaf, now));
    assert_true(verifies(ca, leaf, now - 1800));                       /* a lagging clock */
    assert_false(verifies(ca, leaf, now + TLSMINT_LEAF_SECONDS + 60)); /* short-lived */
    assert_int_equal(X509_check_host(leaf, "www.facebook.com", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(leaf, "facebook.com", 0, 0, NULL), 1);
    assert_int_equal(X509_check_private_key(leaf, key), 1);
    EVP_PKEY *pub = X509_get0_pubkey(leaf);
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    assert_int_equal(EVP_PKEY_get_bits(pub), 256);
    assert_int_equal(
        X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(tlsmint_ca_cert(ca))), 0);
    char cn[300];
    assert_true(
        X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "www.facebook.com");
    /* Two leaves for one name: different serials. */
    X509 *again = tlsmint_leaf(ca, key, "www.facebook.com", now);
    assert_non_null(again);
    assert_int_not_equal(
        ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(again)), 0);
    X509_free(again);
    X509_free(leaf);

    /* An address gets an IP SAN. */
    leaf = tlsmint_leaf(ca, key, "192.0.2.7", now);
    assert_non_null(leaf);
    assert_true(verifies(ca, leaf, now));
    assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.7", 0), 1);
    X509_free(leaf);
    leaf = tlsmint_leaf(ca, key, "2001:db8::1", now);
    assert_non_null(leaf);
    assert_int_equal(X509_check_ip_asc(leaf, "2001:db8::1", 0), 1);
    X509_free(leaf);

    /* Not a name: nothing minted. */
    assert_null(tlsmint_leaf(ca, key, "", now));
    assert_null(tlsmint_leaf(ca, key, "a b", now));
    assert_null(tlsmint_leaf(ca, key, "*.facebook.com", now));
    assert_null(tlsmint_leaf(ca, key, "x,DNS:evil.example", now));
    EVP_PKEY_free(key);
    tlsmint_ca_free(ca);
}

/* A session from tlsmint_server_ssl, its leaf checked for name; freed. */
static int
served(struct tlsmint_ca *ca, const char *name, time_t now, time_t verify_at)
{
    SSL *ssl = tlsmint_server_ssl(ca, name, now);
    if (ssl == NULL)
        return 0;
    X509 *leaf = SSL_get_certificate(ssl);
    int ok = leaf && X509_check_host(leaf, name, 0, 0, NULL) == 1 && verifies(ca, leaf, verify_at);
    SSL_free(ssl);
    return ok;
}

static void
test_cache(void **state)
{
    (void)state;
    char err[256];
    enum tlsmint_err_key which;
    struct tlsmint_ca *ca = load("ca.pem", "ca.key", err, sizeof(err), &which);
    assert_non_null(ca);
    time_t now = time(NULL);
    tlsmint_thread_set_capacity(4);
    uint64_t minted0, hits0, minted, hits;
    tlsmint_counters(&minted0, &hits0);

    assert_true(served(ca, "a.example", now, now));
    assert_true(served(ca, "a.example", now, now)); /* a hit */
    tlsmint_counters(&minted, &hits);
    assert_int_equal(minted - minted0, 1);
    assert_int_equal(hits - hits0, 1);

    char name[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "n%d.example", i);
        assert_true(served(ca, name, now, now));
        assert_true(tlsmint_thread_cached() <= 4);
    }
    assert_int_equal(tlsmint_thread_cached(), 4);
    /* The most recent stay (hits), the oldest went (minted again). */
    tlsmint_counters(&minted0, &hits0);
    assert_true(served(ca, "n9.example", now, now));
    assert_true(served(ca, "n6.example", now, now));
    tlsmint_counters(&minted, &hits);
    assert_int_equal(minted - minted0, 0);
    assert_int_equal(hits - hits0, 2);
    assert_true(served(ca, "a.example", now, now));
    tlsmint_counters(&minted, &hits);
    assert_int_equal(minted - minted0, 1);
    /* Half a leaf's life later, minted again: valid for its own time. */
    time_t later = now + TLSMINT_LEAF_SECONDS / 2 + 1;
    assert_true(served(ca, "a.example", later, later + TLSMINT_LEAF_SECONDS - 60));
    tlsmint_counters(&minted0, &hits0);
    assert_int_equal(minted0 - minted, 1);

    /* Another CA (a reload): nothing of the old one is served. */
    struct tlsmint_ca *ca2 = load("ca.pem", "ca.key", err, sizeof(err), &which);
    assert_non_null(ca2);
    assert_true(served(ca2, "n9.example", now, now));
    assert_int_equal(tlsmint_thread_cached(), 1);
    tlsmint_thread_set_capacity(0);
    tlsmint_thread_cleanup();
    tlsmint_ca_free(ca2);
    tlsmint_ca_free(ca);
}

/* A whole handshake in memory: a client that trusts the CA and asks for
 * the name (SNI, ALPN h2 and http/1.1) gets http/1.1 and a verified leaf. */
static void
test_handshake(void **state)
{
    (void)state;
    char err[256], cafile[512];
    enum tlsmint_err_key which;
    struct tlsmint_ca *ca = load("ca.pem", "ca.key", err, sizeof(err), &which);
    assert_non_null(ca);
    SSL *srv = tlsmint_server_ssl(ca, "www.facebook.com", time(NULL));
    assert_non_null(srv);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    path_in(cafile, sizeof(cafile), "ca.pem");
    assert_int_equal(SSL_CTX_load_verify_locations(cctx, cafile, NULL), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    static const unsigned char protos[] = "\x02h2\x08http/1.1";
    assert_int_equal(SSL_CTX_set_alpn_protos(cctx, protos, sizeof(protos) - 1), 0);
    SSL *cli = SSL_new(cctx);
    SSL_set_tlsext_host_name(cli, "www.facebook.com");
    SSL_set1_host(cli, "www.facebook.com");
    SSL_set_connect_state(cli);
    BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());
    BIO_up_ref(c2s);
    BIO_up_ref(s2c);
    SSL_set_bio(cli, s2c, c2s);
    SSL_set_bio(srv, c2s, s2c);
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 20 && !(cdone && sdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(cli) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(srv) == 1;
    }
    assert_true(cdone && sdone);
    assert_int_equal(SSL_get_verify_result(cli), X509_V_OK);
    const unsigned char *sel;
    unsigned sel_len;
    SSL_get0_alpn_selected(cli, &sel, &sel_len);
    assert_int_equal(sel_len, 8);
    assert_memory_equal(sel, "http/1.1", 8);
    SSL_free(cli);
    SSL_free(srv);
    SSL_CTX_free(cctx);
    tlsmint_thread_cleanup();
    tlsmint_ca_free(ca);
}

static struct config *
cfg(const char *text, struct diag *d)
{
    memset(d, 0, sizeof(*d));
    return config_load_string(text, "proxy.ini", tmp, d);
}

static void
test_config(void **state)
{
    (void)state;
    char text[1024];
    struct diag d;
    char rules[512];
    path_in(rules, sizeof(rules), "rules");
    mkdir(rules, 0755);

    struct config *c =
        cfg("[tls]\nca_cert = ca.pem\nca_key = ca.key\nexempt = banking, health\n", &d);
    assert_non_null(c);
    assert_non_null(c->tls_ca);
    assert_int_equal(c->tls_pages, 1);
    assert_int_equal(c->tls_inspect, 1);
    assert_int_equal(c->ntls_exempt, 2);
    assert_string_equal(c->tls_exempt[1], "health");
    config_free(c);
    diag_free(&d);

    c = cfg("[tls]\nca_cert = ca.pem\nca_key = ca.key\npages = no\ninspect = no\n", &d);
    assert_non_null(c);
    assert_int_equal(c->tls_pages, 0);
    assert_int_equal(c->tls_inspect, 0);
    config_free(c);
    diag_free(&d);

    c = cfg("[proxy]\n", &d);
    assert_non_null(c);
    assert_null(c->tls_ca);
    assert_int_equal(c->tls_pages, 0);
    config_free(c);
    diag_free(&d);

    snprintf(text, sizeof(text), "[tls]\nca_cert = ca-open.pem\nca_key = ca-open.key\n");
    c = cfg(text, &d);
    assert_null(c);
    assert_int_equal(d.errors, 1);
    assert_non_null(strstr(d.msgs[0], "proxy.ini:3: ca_key = "));
    assert_non_null(strstr(d.msgs[0], "refused: readable by others; chmod 600"));
    diag_free(&d);

    c = cfg("[tls]\nca_cert = leafonly.pem\nca_key = leafonly.key\n", &d);
    assert_null(c);
    assert_non_null(strstr(d.msgs[0], "proxy.ini:2: ca_cert = "));
    diag_free(&d);

    c = cfg("[tls]\nca_cert = ca.pem\ninspect = maybe\npages = yes\n", &d);
    assert_null(c);
    assert_int_equal(d.errors, 2); /* inspect's value, ca_cert without ca_key */
    diag_free(&d);

    c = cfg("[tls]\npages = yes\n", &d);
    assert_null(c);
    assert_non_null(strstr(d.msgs[0], "pages = yes needs ca_cert"));
    diag_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_checks), cmocka_unit_test(test_mint),
        cmocka_unit_test(test_cache),     cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
