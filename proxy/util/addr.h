/* Addresses, CIDR sets and list splitting (pure: no libevent, no logging). */
#ifndef SG_ADDR_H
#define SG_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint8_t prefix;
};

/* A growable set of CIDRs. Owned; free with cidrset_free. */
struct cidrset {
    struct cidr *v;
    size_t n, cap;
};

/* "10.0.0.0/8", "::1", "192.168.1.1" (host route). 0 or -1 with *err. */
int addr_parse_cidr(const char *s, struct cidr *out, const char **err);
int cidrset_add(struct cidrset *set, const struct cidr *c);
void cidrset_free(struct cidrset *set);
/* IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match IPv4 entries. */
int cidr_match(const struct cidr *c, const struct sockaddr *sa);
int cidrset_match(const struct cidrset *set, const struct sockaddr *sa);

/* "127.0.0.1:3128", "[::1]:3128", "*:3128" (all IPv4+IPv6), "3128" (all). */
int addr_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                      const char **err);
/* "1.2.3.4:80" or "[::1]:80" into buf; returns buf. */
char *addr_format(const struct sockaddr *sa, char *buf, size_t size);
/* Address only, no port. */
char *addr_format_ip(const struct sockaddr *sa, char *buf, size_t size);
int addr_port(const struct sockaddr *sa);
/* Same address and port; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
 * the IPv4 address a.b.c.d. */
int addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* 0.0.0.0, :: or ::ffff:0.0.0.0. */
int addr_is_unspecified(const struct sockaddr *sa);
/* 127.0.0.0/8 (also IPv4-mapped) or ::1. */
int addr_is_loopback(const struct sockaddr *sa);
/* Whether sockets listening on a and b would take the same port on some
 * address, as socialgate binds them: the same address and port, or the
 * same port where one listens on every address (0.0.0.0 takes IPv4 only,
 * :: takes IPv6 and IPv4). */
int addr_listen_overlap(const struct sockaddr *a, const struct sockaddr *b);
/* Whether c lets in every client of a family: a /0, or an IPv6 network
 * holding every IPv4-mapped address (::ffff:0:0/96, ::/64, ...), which a
 * listener on every address sees IPv4 clients as. */
int cidr_is_everyone(const struct cidr *c);

/* Whether a connection to dst would reach a socket listening on `listen`:
 * the same address and port, or the listener's port on any address of this
 * machine when it listens on every address (0.0.0.0 takes IPv4 only, ::
 * both). `local` holds the machine's interface addresses (loopback need not
 * be in it; NULL: loopback only). A connect to 0.0.0.0 or :: counts as one
 * to loopback. */
int addr_reaches_listener(const struct sockaddr *dst, const struct sockaddr *listen,
                          const struct cidrset *local);

/* Calls fn for each item of a list separated by commas and/or whitespace.
 * Items are NUL-terminated copies valid during the call; an item longer
 * than 1023 bytes is passed as NULL (fn reports it). Stops and returns -1
 * when fn returns -1. */
int list_foreach(const char *s, int (*fn)(void *arg, const char *item), void *arg);

#endif
