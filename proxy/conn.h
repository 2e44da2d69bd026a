/* One client connection: HTTP/1.1 requests forwarded to origins, or a
 * CONNECT tunnel. Lives in one worker; torn down in one place
 * (conn_close), freed from the event loop after the callback that closed
 * it has returned. */
#ifndef SG_CONN_H
#define SG_CONN_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct worker;
struct conn;

/* Takes fd. Answers at once when the client is refused (not in `clients`,
 * over max_per_client). Returns NULL when it could not even allocate. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t len,
                      int over_client_limit);
/* TERM: idle connections close now, busy ones after their transaction. */
void conn_drain(struct conn *c);
/* The next connection of the same worker, for walking its list. */
struct conn *conn_next(struct conn *c);
/* The drain time is up: close now, logging the transaction. */
void conn_abort(struct conn *c, const char *reason);

/* --- for forward.c, tunnel.c and gate.c (struct conn is in conn_types.h) */

struct http1_head;
struct tm;

/* The single teardown, safe from any callback; reason goes to the log
 * (NULL: a normal end). The conn is freed later, from its timer. */
void conn_close(struct conn *c, const char *reason);
/* Answers with an error page and closes (only before any response byte). */
void conn_reply_error(struct conn *c, int status, const char *reason, const char *detail);
/* Writes a whole prepared response (page, n bytes) and closes after it;
 * n == 0 (the page did not fit) closes at once. */
void conn_reply_page(struct conn *c, const char *page, size_t n, int status, const char *reason);
/* Closes once the output has gone (then lingers to read what is left). */
void conn_close_after_write(struct conn *c);
/* The usage-log line of the current transaction, written once. */
void conn_txn_log(struct conn *c);
/* Frees what the transaction owns and zeroes it for the next one. */
void conn_txn_reset(struct conn *c);
void conn_free_upstream(struct conn *c);
/* Where a head is parsed, one per thread (no allocation per request). It
 * is the next parse's: never keep it across a call that may parse again
 * (conn_try_head, forward_on_response_head, anything that answers). */
struct http1_head *conn_scratch_head(void);
/* Activity now, for the idle timeout. */
void conn_touch(struct conn *c);
/* (Re)arms the connection's single timer, ms from now. */
void conn_arm(struct conn *c, uint64_t ms);
/* localtime_r, cached per thread for the current second. */
void conn_local_tm(time_t t, struct tm *out);
/* Notice a client that leaves while its reading is off (on) or stop (0). */
void conn_watch_client(struct conn *c, int on);
/* A request is sent: wait for the answer, watching the client after a while. */
void conn_await_answer(struct conn *c);
/* Resolves the upstream host and connects. */
void conn_resolve(struct conn *c);
/* The decision allowed: a pooled upstream or a new one. */
void conn_proceed(struct conn *c);
/* Parses the client's input for the next request head. */
void conn_try_head(struct conn *c);

#endif
