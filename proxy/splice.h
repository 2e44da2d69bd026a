/* Zero-copy tunnel relay with splice(2) through pipes, for tunnels that
 * need no more inspection: bytes go socket -> pipe -> socket inside the
 * kernel. A direction holds a pipe only while bytes are in flight; idle
 * pipes go back to the worker's pool, so an idle tunnel costs its two
 * sockets. Linux only. The callback may free the splicer on SPLICE_DONE and
 * SPLICE_ERROR: nothing touches it after those. */
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
/* One direction only, for a response body of known length: moves exactly
 * `limit` bytes from `from` to `to`, then reports SPLICE_DONE (no
 * half-close). A source that ends early is SPLICE_ERROR with err 0. After
 * SPLICE_DONE or SPLICE_ERROR the splicer is idle and the callback may free
 * it. */
struct splicer *splicer_start_body(struct worker *w, int from, int to, unsigned long long limit,
                                   splice_cb cb, void *arg);
/* Stops all relaying now; safe inside the callback. Free later. */
void splicer_stop(struct splicer *s);
void splicer_free(struct splicer *s);

#endif
