/* The page renderer (pages.c), what an administrator's template and a
 * request's values go through. The input is `TEMPLATE\0VALUE`: TEMPLATE is
 * rendered as each kind's template, with VALUE as the message, the host and
 * the user (what a client or a rules file controls); pages_check reads the
 * template too. Checks: the response parses as one HTTP/1.1 response with
 * the status of the kind, an exact Content-Length and Connection: close;
 * the body is the template with placeholders filled, so a template without
 * '<' or '"' gives a body without them (values are always escaped); the
 * built-in template with VALUE never shows VALUE's raw markup. */
#include <string.h>

#include "diag.h"
#include "fuzz.h"
#include "http1.h"
#include "pages.h"

static void
check_response(const char *r, size_t n, int status)
{
    struct http1_head h;
    FUZZ_CHECK(n > 0 && strlen(r) <= n);
    enum http1_status st = http1_parse_response((const uint8_t *)r, n, 1 << 20, 0, &h);
    FUZZ_CHECK(st == HTTP1_OK);
    FUZZ_CHECK(h.status == status);
    /* an empty template: Content-Length: 0, which reads as no body */
    FUZZ_CHECK(h.body == (n == h.head_len ? HTTP1_BODY_NONE : HTTP1_BODY_LENGTH));
    FUZZ_CHECK(n == h.head_len || h.content_length == n - h.head_len);
    FUZZ_CHECK(h.flags & HTTP1_F_CONN_CLOSE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > PAGES_MAX_TEMPLATE + 4096)
        return 0;
    size_t tn, vn;
    const uint8_t *t = fuzz_next(&data, &size, 0, &tn);
    const uint8_t *val = fuzz_next(&data, &size, 0, &vn);
    char *tmpl = fuzz_strndup(t, tn);
    char *value = fuzz_strndup(val, vn);

    struct diag d = {0};
    pages_check(tmpl, "t.html", &d);
    FUZZ_CHECK(d.errors == 0);
    diag_free(&d);

    struct pages p = {.contact = value, .show_rule = 1};
    struct pages builtin = {.contact = value, .show_rule = 1};
    struct page_vars v = {
        .message = value,
        .platform = "facebook",
        .category = "social",
        .host = value,
        .user = value,
        .rule = value,
        .continue_url = value,
        .used_min = 30,
        .quota_min = 30,
        .resets = "00:00",
        .extra_headers = "Proxy-Authenticate: Basic realm=\"x\"\r\n",
    };
    int plain = strpbrk(tmpl, "<\"") == NULL;
    for (int k = 0; k < PAGE_KINDS; k++) {
        enum page_kind kind = (enum page_kind)k;
        p.tmpl[k] = tmpl;
        char *r = NULL;
        size_t n = pages_render(&p, kind, &v, &r);
        FUZZ_CHECK(r != NULL);
        check_response(r, n, pages_default_status(kind));
        const char *body = strstr(r, "\r\n\r\n") + 4;
        if (plain)
            FUZZ_CHECK(strpbrk(body, "<\"") == NULL);
        free(r);
        p.tmpl[k] = NULL;

        /* the built-in page: the value never opens a tag of its own (a
         * value that starts with '<': one with a ';' before its '<' may
         * match across an escape, "&lt;" then the page's own "<") */
        n = pages_render(&builtin, kind, &v, &r);
        FUZZ_CHECK(r != NULL);
        check_response(r, n, pages_default_status(kind));
        if (value[0] == '<' && strstr(pages_builtin(kind), value) == NULL)
            FUZZ_CHECK(strstr(strstr(r, "\r\n\r\n"), value) == NULL);
        free(r);
    }
    free(tmpl);
    free(value);
    return 0;
}
