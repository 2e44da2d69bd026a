/* proxy.ini: the main configuration (pure: reads files, no libevent). */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "diag.h"
#include "util/addr.h"

/* A set of TCP ports: single ports and LOW-HIGH ranges, as in Squid's
 * port ACLs. */
struct portset {
    uint16_t *ports;
    size_t nports;
    uint16_t (*ranges)[2]; /* LOW-HIGH items */
    size_t nranges;
};

struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80];
    int line; /* in proxy.ini, 0: a default */
};

struct tlsmint_ca;
struct ssl_ctx_st;

struct config {
    char *path; /* as given */
    char *dir;  /* its directory: relative paths are resolved against it */

    /* [proxy] */
    struct listen_addr *listen;
    size_t nlisten;
    struct listen_addr *listen_tls; /* the HTTPS proxy port(s): the same proxy behind TLS */
    size_t nlisten_tls;
    char *tls_cert, *tls_key; /* the HTTPS proxy port's certificate (chain) and key */
    int tls_cert_line, tls_key_line;
    struct ssl_ctx_st *proxy_tls; /* SSL_CTX of the HTTPS proxy port, loaded and checked with
                                   * the file (a reload picks up a new certificate); NULL
                                   * without listen_tls */
    struct cidrset clients;
    struct cidrset proxy_protocol; /* balancers that must send a PROXY protocol header */
    struct portset connect_ports; /* CONNECT is refused to other ports */
    struct portset http_ports;    /* plain HTTP is refused to other ports */
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
    char **pac_proxy; /* host:port, in the PAC's order of failover */
    size_t npac_proxy;
    char **pac_direct;
    size_t npac_direct;

    /* [auth] */
    char *auth_htpasswd; /* NULL: no authentication */
    char *auth_groups;   /* NULL: no groups */
    int auth_required;
    char *auth_realm;
    /* Squid helpers (command lines as written; NULL: not set), and the
     * lines they were set on (for messages). */
    char *auth_basic_helper, *auth_negotiate_helper, *auth_group_helper;
    int auth_basic_helper_line, auth_negotiate_helper_line, auth_group_helper_line;
    uint64_t auth_helper_children; /* default HELPER_DEFAULT_CHILDREN (5) */
    uint64_t auth_helper_ttl_ms;   /* default 5 minutes */

    /* [pages] */
    char *pages_folder;  /* NULL: built-in pages only */
    char *pages_contact; /* NULL: none */
    int pages_show_rule;
    /* [tls] */
    char *tls_ca_cert, *tls_ca_key; /* NULL: no [tls] */
    int tls_ca_cert_line, tls_ca_key_line;
    struct tlsmint_ca *tls_ca; /* loaded and checked with the file; NULL without ca_cert */
    int tls_pages;     /* deny, warn and quota pages over HTTPS (default: on with ca_cert) */
    int tls_inspect;   /* 1 auto, 0 no */
    char **tls_exempt; /* categories or platform names never intercepted */
    size_t ntls_exempt;
    int tls_exempt_line;

    /* [cluster]: read at start; a reload keeps the running connection */
    char *cluster_redis;    /* as written; NULL: no [cluster], state stays local */
    char cluster_host[108]; /* an IP address, or a unix socket path when cluster_port is 0 */
    int cluster_port;
    char *cluster_name;     /* NULL: none (no gw= nor gateway label) */
    char *cluster_password; /* owned, wiped on free; NULL: no AUTH */
};

#define CONFIG_MAX_GATEWAY_NAME 63
#define CONFIG_MAX_REDIS_PASSWORD 512

/* [cluster] redis: "IPv4:port", "[IPv6]:port" or "/unix/socket/path" into
 * host (the address without brackets, or the path) and *port (0 for a
 * path). 0, or -1 with *err a static message. */
int config_parse_redis(const char *s, char *host, size_t hostsize, int *port, const char **err);

/* Loads and validates `path`. Returns an owned config, or NULL with every
 * problem in d (as FILE:LINE: message). Warnings may be in d on success. */
struct config *config_load(const char *path, struct diag *d);
/* The same from text; relative paths resolve against `dir`. */
struct config *config_load_string(const char *text, const char *name, const char *dir,
                                  struct diag *d);
void config_free(struct config *c);
/* 1 when port is in set. */
int config_port_in(const struct portset *set, uint16_t port);
/* 1 when a CONNECT tunnel, or a plain HTTP request, may go to port. */
int config_connect_port_allowed(const struct config *c, uint16_t port);
int config_http_port_allowed(const struct config *c, uint16_t port);
/* The ports plain HTTP may reach without [proxy] http_ports: Squid's
 * Safe_ports without those of FTP, gopher and wais (21, 70, 210), which
 * socialgate does not speak. */
#define CONFIG_DEFAULT_HTTP_PORTS "80, 280, 443, 488, 591, 777, 1025-65535"
/* The system's hosts file: the default of [dns] hosts_file. When it does
 * not exist it reads as empty (minimal containers have none); any other
 * hosts_file must exist. */
#define CONFIG_SYSTEM_HOSTS "/etc/hosts"
/* Whether the hosts file at path can be used: 1 yes; 0 it is the system's
 * own (system is set) and does not exist, so it is read as empty; -1 no,
 * with *err a static message (strerror, or "is a directory"). */
/* 1 when any Basic credentials can be checked ([auth] htpasswd or
 * basic_helper), and when users can be known at all (either, or
 * negotiate_helper). */
int config_has_basic(const struct config *c);
int config_has_users(const struct config *c);
int config_hosts_file_usable(const char *path, int system, const char **err);

#endif
