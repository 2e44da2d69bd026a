/* Guard-page buffers for unit tests: the bytes handed to a parser end right
 * before a PROT_NONE page, so reading even one byte past them crashes the
 * test instead of passing by luck. */
#ifndef SG_TEST_GUARD_H
#define SG_TEST_GUARD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard {
    uint8_t *map;   /* whole mapping */
    size_t maplen;
    uint8_t *end;   /* first byte of the PROT_NONE page */
    size_t cap;     /* usable bytes before end */
};

static inline void
guard_init(struct guard *g, size_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (cap + page - 1) / page * page;
    if (data == 0)
        data = page;
    g->maplen = data + page;
    void *m = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        abort();
    g->map = m;
    g->end = g->map + data;
    g->cap = data;
    if (mprotect(g->end, page, PROT_NONE) != 0)
        abort();
}

static inline void
guard_free(struct guard *g)
{
    munmap(g->map, g->maplen);
    memset(g, 0, sizeof(*g));
}

/* Copies src[0..len) so that it ends at the guard page; returns the copy.
 * len may be 0 (the pointer is then the guard page itself). */
static inline const uint8_t *
guard_put(struct guard *g, const void *src, size_t len)
{
    if (len > g->cap)
        abort();
    uint8_t *p = g->end - len;
    if (len)
        memcpy(p, src, len);
    return p;
}

#endif
