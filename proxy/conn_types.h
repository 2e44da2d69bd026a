/* The state of a client connection and its transaction, shared by the
 * modules that drive it: conn.c (state machine, timers, teardown),
 * forward.c (plain HTTP), tunnel.c (CONNECT relay) and gate.c (identity,
 * policy, quotas). Nothing outside them looks inside a conn. */
#ifndef SG_CONN_TYPES_H
#define SG_CONN_TYPES_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "http1.h"

struct auth_job;
struct bufferevent;
struct config;
struct event;
struct evbuffer;
struct evdns_getaddrinfo_request;
struct evutil_addrinfo;
struct snapshot;
struct splicer;
struct worker;

/* A side's output above this stops reading from the other side until it
 * drains to half (backpressure: a transfer's memory stays bounded whatever
 * the speeds of the two peers). */
#define CONN_MAX_BUFFER (256 * 1024)
/* After a final response with Connection: close, unread client bytes are
 * read and dropped for this long so the response is not lost to a reset. */
#define CONN_LINGER_MS 2000
#define CONN_LINGER_BYTES (256 * 1024)

enum cstate {
    CS_HEAD,       /* waiting for or reading a request head */
    CS_RESOLVING,  /* DNS for the upstream */
    CS_DECIDING,   /* waiting for a password check */
    CS_CONNECTING, /* TCP connect to the upstream */
    CS_FORWARD,    /* request and response in flight */
    CS_TUNNEL,     /* CONNECT or upgraded: bytes relayed both ways */
    CS_CLOSING,    /* final bytes going out, then linger */
};

struct txn {
    int active;
    char method[24];
    char *host; /* owned, lower-case */
    uint16_t port;
    char *path; /* owned, path without query (for the log) */
    int is_connect, is_head, upgrade;
    int client_minor;
    int client_close;       /* close the client connection after this response */
    struct evbuffer *uhead; /* upstream head not yet sent (owned) */
    char poolkey[280];
    int reused; /* upstream came from the pool */
    int retried;
    int status;        /* status the client saw (0: none yet) */
    uint64_t up, down; /* bytes from / to the client */
    struct timespec start;
    const char *reason;

    enum http1_body req_body;
    uint64_t req_remain;
    struct http1_chunked req_ch;
    int req_done;

    int resp_head_done;
    int resp_minor, resp_conn_close;
    enum http1_body resp_body;
    uint64_t resp_remain;
    struct http1_chunked resp_ch;
    int dechunk;
    int resp_done;
    uint64_t resp_bytes; /* from the upstream */

    int platform; /* catalog index, -1: unclassified */
    char *sni;    /* owned, from the ClientHello */
    int peek;     /* tunnel: waiting for the client's first bytes */
    int mismatch; /* CONNECT host and SNI classify differently */
    int ech;

    char *user; /* owned: the name sent in Proxy-Authorization */
    char *pass; /* owned, wiped when freed */
    int auth;   /* 0 none sent, 1 verified, -1 wrong */
    int decoy;  /* an unknown user: checked against the decoy hash */
    struct auth_job *auth_job;
    int local;    /* a request for socialgate.local itself */
    char *url;    /* owned: the absolute URL asked for (warn pages) */
    char *target; /* owned: path and query (local pages) */
    int rule;     /* deciding rule, -1: none */
    int action;   /* enum policy_action, -1: not decided */
    char roles[512];
    char identity[300];
    int64_t last_minute; /* last clock minute counted for the quota */
    int answered_here;   /* the response came from socialgate itself */
    int forwarded;       /* an upstream connection was used */

    struct evutil_addrinfo *ai, *ai_next; /* owned list and the next to try */
    struct evdns_getaddrinfo_request *dnsreq;
    int last_errno;
};

struct conn {
    TAILQ_ENTRY(conn) link;
    struct worker *w;
    struct snapshot *snap;
    const struct config *cfg;
    struct bufferevent *cbev, *ubev;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct event *timer;
    enum cstate state;
    int closed; /* torn down; freed from the timer */
    int draining;
    int head_bytes_seen;  /* for the header timeout */
    uint64_t last_active; /* ms, monotonic */
    uint64_t linger_until;
    size_t lingered;
    int cli_eof, up_eof; /* tunnel half-closes */
    int cli_shut, up_shut;
    struct splicer *spl;       /* the tunnel relays in the kernel */
    struct event *gone_ev;     /* EV_CLOSED on the client while its reading is off */
    int watching;              /* gone_ev is armed for this request */
    uint64_t connect_deadline; /* ms, monotonic: the end of DNS + connect */
    size_t head_scanned;       /* bytes of a partial head parsed so far */
    struct txn t;
};

#endif
