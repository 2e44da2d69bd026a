#define _XOPEN_SOURCE 700 /* nftw */
/* Unit tests for proxy/config.c and proxy/inifile.c: proxy.ini loading from
 * strings and files. Everything lives in a fresh temporary directory; the
 * time zone check is pointed at a fake tz database there (TZDIR). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "helperproto.h"
#include "inifile.h"

static char tmp[256];

static void
path_in(char *buf, size_t size, const char *rel)
{
    snprintf(buf, size, "%s/%s", tmp, rel);
}

static void
mkdir_in(const char *rel)
{
    char p[1024];
    path_in(p, sizeof(p), rel);
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", p, strerror(errno));
}

static void
write_in(const char *rel, const char *text, size_t len)
{
    char p[1024];
    path_in(p, sizeof(p), rel);
    FILE *f = fopen(p, "wb");
    if (f == NULL)
        fail_msg("create %s: %s", p, strerror(errno));
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

/* Removes p and everything under it (depth first, symlinks not followed). */
static void
rm_tree(const char *p)
{
    nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/sgconfig.XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(tmp) == NULL)
        return -1;
    mkdir_in("rules");
    mkdir_in("zoneinfo");
    mkdir_in("zoneinfo/Europe");
    write_in("zoneinfo/UTC", "TZif", 4);
    write_in("zoneinfo/Europe/London", "TZif", 4);
    char tzdir[1024];
    path_in(tzdir, sizeof(tzdir), "zoneinfo");
    setenv("TZDIR", tzdir, 1);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    rm_tree(tmp);
    return 0;
}

static struct config *
load(const char *text, struct diag *d)
{
    memset(d, 0, sizeof(*d));
    return config_load_string(text, "t.ini", tmp, d);
}

static void
dump(const struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        print_message("  diag: %s\n", d->msgs[i]);
}

static int
has_msg(const struct diag *d, const char *want)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->msgs[i], want) == 0)
            return 1;
    return 0;
}

static struct config *
load_ok(const char *text, struct diag *d)
{
    struct config *c = load(text, d);
    if (c == NULL || d->errors) {
        dump(d);
        fail_msg("config did not load:\n%s", text);
    }
    return c;
}

static char *
ip_of(const struct cidr *c, char *buf, size_t size)
{
    char a[64];
    inet_ntop(c->family, c->addr, a, sizeof(a));
    snprintf(buf, size, "%s/%u", a, c->prefix);
    return buf;
}

/* ---------------------------------------------------------------------------
 * Defaults and every key
 * ------------------------------------------------------------------------- */

static void
test_defaults(void **state)
{
    (void)state;
    static const char *const texts[] = {"", "; only a comment\n\n# another\n", "[proxy]\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct diag d;
        struct config *c = load_ok(texts[i], &d);
        assert_int_equal(d.n, 0);
        assert_string_equal(c->path, "t.ini");
        assert_string_equal(c->dir, tmp);
        assert_int_equal(c->nlisten, 1);
        assert_string_equal(c->listen[0].text, "127.0.0.1:3128");
        assert_int_equal(c->listen[0].ss.ss_family, AF_INET);
        char b[80];
        assert_int_equal(c->clients.n, 2);
        assert_string_equal(ip_of(&c->clients.v[0], b, sizeof(b)), "127.0.0.0/8");
        assert_string_equal(ip_of(&c->clients.v[1], b, sizeof(b)), "::1/128");
        assert_int_equal(c->connect_ports.nports, 1);
        assert_int_equal(c->connect_ports.ports[0], 443);
        assert_true(config_connect_port_allowed(c, 443));
        assert_false(config_connect_port_allowed(c, 80));
        /* plain HTTP: Squid's Safe_ports but FTP, gopher and wais */
        static const uint16_t http_ok[] = {80, 280, 443, 488, 591, 777, 1025, 3128, 8080, 65535};
        static const uint16_t http_no[] = {1, 21, 22, 23, 25, 70, 110, 143, 210, 587, 1024};
        for (size_t k = 0; k < sizeof(http_ok) / sizeof(http_ok[0]); k++)
            if (!config_http_port_allowed(c, http_ok[k]))
                fail_msg("plain HTTP to %u refused by default", http_ok[k]);
        for (size_t k = 0; k < sizeof(http_no) / sizeof(http_no[0]); k++)
            if (config_http_port_allowed(c, http_no[k]))
                fail_msg("plain HTTP to %u allowed by default", http_no[k]);
        char want[1024];
        path_in(want, sizeof(want), "rules");
        assert_string_equal(c->rules_dir, want);
        assert_null(c->timezone);
        assert_int_equal(c->workers, 0);
        assert_string_equal(c->state_dir, "/var/lib/socialgate");
        assert_int_equal(c->dns_system, 1);
        assert_int_equal(c->nnameservers, 0);
        assert_string_equal(c->hosts_file, "/etc/hosts");
        assert_int_equal(c->max_connections, 20000);
        assert_int_equal(c->max_per_client, 512);
        assert_int_equal(c->max_header_bytes, 65536);
        assert_int_equal(c->connect_timeout_ms, 10000);
        assert_int_equal(c->header_timeout_ms, 15000);
        assert_int_equal(c->idle_timeout_ms, 300000);
        assert_int_equal(c->drain_ms, 30000);
        assert_int_equal(c->block_destinations.n, 4);
        assert_string_equal(ip_of(&c->block_destinations.v[0], b, sizeof(b)), "127.0.0.0/8");
        assert_string_equal(ip_of(&c->block_destinations.v[1], b, sizeof(b)), "::1/128");
        assert_string_equal(ip_of(&c->block_destinations.v[2], b, sizeof(b)), "169.254.0.0/16");
        assert_string_equal(ip_of(&c->block_destinations.v[3], b, sizeof(b)), "fe80::/10");
        assert_string_equal(c->access_log, "-");
        config_free(c);
        diag_free(&d);
    }
}

static void
test_every_key(void **state)
{
    (void)state;
    mkdir_in("myrules");
    mkdir_in("logs");
    write_in("hosts", "127.0.0.1 localhost\n", 20);
    struct diag d;
    struct config *c = load_ok("; all keys\n"
                               "[proxy]\n"
                               "listen = 127.0.0.1:3128, [::1]:3129, *:8080\n"
                               "clients = 10.0.0.0/8, 192.168.1.7/24, ::1\n"
                               "connect_ports = 443, 8443 5228\n"
                               "http_ports = 80, 8000-8099, 21\n"
                               "rules = myrules\n"
                               "timezone = Europe/London\n"
                               "workers = 4\n"
                               "state_dir = state\n"
                               "\n"
                               "[dns]\n"
                               "nameservers = 192.0.2.53, [2001:db8::53]:5353, ::1, 192.0.2.54:53\n"
                               "hosts_file = hosts\n"
                               "\n"
                               "[limits]\n"
                               "max_connections = 100\n"
                               "max_per_client = 7\n"
                               "max_header_bytes = 16k\n"
                               "connect_timeout = 500ms\n"
                               "header_timeout = 1m\n"
                               "idle_timeout = 2h\n"
                               "drain = 0\n"
                               "block_destinations = private, 203.0.113.0/24\n"
                               "\n"
                               "[log]\n"
                               "access = logs/access.log\n",
                               &d);
    assert_int_equal(d.n, 0);
    assert_int_equal(c->nlisten, 3);
    assert_string_equal(c->listen[0].text, "127.0.0.1:3128");
    assert_string_equal(c->listen[1].text, "[::1]:3129");
    assert_string_equal(c->listen[2].text, "*:8080");
    assert_int_equal(c->listen[1].ss.ss_family, AF_INET6);
    char b[80];
    assert_int_equal(c->clients.n, 3);
    assert_string_equal(ip_of(&c->clients.v[0], b, sizeof(b)), "10.0.0.0/8");
    assert_string_equal(ip_of(&c->clients.v[1], b, sizeof(b)), "192.168.1.0/24");
    assert_string_equal(ip_of(&c->clients.v[2], b, sizeof(b)), "::1/128");
    assert_int_equal(c->connect_ports.nports, 3);
    assert_true(config_connect_port_allowed(c, 8443));
    assert_true(config_connect_port_allowed(c, 5228));
    assert_false(config_connect_port_allowed(c, 80));
    assert_int_equal(c->http_ports.nports, 2);
    assert_int_equal(c->http_ports.nranges, 1);
    assert_true(config_http_port_allowed(c, 80));
    assert_true(config_http_port_allowed(c, 21));
    assert_true(config_http_port_allowed(c, 8099));
    assert_false(config_http_port_allowed(c, 8100));
    assert_false(config_http_port_allowed(c, 443)); /* the list replaces the default */
    assert_false(config_http_port_allowed(c, 1025));
    char want[1024];
    path_in(want, sizeof(want), "myrules");
    assert_string_equal(c->rules_dir, want);
    assert_string_equal(c->timezone, "Europe/London");
    assert_int_equal(c->workers, 4);
    path_in(want, sizeof(want), "state");
    assert_string_equal(c->state_dir, want);
    assert_int_equal(c->dns_system, 0);
    assert_int_equal(c->nnameservers, 4);
    assert_string_equal(c->nameservers[0], "192.0.2.53");
    assert_string_equal(c->nameservers[1], "[2001:db8::53]:5353");
    assert_string_equal(c->nameservers[2], "::1");
    assert_string_equal(c->nameservers[3], "192.0.2.54:53");
    path_in(want, sizeof(want), "hosts");
    assert_string_equal(c->hosts_file, want);
    assert_int_equal(c->max_connections, 100);
    assert_int_equal(c->max_per_client, 7);
    assert_int_equal(c->max_header_bytes, 16384);
    assert_int_equal(c->connect_timeout_ms, 500);
    assert_int_equal(c->header_timeout_ms, 60000);
    assert_int_equal(c->idle_timeout_ms, 7200000);
    assert_int_equal(c->drain_ms, 0);
    assert_int_equal(c->block_destinations.n, 5);
    assert_string_equal(ip_of(&c->block_destinations.v[4], b, sizeof(b)), "203.0.113.0/24");
    path_in(want, sizeof(want), "logs/access.log");
    assert_string_equal(c->access_log, want);
    config_free(c);
    diag_free(&d);
}

static void
test_values(void **state)
{
    (void)state;
    struct diag d;
    struct config *c;

    c = load_ok("[proxy]\nworkers = auto\n[dns]\nnameservers = system, 192.0.2.1\n"
                "hosts_file = none\n[limits]\nblock_destinations = none\n"
                "idle_timeout = 7d\nmax_header_bytes = 1m\nconnect_timeout = 1d\n",
                &d);
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->dns_system, 1);
    assert_int_equal(c->nnameservers, 1);
    assert_null(c->hosts_file);
    assert_int_equal(c->block_destinations.n, 0);
    assert_int_equal(c->idle_timeout_ms, 7 * 86400000ULL);
    assert_int_equal(c->max_header_bytes, 1048576);
    assert_int_equal(c->connect_timeout_ms, 86400000);
    config_free(c);
    diag_free(&d);

    /* Absolute paths stay as they are; "-" is standard output. */
    char text[2048], rules[1024];
    path_in(rules, sizeof(rules), "rules");
    snprintf(text, sizeof(text), "[proxy]\nrules = %s\nstate_dir = /srv/sg\n[log]\naccess = -\n",
             rules);
    c = load_ok(text, &d);
    assert_string_equal(c->rules_dir, rules);
    assert_string_equal(c->state_dir, "/srv/sg");
    assert_string_equal(c->access_log, "-");
    config_free(c);
    diag_free(&d);

    /* ':' works as well as '=', inline comments, CRLF line ends, blanks. */
    c = load_ok("[proxy]\r\nworkers: 3 ; three\r\n\r\n[limits]\r\n  drain   =   5s  \r\n", &d);
    assert_int_equal(c->workers, 3);
    assert_int_equal(c->drain_ms, 5000);
    config_free(c);
    diag_free(&d);

    /* block_destinations names. */
    c = load_ok("[limits]\nblock_destinations = multicast, unspecified, LOOPBACK\n", &d);
    assert_int_equal(c->block_destinations.n, 6);
    config_free(c);
    diag_free(&d);

    /* The same key in another section is another key. */
    c = load_ok("[proxy]\nworkers = 1\n[limits]\ndrain = 1s\n[proxy]\nclients = ::1\n", &d);
    assert_int_equal(c->workers, 1);
    assert_int_equal(c->clients.n, 1);
    config_free(c);
    diag_free(&d);
}

/* [pages]: a folder, a contact that goes on over indented lines, show_rule. */
static void
test_pages_keys(void **state)
{
    (void)state;
    struct diag d;
    struct config *c = load("[pages]\n", &d);
    assert_non_null(c);
    assert_null(c->pages_folder);
    assert_null(c->pages_contact);
    assert_int_equal(c->pages_show_rule, 0);
    config_free(c);
    diag_free(&d);
    c = load("[pages]\nfolder = rules\ncontact = IT helpdesk,\n  extension 4357\n"
             "show_rule = yes\n",
             &d);
    dump(&d);
    assert_non_null(c);
    char want[1200];
    path_in(want, sizeof(want), "rules");
    assert_string_equal(c->pages_folder, want);
    assert_string_equal(c->pages_contact, "IT helpdesk, extension 4357");
    assert_int_equal(c->pages_show_rule, 1);
    config_free(c);
    diag_free(&d);
}

/* [auth] helpers: command lines kept as written, the program found (by
 * path, relative to proxy.ini, or in PATH), the defaults. */
static void
test_helper_keys(void **state)
{
    (void)state;
    struct diag d;
    struct config *c = load("[auth]\n", &d);
    assert_non_null(c);
    assert_null(c->auth_basic_helper);
    assert_null(c->auth_group_helper);
    assert_int_equal(c->auth_helper_children, 5);
    assert_int_equal(c->auth_helper_ttl_ms, 300000);
    assert_false(config_has_users(c));
    config_free(c);
    diag_free(&d);
    write_in("ldap_auth.sh", "#!/bin/sh\n", 10);
    char p[1200];
    path_in(p, sizeof(p), "ldap_auth.sh");
    chmod(p, 0755);
    c = load("[auth]\nbasic_helper = concurrency=4 ./ldap_auth.sh -b \"dc=example, dc=com\"\n"
             "group_helper = sh -c true\nhelper_children = 12\nhelper_ttl = 90s\n",
             &d);
    dump(&d);
    assert_non_null(c);
    assert_string_equal(c->auth_basic_helper,
                        "concurrency=4 ./ldap_auth.sh -b \"dc=example, dc=com\"");
    assert_int_equal(c->auth_basic_helper_line, 2);
    assert_string_equal(c->auth_group_helper, "sh -c true");
    assert_int_equal(c->auth_helper_children, 12);
    assert_int_equal(c->auth_helper_ttl_ms, 90000);
    assert_true(config_has_basic(c));
    config_free(c);
    diag_free(&d);
    /* A long command line goes on over indented lines; a bad one is
     * reported at its key's line, whole. */
    c = load("[auth]\nhtpasswd = x\ngroup_helper = ./ldap_auth.sh -b dc=example,dc=com\n"
             "    -f (&(cn=%g)(memberUid=%u))\n    -H ldap://ldap.example.com\n",
             &d);
    dump(&d);
    assert_non_null(c);
    assert_string_equal(c->auth_group_helper, "./ldap_auth.sh -b dc=example,dc=com -f "
                                               "(&(cn=%g)(memberUid=%u)) -H ldap://ldap.example.com");
    assert_int_equal(c->auth_group_helper_line, 3);
    config_free(c);
    diag_free(&d);
    /* groups and group_helper: the helper answers, the file is not read (a warning) */
    c = load("[auth]\nbasic_helper = /bin/true\ngroups = g\ngroup_helper = /bin/true\n", &d);
    assert_non_null(c);
    assert_null(c->auth_groups);
    assert_string_equal(c->auth_group_helper, "/bin/true");
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 1);
    path_in(p, sizeof(p), "g");
    char gwant[1400];
    snprintf(gwant, sizeof(gwant),
             "t.ini:3: warning: [auth] groups = %s is not used: group_helper answers a role's groups", p);
    assert_true(has_msg(&d, gwant));
    config_free(c);
    diag_free(&d);
    c = load("[auth]\nhtpasswd = x\ngroup_helper = ./nowhere.sh\n  -b x\n", &d);
    assert_null(c);
    char want[1400];
    path_in(p, sizeof(p), "./nowhere.sh");
    snprintf(want, sizeof(want),
             "t.ini:3: group_helper = ./nowhere.sh -b x: %s: No such file or directory", p);
    dump(&d);
    assert_true(has_msg(&d, want));
    diag_free(&d);
    int conc;
    const char *err;
    char **argv = helperproto_argv("concurrency=4 ./ldap_auth.sh -b \"dc=example, dc=com\" -f '(uid=%s)'",
                                   &conc, &err);
    assert_non_null(argv);
    assert_int_equal(conc, 4);
    assert_string_equal(argv[0], "./ldap_auth.sh");
    assert_string_equal(argv[2], "dc=example, dc=com");
    assert_string_equal(argv[4], "(uid=%s)");
    assert_null(argv[5]);
    helperproto_argv_free(argv);
    assert_null(helperproto_argv("  ", &conc, &err));
    assert_string_equal(err, "no program given");
}

/* Lists continue on indented lines; an indented first key is just a key. */
static void
test_continuation(void **state)
{
    (void)state;
    struct diag d;
    struct config *c = load_ok("[proxy]\n"
                               "clients = 10.0.0.0/8,\n"
                               "    192.168.0.0/16\n"
                               "\t::1, fc00::/7\n"
                               "  ; a comment inside the list\n"
                               "\n"
                               "    172.16.0.0/12\n"
                               "connect_ports = 443\n"
                               "  8443\n",
                               &d);
    assert_int_equal(c->clients.n, 5);
    assert_int_equal(c->connect_ports.nports, 2);
    config_free(c);
    diag_free(&d);

    /* Indented keys right after a section header are not continuations:
     * libinih reads them as keys, and so must we. */
    c = load_ok("[proxy]\n"
                "    workers = 3\n"
                "[limits]\n"
                "\tdrain = 5s\n"
                "[proxy]\n"
                "  clients = 10.0.0.0/8\n",
                &d);
    assert_int_equal(c->workers, 3);
    assert_int_equal(c->drain_ms, 5000);
    /* Given clients replace the loopback default. */
    assert_int_equal(c->clients.n, 1);
    config_free(c);
    diag_free(&d);

    /* An indented first key is still checked for duplicates. */
    c = load("[proxy]\n  workers = 3\n[proxy]\n  workers = 4\n", &d);
    assert_null(c);
    assert_true(has_msg(&d, "t.ini:4: duplicate key 'workers' in [proxy]"));
    diag_free(&d);
}

/* ---------------------------------------------------------------------------
 * Errors: the exact FILE:LINE: message
 * ------------------------------------------------------------------------- */

struct bad {
    const char *text;
    const char *msg; /* "%s" stands for the temporary directory */
};

static const struct bad bad[] = {
    {"[proxy]\nbogus = 1\n", "t.ini:2: unknown key 'bogus' in [proxy]"},
    {"[proxy]\nListen = 127.0.0.1:1\n", "t.ini:2: unknown key 'Listen' in [proxy]"},
    {"[limits]\nworkers = 2\n", "t.ini:2: unknown key 'workers' in [limits]"},
    {"[prxy]\nworkers = 2\n",
     "t.ini:1: unknown section [prxy] (expected proxy, dns, limits, log, admin, auth, pages, "
     "tls or cluster)"},
    {"[pages]\nshow_rule = maybe\n", "t.ini:2: show_rule = maybe: expected yes or no"},
    {"[pages]\nfolder = nowhere\n", "t.ini:2: [pages] folder = %s/nowhere: not a directory"},
    {"[pages]\nshow_rule = yes\n  no\n", "t.ini:3: show_rule: only lists continue on indented lines"},
    {"[pages]\ncolour = red\n", "t.ini:2: unknown key 'colour' in [pages]"},
    {"[auth]\nusers = x\n", "t.ini:2: unknown key 'users' in [auth]"},
    {"[auth]\nrequired = yes\n", "t.ini:2: [auth] required = yes needs [auth] htpasswd, basic_helper or negotiate_helper"},
    {"[tls]\npages = yes\n", "t.ini:2: [tls] pages = yes needs ca_cert and ca_key"},
    {"[auth]\nbasic_helper = /nonexistent/ldap_auth -b x\n",
     "t.ini:2: basic_helper = /nonexistent/ldap_auth -b x: /nonexistent/ldap_auth: No such file or "
     "directory"},
    {"[auth]\ngroup_helper = no-such-helper-anywhere\nbasic_helper = /bin/true\n",
     "t.ini:2: group_helper = no-such-helper-anywhere: no-such-helper-anywhere: not found in PATH"},
    {"[auth]\nbasic_helper = concurrency=x /bin/true\n",
     "t.ini:2: basic_helper = concurrency=x /bin/true: concurrency= needs a number from 0 to 1000"},
    {"[auth]\nbasic_helper = \"/bin/true\n",
     "t.ini:2: basic_helper = \"/bin/true: a quote is not closed"},
    {"[auth]\nhtpasswd = users\nbasic_helper = /bin/true\n",
     "t.ini:3: [auth] htpasswd and basic_helper are alternatives: set only one"},
    {"[auth]\ngroup_helper = /bin/true\n",
     "t.ini:2: [auth] group_helper needs [auth] htpasswd, basic_helper or negotiate_helper"},
    {"[auth]\nhelper_children = 0\n", "t.ini:2: helper_children = 0: out of range (1 to 100)"},
    {"[auth]\nrealm = a\"b\n", "t.ini:2: realm = a\"b: quotes, backslashes and control characters are not allowed"},
    {"[admin]\nlisten = x\n", "t.ini:2: listen = x: bad or missing port"},
    {"[admin]\nlisten = 0.0.0.0:3129\n", "t.ini:2: [admin] listen = 0.0.0.0:3129 is not loopback: set [admin] allow first"},
    {"[admin]\npac_direct = ::1/128\n", "t.ini:2: pac_direct = ::1/128: PAC files can only test IPv4 networks"},
    {"workers = 2\n", "t.ini:1: workers: key outside of a section"},
    {"[proxy]\nworkers = 2\nworkers = 3\n", "t.ini:3: duplicate key 'workers' in [proxy]"},
    {"[proxy]\nlisten = 127.0.0.1:1\n\nlisten = 127.0.0.1:2\n",
     "t.ini:4: duplicate key 'listen' in [proxy]"},
    {"[proxy]\nworkers = 2\n[proxy]\nworkers = 3\n", "t.ini:4: duplicate key 'workers' in [proxy]"},
    {"[proxy]\nworkers = 2\n  3\n", "t.ini:3: workers: only lists continue on indented lines"},
    {"[limits]\ndrain = 5s\n  6s\n", "t.ini:3: drain: only lists continue on indented lines"},
    {"[proxy]\njunk line\n", "t.ini:2: syntax error (expected [section] or key = value)"},
    {"[proxy\nworkers = 1\n", "t.ini:1: syntax error (expected [section] or key = value)"},
    /* the admin endpoint on an address the proxy listens on */
    {"[proxy]\nlisten = 127.0.0.1:3128\n[admin]\nlisten = 127.0.0.1:3128\n",
     "t.ini:4: [admin] listen = 127.0.0.1:3128 takes the address of the proxy's listen = "
     "127.0.0.1:3128 (line 2): give the admin endpoint a port of its own"},
    {"[proxy]\nlisten = [::1]:3130, *:3128\n[admin]\nlisten = 127.0.0.1:3128\n",
     "t.ini:4: [admin] listen = 127.0.0.1:3128 takes the address of the proxy's listen = "
     "*:3128 (line 2): give the admin endpoint a port of its own"},
    {"[proxy]\nlisten = 0.0.0.0:3128\n[admin]\nlisten = 127.0.0.1:3128\n",
     "t.ini:4: [admin] listen = 127.0.0.1:3128 takes the address of the proxy's listen = "
     "0.0.0.0:3128 (line 2): give the admin endpoint a port of its own"},
    {"[proxy]\nlisten = 127.0.0.1:3128\n[admin]\nlisten = [::ffff:127.0.0.1]:3128\n",
     "t.ini:4: [admin] listen = [::ffff:127.0.0.1]:3128 takes the address of the proxy's "
     "listen = 127.0.0.1:3128 (line 2): give the admin endpoint a port of its own"},
    {"[proxy]\nlisten = [::1]:3128\n[admin]\nlisten = [::1]:3128\n",
     "t.ini:4: [admin] listen = [::1]:3128 takes the address of the proxy's listen = "
     "[::1]:3128 (line 2): give the admin endpoint a port of its own"},
    {"[admin]\nallow = 10.0.0.0/8\nlisten = 0.0.0.0:3128\n",
     "t.ini:3: [admin] listen = 0.0.0.0:3128 takes the address of the proxy's listen = "
     "127.0.0.1:3128 (the default): give the admin endpoint a port of its own"},
    /* [proxy] */
    {"[proxy]\nlisten = localhost:80\n",
     "t.ini:2: listen = localhost:80: bad address (expected IP:port, [IPv6]:port or *:port)"},
    {"[proxy]\nlisten = 127.0.0.1:0\n", "t.ini:2: listen = 127.0.0.1:0: bad or missing port"},
    {"[proxy]\nlisten = ::1:3128\n",
     "t.ini:2: listen = ::1:3128: bad address (write IPv6 addresses as [addr]:port)"},
    {"[proxy]\nlisten = [::1]\n", "t.ini:2: listen = [::1]: bad address (expected [IPv6]:port)"},
    {"[proxy]\nclients = 10.0.0.0/33\n", "t.ini:2: clients = 10.0.0.0/33: bad prefix length"},
    {"[proxy]\nclients = 10.0.0.0/8, example.com\n",
     "t.ini:2: clients = example.com: bad address (expected an IPv4 or IPv6 address or CIDR)"},
    {"[proxy]\nconnect_ports = 0\n", "t.ini:2: connect_ports = 0: expected a port 1-65535 or a range LOW-HIGH"},
    {"[proxy]\nconnect_ports = 9000-8000\n", "t.ini:2: connect_ports = 9000-8000: expected a port 1-65535 or a range LOW-HIGH"},
    {"[proxy]\nconnect_ports = 443, 65536\n",
     "t.ini:2: connect_ports = 65536: expected a port 1-65535 or a range LOW-HIGH"},
    {"[proxy]\nconnect_ports = https\n",
     "t.ini:2: connect_ports = https: expected a port 1-65535 or a range LOW-HIGH"},
    {"[proxy]\nhttp_ports = 0\n", "t.ini:2: http_ports = 0: expected a port 1-65535 or a range LOW-HIGH"},
    {"[proxy]\nhttp_ports = 80, 2000-1999\n",
     "t.ini:2: http_ports = 2000-1999: expected a port 1-65535 or a range LOW-HIGH"},
    {"[proxy]\nhttp_ports = http\n",
     "t.ini:2: http_ports = http: expected a port 1-65535 or a range LOW-HIGH"},
    {"[proxy]\nhttp_ports = 80\nhttp_ports = 81\n", "t.ini:3: duplicate key 'http_ports' in [proxy]"},
    {"[proxy]\nrules =\n", "t.ini:2: rules = : empty path"},
    {"[proxy]\nrules = missing\n", "t.ini:2: rules = %s/missing: not a directory"},
    {"[proxy]\nrules = zoneinfo/UTC\n", "t.ini:2: rules = %s/zoneinfo/UTC: not a directory"},
    {"[proxy]\nstate_dir =\n", "t.ini:2: state_dir = : empty path"},
    {"[proxy]\ntimezone = Mars/Olympus_Mons\n",
     "t.ini:2: timezone = Mars/Olympus_Mons: unknown time zone (not in the tz database)"},
    {"[proxy]\ntimezone = Europe\n",
     "t.ini:2: timezone = Europe: unknown time zone (not in the tz database)"},
    {"[proxy]\ntimezone = ../zoneinfo/UTC\n",
     "t.ini:2: timezone = ../zoneinfo/UTC: not a time zone name"},
    {"[proxy]\ntimezone = /etc/localtime\n",
     "t.ini:2: timezone = /etc/localtime: not a time zone name"},
    {"[proxy]\ntimezone = Europe/London;x\n",
     "t.ini:2: timezone = Europe/London;x: not a time zone name"},
    {"[proxy]\ntimezone =\n", "t.ini:2: timezone = : not a time zone name"},
    {"[proxy]\nworkers = 0\n", "t.ini:2: workers = 0: expected auto or a number of threads 1-64"},
    {"[proxy]\nworkers = 65\n", "t.ini:2: workers = 65: expected auto or a number of threads 1-64"},
    {"[proxy]\nworkers = many\n",
     "t.ini:2: workers = many: expected auto or a number of threads 1-64"},
    /* [dns] */
    {"[dns]\nnameservers = ns1.example.com\n",
     "t.ini:2: nameservers = ns1.example.com: expected system or IP[:port] addresses"},
    {"[dns]\nnameservers = 53\n", "t.ini:2: nameservers = 53: expected system or IP[:port] addresses"},
    {"[dns]\nnameservers = *:53\n",
     "t.ini:2: nameservers = *:53: expected system or IP[:port] addresses"},
    {"[dns]\nnameservers = 10.0.0.0/8\n",
     "t.ini:2: nameservers = 10.0.0.0/8: expected an address, not a network"},
    {"[dns]\nhosts_file = nohosts\n", "t.ini:2: hosts_file = nohosts: No such file or directory"},
    {"[dns]\nhosts_file = /nonexistent/etc/hosts\n",
     "t.ini:2: hosts_file = /nonexistent/etc/hosts: No such file or directory"},
    {"[dns]\nhosts_file =\n", "t.ini:2: hosts_file = : empty path (none to skip)"},
    {"[dns]\nhosts_file = rules\n", "t.ini:2: hosts_file = rules: is a directory"},
    /* [limits] */
    {"[limits]\nmax_connections = 0\n",
     "t.ini:2: max_connections = 0: out of range (1 to 10000000)"},
    {"[limits]\nmax_connections = 10000001\n",
     "t.ini:2: max_connections = 10000001: out of range (1 to 10000000)"},
    {"[limits]\nmax_connections = lots\n", "t.ini:2: max_connections = lots: not a number"},
    {"[limits]\nmax_per_client = -1\n", "t.ini:2: max_per_client = -1: not a number"},
    {"[limits]\nmax_per_client =\n", "t.ini:2: max_per_client = : missing number"},
    {"[limits]\nmax_connections = 99999999999999999999999\n",
     "t.ini:2: max_connections = 99999999999999999999999: number too large"},
    {"[limits]\nmax_header_bytes = 512\n",
     "t.ini:2: max_header_bytes = 512: out of range (1024 to 1048576)"},
    {"[limits]\nmax_header_bytes = 2m\n",
     "t.ini:2: max_header_bytes = 2m: out of range (1024 to 1048576)"},
    {"[limits]\nmax_header_bytes = 12q\n",
     "t.ini:2: max_header_bytes = 12q: bad size unit (expected k, m or g)"},
    {"[limits]\nmax_header_bytes = k\n",
     "t.ini:2: max_header_bytes = k: bad size (expected e.g. 512, 64k, 1m)"},
    {"[limits]\nconnect_timeout = 0\n",
     "t.ini:2: connect_timeout = 0: out of range (1 to 86400000 ms)"},
    {"[limits]\nconnect_timeout = 2d\n",
     "t.ini:2: connect_timeout = 2d: out of range (1 to 86400000 ms)"},
    {"[limits]\nheader_timeout = 10x\n",
     "t.ini:2: header_timeout = 10x: bad duration unit (expected ms, s, m, h or d)"},
    {"[limits]\nheader_timeout = soon\n",
     "t.ini:2: header_timeout = soon: bad duration (expected e.g. 500ms, 10s, 5m, 1h)"},
    {"[limits]\nidle_timeout = 8d\n",
     "t.ini:2: idle_timeout = 8d: out of range (1 to 604800000 ms)"},
    {"[limits]\ndrain = 25h\n", "t.ini:2: drain = 25h: out of range (0 to 86400000 ms)"},
    {"[limits]\ndrain = 99999999999999999999999s\n",
     "t.ini:2: drain = 99999999999999999999999s: number too large"},
    {"[limits]\nblock_destinations = intranet\n",
     "t.ini:2: block_destinations = intranet: expected loopback, link-local, private, "
     "multicast, unspecified, none or a CIDR"},
    {"[limits]\nblock_destinations = 10.0.0.0/99\n",
     "t.ini:2: block_destinations = 10.0.0.0/99: bad prefix length"},
    /* [log] */
    {"[log]\nsyslog_facility = local9\n", "t.ini:2: syslog_facility = local9: expected local0 to local7, daemon or user"},
    {"[log]\nusage_interval = 1s\n", "t.ini:2: usage_interval = 1s: out of range (10000 to 86400000 ms)"},
    {"[log]\naccess = nodir/access.log\n",
     "t.ini:2: access = nodir/access.log: directory does not exist"},
    {"[log]\naccess =\n", "t.ini:2: access = : empty path"},
    {"[log]\naccess = rules\n", "t.ini:2: access = rules: is a directory"},
    /* the HTTPS proxy port */
    {"[proxy]\nlisten_tls = 127.0.0.1:3130\n", "t.ini:2: [proxy] listen_tls needs tls_cert"},
    {"[proxy]\nlisten_tls = 127.0.0.1:3130\n", "t.ini:2: [proxy] listen_tls needs tls_key"},
    {"[proxy]\nlisten_tls = 127.0.0.1:99999\n",
     "t.ini:2: listen_tls = 127.0.0.1:99999: bad or missing port"},
    {"[proxy]\ntls_key = gw.key\n", "t.ini:2: [proxy] tls_key is set but listen_tls is not"},
    {"[proxy]\nlisten = 127.0.0.1:3128\nlisten_tls = *:3128\n",
     "t.ini:3: listen_tls = *:3128 takes the address of listen = 127.0.0.1:3128: the HTTPS proxy "
     "port needs a port of its own"},
    {"[proxy]\nlisten_tls = 127.0.0.1:3130\ntls_cert = nothere.pem\ntls_key = nothere.key\n",
     "t.ini:3: tls_cert = %s/nothere.pem: No such file or directory"},
    {"[proxy]\ntls_cert =\n", "t.ini:2: tls_cert = : empty path"},
};

static void
test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[2048];
        if (strstr(bad[i].msg, "%s") != NULL) {
            const char *s = strstr(bad[i].msg, "%s");
            snprintf(want, sizeof(want), "%.*s%s%s", (int)(s - bad[i].msg), bad[i].msg, tmp,
                     s + 2);
        } else {
            snprintf(want, sizeof(want), "%s", bad[i].msg);
        }
        struct diag d;
        struct config *c = load(bad[i].text, &d);
        if (c != NULL || d.errors == 0 || !has_msg(&d, want)) {
            dump(&d);
            fail_msg("config:\n%swant error: %s", bad[i].text, want);
        }
        diag_free(&d);
    }
}

static void
test_all_errors_reported(void **state)
{
    (void)state;
    struct diag d;
    struct config *c = load("[proxy]\n"
                            "workers = 0\n"
                            "bogus = 1\n"
                            "[limits]\n"
                            "drain = x\n"
                            "max_connections = 0\n",
                            &d);
    assert_null(c);
    assert_int_equal(d.errors, 4);
    assert_true(has_msg(&d, "t.ini:2: workers = 0: expected auto or a number of threads 1-64"));
    assert_true(has_msg(&d, "t.ini:3: unknown key 'bogus' in [proxy]"));
    assert_true(has_msg(&d, "t.ini:5: drain = x: bad duration (expected e.g. 500ms, 10s, 5m, 1h)"));
    assert_true(has_msg(&d, "t.ini:6: max_connections = 0: out of range (1 to 10000000)"));
    diag_free(&d);
}

/* One root cause, one message; the checks between keys run after errors
 * elsewhere in the file, and leave out the keys that were refused. */
static void
test_every_problem_once(void **state)
{
    (void)state;
    struct diag d;
    struct config *c = load("[proxy]\n"
                            "listen = 127.0.0.1:3128\n"
                            "bogus = 1\n"
                            "[prxy]\n"
                            "workers = 2\n"
                            "timezone = UTC\n"
                            "\n"
                            "state_dir = /tmp\n"
                            "[admin]\n"
                            "listen = 127.0.0.1:3128\n"
                            "[auth]\n"
                            "htpasswd =\n"
                            "required = yes\n",
                            &d);
    dump(&d);
    assert_null(c);
    assert_int_equal(d.errors, 4);
    assert_true(has_msg(&d, "t.ini:3: unknown key 'bogus' in [proxy]"));
    assert_true(has_msg(&d, "t.ini:4: unknown section [prxy] (expected proxy, dns, limits, log, "
                            "admin, auth, pages, tls or cluster)"));
    assert_true(has_msg(&d, "t.ini:10: [admin] listen = 127.0.0.1:3128 takes the address of the "
                            "proxy's listen = 127.0.0.1:3128 (line 2): give the admin endpoint "
                            "a port of its own"));
    assert_true(has_msg(&d, "t.ini:12: htpasswd = : empty path"));
    /* not also "required = yes needs [auth] htpasswd": it was given, badly */
    diag_free(&d);
}

/* Addresses that do not collide, and clients that make an open proxy. */
static void
test_listen_and_clients(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "[proxy]\nlisten = 127.0.0.1:3128\n[admin]\nlisten = 127.0.0.1:3129\n",
        "[proxy]\nlisten = 127.0.0.1:3128\n[admin]\nlisten = 127.0.0.2:3128\n",
        "[proxy]\nlisten = 0.0.0.0:3128\n[admin]\nlisten = [::1]:3128\n",
        "[proxy]\nlisten = [::1]:3128\n[admin]\nlisten = 127.0.0.1:3128\n",
        "[proxy]\nlisten = 127.0.0.1:3128\n[admin]\nlisten = [::1]:3128\n",
    };
    struct diag d;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct config *c = load(ok[i], &d);
        if (c == NULL || d.n != 0) {
            dump(&d);
            fail_msg("config:\n%swant no problem", ok[i]);
        }
        config_free(c);
        diag_free(&d);
    }
    static const struct {
        const char *clients;
        int open;
    } cl[] = {
        {"0.0.0.0/0", 1},         {"::/0", 1},           {"10.0.0.0/8, ::/0", 1},
        {"::ffff:0:0/96", 1},     {"::/64", 1},          {"1.2.3.4/0", 1},
        {"10.0.0.0/8, ::1", 0},   {"0.0.0.0/1", 0},      {"::ffff:0:0/97", 0},
        {"2001:db8::/32", 0},     {"127.0.0.0/8", 0},
    };
    for (size_t i = 0; i < sizeof(cl) / sizeof(cl[0]); i++) {
        char text[256], want[512];
        snprintf(text, sizeof(text), "[proxy]\nclients = %s\n", cl[i].clients);
        struct config *c = load(text, &d);
        assert_non_null(c);
        assert_int_equal(d.errors, 0);
        if (d.warnings != (size_t)cl[i].open) {
            dump(&d);
            fail_msg("clients = %s: %zu warnings, want %d", cl[i].clients, d.warnings, cl[i].open);
        }
        if (cl[i].open) {
            const char *item = strrchr(cl[i].clients, ' ');
            snprintf(want, sizeof(want),
                     "t.ini:2: warning: clients = %s makes this an open proxy: anyone who "
                     "reaches the listen address can use it",
                     item ? item + 1 : cl[i].clients);
            assert_string_equal(d.msgs[0], want);
        }
        config_free(c);
        diag_free(&d);
    }
}

/* libinih (Debian) stops at 200 bytes a line: the message must say so and
 * point at indented continuation lines. */
static void
test_long_line(void **state)
{
    (void)state;
    char text[1024];
    struct diag d;
    for (size_t len = 196; len <= 202; len++) {
        /* "state_dir = aaaa...\n": `len` bytes before the newline */
        size_t n = (size_t)snprintf(text, sizeof(text), "[proxy]\nstate_dir = ");
        size_t head = strlen("state_dir = ");
        memset(text + n, 'a', len - head);
        n += len - head;
        snprintf(text + n, sizeof(text) - n, "\nworkers = 2\n");
        struct config *c = load(text, &d);
        if (len <= INIFILE_MAX_LINE - 2) {
            if (c == NULL) {
                dump(&d);
                fail_msg("a line of %zu bytes was refused", len);
            }
            assert_int_equal(strlen(c->state_dir), strlen(tmp) + 1 + len - head);
            config_free(c);
        } else {
            if (c != NULL)
                fail_msg("a line of %zu bytes was accepted", len);
            assert_true(has_msg(&d, "t.ini:2: line longer than 198 bytes; continue long lists and "
                                    "messages on indented lines"));
            assert_int_equal(d.errors, 1);
        }
        diag_free(&d);
    }

    /* The same long list split over indented lines is fine. */
    size_t n = (size_t)snprintf(text, sizeof(text), "[proxy]\nclients =");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s10.%d.0.0/16,", i % 8 ? " " : "\n  ",
                              i);
    snprintf(text + n, sizeof(text) - n, "\n");
    struct config *c = load_ok(text, &d);
    assert_int_equal(c->clients.n, 40);
    config_free(c);
    diag_free(&d);
}

/* ---------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------- */

static void
test_load_file(void **state)
{
    (void)state;
    mkdir_in("etc");
    mkdir_in("etc/r2");
    static const char text[] = "[proxy]\nrules = r2\nworkers = 2\n[log]\naccess = a.log\n";
    write_in("etc/proxy.ini", text, sizeof(text) - 1);
    char path[1024], want[2600];
    path_in(path, sizeof(path), "etc/proxy.ini");
    struct diag d = {0};
    struct config *c = config_load(path, &d);
    if (c == NULL) {
        dump(&d);
        fail_msg("%s did not load", path);
    }
    assert_string_equal(c->path, path);
    path_in(want, sizeof(want), "etc");
    assert_string_equal(c->dir, want);
    path_in(want, sizeof(want), "etc/r2");
    assert_string_equal(c->rules_dir, want);
    path_in(want, sizeof(want), "etc/a.log");
    assert_string_equal(c->access_log, want);
    assert_int_equal(c->workers, 2);
    config_free(c);
    diag_free(&d);

    /* Errors name the file as given. */
    static const char badtext[] = "[proxy]\n\nworkers = none\n";
    write_in("etc/bad.ini", badtext, sizeof(badtext) - 1);
    path_in(path, sizeof(path), "etc/bad.ini");
    c = config_load(path, &d);
    assert_null(c);
    snprintf(want, sizeof(want), "%s:3: workers = none: expected auto or a number of threads 1-64",
             path);
    assert_true(has_msg(&d, want));
    diag_free(&d);

    /* The default rules folder is next to the file. */
    mkdir_in("norules");
    write_in("norules/proxy.ini", "", 0);
    path_in(path, sizeof(path), "norules/proxy.ini");
    c = config_load(path, &d);
    assert_null(c);
    snprintf(want, sizeof(want), "%s: rules = %s/norules/rules: not a directory", path, tmp);
    if (!has_msg(&d, want)) {
        dump(&d);
        fail_msg("want: %s", want);
    }
    diag_free(&d);

    /* A relative path: relative to the working directory. */
    int cwd = open(".", O_RDONLY | O_DIRECTORY);
    assert_true(cwd >= 0);
    char etc[1024];
    path_in(etc, sizeof(etc), "etc");
    assert_int_equal(chdir(etc), 0);
    c = config_load("proxy.ini", &d);
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
    if (c == NULL) {
        dump(&d);
        fail_msg("proxy.ini (relative) did not load");
    }
    assert_string_equal(c->dir, ".");
    assert_string_equal(c->rules_dir, "r2");
    config_free(c);
    diag_free(&d);
}

static void
test_load_file_errors(void **state)
{
    (void)state;
    char path[1024], want[1200 + sizeof(tmp)];
    struct diag d = {0};

    path_in(path, sizeof(path), "does-not-exist.ini");
    assert_null(config_load(path, &d));
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    assert_true(has_msg(&d, want));
    assert_int_equal(d.errors, 1);
    diag_free(&d);

    /* A directory is no file. */
    path_in(path, sizeof(path), "rules");
    assert_null(config_load(path, &d));
    assert_true(d.errors >= 1);
    diag_free(&d);

    /* NUL bytes. */
    static const char nul[] = "[proxy]\nworkers = 2\0\n";
    write_in("nul.ini", nul, sizeof(nul) - 1);
    path_in(path, sizeof(path), "nul.ini");
    assert_null(config_load(path, &d));
    snprintf(want, sizeof(want), "%s:2: NUL byte in file", path);
    assert_true(has_msg(&d, want));
    diag_free(&d);

    /* A long line in a file. */
    char text[512];
    size_t n = (size_t)snprintf(text, sizeof(text), "[proxy]\n; fine\nclients = ");
    memset(text + n, '1', 300);
    n += 300;
    text[n++] = '\n';
    write_in("long.ini", text, n);
    path_in(path, sizeof(path), "long.ini");
    assert_null(config_load(path, &d));
    snprintf(want, sizeof(want),
             "%s:3: line longer than 198 bytes; continue long lists and messages on indented lines", path);
    assert_true(has_msg(&d, want));
    diag_free(&d);
}

/* The example shipped with the project loads as it is (from the top of the
 * source tree, where `make unit` runs). */
static void
test_example_file(void **state)
{
    (void)state;
    if (access("proxy.ini.example", R_OK) != 0 || access("rules", X_OK) != 0)
        skip();
    struct diag d = {0};
    struct config *c = config_load("proxy.ini.example", &d);
    if (c == NULL) {
        dump(&d);
        fail_msg("proxy.ini.example does not load");
    }
    assert_string_equal(c->timezone, "UTC");
    assert_string_equal(c->rules_dir, "rules");
    config_free(c);
    diag_free(&d);
}

/* inifile directly: the handler sees line numbers and continuations. */
struct seen {
    char log[2048];
    size_t n;
};

static int
record(void *arg, const char *file, int line, int section_line, const char *section,
       const char *key, const char *value, int continued)
{
    (void)section_line;
    struct seen *s = arg;
    s->n += (size_t)snprintf(s->log + s->n, sizeof(s->log) - s->n, "%s:%d [%s] %s%s=%s\n", file,
                             line, section, continued ? "+" : "", key, value);
    return strcmp(value, "fail") == 0 ? -1 : 0;
}

static void
test_inifile(void **state)
{
    (void)state;
    struct seen s = {{0}, 0};
    struct diag d = {0};
    int rc = inifile_parse_string("top = 1\n"
                                  "[a]\n"
                                  "  x = 1\n"
                                  "  y = 2\n"
                                  "\n"
                                  "; c\n"
                                  "   z\n"
                                  "[b]\n"
                                  "k : v ; comment\n"
                                  " ; c\n"
                                  "  more\n"
                                  "  [not a section]\n",
                                  "f", record, &s, &d);
    assert_int_equal(rc, 0);
    assert_string_equal(s.log, "f:1 [] top=1\n"
                               "f:3 [a] x=1\n"
                               "f:4 [a] +x=y = 2\n"
                               "f:7 [a] +x=z\n"
                               "f:9 [b] k=v\n"
                               "f:11 [b] +k=more\n"
                               "f:12 [b] +k=[not a section]\n");
    assert_int_equal(d.n, 0);

    /* A handler error is not also a syntax error; a later syntax error on
     * an earlier line than the first handler error is reported. */
    memset(&s, 0, sizeof(s));
    rc = inifile_parse_string("[a]\nk = fail\nbad\n", "f", record, &s, &d);
    assert_int_equal(rc, 0);
    assert_int_equal(d.n, 0);
    rc = inifile_parse_string("[a]\nbad\nk = fail\n", "f", record, &s, &d);
    assert_int_equal(rc, 0);
    assert_true(has_msg(&d, "f:2: syntax error (expected [section] or key = value)"));
    diag_free(&d);
}

/* The system's own hosts file reads as empty when a minimal container has
 * none; any other hosts_file must exist (a typo is caught). */
static void
test_hosts_file_usable(void **state)
{
    (void)state;
    const char *err = NULL;
    char missing[1024], present[1024];
    path_in(missing, sizeof(missing), "no-such-hosts");
    write_in("some-hosts", "127.0.0.1 localhost\n", 20);
    path_in(present, sizeof(present), "some-hosts");
    assert_int_equal(config_hosts_file_usable(missing, 1, &err), 0);
    assert_int_equal(config_hosts_file_usable(missing, 0, &err), -1);
    assert_string_equal(err, "No such file or directory");
    assert_int_equal(config_hosts_file_usable(present, 1, &err), 1);
    assert_int_equal(config_hosts_file_usable(present, 0, &err), 1);
    /* absent is empty; present but unusable is still an error */
    assert_int_equal(config_hosts_file_usable(tmp, 1, &err), -1);
    assert_string_equal(err, "is a directory");
    /* hosts_file = /etc/hosts, written out, is the system's own */
    struct diag d;
    struct config *c = load_ok("[dns]\nhosts_file = " CONFIG_SYSTEM_HOSTS "\n", &d);
    assert_int_equal(d.n, 0);
    if (access(CONFIG_SYSTEM_HOSTS, F_OK) == 0)
        assert_string_equal(c->hosts_file, CONFIG_SYSTEM_HOSTS);
    else
        assert_null(c->hosts_file);
    config_free(c);
    diag_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_pages_keys),
        cmocka_unit_test(test_helper_keys),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_every_problem_once),
        cmocka_unit_test(test_listen_and_clients),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_inifile),
        cmocka_unit_test(test_hosts_file_usable),
    };
    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
