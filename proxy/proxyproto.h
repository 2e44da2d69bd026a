/* The PROXY protocol, versions 1 (text) and 2 (binary), as a load balancer
 * (HAProxy's send-proxy, send-proxy-v2) puts it before a connection's own
 * bytes to say whose connection it is (haproxy doc/proxy-protocol.txt).
 * Pure: no libevent, no clock, no logging. */
#ifndef SG_PROXYPROTO_H
#define SG_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A v1 header is at most 107 bytes with its CRLF (the spec's limit). */
#define PROXYPROTO_V1_MAX 107
/* A v2 header is 16 bytes and its addresses and TLVs; longer ones (the
 * spec allows 64 KiB of TLVs) are refused: the balancers we expect send
 * addresses and a few short TLVs. */
#define PROXYPROTO_V2_MAX 4096
/* What a reader must be ready to buffer before a verdict. */
#define PROXYPROTO_MAX PROXYPROTO_V2_MAX

enum proxyproto_status {
    PROXYPROTO_OK,      /* a whole header: see the result */
    PROXYPROTO_PARTIAL, /* a header's beginning: more bytes needed */
    PROXYPROTO_NONE,    /* not a PROXY header (the first bytes say so) */
    PROXYPROTO_INVALID, /* a PROXY header's signature, then bytes it does not allow */
};

struct proxyproto_result {
    int version;                 /* 1 or 2 */
    size_t consumed;             /* bytes of the header: the connection's own start after */
    int local;                   /* no client address to take (v2 LOCAL, UNSPEC or
                                  * AF_UNIX, v1 UNKNOWN): keep the peer's own */
    struct sockaddr_storage src; /* the client (AF_INET or AF_INET6), when !local */
    socklen_t srclen;
};

/* Reads the header at the start of p[0..len). OK fills out (out->consumed
 * <= len); PARTIAL when p is a proper prefix of a header that may still
 * parse; NONE when p cannot start one; INVALID when it started one and
 * broke a rule (then `why`, when not NULL, names it; a static string). */
enum proxyproto_status proxyproto_parse(const uint8_t *p, size_t len, struct proxyproto_result *out,
                                        const char **why);
const char *proxyproto_strstatus(enum proxyproto_status st);

/* The shortest header: v1's "PROXY UNKNOWN\r\n". */
#define PROXYPROTO_MIN 15

/* How many more bytes a reader may take after p[0..len), a prefix of a
 * header (PARTIAL), without taking any byte beyond the header's end
 * whatever the header turns out to be: at least 1. For a reader that must
 * leave the connection's own bytes in the socket (the HTTPS proxy port,
 * where OpenSSL reads them). */
size_t proxyproto_room(const uint8_t *p, size_t len);

#endif
