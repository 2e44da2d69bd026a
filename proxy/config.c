#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helperproto.h"
#include "inifile.h"
#include "tlsmint.h"
#include "util/num.h"

struct load {
    struct config *c;
    struct diag *d;
    const char *file;
    int line;
    char last_key[80];    /* section/key of the previous line, for continuations */
    uint64_t seen;        /* bit per key (index in keys[]), for duplicates */
    uint64_t failed;      /* bit per key whose value was refused */
    int key_line[64];     /* line of each key set (index in keys[]), 0: not set */
    int bad_section_line; /* header of the unknown section last reported */
};

static char *
xstrdup(const char *s)
{
    char *r = strdup(s);
    if (r == NULL)
        abort(); /* startup / reload only: nothing sensible to do */
    return r;
}

/* Resolves p against the config directory. Returns owned. */
static char *
resolve_path(const char *dir, const char *p)
{
    if (p[0] == '/' || dir == NULL || dir[0] == '\0' || strcmp(dir, ".") == 0)
        return xstrdup(p);
    size_t n = strlen(dir) + strlen(p) + 2;
    char *r = malloc(n);
    if (r == NULL)
        abort();
    snprintf(r, n, "%s/%s", dir, p);
    return r;
}

static int
bad(struct load *l, const char *key, const char *value, const char *why)
{
    diag_error(l->d, l->file, l->line, "%s = %s: %s", key, value, why);
    return -1;
}

static int
is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --- list item callbacks --- */

static int
add_listen_to(struct load *l, const char *key, struct listen_addr **list, size_t *n,
              const char *item)
{
    const char *err;
    struct listen_addr a = {0};
    if (item == NULL)
        return bad(l, key, "...", "item too long");
    if (addr_parse_listen(item, &a.ss, &a.len, &err) < 0)
        return bad(l, key, item, err);
    snprintf(a.text, sizeof(a.text), "%s", item);
    a.line = l->line;
    struct listen_addr *nv = realloc(*list, (*n + 1) * sizeof(*nv));
    if (nv == NULL)
        abort();
    *list = nv;
    (*list)[(*n)++] = a;
    return 0;
}

static int
add_listen(void *arg, const char *item)
{
    struct load *l = arg;
    return add_listen_to(l, "listen", &l->c->listen, &l->c->nlisten, item);
}

static int
add_listen_tls(void *arg, const char *item)
{
    struct load *l = arg;
    return add_listen_to(l, "listen_tls", &l->c->listen_tls, &l->c->nlisten_tls, item);
}

static int
add_cidr_to(struct load *l, struct cidrset *set, const char *key, const char *item)
{
    struct cidr cd;
    const char *err;
    if (item == NULL)
        return bad(l, key, "...", "item too long");
    if (addr_parse_cidr(item, &cd, &err) < 0)
        return bad(l, key, item, err);
    if (cidrset_add(set, &cd) < 0)
        abort();
    return 0;
}

static int
add_client(void *arg, const char *item)
{
    struct load *l = arg;
    if (add_cidr_to(l, &l->c->clients, "clients", item) < 0)
        return -1;
    if (cidr_is_everyone(&l->c->clients.v[l->c->clients.n - 1]))
        diag_warning(l->d, l->file, l->line,
                     "clients = %s makes this an open proxy: anyone who reaches the listen "
                     "address can use it",
                     item);
    return 0;
}

static int
add_proxy_protocol(void *arg, const char *item)
{
    struct load *l = arg;
    return add_cidr_to(l, &l->c->proxy_protocol, "proxy_protocol", item);
}

static int
add_block(void *arg, const char *item)
{
    static const struct {
        const char *name;
        const char *cidrs[4];
    } named[] = {
        {"loopback", {"127.0.0.0/8", "::1/128", NULL}},
        {"link-local", {"169.254.0.0/16", "fe80::/10", NULL}},
        {"private", {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}},
        {"unspecified", {"0.0.0.0/8", "::/128", NULL}},
        {"multicast", {"224.0.0.0/4", "ff00::/8", NULL}},
    };
    struct load *l = arg;
    if (item == NULL)
        return bad(l, "block_destinations", "...", "item too long");
    if (strcasecmp(item, "none") == 0)
        return 0;
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        if (strcasecmp(item, named[i].name) != 0)
            continue;
        for (size_t k = 0; k < 4 && named[i].cidrs[k]; k++)
            add_cidr_to(l, &l->c->block_destinations, "block_destinations", named[i].cidrs[k]);
        return 0;
    }
    if (strchr(item, '.') == NULL && strchr(item, ':') == NULL)
        return bad(l, "block_destinations", item,
                   "expected loopback, link-local, private, multicast, unspecified, none or a CIDR");
    return add_cidr_to(l, &l->c->block_destinations, "block_destinations", item);
}

/* A port or a range LOW-HIGH, as in Squid's port ACLs (1024-65535), into
 * set; key names the list in messages. */
static int
add_port_to(struct load *l, struct portset *set, const char *key, const char *item)
{
    uint64_t p, hi;
    const char *err;
    const char *dash = item ? strchr(item, '-') : NULL;
    if (dash) {
        if (num_parse_u64(item, (size_t)(dash - item), 65535, &p, &err) < 0 || p == 0 ||
            num_parse_u64(dash + 1, strlen(dash + 1), 65535, &hi, &err) < 0 || hi < p)
            return bad(l, key, item, "expected a port 1-65535 or a range LOW-HIGH");
        uint16_t(*nr)[2] = realloc(set->ranges, (set->nranges + 1) * sizeof(*nr));
        if (nr == NULL)
            abort();
        set->ranges = nr;
        set->ranges[set->nranges][0] = (uint16_t)p;
        set->ranges[set->nranges][1] = (uint16_t)hi;
        set->nranges++;
        return 0;
    }
    if (item == NULL || num_parse_u64(item, strlen(item), 65535, &p, &err) < 0 || p == 0)
        return bad(l, key, item ? item : "...", "expected a port 1-65535 or a range LOW-HIGH");
    uint16_t *nv = realloc(set->ports, (set->nports + 1) * sizeof(*nv));
    if (nv == NULL)
        abort();
    set->ports = nv;
    set->ports[set->nports++] = (uint16_t)p;
    return 0;
}

static int
add_connect_port(void *arg, const char *item)
{
    struct load *l = arg;
    return add_port_to(l, &l->c->connect_ports, "connect_ports", item);
}

static int
add_http_port(void *arg, const char *item)
{
    struct load *l = arg;
    return add_port_to(l, &l->c->http_ports, "http_ports", item);
}

static int
add_nameserver(void *arg, const char *item)
{
    struct load *l = arg;
    struct config *c = l->c;
    struct sockaddr_storage ss;
    socklen_t len;
    const char *err;
    if (item == NULL)
        return bad(l, "nameservers", "...", "item too long");
    if (strcasecmp(item, "system") == 0) {
        c->dns_system = 1;
        return 0;
    }
    /* "1.2.3.4", "1.2.3.4:53", "[::1]:53", "::1". addr_parse_listen also
     * takes "53", ":53" and "*:53" (listen on all): no server address. */
    struct cidr cd;
    int ok = addr_parse_cidr(item, &cd, &err) == 0 ||
             (item[0] != ':' && item[0] != '*' && strchr(item, ':') != NULL &&
              addr_parse_listen(item, &ss, &len, &err) == 0);
    if (!ok)
        return bad(l, "nameservers", item, "expected system or IP[:port] addresses");
    if (strchr(item, '/') != NULL)
        return bad(l, "nameservers", item, "expected an address, not a network");
    char **nv = realloc(c->nameservers, (c->nnameservers + 1) * sizeof(*nv));
    if (nv == NULL)
        abort();
    c->nameservers = nv;
    c->nameservers[c->nnameservers++] = xstrdup(item);
    return 0;
}

static int
add_admin_allow(void *arg, const char *item)
{
    struct load *l = arg;
    return add_cidr_to(l, &l->c->admin_allow, "allow", item);
}

/* "*.example.com", "intranet.example.com", or an IPv4 CIDR (PAC's isInNet
 * knows IPv4 only). */
/* One gateway of the PAC, host:port; the PAC tries them in list order. */
static int
add_pac_proxy(void *arg, const char *item)
{
    struct load *l = arg;
    struct config *c = l->c;
    const char *err;
    if (item == NULL)
        return bad(l, "pac_proxy", "...", "item too long");
    const char *colon = strrchr(item, ':');
    uint64_t port;
    if (colon == NULL || colon == item ||
        num_parse_u64(colon + 1, strlen(colon + 1), 65535, &port, &err) < 0 || port == 0 ||
        strpbrk(item, " \"\\;") != NULL)
        return bad(l, "pac_proxy", item, "expected host:port");
    char **nv = realloc(c->pac_proxy, (c->npac_proxy + 1) * sizeof(*nv));
    if (nv == NULL)
        abort();
    c->pac_proxy = nv;
    c->pac_proxy[c->npac_proxy++] = xstrdup(item);
    return 0;
}

static int
add_pac_direct(void *arg, const char *item)
{
    struct load *l = arg;
    struct config *c = l->c;
    struct cidr cd;
    const char *err;
    if (item == NULL)
        return bad(l, "pac_direct", "...", "item too long");
    if (addr_parse_cidr(item, &cd, &err) == 0) {
        if (cd.family != AF_INET)
            return bad(l, "pac_direct", item, "PAC files can only test IPv4 networks");
    } else {
        const char *d = strncmp(item, "*.", 2) == 0 ? item + 2 : item;
        if (*d == '\0' || strchr(d, '.') == NULL)
            return bad(l, "pac_direct", item, "expected *.domain, a host name or an IPv4 CIDR");
        for (const char *q = d; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  (*q >= '0' && *q <= '9') || *q == '-' || *q == '.'))
                return bad(l, "pac_direct", item,
                           "expected *.domain, a host name or an IPv4 CIDR");
    }
    char **nv = realloc(c->pac_direct, (c->npac_direct + 1) * sizeof(*nv));
    if (nv == NULL)
        abort();
    c->pac_direct = nv;
    c->pac_direct[c->npac_direct++] = xstrdup(item);
    return 0;
}

static int
add_exempt(void *arg, const char *item)
{
    struct load *l = arg;
    struct config *c = l->c;
    for (const char *q = item; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '-' || *q == '_' || *q == '.'))
            return bad(l, "exempt", item, "expected category or platform names");
    char **nv = realloc(c->tls_exempt, (c->ntls_exempt + 1) * sizeof(*nv));
    if (nv == NULL)
        abort();
    c->tls_exempt = nv;
    c->tls_exempt[c->ntls_exempt++] = xstrdup(item);
    if (c->tls_exempt_line == 0)
        c->tls_exempt_line = l->line;
    return 0;
}

/* --- keys --- */

enum ktype { K_LIST, K_DURATION, K_SIZE, K_COUNT, K_STRING, K_PATH, K_SPECIAL, K_TEXT, K_COMMAND };

struct key {
    const char *section, *name;
    enum ktype type;
    size_t off;                            /* into struct config */
    int (*item)(void *arg, const char *);  /* K_LIST */
    uint64_t min, max;                     /* K_COUNT, K_DURATION, K_SIZE */
};

#define OFF(f) offsetof(struct config, f)
static const struct key keys[] = {
    {"proxy", "listen", K_LIST, 0, add_listen, 0, 0},
    {"proxy", "listen_tls", K_LIST, 0, add_listen_tls, 0, 0},
    {"proxy", "tls_cert", K_SPECIAL, 0, NULL, 0, 0},
    {"proxy", "tls_key", K_SPECIAL, 0, NULL, 0, 0},
    {"proxy", "clients", K_LIST, 0, add_client, 0, 0},
    {"proxy", "proxy_protocol", K_LIST, 0, add_proxy_protocol, 0, 0},
    {"proxy", "connect_ports", K_LIST, 0, add_connect_port, 0, 0},
    {"proxy", "http_ports", K_LIST, 0, add_http_port, 0, 0},
    {"proxy", "rules", K_PATH, OFF(rules_dir), NULL, 0, 0},
    {"proxy", "timezone", K_SPECIAL, 0, NULL, 0, 0},
    {"proxy", "workers", K_SPECIAL, 0, NULL, 0, 0},
    {"proxy", "state_dir", K_PATH, OFF(state_dir), NULL, 0, 0},
    {"dns", "nameservers", K_LIST, 0, add_nameserver, 0, 0},
    {"dns", "hosts_file", K_SPECIAL, 0, NULL, 0, 0},
    {"limits", "max_connections", K_COUNT, OFF(max_connections), NULL, 1, 10000000},
    {"limits", "max_per_client", K_COUNT, OFF(max_per_client), NULL, 1, 10000000},
    {"limits", "max_header_bytes", K_SIZE, OFF(max_header_bytes), NULL, 1024, 1048576},
    {"limits", "connect_timeout", K_DURATION, OFF(connect_timeout_ms), NULL, 1, 86400000},
    {"limits", "header_timeout", K_DURATION, OFF(header_timeout_ms), NULL, 1, 86400000},
    {"limits", "idle_timeout", K_DURATION, OFF(idle_timeout_ms), NULL, 1, 7 * 86400000ULL},
    {"limits", "drain", K_DURATION, OFF(drain_ms), NULL, 0, 86400000},
    {"limits", "block_destinations", K_LIST, 0, add_block, 0, 0},
    {"log", "access", K_SPECIAL, 0, NULL, 0, 0},
    {"log", "squid_log", K_SPECIAL, 0, NULL, 0, 0},
    {"log", "usage_interval", K_DURATION, OFF(usage_interval_ms), NULL, 10000, 86400000},
    {"log", "syslog_facility", K_SPECIAL, 0, NULL, 0, 0},
    {"admin", "listen", K_SPECIAL, 0, NULL, 0, 0},
    {"admin", "allow", K_LIST, 0, add_admin_allow, 0, 0},
    {"admin", "pac_proxy", K_LIST, 0, add_pac_proxy, 0, 0},
    {"admin", "pac_direct", K_LIST, 0, add_pac_direct, 0, 0},
    {"auth", "htpasswd", K_PATH, OFF(auth_htpasswd), NULL, 0, 0},
    {"auth", "groups", K_PATH, OFF(auth_groups), NULL, 0, 0},
    {"auth", "required", K_SPECIAL, 0, NULL, 0, 0},
    {"auth", "basic_helper", K_COMMAND, OFF(auth_basic_helper), NULL, 0, 0},
    {"auth", "negotiate_helper", K_COMMAND, OFF(auth_negotiate_helper), NULL, 0, 0},
    {"auth", "group_helper", K_COMMAND, OFF(auth_group_helper), NULL, 0, 0},
    {"auth", "helper_children", K_COUNT, OFF(auth_helper_children), NULL, 1, 100},
    {"auth", "helper_ttl", K_DURATION, OFF(auth_helper_ttl_ms), NULL, 1000, 86400000},
    {"auth", "realm", K_SPECIAL, 0, NULL, 0, 0},
    {"proxy", "user", K_SPECIAL, 0, NULL, 0, 0},
    {"proxy", "pidfile", K_PATH, OFF(pidfile), NULL, 0, 0},
    {"pages", "folder", K_PATH, OFF(pages_folder), NULL, 0, 0},
    {"pages", "contact", K_TEXT, OFF(pages_contact), NULL, 0, 0},
    {"pages", "show_rule", K_SPECIAL, 0, NULL, 0, 0},
    {"tls", "ca_cert", K_SPECIAL, 0, NULL, 0, 0},
    {"tls", "ca_key", K_SPECIAL, 0, NULL, 0, 0},
    {"tls", "pages", K_SPECIAL, 0, NULL, 0, 0},
    {"tls", "inspect", K_SPECIAL, 0, NULL, 0, 0},
    {"tls", "exempt", K_LIST, 0, add_exempt, 0, 0},
    {"cluster", "redis", K_SPECIAL, 0, NULL, 0, 0},
    {"cluster", "name", K_SPECIAL, 0, NULL, 0, 0},
    {"cluster", "password_file", K_SPECIAL, 0, NULL, 0, 0},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= 64, "struct load's seen has a bit per key");

/* Whether [section] name was set in the file. */
static int
key_seen(const struct load *l, const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return (l->seen >> i) & 1;
    return 0;
}

/* [cluster] redis, name and password_file. */
static int
set_cluster(struct load *l, const struct key *k, const char *value)
{
    struct config *c = l->c;
    const char *err;
    if (strcmp(k->name, "redis") == 0) {
        if (config_parse_redis(value, c->cluster_host, sizeof(c->cluster_host), &c->cluster_port,
                               &err) < 0)
            return bad(l, k->name, value, err);
        free(c->cluster_redis);
        c->cluster_redis = xstrdup(value);
        return 0;
    }
    if (strcmp(k->name, "name") == 0) {
        size_t n = strlen(value);
        if (n == 0 || n > CONFIG_MAX_GATEWAY_NAME)
            return bad(l, k->name, value, "expected a name of 1 to 63 characters");
        for (const char *q = value; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' || *q == '.'))
                return bad(l, k->name, value, "only letters, digits, '-', '_' and '.'");
        free(c->cluster_name);
        c->cluster_name = xstrdup(value);
        return 0;
    }
    /* password_file: a secret, refused when others may read it. */
    if (value[0] == '\0')
        return bad(l, k->name, value, "empty path");
    char *path = resolve_path(c->dir, value);
    struct stat st;
    FILE *f = NULL;
    char buf[CONFIG_MAX_REDIS_PASSWORD + 2];
    size_t n = 0;
    int rc = -1;
    if (stat(path, &st) != 0)
        rc = bad(l, k->name, value, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = bad(l, k->name, value, "not a regular file");
    else if (st.st_mode & 077)
        rc = bad(l, k->name, value, "refused: readable by others; chmod 600");
    else if ((f = fopen(path, "r")) == NULL)
        rc = bad(l, k->name, value, strerror(errno));
    else {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        int ferr = ferror(f);
        fclose(f);
        buf[n] = '\0';
        if (n > 0 && buf[n - 1] == '\n')
            buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '\r')
            buf[--n] = '\0';
        if (ferr)
            rc = bad(l, k->name, value, "read error");
        else if (n > CONFIG_MAX_REDIS_PASSWORD)
            rc = bad(l, k->name, value, "password longer than 512 bytes");
        else if (n == 0)
            rc = bad(l, k->name, value, "empty password");
        else if (memchr(buf, '\0', n) || strpbrk(buf, "\r\n"))
            rc = bad(l, k->name, value, "one line expected (a NUL or newline inside)");
        else {
            free(c->cluster_password);
            c->cluster_password = xstrdup(buf);
            rc = 0;
        }
    }
    explicit_bzero(buf, sizeof(buf));
    free(path);
    return rc;
}

int
config_parse_redis(const char *s, char *host, size_t hostsize, int *port, const char **err)
{
    *port = 0;
    if (s[0] == '/') { /* a unix socket */
        if (strlen(s) >= 108 || strlen(s) >= hostsize) {
            *err = "unix socket path too long (107 bytes at most)";
            return -1;
        }
        snprintf(host, hostsize, "%s", s);
        return 0;
    }
    const char *colon = strrchr(s, ':');
    const char *h = s, *hend = colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            *err = "expected host:port, [v6]:port or a unix socket path";
            return -1;
        }
        h = s + 1;
        hend = close;
        colon = close + 1;
    }
    uint64_t p;
    if (colon == NULL || hend == h ||
        num_parse_u64(colon + 1, strlen(colon + 1), 65535, &p, err) < 0 || p == 0) {
        *err = "expected host:port, [v6]:port or a unix socket path";
        return -1;
    }
    size_t hl = (size_t)(hend - h);
    if (hl >= hostsize || hl >= 64) {
        *err = "address too long";
        return -1;
    }
    char a[64];
    memcpy(a, h, hl);
    a[hl] = '\0';
    struct in6_addr a6;
    struct in_addr a4;
    int v6 = inet_pton(AF_INET6, a, &a6) == 1, v4 = inet_pton(AF_INET, a, &a4) == 1;
    if (s[0] == '[' ? !v6 : !v4) {
        *err = s[0] == '[' ? "not an IPv6 address"
                           : "expected an IP address (a name would be resolved on the event "
                             "loop), [v6]:port or a unix socket path";
        return -1;
    }
    memcpy(host, a, hl + 1);
    *port = (int)p;
    return 0;
}

static int
set_special(struct load *l, const struct key *k, const char *value)
{
    struct config *c = l->c;
    const char *err;

    if (strcmp(k->name, "workers") == 0) {
        uint64_t n;
        if (strcasecmp(value, "auto") == 0) {
            c->workers = 0;
            return 0;
        }
        if (num_parse_u64(value, strlen(value), 64, &n, &err) < 0 || n == 0)
            return bad(l, k->name, value, "expected auto or a number of threads 1-64");
        c->workers = (int)n;
        return 0;
    }
    if (strcmp(k->name, "timezone") == 0) {
        /* A tz database name: letters, digits, _ - + / and no "..". */
        for (const char *p = value; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || strchr("_-+/", *p)))
                return bad(l, k->name, value, "not a time zone name");
        if (value[0] == '\0' || value[0] == '/' || strstr(value, "..") != NULL)
            return bad(l, k->name, value, "not a time zone name");
        const char *tzdir = getenv("TZDIR");
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", tzdir ? tzdir : "/usr/share/zoneinfo", value);
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            return bad(l, k->name, value, "unknown time zone (not in the tz database)");
        free(c->timezone);
        c->timezone = xstrdup(value);
        return 0;
    }
    if (strcmp(k->section, "admin") == 0 && strcmp(k->name, "listen") == 0) {
        if (addr_parse_listen(value, &c->admin_listen.ss, &c->admin_listen.len, &err) < 0)
            return bad(l, "listen", value, err);
        snprintf(c->admin_listen.text, sizeof(c->admin_listen.text), "%s", value);
        c->admin_listen.line = l->line;
        c->admin_enabled = 1;
        return 0;
    }
    if (strcmp(k->section, "cluster") == 0)
        return set_cluster(l, k, value);
    if (strcmp(k->name, "user") == 0) {
        for (const char *q = value; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' ||
                  *q == '.' || (*q >= 'A' && *q <= 'Z')))
                return bad(l, k->name, value, "not a user name");
        free(c->run_user);
        c->run_user = xstrdup(value);
        return 0;
    }
    if (strcmp(k->name, "required") == 0) {
        if (num_parse_bool(value, &c->auth_required, &err) < 0)
            return bad(l, k->name, value, err);
        return 0;
    }
    if (strcmp(k->name, "show_rule") == 0) {
        if (num_parse_bool(value, &c->pages_show_rule, &err) < 0)
            return bad(l, k->name, value, err);
        return 0;
    }
    if (strcmp(k->name, "realm") == 0) {
        for (const char *q = value; *q; q++)
            if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
                return bad(l, k->name, value,
                           "quotes, backslashes and control characters "
                           "are not allowed");
        free(c->auth_realm);
        c->auth_realm = xstrdup(value);
        return 0;
    }
    if (strcmp(k->name, "tls_cert") == 0 || strcmp(k->name, "tls_key") == 0) {
        int cert = k->name[4] == 'c';
        char **dst = cert ? &c->tls_cert : &c->tls_key;
        if (value[0] == '\0')
            return bad(l, k->name, value, "empty path");
        free(*dst);
        *dst = resolve_path(c->dir, value);
        *(cert ? &c->tls_cert_line : &c->tls_key_line) = l->line;
        return 0;
    }
    if (strcmp(k->name, "ca_cert") == 0 || strcmp(k->name, "ca_key") == 0) {
        int cert = k->name[3] == 'c';
        char **dst = cert ? &c->tls_ca_cert : &c->tls_ca_key;
        if (value[0] == '\0')
            return bad(l, k->name, value, "empty path");
        free(*dst);
        *dst = resolve_path(c->dir, value);
        *(cert ? &c->tls_ca_cert_line : &c->tls_ca_key_line) = l->line;
        return 0;
    }
    if (strcmp(k->name, "pages") == 0) {
        if (num_parse_bool(value, &c->tls_pages, &err) < 0)
            return bad(l, k->name, value, err);
        return 0;
    }
    if (strcmp(k->name, "inspect") == 0) {
        if (strcasecmp(value, "auto") == 0)
            c->tls_inspect = 1;
        else if (strcasecmp(value, "no") == 0)
            c->tls_inspect = 0;
        else
            return bad(l, k->name, value, "expected auto or no");
        return 0;
    }
    if (strcmp(k->name, "hosts_file") == 0) {
        free(c->hosts_file);
        c->hosts_file = NULL;
        if (strcasecmp(value, "none") == 0)
            return 0;
        /* "" would resolve to the config directory itself, which access()
         * lets through and only the resolver would later refuse. */
        if (value[0] == '\0')
            return bad(l, k->name, value, "empty path (none to skip)");
        c->hosts_file = resolve_path(c->dir, value);
        int system = strcmp(c->hosts_file, CONFIG_SYSTEM_HOSTS) == 0;
        int usable = config_hosts_file_usable(c->hosts_file, system, &err);
        if (usable < 0)
            return bad(l, k->name, value, err);
        if (usable == 0) { /* no /etc/hosts (a minimal container): empty */
            free(c->hosts_file);
            c->hosts_file = NULL;
        }
        return 0;
    }
    if (strcmp(k->name, "access") == 0 || strcmp(k->name, "squid_log") == 0) {
        char **dst = k->name[0] == 'a' ? &c->access_log : &c->squid_log;
        free(*dst);
        *dst = NULL;
        if (k->name[0] == 'a' && (strcmp(value, "-") == 0 || strcmp(value, "syslog") == 0)) {
            *dst = xstrdup(value);
            return 0;
        }
        if (value[0] == '\0')
            return bad(l, k->name, value, "empty path");
        *dst = resolve_path(c->dir, value);
        struct stat st;
        if (stat(*dst, &st) == 0 && S_ISDIR(st.st_mode))
            return bad(l, k->name, value, "is a directory");
        char *slash = strrchr(*dst, '/');
        /* An existing file we may write is enough (after dropping
         * privileges the folder may belong to root). */
        if (slash != NULL && access(*dst, W_OK) != 0) {
            *slash = '\0';
            int ok = access(slash == *dst ? "/" : *dst, W_OK) == 0;
            int e = errno;
            *slash = '/';
            if (!ok)
                return bad(l, k->name, value, e == ENOENT ? "directory does not exist"
                                                          : "directory is not writable");
        }
        return 0;
    }
    if (strcmp(k->name, "syslog_facility") == 0) {
        static const struct {
            const char *name;
            int value;
        } fac[] = {{"daemon", 3 << 3}, {"user", 1 << 3},    {"local0", 16 << 3},
                   {"local1", 17 << 3}, {"local2", 18 << 3}, {"local3", 19 << 3},
                   {"local4", 20 << 3}, {"local5", 21 << 3}, {"local6", 22 << 3},
                   {"local7", 23 << 3}};
        for (size_t i = 0; i < sizeof(fac) / sizeof(fac[0]); i++) {
            if (strcasecmp(value, fac[i].name) == 0) {
                c->syslog_facility = fac[i].value;
                return 0;
            }
        }
        return bad(l, k->name, value, "expected local0 to local7, daemon or user");
    }
    return bad(l, k->name, value, "internal: unhandled key");
}

static int set_key(struct load *l, const struct key *k, size_t idx, const char *name,
                   const char *value, int continued);

static int
on_key(void *arg, const char *file, int line, int section_line, const char *section, const char *name,
       const char *value, int continued)
{
    struct load *l = arg;
    l->file = file;
    l->line = line;

    const struct key *k = NULL;
    size_t idx = 0;
    int known_section = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(keys[i].name, name) == 0) {
            k = &keys[i];
            idx = i;
        }
    }
    if (section[0] == '\0') {
        diag_error(l->d, file, line, "%s: key outside of a section", name);
        return -1;
    }
    if (!known_section) {
        /* Once, at its header, not at each of its lines. */
        int at = section_line > 0 ? section_line : line;
        if (at != l->bad_section_line)
            diag_error(l->d, file, at,
                       "unknown section [%s] (expected proxy, dns, limits, log, admin, auth, "
                       "pages, tls or cluster)",
                       section);
        l->bad_section_line = at;
        return -1;
    }
    if (k == NULL) {
        diag_error(l->d, file, line, "unknown key '%s' in [%s]", name, section);
        return -1;
    }
    if (set_key(l, k, idx, name, value, continued) < 0) {
        l->failed |= (uint64_t)1 << idx;
        return -1;
    }
    return 0;
}

/* The index in keys[] of [section] name, or -1. */
static int
key_index(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Whether [section] name was given a value that was refused: the checks
 * between keys leave it out rather than report its consequences. */
static int
key_failed(const struct load *l, const char *section, const char *name)
{
    int i = key_index(section, name);
    return i >= 0 && ((l->failed >> i) & 1);
}

/* The line that set a key, or 0 (a problem of the whole file) when it was not set. */
static int
key_line(const struct load *l, const char *section, const char *name)
{
    int i = key_index(section, name);
    return i >= 0 ? l->key_line[i] : 0;
}

static int
set_key(struct load *l, const struct key *k, size_t idx, const char *name, const char *value,
        int continued)
{
    const char *section = k->section;
    const char *file = l->file;
    int line = l->line;
    if (continued && k->type != K_LIST && k->type != K_TEXT && k->type != K_COMMAND) {
        diag_error(l->d, file, line, "%s: only lists continue on indented lines", name);
        return -1;
    }
    if (!continued) {
        if ((l->seen >> idx) & 1) {
            diag_error(l->d, file, line, "duplicate key '%s' in [%s]", name, section);
            return -1;
        }
        l->seen |= (uint64_t)1 << idx;
        l->key_line[idx] = line;
    }
    char *base = (char *)l->c;
    uint64_t v;
    const char *err = NULL;
    switch (k->type) {
    case K_LIST:
        return list_foreach(value, k->item, l);
    case K_DURATION:
        if (num_parse_duration(value, &v, &err) < 0)
            return bad(l, name, value, err);
        break;
    case K_SIZE:
        if (num_parse_size(value, &v, &err) < 0)
            return bad(l, name, value, err);
        break;
    case K_COUNT:
        if (num_parse_u64(value, strlen(value), UINT64_MAX, &v, &err) < 0)
            return bad(l, name, value, err);
        break;
    case K_PATH: {
        char **dst = (char **)(base + k->off);
        if (value[0] == '\0')
            return bad(l, name, value, "empty path");
        free(*dst);
        *dst = resolve_path(l->c->dir, value);
        return 0;
    }
    case K_COMMAND: /* a helper's command line: checked once whole (check_helpers) */
        if (!continued) {
            int *at = strcmp(name, "basic_helper") == 0       ? &l->c->auth_basic_helper_line
                      : strcmp(name, "negotiate_helper") == 0 ? &l->c->auth_negotiate_helper_line
                                                              : &l->c->auth_group_helper_line;
            *at = line;
        }
        /* fall through */
    case K_TEXT: { /* free text; indented lines continue it after a space */
        char **dst = (char **)(base + k->off);
        if (!continued) {
            free(*dst);
            *dst = xstrdup(value);
            return 0;
        }
        size_t n = strlen(*dst) + strlen(value) + 2;
        char *joined = malloc(n);
        if (joined == NULL)
            abort();
        snprintf(joined, n, "%s%s%s", *dst, **dst && *value ? " " : "", value);
        free(*dst);
        *dst = joined;
        return 0;
    }
    case K_STRING:
    case K_SPECIAL:
        return set_special(l, k, value);
    }
    if (v < k->min || v > k->max) {
        char why[96];
        snprintf(why, sizeof(why), "out of range (%llu to %llu%s)", (unsigned long long)k->min,
                 (unsigned long long)k->max, k->type == K_DURATION ? " ms" : "");
        return bad(l, name, value, why);
    }
    *(uint64_t *)(base + k->off) = v;
    return 0;
}

static struct config *
config_new(const char *path, const char *dir)
{
    struct config *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->path = xstrdup(path);
    c->dir = xstrdup(dir ? dir : ".");
    c->workers = 0;
    c->dns_system = 0;
    c->max_connections = 20000;
    c->max_per_client = 512;
    c->max_header_bytes = 65536;
    c->connect_timeout_ms = 10000;
    c->header_timeout_ms = 15000;
    c->idle_timeout_ms = 300000;
    c->drain_ms = 30000;
    c->usage_interval_ms = 300000;
    c->syslog_facility = 20 << 3; /* local4 */
    c->tls_pages = -1;
    c->tls_inspect = 1;
    c->auth_helper_children = 5;
    c->auth_helper_ttl_ms = 300000;
    return c;
}

static void check_tls(struct config *c, struct load *l);
static void check_proxy_tls(struct config *c, struct load *l);

/* Each [auth] helper's command line, whole (it may go on over indented
 * lines): it splits, and its program exists and is executable. A bad one
 * is an error at the key's line, and is left out of the checks between
 * keys. */
static void
check_helpers(struct config *c, struct load *l)
{
    struct {
        const char *name;
        char **cmd;
        int line;
    } h[] = {
        {"basic_helper", &c->auth_basic_helper, c->auth_basic_helper_line},
        {"negotiate_helper", &c->auth_negotiate_helper, c->auth_negotiate_helper_line},
        {"group_helper", &c->auth_group_helper, c->auth_group_helper_line},
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        char why[600];
        if (*h[i].cmd == NULL || helperproto_check_program(*h[i].cmd, c->dir, why, sizeof(why)) == 0)
            continue;
        diag_error(l->d, c->path, h[i].line, "%s = %s: %s", h[i].name, *h[i].cmd, why);
        for (size_t k = 0; k < NKEYS; k++)
            if (strcmp(keys[k].section, "auth") == 0 && strcmp(keys[k].name, h[i].name) == 0)
                l->failed |= (uint64_t)1 << k;
        free(*h[i].cmd);
        *h[i].cmd = NULL;
    }
}

static int
apply_defaults(struct config *c, struct load *l)
{
    const char *err;
    struct diag *d = l->d;
    if (c->nlisten == 0) {
        struct listen_addr a = {0};
        addr_parse_listen("127.0.0.1:3128", &a.ss, &a.len, &err);
        snprintf(a.text, sizeof(a.text), "127.0.0.1:3128");
        c->listen = malloc(sizeof(a));
        if (c->listen == NULL)
            abort();
        c->listen[0] = a;
        c->nlisten = 1;
    }
    /* Never an open proxy: without `clients`, loopback only. */
    if (!key_seen(l, "proxy", "clients")) {
        add_cidr_to(l, &c->clients, "clients", "127.0.0.0/8");
        add_cidr_to(l, &c->clients, "clients", "::1");
    }
    if (!key_seen(l, "proxy", "connect_ports"))
        add_connect_port(l, "443");
    if (!key_seen(l, "proxy", "http_ports"))
        list_foreach(CONFIG_DEFAULT_HTTP_PORTS, add_http_port, l);
    if (!key_seen(l, "limits", "block_destinations")) {
        add_block(l, "loopback");
        add_block(l, "link-local");
    }
    if (c->nnameservers == 0)
        c->dns_system = 1;
    if (c->rules_dir == NULL)
        c->rules_dir = resolve_path(c->dir, "rules");
    if (c->state_dir == NULL)
        c->state_dir = xstrdup("/var/lib/socialgate");
    /* Not configured: the system's own, when there is one (an unusable
     * one is left for the resolver to warn about, as before). */
    if (c->hosts_file == NULL && !key_seen(l, "dns", "hosts_file") &&
        config_hosts_file_usable(CONFIG_SYSTEM_HOSTS, 1, &err) != 0)
        c->hosts_file = xstrdup(CONFIG_SYSTEM_HOSTS);
    if (c->access_log == NULL)
        c->access_log = xstrdup("-");
    if (c->admin_enabled) {
        const struct sockaddr *sa = (const struct sockaddr *)&c->admin_listen.ss;
        struct cidrset loop = {0};
        struct cidr lc;
        addr_parse_cidr("127.0.0.0/8", &lc, &err);
        cidrset_add(&loop, &lc);
        addr_parse_cidr("::1", &lc, &err);
        cidrset_add(&loop, &lc);
        int loopback = cidrset_match(&loop, sa);
        cidrset_free(&loop);
        if (c->admin_allow.n == 0 && !key_failed(l, "admin", "allow")) {
            if (!loopback)
                diag_error(d, c->path, key_line(l, "admin", "listen"),
                           "[admin] listen = %s is not loopback: set [admin] allow first",
                           c->admin_listen.text);
            add_admin_allow(l, "127.0.0.0/8");
            add_admin_allow(l, "::1");
        }
        /* Both would take the port (the proxy's listeners share theirs
         * with SO_REUSEPORT, and the admin endpoint's bind fails). */
        for (size_t i = 0; i < c->nlisten + c->nlisten_tls; i++) {
            int tls = i >= c->nlisten;
            const struct listen_addr *la = tls ? &c->listen_tls[i - c->nlisten] : &c->listen[i];
            if (key_failed(l, "proxy", tls ? "listen_tls" : "listen") ||
                !addr_listen_overlap((const struct sockaddr *)&la->ss, sa))
                continue;
            char at[48] = "the default";
            if (la->line > 0)
                snprintf(at, sizeof(at), "line %d", la->line);
            diag_error(d, c->path, c->admin_listen.line,
                       "[admin] listen = %s takes the address of the proxy's %s = %s (%s): "
                       "give the admin endpoint a port of its own",
                       c->admin_listen.text, tls ? "listen_tls" : "listen", la->text, at);
            break;
        }
    }
    if (c->auth_realm == NULL)
        c->auth_realm = xstrdup("socialgate");
    check_helpers(c, l);
    int users_failed = key_failed(l, "auth", "htpasswd") || key_failed(l, "auth", "basic_helper") ||
                       key_failed(l, "auth", "negotiate_helper");
    if (c->auth_required && !config_has_users(c) && !users_failed)
        diag_error(d, c->path, key_line(l, "auth", "required"),
                   "[auth] required = yes needs [auth] htpasswd, basic_helper or negotiate_helper");
    if (c->auth_groups && !config_has_users(c) && !users_failed)
        diag_error(d, c->path, key_line(l, "auth", "groups"),
                   "[auth] groups needs [auth] htpasswd, basic_helper or negotiate_helper");
    if (c->auth_htpasswd && c->auth_basic_helper)
        diag_error(d, c->path, c->auth_basic_helper_line,
                   "[auth] htpasswd and basic_helper are alternatives: set only one");
    if (c->auth_groups && c->auth_group_helper) {
        /* A role's groups are asked of the groups file or, when set, of
         * the group helper: the file is then not read at all. */
        diag_warning(d, c->path, key_line(l, "auth", "groups"),
                     "[auth] groups = %s is not used: group_helper answers a role's groups",
                     c->auth_groups);
        free(c->auth_groups);
        c->auth_groups = NULL;
    }
    if (c->auth_group_helper && !config_has_users(c) && !users_failed)
        diag_error(d, c->path, c->auth_group_helper_line,
                   "[auth] group_helper needs [auth] htpasswd, basic_helper or negotiate_helper");
    check_tls(c, l);
    check_proxy_tls(c, l);
    struct stat st;
    if (c->pages_folder && (stat(c->pages_folder, &st) < 0 || !S_ISDIR(st.st_mode)))
        diag_error(d, c->path, key_line(l, "pages", "folder"), "[pages] folder = %s: not a directory",
                   c->pages_folder);
    if (!key_failed(l, "proxy", "rules") && (stat(c->rules_dir, &st) < 0 || !S_ISDIR(st.st_mode)))
        diag_error(d, c->path, key_line(l, "proxy", "rules"), "rules = %s: not a directory",
                   c->rules_dir);
    return d->errors ? -1 : 0;
}

/* [tls]: both files or neither, the CA loaded and checked now (so -t
 * reports it), pages on by default once there is a CA. */
static void
check_tls(struct config *c, struct load *l)
{
    struct diag *d = l->d;
    int cert_failed = key_failed(l, "tls", "ca_cert"), key_bad = key_failed(l, "tls", "ca_key");
    if (c->tls_ca_cert && !c->tls_ca_key && !key_bad)
        diag_error(d, c->path, c->tls_ca_cert_line, "[tls] ca_cert needs ca_key");
    if (c->tls_ca_key && !c->tls_ca_cert && !cert_failed)
        diag_error(d, c->path, c->tls_ca_key_line, "[tls] ca_key needs ca_cert");
    if (c->tls_pages == 1 && !c->tls_ca_cert && !cert_failed)
        diag_error(d, c->path, key_line(l, "tls", "pages"), "[tls] pages = yes needs ca_cert and ca_key");
    if (c->tls_pages < 0)
        c->tls_pages = c->tls_ca_cert != NULL;
    if (c->tls_ca_cert && c->tls_ca_key) {
        char err[256];
        enum tlsmint_err_key which;
        c->tls_ca = tlsmint_ca_load(c->tls_ca_cert, c->tls_ca_key, err, sizeof(err), &which);
        if (c->tls_ca == NULL) {
            int cert = which == TLSMINT_ERR_CERT;
            diag_error(d, c->path, cert ? c->tls_ca_cert_line : c->tls_ca_key_line, "%s = %s: %s",
                       cert ? "ca_cert" : "ca_key", cert ? c->tls_ca_cert : c->tls_ca_key, err);
        }
    }
}

/* [proxy] listen_tls: needs tls_cert and tls_key, loaded and checked now
 * (so -t reports a bad pair, and a reload a new certificate); a port of
 * both listen and listen_tls is refused. */
static void
check_proxy_tls(struct config *c, struct load *l)
{
    struct diag *d = l->d;
    int cert_failed = key_failed(l, "proxy", "tls_cert"),
        key_bad = key_failed(l, "proxy", "tls_key");
    int listen_failed = key_failed(l, "proxy", "listen_tls");
    if (c->nlisten_tls == 0 && !listen_failed) {
        if (c->tls_cert || c->tls_key)
            diag_error(d, c->path, c->tls_cert ? c->tls_cert_line : c->tls_key_line,
                       "[proxy] %s is set but listen_tls is not",
                       c->tls_cert ? "tls_cert" : "tls_key");
        return;
    }
    if (c->nlisten_tls > 0 && !c->tls_cert && !cert_failed)
        diag_error(d, c->path, c->listen_tls[0].line, "[proxy] listen_tls needs tls_cert");
    if (c->nlisten_tls > 0 && !c->tls_key && !key_bad)
        diag_error(d, c->path, c->listen_tls[0].line, "[proxy] listen_tls needs tls_key");
    for (size_t i = 0; i < c->nlisten_tls; i++)
        for (size_t k = 0; k < c->nlisten && !key_failed(l, "proxy", "listen"); k++)
            if (addr_listen_overlap((const struct sockaddr *)&c->listen_tls[i].ss,
                                    (const struct sockaddr *)&c->listen[k].ss)) {
                diag_error(d, c->path, c->listen_tls[i].line,
                           "listen_tls = %s takes the address of listen = %s: the HTTPS proxy "
                           "port needs a port of its own",
                           c->listen_tls[i].text, c->listen[k].text);
                break;
            }
    if (c->tls_cert && c->tls_key) {
        char err[256];
        enum tlsmint_err_key which;
        c->proxy_tls = tlsmint_server_ctx_load(c->tls_cert, c->tls_key, err, sizeof(err), &which);
        if (c->proxy_tls == NULL) {
            int cert = which == TLSMINT_ERR_CERT;
            diag_error(d, c->path, cert ? c->tls_cert_line : c->tls_key_line, "%s = %s: %s",
                       cert ? "tls_cert" : "tls_key", cert ? c->tls_cert : c->tls_key, err);
        }
    }
}

static struct config *
load_common(const char *path, const char *text, const char *name, const char *dir,
            struct diag *d)
{
    size_t before = d->errors;
    struct config *c = config_new(name, dir);
    struct load l = {.c = c, .d = d, .file = name};
    if (text)
        inifile_parse_string(text, name, on_key, &l, d);
    else
        inifile_parse(path, name, on_key, &l, d);
    /* The checks between keys run after errors too (leaving out keys
     * whose value was refused): one check reports every problem. */
    apply_defaults(c, &l);
    if (d->errors != before) {
        config_free(c);
        return NULL;
    }
    return c;
}

struct config *
config_load(const char *path, struct diag *d)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct config *c = load_common(path, NULL, path, dir, d);
    free(dir);
    return c;
}

struct config *
config_load_string(const char *text, const char *name, const char *dir, struct diag *d)
{
    return load_common(NULL, text, name, dir, d);
}

void
config_free(struct config *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->dir);
    free(c->listen);
    free(c->listen_tls);
    free(c->tls_cert);
    free(c->tls_key);
    tlsmint_server_ctx_free(c->proxy_tls);
    cidrset_free(&c->clients);
    free(c->connect_ports.ports);
    free(c->connect_ports.ranges);
    free(c->http_ports.ports);
    free(c->http_ports.ranges);
    free(c->rules_dir);
    free(c->timezone);
    free(c->state_dir);
    for (size_t i = 0; i < c->nnameservers; i++)
        free(c->nameservers[i]);
    free(c->nameservers);
    free(c->hosts_file);
    cidrset_free(&c->block_destinations);
    cidrset_free(&c->proxy_protocol);
    free(c->access_log);
    free(c->squid_log);
    free(c->run_user);
    free(c->pidfile);
    cidrset_free(&c->admin_allow);
    for (size_t i = 0; i < c->npac_proxy; i++)
        free(c->pac_proxy[i]);
    free(c->pac_proxy);
    free(c->cluster_redis);
    free(c->cluster_name);
    if (c->cluster_password) {
        explicit_bzero(c->cluster_password, strlen(c->cluster_password));
        free(c->cluster_password);
    }
    for (size_t i = 0; i < c->npac_direct; i++)
        free(c->pac_direct[i]);
    free(c->pac_direct);
    free(c->auth_htpasswd);
    free(c->auth_groups);
    free(c->auth_basic_helper);
    free(c->auth_negotiate_helper);
    free(c->auth_group_helper);
    free(c->auth_realm);
    free(c->pages_folder);
    free(c->pages_contact);
    free(c->tls_ca_cert);
    free(c->tls_ca_key);
    tlsmint_ca_free(c->tls_ca);
    for (size_t i = 0; i < c->ntls_exempt; i++)
        free(c->tls_exempt[i]);
    free(c->tls_exempt);
    free(c);
}

int
config_has_basic(const struct config *c)
{
    return c->auth_htpasswd != NULL || c->auth_basic_helper != NULL;
}

int
config_has_users(const struct config *c)
{
    return config_has_basic(c) || c->auth_negotiate_helper != NULL;
}

int
config_port_in(const struct portset *set, uint16_t port)
{
    for (size_t i = 0; i < set->nports; i++)
        if (set->ports[i] == port)
            return 1;
    for (size_t i = 0; i < set->nranges; i++)
        if (port >= set->ranges[i][0] && port <= set->ranges[i][1])
            return 1;
    return 0;
}

int
config_connect_port_allowed(const struct config *c, uint16_t port)
{
    return config_port_in(&c->connect_ports, port);
}

int
config_http_port_allowed(const struct config *c, uint16_t port)
{
    return config_port_in(&c->http_ports, port);
}

int
config_hosts_file_usable(const char *path, int system, const char **err)
{
    if (access(path, R_OK) < 0) {
        if (errno == ENOENT && system)
            return 0;
        *err = strerror(errno);
        return -1;
    }
    if (is_dir(path)) {
        *err = "is a directory";
        return -1;
    }
    return 1;
}
