/* A Proxy-Authorization header value, as a client sends it:
 * htpasswd_parse_basic with the proxy's buffer sizes and with tiny ones
 * (see fuzz_auth.h for the checks). */
#include "fuzz.h"
#include "fuzz_auth.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char user[HTPASSWD_MAX_USER + 1], pass[HTPASSWD_MAX_PASSWORD + 1];
    char *value = (char *)fuzz_memdup(data, size);
    (void)fuzz_parse_basic(value, size, user, sizeof(user), pass, sizeof(pass));
    char u1[1], p1[1], u4[4], p4[4];
    (void)fuzz_parse_basic(value, size, u1, sizeof(u1), p1, sizeof(p1));
    (void)fuzz_parse_basic(value, size, u4, sizeof(u4), p4, sizeof(p4));
    (void)fuzz_parse_basic(value, size, user, sizeof(user), p1, sizeof(p1));
    /* Zero-sized buffers are refused without a write. */
    FUZZ_CHECK(htpasswd_parse_basic(value, size, user, 0, pass, sizeof(pass)) == -1);
    FUZZ_CHECK(htpasswd_parse_basic(value, size, user, sizeof(user), pass, 0) == -1);
    free(value);
    return 0;
}
