/* Unit tests for proxy/negotiate.c: the Negotiate token of a
 * Proxy-Authorization value, the Proxy-Authenticate fields of a 407, and
 * the user name a Kerberos principal is known by. Inputs are copied to end
 * right before an unmapped page (guard.h): an over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "negotiate.h"

static int
parse(const char *v, char *tok, size_t size)
{
    size_t n = strlen(v);
    struct guard g;
    guard_init(&g, n);
    const uint8_t *p = guard_put(&g, v, n);
    int r = negotiate_parse_authorization((const char *)p, n, tok, size);
    guard_free(&g);
    return r;
}

static void
test_parse(void **state)
{
    (void)state;
    char tok[64];
    assert_int_equal(parse("Negotiate YIIB+/w==", tok, sizeof(tok)), 1);
    assert_string_equal(tok, "YIIB+/w==");
    assert_int_equal(parse("  negotiate \t YWJj  ", tok, sizeof(tok)), 1);
    assert_string_equal(tok, "YWJj");
    /* other schemes are not ours */
    assert_int_equal(parse("Basic YWxpY2U6cHc=", tok, sizeof(tok)), 0);
    assert_int_equal(parse("NegotiateX YWJj", tok, sizeof(tok)), 0);
    assert_int_equal(parse("Negotiat", tok, sizeof(tok)), 0);
    assert_int_equal(parse("", tok, sizeof(tok)), 0);
    /* Negotiate without a usable token */
    assert_int_equal(parse("Negotiate", tok, sizeof(tok)), -1);
    assert_int_equal(parse("Negotiate   ", tok, sizeof(tok)), -1);
    assert_int_equal(parse("Negotiate YW Jj", tok, sizeof(tok)), -1);
    assert_int_equal(parse("Negotiate YWJj\r\nX: y", tok, sizeof(tok)), -1);
    assert_int_equal(parse("Negotiate YWJj%00", tok, sizeof(tok)), -1);
    /* too long for the buffer, and over the limit */
    assert_int_equal(parse("Negotiate YWJjZGVm", tok, 7), -1);
    size_t big = NEGOTIATE_MAX_TOKEN + 20;
    char *v = malloc(big + 1);
    char *out = malloc(big + 1);
    assert_non_null(v);
    assert_non_null(out);
    memcpy(v, "Negotiate ", 10);
    memset(v + 10, 'A', big - 10);
    v[big] = '\0';
    assert_int_equal(parse(v, out, big + 1), -1);
    v[10 + NEGOTIATE_MAX_TOKEN] = '\0';
    assert_int_equal(parse(v, out, big + 1), 1);
    free(v);
    free(out);
}

static void
test_challenge(void **state)
{
    (void)state;
    char out[256];
    size_t n = negotiate_challenge(NULL, 1, 1, "Corporate gateway", out, sizeof(out));
    assert_string_equal(out, "Proxy-Authenticate: Negotiate\r\n"
                             "Proxy-Authenticate: Basic realm=\"Corporate gateway\"\r\n");
    assert_int_equal(n, strlen(out));
    negotiate_challenge(NULL, 1, 0, "x", out, sizeof(out));
    assert_string_equal(out, "Proxy-Authenticate: Negotiate\r\n");
    negotiate_challenge(NULL, 0, 1, "x", out, sizeof(out));
    assert_string_equal(out, "Proxy-Authenticate: Basic realm=\"x\"\r\n");
    /* a continuing exchange offers the token alone */
    negotiate_challenge("oRQwEqADCgEBoQsGCSqGSIb3EgECAg==", 1, 1, "x", out, sizeof(out));
    assert_string_equal(out, "Proxy-Authenticate: Negotiate oRQwEqADCgEBoQsGCSqGSIb3EgECAg==\r\n");
    assert_int_equal(negotiate_challenge(NULL, 1, 1, "x", out, 20), 0);
}

static void
test_realms(void **state)
{
    (void)state;
    char r[64];
    assert_int_equal(negotiate_realms("/usr/lib/squid/negotiate_kerberos_auth -k /etc/gw.keytab "
                                      "-s HTTP/gw.example.com@EXAMPLE.COM",
                                      r, sizeof(r)),
                     1);
    assert_string_equal(r, "EXAMPLE.COM");
    assert_int_equal(negotiate_realms("helper -s GSS_C_NO_NAME", r, sizeof(r)), 0);
    assert_string_equal(r, "");
    assert_int_equal(negotiate_realms("h -s HTTP/a@EXAMPLE.COM -t HTTP/b@example.com", r, sizeof(r)),
                     1);
    assert_int_equal(negotiate_realms("h -s 'HTTP/a@EU.CORP' \"HTTP/b@US.CORP\"", r, sizeof(r)), 2);
    assert_string_equal(r, "EU.CORP");
    assert_int_equal(negotiate_realms("h -s HTTP/a@", r, sizeof(r)), 0);
}

static void
test_user_name(void **state)
{
    (void)state;
    char out[64];
    /* no realm named: every realm goes */
    assert_int_equal(negotiate_user_name("alice@EXAMPLE.COM", 0, "", out, sizeof(out)), 0);
    assert_string_equal(out, "alice");
    /* one realm named: its users lose it, a trusted realm's keep theirs */
    assert_int_equal(negotiate_user_name("alice@example.com", 1, "EXAMPLE.COM", out, sizeof(out)),
                     0);
    assert_string_equal(out, "alice");
    assert_int_equal(negotiate_user_name("alice@OTHER.ORG", 1, "EXAMPLE.COM", out, sizeof(out)), 0);
    assert_string_equal(out, "alice@OTHER.ORG");
    /* two realms: everyone keeps it */
    assert_int_equal(negotiate_user_name("alice@EU.CORP", 2, "EU.CORP", out, sizeof(out)), 0);
    assert_string_equal(out, "alice@EU.CORP");
    /* no realm in the name */
    assert_int_equal(negotiate_user_name("alice", 1, "EXAMPLE.COM", out, sizeof(out)), 0);
    assert_string_equal(out, "alice");
    /* nothing left, or too long */
    assert_int_equal(negotiate_user_name("@EXAMPLE.COM", 1, "EXAMPLE.COM", out, sizeof(out)), -1);
    assert_int_equal(negotiate_user_name("averyveryverylongname@X", 0, "", out, 8), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_challenge),
        cmocka_unit_test(test_realms),
        cmocka_unit_test(test_user_name),
    };
    return cmocka_run_group_tests_name("negotiate", tests, NULL, NULL);
}
