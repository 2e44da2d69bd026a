/* TLS ClientHello peek: SNI, ALPN and ECH presence from the first bytes a
 * client sends in a tunnel (pure; no OpenSSL). The ClientHello may span
 * several TLS records and several reads; the parser is called again on the
 * whole buffer as bytes arrive. Every read is bounds-checked with size_t
 * offsets. */
#ifndef SG_SNI_H
#define SG_SNI_H

#include <stddef.h>
#include <stdint.h>

/* Largest ClientHello accepted (handshake bytes); a bigger one is
 * SNI_MALFORMED, and the bytes are relayed as they are. */
#define SNI_MAX_HELLO 65536

enum sni_status {
    SNI_OK,        /* a whole ClientHello was parsed */
    SNI_PARTIAL,   /* need more bytes */
    SNI_NOT_TLS,   /* not a TLS handshake */
    SNI_MALFORMED, /* TLS framing, but an invalid ClientHello */
};

struct sni_info {
    char sni[256]; /* "" when absent */
    char alpn[64]; /* first ALPN protocol, "" when absent */
    int has_sni, has_alpn, ech;
    size_t consumed; /* bytes of records holding the ClientHello */
};

enum sni_status sni_parse(const uint8_t *p, size_t len, struct sni_info *out);
const char *sni_strstatus(enum sni_status st);

#endif
