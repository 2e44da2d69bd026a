/* proxy.ini text through config_load_string, against a temporary folder
 * made once per process: it has rules/, logs/, a hosts file and a fake tz
 * database (TZDIR) with UTC and Europe/London, so the checks that look at
 * the file system (rules folder, hosts_file, log folders, time zones) take
 * both of their ways. Nothing is written there by the loader. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char tmp[512];
static pid_t owner;

static void
in_tmp(char *buf, size_t size, const char *rel)
{
    snprintf(buf, size, "%s/%s", tmp, rel);
}

static void
make_dir(const char *rel)
{
    char p[1024];
    in_tmp(p, sizeof(p), rel);
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        abort();
}

static void
make_file(const char *rel, const char *text)
{
    char p[1024];
    in_tmp(p, sizeof(p), rel);
    FILE *f = fopen(p, "wb");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

static void
rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(p);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char sub[1024];
                snprintf(sub, sizeof(sub), "%s/%s", p, e->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(p);
    } else {
        unlink(p);
    }
}

/* Only the process that made the folder removes it (replay forks). */
static void
cleanup(void)
{
    if (tmp[0] != '\0' && getpid() == owner)
        rm_tree(tmp);
}

static void
setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/sgfuzzconf.XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(tmp) == NULL)
        abort();
    owner = getpid();
    atexit(cleanup);
    make_dir("rules");
    make_dir("logs");
    make_dir("zoneinfo");
    make_dir("zoneinfo/Europe");
    make_file("zoneinfo/UTC", "TZif");
    make_file("zoneinfo/Europe/London", "TZif");
    make_file("hosts", "127.0.0.1 localhost\n");
    make_file("users.htpasswd", "alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n");
    char tzdir[1024];
    in_tmp(tzdir, sizeof(tzdir), "zoneinfo");
    setenv("TZDIR", tzdir, 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (tmp[0] == '\0')
        setup();
    char *text = fuzz_strndup(data, size);
    struct diag d;
    memset(&d, 0, sizeof(d));
    struct config *c = config_load_string(text, "proxy.ini", tmp, &d);
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
        config_free(c);
    } else {
        FUZZ_CHECK(d.errors > 0);
    }
    for (size_t i = 0; i < d.n; i++)
        FUZZ_CHECK(d.msgs[i] != NULL);
    diag_free(&d);
    free(text);
    return 0;
}
