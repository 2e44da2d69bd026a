/* proxy.ini: the main configuration (pure: reads files, no libevent). */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "diag.h"
#include "util/addr.h"

struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80];
    int line; /* in proxy.ini, 0: a default */
};

struct config {
    char *path; /* as given */
    char *dir;  /* its directory: relative paths are resolved against it */

    /* [proxy] */
    struct listen_addr *listen;
    size_t nlisten;
    struct cidrset clients;
    uint16_t *connect_ports;
    size_t nconnect_ports;
    uint16_t (*connect_ranges)[2]; /* LOW-HIGH items */
    size_t nconnect_ranges;
    char *rules_dir;
    char *timezone; /* NULL: the system's */
    int workers;    /* 0 = auto */
    char *state_dir;
    char *run_user; /* NULL: keep the user we started as */
    char *pidfile;  /* NULL: none */

    /* [dns] */
    int dns_system;
    char **nameservers;
    size_t nnameservers;
    char *hosts_file; /* NULL: none */

    /* [limits] */
    uint64_t max_connections;
    uint64_t max_per_client;
    uint64_t max_header_bytes;
    uint64_t connect_timeout_ms;
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t drain_ms;
    struct cidrset block_destinations;

    /* [log] */
    char *access_log; /* "-" stdout, "syslog", or a path */
    char *squid_log;  /* NULL: none */
    uint64_t usage_interval_ms;
    int syslog_facility; /* LOG_LOCAL4 etc. */

    /* [admin] */
    int admin_enabled;
    struct listen_addr admin_listen;
    struct cidrset admin_allow;
    char *pac_proxy;
    char **pac_direct;
    size_t npac_direct;

    /* [auth] */
    char *auth_htpasswd; /* NULL: no authentication */
    char *auth_groups;   /* NULL: no groups */
    int auth_required;
    char *auth_realm;
};

/* Loads and validates `path`. Returns an owned config, or NULL with every
 * problem in d (as FILE:LINE: message). Warnings may be in d on success. */
struct config *config_load(const char *path, struct diag *d);
/* The same from text; relative paths resolve against `dir`. */
struct config *config_load_string(const char *text, const char *name, const char *dir,
                                  struct diag *d);
void config_free(struct config *c);
int config_connect_port_allowed(const struct config *c, uint16_t port);

#endif
