#define _GNU_SOURCE /* splice(2), pipe2(2) */
#include "splice.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "worker.h"

#define SPLICE_CHUNK (1024 * 1024)
#define SPLICE_ROUNDS 4 /* reads per wakeup, then give other connections a turn */
/* Bytes a relayed socket may hold unsent (TCP_NOTSENT_LOWAT). What a
 * socket holds unsent goes out when the peer's window opens, in the
 * softirq of the CPU that takes the peer's ACK, not on the relay's
 * thread: with a slow reader (a TLS client decrypting on a busy CPU) the
 * socket filled up to its send buffer (MiBs) and the reader's CPU paid
 * for transmitting and receiving the proxy's bytes. Capped, the rest
 * waits in the pipe and goes out from here once the socket asks for
 * more; throughput needs only what is in flight, which the cap leaves
 * alone. */
#define SPLICE_NOTSENT_LOWAT (16 * 1024)

struct dir {
    struct splicer *s;
    int idx;         /* 0: client->upstream, 1: upstream->client */
    int from, to;
    int pipe[2];     /* -1 when none held */
    size_t inpipe;   /* bytes in the pipe */
    int eof;         /* `from` ended (or the body limit was reached) */
    int body;        /* one-way body transfer: no half-close, early EOF is an error */
    unsigned long long left; /* bytes still to move in body mode */
    int shut;        /* `to` was shut down for writing */
    struct event *rev, *wev;
    int ron, won;    /* rev / wev are added (interest changes only when needed) */
};

struct splicer {
    struct worker *w;
    struct dir d[2];
    splice_cb cb;
    void *arg;
};

static int
dir_done(const struct dir *d)
{
    return d->eof && d->inpipe == 0 && d->shut;
}

static void
release_pipe(struct dir *d)
{
    if (d->pipe[0] >= 0 && d->inpipe == 0) {
        worker_pipe_put(d->s->w, d->pipe);
        d->pipe[0] = d->pipe[1] = -1;
    }
}

/* Moves what the pipe holds to `to`. Returns 0, or -1 with errno. */
static int
flush_pipe(struct dir *d)
{
    while (d->inpipe > 0) {
        ssize_t m = splice(d->pipe[0], NULL, d->to, NULL, d->inpipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (m > 0) {
            d->inpipe -= (size_t)m;
            continue;
        }
        if (m < 0 && errno == EINTR)
            continue;
        if (m < 0 && errno == EAGAIN)
            return 0;
        if (m == 0)
            errno = EPIPE;
        return -1;
    }
    return 0;
}

/* Adds or deletes ev only when its interest changes: both events persist,
 * so a relay that keeps reading (or keeps waiting to write) makes no
 * epoll_ctl call per pass. */
static void
want(struct event *ev, int *on, int yes)
{
    if (yes == *on)
        return;
    if (yes)
        event_add(ev, NULL);
    else
        event_del(ev);
    *on = yes;
}

/* After progress: wait for `to` when the pipe holds bytes, else read on;
 * pass the half-close on once everything is out. */
static void
rearm(struct dir *d)
{
    if (d->inpipe > 0) {
        want(d->rev, &d->ron, 0);
        want(d->wev, &d->won, 1);
        return;
    }
    want(d->wev, &d->won, 0);
    if (d->eof) {
        want(d->rev, &d->ron, 0);
        if (!d->shut) {
            shutdown(d->to, SHUT_WR);
            d->shut = 1;
        }
    } else {
        want(d->rev, &d->ron, 1);
    }
}

/* Returns 1 when it reported the end (the splicer may be gone). */
static int
check_done(struct splicer *s)
{
    if (dir_done(&s->d[0]) && dir_done(&s->d[1])) {
        s->cb(s->arg, SPLICE_DONE, 0, 0, 0);
        return 1;
    }
    return 0;
}

static void
fail(struct dir *d, int err)
{
    d->s->cb(d->s->arg, SPLICE_ERROR, d->idx, 0, err);
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dir *d = arg;
    struct splicer *s = d->s;
    size_t moved = 0;
    (void)fd;
    (void)what;
    for (int round = 0; round < SPLICE_ROUNDS && d->inpipe == 0 && !d->eof; round++) {
        if (d->pipe[0] < 0 && worker_pipe_get(s->w, d->pipe) < 0) {
            fail(d, errno);
            return;
        }
        size_t want = SPLICE_CHUNK;
        if (d->body && d->left < want)
            want = (size_t)d->left;
        ssize_t n = splice(d->from, NULL, d->pipe[1], NULL, want,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d->inpipe += (size_t)n;
            moved += (size_t)n;
            if (d->body && (d->left -= (unsigned long long)n) == 0) {
                d->eof = 1; /* the whole body is in: no half-close */
                d->shut = 1;
            }
            if (flush_pipe(d) < 0) {
                fail(d, errno);
                return;
            }
            continue;
        }
        if (n == 0) {
            if (d->body) {
                fail(d, 0); /* the origin closed before the body's end */
                return;
            }
            d->eof = 1;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            break;
        fail(d, errno);
        return;
    }
    if (d->inpipe == 0)
        release_pipe(d);
    rearm(d);
    if (moved)
        s->cb(s->arg, SPLICE_MOVED, d->idx, moved, 0);
    check_done(s);
}

struct splicer *
splicer_start_body(struct worker *w, int from, int to, unsigned long long limit, splice_cb cb,
                   void *arg)
{
    /* Direction 1 carries the body; direction 0 starts finished. */
    struct splicer *s = splicer_start(w, to, from, 1, 0, cb, arg);
    if (s == NULL)
        return NULL;
    s->d[1].body = 1;
    s->d[1].left = limit;
    if (limit == 0) {
        s->d[1].eof = s->d[1].shut = 1;
        want(s->d[1].rev, &s->d[1].ron, 0);
    }
    return s;
}

static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dir *d = arg;
    (void)fd;
    (void)what;
    if (flush_pipe(d) < 0) {
        fail(d, errno);
        return;
    }
    if (d->inpipe == 0)
        release_pipe(d);
    rearm(d);
    check_done(d->s);
}

struct splicer *
splicer_start(struct worker *w, int cfd, int ufd, int cli_eof, int up_eof, splice_cb cb,
              void *arg)
{
    struct splicer *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->w = w;
    s->cb = cb;
    s->arg = arg;
    int lowat = SPLICE_NOTSENT_LOWAT; /* best effort: kernels before 3.12 lack it */
    setsockopt(cfd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
    setsockopt(ufd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
    for (int i = 0; i < 2; i++) {
        struct dir *d = &s->d[i];
        d->s = s;
        d->idx = i;
        d->from = i == 0 ? cfd : ufd;
        d->to = i == 0 ? ufd : cfd;
        d->pipe[0] = d->pipe[1] = -1;
        d->eof = i == 0 ? cli_eof : up_eof;
        d->shut = d->eof; /* the bufferevent path passed it on already */
        d->rev = event_new(w->base, d->from, EV_READ | EV_PERSIST, read_cb, d);
        d->wev = event_new(w->base, d->to, EV_WRITE | EV_PERSIST, write_cb, d);
        if (d->rev == NULL || d->wev == NULL) {
            splicer_free(s);
            return NULL;
        }
        if (!d->eof)
            want(d->rev, &d->ron, 1);
    }
    return s;
}

void
splicer_stop(struct splicer *s)
{
    for (int i = 0; s && i < 2; i++) {
        if (s->d[i].rev)
            want(s->d[i].rev, &s->d[i].ron, 0);
        if (s->d[i].wev)
            want(s->d[i].wev, &s->d[i].won, 0);
    }
}

void
splicer_free(struct splicer *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        struct dir *d = &s->d[i];
        if (d->rev)
            event_free(d->rev);
        if (d->wev)
            event_free(d->wev);
        if (d->pipe[0] >= 0) {
            if (d->inpipe == 0) {
                worker_pipe_put(s->w, d->pipe);
            } else { /* bytes never delivered: this pipe cannot be reused */
                close(d->pipe[0]);
                close(d->pipe[1]);
            }
        }
    }
    free(s);
}
