/* The admin endpoint on the main thread's loop: /metrics (Prometheus),
 * /healthz, /readyz and /proxy.pac, served by libevent's evhttp. */
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include <stddef.h>

struct event_base;
struct config;

/* Listens on cfg's [admin] listen when set. 0, or -1 with a logged reason. */
int admin_start(struct event_base *base, const struct config *cfg);
void admin_set_draining(void);
void admin_stop(void);

/* The PAC file for cfg (pure). Writes into buf; returns the length. */
size_t admin_pac(const struct config *cfg, char *buf, size_t size);

#endif
