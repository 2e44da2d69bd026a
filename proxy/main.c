/* socialgate: command line, configuration, signals, workers. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/un.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "accesslog.h"
#include "admin.h"
#include "stats.h"
#include "authpool.h"
#include "timewin.h"
#include "usage.h"
#include "catalog.h"
#include "cluster.h"
#include "config.h"
#include "explain.h"
#include "helper.h"
#include "report.h"
#include "local.h"
#include "log.h"
#include "snapshot.h"
#include "util/escape.h"
#include "worker.h"
#include "request.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/socialgate/proxy.ini"
#define SOCIALGATE_VERSION "0.1.0"

static const char *config_path = DEFAULT_CONFIG;
static void sd_notify_msg(const char *msg);
static struct worker **workers;
static int nworkers;
static struct event_base *main_base;
static struct event *drain_ev, *poll_ev;
static int stopping;
static int auth_failed_valid; /* auth_failed_sig holds a failed reload's files */

static void
usage(FILE *f)
{
    fprintf(f, "usage: socialgate [-v] [-d] [-c FILE]  run in the foreground; -d: as a daemon\n"
               "       socialgate -t [-c FILE]          check the configuration and exit\n"
               "       socialgate explain [-c FILE] [--user NAME] [--ip ADDR] [--at \"DATE TIME\"]\n"
               "                          [--method M] [--opaque] URL-or-HOST\n"
               "                                        which platform, roles and rule decide, and why\n"
               "       socialgate report [--by user,platform] [--since D] [--until D] [--top N]\n"
               "                         [--format table|csv|json|html] FILE... | -\n"
               "                                        usage summary from usage logs\n"
               "       socialgate -V                    print the version\n"
               "default FILE: %s\n",
            DEFAULT_CONFIG);
}

static void
print_diag(const struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", d->msgs[i]);
}

static void
log_diag(const struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        log_warnx("%s", d->msgs[i]);
}

/* " gw=NAME" in ev=config lines: [cluster] name, read at start (a reload
 * does not rename a running gateway). */
static char gw_field[80];

/* ev=config result=error file=... line=... msg=...: the first problem. */
static void
config_error_event(const struct diag *d, const char *cause)
{
    char line[2048], t[48], file[1024] = "-", msg[1024] = "-";
    int lineno = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    logfmt_time(&ts, t, sizeof(t));
    for (size_t i = 0; i < d->n; i++) {
        if (strstr(d->msgs[i], ": warning: ") != NULL)
            continue;
        const char *m = d->msgs[i];
        const char *c1 = strchr(m, ':');
        if (c1) {
            snprintf(file, sizeof(file), "%.*s", (int)(c1 - m), m);
            char *end;
            long ln = strtol(c1 + 1, &end, 10);
            if (end != c1 + 1 && *end == ':') {
                lineno = (int)ln;
                c1 = end;
            }
            snprintf(msg, sizeof(msg), "%s", c1[1] == ' ' ? c1 + 2 : c1 + 1);
        }
        break;
    }
    char ef[1100], em[1100];
    escape_log_value(file, strlen(file), ef, sizeof(ef));
    escape_log_value(msg, strlen(msg), em, sizeof(em));
    int n = snprintf(line, sizeof(line), "%s ev=config result=error%s file=%s line=%d msg=%s%s%s\n",
                     t, gw_field, ef, lineno, em, cause ? " cause=" : "", cause ? cause : "");
    if (n > 0 && (size_t)n < sizeof(line))
        accesslog_write(line, (size_t)n);
}

/* cause: NULL for a start or HUP, else what changed on disk ("htpasswd",
 * "groups" or "htpasswd,groups"), written as cause=... at the end. */
static void
config_event(const char *result, const struct snapshot *snap, const char *cause)
{
    char line[512], t[48];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    logfmt_time(&ts, t, sizeof(t));
    int n = snprintf(
        line, sizeof(line), "%s ev=config result=%s%s files=%zu rules=%zu platforms=%zu%s%s\n", t,
        result, gw_field, 1 + snap->rules->nfiles, snap->rules->nrules,
        catalog_platform_count(snap->rules->catalog), cause ? " cause=" : "", cause ? cause : "");
    if (n > 0 && (size_t)n < sizeof(line))
        accesslog_write(line, (size_t)n);
}

/* One listening socket per worker and address: the kernel spreads new
 * connections over the workers (SO_REUSEPORT). */
static int
make_listener(const struct listen_addr *a)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        int v6only = !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (bind(fd, sa, a->len) < 0 || listen(fd, 4096) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* A gateway holds two sockets per tunnel: take every descriptor allowed,
 * and as root raise the hard limit itself (up to the kernel's nr_open). */
static void
raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (geteuid() == 0 && rl.rlim_max < 1048576) {
        struct rlimit big = {1048576, 1048576};
        if (setrlimit(RLIMIT_NOFILE, &big) == 0)
            return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int
worker_count(const struct config *c)
{
    if (c->workers > 0)
        return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* The key of warn pages' Continue links, from state_dir (made there when
 * missing) into s. At a reload that cannot read it, the key in use (old)
 * stays. */
static void
load_continue_key(struct snapshot *s, const struct snapshot *old)
{
    const char *dir = s->cfg->state_dir;
    if (local_continue_key_load(dir, s->continue_key, 1) == 0) {
        s->has_continue_key = 1;
        return;
    }
    if (old == NULL)
        fatal("cannot read or create %s/%s (%d random bytes)", dir, LOCAL_CONTINUE_KEY_FILE,
              LOCAL_CONTINUE_KEY_LEN);
    log_warn("reload: cannot read %s/%s: keeping the Continue key in use", dir,
             LOCAL_CONTINUE_KEY_FILE);
    memcpy(s->continue_key, old->continue_key, sizeof(s->continue_key));
    s->has_continue_key = old->has_continue_key;
}

/* [auth] helpers: started, or changed at a reload (a pool whose command
 * line and children are the same keeps running). */
static void
configure_helpers(const struct config *c)
{
    struct helper_spec specs[HELPER_KINDS];
    const char *cmd[HELPER_KINDS] = {c->auth_basic_helper, c->auth_negotiate_helper,
                                     c->auth_group_helper};
    for (int k = 0; k < HELPER_KINDS; k++) {
        specs[k].cmdline = cmd[k];
        specs[k].children = (int)c->auth_helper_children;
        specs[k].ttl = (int)(c->auth_helper_ttl_ms / 1000);
        specs[k].timeout_ms = c->connect_timeout_ms;
    }
    char err[256];
    if (helpers_configure(specs, err, sizeof(err)) < 0)
        log_warnx("helpers: %s", err);
}

static void
reload(void)
{
    sd_notify_msg("RELOADING=1");
    struct diag d = {0};
    struct snapshot *s = snapshot_load(config_path, &d);
    log_diag(&d);
    struct diag d_copy = d; /* keeps the messages for the log line */
    struct snapshot *cur = snapshot_acquire();
    if (s == NULL) {
        log_warnx("reload of %s failed: keeping the running configuration", config_path);
        config_error_event(&d_copy, NULL);
        stats_count(STATS_RELOAD_ERROR);
        sd_notify_msg("READY=1");
        diag_free(&d_copy);
        snapshot_release(cur);
        return;
    }
    diag_free(&d_copy);
    const struct config *old = cur->cfg, *c = s->cfg;
    int same_listen = old->nlisten == c->nlisten;
    for (size_t i = 0; same_listen && i < c->nlisten; i++)
        same_listen = strcmp(old->listen[i].text, c->listen[i].text) == 0;
    if (!same_listen)
        log_warnx("reload: a change of [proxy] listen takes effect at the next restart");
    int same_tls = old->nlisten_tls == c->nlisten_tls;
    for (size_t i = 0; same_tls && i < c->nlisten_tls; i++)
        same_tls = strcmp(old->listen_tls[i].text, c->listen_tls[i].text) == 0;
    if (!same_tls)
        log_warnx("reload: a change of [proxy] listen_tls takes effect at the next restart "
                  "(a new tls_cert and tls_key serve new connections now)");
    if ((old->timezone == NULL) != (c->timezone == NULL) ||
        (old->timezone && strcmp(old->timezone, c->timezone) != 0))
        log_warnx("reload: a change of [proxy] timezone takes effect at the next restart");
    if (worker_count(old) != worker_count(c))
        log_warnx("reload: a change of [proxy] workers takes effect at the next restart");
    load_continue_key(s, cur);
    snapshot_release(cur);
    configure_helpers(s->cfg);
    snapshot_install(s);
    for (int i = 0; i < nworkers; i++) /* each drops its old reference now */
        worker_command(workers[i], WORKER_CMD_RELOAD);
    log_info("configuration reloaded from %s", config_path);
    sd_notify_msg("READY=1");
    stats_count(STATS_RELOAD_OK);
    stats_set_config_time((int64_t)time(NULL));
    config_event("ok", s, NULL);
    auth_failed_valid = 0;
}

/* The [auth] files when a reload after their change failed: not tried
 * again until they change once more (a broken file is reported once). */
static struct file_sig auth_failed_sig[2];

/* An [auth] htpasswd or groups file changed on disk (checked every second
 * by modification time, size and inode): those files are read again and
 * swapped in with the configuration and rules in use, atomically like a
 * HUP; a file that does not load keeps the running configuration and is
 * logged as a failed reload. */
static void
auth_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (stopping)
        return;
    struct snapshot *cur = snapshot_acquire();
    const char *paths[2] = {cur->cfg->auth_htpasswd, cur->cfg->auth_groups};
    const struct file_sig *had[2] = {&cur->htpasswd_sig, &cur->groups_sig};
    struct file_sig now[2];
    int changed = 0;
    for (int i = 0; i < 2; i++) {
        snapshot_file_sig(paths[i], &now[i]);
        if (paths[i] && !snapshot_file_sig_equal(&now[i], had[i]))
            changed |= 1 << i;
    }
    if (changed == 0 ||
        (auth_failed_valid && snapshot_file_sig_equal(&now[0], &auth_failed_sig[0]) &&
         snapshot_file_sig_equal(&now[1], &auth_failed_sig[1]))) {
        snapshot_release(cur);
        return;
    }
    const char *cause = changed == 3 ? "htpasswd,groups" : changed == 1 ? "htpasswd" : "groups";
    const char *what_file = changed & 1 ? paths[0] : paths[1];
    struct diag d = {0};
    struct snapshot *s = snapshot_reload_auth(cur, &d);
    log_diag(&d);
    if (s == NULL) {
        log_warnx("%s changed but cannot be loaded: keeping the running configuration", what_file);
        config_error_event(&d, cause);
        stats_count(STATS_RELOAD_ERROR);
        memcpy(auth_failed_sig, now, sizeof(now));
        auth_failed_valid = 1;
        diag_free(&d);
        snapshot_release(cur);
        return;
    }
    diag_free(&d);
    /* Written to while it was read (a copy in progress): the next check
     * reads it again rather than install what may be half of it. */
    struct file_sig after[2];
    snapshot_file_sig(paths[0], &after[0]);
    snapshot_file_sig(paths[1], &after[1]);
    if (!snapshot_file_sig_equal(&after[0], &s->htpasswd_sig) ||
        !snapshot_file_sig_equal(&after[1], &s->groups_sig)) {
        snapshot_release(s);
        snapshot_release(cur);
        return;
    }
    auth_failed_valid = 0;
    snapshot_release(cur);
    snapshot_install(s);
    for (int i = 0; i < nworkers; i++) /* each drops its old reference now */
        worker_command(workers[i], WORKER_CMD_RELOAD);
    log_info("%s changed: reloaded", what_file);
    stats_count(STATS_RELOAD_OK);
    stats_set_config_time((int64_t)time(NULL));
    config_event("ok", s, cause);
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    int running = 0;
    for (int i = 0; i < nworkers; i++)
        running += !atomic_load(&workers[i]->finished);
    if (running == 0)
        event_base_loopexit(main_base, NULL);
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_info("drain time is up: closing the remaining connections");
    for (int i = 0; i < nworkers; i++)
        worker_command(workers[i], WORKER_CMD_STOP);
}

static void
stop(int at_once)
{
    struct snapshot *s = snapshot_acquire();
    uint64_t drain = s->cfg->drain_ms;
    snapshot_release(s);
    admin_set_draining();
    sd_notify_msg("STOPPING=1");
    if (!stopping) {
        log_info(at_once ? "interrupted: stopping now" : "stopping: draining for up to %llu ms",
                 (unsigned long long)drain);
        for (int i = 0; i < nworkers; i++)
            worker_command(workers[i], at_once ? WORKER_CMD_STOP : WORKER_CMD_DRAIN);
        struct timeval tv = {(time_t)(drain / 1000), (suseconds_t)(drain % 1000) * 1000};
        evtimer_add(drain_ev, &tv);
        struct timeval p = {0, 20000};
        event_add(poll_ev, &p);
    } else if (at_once) {
        for (int i = 0; i < nworkers; i++)
            worker_command(workers[i], WORKER_CMD_STOP);
    }
    stopping = 1;
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    switch (sig) {
    case SIGTERM:
        stop(0);
        break;
    case SIGINT:
        stop(1);
        break;
    case SIGHUP:
        reload();
        break;
    case SIGUSR1:
        if (accesslog_reopen() < 0)
            log_warn("cannot reopen the usage log");
        else
            log_info("usage log reopened");
        break;
    }
}

static void
save_state(void)
{
    struct snapshot *s = snapshot_acquire();
    if (usage_save(s->cfg->state_dir, (int64_t)time(NULL)) < 0)
        log_warn("cannot save quota state in %s", s->cfg->state_dir);
    snapshot_release(s);
}

static void
usage_line(void *arg, const struct usage_row *row)
{
    const struct timespec *ts = arg;
    char line[4096];
    accesslog_write(line, logfmt_usage(row, ts, line, sizeof(line)));
}

/* ev=usage: one line per identity and platform active in the interval. */
static void
write_usage(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm local;
    localtime_r(&ts.tv_sec, &local);
    usage_interval_flush(timewin_day_number(&local), usage_line, &ts);
    usage_prune((int64_t)ts.tv_sec);
}

/* An interval's ev=usage lines wait until every worker has added the bytes
 * of its open tunnels and transfers (worker_usage_sync), so that bytes
 * count in the interval in which they moved; a worker that does not answer
 * within USAGE_SYNC_MS is not waited for. */
#define USAGE_SYNC_MS 1000
static struct event *usage_done_ev;
static int usage_waiting;

static void
usage_done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!usage_waiting)
        return; /* a late answer to an interval already written */
    usage_waiting = 0;
    event_del(usage_done_ev);
    write_usage();
}

static void
usage_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (usage_waiting)
        return; /* the last interval is still waiting: it takes this one's bytes too */
    usage_waiting = 1;
    struct timeval tv = {USAGE_SYNC_MS / 1000, (USAGE_SYNC_MS % 1000) * 1000};
    event_add(usage_done_ev, &tv);
    worker_usage_sync(workers, nworkers, usage_done_ev);
}

static void
state_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    save_state();
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    accesslog_flush();
}

/* systemd's notify protocol without libsystemd: one datagram to
 * $NOTIFY_SOCKET ("@name" is an abstract socket). Silent when not under
 * systemd. */
static void
sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= 108)
        return;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t len = strlen(path);
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        log_warn("sd_notify");
    close(fd);
}

/* Started as root with [proxy] user: give the state folder to that user,
 * then drop to it for good (groups, gid, uid) and check root cannot be
 * regained. */
static void
drop_privileges(const struct config *cfg)
{
    if (cfg->run_user == NULL)
        return;
    struct passwd *pw = getpwnam(cfg->run_user);
    if (pw == NULL)
        fatalx("[proxy] user = %s: no such user", cfg->run_user);
    if (geteuid() != 0) {
        if (geteuid() != pw->pw_uid)
            fatalx("[proxy] user = %s: only root can switch users", cfg->run_user);
        return;
    }
    /* What it must write after dropping: its state, and the log files it
     * reopens on USR1 (logrotate's `create` keeps this owner). */
    char key[4200];
    snprintf(key, sizeof(key), "%s/%s", cfg->state_dir, LOCAL_CONTINUE_KEY_FILE);
    const char *own[] = {cfg->state_dir, key, cfg->access_log, cfg->squid_log};
    for (size_t i = 0; i < 4; i++) {
        if (own[i] == NULL || own[i][0] != '/')
            continue;
        if (chown(own[i], pw->pw_uid, pw->pw_gid) < 0)
            log_warn("cannot give %s to %s", own[i], cfg->run_user);
    }
    if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
        fatal("cannot drop privileges to %s", cfg->run_user);
    if (setuid(0) == 0 || geteuid() == 0)
        fatalx("privileges could be regained after dropping them");
    log_info("running as user %s", cfg->run_user);
}

/* -d: detach from the terminal; diagnostics go to syslog from here on. */
static void
daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        fatal("fork");
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        fatal("setsid");
    pid = fork();
    if (pid < 0)
        fatal("fork");
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    log_set_syslog(1);
}

static void
write_pidfile(const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0)
        fatal("cannot write pidfile %s", path);
}

int
main(int argc, char **argv)
{
    int opt, test_only = 0, detach = 0;

    if (argc > 1 && strcmp(argv[1], "explain") == 0)
        return explain_main(argc - 1, argv + 1, DEFAULT_CONFIG);
    if (argc > 1 && strcmp(argv[1], "report") == 0)
        return report_main(argc - 1, argv + 1);

    while ((opt = getopt(argc, argv, "c:dthvV")) != -1) {
        switch (opt) {
        case 'd':
            detach = 1;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'v':
            log_set_verbosity(LOG_LVL_DEBUG);
            break;
        case 'V':
            printf("socialgate %s\n", SOCIALGATE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "socialgate: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct diag d = {0};
    struct snapshot *snap = snapshot_load(config_path, &d);
    print_diag(&d);
    if (snap == NULL) {
        fprintf(stderr, "socialgate: %s: %zu error%s\n", config_path, d.errors,
                d.errors == 1 ? "" : "s");
        diag_free(&d);
        return 1;
    }
    diag_free(&d);
    struct config *cfg = snap->cfg;
    if (test_only) {
        printf("socialgate: %s: configuration ok (%zu listen address%s, %d worker%s, "
               "%zu rule file%s, %zu platforms, %zu domains)\n",
               config_path, cfg->nlisten + cfg->nlisten_tls,
               cfg->nlisten + cfg->nlisten_tls == 1 ? "" : "es", worker_count(cfg),
               worker_count(cfg) == 1 ? "" : "s", snap->rules->nfiles,
               snap->rules->nfiles == 1 ? "" : "s", catalog_platform_count(snap->rules->catalog),
               catalog_domain_count(snap->rules->catalog));
        snapshot_release(snap);
        return 0;
    }

    if (cfg->timezone) {
        setenv("TZ", cfg->timezone, 1);
    }
    tzset();
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (evthread_use_pthreads() != 0)
        fatalx("libevent: no pthreads support");
    if (accesslog_open(cfg->access_log, cfg->squid_log, cfg->syslog_facility) < 0)
        fatal("cannot open the usage log %s", cfg->access_log);

    char host[128];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "socialgate");
    host[sizeof(host) - 1] = '\0';
    request_set_via(host);

    /* State first: nothing is accepted before the Continue key and the
     * quota state are in place. */
    if (mkdir(cfg->state_dir, 0750) < 0 && errno != EEXIST)
        fatal("cannot create state_dir %s", cfg->state_dir);
    load_continue_key(snap, NULL);
    {
        struct diag sd = {0};
        int n = usage_load(cfg->state_dir, (int64_t)time(NULL), &sd);
        log_diag(&sd);
        diag_free(&sd);
        if (n < 0)
            log_warn("cannot read the quota state in %s", cfg->state_dir);
        else if (n > 0)
            log_info("quota state: %d entries restored", n);
    }
    nworkers = worker_count(cfg);
    /* Redis is connected to by the workers, without waiting for it. */
    if (cluster_init(cfg, nworkers) < 0)
        fatalx("[cluster]: out of memory");
    stats_set_gateway(cfg->cluster_name);
    if (cfg->cluster_name)
        snprintf(gw_field, sizeof(gw_field), " gw=%s", cfg->cluster_name);
    /* Each worker's sockets: the plain ports, then the HTTPS proxy ports. */
    size_t nl = cfg->nlisten + cfg->nlisten_tls;
    int *fds = calloc((size_t)nworkers * nl, sizeof(int));
    workers = calloc((size_t)nworkers, sizeof(*workers));
    if (fds == NULL || workers == NULL)
        fatalx("out of memory");
    for (int i = 0; i < nworkers; i++)
        for (size_t k = 0; k < nl; k++) {
            const struct listen_addr *la =
                k < cfg->nlisten ? &cfg->listen[k] : &cfg->listen_tls[k - cfg->nlisten];
            if ((fds[(size_t)i * nl + k] = make_listener(la)) < 0)
                fatal("cannot listen on %s", la->text);
        }

    if (catalog_jit_failed(snap->rules->catalog))
        log_info("PCRE2 JIT unavailable (MemoryDenyWriteExecute?): host_regex uses the interpreter");
    snapshot_install(snap);

    if (detach)
        daemonize();
    /* cfg is freed by the first reload: keep what exit needs. */
    char *pidfile = cfg->pidfile ? strdup(cfg->pidfile) : NULL;
    if (pidfile)
        write_pidfile(pidfile);
    main_base = event_base_new();
    if (main_base == NULL)
        fatalx("libevent: cannot create the event loop");
    stats_set_config_time((int64_t)time(NULL));
    if (admin_start(main_base, cfg) < 0)
        fatalx("cannot start the admin endpoint");
    drop_privileges(cfg);
    if (authpool_start(2) < 0)
        fatalx("cannot start the password check threads");
    if (helpers_start() < 0)
        fatalx("cannot start the helper thread");
    configure_helpers(cfg);
    for (int i = 0; i < nworkers; i++) {
        workers[i] = worker_new(i, fds + (size_t)i * nl, nl, cfg->nlisten_tls);
        if (workers[i] == NULL)
            fatalx("cannot start worker %d", i);
    }
    free(fds);
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    struct event *sig_evs[4];
    for (size_t i = 0; i < 4; i++) {
        sig_evs[i] = evsignal_new(main_base, sigs[i], signal_cb, NULL);
        if (sig_evs[i] == NULL || event_add(sig_evs[i], NULL) != 0)
            fatalx("cannot handle signal %d", sigs[i]);
    }
    struct event *flush_ev = event_new(main_base, -1, EV_PERSIST, flush_cb, NULL);
    struct timeval sec = {1, 0};
    event_add(flush_ev, &sec);
    struct event *auth_watch_ev = event_new(main_base, -1, EV_PERSIST, auth_watch_cb, NULL);
    if (auth_watch_ev == NULL || event_add(auth_watch_ev, &sec) != 0)
        fatalx("cannot start the check of the [auth] files");
    struct event *state_ev = event_new(main_base, -1, EV_PERSIST, state_cb, NULL);
    struct timeval minute = {30, 0};
    event_add(state_ev, &minute);
    struct event *usage_ev = event_new(main_base, -1, EV_PERSIST, usage_cb, NULL);
    struct timeval ui = {(time_t)(cfg->usage_interval_ms / 1000),
                         (suseconds_t)(cfg->usage_interval_ms % 1000) * 1000};
    usage_done_ev = evtimer_new(main_base, usage_done_cb, NULL);
    if (usage_ev == NULL || usage_done_ev == NULL)
        fatalx("libevent: cannot create the usage timers");
    event_add(usage_ev, &ui);
    drain_ev = evtimer_new(main_base, drain_timeout_cb, NULL);
    poll_ev = event_new(main_base, -1, EV_PERSIST, poll_cb, NULL);

    for (int i = 0; i < nworkers; i++)
        if (worker_start(workers[i]) != 0)
            fatal("cannot start worker thread");
    for (size_t k = 0; k < cfg->nlisten; k++)
        log_info("listening on %s", cfg->listen[k].text);
    for (size_t k = 0; k < cfg->nlisten_tls; k++)
        log_info("listening on %s (HTTPS proxy port)", cfg->listen_tls[k].text);
    log_info("socialgate %s started: %d worker%s, config %s", SOCIALGATE_VERSION, nworkers,
             nworkers == 1 ? "" : "s", config_path);
    config_event("ok", snap, NULL);
    sd_notify_msg("READY=1");

    event_base_dispatch(main_base);

    /* Every worker's loop has ended (poll_cb), their bases are still
     * there: the pool drops the checks not started, waits for those in
     * progress and frees every job and its event, before a base goes. */
    authpool_stop();
    helpers_stop(); /* children stopped and reaped, requests dropped */
    for (int i = 0; i < nworkers; i++)
        worker_join_free(workers[i]);
    free(workers);
    cluster_shutdown();
    admin_stop();
    save_state();
    write_usage(); /* the last, partial interval */
    usage_reset();
    event_free(state_ev);
    event_free(auth_watch_ev);
    event_free(usage_ev);
    event_free(usage_done_ev);
    for (size_t i = 0; i < 4; i++)
        event_free(sig_evs[i]);
    if (pidfile)
        unlink(pidfile); /* may fail after dropping privileges: harmless */
    free(pidfile);
    log_info("stopped");
    accesslog_close();
    event_free(flush_ev);
    event_free(drain_ev);
    event_free(poll_ev);
    event_base_free(main_base);
    snapshot_clear();
    return 0;
}
