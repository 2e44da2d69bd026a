/* The connection core: a client connection's lifetime, its timer, the
 * bufferevent callbacks, backpressure helpers, the keep-alive reset and the
 * single teardown. It knows no protocol: every event goes to the current
 * phase's `struct conn_ops` (conn_types.h), set with conn_set_phase. The
 * phases (txn.c, forward.c, tunnel.c, upstream.c's connect) call the core;
 * the core never calls a phase by name.
 *
 * A connection lives in one worker; it is torn down in one place
 * (conn_close) and freed from the event loop after the callback that
 * closed it has returned. */
#ifndef SG_CONN_H
#define SG_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "conn_types.h"

struct worker;
struct http1_head;
struct tm;
struct usage_row;
struct bufferevent;
struct ssl_st;

/* --- for the worker ------------------------------------------------------ */

/* Takes fd, and ssl when not NULL (the HTTPS proxy port: the client's
 * bytes are TLS, handshaken here within header_timeout before the home
 * phase reads anything). `home` is the phase between transactions (the
 * head reader). With `first` NULL, answers at once when the client is
 * refused (not in `clients`, over max_per_client: conn_admit). Otherwise
 * the connection starts in `first`, which calls conn_admit once it knows
 * who the client is (a PROXY protocol header, balancer.c); with ssl too,
 * the header is read from the plain socket and TLS starts after it
 * (conn_start_tls). Returns NULL when it could not even allocate (fd and
 * ssl are freed then). */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t len,
                      int over_client_limit, const struct conn_ops *home,
                      const struct conn_ops *first, struct ssl_st *ssl);
/* The accept-time checks on c->peer (`clients`, then the per-client limit
 * the caller counted), then on to the home phase with the header timeout;
 * bytes already read are read there. Refused: an error page, CONN_CLOSED. */
enum conn_rc conn_admit(struct conn *c, int over_client_limit);
/* The HTTPS proxy port behind a balancer: its PROXY protocol header has
 * been read from the plain socket, and nothing after it (the ClientHello
 * is still in the socket). c->cbev becomes the TLS bufferevent over the
 * same socket, handshaking (c->tls_handshaking), as conn_new makes it for
 * everyone else on that port. Out of memory: CONN_CLOSED. */
enum conn_rc conn_start_tls(struct conn *c);
/* TERM: idle connections close now, busy ones after their transaction. */
void conn_drain(struct conn *c);
/* The next connection of the same worker, for walking its list. */
struct conn *conn_next(struct conn *c);
/* The drain time is up: close now, logging the transaction. */
void conn_abort(struct conn *c, const char *reason);

/* --- for the phases ------------------------------------------------------ */

/* Events go to `ops` from now on. */
void conn_set_phase(struct conn *c, const struct conn_ops *ops);
/* Starts the transaction record: its clock, and the snapshot current now
 * (a reload reaches a keep-alive connection at its next request). */
void conn_txn_begin(struct conn *c);
/* Takes the current snapshot mid-transaction, for a re-decision. 1 when it
 * changed (then indexes into the old one are stale), 0 when not. */
int conn_snapshot_refresh(struct conn *c);
/* The single teardown, safe from any handler; reason goes to the log (NULL:
 * a normal end). The conn is freed later, from its timer. CONN_CLOSED. */
enum conn_rc conn_close(struct conn *c, const char *reason);
/* Answers with an error page and closes (only before any response byte;
 * later it just closes). CONN_CLOSED. */
enum conn_rc conn_reply_error(struct conn *c, int status, const char *reason, const char *detail);
/* Writes a whole prepared response (page, n bytes) and closes after it;
 * n == 0 (the page did not fit) closes at once. CONN_CLOSED. */
enum conn_rc conn_reply_page(struct conn *c, const char *page, size_t n, int status,
                             const char *reason);
/* Closes once the client output has gone (then lingers to read what is
 * left). CONN_CLOSED: the transaction is over. */
enum conn_rc conn_close_after_write(struct conn *c);
/* Ends a transaction whose answer is already out (an open tunnel denied):
 * what is queued for the client is still sent, its unread input dropped. */
enum conn_rc conn_close_denied(struct conn *c, const char *reason);
/* The transaction ended well and the connection stays open: logs it,
 * resets it and returns to the home phase; pipelined input is read from the
 * loop (never from inside this call). */
enum conn_rc conn_keepalive(struct conn *c);
/* The usage-log line of the current transaction, written once. */
void conn_txn_log(struct conn *c);
void conn_free_upstream(struct conn *c);
/* The client's bytes go through bev from now on (TLS set up over the same
 * socket): the old bufferevent is freed without closing the socket, bev
 * gets the core's callbacks and is freed with the connection. */
void conn_replace_client(struct conn *c, struct bufferevent *bev);
/* The client's bytes go through bev from now on, a TLS filter over the
 * current c->cbev (a decrypted tunnel on the HTTPS proxy port): bev owns
 * the old one and gets the core's callbacks. */
void conn_wrap_client(struct conn *c, struct bufferevent *bev);
/* Half-closes the client side once its output is out: on the HTTPS
 * proxy port a TLS close_notify first, so the end reads as an end. */
void conn_client_shutdown(struct conn *c);
/* Gives c->ubev the core's callbacks (events go to the phase). */
void conn_attach_upstream(struct conn *c);
/* Where a head is parsed, one per thread (no allocation per request). It
 * is the next parse's: never keep it across a call that may parse again. */
struct http1_head *conn_scratch_head(void);
/* Activity now, for the idle timeout. */
void conn_touch(struct conn *c);
/* The loop's cached monotonic-ish clock, ms. */
uint64_t conn_now_ms(struct conn *c);
/* The loop's cached wall clock, seconds and microseconds. */
void conn_wall_clock(struct conn *c, time_t *sec, long *usec);
/* (Re)arms the connection's single timer, ms from now. */
void conn_arm(struct conn *c, uint64_t ms);
/* For a phase's timeout: 1 when the connection was active within
 * idle_timeout (the timer is re-armed for the rest), 0 when it has been
 * idle that long. */
int conn_rearm_idle(struct conn *c, uint64_t now);
/* localtime_r, cached per thread for the current second. */
void conn_local_tm(time_t t, struct tm *out);
/* Notice a client that leaves while its reading is off (on) or stop (0):
 * the connection closes with client-closed if no response has started. */
void conn_watch_client(struct conn *c, int on);
/* Runs the phase's client_read from the loop soon (bytes already read). */
void conn_kick_read(struct conn *c);
/* 1 when no byte waits in user space in either direction. */
int conn_buffers_empty(struct conn *c);
/* Stops or restarts the bufferevents of both sides (for a splice relay). */
void conn_io_pause(struct conn *c);
void conn_io_resume(struct conn *c);
/* Parks a tunnel whose buffers are empty (plain sockets on both sides,
 * no TLS layer): frees both bufferevents and keeps the sockets. With
 * `watch`, the tunnel unparks by itself when either socket turns readable
 * (bytes, an end) and the phase reads as before; without, the caller (the
 * splicer) watches the sockets and the tunnel stays parked until it
 * closes. -1 (still unparked) when it cannot. conn_close and the other
 * endings cope with a parked tunnel. */
int conn_park(struct conn *c, int watch);
/* Makes the bufferevents again, reading both sides that have not ended.
 * -1 out of memory (still parked). */
int conn_unpark(struct conn *c);
/* The transaction's parsers of a tunnel's first bytes, made on first use
 * (NULL: out of memory); freed with the transaction or by
 * conn_sni_watch_free. */
struct sni_watch *conn_sni_watch(struct conn *c);
void conn_sni_watch_free(struct conn *c);
/* Fills row (ip holds the client address) for usage_activity. */
void conn_usage_who(struct conn *c, struct usage_row *row, char *ip, size_t ipsize);
/* Adds the bytes an open transaction moved since the last call to the
 * usage counters, so that an ev=usage line counts them in the interval in
 * which they moved; the transaction itself counts as a request when it
 * ends (conn_txn_log), with the bytes not yet added. In c's thread. */
void conn_usage_progress(struct conn *c);

#endif
