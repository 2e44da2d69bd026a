/* The state of a client connection and its transaction, shared by the
 * connection core (conn.c) and the code that drives a transaction through
 * it: the head phase (txn.c), the identity and policy side effects
 * (gate.c), the upstream connector (upstream.c) and the protocol phases
 * (forward.c, tunnel.c). Nothing else looks inside a conn. */
#ifndef SG_CONN_TYPES_H
#define SG_CONN_TYPES_H

#include <stdint.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "http1.h"
#include "request.h"
#include "sni.h"

struct auth_job;
struct cluster_ask;
struct helper_pin;
struct helper_req;
struct bufferevent;
struct config;
struct conn;
struct event;
struct evbuffer;
struct evdns_getaddrinfo_request;
struct addrinfo;
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

/* What a handler tells its caller. Every function that may end the
 * connection returns it, and a caller that gets CONN_CLOSED returns at once
 * without touching the transaction again. */
enum conn_rc {
    CONN_GO_ON,     /* carry on */
    CONN_SUSPENDED, /* waiting for something asynchronous (a password
                     * check, DNS, a connect); a callback resumes */
    CONN_CLOSED,    /* the transaction is over: the connection is closed
                     * or closing after its last bytes */
};

/* A phase: the handlers the core dispatches the connection's events to.
 * A NULL handler means the core's default (ignore reads and drains; an
 * event or a timeout closes the connection). Phases call the core; the
 * core never names a phase. */
struct conn_ops {
    const char *name;
    enum conn_rc (*client_read)(struct conn *c);     /* client input grew */
    enum conn_rc (*client_drained)(struct conn *c);  /* client output fell to its
                                                      * write watermark */
    enum conn_rc (*client_event)(struct conn *c, short what); /* EOF or error */
    enum conn_rc (*upstream_read)(struct conn *c);
    enum conn_rc (*upstream_drained)(struct conn *c);
    enum conn_rc (*upstream_event)(struct conn *c, short what); /* CONNECTED, EOF, error */
    enum conn_rc (*timeout)(struct conn *c, uint64_t now_ms);   /* the conn timer fired */
};

typedef enum conn_rc (*conn_cont_fn)(struct conn *c);

/* Where the head phase is (txn.c). */
enum txn_stage {
    STAGE_HEAD,     /* waiting for or reading a request head */
    STAGE_DECIDING, /* waiting for a password check */
};

/* The parsers of a tunnel's first bytes (tunnel.c, tlspage.c), made when
 * the first bytes come (conn_sni_watch): an idle tunnel holds none. */
struct sni_watch {
    struct sni_parser hello;
    struct sni_http http;
    struct sni_server srv;
};

struct txn {
    int active;
    enum txn_stage stage;
    struct request rq; /* the routed request (request.c), owned */
    int is_connect;
    int reused; /* upstream came from the pool */
    int retried;
    int status;        /* status the client saw (0: none yet) */
    uint64_t up, down; /* bytes from / to the client */
    uint64_t usage_up, usage_down; /* of those, already in the ev=usage counters */
    struct timespec start;
    const char *reason;

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

    int platform; /* catalog index, -1: unclassified (or opaque) */
    char *sni;    /* owned: the name in the tunnel's first bytes as sent (the
                   * ClientHello's SNI, or the Host of plain HTTP); the one
                   * logged */
    char *sni2;   /* owned: another name, from a later ClientHello (after a
                   * HelloRetryRequest); decided too */
    int mismatch; /* CONNECT host and SNI classify differently */
    int ech;
    int opaque;   /* the tunnel's bytes cannot be classified (category opaque) */
    int inspect;  /* a CONNECT to be decrypted: a rule needs its requests' methods
                   * or paths (inspect.c) */

    /* The watch over a tunnel's first bytes (tunnel.c): while peek is set,
     * the client's bytes past peek_ok are held until decided. */
    int peek;
    int peek_http;       /* not TLS: reading a plain HTTP head instead */
    int peek_verdicts;   /* ClientHellos (or the HTTP head) decided so far */
    int srv_done;        /* the server answered with other than a HelloRetryRequest */
    size_t peek_fed;     /* bytes of the client's input given to the parser */
    size_t peek_ok;      /* bytes of the client's input decided and to relay */
    int peek_parked;     /* parked waiting for the first bytes once already (the
                          * wake-up reads them: never parked again before) */
    struct sni_watch *sw; /* owned: NULL until the first bytes (conn_sni_watch) */

    int decoy; /* an unknown user: checked against the decoy hash */
    struct auth_job *auth_job;
    struct cluster_ask *cluster_ask; /* Redis asked before deciding (cluster.c) */
    int cluster_asked;               /* once per transaction */
    struct helper_req *neg_req; /* a Negotiate leg at the helper (gate.c) */
    /* [auth] basic_helper and group_helper (gate.c): the check in flight,
     * the message= of a helper's no (shown on the sign-in page), and the
     * groups the user is in, asked before the decision. */
    struct helper_req *helper_job;
    char *auth_message;
    int groups_state;          /* 0 not asked, 1 asking, 2 known */
    char **groups_in;          /* owned: the roles' groups the user is in */
    size_t ngroups_in;
    struct group_ask {
        struct conn *c;
        const char *group; /* a role's, in c->snap (kept while asking) */
        struct helper_req *req;
    } *group_asks; /* owned array: one per group asked (txn_reset cancels) */
    size_t ngroup_asks, groups_pending;
    int groups_failed;
    conn_cont_fn resume; /* runs when a suspended decision allowed */
    int rule;   /* deciding rule, -1: none */
    int action; /* enum policy_action, -1: not decided */
    /* The decision's roles and identity, in `who` (owned, one allocation
     * sized to them: a tunnel keeps them for its whole life); "" before
     * the first decision. */
    const char *roles;
    const char *identity;
    char *who;
    int64_t last_minute; /* last clock minute counted for the quota */
    int answered_here;   /* the response came from socialgate itself */
    const char *tls;     /* the log's tls= (NULL: none): "page", a tunnel answered
                          * inside TLS by socialgate (tlspage.c); "inspect", a
                          * tunnel decrypted for its requests (inspect.c; the
                          * requests inside say it through c->insp) */
    /* What the current phase keeps beyond these fields (the TLS page
     * phase's TLS state): owned, freed with the txn by phase_free. */
    void *phase_state;
    void (*phase_free)(void *state);
    int forwarded;       /* an upstream connection was used */

    struct addrinfo *ai, *ai_next; /* owned list and the next to try */
    struct evdns_getaddrinfo_request *dnsreq;
    int last_errno;
    uint64_t connect_deadline; /* ms, monotonic: the end of DNS + connect */
};

/* A decrypted tunnel (inspect.c): what every request read inside it
 * shares. Set once its TLS is set up with the client; freed by the core
 * with the connection. */
struct conn_inspect {
    int on;                 /* the client's bytes are TLS terminated here */
    char *host;             /* owned: the name the client's TLS asked for (its
                             * SNI), else the CONNECT host: where every request
                             * inside goes, and what decides it */
    uint16_t port;          /* the CONNECT port */
    char *user;             /* owned: the tunnel's signed-in user, NULL: none */
    enum request_auth auth; /* AUTH_OK with user, else AUTH_NONE */
};

struct conn {
    TAILQ_ENTRY(conn) link;
    struct worker *w;
    struct snapshot *snap;       /* the current transaction's (one reference) */
    const struct config *cfg;    /* snap->cfg */
    const struct conn_ops *ops;  /* the current phase */
    const struct conn_ops *home; /* the phase between transactions */
    conn_cont_fn up_ready;       /* runs once the upstream is connected */
    struct bufferevent *cbev, *ubev;
    union { /* the client (a TCP peer: IPv4 or IPv6) */
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    socklen_t peerlen;
    struct event *timer;
    int closed;  /* torn down; freed from the timer */
    int closing; /* last bytes going out, then linger (the core's own phase) */
    int draining;
    int head_bytes_seen;  /* for the header timeout */
    uint64_t last_active; /* ms, monotonic */
    uint64_t linger_until;
    uint64_t flush_deadline; /* ms: closing, waiting for an outer TLS layer to flush */
    size_t lingered;
    int cli_eof, up_eof; /* EOF seen: half-closes in a tunnel; while closing, the
                          * client is done and the conn closes once flushed */
    int cli_shut, up_shut;
    int tls_port;          /* came in on the HTTPS proxy port: c->cbev is TLS (never
                            * spliced; a decrypted tunnel's TLS is a second layer) */
    int tls_handshaking;   /* the HTTPS proxy port's handshake is not done yet */
    /* The HTTPS proxy port, from a balancer: TLS starts once its PROXY
     * protocol header is read (c->cbev is the plain socket until then;
     * conn_start_tls). */
    struct ssl_st *tls_after_header;
    struct splicer *spl;   /* the kernel relays (splice) */
    /* A parked tunnel (conn_park): while nothing is in flight its
     * bufferevents are freed (cbev and ubev are NULL) and it keeps only its
     * sockets, park_fd (client, upstream); park_ev wake it when either has
     * something to say, unless the splicer watches them. */
    int parked;
    int park_fd[2];
    struct event *park_ev[2];
    struct event *gone_ev; /* EV_CLOSED on the client while its reading is off */
    int watching;          /* gone_ev is armed for this request */
    size_t head_scanned;   /* bytes of a partial head parsed so far */
    int first_head_checked; /* the first bytes were checked for a PROXY protocol
                             * header that was not ours to take (txn.c) */
    struct conn_inspect insp;
    /* Negotiate (gate.c): the identity sticks to the connection, as
     * RFC 4559 has it; a multi-leg exchange stays on one helper child. */
    char *neg_user;             /* owned: the user the exchange gave, NULL: none */
    struct helper_pin *neg_pin; /* owned: an exchange in progress (after TT) */
    struct txn t;
};

#endif
