/* Unit tests for proxy/catalog.c (the host matcher) and proxy/rules.c (the
 * rules folder loader): suffix matching, normalisation of hosts, the regex
 * fallback, FILE:LINE errors, several files in a folder, and the shipped
 * rules/00-platforms.ini. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "diag.h"
#include "rules.h"

/* --- helpers ------------------------------------------------------------- */

static struct rules *
load_ok(const char *text)
{
    struct diag d = {0};
    struct rules *r = rules_load_string(text, "t.ini", &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("unexpected: %s\n", d.msgs[i]);
    assert_int_equal(d.errors, 0);
    assert_non_null(r);
    diag_free(&d);
    return r;
}

/* Loads text that must fail; every message must contain one of the
 * expected strings in order, and the first must be exactly `first`
 * when given. */
static void
load_fails(const char *text, const char *first)
{
    struct diag d = {0};
    struct rules *r = rules_load_string(text, "t.ini", &d);
    assert_null(r);
    assert_true(d.errors > 0);
    assert_true(d.n > 0);
    if (strstr(d.msgs[0], first) == NULL)
        fail_msg("got '%s', want '%s'", d.msgs[0], first);
    diag_free(&d);
}

/* The platform name a host classifies as ("" when unclassified). */
static const char *
classify(const struct catalog *c, const char *host)
{
    struct catalog_match m;
    catalog_classify(c, host, strlen(host), &m);
    if (m.platform < 0) {
        assert_null(m.pattern);
        assert_null(m.file);
        return "";
    }
    assert_non_null(m.pattern);
    return catalog_platform(c, m.platform)->name;
}

#define assert_class(c, host, want) \
    do { \
        const char *got_ = classify((c), (host)); \
        if (strcmp(got_, (want)) != 0) \
            fail_msg("'%s' classified as '%s', want '%s'", (host), got_, (want)); \
    } while (0)

/* Finds a path relative to the repository root from the current
 * directory (make unit runs from the root). */
static const char *
repo_path(const char *rel, char *buf, size_t size)
{
    static const char *const ups[] = {"", "../", "../../", "../../../"};
    for (size_t i = 0; i < sizeof(ups) / sizeof(ups[0]); i++) {
        snprintf(buf, size, "%s%s", ups[i], rel);
        struct stat st;
        if (stat(buf, &st) == 0)
            return buf;
    }
    return NULL;
}

/* --- matching ------------------------------------------------------------ */

static const char base_rules[] =
    "; comment\n"
    "[platform facebook]\n"
    "category = social\n"
    "domains = facebook.com, fbcdn.net\n"
    "\n"
    "[platform google]\n"
    "category = search\n"
    "domains = google.com\n"
    "\n"
    "[platform youtube]\n"
    "category = video\n"
    "domains = youtube.google.com, youtu.be\n";

static void
test_suffix_match(void **state)
{
    (void)state;
    struct rules *r = load_ok(base_rules);
    struct catalog *c = r->catalog;
    assert_int_equal(catalog_platform_count(c), 3);
    assert_int_equal(catalog_domain_count(c), 5);

    assert_class(c, "facebook.com", "facebook");
    assert_class(c, "www.facebook.com", "facebook");
    assert_class(c, "a.b.c.d.facebook.com", "facebook");
    assert_class(c, "static.xx.fbcdn.net", "facebook");
    assert_class(c, "notfacebook.com", "");
    assert_class(c, "facebook.com.evil.example", "");
    assert_class(c, "facebook.co", "");
    assert_class(c, "acebook.com", "");
    assert_class(c, "com", "");
    assert_class(c, ".com", "");
    assert_class(c, "", "");
    assert_class(c, "example.org", "");

    /* Where the match came from. */
    struct catalog_match m;
    catalog_classify(c, "www.facebook.com", 16, &m);
    assert_string_equal(m.pattern, "facebook.com");
    assert_string_equal(m.file, "t.ini");
    assert_int_equal(m.line, 4);
    assert_string_equal(catalog_platform(c, m.platform)->category, "social");
    catalog_classify(c, "i.ytimg.youtu.be", 16, &m);
    assert_string_equal(m.pattern, "youtu.be");
    assert_int_equal(m.line, 12);

    /* A host given with a length: only those bytes count. */
    catalog_classify(c, "www.facebook.comXYZ", 16, &m);
    assert_string_equal(catalog_platform(c, m.platform)->name, "facebook");
    rules_free(r);
}

static void
test_longest_suffix_wins(void **state)
{
    (void)state;
    struct rules *r = load_ok(base_rules);
    struct catalog *c = r->catalog;
    assert_class(c, "google.com", "google");
    assert_class(c, "www.google.com", "google");
    assert_class(c, "youtube.google.com", "youtube");
    assert_class(c, "m.youtube.google.com", "youtube");
    assert_class(c, "notyoutube.google.com", "google");
    assert_class(c, "youtube.google.com.example", "");
    rules_free(r);

    /* The same with the longer domain added first. */
    r = load_ok("[platform youtube]\ncategory = video\ndomains = youtube.google.com\n"
                "[platform google]\ncategory = search\ndomains = google.com\n");
    c = r->catalog;
    assert_class(c, "www.google.com", "google");
    assert_class(c, "a.youtube.google.com", "youtube");
    assert_class(c, "youtube.google.com", "youtube");
    rules_free(r);
}

static void
test_host_forms(void **state)
{
    (void)state;
    struct rules *r = load_ok("[platform facebook]\ncategory = social\n"
                              "domains = FaceBook.COM\n"); /* normalised too */
    struct catalog *c = r->catalog;
    /* Case. */
    assert_class(c, "WWW.FACEBOOK.COM", "facebook");
    assert_class(c, "Www.FaceBook.Com", "facebook");
    /* Trailing dot(s). */
    assert_class(c, "www.facebook.com.", "facebook");
    assert_class(c, "facebook.com.", "facebook");
    assert_class(c, ".", "");
    /* Port. */
    assert_class(c, "www.facebook.com:443", "facebook");
    assert_class(c, "www.facebook.com.:8443", "facebook");
    assert_class(c, "FACEBOOK.COM:80", "facebook");
    assert_class(c, "notfacebook.com:443", "");
    /* Not host names at all. */
    assert_class(c, "www.facebook.com/", "");
    assert_class(c, "www face book.com", "");
    assert_class(c, "www.facebook.com\r\n", "");
    rules_free(r);
}

static void
test_ip_literals(void **state)
{
    (void)state;
    /* A regex that matches anything: IP literals still stay unclassified. */
    struct rules *r = load_ok("[platform any]\ncategory = social\nhost_regex = .\n"
                              "[platform facebook]\ncategory = social\n"
                              "domains = facebook.com\n");
    struct catalog *c = r->catalog;
    static const char *const ips[] = {
        "127.0.0.1", "127.0.0.1:443", "10.1.2.3.", "::1", "[::1]", "[::1]:443",
        "2001:db8::1", "[2001:db8::1]:8080", "::ffff:192.0.2.1", "[fe80::1]",
    };
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
        assert_class(c, ips[i], "");
    /* Brackets that do not hold an IPv6 address. */
    assert_class(c, "[www.facebook.com]", "");
    assert_class(c, "[::1", "");
    assert_class(c, "www.facebook.com", "facebook");
    assert_class(c, "example.org", "any");

    char out[CATALOG_MAX_HOST + 1];
    int is_ip;
    assert_int_equal(catalog_normalize("[::1]:443", 9, out, sizeof(out), &is_ip), 3);
    assert_string_equal(out, "::1");
    assert_int_equal(is_ip, 1);
    assert_int_equal(catalog_normalize("192.0.2.1:80", 12, out, sizeof(out), &is_ip), 9);
    assert_string_equal(out, "192.0.2.1");
    assert_int_equal(is_ip, 1);
    assert_int_equal(catalog_normalize("a.b:80", 6, out, sizeof(out), &is_ip), 3);
    assert_int_equal(is_ip, 0);
    rules_free(r);
}

static void
test_normalize(void **state)
{
    (void)state;
    char out[CATALOG_MAX_HOST + 1];
    int is_ip;
    assert_int_equal(catalog_normalize("", 0, out, sizeof(out), &is_ip), 0);
    assert_int_equal(catalog_normalize("...", 3, out, sizeof(out), &is_ip), 0);
    assert_int_equal(catalog_normalize("WWW.Example.COM.", 16, out, sizeof(out), &is_ip), 15);
    assert_string_equal(out, "www.example.com");
    assert_int_equal(is_ip, 0);
    assert_int_equal(catalog_normalize("a\tb", 3, out, sizeof(out), &is_ip), -1);
    assert_int_equal(catalog_normalize("a\x7f", 2, out, sizeof(out), &is_ip), -1);
    /* A URL's delimiters and quotes are in no host name: "a.com/x" must
     * not be read as the name a.com/x, nor "evil.com@facebook.com". */
    static const char *const not_names[] = {"a.com/x", "a.com\\x", "a.com?x", "a.com#x",
                                            "evil.com@facebook.com", "a\"b", "a<b>", "a`b",
                                            "a{b}", "a|b", "a^b"};
    for (size_t i = 0; i < sizeof(not_names) / sizeof(not_names[0]); i++)
        assert_int_equal(catalog_normalize(not_names[i], strlen(not_names[i]), out, sizeof(out), &is_ip), -1);
    assert_int_equal(catalog_normalize("under_score-x.example", 21, out, sizeof(out), &is_ip), 21);

    /* 253 bytes is the limit of a host name; 254 is not one. */
    char host[300];
    memset(host, 'a', sizeof(host));
    for (size_t i = 63; i < sizeof(host); i += 64)
        host[i] = '.';
    assert_int_equal(catalog_normalize(host, 253, out, sizeof(out), &is_ip), 253);
    assert_int_equal(catalog_normalize(host, 254, out, sizeof(out), &is_ip), -1);
    /* Too small an output buffer. */
    assert_int_equal(catalog_normalize("www.example.com", 15, out, 10, &is_ip), -1);
    assert_int_equal(catalog_normalize("[2001:db8::1]", 13, out, 5, &is_ip), -1);
    /* Not NUL-terminated input is read only as far as len. */
    assert_int_equal(catalog_normalize("abc.example.com", 3, out, sizeof(out), &is_ip), 3);
    assert_string_equal(out, "abc");
}

static void
test_idn(void **state)
{
    (void)state;
    /* A Unicode domain in the rules matches its punycode and itself. */
    struct rules *r = load_ok("[platform books]\ncategory = social\n"
                              "domains = b\xc3\xbc" "cher.example\n");
    struct catalog *c = r->catalog;
    assert_class(c, "xn--bcher-kva.example", "books");
    assert_class(c, "www.xn--bcher-kva.example", "books");
    assert_class(c, "XN--BCHER-KVA.EXAMPLE", "books");
    assert_class(c, "b\xc3\xbc" "cher.example", "books");
    assert_class(c, "www.b\xc3\xbc" "cher.example:443", "books");
    assert_class(c, "B\xc3\x9c" "CHER.example", "books"); /* BÜCHER */
    assert_class(c, "bucher.example", "");
    struct catalog_match m;
    const char *u = "b\xc3\xbc" "cher.example";
    catalog_classify(c, u, strlen(u), &m);
    assert_true(m.platform >= 0);
    assert_string_equal(m.pattern, "xn--bcher-kva.example");
    rules_free(r);

    /* And the other way round: punycode in the rules, Unicode host. */
    r = load_ok("[platform books]\ncategory = social\ndomains = xn--bcher-kva.example\n");
    c = r->catalog;
    assert_class(c, "b\xc3\xbc" "cher.example", "books");
    assert_class(c, "shop.b\xc3\xbc" "cher.example.", "books");
    assert_class(c, "xn--bcher-kva.example", "books");
    /* Not UTF-8 at all. */
    assert_class(c, "b\xfc" "cher.example", "");
    rules_free(r);
}

static void
test_regex(void **state)
{
    (void)state;
    struct rules *r = load_ok("[platform facebook]\n"
                              "category = social\n"
                              "domains = facebook.com\n"
                              "[platform fbregex]\n"
                              "category = social\n"
                              "host_regex = ^(.+\\.)?(facebook|fb[0-9]+)\\.(com|example)$\n");
    struct catalog *c = r->catalog;
    /* A domain match wins over a regex that also matches. */
    assert_class(c, "www.facebook.com", "facebook");
    /* The regex only when no domain matched. */
    assert_class(c, "www.facebook.example", "fbregex");
    assert_class(c, "fb123.example", "fbregex");
    assert_class(c, "FB123.EXAMPLE", "fbregex");
    assert_class(c, "fbx.example", "");
    struct catalog_match m;
    catalog_classify(c, "fb1.com", 7, &m);
    assert_string_equal(m.pattern, "^(.+\\.)?(facebook|fb[0-9]+)\\.(com|example)$");
    assert_string_equal(m.file, "t.ini");
    assert_int_equal(m.line, 6);
    /* catalog_lookup takes the host as it is: the regex is caseless. */
    catalog_lookup(c, "FB9.COM", 7, &m);
    assert_string_equal(catalog_platform(c, m.platform)->name, "fbregex");
    /* catalog_lookup does not lower-case for the domain table. */
    catalog_lookup(c, "www.facebook.com", 16, &m);
    assert_string_equal(catalog_platform(c, m.platform)->name, "facebook");
    rules_free(r);

    /* Compile errors are FILE:LINE with the PCRE2 offset. */
    load_fails("[platform a]\ncategory = social\nhost_regex = foo(bar\n",
               "t.ini:3: bad host_regex at offset 7: ");
    load_fails("[platform a]\ncategory = social\n\nhost_regex = [z-a]\n", "t.ini:4: ");
    load_fails("[platform a]\ncategory = social\nhost_regex = a{2,1}\n", "offset");
}

/* --- rules errors -------------------------------------------------------- */

static void
test_rules_errors(void **state)
{
    (void)state;
    load_fails("[platform a]\ncategory = social\ncolour = red\n",
               "t.ini:3: unknown key 'colour' in [platform a]");
    /* Sections are named at their header lines. */
    load_fails("[platform a]\ncategory = social\ndomains = a.com\n"
               "[platform b]\ncategory = social\n"
               "[platform a]\ncategory = video\n",
               "t.ini:6: duplicate platform 'a' (first at t.ini:1)");
    load_fails("[platform a]\ncategory = social\ndomains = x.com\n"
               "[platform b]\ncategory = social\ndomains = y.com, www.x.com, x.com\n",
               "t.ini:6: domain 'x.com' is already claimed by platform a (t.ini:3)");
    load_fails("[platform a]\ncategory = social\ndomains = x.com, X.COM\n",
               "t.ini:3: domain 'x.com' listed twice (also at t.ini:3)");
    load_fails("[colour red]\nshade = dark\n", "t.ini:1: unknown section [colour red]");
    load_fails("[role staff]\nmembers = a\n", "t.ini:2: unknown key 'members' in a role");
    load_fails("[platform a]\ndomains = a.com\n", "t.ini:1: platform 'a' has no category");
    load_fails("[platform unclassified]\ncategory = social\n",
               "t.ini:1: [platform unclassified]: 'unclassified' is reserved");
    load_fails("[platform Face Book]\ncategory = social\n", "t.ini:1: [platform Face Book]: a ");
    load_fails("[platform]\ncategory = social\n", "t.ini:1: [platform]: a platform needs a name");
    load_fails("category = social\n", "t.ini:1: category: key outside of a section");
    load_fails("[platform a]\ncategory = Social Media\n", "t.ini:2: category = Social Media");
    load_fails("[platform a]\ncategory = social\ncategory = video\n",
               "t.ini:3: duplicate key 'category' in [platform a]");
    load_fails("[platform a]\ncategory = social\n  video\n",
               "t.ini:3: category: only lists continue");
    load_fails("[platform a]\ncategory = social\nthis is not ini\n", "t.ini:3: syntax error");

    /* Bad domains, each with the message naming it. */
    static const char *const bad[] = {
        "*.facebook.com", ".facebook.com", "face book.com", "-bad.com", "bad-.com", "com",
        "a..com", "facebook.com:443", "http://facebook.com", "192.0.2.1", "[::1]",
        "under_score!.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256], want[128];
        if (strchr(bad[i], ' ')) /* a list splits on blanks: the first item is bad */
            snprintf(want, sizeof(want), "t.ini:3: bad domain 'face'");
        else
            snprintf(want, sizeof(want), "t.ini:3: bad domain '%s'", bad[i]);
        snprintf(text, sizeof(text), "[platform a]\ncategory = social\ndomains = %s\n", bad[i]);
        load_fails(text, want);
    }
    /* A wildcard gets a hint. */
    load_fails("[platform a]\ncategory = social\ndomains = *.facebook.com\n",
               "it covers subdomains");

    /* Every bad item of a line is reported, and every bad line. */
    struct diag d = {0};
    struct rules *r = rules_load_string("[platform a]\ncategory = social\n"
                                        "domains = -a.com, ok.com, b..com\n"
                                        "  also-ok.com, *.c.com\n",
                                        "t.ini", &d);
    assert_null(r);
    assert_int_equal(d.errors, 3);
    assert_non_null(strstr(d.msgs[0], "t.ini:3: bad domain '-a.com'"));
    assert_non_null(strstr(d.msgs[1], "t.ini:3: bad domain 'b..com'"));
    assert_non_null(strstr(d.msgs[2], "t.ini:4: bad domain '*.c.com'"));
    diag_free(&d);

    /* A repeated section right after itself still fails the load. */
    d = (struct diag){0};
    r = rules_load_string("[platform a]\ncategory = social\n[platform a]\ncategory = video\n",
                          "t.ini", &d);
    assert_null(r);
    assert_true(d.errors > 0);
    diag_free(&d);
}

static void
test_rules_multiline(void **state)
{
    (void)state;
    struct rules *r = load_ok("[platform a]\n"
                              "category = social\n"
                              "domains = a1.com, a2.com,\n"
                              "    a3.com a4.com\n"
                              "\ta5.com\n"
                              "    a6.com,\n"
                              "[platform b]\n"
                              "domains = b1.com\n"
                              "  b2.com\n"
                              "category = video\n");
    struct catalog *c = r->catalog;
    assert_int_equal(catalog_platform_count(c), 2);
    assert_int_equal(catalog_domain_count(c), 8);
    static const char *const as[] = {"a1.com", "a2.com", "a3.com", "a4.com", "a5.com", "a6.com"};
    static const int lines[] = {3, 3, 4, 4, 5, 6};
    for (size_t i = 0; i < 6; i++) {
        struct catalog_match m;
        catalog_classify(c, as[i], strlen(as[i]), &m);
        assert_int_equal(m.platform, catalog_find_platform(c, "a"));
        assert_int_equal(m.line, lines[i]);
    }
    assert_class(c, "www.b2.com", "b");
    assert_string_equal(catalog_platform(c, 1)->category, "video");
    assert_int_equal(r->nfiles, 1);
    rules_free(r);

    /* A file of comments only, and an empty one, are fine. */
    r = load_ok("; nothing yet\n# nor here\n");
    assert_int_equal(catalog_platform_count(r->catalog), 0);
    rules_free(r);
    r = load_ok("");
    rules_free(r);
}

/* --- a folder of rules --------------------------------------------------- */

static void
write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
remove_tree(const char *dir, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void
test_rules_folder(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-rules-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const char *const names[] = {"20-b.ini", "10-a.ini", "notes.txt", ".hidden.ini",
                                        "old.ini.bak", "30-c.ini"};
    write_file(dir, "20-b.ini", "[platform b]\ncategory = video\ndomains = b.com\n");
    write_file(dir, "10-a.ini", "[platform a]\ncategory = social\ndomains = a.com\n");
    write_file(dir, "notes.txt", "[platform n]\ncategory = social\ndomains = n.com\n");
    write_file(dir, ".hidden.ini", "[platform h]\ncategory = social\ndomains = h.com\n");
    write_file(dir, "old.ini.bak", "garbage\n");

    struct diag d = {0};
    struct rules *r = rules_load(dir, &d);
    assert_int_equal(d.errors, 0);
    assert_non_null(r);
    assert_int_equal(r->nfiles, 2);
    struct catalog *c = r->catalog;
    assert_int_equal(catalog_platform_count(c), 2);
    /* Name order: 10-a.ini first. */
    assert_string_equal(catalog_platform(c, 0)->name, "a");
    assert_string_equal(catalog_platform(c, 1)->name, "b");
    char want[512];
    snprintf(want, sizeof(want), "%s/20-b.ini", dir);
    assert_string_equal(catalog_platform(c, 1)->file, want);
    assert_class(c, "www.b.com", "b");
    assert_class(c, "n.com", "");
    assert_class(c, "h.com", "");
    rules_free(r);
    diag_free(&d);

    /* The same domain in two files: the later file (by name) is the one
     * reported, naming the owner in the earlier one; platforms may be
     * defined in one file only. */
    write_file(dir, "30-c.ini", "[platform c]\ncategory = social\n\ndomains = x.com, a.com\n"
                                "[platform b]\ncategory = video\n");
    r = rules_load(dir, &d);
    assert_null(r);
    assert_int_equal(d.errors, 2);
    snprintf(want, sizeof(want),
             "%s/30-c.ini:4: domain 'a.com' is already claimed by platform a (%s/10-a.ini:3)",
             dir, dir);
    assert_string_equal(d.msgs[0], want);
    snprintf(want, sizeof(want), "%s/30-c.ini:5: duplicate platform 'b' (first at %s/20-b.ini:1)",
             dir, dir);
    assert_string_equal(d.msgs[1], want);
    diag_free(&d);

    remove_tree(dir, names, sizeof(names) / sizeof(names[0]));
    snprintf(dir, sizeof(dir), "/tmp/sg-rules-XXXXXX");

    /* An empty folder is an empty catalog; a missing one is an error. */
    assert_non_null(mkdtemp(dir));
    r = rules_load(dir, &d);
    assert_non_null(r);
    assert_int_equal(catalog_platform_count(r->catalog), 0);
    rules_free(r);
    rmdir(dir);
    r = rules_load(dir, &d);
    assert_null(r);
    assert_int_equal(d.errors, 1);
    assert_non_null(strstr(d.msgs[0], "cannot read the rules folder"));
    diag_free(&d);
}

static void
test_shipped_rules(void **state)
{
    (void)state;
    char buf[512];
    const char *dir = repo_path("rules/00-platforms.ini", buf, sizeof(buf));
    if (dir == NULL)
        fail_msg("rules/00-platforms.ini not found (run from the repository root)");
    char *slash = strrchr(buf, '/');
    *slash = '\0';
    struct diag d = {0};
    struct rules *r = rules_load(buf, &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 0);
    assert_non_null(r);
    struct catalog *c = r->catalog;
    assert_true(catalog_platform_count(c) >= 30);
    assert_true(catalog_domain_count(c) >= 100);
    assert_class(c, "www.instagram.com", "instagram");
    assert_class(c, "web.whatsapp.com", "whatsapp");
    assert_class(c, "pbs.twimg.com", "x");
    assert_class(c, "twimg.com", "x");
    assert_class(c, "youtu.be", "youtube");
    assert_class(c, "www.facebook.com:443", "facebook");
    assert_class(c, "www.linkedin.com", "linkedin");
    assert_class(c, "www.tiktok.com", "tiktok");
    assert_class(c, "www.google.com", "");
    assert_class(c, "example.com", "");
    assert_true(catalog_ech_client_facing(c, "cloudflare-ech.com", 18));
    assert_false(catalog_ech_client_facing(c, "www.facebook.com", 16));
    for (size_t i = 0; i < catalog_platform_count(c); i++) {
        const struct catalog_platform *p = catalog_platform(c, (int)i);
        assert_true(p->category[0] != '\0');
        assert_int_equal(catalog_find_platform(c, p->name), (int)i);
    }
    rules_free(r);
    diag_free(&d);
}

/* [ech] client_facing: a name matches itself and its subdomains, and only
 * at a label boundary. */
static void
test_rules_ech(void **state)
{
    (void)state;
    struct rules *r = load_ok("[ech]\nclient_facing = cloudflare-ech.com, Ech.Example.ORG.\n"
                              "  ech.example.org\n"
                              "[platform a]\ncategory = social\ndomains = a.example\n"
                              "[ech]\nclient_facing = cover.test\n");
    const struct catalog *c = r->catalog;
    assert_int_equal(catalog_ech_count(c), 3);
    static const struct {
        const char *host;
        int yes;
    } t[] = {
        {"cloudflare-ech.com", 1},
        {"x.cloudflare-ech.com", 1},
        {"ech.example.org", 1},
        {"cover.test", 1},
        {"a.b.cover.test", 1},
        {"notcloudflare-ech.com", 0},
        {"cloudflare-ech.com.evil.example", 0},
        {"example.org", 0},
        {"a.example", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (catalog_ech_client_facing(c, t[i].host, strlen(t[i].host)) != t[i].yes)
            fail_msg("%s: want %d", t[i].host, t[i].yes);
    assert_class(c, "cloudflare-ech.com", ""); /* classifies nothing */
    rules_free(r);

    load_fails("[ech]\nclient_facing = *.cloudflare-ech.com\n",
               "t.ini:2: bad domain '*.cloudflare-ech.com' (write the domain itself");
    load_fails("[ech]\nclient_facing = ok.example, 192.0.2.1\n", "t.ini:2: bad domain '192.0.2.1'");
    load_fails("[ech]\nnames = a.example\n",
               "t.ini:2: unknown key 'names' in [ech] (expected client_facing)");
    load_fails("[ech]\nclient_facing = a.example\nclient_facing = b.example\n",
               "t.ini:3: duplicate key 'client_facing' in [ech]");
    load_fails("[ech cloudflare]\nclient_facing = a.example\n",
               "t.ini:1: [ech cloudflare]: the [ech] section takes no name");
}

/* --- the catalog API directly ------------------------------------------- */

static void
test_catalog_api(void **state)
{
    (void)state;
    struct catalog *c = catalog_new();
    assert_non_null(c);
    const char *err = NULL;
    char msg[512];
    assert_int_equal(catalog_add_platform(c, "a", "social", "x.ini", 1, &err), 0);
    assert_int_equal(catalog_add_platform(c, "b", NULL, "y.ini", 5, &err), 1);
    assert_int_equal(catalog_add_platform(c, "a", "video", "z.ini", 9, &err), -1);
    assert_string_equal(err, "duplicate platform");
    assert_int_equal(catalog_platform_count(c), 2);
    assert_int_equal(catalog_find_platform(c, "b"), 1);
    assert_int_equal(catalog_find_platform(c, "zz"), -1);
    assert_null(catalog_platform(c, -1));
    assert_null(catalog_platform(c, 2));
    assert_string_equal(catalog_platform(c, 1)->category, "");
    assert_string_equal(catalog_platform(c, 1)->file, "y.ini");
    assert_int_equal(catalog_platform(c, 1)->line, 5);

    assert_int_equal(catalog_add_domain(c, 0, "a.example", "x.ini", 2, msg, sizeof(msg)), 0);
    assert_int_equal(catalog_add_domain(c, 1, "A.Example.", "y.ini", 6, msg, sizeof(msg)), -1);
    assert_string_equal(msg, "domain 'a.example' is already claimed by platform a (x.ini:2)");
    assert_int_equal(catalog_add_domain(c, 1, "sub.a.example", "y.ini", 7, msg, sizeof(msg)), 0);
    assert_int_equal(catalog_add_domain(c, 1, "*.b.example", "y.ini", 7, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "bad domain '*.b.example'"));
    assert_int_equal(catalog_add_domain(c, 1, "", "y.ini", 7, msg, sizeof(msg)), -1);
    assert_int_equal(catalog_add_domain(c, 1, "a/b.example", "y.ini", 7, msg, sizeof(msg)), -1);
    assert_int_equal(catalog_domain_count(c), 2);

    /* Labels of 63 bytes are fine, 64 are not. */
    char lab[80];
    memset(lab, 'l', 63);
    snprintf(lab + 63, sizeof(lab) - 63, ".example");
    assert_int_equal(catalog_add_domain(c, 0, lab, "x.ini", 3, msg, sizeof(msg)), 0);
    memset(lab, 'm', 64);
    snprintf(lab + 64, sizeof(lab) - 64, ".example");
    assert_int_equal(catalog_add_domain(c, 0, lab, "x.ini", 3, msg, sizeof(msg)), -1);

    assert_int_equal(catalog_add_regex(c, 1, "(", "y.ini", 8, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "offset 1"));
    assert_int_equal(catalog_add_regex(c, 1, "^zz[0-9]\\.", "y.ini", 8, msg, sizeof(msg)), 0);
    (void)catalog_jit_failed(c); /* 0 or 1 depending on the system */

    struct catalog_match m;
    catalog_classify(c, "x.a.example", 11, &m);
    assert_int_equal(m.platform, 0);
    catalog_classify(c, "x.sub.a.example", 15, &m);
    assert_int_equal(m.platform, 1);
    assert_string_equal(m.file, "y.ini");
    assert_int_equal(m.line, 7);
    catalog_classify(c, "zz1.example", 11, &m);
    assert_int_equal(m.platform, 1);
    assert_int_equal(m.line, 8);
    catalog_lookup(c, "", 0, &m);
    assert_int_equal(m.platform, -1);
    catalog_free(c);
    catalog_free(NULL);

    /* An empty catalog classifies nothing. */
    c = catalog_new();
    catalog_classify(c, "www.facebook.com", 16, &m);
    assert_int_equal(m.platform, -1);
    catalog_free(c);
}

/* Many domains: the table grows and every one of them, and only them,
 * still match. */
static void
test_catalog_many(void **state)
{
    (void)state;
    struct catalog *c = catalog_new();
    const char *err;
    char msg[256], host[128];
    for (int p = 0; p < 10; p++) {
        snprintf(host, sizeof(host), "p%d", p);
        assert_int_equal(catalog_add_platform(c, host, "social", "gen.ini", p + 1, &err), p);
    }
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        snprintf(host, sizeof(host), "d%d.example%d.com", i, i % 97);
        if (catalog_add_domain(c, i % 10, host, "gen.ini", i + 1, msg, sizeof(msg)) < 0)
            fail_msg("%s: %s", host, msg);
    }
    assert_int_equal(catalog_domain_count(c), (size_t)n);
    for (int i = 0; i < n; i++) {
        struct catalog_match m;
        snprintf(host, sizeof(host), "www.d%d.example%d.com", i, i % 97);
        catalog_classify(c, host, strlen(host), &m);
        assert_int_equal(m.platform, i % 10);
        assert_int_equal(m.line, i + 1);
        snprintf(host, sizeof(host), "xd%d.example%d.com", i, i % 97);
        catalog_classify(c, host, strlen(host), &m);
        assert_int_equal(m.platform, -1);
        snprintf(host, sizeof(host), "example%d.com", i % 97);
        catalog_classify(c, host, strlen(host), &m);
        assert_int_equal(m.platform, -1);
    }
    /* The longest host name there can be, under a catalog domain. */
    char longhost[CATALOG_MAX_HOST + 1];
    size_t tail = strlen(".d5.example5.com");
    memset(longhost, 'a', CATALOG_MAX_HOST - tail);
    for (size_t i = 50; i < CATALOG_MAX_HOST - tail; i += 51)
        longhost[i] = '.';
    memcpy(longhost + CATALOG_MAX_HOST - tail, ".d5.example5.com", tail + 1);
    assert_int_equal(strlen(longhost), CATALOG_MAX_HOST);
    assert_string_equal(classify(c, longhost), "p5");
    catalog_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suffix_match),
        cmocka_unit_test(test_longest_suffix_wins),
        cmocka_unit_test(test_host_forms),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_idn),
        cmocka_unit_test(test_regex),
        cmocka_unit_test(test_rules_errors),
        cmocka_unit_test(test_rules_multiline),
        cmocka_unit_test(test_rules_folder),
        cmocka_unit_test(test_shipped_rules),
        cmocka_unit_test(test_rules_ech),
        cmocka_unit_test(test_catalog_api),
        cmocka_unit_test(test_catalog_many),
    };
    return cmocka_run_group_tests_name("catalog", tests, NULL, NULL);
}
