/* Checks shared by the HTTP/1 targets: spans inside their buffer, and the
 * chunked scanner run whole and in pieces. */
#ifndef SG_FUZZ_BODY_H
#define SG_FUZZ_BODY_H

#include <string.h>

#include "fuzz.h"
#include "http1.h"

static inline void
fuzz_check_span(const struct http1_span *s, const uint8_t *p, size_t len)
{
    if (s->len == 0)
        return;
    FUZZ_CHECK(s->p != NULL);
    FUZZ_CHECK((const uint8_t *)s->p >= p);
    FUZZ_CHECK((const uint8_t *)s->p + s->len <= p + len);
}

/* Runs the chunked scanner over p[0..len) taking at most `step` bytes per
 * call (0: everything at once). Returns the status; *consumed is how many
 * bytes were taken until done or error, *data the payload bytes. */
static inline enum http1_status
fuzz_scan_chunked(const uint8_t *p, size_t len, size_t step, size_t *consumed, uint64_t *data,
                  int *done)
{
    struct http1_chunked c;
    memset(&c, 0, sizeof(c));
    size_t off = 0;
    *data = 0;
    *done = 0;
    while (off < len && !*done) {
        size_t n = len - off;
        if (step && n > step)
            n = step;
        uint8_t *piece = fuzz_memdup(p + off, n);
        size_t used = (size_t)-1;
        int is_data = -1;
        enum http1_status st = http1_chunked_step(&c, piece, n, &used, &is_data, done);
        free(piece);
        if (st != HTTP1_OK) {
            FUZZ_CHECK(st == HTTP1_ERR_CHUNK);
            *consumed = off;
            return st;
        }
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(is_data == 0 || is_data == 1);
        if (is_data)
            *data += used;
        /* The caller loops until used == len or done: no progress must
         * mean done, or a client could make the proxy spin. */
        FUZZ_CHECK(used > 0 || *done);
        off += used;
    }
    *consumed = off;
    return HTTP1_OK;
}

static inline void
fuzz_check_body(const uint8_t *body, size_t len)
{
    size_t c1, c2;
    uint64_t d1, d2;
    int done1, done2;
    enum http1_status s1 = fuzz_scan_chunked(body, len, 0, &c1, &d1, &done1);
    size_t step = len ? (size_t)(body[0] % 7) + 1 : 1;
    enum http1_status s2 = fuzz_scan_chunked(body, len, step, &c2, &d2, &done2);
    /* Splitting the input never changes the verdict. */
    FUZZ_CHECK(s1 == s2);
    if (s1 == HTTP1_OK) {
        FUZZ_CHECK(done1 == done2);
        FUZZ_CHECK(c1 == c2);
        FUZZ_CHECK(d1 == d2);
        FUZZ_CHECK(d1 <= c1);
        if (!done1)
            FUZZ_CHECK(c1 == len);
    }
}

#endif
