/* What a tunnel's first bytes say about where it goes (pure: no libevent,
 * clock or logging; no OpenSSL). Three incremental parsers, each fed the
 * next bytes of a stream as they arrive and never re-scanning what it has
 * taken (bounds checked before every read):
 *
 *  - the client's TLS records, read as a TLS server reads them: records
 *    that carry no handshake bytes (empty handshake records, alerts,
 *    ChangeCipherSpec, and early data once a hello was seen) are skipped,
 *    a ClientHello is reassembled across any number of records up to the
 *    largest one OpenSSL accepts, and every ClientHello of the stream is
 *    reported in turn (after a HelloRetryRequest the client sends another);
 *  - a plain HTTP request head, when the first bytes are not TLS: its Host
 *    names the server like an SNI;
 *  - the server's first handshake messages: is it a HelloRetryRequest (the
 *    client's next hello must be decided too), or anything else (the
 *    client's hellos are over)?
 *
 * Names are reported as sent; sni_normalize turns one into a host name for
 * the catalog or says that it is none. */
#ifndef SG_SNI_H
#define SG_SNI_H

#include <stddef.h>
#include <stdint.h>

/* Largest ClientHello body accepted: OpenSSL 3's CLIENT_HELLO_MAX_LENGTH
 * (ssl/statem/statem_local.h), the most a TLS stack behind the tunnel may
 * read. A larger one is SNI_INVALID. */
#define SNI_MAX_HELLO 131396
/* Largest record payload: 2^14 plus the 2048 bytes of expansion a server
 * tolerates before it looks inside (RFC 5246 6.2.3). */
#define SNI_MAX_RECORD (16384 + 2048)
/* Client bytes read since the last verdict: a hello in tiny records, or
 * records the client sends while its hello waits for the server's answer.
 * Beyond this the stream is SNI_INVALID (the caller holds these bytes). */
#define SNI_MAX_PEEK (256 * 1024)
/* Longest server name: OpenSSL's TLSEXT_MAXLEN_host_name. */
#define SNI_MAX_NAME 255
/* A plain HTTP request head inside a tunnel (the default max_header_bytes). */
#define SNI_MAX_HTTP_HEAD 65536

enum sni_status {
    SNI_OK,      /* a whole ClientHello (or HTTP head) naming a server: info.sni */
    SNI_NO_SNI,  /* a whole ClientHello (or HTTP head) naming none */
    SNI_PARTIAL, /* need more bytes */
    SNI_NOT_TLS, /* the stream does not start with a TLS record */
    SNI_INVALID, /* cannot be read as a TLS stack (or an HTTP server) would:
                  * sticky, no later byte changes it */
};

struct sni_info {
    char sni[SNI_MAX_NAME + 1]; /* as sent, NUL-terminated; "" when none */
    size_t sni_len;
    char alpn[64]; /* first ALPN protocol, "" when absent */
    int has_sni, has_alpn, ech;
    int http;        /* the name is the Host of a plain HTTP request */
    size_t consumed; /* stream offset just past the hello (or HTTP head) */
};

/* The client's records. Start with sni_init; sni_free releases it. */
struct sni_parser {
    uint8_t rhdr[5]; /* the current record's header */
    size_t rhdr_len; /* 5 while inside its payload */
    size_t rleft;    /* payload bytes of the current record still to come */
    uint8_t mhdr[4]; /* the current handshake message's header */
    size_t mhdr_len;
    uint8_t *msg; /* the ClientHello body gathered so far (owned) */
    size_t msg_len, msg_want;
    uint64_t consumed;      /* stream bytes taken */
    uint64_t since;         /* stream bytes taken since the last verdict */
    unsigned hellos;        /* ClientHellos reported */
    enum sni_status sticky; /* SNI_PARTIAL, or a final NOT_TLS / INVALID */
};

void sni_init(struct sni_parser *s);
void sni_free(struct sni_parser *s);
/* Takes bytes of p[0..len) up to the end of the next ClientHello: *used of
 * them. SNI_OK or SNI_NO_SNI at the hello's last byte (out filled,
 * out->consumed its stream offset); call again with the rest for the
 * next one. SNI_PARTIAL when all of p was taken without a hello ending.
 * SNI_NOT_TLS (nothing taken) when the stream does not start as TLS, and
 * SNI_INVALID, once returned, for every later call. */
enum sni_status sni_feed(struct sni_parser *s, const uint8_t *p, size_t len, size_t *used,
                         struct sni_info *out);
/* True while bytes of an unfinished record or handshake message are
 * taken but not decided: what the client's EOF leaves unclassifiable. */
int sni_pending(const struct sni_parser *s);
/* One-shot: the first ClientHello of p[0..len). */
enum sni_status sni_parse(const uint8_t *p, size_t len, struct sni_info *out);

/* A plain HTTP request head as the first bytes of a tunnel: the request
 * line is checked byte by byte (anything else is SNI_INVALID at once), the
 * head gathered up to SNI_MAX_HTTP_HEAD and parsed whole by http1.c. Start
 * zeroed; sni_http_free releases it. */
struct sni_http {
    uint8_t *buf; /* the head so far (owned) */
    size_t len, cap;
    int state; /* where in the request line, or in the fields */
    size_t n;  /* bytes in the current part of the request line */
    int line_start, cr;
};

void sni_http_free(struct sni_http *s);
/* Takes p[0..len) (the next bytes). SNI_OK: a whole head whose Host (or
 * absolute or authority target) names a server, out->sni as sent,
 * out->http set, out->consumed the head's length; SNI_NO_SNI: a whole
 * head without one (HTTP/1.0); SNI_PARTIAL; SNI_INVALID: not an HTTP
 * request, a head http1.c refuses, a target and a Host naming different
 * hosts, or too long. */
enum sni_status sni_http_feed(struct sni_http *s, const uint8_t *p, size_t len,
                              struct sni_info *out);

/* The server's side, until its first handshake message other than a
 * HelloRetryRequest. Start zeroed. */
struct sni_server {
    uint8_t rhdr[5];
    size_t rhdr_len, rleft;
    uint8_t mhdr[4];
    size_t mhdr_len;
    size_t mleft;   /* bytes of the current message still to skip */
    uint8_t sh[34]; /* legacy_version and random of a ServerHello */
    size_t sh_len, sh_want;
    int done;
};

enum sni_server_status {
    SNI_SERVER_PARTIAL, /* nothing decisive yet */
    SNI_SERVER_HRR,     /* a HelloRetryRequest: the client will send another hello */
    SNI_SERVER_DONE,    /* a ServerHello, an alert, or not TLS: no more hellos
                         * worth watching; final */
};

/* Takes bytes of p[0..len): *used of them, up to the verdict. */
enum sni_server_status sni_server_feed(struct sni_server *s, const uint8_t *p, size_t len,
                                       size_t *used);

/* A name from a hello or a Host, as the catalog compares hosts (lower
 * case, no port or trailing dot, IDNs as punycode: catalog_normalize),
 * into out (size > CATALOG_MAX_HOST). Returns its length; 0 when it names
 * no host (empty, or an IP literal: *is_ip tells); -1 when it is not a
 * host name (then the tunnel cannot be classified). */
int sni_normalize(const char *name, size_t len, char *out, size_t outsz, int *is_ip);

const char *sni_strstatus(enum sni_status st);

#endif
