/* The forward phase, plain HTTP through the proxy: the head built by the
 * request stage goes upstream, request and response bodies move by their
 * framing with backpressure (long bodies of known length by splice(2)),
 * the response head is rewritten for the client, and at the end the
 * upstream goes back to the pool and the connection to its next request.
 * A 101 answer to an upgrade hands the connection to the tunnel phase. */
#ifndef SG_FORWARD_H
#define SG_FORWARD_H

#include "conn_types.h"

extern const struct conn_ops forward_ops;

/* The upstream is connected and the phase is forward_ops: sends the head
 * and whatever body the client has sent so far. */
enum conn_rc forward_start(struct conn *c);

#endif
