/* Unit tests for proxy/htpasswd.c: htpasswd files made by Apache's own
 * htpasswd tool (tests/unit/data/htpasswd, see its README) in every
 * supported format, known vectors from `openssl passwd`, malformed files
 * with their FILE:LINE messages, group files, and the Basic credentials of
 * Proxy-Authorization (copied to end right before an unmapped page, so an
 * over-read crashes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <unistd.h>

#include "guard.h"
#include "htpasswd.h"

/* --- helpers ------------------------------------------------------------- */

/* Path of a fixture; tests run from the repository root (make unit), but
 * also work from tests/unit or anywhere below the root. */
static const char *
data_path(const char *name)
{
    static const char *const prefixes[] = {
        "tests/unit/data/htpasswd/", "data/htpasswd/", "../tests/unit/data/htpasswd/",
        "../../tests/unit/data/htpasswd/", "../../../tests/unit/data/htpasswd/"};
    static char path[512];
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", prefixes[i], name);
        if (access(path, R_OK) == 0)
            return path;
    }
    fail_msg("cannot find %s (run from the repository root)", name);
    return NULL;
}

static struct htpasswd *
load_fixture(const char *name)
{
    struct diag d = {0};
    struct htpasswd *h = htpasswd_load(data_path(name), &d);
    for (size_t i = 0; i < d.n; i++)
        print_message("%s\n", d.msgs[i]);
    assert_non_null(h);
    assert_int_equal(d.n, 0);
    diag_free(&d);
    return h;
}

/* Asserts that loading text fails with exactly the messages in want
 * (NULL-terminated), in order. */
static void
expect_htpasswd_errors(const char *text, const char *const *want)
{
    struct diag d = {0};
    struct htpasswd *h = htpasswd_load_string(text, "users", &d);
    assert_null(h);
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    for (size_t i = 0; i < d.n; i++)
        print_message("got: %s\n", d.msgs[i]);
    assert_int_equal(d.n, n);
    assert_int_equal(d.errors, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(d.msgs[i], want[i]);
    diag_free(&d);
}

static void
expect_groups_errors(const char *text, const char *const *want)
{
    struct diag d = {0};
    struct htgroups *g = htgroups_load_string(text, "groups", &d);
    assert_null(g);
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    for (size_t i = 0; i < d.n; i++)
        print_message("got: %s\n", d.msgs[i]);
    assert_int_equal(d.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(d.msgs[i], want[i]);
    diag_free(&d);
}

static char *
write_temp(const void *data, size_t len)
{
    const char *dir = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/sg-htpasswd-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return strdup(tmpl);
}

/* --- one file per format, as written by htpasswd ------------------------- */

static void
test_bcrypt_file(void **state)
{
    (void)state;
    struct htpasswd *h = load_fixture("bcrypt.htpasswd");
    assert_int_equal(htpasswd_count(h), 3);
    assert_true(htpasswd_verify(h, "alice", "correct horse"));
    assert_false(htpasswd_verify(h, "alice", "correct horsf")); /* same length */
    assert_false(htpasswd_verify(h, "alice", "Correct horse"));
    assert_false(htpasswd_verify(h, "alice", "correct horse "));
    assert_false(htpasswd_verify(h, "alice", "correct"));
    assert_false(htpasswd_verify(h, "alice", ""));
    assert_true(htpasswd_verify(h, "alan", "pa:ss word"));
    assert_false(htpasswd_verify(h, "alan", "pa:ss"));
    assert_true(htpasswd_verify(h, "ana", "p\xc3\xa4ssw\xc3\xb6rd")); /* UTF-8 */
    assert_false(htpasswd_verify(h, "ana", "p\xe4ssw\xf6rd"));        /* Latin-1 */
    assert_false(htpasswd_verify(h, "nobody", "correct horse"));
    assert_false(htpasswd_verify(h, "Alice", "correct horse")); /* case matters */
    assert_false(htpasswd_verify(h, "alice", NULL));
    assert_false(htpasswd_verify(h, NULL, "correct horse"));
    assert_false(htpasswd_verify(NULL, "alice", "correct horse"));
    htpasswd_free(h);
}

static void
test_apr1_file(void **state)
{
    (void)state;
    struct htpasswd *h = load_fixture("apr1.htpasswd");
    assert_int_equal(htpasswd_count(h), 5);
    assert_true(htpasswd_verify(h, "bob", "hunter2"));
    assert_false(htpasswd_verify(h, "bob", "hunter3")); /* same length */
    assert_false(htpasswd_verify(h, "bob", "hunter"));
    assert_false(htpasswd_verify(h, "bob", ""));
    assert_true(htpasswd_verify(h, "bea", "pa:ss word"));
    assert_true(htpasswd_verify(h, "ben", "p\xc3\xa4ssw\xc3\xb6rd"));
    assert_false(htpasswd_verify(h, "ben", "p\xe4ssw\xf6rd"));
    assert_true(htpasswd_verify(h, "bert", "The quick brown fox jumps over the lazy dog"));
    assert_false(htpasswd_verify(h, "bert", "The quick brown fox jumps over the lazy cog"));
    assert_true(htpasswd_verify(h, "blank", ""));
    assert_false(htpasswd_verify(h, "blank", " "));
    assert_false(htpasswd_verify(h, "nobody", "hunter2"));
    htpasswd_free(h);
}

/* The decoy hash an unknown user is checked against is the costliest one
 * stored, so that check takes as long as a real user's. */
static void
test_decoy_hash(void **state)
{
    (void)state;
    struct htpasswd *h = load_fixture("mixed.htpasswd");
    const char *decoy = htpasswd_decoy_hash(h);
    assert_non_null(decoy);
    assert_string_equal(decoy, htpasswd_hash(h, "alice")); /* the one bcrypt entry */
    htpasswd_free(h);

    struct diag d = {0};
    h = htpasswd_load_string("a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
                             "b:$apr1$h.8944Fv$.S/Fk8s1h4EKbopMK8LTG1\n"
                             "c:$5$rounds=9000$abcdefgh$62rc//iV35FY0tToOm0nyAFm6vsLNSswzyn4vTC52k9\n"
                             "d:$5$abcdefgh$sI6g8tHKrJ6RX7w.YoN9B7a/5wK5jYEOMmMnt3tPl0/\n",
                             "users", &d);
    assert_non_null(h);
    assert_string_equal(htpasswd_decoy_hash(h), htpasswd_hash(h, "c"));
    htpasswd_free(h);
    h = htpasswd_load_string("x:$2b$04$aaaaaaaaaaaaaaaaaaaaaOm2jmFIGeWCxfiTbi1uH3fjYm7p.FTQS\n"
                             "y:$2b$10$bbbbbbbbbbbbbbbbbbbbbOYvOrcpJA9MQzoDbavsQbbF7O47vTg7W\n"
                             "z:$2b$05$cccccccccccccccccccccOhA42WlmRP9gTc37VOB5ZnyOv.LZ8E3C\n",
                             "users", &d);
    assert_non_null(h);
    assert_string_equal(htpasswd_decoy_hash(h), htpasswd_hash(h, "y"));
    htpasswd_free(h);
    h = htpasswd_load_string("# nobody\n", "users", &d);
    assert_non_null(h);
    assert_null(htpasswd_decoy_hash(h));
    htpasswd_free(h);
    assert_null(htpasswd_decoy_hash(NULL));
    assert_int_equal(d.errors, 0);
    diag_free(&d);
}

static void
test_sha1_file(void **state)
{
    (void)state;
    struct htpasswd *h = load_fixture("sha1.htpasswd");
    assert_int_equal(htpasswd_count(h), 2);
    assert_true(htpasswd_verify(h, "carol", "password"));
    assert_false(htpasswd_verify(h, "carol", "passwore"));
    assert_false(htpasswd_verify(h, "carol", ""));
    assert_true(htpasswd_verify(h, "cat", "hunter2"));
    assert_false(htpasswd_verify(h, "cat", "password"));
    assert_string_equal(htpasswd_hash(h, "carol"), "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=");
    htpasswd_free(h);
}

/* Traditional DES crypt only uses the first 8 bytes of a password:
 * htpasswd -d warned "Password truncated to 8 characters" when dave's
 * "password123" was stored, and any password starting with "password"
 * matches. That is the format, not a bug; it is accepted for old files. */
static void
test_des_file(void **state)
{
    (void)state;
    struct htpasswd *h = load_fixture("des.htpasswd");
    assert_int_equal(htpasswd_count(h), 2);
    assert_true(htpasswd_verify(h, "dave", "password123"));
    assert_true(htpasswd_verify(h, "dave", "password12X")); /* 9th+ bytes ignored */
    assert_true(htpasswd_verify(h, "dave", "passwordX23"));
    assert_true(htpasswd_verify(h, "dave", "password"));
    assert_false(htpasswd_verify(h, "dave", "passworX123")); /* 8th byte counts */
    assert_false(htpasswd_verify(h, "dave", "passwor"));
    assert_false(htpasswd_verify(h, "dave", ""));
    assert_true(htpasswd_verify(h, "dan", "secret"));
    assert_false(htpasswd_verify(h, "dan", "secreT"));
    assert_false(htpasswd_verify(h, "dan", "secret1"));
    htpasswd_free(h);
}

static void
test_shacrypt_files(void **state)
{
    (void)state;
    struct htpasswd *h = load_fixture("sha256.htpasswd");
    assert_int_equal(htpasswd_count(h), 2);
    assert_true(htpasswd_verify(h, "erin", "sha-two"));
    assert_false(htpasswd_verify(h, "erin", "sha-twO"));
    assert_false(htpasswd_verify(h, "erin", ""));
    assert_true(htpasswd_verify(h, "eve", "more rounds"));
    assert_false(htpasswd_verify(h, "eve", "more roundz"));
    assert_true(strncmp(htpasswd_hash(h, "eve"), "$5$rounds=10000$", 16) == 0);
    htpasswd_free(h);

    h = load_fixture("sha512.htpasswd");
    assert_int_equal(htpasswd_count(h), 2);
    assert_true(htpasswd_verify(h, "frank", "sha-five"));
    assert_false(htpasswd_verify(h, "frank", "sha-fivE"));
    assert_false(htpasswd_verify(h, "frank", ""));
    assert_true(htpasswd_verify(h, "fay", "fewer rounds"));
    assert_false(htpasswd_verify(h, "fay", "fewer roundz"));
    htpasswd_free(h);
}

static void
test_mixed_file(void **state)
{
    (void)state;
    struct htpasswd *h = load_fixture("mixed.htpasswd");
    assert_int_equal(htpasswd_count(h), 7);
    assert_true(htpasswd_verify(h, "alice", "correct horse"));
    assert_true(htpasswd_verify(h, "bob", "hunter2"));
    assert_true(htpasswd_verify(h, "carol", "password"));
    assert_true(htpasswd_verify(h, "dave", "password123"));
    assert_true(htpasswd_verify(h, "erin", "sha-two"));
    assert_true(htpasswd_verify(h, "frank", "sha-five"));
    assert_true(htpasswd_verify(h, "mallory", "md5 crypt"));
    assert_false(htpasswd_verify(h, "mallory", "md5 crypT"));
    /* each password works only for its own user */
    assert_false(htpasswd_verify(h, "alice", "hunter2"));
    assert_false(htpasswd_verify(h, "bob", "correct horse"));
    assert_string_equal(htpasswd_hash(h, "bob"), "$apr1$h.8944Fv$.S/Fk8s1h4EKbopMK8LTG1");
    assert_null(htpasswd_hash(h, "# an indented comment"));
    assert_null(htpasswd_hash(h, ""));
    assert_null(htpasswd_hash(h, NULL));
    assert_null(htpasswd_hash(NULL, "bob"));
    assert_int_equal(htpasswd_count(NULL), 0);
    htpasswd_free(h);
    htpasswd_free(NULL);
}

/* --- htpasswd_check_hash against known vectors ---------------------------- */

struct vector {
    const char *password;
    const char *hash;
};

static void
test_check_hash_vectors(void **state)
{
    (void)state;
    static const struct vector good[] = {
        /* openssl passwd -apr1 -salt XXXX password */
        {"password", "$apr1$XXXX$gx6H8inn1qXOife9mOPh6."},
        /* openssl passwd -apr1 -salt '' password */
        {"password", "$apr1$$qjtLUZpoiD4RwXIYf4qVb0"},
        /* openssl passwd -apr1 -salt ab (UTF-8) */
        {"p\xc3\xa4ssw\xc3\xb6rd", "$apr1$ab$J/pyQu7p0O5KCJfor.v6Y/"},
        /* openssl passwd -apr1 -salt a.Z/09xy -stdin: lengths around the
         * 16-byte blocks and the bit loop of the algorithm */
        {"", "$apr1$a.Z/09xy$tUBb6knkDIAvdGyJcqPmc/"},
        {"a", "$apr1$a.Z/09xy$57MfcNZf4x7v2lGUO94Fy/"},
        {"1234567", "$apr1$a.Z/09xy$KM3sqs44gD4sxBf8DHbcN0"},
        {"12345678", "$apr1$a.Z/09xy$GquM98Q18HcgOog1zMjdD."},
        {"0123456789abcde", "$apr1$a.Z/09xy$YfXA9ZzerQBbO3Z/OaEf20"},
        {"0123456789abcdef", "$apr1$a.Z/09xy$8LkaCj1UIJ.o0zxfP9zcF0"},
        {"0123456789abcdef0", "$apr1$a.Z/09xy$3gnNfpiMb.A.qB13SGXCq0"},
        {"0123456789abcdef0123456789abcdef", "$apr1$a.Z/09xy$y2RbOZGp9fQE/d5Qmwjjq."},
        {"0123456789abcdef0123456789abcdef0", "$apr1$a.Z/09xy$f3MJhej2pXWJBE4z99PRK."},
        /* base64(SHA-1("password")) */
        {"password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="},
        /* openssl passwd -1 / -5 / -6 -salt saltsalt password */
        {"password", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"},
        {"password", "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC."},
        {"password", "$5$rounds=1000$abc$chB2229SaEAMndXolPyqp1RFge2UaeCAJVGEAvqr4M3"},
        {"password", "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq."
                     "qc.eoxqOmSuNp2xS0ktL3nh/"},
        /* crypt("password", "ab"), the classic DES vector */
        {"password", "abJnggxhB/yWI"},
        /* htpasswd -B's $2y$ hash of alice (bcrypt.htpasswd) under the other
         * prefixes: the same for ASCII passwords */
        {"correct horse", "$2y$05$p6OrCL42Q7CsvczRPDd.IeXzSi1Mvzm/.Bzyt6Dc.XzMTBZL4SmSu"},
        {"correct horse", "$2b$05$p6OrCL42Q7CsvczRPDd.IeXzSi1Mvzm/.Bzyt6Dc.XzMTBZL4SmSu"},
        {"correct horse", "$2a$05$p6OrCL42Q7CsvczRPDd.IeXzSi1Mvzm/.Bzyt6Dc.XzMTBZL4SmSu"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!htpasswd_check_hash(good[i].hash, good[i].password))
            fail_msg("'%s' should match %s", good[i].password, good[i].hash);
        /* one more byte (except for DES, which stops at 8), one byte
         * less, and the last byte changed */
        char pw[128];
        size_t n = strlen(good[i].password);
        snprintf(pw, sizeof(pw), "%sx", good[i].password);
        if (strlen(good[i].hash) != 13 || n < 8)
            assert_false(htpasswd_check_hash(good[i].hash, pw));
        if (n > 0) {
            snprintf(pw, sizeof(pw), "%.*s", (int)(n - 1), good[i].password);
            assert_false(htpasswd_check_hash(good[i].hash, pw));
            snprintf(pw, sizeof(pw), "%s", good[i].password);
            pw[n - 1] ^= 1;
            assert_false(htpasswd_check_hash(good[i].hash, pw));
        }
    }

    static const struct vector bad[] = {
        {"password", "password"}, /* plain text */
        {"password", ""},
        {"password", "$apr1$XXXX$gx6H8inn1qXOife9mOPh6"},       /* one short */
        {"password", "$apr1$XXXX$gx6H8inn1qXOife9mOPh6.."},     /* one long */
        {"password", "$apr1$XXXX$gx6H8inn1qXOife9mOPh6!"},      /* bad character */
        {"password", "$apr1$XXXXXXXXX$gx6H8inn1qXOife9mOPh6."}, /* salt > 8 */
        {"password", "$APR1$XXXX$gx6H8inn1qXOife9mOPh6."},
        {"password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g"},
        {"password", "{sha}W6ph5Mm5Pz8GgiULbPgzG37mj9g="},
        {"password", "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="},
        {"password", "abJnggxhB/yW"}, /* DES, 12 chars */
        {"password", "abJnggxhB/yW!"},
        {"correct horse", "$2x$05$p6OrCL42Q7CsvczRPDd.IeXzSi1Mvzm/.Bzyt6Dc.XzMTBZL4SmSu"},
        {"correct horse", "$2y$05$p6OrCL42Q7CsvczRPDd.IeXzSi1Mvzm/.Bzyt6Dc.XzMTBZL4SmS"},
        {"correct horse", "$2y$03$p6OrCL42Q7CsvczRPDd.IeXzSi1Mvzm/.Bzyt6Dc.XzMTBZL4SmSu"},
        {"password", "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC"},
        {"password", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd."
                     "RhAtQ7"}, /* yescrypt-shaped: not an htpasswd format */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (htpasswd_check_hash(bad[i].hash, bad[i].password))
            fail_msg("'%s' should not match %s", bad[i].password, bad[i].hash);
    assert_false(htpasswd_check_hash(NULL, "password"));
    assert_false(htpasswd_check_hash("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", NULL));
}

/* Passwords longer than HTPASSWD_MAX_PASSWORD never match, whatever the
 * format: {SHA} itself has no limit, so it shows the cut-off. */
static void
test_check_hash_long_password(void **state)
{
    (void)state;
    char pw[HTPASSWD_MAX_PASSWORD + 2];
    memset(pw, 'a', sizeof(pw));
    pw[HTPASSWD_MAX_PASSWORD] = '\0';
    /* printf a... | openssl dgst -sha1 -binary | base64 (512 and 513 'a') */
    assert_true(htpasswd_check_hash("{SHA}FkVX+stzkph1Foweksrwm7YGRWQ=", pw));
    pw[HTPASSWD_MAX_PASSWORD] = 'a';
    pw[HTPASSWD_MAX_PASSWORD + 1] = '\0';
    assert_false(htpasswd_check_hash("{SHA}h+zXIz2+nXVDqaGZ/GcakORphz0=", pw));
}

struct thread_arg {
    int ok;
};

static void *
check_thread(void *p)
{
    struct thread_arg *a = p;
    a->ok = 1;
    for (int i = 0; i < 10; i++) {
        a->ok &= htpasswd_check_hash("$apr1$XXXX$gx6H8inn1qXOife9mOPh6.", "password");
        a->ok &= !htpasswd_check_hash("$apr1$XXXX$gx6H8inn1qXOife9mOPh6.", "passworD");
        a->ok &= htpasswd_check_hash("$2y$05$p6OrCL42Q7CsvczRPDd.IeXzSi1Mvzm/.Bzyt6Dc.XzMTBZL4SmSu",
                                     "correct horse");
        a->ok &= htpasswd_check_hash("abJnggxhB/yWI", "password");
        a->ok &= htpasswd_check_hash("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password");
    }
    return NULL;
}

/* Checks run on a thread pool: several at once must not interfere. */
static void
test_check_hash_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    struct thread_arg a[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, check_thread, &a[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(a[i].ok);
    }
}

/* --- parsing htpasswd files ---------------------------------------------- */

#define SHA_PW "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=" /* "password" */

static void
test_htpasswd_accepted_layouts(void **state)
{
    (void)state;
    struct diag d = {0};
    char longname[HTPASSWD_MAX_USER + 1];
    memset(longname, 'u', HTPASSWD_MAX_USER);
    longname[HTPASSWD_MAX_USER] = '\0';
    char text[2048];
    snprintf(text, sizeof(text),
             "# comment\r\n"
             "\r\n"
             "crlf:" SHA_PW "\r\n"
             "  indented:" SHA_PW "  \t\n"
             "extra:" SHA_PW ":Apache ignores what follows\n"
             "j\xc3\xb6rg:" SHA_PW "\n" /* UTF-8 names are fine */
             "%s:" SHA_PW "\n"
             "#nospace:" SHA_PW "\n"
             "jane doe:" SHA_PW "\n" /* spaces are fine, as in Apache */
             "last:" SHA_PW,         /* no final newline */
             longname);
    struct htpasswd *h = htpasswd_load_string(text, NULL, &d);
    assert_non_null(h);
    assert_int_equal(d.n, 0);
    assert_int_equal(htpasswd_count(h), 7);
    const char *users[] = {"crlf",   "indented", "extra", "j\xc3\xb6rg",
                           longname, "jane doe", "last"};
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(htpasswd_hash(h, users[i]), SHA_PW);
        assert_true(htpasswd_verify(h, users[i], "password"));
    }
    assert_null(htpasswd_hash(h, "#nospace"));
    assert_null(htpasswd_hash(h, "jane"));
    htpasswd_free(h);

    /* empty and comment-only files are valid and have no users */
    h = htpasswd_load_string("", "empty", &d);
    assert_non_null(h);
    assert_int_equal(htpasswd_count(h), 0);
    assert_null(htpasswd_hash(h, "x"));
    assert_false(htpasswd_verify(h, "x", "password"));
    htpasswd_free(h);
    h = htpasswd_load_string("# nobody\n\n   \n", "empty", &d);
    assert_non_null(h);
    assert_int_equal(htpasswd_count(h), 0);
    htpasswd_free(h);
    assert_int_equal(d.n, 0);
}

static void
test_htpasswd_malformed(void **state)
{
    (void)state;
    char text[4096];
    char longname[HTPASSWD_MAX_USER + 2];
    memset(longname, 'u', HTPASSWD_MAX_USER + 1);
    longname[HTPASSWD_MAX_USER + 1] = '\0';
    snprintf(text, sizeof(text),
             "good:" SHA_PW "\n"                                          /* 1 */
             "nocolon\n"                                                  /* 2 */
             "plain:password\n"                                           /* 3 */
             "bad\tuser:" SHA_PW "\n"                                     /* 4 */
             ":" SHA_PW "\n"                                              /* 5 */
             "salty:$apr1$toolongsalt$gx6H8inn1qXOife9mOPh6.\n"           /* 6 */
             "good:" SHA_PW "\n"                                          /* 7 */
             "c\x01tl:" SHA_PW "\n"                                       /* 8 */
             "%s:" SHA_PW "\n"                                            /* 9 */
             "bc:$2y$05$short\n"                                          /* 10 */
             "empty:\n"                                                   /* 11 */
             "spaced: " SHA_PW "\n"                                       /* 12 */
             "sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g\n"                     /* 13 */
             "s5:$5$salt$short\n"                                         /* 14 */
             "s6:$6$rounds=$salt$x\n"                                     /* 15 */
             "yes:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317\n" /* 16 */
             "good:" SHA_PW "\n",                                         /* 17 */
             longname);
    static const char *const want[] = {
        "users:2: expected user:hash",
        "users:3: user 'plain': unsupported password hash",
        "users:4: invalid user name: contains a control character",
        "users:5: invalid user name: empty",
        "users:6: user 'salty': malformed $apr1$ password hash",
        "users:8: invalid user name: contains a control character",
        "users:9: invalid user name: longer than 255 bytes",
        "users:10: user 'bc': malformed bcrypt password hash",
        "users:11: user 'empty': unsupported password hash",
        "users:12: user 'spaced': unsupported password hash",
        "users:13: user 'sha': malformed {SHA} password hash",
        "users:14: user 's5': malformed SHA-256-crypt password hash",
        "users:15: user 's6': malformed SHA-512-crypt password hash",
        "users:16: user 'yes': unsupported password hash",
        "users:7: duplicate user 'good' (first on line 1)",
        "users:17: duplicate user 'good' (first on line 1)",
        NULL,
    };
    expect_htpasswd_errors(text, want);

    /* a single problem is enough to refuse the whole file */
    static const char *const dup[] = {"users:3: duplicate user 'a' (first on line 1)", NULL};
    expect_htpasswd_errors("a:" SHA_PW "\nb:" SHA_PW "\na:" SHA_PW "\n", dup);
}

static void
test_htpasswd_files_on_disk(void **state)
{
    (void)state;
    static const char data[] = "ok:" SHA_PW "\nnul\0byte:" SHA_PW "\nfine:" SHA_PW "\n";
    char *path = write_temp(data, sizeof(data) - 1);
    struct diag d = {0};
    assert_null(htpasswd_load(path, &d));
    assert_int_equal(d.n, 1);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
    assert_string_equal(d.msgs[0], want);
    diag_free(&d);
    unlink(path);
    free(path);

    assert_null(htpasswd_load("/nonexistent/sg-htpasswd", &d));
    assert_int_equal(d.n, 1);
    assert_string_equal(d.msgs[0],
                        "/nonexistent/sg-htpasswd: cannot open: No such file or directory");
    diag_free(&d);
    assert_null(htgroups_load("/nonexistent/sg-groups", &d));
    assert_int_equal(d.errors, 1);
    diag_free(&d);
}

/* 100k users, as the brief expects of big sites: loads and finds them. */
static void
test_htpasswd_many_users(void **state)
{
    (void)state;
    enum { N = 100000 };
    size_t cap = (size_t)N * 48 + 64, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    /* descending, so the sort has work to do */
    for (int i = N - 1; i >= 0; i--)
        len += (size_t)snprintf(text + len, cap - len, "user%06d:" SHA_PW "\n", i);
    struct diag d = {0};
    struct htpasswd *h = htpasswd_load_string(text, "big", &d);
    assert_non_null(h);
    assert_int_equal(htpasswd_count(h), N);
    char name[32];
    for (int i = 0; i < N; i += 997) {
        snprintf(name, sizeof(name), "user%06d", i);
        assert_string_equal(htpasswd_hash(h, name), SHA_PW);
    }
    assert_true(htpasswd_verify(h, "user099999", "password"));
    assert_null(htpasswd_hash(h, "user100000"));
    assert_null(htpasswd_hash(h, "user"));
    htpasswd_free(h);

    /* one duplicate among them is found */
    len += (size_t)snprintf(text + len, cap - len, "user050000:" SHA_PW "\n");
    assert_null(htpasswd_load_string(text, "big", &d));
    assert_int_equal(d.n, 1);
    assert_string_equal(d.msgs[0], "big:100001: duplicate user 'user050000' (first on line 50000)");
    diag_free(&d);
    free(text);
}

/* --- groups -------------------------------------------------------------- */

struct collect {
    char buf[256];
};

static void
collect_cb(void *arg, const char *group)
{
    struct collect *c = arg;
    size_t n = strlen(c->buf);
    snprintf(c->buf + n, sizeof(c->buf) - n, "%s%s", n ? "," : "", group);
}

static const char *
groups_of(const struct htgroups *g, const char *user, struct collect *c)
{
    c->buf[0] = '\0';
    htgroups_foreach_of(g, user, collect_cb, c);
    return c->buf;
}

static void
test_groups_file(void **state)
{
    (void)state;
    struct diag d = {0};
    struct htgroups *g = htgroups_load(data_path("example.groups"), &d);
    assert_non_null(g);
    assert_int_equal(d.n, 0);
    struct collect c;
    assert_true(htgroups_member(g, "staff", "alice"));
    assert_true(htgroups_member(g, "staff", "bob"));
    assert_true(htgroups_member(g, "staff", "carol"));
    assert_true(htgroups_member(g, "staff", "dave")); /* second staff line, */
    assert_true(htgroups_member(g, "staff", "erin")); /* tab-separated */
    assert_false(htgroups_member(g, "staff", "frank"));
    assert_true(htgroups_member(g, "admins", "alice"));
    assert_false(htgroups_member(g, "admins", "bob"));
    assert_true(htgroups_member(g, "students", "frank"));
    assert_false(htgroups_member(g, "Staff", "alice")); /* case matters */
    assert_false(htgroups_member(g, "staff", "Alice"));
    assert_false(htgroups_member(g, "nosuch", "alice"));
    assert_false(htgroups_member(g, "empty", "alice"));
    assert_false(htgroups_member(g, "empty", ""));
    assert_false(htgroups_member(g, NULL, "alice"));
    assert_false(htgroups_member(g, "staff", NULL));
    assert_false(htgroups_member(NULL, "staff", "alice"));
    /* the groups the file names, members or not */
    assert_true(htgroups_has_group(g, "staff"));
    assert_true(htgroups_has_group(g, "students"));
    assert_true(htgroups_has_group(g, "empty"));
    assert_false(htgroups_has_group(g, "nosuch"));
    assert_false(htgroups_has_group(g, "Staff"));
    assert_false(htgroups_has_group(g, NULL));
    assert_false(htgroups_has_group(NULL, "staff"));

    assert_string_equal(groups_of(g, "alice", &c), "admins,staff");
    assert_string_equal(groups_of(g, "bob", &c), "staff,students");
    assert_string_equal(groups_of(g, "erin", &c), "staff");
    assert_string_equal(groups_of(g, "frank", &c), "students");
    assert_string_equal(groups_of(g, "mallory", &c), "");
    assert_string_equal(groups_of(g, "", &c), "");
    assert_string_equal(groups_of(NULL, "alice", &c), "");
    htgroups_foreach_of(g, NULL, collect_cb, &c);
    htgroups_free(g);
    htgroups_free(NULL);
}

static void
test_groups_string(void **state)
{
    (void)state;
    struct diag d = {0};
    struct htgroups *g = htgroups_load_string("  b: zed zed amy  \r\n"
                                              "a :amy\n"
                                              "c:\n"
                                              "b: amy\n"
                                              "# x: amy\n"
                                              "d:j\xc3\xb6rg",
                                              NULL, &d);
    assert_non_null(g);
    assert_int_equal(d.n, 0);
    struct collect c;
    assert_string_equal(groups_of(g, "amy", &c), "a,b"); /* listed twice, once */
    assert_string_equal(groups_of(g, "zed", &c), "b");
    assert_string_equal(groups_of(g, "j\xc3\xb6rg", &c), "d");
    assert_true(htgroups_member(g, "a", "amy"));
    assert_false(htgroups_member(g, "x", "amy"));
    assert_false(htgroups_member(g, "# x", "amy"));
    htgroups_free(g);

    g = htgroups_load_string("", "empty", &d);
    assert_non_null(g);
    assert_string_equal(groups_of(g, "amy", &c), "");
    assert_false(htgroups_member(g, "a", "amy"));
    htgroups_free(g);
}

static void
test_groups_malformed(void **state)
{
    (void)state;
    char text[1024];
    char longname[HTPASSWD_MAX_USER + 2];
    memset(longname, 'm', HTPASSWD_MAX_USER + 1);
    longname[HTPASSWD_MAX_USER + 1] = '\0';
    snprintf(text, sizeof(text),
             "ok: a b\n"      /* 1 */
             "nocolon a b\n"  /* 2 */
             ": a\n"          /* 3 */
             "two words: a\n" /* 4 */
             "g: a b:c\n"     /* 5 */
             "g: a\x01z\n"    /* 6 */
             "g: %s\n"        /* 7 */
             "g\x7f: a\n",    /* 8 */
             longname);
    static const char *const want[] = {
        "groups:2: expected group: user ...",
        "groups:3: invalid group name: empty",
        "groups:4: invalid group name: contains a space",
        "groups:5: group 'g': invalid member name: contains ':'",
        "groups:6: group 'g': invalid member name: contains a control character",
        "groups:7: group 'g': invalid member name: longer than 255 bytes",
        "groups:8: invalid group name: contains a control character",
        NULL,
    };
    expect_groups_errors(text, want);
}

/* A group file cannot list a user whose name holds a space: -t says so,
 * as a warning, only where a group lists every word of such a name. */
static void
test_groups_spaced_users(void **state)
{
    (void)state;
    struct diag d = {0};
    struct htpasswd *h = htpasswd_load_string("jane doe:" SHA_PW "\n"
                                              "ann marie smith:" SHA_PW "\n"
                                              "bob:" SHA_PW "\n",
                                              "users", &d);
    assert_non_null(h);
    struct htgroups *g = htgroups_load_string("# 'jane doe' meant twice, on two lines\n"
                                              "staff: bob jane doe\n"
                                              "sales: doe\n"
                                              "sales: jane\n"
                                              "ops: jane\n"             /* only one word: no */
                                              "hr: ann smith\n"         /* not every word: no */
                                              "mkt: smith marie ann\n", /* every word */
                                              "groups", &d);
    assert_non_null(g);
    assert_int_equal(d.n, 0);
    htgroups_check_users(g, h, "groups", &d);
    static const char *const want[] = {
        "groups:7: warning: group 'mkt': the user 'ann marie smith' cannot be listed in a group "
        "file (members are separated by blanks): its words are read as other users",
        "groups:4: warning: group 'sales': the user 'jane doe' cannot be listed in a group file "
        "(members are separated by blanks): its words are read as other users",
        "groups:2: warning: group 'staff': the user 'jane doe' cannot be listed in a group file "
        "(members are separated by blanks): its words are read as other users",
    };
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 3);
    assert_int_equal(d.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_non_null(strstr(d.msgs[i], want[i]));
    diag_free(&d);
    /* no group file, or no user with a space: nothing to say */
    htgroups_check_users(NULL, h, "groups", &d);
    htgroups_free(g);
    g = htgroups_load_string("staff: jane doe\n", "groups", &d);
    htpasswd_free(h);
    h = htpasswd_load_string("jane:" SHA_PW "\ndoe:" SHA_PW "\n", "users", &d);
    htgroups_check_users(g, h, "groups", &d);
    assert_int_equal(d.n, 0);
    htgroups_free(g);
    htpasswd_free(h);
    diag_free(&d);
}

/* --- Proxy-Authorization ------------------------------------------------- */

static struct guard G;

static int
setup(void **state)
{
    (void)state;
    guard_init(&G, 1 << 16);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    guard_free(&G);
    return 0;
}

/* Parses value (no NUL: it ends at the guard page). */
static int
parse_n(const char *value, size_t len, char *user, size_t usz, char *pass, size_t psz)
{
    const char *p = (const char *)guard_put(&G, value, len);
    return htpasswd_parse_basic(p, len, user, usz, pass, psz);
}

static int
parse(const char *value, char *user, size_t usz, char *pass, size_t psz)
{
    return parse_n(value, strlen(value), user, usz, pass, psz);
}

/* "Basic " + base64(cred[0..n)), made with OpenSSL's encoder. */
static char *
basic_of(const void *cred, size_t n)
{
    char *out = malloc(6 + (n + 2) / 3 * 4 + 1);
    assert_non_null(out);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, cred, (int)n);
    return out;
}

static void
expect_basic(const char *value, const char *user, const char *pass)
{
    char u[HTPASSWD_MAX_USER + 1], p[HTPASSWD_MAX_PASSWORD + 1];
    if (parse(value, u, sizeof(u), p, sizeof(p)) != 0)
        fail_msg("rejected: %s", value);
    assert_string_equal(u, user);
    assert_string_equal(p, pass);
}

static void
expect_basic_bad(const char *value, size_t len)
{
    char u[HTPASSWD_MAX_USER + 1], p[HTPASSWD_MAX_PASSWORD + 1];
    memset(u, 'U', sizeof(u));
    memset(p, 'P', sizeof(p));
    if (parse_n(value, len, u, sizeof(u), p, sizeof(p)) != -1)
        fail_msg("accepted: %.*s", (int)len, value);
    assert_string_equal(u, ""); /* emptied, nothing half-decoded left */
    assert_string_equal(p, "");
}

static void
test_basic_valid(void **state)
{
    (void)state;
    expect_basic("Basic YWxpY2U6c2VjcmV0", "alice", "secret");
    expect_basic("basic YWxpY2U6c2VjcmV0", "alice", "secret");
    expect_basic("BASIC YWxpY2U6c2VjcmV0", "alice", "secret");
    expect_basic("bAsIc YWxpY2U6c2VjcmV0", "alice", "secret");
    expect_basic("Basic    YWxpY2U6c2VjcmV0", "alice", "secret");
    expect_basic(" \tBasic YWxpY2U6c2VjcmV0 \t", "alice", "secret");
    expect_basic("Basic YWxpY2U6cGE6c3M=", "alice", "pa:ss"); /* first ':' splits */
    expect_basic("Basic YWxpY2U6", "alice", "");              /* empty password */
    expect_basic("Basic fn5+Oj8+Pw==", "~~~", "?>?");         /* '+' in the alphabet */
    expect_basic("Basic YTpi", "a", "b");

    /* UTF-8 (RFC 7617) and '/' */
    char *v = basic_of("j\xc3\xb6rg:p\xc3\xa4ss/?", 13);
    expect_basic(v, "j\xc3\xb6rg", "p\xc3\xa4ss/?");
    free(v);

    /* exact fits: usz and psz count the NUL */
    char u[6], p[7];
    assert_int_equal(parse("Basic YWxpY2U6c2VjcmV0", u, sizeof(u), p, sizeof(p)), 0);
    assert_string_equal(u, "alice");
    assert_string_equal(p, "secret");
    char p1[1];
    assert_int_equal(parse("Basic YWxpY2U6", u, sizeof(u), p1, sizeof(p1)), 0);
    assert_string_equal(p1, "");

    /* a round trip with every password byte that is allowed */
    char cred[300];
    size_t n = 0;
    cred[n++] = 'u';
    cred[n++] = ':';
    for (int c = 0x20; c < 0x100; c++)
        if (c != 0x7f)
            cred[n++] = (char)c;
    v = basic_of(cred, n);
    char pu[8], pp[300];
    assert_int_equal(parse(v, pu, sizeof(pu), pp, sizeof(pp)), 0);
    assert_string_equal(pu, "u");
    assert_int_equal(strlen(pp), n - 2);
    assert_memory_equal(pp, cred + 2, n - 2);
    free(v);
}

static void
test_basic_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        " ",
        "Basic",
        "Basic ",
        "Basic    ",
        "BasicYWxpY2U6c2VjcmV0",   /* no space */
        "Basic\tYWxpY2U6c2VjcmV0", /* tab is not SP here */
        "Basi YWxpY2U6c2VjcmV0",
        "Basicc YWxpY2U6c2VjcmV0",
        "Bearer YWxpY2U6c2VjcmV0",
        "Digest username=\"alice\"",
        "Basic YWxpY2U6c2VjcmV0MQ", /* padding missing */
        "Basic YWxpY2U6c2VjcmV0M",
        "Basic YWxpY2U6c2VjcmV0MQ=",
        "Basic YWxpY2U6c2VjcmV0MQ===",
        "Basic YWxp*2U6c2VjcmV0",   /* not base64 */
        "Basic YWxpY2U6c2VjcmV0 x", /* junk after */
        "Basic YWxpY2U6c2VjcmV0,",
        "Basic YWxpY2U6 c2VjcmV0", /* space inside */
        "Basic YTpi=YTpi",         /* '=' not at the end */
        "Basic YTpiYQ==YTpi",
        "Basic YT=i",
        "Basic ====",
        "Basic YTpiYR==", /* padding bits not zero */
        "Basic YTpiYWJ=",
        "Basic YWxpY2U6c2VjcmV0-_", /* base64url is not base64 */
        "Basic YWxpY2U=",           /* "alice": no ':' */
        "Basic OnNlY3JldA==",       /* ":secret": empty user */
        "Basic Og==",               /* ":" */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_basic_bad(bad[i], strlen(bad[i]));

    /* control characters, in the user or the password, NUL included */
    static const char *const ctl[] = {"al\x01"
                                      "ce:x",
                                      "alice:b\x7f", "alice:\tb", "alice\n:b", "a:b\r\n"};
    for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
        char *v = basic_of(ctl[i], strlen(ctl[i]));
        expect_basic_bad(v, strlen(v));
        free(v);
    }
    char *v = basic_of("alice:b\0c", 9);
    expect_basic_bad(v, strlen(v));
    free(v);
    /* a NUL in the header value itself */
    expect_basic_bad("Basic YTpi\0", 11);
    expect_basic_bad("Basic\0YTpi", 10);
}

static void
test_basic_too_long(void **state)
{
    (void)state;
    char u[6], p[7];
    /* "alice:secret" needs 6 and 7 bytes: one less each is refused */
    memset(u, 'U', sizeof(u));
    assert_int_equal(parse("Basic YWxpY2U6c2VjcmV0", u, 5, p, sizeof(p)), -1);
    assert_int_equal(u[0], '\0');
    assert_int_equal(p[0], '\0');
    assert_int_equal(parse("Basic YWxpY2U6c2VjcmV0", u, sizeof(u), p, 6), -1);
    assert_int_equal(u[0], '\0');
    assert_int_equal(parse("Basic YWxpY2U6c2VjcmV0", u, 0, p, sizeof(p)), -1);
    assert_int_equal(parse("Basic YWxpY2U6c2VjcmV0", u, sizeof(u), p, 0), -1);
    assert_int_equal(htpasswd_parse_basic(NULL, 0, u, sizeof(u), p, sizeof(p)), -1);

    /* a user of HTPASSWD_MAX_USER bytes fits the documented buffer; one
     * more does not */
    char cred[HTPASSWD_MAX_USER + 8];
    memset(cred, 'x', sizeof(cred));
    memcpy(cred + HTPASSWD_MAX_USER, ":pw", 3);
    char *v = basic_of(cred, HTPASSWD_MAX_USER + 3);
    char bu[HTPASSWD_MAX_USER + 1], bp[8];
    assert_int_equal(parse(v, bu, sizeof(bu), bp, sizeof(bp)), 0);
    assert_int_equal(strlen(bu), HTPASSWD_MAX_USER);
    free(v);
    cred[HTPASSWD_MAX_USER] = 'x';
    memcpy(cred + HTPASSWD_MAX_USER + 1, ":pw", 3);
    v = basic_of(cred, HTPASSWD_MAX_USER + 4);
    assert_int_equal(parse(v, bu, sizeof(bu), bp, sizeof(bp)), -1);
    free(v);

    /* a long header value: 12 KiB of base64 */
    char big[9000];
    memset(big, 'p', sizeof(big));
    big[0] = 'u';
    big[1] = ':';
    v = basic_of(big, sizeof(big));
    char pp[HTPASSWD_MAX_PASSWORD + 1];
    assert_int_equal(parse(v, bu, sizeof(bu), pp, sizeof(pp)), -1);
    free(v);
}

/* Random values and random corruptions of a valid one: no crash, no read
 * past the value (guard page), and whatever is accepted is well-formed. */
static void
test_basic_random(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t:Bbasic\x01\x7f";
    uint32_t seed = 12345;
    char value[64];
    for (int iter = 0; iter < 200000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % sizeof(value);
        if (iter % 2 == 0) {
            memcpy(value, "Basic YWxpY2U6c2VjcmV0", 22);
            len = 22;
            for (int k = 0; k < 3; k++) {
                seed = seed * 1103515245u + 12345u;
                value[(seed >> 16) % 22] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
            }
        } else {
            for (size_t k = 0; k < len; k++) {
                seed = seed * 1103515245u + 12345u;
                value[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
            }
        }
        char u[16], p[16];
        if (parse_n(value, len, u, sizeof(u), p, sizeof(p)) == 0) {
            assert_true(u[0] != '\0');
            assert_null(strchr(u, ':'));
            for (const char *s = u; *s; s++)
                assert_true((unsigned char)*s >= 0x20 && *s != 0x7f);
            for (const char *s = p; *s; s++)
                assert_true((unsigned char)*s >= 0x20 && *s != 0x7f);
        } else {
            assert_int_equal(u[0], '\0');
            assert_int_equal(p[0], '\0');
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bcrypt_file),
        cmocka_unit_test(test_apr1_file),
        cmocka_unit_test(test_sha1_file),
        cmocka_unit_test(test_des_file),
        cmocka_unit_test(test_shacrypt_files),
        cmocka_unit_test(test_mixed_file),
        cmocka_unit_test(test_decoy_hash),
        cmocka_unit_test(test_check_hash_vectors),
        cmocka_unit_test(test_check_hash_long_password),
        cmocka_unit_test(test_check_hash_threads),
        cmocka_unit_test(test_htpasswd_accepted_layouts),
        cmocka_unit_test(test_htpasswd_malformed),
        cmocka_unit_test(test_htpasswd_files_on_disk),
        cmocka_unit_test(test_htpasswd_many_users),
        cmocka_unit_test(test_groups_file),
        cmocka_unit_test(test_groups_string),
        cmocka_unit_test(test_groups_malformed),
        cmocka_unit_test(test_groups_spaced_users),
        cmocka_unit_test(test_basic_valid),
        cmocka_unit_test(test_basic_invalid),
        cmocka_unit_test(test_basic_too_long),
        cmocka_unit_test(test_basic_random),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
