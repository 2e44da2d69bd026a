/* A Squid helper's reply line (basic, external ACL, negotiate): what a
 * helper program writes back, including the concurrency channel ID.
 * helperproto_split_channel, then helperproto_parse_reply as a basic/group
 * helper's and as a negotiate helper's answer. Checks: every string of a
 * reply points into its own buffer; a TT always
 * has a base64 token; garbage has no notes; the first byte decides the
 * code (nothing that does not start with "OK", "AF" is ever a yes). */
#include "fuzz.h"
#include "helperproto.h"

static void
check_str(const struct helper_reply *r, size_t len, const char *s)
{
    if (s == NULL)
        return;
    FUZZ_CHECK(r->buf != NULL);
    FUZZ_CHECK(s >= r->buf && s + strlen(s) <= r->buf + len);
}

static void
check_reply(const char *line, size_t len, int negotiate)
{
    struct helper_reply r;
    if (helperproto_parse_reply(line, len, negotiate, &r) < 0)
        return;
    check_str(&r, len, r.user);
    check_str(&r, len, r.token);
    check_str(&r, len, r.message);
    check_str(&r, len, r.log);
    FUZZ_CHECK(r.nnotes <= HELPER_MAX_NOTES);
    for (size_t i = 0; i < r.nnotes; i++)
        FUZZ_CHECK(r.notes[i].key[0] != '\0' && r.notes[i].value != NULL);
    if (r.code == HELPER_CODE_GARBAGE)
        FUZZ_CHECK(r.nnotes == 0 && r.user == NULL && r.token == NULL);
    if (r.code == HELPER_CODE_TT) {
        FUZZ_CHECK(negotiate && r.token != NULL && r.token[0] != '\0');
        FUZZ_CHECK(strspn(r.token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789+/=") == strlen(r.token));
    }
    if (r.code == HELPER_CODE_OK)
        FUZZ_CHECK(len >= 2 && ((line[0] == 'O' && line[1] == 'K') ||
                                (negotiate && line[0] == 'A' && line[1] == 'F')));
    if (!negotiate)
        FUZZ_CHECK(r.code != HELPER_CODE_TT);
    helperproto_reply_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    check_reply(line, size, 0);
    check_reply(line, size, 1);
    unsigned long id;
    const char *rest;
    size_t n;
    if (helperproto_split_channel(line, size, &id, &rest, &n) == 0) {
        FUZZ_CHECK(rest >= line && rest + n <= line + size);
        check_reply(rest, n, 0);
        check_reply(rest, n, 1);
    }
    return 0;
}
