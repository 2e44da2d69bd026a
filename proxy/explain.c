#include "explain.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "catalog.h"
#include "decision.h"
#include "helper.h"
#include "helperproto.h"
#include "htpasswd.h"
#include "policy.h"
#include "request.h"
#include "snapshot.h"
#include "timewin.h"
#include "usage.h"

static void
usage(FILE *f)
{
    fprintf(f, "usage: socialgate explain [-c FILE] [--user U] [--ip ADDR] "
               "[--at TIME] [--method M] [--opaque] URL-or-HOST[:PORT]\n"
               "TIME: \"YYYY-MM-DD HH:MM\", HH:MM (today), \"tomorrow HH:MM\", \"mon 10:00\" "
               "(the next Monday)\n"
               "HOST:PORT with a port of connect_ports is a CONNECT tunnel\n"
               "exit status: 0 allow, warn or monitor; 1 deny; 2 usage or configuration error\n");
}

/* The host of "http://h:p/x", "https://h/x", "h:p" or "h", and the path. */
static void
split_url(const char *arg, char *host, size_t hsize, const char **path)
{
    const char *p = strstr(arg, "://");
    p = p ? p + 3 : arg;
    const char *at = strpbrk(p, "@/?#");
    if (at && *at == '@')
        p = at + 1;
    size_t n = strcspn(p, "/?#");
    if (n >= hsize)
        n = hsize - 1;
    memcpy(host, p, n);
    host[n] = '\0';
    *path = p[n] == '/' ? p + n : NULL;
}

/* The port of "host:port" or "[v6]:port", 0 when there is none or it is
 * not a number 1..65535. */
static unsigned
host_port(const char *host)
{
    const char *colon;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        colon = close && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strchr(host, ':');
        if (colon && strchr(colon + 1, ':')) /* a bare IPv6 address */
            colon = NULL;
    }
    if (colon == NULL || colon[1] == '\0')
        return 0;
    unsigned port = 0;
    for (const char *q = colon + 1; *q; q++) {
        if (*q < '0' || *q > '9' || (port = port * 10 + (unsigned)(*q - '0')) > 65535)
            return 0;
    }
    return port;
}

static const char *
failed_text(const char *failed)
{
    if (strcmp(failed, "roles") == 0)
        return "no role of the rule is held";
    if (strcmp(failed, "platforms") == 0)
        return "not one of its platforms";
    if (strcmp(failed, "categories") == 0)
        return "not one of its categories";
    if (strcmp(failed, "methods") == 0)
        return "method does not match (or a tunnel)";
    if (strcmp(failed, "path_regex") == 0)
        return "path does not match (or a tunnel)";
    if (strcmp(failed, "when") == 0)
        return "outside its time windows";
    if (strcmp(failed, "quota") == 0)
        return "quota used up";
    return failed;
}

static void
trace(void *arg, const struct policy_rule *r, const char *failed)
{
    (void)arg;
    char where[512];
    snprintf(where, sizeof(where), "%s:%d", r->file, r->line);
    if (failed)
        printf("  %-28s %-22s no: %s\n", where, r->name, failed_text(failed));
    else
        printf("  %-28s %-22s yes -> %s\n", where, r->name, policy_action_name(r->action));
}

int
explain_main(int argc, char **argv, const char *default_config)
{
    const char *config = default_config, *user = NULL, *ip = NULL, *at = NULL, *method = NULL;
    int opaque = 0;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"user", required_argument, NULL, 'u'},
                                         {"ip", required_argument, NULL, 'i'},
                                         {"at", required_argument, NULL, 'a'},
                                         {"method", required_argument, NULL, 'm'},
                                         {"opaque", no_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:u:i:a:m:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 'u': user = optarg; break;
        case 'i': ip = optarg; break;
        case 'a': at = optarg; break;
        case 'm': method = optarg; break;
        case 'o': opaque = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    struct diag d = {0};
    struct snapshot *s = snapshot_load(config, &d);
    for (size_t i = 0; s == NULL && i < d.n; i++) /* warnings are for -t */
        fprintf(stderr, "%s\n", d.msgs[i]);
    diag_free(&d);
    if (s == NULL)
        return 2;
    if (s->cfg->timezone)
        setenv("TZ", s->cfg->timezone, 1);
    tzset();

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    const struct sockaddr *client = NULL;
    if (ip) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, ip, &in->sin_addr) == 1)
            in->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1)
            in6->sin6_family = AF_INET6;
        else {
            fprintf(stderr, "socialgate explain: --ip %s: not an IP address\n", ip);
            snapshot_release(s);
            return 2;
        }
        client = (const struct sockaddr *)&ss;
    }
    /* --at is wall-clock time in the configured zone (TZ is set); its
     * relative forms count from today there. The fields stay as given:
     * windows are matched on them, even for a time a DST switch skips. */
    struct tm tm;
    time_t now = time(NULL);
    localtime_r(&now, &tm);
    if (at) {
        struct tm today = tm;
        char why[256];
        if (timewin_parse_at(at, &today, &tm, why, sizeof(why)) < 0) {
            fprintf(stderr, "socialgate explain: --at %s: %s\n", at, why);
            snapshot_release(s);
            return 2;
        }
    }
    struct diag sd = {0};
    usage_peek(s->cfg->state_dir, (int64_t)time(NULL), &sd); /* quota used so far, if any */
    diag_free(&sd);

    char host[1024], norm[CATALOG_MAX_HOST + 1];
    const char *path;
    split_url(argv[optind], host, sizeof(host), &path);
    int is_ip;
    int n = catalog_normalize(host, strlen(host), norm, sizeof(norm), &is_ip);
    if (n <= 0) {
        fprintf(stderr, "socialgate explain: '%s' is not a host name\n", host);
        snapshot_release(s);
        return 2;
    }
    struct catalog_match m = {.platform = -1};
    if (!is_ip)
        catalog_lookup(s->rules->catalog, norm, (size_t)n, &m);
    const struct catalog_platform *p = catalog_platform(s->rules->catalog, m.platform);
    printf("host:      %s\n", norm);
    if (p == NULL) {
        printf("platform:  unclassified%s\n", is_ip ? " (an IP address)" : "");
    } else {
        printf("platform:  %s\n", p->name);
        printf("category:  %s\n", p->category);
        printf("matched:   %s at %s:%d\n", m.pattern, m.file, m.line);
    }
    if (user && s->users && htpasswd_hash(s->users, user) == NULL)
        printf("user:      %s (not in the htpasswd file: could not sign in)\n", user);
    else
        printf("user:      %s\n", user ? user : "- (anonymous)");
    printf("client:    %s\n", ip ? ip : "-");
    char tbuf[64];
    strftime(tbuf, sizeof(tbuf), "%a %Y-%m-%d %H:%M", &tm);
    printf("time:      %s (%s)\n", tbuf, s->cfg->timezone ? s->cfg->timezone : "system time zone");

    const struct policy *pol = s->rules->policy;
    /* [auth] group_helper: the same helper the daemon asks, started once
     * per group the roles name. */
    const char *in_groups[256];
    size_t nin_groups = 0;
    int groups_unknown = 0;
    if (user && s->cfg->auth_group_helper) {
        printf("groups:   ");
        size_t asked = 0;
        const char *seen[256];
        for (size_t i = 0; i < policy_role_count(pol); i++) {
            const struct policy_role *role = policy_role(pol, i);
            for (size_t k = 0; k < role->ngroups && asked < 256; k++) {
                const char *g = role->groups[k];
                int dup = 0;
                for (size_t j = 0; j < asked && !dup; j++)
                    dup = strcmp(seen[j], g) == 0;
                if (dup)
                    continue;
                seen[asked++] = g;
                char line[4096];
                struct helper_answer a;
                int v = -1;
                if (helperproto_group_request(user, g, line, sizeof(line)) >= 0 &&
                    helper_ask_once(s->cfg->auth_group_helper, 0, line,
                                    s->cfg->connect_timeout_ms, &a) == 0) {
                    v = helper_verdict(&a);
                    helper_answer_free(&a);
                }
                printf(" %s (%s)", g, v == 1 ? "member" : v == 0 ? "not a member" : "no answer");
                if (v == 1)
                    in_groups[nin_groups++] = g;
                else if (v < 0)
                    groups_unknown = 1;
            }
        }
        printf("%s\n", asked ? "" : " - (no role names a group)");
        if (groups_unknown)
            printf("note:      the group helper could not answer: the daemon would refuse with "
                   "503 auth-unavailable\n");
    }
    struct policy_who who = {user, client, s->groups, in_groups, nin_groups};
    printf("roles:    ");
    int any = 0;
    for (size_t i = 0; i < policy_role_count(pol); i++) {
        char why[256];
        policy_role_reason(pol, i, &who, why, sizeof(why));
        if (why[0]) {
            printf(" %s (%s)", policy_role(pol, i)->name, why);
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " -");

    /* An https:// URL or --method CONNECT is a tunnel: no method or path
     * is seen, so methods and path_regex never match. */
    char mbuf[32];
    snprintf(mbuf, sizeof(mbuf), "%s", method ? method : "GET");
    for (char *q = mbuf; *q; q++)
        if (*q >= 'a' && *q <= 'z')
            *q = (char)(*q - 32);
    int https = strncasecmp(argv[optind], "https://", 8) == 0;
    /* "host:443" is what a CONNECT names: with no scheme and no --method,
     * a port of connect_ports makes it a tunnel, decided by that host as
     * the daemon decides it before the ClientHello. */
    unsigned port = host_port(host);
    int connect_target = method == NULL && strstr(argv[optind], "://") == NULL && port > 0 &&
                         config_connect_port_allowed(s->cfg, (uint16_t)port);
    int tunnel = opaque || strcmp(mbuf, "CONNECT") == 0 || https || connect_target;
    /* HTTPS to an address carries no SNI: nothing names the server, and
     * the tunnel is opaque (so is "address:443"); --opaque asks about any
     * tunnel whose bytes cannot be classified. */
    int no_sni = (https || connect_target) && is_ip;
    if (no_sni)
        opaque = 1;
    /* path_regex sees the path normalised as the daemon does it. */
    const char *raw = path ? path : "/";
    size_t raw_len = strcspn(raw, "?#"), npath_len = 0;
    char *npath = tunnel ? NULL : request_normalize_path(raw, raw_len, &npath_len);
    if (!tunnel && npath == NULL) {
        fprintf(stderr, "socialgate explain: out of memory\n");
        snapshot_release(s);
        return 2;
    }
    if (opaque)
        printf("request:   CONNECT tunnel whose bytes cannot be classified (%s): category "
               "opaque, denied unless a rule allows it\n",
               no_sni ? "TLS without SNI to an IP address" : "--opaque");
    else if (tunnel && (port > 0 || https))
        printf("request:   CONNECT %s:%u, a tunnel (no method or path: methods and path_regex "
               "never match)\n",
               norm, port > 0 ? port : 443);
    else if (tunnel)
        printf("request:   CONNECT tunnel (no method or path: methods and path_regex never "
               "match)\n");
    else if (npath_len != raw_len || memcmp(npath, raw, raw_len) != 0)
        printf("request:   %s %.*s (path_regex sees %s)\n", mbuf, (int)raw_len, raw, npath);
    else
        printf("request:   %s %.*s\n", mbuf, (int)raw_len, raw);

    printf("rules:\n");
    struct decision dec, verdict;
    struct decision_in in = {
        .snap = s,
        .user = user,
        .auth = user ? AUTH_OK : AUTH_NONE, /* explain assumes the sign-in worked */
        .client = client,
        .platform = m.platform,
        .method = tunnel ? NULL : mbuf,
        .path = npath,
        .path_len = npath_len,
        .tunnel = tunnel,
        .tls_pages = tunnel && !opaque && decision_tls_page(s, m.platform),
        .opaque = opaque,
        .now = time(NULL),
        .local_tm = &tm,
        .trace = trace,
        .trace_arg = NULL,
        .groups = in_groups,
        .ngroups = nin_groups,
    };
    decision_make(&in, &dec); /* prints every rule tried */
    /* The verdict the daemon would act on, from the same input. */
    in.trace = NULL;
    decision_eval(&in, &verdict);
    if (policy_rule_count(pol) == 0)
        printf("  (none)\n");
    const struct policy_rule *r = dec.rule >= 0 ? policy_rule(pol, (size_t)dec.rule) : NULL;
    if (r)
        printf("decision:  %s by rule %s (%s:%d)\n", policy_action_name(dec.action), r->name,
               r->file, r->line);
    else if (opaque)
        printf("decision:  deny (no rule matched: an opaque tunnel is closed, reason=opaque)\n");
    else
        printf("decision:  allow (no rule matched: rule=-)\n");
    if (r && r->quota_min) {
        unsigned used = dec.quota_used;
        printf("quota:     %u of %u minutes used this %s, %u left\n", used, r->quota_min,
               r->quota_weekly ? "week" : "day", used >= r->quota_min ? 0 : r->quota_min - used);
    }
    if (r && r->message)
        printf("message:   %s\n", r->message);
    if (verdict.verdict == VERDICT_QUOTA_PAGE && verdict.quota_rule >= 0) {
        const struct policy_rule *q = policy_rule(pol, (size_t)verdict.quota_rule);
        printf("quota:     rule %s's %u minutes a %s are used up: the quota page is shown\n",
               q->name, q->quota_min, q->quota_weekly ? "week" : "day");
    }
    printf("verdict:   %s\n", decision_verdict_name(verdict.verdict));
    if (verdict.verdict == VERDICT_ASK_AUTH)
        printf("note:      with [auth] an anonymous client is asked to sign in (407) %s\n",
               s->cfg->auth_required ? "first (required = yes)"
                                     : "instead of this denial: a role it could get by signing "
                                       "in allows it");
    else if (user == NULL && config_has_users(s->cfg) && !opaque &&
             (verdict.verdict == VERDICT_DENY_PAGE || verdict.verdict == VERDICT_QUOTA_PAGE))
        printf("note:      no sign-in would change this (no role a user or group holds allows "
               "it): an anonymous client gets the page, not a 407\n");
    if (opaque && dec.action == POLICY_DENY)
        printf("note:      the tunnel was answered 200 before its bytes were read: it is "
               "closed, no page is shown\n");
    int inspect_rule = tunnel && !opaque && verdict.verdict != VERDICT_ASK_AUTH &&
                               decision_tls_inspects(s, m.platform)
                           ? decision_inspect_rule(&in)
                           : -1;
    const struct policy_rule *ir =
        inspect_rule >= 0 ? policy_rule(pol, (size_t)inspect_rule) : NULL;
    if (ir)
        printf("note:      [tls] inspect: rule %s (%s:%d) needs each request's method or path: "
               "the tunnel is decrypted and every request inside is decided on its own "
               "(tls=inspect)\n",
               ir->name, ir->file, ir->line);
    else if (in.tls_pages && (dec.action == POLICY_DENY || dec.action == POLICY_WARN) &&
             verdict.verdict != VERDICT_ASK_AUTH)
        printf("note:      [tls] pages: the tunnel is answered 200 and its page is shown inside "
               "TLS with a certificate minted from ca_cert (tls=page)\n");
    else if (dec.action == POLICY_WARN)
        printf("note:      %s\n", tunnel ? "a tunnel cannot show the warn page: it is allowed "
                                            "and logged action=warn"
                                          : "plain HTTP shows the warn page with a Continue link");
    int rc = dec.action == POLICY_DENY ? 1 : 0;
    free(npath);
    usage_reset();
    snapshot_release(s);
    return rc;
}
