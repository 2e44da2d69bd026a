/* The head phase, where every transaction starts: it reads a request head
 * from the client (with the header timeout and the limits before
 * authentication), turns it into a routed request or a refusal (request.c),
 * has it decided (gate.c), opens the upstream (upstream.c) and hands the
 * connection to its protocol phase: forward.c for plain HTTP, tunnel.c for
 * CONNECT. It is every connection's home phase (conn_new). */
#ifndef SG_TXN_H
#define SG_TXN_H

#include "conn_types.h"

extern const struct conn_ops txn_head_ops;

#endif
