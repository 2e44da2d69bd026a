/* A request path as a client sends it: request_normalize_path, the path a
 * rule's path_regex sees. Checks: the result starts with '/', has no
 * empty, "." or ".." segment, every '%' in it starts an upper-case
 * encoding of a byte that is not unreserved, it holds a NUL only when the
 * input did, it is no longer than the bound the function promises, and
 * normalising it again changes nothing. The input is read from a buffer of
 * exactly its size (ASan sees a read past it). */
#include <string.h>

#include "fuzz.h"
#include "request.h"

static int
unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int
upper_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    if (in == NULL)
        abort();
    if (size)
        memcpy(in, data, size);
    size_t n = 0;
    char *out = request_normalize_path(in, size, &n);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(n >= 1 && n <= 3 * size + 1 && out[n] == '\0');
    FUZZ_CHECK(out[0] == '/');
    FUZZ_CHECK(memchr(in, '\0', size) != NULL || memchr(out, '\0', n) == NULL);

    /* segments: none empty (but the last, after a trailing slash), "." or ".." */
    size_t s = 1;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && out[i] != '/')
            continue;
        size_t sl = i - s;
        FUZZ_CHECK(sl > 0 || i == n);
        FUZZ_CHECK(!(sl == 1 && out[s] == '.'));
        FUZZ_CHECK(!(sl == 2 && out[s] == '.' && out[s + 1] == '.'));
        s = i + 1;
    }
    /* percent-encodings left: upper case, never of an unreserved byte */
    for (size_t i = 0; i < n; i++) {
        if (out[i] != '%')
            continue;
        FUZZ_CHECK(n - i >= 3);
        int hi = upper_hex(out[i + 1]), lo = upper_hex(out[i + 2]);
        FUZZ_CHECK(hi >= 0 && lo >= 0);
        FUZZ_CHECK(!unreserved((unsigned char)(hi * 16 + lo)));
    }
    /* a normalised path normalises to itself */
    size_t n2 = 0;
    char *again = request_normalize_path(out, n, &n2);
    FUZZ_CHECK(again != NULL && n2 == n && memcmp(again, out, n) == 0);
    free(again);
    free(out);
    free(in);
    return 0;
}
