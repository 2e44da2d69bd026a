/* A chunked body alone (RFC 9112 7.1), as a client or an origin sends it:
 * the scanner must never overrun, spin, or answer differently when the
 * same bytes arrive in other pieces. */
#include "fuzz.h"
#include "fuzz_body.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_body(data, size);
    /* Byte by byte: the finest split there is. */
    size_t c1, c2;
    uint64_t d1, d2;
    int done1, done2;
    enum http1_status s1 = fuzz_scan_chunked(data, size, 0, &c1, &d1, &done1);
    enum http1_status s2 = fuzz_scan_chunked(data, size, 1, &c2, &d2, &done2);
    FUZZ_CHECK(s1 == s2);
    if (s1 == HTTP1_OK)
        FUZZ_CHECK(c1 == c2 && d1 == d2 && done1 == done2);
    return 0;
}
