/* The decision point every request and tunnel passes after its head and
 * before any upstream connection: classification, identity (client
 * networks, Proxy-Authorization checked off the loop), policy, warn and
 * deny pages, and the active minutes counted for usage and quotas. */
#ifndef SG_GATE_H
#define SG_GATE_H

#include <stddef.h>

struct conn;
struct http1_head;
struct sni_info;
struct usage_row;

/* With [auth] required = yes, a head that carries no credentials of a
 * known user is held to these limits instead of max_header_bytes and
 * HTTP1_MAX_HEADERS: all it can earn is a 407. */
#define PREAUTH_HEAD_BYTES 16384
#define PREAUTH_FIELDS 64

/* Keeps the Proxy-Authorization credentials of h for the decision. */
void gate_read_credentials(struct conn *c, const struct http1_head *h);
/* 1 when heads of this connection are held to the PREAUTH limits. */
int gate_preauth_limited(const struct conn *c);
/* 1 when the fields parsed so far name a user of the htpasswd file. */
int gate_names_known_user(const struct conn *c, const struct http1_head *h);
/* Decides on c's transaction. 0: go on now; 1: answered, or it goes on
 * later (conn_proceed after a password check). */
int gate_decide(struct conn *c);
/* A tunnel's ClientHello was read: decides on its SNI too. 0: relay on;
 * 1: the tunnel was closed. */
int gate_decide_sni(struct conn *c, const struct sni_info *info);
/* Counts the current clock minute as active (once per minute with
 * traffic); may close the conn when its quota has run out. */
void gate_mark_active(struct conn *c);
/* Fills row (ip holds the client address) for usage_activity. */
void gate_usage_who(struct conn *c, struct usage_row *row, char *ip, size_t ipsize);

#endif
