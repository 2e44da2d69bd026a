/* A Proxy-Authorization value as a Negotiate client sends it, and a name a
 * negotiate helper answers with: negotiate_parse_authorization with the
 * proxy's buffer and tiny ones, negotiate_realms on the input as a helper
 * command line, negotiate_user_name with the realms it found. Checks: a
 * token is returned only for the Negotiate scheme, only base64, always
 * NUL terminated within its buffer; a name keeps its realm or loses
 * exactly "@REALM", and is never empty. */
#include "fuzz.h"
#include "negotiate.h"

static int
is_b64(const char *s)
{
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
           strlen(s);
}

static void
parse(const char *v, size_t len, size_t size)
{
    char *tok = malloc(size ? size : 1);
    FUZZ_CHECK(tok != NULL);
    int r = negotiate_parse_authorization(v, len, tok, size);
    FUZZ_CHECK(r >= -1 && r <= 1);
    if (r == 1) {
        FUZZ_CHECK(strlen(tok) < size && tok[0] != '\0' && is_b64(tok));
        FUZZ_CHECK(strlen(tok) <= NEGOTIATE_MAX_TOKEN);
        size_t tl = strlen(tok), at = 0;
        while (at + tl <= len && memcmp(v + at, tok, tl) != 0)
            at++;
        FUZZ_CHECK(at + tl <= len); /* the token is the client's, unchanged */
    }
    free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = (char *)fuzz_memdup(data, size);
    parse(v, size, NEGOTIATE_MAX_TOKEN + 1);
    parse(v, size, 1);
    parse(v, size, 8);

    /* As a command line and a principal: NUL terminated copies. */
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    char realm[64], name[128];
    int n = negotiate_realms(s, realm, sizeof(realm));
    FUZZ_CHECK(n >= 0 && n <= 2 && strlen(realm) < sizeof(realm));
    FUZZ_CHECK((n == 0) == (realm[0] == '\0'));
    if (negotiate_user_name(s, n, realm, name, sizeof(name)) == 0) {
        size_t nl = strlen(name);
        FUZZ_CHECK(nl > 0 && strncmp(name, s, nl) == 0);
        FUZZ_CHECK(s[nl] == '\0' || (s[nl] == '@' && strchr(s + nl + 1, '@') == NULL));
    }
    free(s);
    free(v);
    return 0;
}
