#include "dns.h"

#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"

struct evdns_base *
dns_new(struct event_base *base, const struct config *cfg)
{
    struct evdns_base *dns = evdns_base_new(base, 0);
    if (dns == NULL) {
        log_warnx("dns: cannot create resolver");
        return NULL;
    }
    if (cfg->dns_system) {
        int rc = evdns_base_resolv_conf_parse(dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
                                              "/etc/resolv.conf");
        if (rc != 0)
            log_warnx("dns: /etc/resolv.conf unusable (code %d); using 127.0.0.1", rc);
    }
    for (size_t i = 0; i < cfg->nnameservers; i++)
        if (evdns_base_nameserver_ip_add(dns, cfg->nameservers[i]) != 0)
            log_warnx("dns: cannot use nameserver %s", cfg->nameservers[i]);
    if (cfg->hosts_file && evdns_base_load_hosts(dns, cfg->hosts_file) != 0)
        log_warnx("dns: cannot load hosts file %s", cfg->hosts_file);
    /* Answers must come quickly: a page waits on them. */
    evdns_base_set_option(dns, "timeout:", "2");
    evdns_base_set_option(dns, "attempts:", "2");
    evdns_base_set_option(dns, "randomize-case:", "0");
    return dns;
}

void
dns_free(struct evdns_base *dns)
{
    if (dns)
        evdns_base_free(dns, 1);
}
