/* Shared bits of the fuzz targets. Each tests/fuzz/fuzz_*.c defines
 * LLVMFuzzerTestOneInput; built two ways (see the Makefile):
 *   make fuzz         clang -fsanitize=fuzzer,address,undefined (libFuzzer)
 *   make fuzz-replay  the normal compiler and flags, linked with replay.c,
 *                     which runs every file of the seed corpus once.
 * A broken invariant calls FUZZ_CHECK, which aborts: a crash under both. */
#ifndef SG_FUZZ_H
#define SG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* A NUL-terminated copy of data[0..size) (text parsers take C strings:
 * what follows an embedded NUL is simply not seen). Never NULL. */
static inline char *
fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits off the next piece of data up to a separator byte: returns its
 * start and length in *n, and moves *data and *size past the separator.
 * The last piece is whatever is left (possibly empty). */
static inline const uint8_t *
fuzz_next(const uint8_t **data, size_t *size, uint8_t sep, size_t *n)
{
    const uint8_t *p = *data;
    const uint8_t *e = *size ? memchr(p, sep, *size) : NULL;
    if (e == NULL) {
        *n = *size;
        *data += *size;
        *size = 0;
    } else {
        *n = (size_t)(e - p);
        *data = e + 1;
        *size -= *n + 1;
    }
    return p;
}

/* Parsers over (pointer, length) must not read past length: hand them a
 * heap copy of exactly that size, so AddressSanitizer sees any overread
 * (libFuzzer's own buffer is exact too; this keeps sub-ranges exact). */
static inline uint8_t *
fuzz_memdup(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (p == NULL)
        abort();
    if (size > 0)
        memcpy(p, data, size);
    else
        p[0] = 0; /* never read by a correct parser */
    return p;
}

#endif
