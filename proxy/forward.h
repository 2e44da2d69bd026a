/* Plain HTTP through the proxy: the head sent upstream (origin form, a
 * correct Host, hop-by-hop fields removed, Via), request and response
 * bodies by their framing, the response head sent back, keep-alive and the
 * upstream pool. Called by conn.c in the states CS_FORWARD. */
#ifndef SG_FORWARD_H
#define SG_FORWARD_H

struct conn;
struct http1_head;
struct http1_target;

/* 1 when a Via field of h already names this proxy (a forwarding loop). */
int forward_via_loops(const struct http1_head *h);
/* Builds c->t.uhead, the head sent upstream (NULL when out of memory). */
void forward_build_head(struct conn *c, const struct http1_head *h, const struct http1_target *tg);
/* Moves request body bytes upstream; stops reading the client at its end. */
void forward_pump_request_body(struct conn *c);
/* Parses the upstream's response head (1xx, 101, final) and starts the body. */
void forward_on_response_head(struct conn *c);
/* Moves response body bytes to the client; ends the transaction at its end. */
void forward_pump_response(struct conn *c);
/* A long body of known length: hands it to splice(2) when nothing waits. */
void forward_try_splice(struct conn *c);
/* The response is complete: log, pool the upstream, next request or close. */
void forward_txn_done(struct conn *c);
/* A pooled upstream died before answering a bodiless request: 1 when the
 * request was sent again on a new connection. */
int forward_retry_fresh(struct conn *c);

#endif
