#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "logfmt.h"

static int verbosity = LOG_LVL_INFO;
static int use_syslog;

void
log_set_verbosity(int level)
{
    verbosity = level;
}

void
log_set_syslog(int on)
{
    use_syslog = on;
    if (on)
        openlog("socialgate", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void
vlog(int level, int with_errno, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[1024];
    int saved = errno;

    if (level > verbosity)
        return;
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    if (with_errno)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(saved));
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    if (use_syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    char line[1200];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char tbuf[40]; /* the usage log's form: milliseconds and the UTC offset */
    logfmt_time(&ts, tbuf, sizeof(tbuf));
    int m = snprintf(line, sizeof(line), "%s socialgate[%d] %s: %s\n", tbuf, (int)getpid(),
                     names[level], msg);
    if (m < 0)
        return;
    if ((size_t)m >= sizeof(line)) {
        m = sizeof(line) - 1;
        line[m - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)m);
    (void)w;
    errno = saved;
}

#define LOGFN(name, level, err)                                                                    \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vlog(level, err, fmt, ap);                                                                 \
        va_end(ap);                                                                                \
    }

LOGFN(log_warn, LOG_LVL_WARN, 1)
LOGFN(log_warnx, LOG_LVL_WARN, 0)
LOGFN(log_info, LOG_LVL_INFO, 0)
LOGFN(log_debug, LOG_LVL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_ERR, 1, fmt, ap);
    va_end(ap);
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LVL_ERR, 0, fmt, ap);
    va_end(ap);
    exit(1);
}
