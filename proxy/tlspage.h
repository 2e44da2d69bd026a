/* The TLS page phase: a CONNECT tunnel that the policy denies, warns about
 * (no Continue yet) or stops for a used-up quota, with [tls] pages on, is
 * answered 200; its TLS is completed with a certificate minted for its SNI
 * (the CONNECT host without one, tlsmint.c), and its first request inside
 * gets the page. Nothing reaches the origin. A warn page's Continue link
 * (https://HOST LOCAL_TLS_CONTINUE_PATH) is answered the same way: it
 * records the Continue and redirects. Every answer closes the connection.
 *
 * TLS runs over memory BIOs fed from and drained into the client's
 * bufferevent, so the core keeps its callbacks, timer and teardown, and
 * the ClientHello bytes the tunnel already read are simply given to
 * OpenSSL first. */
#ifndef SG_TLSPAGE_H
#define SG_TLSPAGE_H

#include "conn_types.h"
#include "decision.h"

extern const struct conn_ops tlspage_ops;

/* A CONNECT decided v (VERDICT_DENY_PAGE, VERDICT_WARN_PAGE or
 * VERDICT_QUOTA_PAGE) before any upstream: answers 200 and goes on in this
 * phase. CONN_SUSPENDED (the decision's caller opens no upstream; the
 * client's TLS drives the rest), or CONN_CLOSED. */
enum conn_rc tlspage_start(struct conn *c, enum verdict v);
/* An open tunnel denied by its ClientHello's SNI (before any of the
 * client's bytes went on): the upstream is closed and the held hello is
 * answered in this phase. `sni` is the hello's name (NULL: none).
 * CONN_CLOSED: the tunnel phase is over (either closed, or in this phase
 * now), its caller returns at once. */
enum conn_rc tlspage_take_over(struct conn *c, enum verdict v, const char *sni);

#endif
