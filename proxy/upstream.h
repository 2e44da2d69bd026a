/* The upstream side of a transaction: the idle pool of each worker, name
 * resolution (evdns with the hosts file; block_destinations applied to the
 * resolved addresses), the connect with connect_timeout, and the refusals
 * they lead to. While it resolves and connects, the connection is in this
 * module's phase; once connected, c->up_ready(c) runs. */
#ifndef SG_UPSTREAM_H
#define SG_UPSTREAM_H

#include "conn_types.h"

struct worker;

/* Opens the upstream for c's request (c->t.rq.host, port): an idle pooled
 * connection when may_reuse and one is kept for host:port (then up_ready
 * runs before this returns, and its result is returned), else DNS and a
 * connect (CONN_SUSPENDED; up_ready runs from the loop). Failures answer
 * the client: 502 dns-failed or connect-failed, 403 destination-blocked,
 * 508 forwarding-loop, 504 connect-timeout. */
enum conn_rc upstream_open(struct conn *c, int may_reuse);
/* The response is complete: c->ubev goes to the worker's pool when
 * reusable and idle, else it is closed. c->ubev is NULL afterwards. */
void upstream_release(struct conn *c, int reusable);
/* Frees this thread's TLS client context (a worker thread that ends). */
void upstream_tls_thread_cleanup(void);
/* Closes every idle pooled connection of w (drain, stop). */
void upstream_pool_clear(struct worker *w);

#endif
