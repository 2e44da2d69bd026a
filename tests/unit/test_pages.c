/* Unit tests for proxy/pages.c: every page is a response our own parser
 * accepts, values are HTML-escaped, the rule shows only with show_rule,
 * templates come from a folder, and the shipped contrib/pages/ templates
 * are the built-in ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "http1.h"
#include "pages.h"

static const struct page_vars full = {
    .message = "Social media is open 12:00-13:30.",
    .platform = "facebook",
    .category = "social",
    .host = "www.facebook.com",
    .user = "alice",
    .rule = "social-otherwise",
    .continue_url = "http://socialgate.local/continue?p=facebook&r=w",
    .used_min = 31,
    .quota_min = 30,
    .resets = "00:00",
};

/* Renders and parses the response; returns the body (owned by *resp). */
static const char *
render(const struct pages *p, enum page_kind kind, const struct page_vars *v, int status,
       char **resp)
{
    size_t n = pages_render(p, kind, v, resp);
    assert_non_null(*resp);
    assert_true(n > 0);
    assert_int_equal(strlen(*resp), n);
    struct http1_head h;
    enum http1_status st = http1_parse_response((const uint8_t *)*resp, n, 65536, 0, &h);
    if (st != HTTP1_OK)
        fail_msg("page does not parse (%s):\n%s", http1_strerror(st), *resp);
    assert_int_equal(h.status, status);
    assert_int_equal(h.body, HTTP1_BODY_LENGTH);
    assert_true(h.flags & HTTP1_F_CONN_CLOSE);
    assert_int_equal(h.content_length, n - h.head_len);
    assert_non_null(strstr(*resp, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(*resp, "\r\nCache-Control: no-store\r\n"));
    return *resp + h.head_len;
}

static void
test_kinds(void **state)
{
    (void)state;
    static const struct {
        enum page_kind kind;
        int status;
        const char *title, *text;
    } t[] = {
        {PAGE_DENY, 403, "<title>Blocked: www.facebook.com</title>", "Social media is open"},
        {PAGE_WARN, 403, "<title>Warning: www.facebook.com</title>",
         "href=\"http://socialgate.local/continue?p=facebook&amp;r=w\""},
        {PAGE_QUOTA, 403, "<title>Time used up: facebook</title>",
         "You have used 31 of your 30 minutes on facebook. They come back at 00:00."},
        {PAGE_SIGNIN, 407, "<title>Sign in</title>", "Please sign in"},
        {PAGE_ERROR, 502, "<title>Cannot reach www.facebook.com</title>", "cannot be reached"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char *resp;
        const char *body = render(NULL, t[i].kind, &full, t[i].status, &resp);
        if (strstr(body, t[i].title) == NULL || strstr(body, t[i].text) == NULL)
            fail_msg("%s page lacks '%s' or '%s':\n%s", pages_kind_name(t[i].kind), t[i].title,
                     t[i].text, body);
        /* no rule name without show_rule, no external resource, no script */
        assert_null(strstr(body, "social-otherwise"));
        assert_null(strstr(body, "<script"));
        assert_null(strstr(body, "src="));
        assert_null(strstr(body, "<link"));
        assert_null(strstr(body, "{host}"));
        assert_null(strstr(body, "{message}"));
        assert_null(strstr(body, "Forbidden"));
        free(resp);
    }
}

static void
test_status_and_headers(void **state)
{
    (void)state;
    struct page_vars v = full;
    v.status = 504;
    v.message = "www.example.com did not answer in 10 s.";
    char *resp;
    const char *body = render(NULL, PAGE_ERROR, &v, 504, &resp);
    assert_non_null(strstr(resp, "HTTP/1.1 504 Gateway Timeout\r\n"));
    assert_non_null(strstr(body, "did not answer in 10 s."));
    free(resp);
    v = full;
    v.extra_headers = "Proxy-Authenticate: Basic realm=\"Corp\"\r\n";
    render(NULL, PAGE_SIGNIN, &v, 407, &resp);
    assert_non_null(strstr(resp, "\r\nProxy-Authenticate: Basic realm=\"Corp\"\r\n"));
    free(resp);
}

static void
test_escaping(void **state)
{
    (void)state;
    struct page_vars v = {.message = "<script>alert('x')</script> & \"q\"\x01",
                          .host = "a<b>",
                          .used_min = -1,
                          .quota_min = -1};
    struct pages p = {.contact = "IT <helpdesk>", .show_rule = 1};
    char *resp;
    const char *body = render(&p, PAGE_DENY, &v, 403, &resp);
    assert_non_null(
        strstr(body, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</p>"));
    assert_non_null(strstr(body, "a&lt;b&gt;"));
    assert_non_null(strstr(body, "IT &lt;helpdesk&gt;"));
    assert_null(strstr(body, "<script>"));
    assert_null(strstr(body, "\x01"));
    p.contact = NULL;
    free(resp);
}

static void
test_show_rule_contact_default_message(void **state)
{
    (void)state;
    struct pages p = {.contact = "IT helpdesk, extension 4357", .show_rule = 1};
    struct page_vars v = full;
    v.message = NULL;
    char *resp;
    const char *body = render(&p, PAGE_DENY, &v, 403, &resp);
    assert_non_null(strstr(body, "<p class=\"rule\">social-otherwise</p>"));
    assert_non_null(strstr(body, "<p class=\"contact\">IT helpdesk, extension 4357</p>"));
    /* a rule without a message: a sentence of the page's own */
    assert_non_null(
        strstr(body, "Access to www.facebook.com is not allowed by the company&#39;s web policy."));
    free(resp);
    p.show_rule = 0;
    p.contact = NULL;
    body = render(&p, PAGE_DENY, &v, 403, &resp);
    assert_non_null(strstr(body, "<p class=\"rule\"></p>"));
    assert_non_null(strstr(body, "<p class=\"contact\"></p>"));
    free(resp);
}

static void
test_template(void **state)
{
    (void)state;
    struct pages p = {0};
    p.tmpl[PAGE_DENY] = strdup("<p>{host} {unknown} {used_min}/{quota_min} { host} {} {rule}"
                               " {HOST} {message</p>{");
    p.show_rule = 1;
    struct page_vars v = full;
    v.used_min = -1;
    char *resp;
    const char *body = render(&p, PAGE_DENY, &v, 403, &resp);
    assert_string_equal(body, "<p>www.facebook.com {unknown} /30 { host} {} social-otherwise"
                              " {HOST} {message</p>{");
    free(resp);
    free(p.tmpl[PAGE_DENY]);
}

static int
has_msg(const struct diag *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->msgs[i], needle))
            return 1;
    return 0;
}

static void
write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static void
test_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-pages-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/deny.html", dir);
    write_file(path, "<h1>{host}</h1>\n<p>{colour}</p>\n", 32);
    struct pages p = {0};
    struct diag d = {0};
    assert_int_equal(pages_load(&p, dir, &d), 0);
    assert_int_equal(d.errors, 0);
    char want[512];
    snprintf(want, sizeof(want), "%s/deny.html:2: warning: {colour} is not a placeholder", dir);
    assert_true(has_msg(&d, want));
    assert_string_equal(p.tmpl[PAGE_DENY], "<h1>{host}</h1>\n<p>{colour}</p>\n");
    assert_null(p.tmpl[PAGE_WARN]); /* missing: built-in */
    char *resp;
    const char *body = render(&p, PAGE_DENY, &full, 403, &resp);
    assert_string_equal(body, "<h1>www.facebook.com</h1>\n<p>{colour}</p>\n");
    free(resp);
    body = render(&p, PAGE_WARN, &full, 403, &resp);
    assert_non_null(strstr(body, "Continue to www.facebook.com"));
    free(resp);
    pages_free(&p);
    diag_free(&d);

    /* too large, a NUL, unreadable: errors naming the file */
    char *big = malloc(PAGES_MAX_TEMPLATE + 10);
    memset(big, 'x', PAGES_MAX_TEMPLATE + 10);
    snprintf(path, sizeof(path), "%s/warn.html", dir);
    write_file(path, big, PAGES_MAX_TEMPLATE + 1);
    free(big);
    snprintf(path, sizeof(path), "%s/quota.html", dir);
    write_file(path, "a\0b", 3);
    snprintf(path, sizeof(path), "%s/error.html", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(pages_load(&p, dir, &d), -1);
    snprintf(want, sizeof(want), "%s/warn.html: page template larger than 64 KiB", dir);
    assert_true(has_msg(&d, want));
    snprintf(want, sizeof(want), "%s/quota.html: NUL byte in the page template", dir);
    assert_true(has_msg(&d, want));
    snprintf(want, sizeof(want), "%s/error.html: cannot read the page template", dir);
    assert_true(has_msg(&d, want));
    assert_int_equal(d.errors, 3);
    pages_free(&p);
    diag_free(&d);
    rmdir(path);
    for (int k = 0; k < PAGE_KINDS; k++) {
        snprintf(path, sizeof(path), "%s/%s.html", dir, pages_kind_name((enum page_kind)k));
        unlink(path);
    }
    rmdir(dir);
}

/* contrib/pages/ ships the built-in templates, for an admin to copy and
 * edit; each renders with every placeholder filled. */
static void
test_contrib(void **state)
{
    (void)state;
    struct pages p = {0};
    struct diag d = {0};
    assert_int_equal(pages_load(&p, "contrib/pages", &d), 0);
    assert_int_equal(d.n, 0);
    struct pages shown = p;
    shown.contact = "IT helpdesk";
    shown.show_rule = 1;
    for (int k = 0; k < PAGE_KINDS; k++) {
        enum page_kind kind = (enum page_kind)k;
        if (p.tmpl[k] == NULL)
            fail_msg("contrib/pages/%s.html is missing", pages_kind_name(kind));
        if (strcmp(p.tmpl[k], pages_builtin(kind)) != 0)
            fail_msg("contrib/pages/%s.html is not the built-in page", pages_kind_name(kind));
        size_t n;
        char *body = pages_render_body(&shown, kind, &full, &n);
        assert_non_null(body);
        for (const char *s = strchr(body, '{'); s; s = strchr(s + 1, '{'))
            if (s[1] >= 'a' && s[1] <= 'z' && strchr(s, '}') && strcspn(s + 1, "}") < 32 &&
                strspn(s + 1, "abcdefghijklmnopqrstuvwxyz_") == strcspn(s + 1, "}"))
                fail_msg("%s: placeholder left: %.40s", pages_kind_name(kind), s);
        free(body);
    }
    pages_free(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),    cmocka_unit_test(test_status_and_headers),
        cmocka_unit_test(test_escaping), cmocka_unit_test(test_show_rule_contact_default_message),
        cmocka_unit_test(test_template), cmocka_unit_test(test_load),
        cmocka_unit_test(test_contrib),
    };
    return cmocka_run_group_tests_name("pages", tests, NULL, NULL);
}
