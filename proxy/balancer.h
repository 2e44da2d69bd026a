/* The first phase of a connection from a load balancer listed in [proxy]
 * proxy_protocol: it reads the PROXY protocol header (v1 or v2,
 * proxyproto.c) that such a connection must start with, takes the client
 * address from it, and only then applies the checks conn_new applies at
 * accept to everyone else (`clients`, `max_per_client`), before the
 * connection goes on to its home phase. The header timeout bounds it. */
#ifndef SG_BALANCER_H
#define SG_BALANCER_H

#include "conn_types.h"

/* conn_new's `first` phase for a connection from a balancer. */
extern const struct conn_ops balancer_ops;

#endif
