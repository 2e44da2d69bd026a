/* The inspection phase: a CONNECT tunnel that a rule needs to read inside
 * ([tls] inspect = auto, decision_inspect_rule) is answered 200, TLS is
 * completed with the client under a certificate minted from [tls] ca_cert
 * (tlsmint.c), and the connection goes back to the head phase with its
 * client side decrypted (c->insp): each request inside is then routed
 * (request_from_inner_head), decided, logged and forwarded over TLS by the
 * same phases as plain HTTP. */
#ifndef SG_INSPECT_H
#define SG_INSPECT_H

#include "conn_types.h"

extern const struct conn_ops inspect_ops;

/* c's CONNECT was decided for inspection and the phase is inspect_ops:
 * answers 200, then waits for the client's TLS. */
enum conn_rc inspect_start(struct conn *c);

#endif
