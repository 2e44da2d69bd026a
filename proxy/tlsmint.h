/* Certificates minted on the fly for [tls]: the company's interception CA
 * (ca_cert, ca_key), an ECDSA P-256 leaf per name signed by it, and the
 * server-side TLS context a client is answered with (pure: OpenSSL only,
 * no libevent, no logging).
 *
 * Used by the TLS page phase (tlspage.c) and by inspection: both answer the
 * client's TLS with tlsmint_server_ssl(ca, name, now).
 *
 * Threads: a tlsmint_ca is read-only once loaded and shared by every
 * thread (it belongs to the configuration snapshot). The leaf key, one
 * SSL_CTX and the cache of minted leaves are per thread (each worker is
 * one): no lock on the path of a connection. A thread's cache is emptied when it is asked for
 * a name under another CA (a reload that changed it), and freed with
 * tlsmint_thread_cleanup. */
#ifndef SG_TLSMINT_H
#define SG_TLSMINT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

struct tlsmint_ca;

/* Names kept per thread: the least recently used is dropped beyond. */
#define TLSMINT_CACHE_NAMES 1024
/* A leaf is valid from an hour before it was minted (clocks that lag) to
 * this many seconds after. A cached leaf older than half of it is minted
 * again. */
#define TLSMINT_LEAF_SECONDS (7 * 86400)

/* What went wrong loading a CA, for FILE:LINE messages at the right key. */
enum tlsmint_err_key {
    TLSMINT_ERR_CERT, /* ca_cert's line */
    TLSMINT_ERR_KEY,  /* ca_key's line */
};

/* Loads and checks the CA: cert_path holds a PEM certificate with
 * basicConstraints CA:TRUE, key_path its PEM private key, readable by
 * its owner alone (no group or other permission bit). Returns an owned CA
 * (free with tlsmint_ca_free), or NULL with a message in err and which key
 * it is about in *which. */
struct tlsmint_ca *tlsmint_ca_load(const char *cert_path, const char *key_path, char *err,
                                   size_t errsz, enum tlsmint_err_key *which);
void tlsmint_ca_free(struct tlsmint_ca *ca);
/* The HTTPS proxy port's server context ([proxy] tls_cert, tls_key):
 * cert_path a PEM certificate, optionally followed by its intermediates,
 * key_path its PEM private key, readable by its owner alone (like ca_key).
 * TLS 1.2 and 1.3. Returns an owned SSL_CTX (free with
 * tlsmint_server_ctx_free; each SSL made from it holds a reference), or
 * NULL with a message in err and which key it is about. */
SSL_CTX *tlsmint_server_ctx_load(const char *cert_path, const char *key_path, char *err,
                                 size_t errsz, enum tlsmint_err_key *which);
void tlsmint_server_ctx_free(SSL_CTX *ctx);

/* Borrowed views of the CA's certificate and key. */
X509 *tlsmint_ca_cert(const struct tlsmint_ca *ca);

/* Mints a leaf for name (a DNS name, or an IPv4/IPv6 address: SAN IP then)
 * valid from now - 1 h to now + TLSMINT_LEAF_SECONDS, CN = name, a random
 * 128-bit serial, the CA's subject as issuer, signed with the CA's key
 * (SHA-256), the public key of key. Returns owned, or NULL. */
X509 *tlsmint_leaf(const struct tlsmint_ca *ca, EVP_PKEY *key, const char *name, time_t now);
/* A new ECDSA P-256 key (owned), or NULL. */
EVP_PKEY *tlsmint_new_key(void);

/* A server-side TLS session (accept state) for name under ca, owned (free
 * with SSL_free): the leaf from this thread's cache or minted now, this
 * thread's key, TLS 1.2 and 1.3, ALPN http/1.1 only (a client offering h2
 * alone gets no ALPN, and speaks HTTP/1.1 or gives up), no session
 * resumption. Only the leaf is sent (the browsers have the CA). Give it
 * BIOs (SSL_set_bio), or to bufferevent_openssl_*_new. NULL on failure. */
SSL *tlsmint_server_ssl(const struct tlsmint_ca *ca, const char *name, time_t now);
/* Frees this thread's cache, key and context (a worker thread that ends). */
void tlsmint_thread_cleanup(void);
/* Bounds this thread's cache (tests); 0 restores TLSMINT_CACHE_NAMES. The
 * cache is emptied. */
void tlsmint_thread_set_capacity(size_t names);
/* Names in this thread's cache now. */
size_t tlsmint_thread_cached(void);

/* Counters of every thread, for /metrics: leaves minted, sessions served
 * with a cached leaf. */
void tlsmint_counters(uint64_t *minted, uint64_t *cache_hits);

#endif
