/* Asynchronous name resolution for one worker: evdns with the configured
 * hosts file consulted first and the configured (or system) nameservers. */
#ifndef SG_DNS_H
#define SG_DNS_H

#include <stdint.h>

struct event_base;
struct evdns_base;
struct evutil_addrinfo;
struct config;

/* Returns an owned evdns base, or NULL with a logged reason. */
struct evdns_base *dns_new(struct event_base *base, const struct config *cfg);
void dns_free(struct evdns_base *dns);

#endif
