/* Zero-copy tunnel relay with splice(2) through pipes, for tunnels that
 * need no more inspection: bytes go socket -> pipe -> socket inside the
 * kernel. A direction holds a pipe only while bytes are in flight; idle
 * pipes go back to the worker's pool, so an idle tunnel costs its two
 * sockets. Linux only. */
#ifndef SG_SPLICE_H
#define SG_SPLICE_H

#include <stddef.h>

struct worker;
struct splicer;

enum splice_event {
    SPLICE_MOVED, /* bytes moved: dir 0 client->upstream, 1 upstream->client */
    SPLICE_DONE,  /* both directions ended and flushed */
    SPLICE_ERROR, /* a socket failed: err is errno */
};

typedef void (*splice_cb)(void *arg, enum splice_event ev, int dir, size_t bytes, int err);

/* Starts relaying between two connected sockets (not owned: the caller
 * closes them after splicer_free). `cli_eof`/`up_eof` say a side already
 * sent EOF (and its half-close was passed on). The callback may call
 * splicer_free only for SPLICE_DONE and SPLICE_ERROR. NULL on failure. */
struct splicer *splicer_start(struct worker *w, int cfd, int ufd, int cli_eof, int up_eof,
                              splice_cb cb, void *arg);
/* Stops all relaying now; safe inside the callback. Free later. */
void splicer_stop(struct splicer *s);
void splicer_free(struct splicer *s);

#endif
