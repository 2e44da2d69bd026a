#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

#define SINK_BUF (256 * 1024)
#define SINK_FLUSH_AT (64 * 1024)

/* One output: a file (or stdout) written through a buffer, or syslog. */
struct sink {
    pthread_mutex_t mu;
    char *path; /* NULL: stdout */
    int fd;     /* -1: closed */
    int syslog; /* lines go to syslog(3), one message each */
    char buf[SINK_BUF];
    size_t used;
};

static struct sink main_sink = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};
static struct sink squid_sink = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};
static int squid_on; /* set before the workers start */

static int
open_path(const struct sink *s)
{
    if (s->path == NULL)
        return STDOUT_FILENO;
    return open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Caller holds s->mu. */
static void
flush_locked(struct sink *s)
{
    size_t off = 0;
    while (off < s->used && s->fd >= 0) {
        ssize_t n = write(s->fd, s->buf + off, s->used - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_warn("usage log write");
            break; /* drop rather than block every worker forever */
        }
        off += (size_t)n;
    }
    s->used = 0;
}

static int
sink_open(struct sink *s, const char *target, int facility)
{
    pthread_mutex_lock(&s->mu);
    flush_locked(s);
    free(s->path);
    s->path = NULL;
    s->syslog = 0;
    int rc = 0;
    if (target && strcmp(target, "syslog") == 0) {
        openlog("socialgate", LOG_PID | LOG_NDELAY, facility);
        s->syslog = 1;
        if (s->fd > STDERR_FILENO)
            close(s->fd);
        s->fd = -1;
    } else if (target) {
        s->path = strcmp(target, "-") == 0 ? NULL : strdup(target);
        int nfd = open_path(s);
        if (nfd < 0) {
            rc = -1;
        } else {
            if (s->fd > STDERR_FILENO)
                close(s->fd);
            s->fd = nfd;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int
accesslog_open(const char *target, const char *squid, int facility)
{
    if (sink_open(&main_sink, target, facility) < 0)
        return -1;
    if (squid && sink_open(&squid_sink, squid, facility) < 0)
        return -1;
    squid_on = squid != NULL;
    return 0;
}

static void
sink_write(struct sink *s, const char *line, size_t len)
{
    if (s->syslog) {
        /* syslog(3) is thread-safe; one message per line, no newline. */
        syslog(LOG_INFO, "%.*s", (int)(len && line[len - 1] == '\n' ? len - 1 : len), line);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->fd >= 0) {
        if (s->used + len > sizeof(s->buf))
            flush_locked(s);
        if (len > sizeof(s->buf))
            len = sizeof(s->buf);
        memcpy(s->buf + s->used, line, len);
        s->used += len;
        if (s->used >= SINK_FLUSH_AT)
            flush_locked(s);
    }
    pthread_mutex_unlock(&s->mu);
}

void
accesslog_write(const char *line, size_t len)
{
    sink_write(&main_sink, line, len);
}

void
accesslog_record(const struct access_record *r)
{
    char line[8192];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sink_write(&main_sink, line, logfmt_access(r, &ts, line, sizeof(line)));
    if (squid_on)
        sink_write(&squid_sink, line, logfmt_squid(r, &ts, line, sizeof(line)));
}

static void
sink_flush(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    flush_locked(s);
    pthread_mutex_unlock(&s->mu);
}

void
accesslog_flush(void)
{
    sink_flush(&main_sink);
    sink_flush(&squid_sink);
}

static int
sink_reopen(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    flush_locked(s);
    int rc = 0;
    if (s->path != NULL && s->fd >= 0) {
        int nfd = open_path(s);
        if (nfd < 0) {
            rc = -1; /* keep writing to the old file */
        } else {
            close(s->fd);
            s->fd = nfd;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int
accesslog_reopen(void)
{
    int a = sink_reopen(&main_sink), b = sink_reopen(&squid_sink);
    return a < 0 || b < 0 ? -1 : 0;
}

static void
sink_close(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    flush_locked(s);
    if (s->fd > STDERR_FILENO)
        close(s->fd);
    s->fd = -1;
    free(s->path);
    s->path = NULL;
    if (s->syslog)
        closelog();
    s->syslog = 0;
    pthread_mutex_unlock(&s->mu);
}

void
accesslog_close(void)
{
    sink_close(&main_sink);
    sink_close(&squid_sink);
}
