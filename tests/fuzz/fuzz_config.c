#define _XOPEN_SOURCE 700 /* nftw, in fuzz_tmp.h */
/* proxy.ini text through config_load_string, against a temporary folder
 * made once per process: it has rules/, logs/, a hosts file and a fake tz
 * database (TZDIR) with UTC and Europe/London, so the checks that look at
 * the file system (rules folder, hosts_file, log folders, time zones) take
 * both of their ways. Nothing is written there by the loader. The same
 * text is then loaded from a file with config_load, as the daemon does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "fuzz_tmp.h"

static void
make_file(const char *rel, const char *text)
{
    fuzz_tmp_write(rel, text, strlen(text));
}

static void
setup(void)
{
    fuzz_tmp_init("config");
    fuzz_tmp_mkdir("rules");
    fuzz_tmp_mkdir("logs");
    fuzz_tmp_mkdir("zoneinfo");
    fuzz_tmp_mkdir("zoneinfo/Europe");
    make_file("zoneinfo/UTC", "TZif");
    make_file("zoneinfo/Europe/London", "TZif");
    make_file("hosts", "127.0.0.1 localhost\n");
    make_file("users.htpasswd", "alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n");
    make_file("proxy.ini", ""); /* there before either load looks */
    char tzdir[1024];
    fuzz_tmp_path(tzdir, sizeof(tzdir), "zoneinfo");
    setenv("TZDIR", tzdir, 1);
}

/* The daemon reads proxy.ini from a file (fgetc), the string loader from
 * memory: the same text must get the same verdict and the same number of
 * problems. Texts with a NUL are left out (the file reader reports it, the
 * string ends there). */
static void
same_from_file(const uint8_t *data, size_t size, const struct config *c, const struct diag *d)
{
    if (memchr(data, '\0', size) != NULL)
        return;
    fuzz_tmp_write("proxy.ini", data, size);
    char path[1024];
    fuzz_tmp_path(path, sizeof(path), "proxy.ini");
    struct diag d2;
    memset(&d2, 0, sizeof(d2));
    struct config *c2 = config_load(path, &d2);
    FUZZ_CHECK((c2 == NULL) == (c == NULL));
    FUZZ_CHECK(d2.errors == d->errors && d2.warnings == d->warnings);
    if (c != NULL) {
        FUZZ_CHECK(c2->nlisten == c->nlisten &&
                   c2->connect_ports.nports == c->connect_ports.nports &&
                   c2->http_ports.nports == c->http_ports.nports);
        FUZZ_CHECK(strcmp(c2->rules_dir, c->rules_dir) == 0);
        FUZZ_CHECK(c2->max_header_bytes == c->max_header_bytes);
    }
    config_free(c2);
    diag_free(&d2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_tmp[0] == '\0')
        setup();
    char *text = fuzz_strndup(data, size);
    struct diag d;
    memset(&d, 0, sizeof(d));
    struct config *c = config_load_string(text, "proxy.ini", fuzz_tmp, &d);
    if (c != NULL) {
        FUZZ_CHECK(d.errors == 0);
        FUZZ_CHECK(c->nlisten > 0 && c->listen != NULL);
        FUZZ_CHECK(c->rules_dir != NULL && c->state_dir != NULL && c->access_log != NULL);
        FUZZ_CHECK(c->auth_realm != NULL);
        FUZZ_CHECK(c->dns_system || c->nnameservers > 0);
        FUZZ_CHECK(c->workers >= 0 && c->workers <= 64);
        for (size_t i = 0; i < c->nlisten; i++)
            FUZZ_CHECK(memchr(c->listen[i].text, '\0', sizeof(c->listen[i].text)) != NULL);
        (void)config_connect_port_allowed(c, 443);
        (void)config_connect_port_allowed(c, 0);
    } else {
        FUZZ_CHECK(d.errors > 0);
    }
    same_from_file(data, size, c, &d);
    config_free(c);
    for (size_t i = 0; i < d.n; i++)
        FUZZ_CHECK(d.msgs[i] != NULL);
    diag_free(&d);
    free(text);
    return 0;
}
