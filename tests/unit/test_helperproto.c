/* Unit tests for proxy/helperproto.c: Squid's helper line protocols, with
 * replies as Squid's own helpers (basic_ldap_auth, ext_ldap_group_acl,
 * negotiate_kerberos_auth old and new forms) write them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "helperproto.h"

static void
test_basic_request_escapes(void **state)
{
    (void)state;
    char out[256];
    int n = helperproto_basic_request("jane doe", "p%ss w=rd", out, sizeof(out));
    assert_string_equal(out, "jane%20doe p%25ss%20w%3Drd\n");
    assert_int_equal(n, (int)strlen(out));
    /* A newline in a password cannot end the request early. */
    helperproto_basic_request("a", "x\ny", out, sizeof(out));
    assert_string_equal(out, "a x%0Ay\n");
    /* UTF-8 bytes are escaped one by one, as Squid does. */
    helperproto_group_request("j\xc3\xa9", "marketing", out, sizeof(out));
    assert_string_equal(out, "j%C3%A9 marketing\n");
}

static void
test_request_too_long(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(helperproto_basic_request("user", "password", out, sizeof(out)), -1);
    assert_int_equal(helperproto_basic_request("u", "p", out, sizeof(out)), 4);
}

static void
test_negotiate_request(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(helperproto_negotiate_request(1, "YIIB+/=", out, sizeof(out)), 11);
    assert_string_equal(out, "YR YIIB+/=\n");
    helperproto_negotiate_request(0, "abc", out, sizeof(out));
    assert_string_equal(out, "KK abc\n");
    /* A token that is no base64 (a space, a newline) is refused. */
    assert_int_equal(helperproto_negotiate_request(1, "a b", out, sizeof(out)), -1);
    assert_int_equal(helperproto_negotiate_request(1, "a\nOK", out, sizeof(out)), -1);
    assert_int_equal(helperproto_negotiate_request(1, "", out, sizeof(out)), -1);
}

static void
test_channel(void **state)
{
    (void)state;
    unsigned long id;
    const char *rest;
    size_t n;
    assert_int_equal(helperproto_split_channel("12 OK user=x\n", 13, &id, &rest, &n), 0);
    assert_int_equal(id, 12);
    assert_int_equal(n, 9);
    assert_memory_equal(rest, "OK user=x", 9);
    assert_int_equal(helperproto_split_channel("3\r\n", 3, &id, &rest, &n), 0);
    assert_int_equal(id, 3);
    assert_int_equal(n, 0);
    assert_int_equal(helperproto_split_channel("OK", 2, &id, &rest, &n), -1);
    assert_int_equal(helperproto_split_channel("1x OK", 5, &id, &rest, &n), -1);
    assert_int_equal(helperproto_split_channel("99999999999 OK", 14, &id, &rest, &n), -1);
}

static struct helper_reply
parse(const char *s, int negotiate)
{
    struct helper_reply r;
    assert_int_equal(helperproto_parse_reply(s, strlen(s), negotiate, &r), 0);
    return r;
}

static void
test_ok_err_bh(void **state)
{
    (void)state;
    struct helper_reply r = parse("OK\n", 0);
    assert_int_equal(r.code, HELPER_CODE_OK);
    assert_null(r.message);
    helperproto_reply_free(&r);

    r = parse("OK user=jane log=ldap%20bind tag=x\r\n", 0);
    assert_int_equal(r.code, HELPER_CODE_OK);
    assert_string_equal(r.user, "jane");
    assert_string_equal(r.log, "ldap bind");
    assert_string_equal(helperproto_note(&r, "tag"), "x");
    helperproto_reply_free(&r);

    r = parse("ERR message=\"Wrong \\\"password\\\"\" x=1", 0);
    assert_int_equal(r.code, HELPER_CODE_ERR);
    assert_string_equal(r.message, "Wrong \"password\"");
    assert_string_equal(helperproto_note(&r, "x"), "1");
    helperproto_reply_free(&r);

    r = parse("ERR message=Account%20locked", 0);
    assert_string_equal(r.message, "Account locked");
    helperproto_reply_free(&r);

    /* BH with notes, and the old free-text form. */
    r = parse("BH message=\"LDAP down\"", 0);
    assert_int_equal(r.code, HELPER_CODE_BH);
    assert_string_equal(r.message, "LDAP down");
    helperproto_reply_free(&r);
    /* basic_ldap_auth's old form: free text after ERR is the message. */
    r = parse("ERR Invalid credentials", 0);
    assert_int_equal(r.code, HELPER_CODE_ERR);
    assert_string_equal(r.message, "Invalid credentials");
    helperproto_reply_free(&r);
    /* basic_ldap_auth's "BH Success" (no LDAP error: the directory said
     * no) is a no; a real BH stays one, and a negotiate BH is never read so. */
    r = parse("BH Success", 0);
    assert_int_equal(r.code, HELPER_CODE_ERR);
    assert_int_equal(r.uncertain, 1);
    helperproto_reply_free(&r);
    r = parse("ERR Invalid credentials", 0);
    assert_int_equal(r.uncertain, 0);
    helperproto_reply_free(&r);
    r = parse("BH Success", 1);
    assert_int_equal(r.code, HELPER_CODE_BH);
    helperproto_reply_free(&r);
    r = parse("BH Can't contact LDAP server", 0);
    assert_int_equal(r.code, HELPER_CODE_BH);
    helperproto_reply_free(&r);
    r = parse("BH Could not connect to LDAP server", 0);
    assert_int_equal(r.code, HELPER_CODE_BH);
    assert_string_equal(r.message, "Could not connect to LDAP server");
    helperproto_reply_free(&r);
}

static void
test_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "ok",
                         "OKAY",
                         "YES",
                         "OK user",
                         "OK =x",
                         "OK message=\"unterminated",
                         "OK message=\"a\"b",
                         "ERR a=1\nOK",
                         "AF tok user", /* not a negotiate helper */
                         "TT abc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct helper_reply r = parse(bad[i], 0);
        if (r.code != HELPER_CODE_GARBAGE)
            fail_msg("\"%s\" parsed as %s", bad[i], helperproto_code_name(r.code));
        assert_int_equal(r.nnotes, 0);
        helperproto_reply_free(&r);
    }
    struct helper_reply r;
    assert_int_equal(helperproto_parse_reply("OK\0user=x", 9, 0, &r), 0);
    assert_int_equal(r.code, HELPER_CODE_GARBAGE);
    helperproto_reply_free(&r);
}

static void
test_negotiate_old_forms(void **state)
{
    (void)state;
    struct helper_reply r = parse("AF oRQwEqADCgEA jane@EXAMPLE.COM\n", 1);
    assert_int_equal(r.code, HELPER_CODE_OK);
    assert_string_equal(r.token, "oRQwEqADCgEA");
    assert_string_equal(r.user, "jane@EXAMPLE.COM");
    helperproto_reply_free(&r);

    r = parse("AF = jane", 1);
    assert_int_equal(r.code, HELPER_CODE_OK);
    assert_null(r.token);
    assert_string_equal(r.user, "jane");
    helperproto_reply_free(&r);

    r = parse("TT YIIBzgYGKwYB", 1);
    assert_int_equal(r.code, HELPER_CODE_TT);
    assert_string_equal(r.token, "YIIBzgYGKwYB");
    helperproto_reply_free(&r);

    r = parse("NA = Wrong ticket", 1);
    assert_int_equal(r.code, HELPER_CODE_ERR);
    assert_non_null(r.message);
    helperproto_reply_free(&r);

    r = parse("BH received type 1 NTLM token", 1);
    assert_int_equal(r.code, HELPER_CODE_BH);
    helperproto_reply_free(&r);

    const char *bad[] = {"AF", "AF tok", "AF tok user extra", "AF t!k user", "TT", "TT a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = parse(bad[i], 1);
        if (r.code != HELPER_CODE_GARBAGE)
            fail_msg("\"%s\" parsed as %s", bad[i], helperproto_code_name(r.code));
        helperproto_reply_free(&r);
    }
}

static void
test_negotiate_new_forms(void **state)
{
    (void)state;
    struct helper_reply r = parse("OK token=oRQwEqADCgEA user=jane@EXAMPLE.COM", 1);
    assert_int_equal(r.code, HELPER_CODE_OK);
    assert_string_equal(r.token, "oRQwEqADCgEA");
    assert_string_equal(r.user, "jane@EXAMPLE.COM");
    helperproto_reply_free(&r);
    r = parse("TT token=YIIBzg==", 1);
    assert_int_equal(r.code, HELPER_CODE_TT);
    assert_string_equal(r.token, "YIIBzg==");
    helperproto_reply_free(&r);
    r = parse("ERR message=\"no ticket\"", 1);
    assert_int_equal(r.code, HELPER_CODE_ERR);
    assert_string_equal(r.message, "no ticket");
    helperproto_reply_free(&r);
    /* TT without a token cannot be continued: garbage. */
    r = parse("TT message=x", 1);
    assert_int_equal(r.code, HELPER_CODE_GARBAGE);
    helperproto_reply_free(&r);
}

static void
test_escape_roundtrip(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(helperproto_escape("a b/c~", out, sizeof(out)), 10);
    assert_string_equal(out, "a%20b%2Fc~");
    assert_int_equal(helperproto_unescape(out), 6);
    assert_string_equal(out, "a b/c~");
    char bad[] = "%zz%4";
    helperproto_unescape(bad);
    assert_string_equal(bad, "%zz%4");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_request_escapes),
        cmocka_unit_test(test_request_too_long),
        cmocka_unit_test(test_negotiate_request),
        cmocka_unit_test(test_channel),
        cmocka_unit_test(test_ok_err_bh),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_negotiate_old_forms),
        cmocka_unit_test(test_negotiate_new_forms),
        cmocka_unit_test(test_escape_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
