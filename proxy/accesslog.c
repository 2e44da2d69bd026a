#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define ACCESSLOG_BUF (256 * 1024)
#define ACCESSLOG_FLUSH_AT (64 * 1024)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *path;  /* NULL: stdout */
static int fd = -1;
static char buf[ACCESSLOG_BUF];
static size_t used;

static int
open_target(void)
{
    if (path == NULL)
        return STDOUT_FILENO;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
accesslog_open(const char *target)
{
    pthread_mutex_lock(&mu);
    free(path);
    path = strcmp(target, "-") == 0 ? NULL : strdup(target);
    int nfd = open_target();
    if (nfd >= 0) {
        if (fd > STDERR_FILENO)
            close(fd);
        fd = nfd;
    }
    pthread_mutex_unlock(&mu);
    return nfd >= 0 ? 0 : -1;
}

/* Caller holds mu. */
static void
flush_locked(void)
{
    size_t off = 0;
    while (off < used && fd >= 0) {
        ssize_t n = write(fd, buf + off, used - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_warn("usage log write");
            break; /* drop rather than block every worker forever */
        }
        off += (size_t)n;
    }
    used = 0;
}

void
accesslog_write(const char *line, size_t len)
{
    pthread_mutex_lock(&mu);
    if (used + len > sizeof(buf))
        flush_locked();
    if (len > sizeof(buf))
        len = sizeof(buf);
    memcpy(buf + used, line, len);
    used += len;
    if (used >= ACCESSLOG_FLUSH_AT)
        flush_locked();
    pthread_mutex_unlock(&mu);
}

void
accesslog_record(const struct access_record *r)
{
    char line[8192];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = logfmt_access(r, &ts, line, sizeof(line));
    accesslog_write(line, n);
}

void
accesslog_flush(void)
{
    pthread_mutex_lock(&mu);
    flush_locked();
    pthread_mutex_unlock(&mu);
}

int
accesslog_reopen(void)
{
    pthread_mutex_lock(&mu);
    flush_locked();
    int rc = 0;
    if (path != NULL) {
        int nfd = open_target();
        if (nfd < 0) {
            rc = -1; /* keep writing to the old file */
        } else {
            close(fd);
            fd = nfd;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void
accesslog_close(void)
{
    pthread_mutex_lock(&mu);
    flush_locked();
    if (fd > STDERR_FILENO)
        close(fd);
    fd = -1;
    free(path);
    path = NULL;
    pthread_mutex_unlock(&mu);
}
