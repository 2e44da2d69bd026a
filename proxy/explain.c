#include "explain.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "http1.h"
#include "snapshot.h"

static void
usage(FILE *f)
{
    fprintf(f, "usage: socialgate explain [-c FILE] URL-or-HOST\n");
}

/* The host of "http://h:p/x", "https://h/x", "h:p" or "h". */
static void
host_of(const char *arg, char *out, size_t size)
{
    const char *p = strstr(arg, "://");
    p = p ? p + 3 : arg;
    const char *at = strpbrk(p, "@/?#");
    if (at && *at == '@')
        p = at + 1;
    size_t n = strcspn(p, "/?#");
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

int
explain_main(int argc, char **argv, const char *default_config)
{
    const char *config = default_config;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    struct diag d = {0};
    struct snapshot *s = snapshot_load(config, &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.msgs[i]);
    diag_free(&d);
    if (s == NULL)
        return 1;

    char host[1024], norm[CATALOG_MAX_HOST + 1];
    host_of(argv[optind], host, sizeof(host));
    int is_ip;
    int n = catalog_normalize(host, strlen(host), norm, sizeof(norm), &is_ip);
    if (n <= 0) {
        fprintf(stderr, "socialgate explain: '%s' is not a host name\n", host);
        snapshot_release(s);
        return 2;
    }
    printf("host:      %s\n", norm);
    struct catalog_match m;
    if (is_ip) {
        m.platform = -1;
    } else {
        catalog_lookup(s->rules->catalog, norm, (size_t)n, &m);
    }
    if (m.platform < 0) {
        printf("platform:  unclassified%s\n", is_ip ? " (an IP address)" : "");
    } else {
        const struct catalog_platform *p = catalog_platform(s->rules->catalog, m.platform);
        printf("platform:  %s\n", p->name);
        printf("category:  %s\n", p->category);
        printf("matched:   %s at %s:%d\n", m.pattern, m.file, m.line);
    }
    snapshot_release(s);
    return 0;
}
