/* The tunnel phase: CONNECT tunnels and upgraded connections. The
 * ClientHello peek (the SNI decided too), bytes relayed both ways with
 * backpressure, half-closes passed on, and splice(2) once nothing needs
 * inspecting. */
#ifndef SG_TUNNEL_H
#define SG_TUNNEL_H

#include "conn_types.h"

extern const struct conn_ops tunnel_ops;

/* A CONNECT's upstream is connected and the phase is tunnel_ops: answers
 * 200 and waits for the ClientHello. */
enum conn_rc tunnel_start(struct conn *c);
/* The origin answered 101 (its head is in the client output) and the phase
 * is tunnel_ops: relays what either side has sent already. */
enum conn_rc tunnel_start_upgraded(struct conn *c);

#endif
