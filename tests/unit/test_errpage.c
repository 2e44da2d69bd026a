/* Unit tests for proxy/errpage.c: every page must be a valid response that
 * our own response parser accepts, with an exact Content-Length. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errpage.h"
#include "http1.h"

/* Parses buf[0..n) as a whole response; returns the body. */
static const char *
parse_page(const char *buf, size_t n, int status, struct http1_head *h, size_t *body_len)
{
    assert_int_equal(strlen(buf), n);
    enum http1_status st = http1_parse_response((const uint8_t *)buf, n, 65536, 0, h);
    if (st != HTTP1_OK)
        fail_msg("status %d: page does not parse (%s at %zu):\n%s", status, http1_strerror(st),
                 h->err_off, buf);
    assert_int_equal(h->status, status);
    assert_int_equal(h->minor, 1);
    assert_int_equal(h->body, HTTP1_BODY_LENGTH);
    assert_true(h->flags & HTTP1_F_CONN_CLOSE);
    *body_len = n - h->head_len;
    if (h->content_length != *body_len)
        fail_msg("status %d: Content-Length %llu, body %zu", status,
                 (unsigned long long)h->content_length, *body_len);
    return buf + h->head_len;
}

static int
has_field(const struct http1_head *h, const char *name, const char *value)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_span *v = &h->headers[i].value;
        if (http1_name_is(&h->headers[i].name, name) && v->len == strlen(value) &&
            memcmp(v->p, value, v->len) == 0)
            return 1;
    }
    return 0;
}

static void
test_statuses(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *phrase;
    } t[] = {
        {200, "OK"},
        {400, "Bad Request"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {407, "Proxy Authentication Required"},
        {408, "Request Timeout"},
        {414, "URI Too Long"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
        {508, "Loop Detected"},
        {418, "Error"},
        {599, "Error"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_string_equal(errpage_reason_phrase(t[i].status), t[i].phrase);
        char buf[4096];
        size_t n = errpage_format(buf, sizeof(buf), t[i].status, "Some detail.", "");
        assert_true(n > 0);
        struct http1_head h;
        size_t blen;
        const char *body = parse_page(buf, n, t[i].status, &h, &blen);
        assert_int_equal(h.reason.len, strlen(t[i].phrase));
        assert_memory_equal(h.reason.p, t[i].phrase, h.reason.len);
        assert_true(has_field(&h, "content-type", "text/html; charset=utf-8"));
        assert_true(has_field(&h, "cache-control", "no-store"));
        char title[128];
        snprintf(title, sizeof(title), "<title>%d %s</title>", t[i].status, t[i].phrase);
        assert_non_null(strstr(body, title));
        assert_non_null(strstr(body, "<p>Some detail.</p>"));
        assert_int_equal(strncmp(body, "<!DOCTYPE html>", 15), 0);
        assert_int_equal(body[blen - 1], '\n');
    }
}

static void
test_detail_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *detail, *html;
    } t[] = {
        {"plain text", "plain text"},
        {"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
        {"a & b", "a &amp; b"},
        {"\"quoted\" 'single'", "&quot;quoted&quot; &#39;single&#39;"},
        {"&amp;", "&amp;amp;"},
        {"line\r\nbreak\x01\x7f", "linebreak"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"</p><h1>x", "&lt;/p&gt;&lt;h1&gt;x"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char buf[4096];
        size_t n = errpage_format(buf, sizeof(buf), 403, t[i].detail, NULL);
        struct http1_head h;
        size_t blen;
        const char *body = parse_page(buf, n, 403, &h, &blen);
        char want[256];
        snprintf(want, sizeof(want), "<p>%s</p>", t[i].html);
        if (strstr(body, want) == NULL)
            fail_msg("detail '%s': no '%s' in\n%s", t[i].detail, want, body);
    }
    /* NULL detail: an empty paragraph. */
    char buf[4096];
    size_t n = errpage_format(buf, sizeof(buf), 500, NULL, NULL);
    struct http1_head h;
    size_t blen;
    const char *body = parse_page(buf, n, 500, &h, &blen);
    assert_non_null(strstr(body, "<p></p>"));
}

static void
test_extra_headers(void **state)
{
    (void)state;
    char buf[4096];
    size_t n = errpage_format(buf, sizeof(buf), 407, "Log in.",
                              "Proxy-Authenticate: Basic realm=\"socialgate\"\r\n"
                              "Retry-After: 5\r\n");
    struct http1_head h;
    size_t blen;
    parse_page(buf, n, 407, &h, &blen);
    assert_true(has_field(&h, "proxy-authenticate", "Basic realm=\"socialgate\""));
    assert_true(has_field(&h, "retry-after", "5"));
    assert_true(has_field(&h, "connection", "close"));
}

static void
test_sizes(void **state)
{
    (void)state;
    /* A long detail is cut, the page stays valid. */
    static char detail[6000];
    for (size_t i = 0; i < sizeof(detail) - 1; i++)
        detail[i] = "<&>ab"[i % 5];
    char buf[8192];
    size_t n = errpage_format(buf, sizeof(buf), 502, detail, "");
    assert_true(n > 0);
    struct http1_head h;
    size_t blen;
    const char *body = parse_page(buf, n, 502, &h, &blen);
    assert_null(strstr(body, "<&"));
    assert_non_null(strstr(body, "</p>\n<hr><p>socialgate</p></body></html>\n"));

    /* The buffer must hold it all: one byte less gives 0, not a cut page. */
    char full[4096];
    size_t len = errpage_format(full, sizeof(full), 404, "Nothing here.", "");
    assert_true(len > 0);
    for (size_t size = 0; size <= len + 1; size++) {
        char *small = malloc(size ? size : 1);
        assert_non_null(small);
        size_t r = errpage_format(small, size, 404, "Nothing here.", "");
        if (size > len) {
            assert_int_equal(r, len);
            assert_memory_equal(small, full, len + 1);
        } else {
            assert_int_equal(r, 0);
        }
        free(small);
    }
}

/* The words a user reads when an origin cannot be reached: plain, never a
 * resolver's or the C library's message. */
static void
test_upstream_text(void **state)
{
    (void)state;
    static const struct {
        enum errpage_upstream why;
        uint64_t ms;
        const char *want;
    } t[] = {
        {ERRPAGE_NAME_UNKNOWN, 0, "The name www.x.example does not exist."},
        {ERRPAGE_NAME_FAILED, 0,
         "The name www.x.example could not be looked up: the name servers did not give an "
         "answer. Try again in a moment."},
        {ERRPAGE_REFUSED, 0, "www.x.example refused the connection on port 8443."},
        {ERRPAGE_UNREACHABLE, 0, "www.x.example cannot be reached from here (no route to it)."},
        {ERRPAGE_TIMEOUT, 10000, "www.x.example did not answer in 10 s."},
        {ERRPAGE_TIMEOUT, 2500, "www.x.example did not answer in 2500 ms."},
        {ERRPAGE_TIMEOUT, 0, "www.x.example did not answer."},
        {ERRPAGE_FAILED, 0, "Could not connect to www.x.example on port 8443."},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char buf[512];
        size_t n = errpage_upstream_text(buf, sizeof(buf), t[i].why, "www.x.example", 8443,
                                         t[i].ms);
        assert_string_equal(buf, t[i].want);
        assert_int_equal(n, strlen(t[i].want));
    }
    char small[8];
    assert_int_equal(errpage_upstream_text(small, sizeof(small), ERRPAGE_REFUSED, "h", 1, 0), 7);
    assert_string_equal(small, "h refus");
    assert_int_equal(errpage_connect_error(ECONNREFUSED), ERRPAGE_REFUSED);
    assert_int_equal(errpage_connect_error(ETIMEDOUT), ERRPAGE_TIMEOUT);
    assert_int_equal(errpage_connect_error(EHOSTUNREACH), ERRPAGE_UNREACHABLE);
    assert_int_equal(errpage_connect_error(ENETUNREACH), ERRPAGE_UNREACHABLE);
    assert_int_equal(errpage_connect_error(ECONNRESET), ERRPAGE_FAILED);
    assert_int_equal(errpage_connect_error(0), ERRPAGE_FAILED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_detail_escaping),
        cmocka_unit_test(test_extra_headers),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_upstream_text),
    };
    return cmocka_run_group_tests_name("errpage", tests, NULL, NULL);
}
