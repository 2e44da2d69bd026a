/* The side effects of a decision, for every request and tunnel after its
 * head and before any upstream connection: classification, the password
 * check off the loop, the verdict (decision.c) acted on (deny, warn,
 * sign-in and local pages), and the active minutes counted for usage and
 * quotas, with the re-decision of an open transfer. */
#ifndef SG_GATE_H
#define SG_GATE_H

#include "conn_types.h"

struct sni_info;

/* Decides on c's transaction. CONN_GO_ON: allowed, go on now;
 * CONN_SUSPENDED: a password check runs, and `resume` is called from the
 * loop once it allowed (an answer otherwise), or a tunnel went on to its
 * page inside TLS (tlspage.c); CONN_CLOSED: answered. */
enum conn_rc gate_decide(struct conn *c, conn_cont_fn resume);
/* A tunnel's ClientHello (each one, after a HelloRetryRequest too) or
 * plain HTTP head was read: decides on the server it names too (SNI or
 * Host, normalised: a name that is none makes the tunnel opaque; no name
 * leaves the CONNECT host to decide, unless that is an IP address: opaque
 * then). The stricter decision wins. CONN_GO_ON to relay on, CONN_CLOSED
 * when the tunnel was closed (reason sni-denied or opaque) or, denied by
 * its first hello with [tls] pages, handed to the TLS page phase. */
enum conn_rc gate_decide_sni(struct conn *c, const struct sni_info *info);
/* A tunnel's bytes cannot be classified: decided as the pseudo-category
 * opaque, denied unless a rule allows it. CONN_GO_ON when allowed,
 * CONN_CLOSED (reason=opaque) otherwise. */
enum conn_rc gate_decide_opaque(struct conn *c);
/* Counts the current clock minute as active (once per minute with
 * traffic). At a new minute, a transfer whose quota ran out, or whose
 * configuration was reloaded, is decided again (same method, path and SNI)
 * and closed when that denies: CONN_CLOSED then. */
enum conn_rc gate_mark_active(struct conn *c);

#endif
