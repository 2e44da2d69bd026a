/* One client connection: HTTP/1.1 requests forwarded to origins, or a
 * CONNECT tunnel. Lives in one worker; torn down in one place
 * (conn_close), freed from the event loop after the callback that closed
 * it has returned. */
#ifndef SG_CONN_H
#define SG_CONN_H

#include <sys/socket.h>

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

#endif
