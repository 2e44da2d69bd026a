/* CONNECT tunnels (and upgraded connections): the ClientHello peek, bytes
 * relayed both ways with backpressure, half-closes passed on, and splice(2)
 * once nothing needs inspecting. Called by conn.c in the state CS_TUNNEL. */
#ifndef SG_TUNNEL_H
#define SG_TUNNEL_H

struct bufferevent;
struct conn;

/* Looks at the client's first bytes for a ClientHello and decides on its
 * SNI. 1 while more bytes are needed or the tunnel was closed. */
int tunnel_peek_hello(struct conn *c);
/* Moves what `from` has read to `to`'s output, pausing `from` when full. */
void tunnel_relay(struct conn *c, struct bufferevent *from, struct bufferevent *to);
/* Hands the tunnel to splice(2) when nothing waits in user space. */
void tunnel_try_splice(struct conn *c);
/* `from` said EOF: the half-close is passed on once its data is out. */
void tunnel_eof(struct conn *c, struct bufferevent *from);
/* `to` drained: reading from the other side resumes. */
void tunnel_writable(struct conn *c, struct bufferevent *to);

#endif
