/* The usage log writer: shared by all workers, buffered, flushed at least
 * every second (accesslog_tick from the main loop) and at exit. */
#ifndef SG_ACCESSLOG_H
#define SG_ACCESSLOG_H

#include <stddef.h>

#include "logfmt.h"

/* The usage log: "-" is stdout, "syslog" sends each line to syslog with
 * `facility`, anything else is a file opened for append. `squid` (NULL:
 * none) gets the same transactions in Squid's format. 0 or -1 (errno). */
int accesslog_open(const char *target, const char *squid, int facility);
/* Thread-safe. Appends a formatted record stamped with the current time. */
void accesslog_record(const struct access_record *r);
/* Thread-safe. Appends a whole line ('\n' included). */
void accesslog_write(const char *line, size_t len);
void accesslog_flush(void);
/* SIGUSR1: reopen the files (after logrotate moved them). 0 or -1. */
int accesslog_reopen(void);
void accesslog_close(void);

#endif
