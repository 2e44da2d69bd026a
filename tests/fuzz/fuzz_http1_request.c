/* A client's bytes: request head, then the body framing.
 *
 * Besides memory errors it checks what the proxy relies on when a head
 * arrives in pieces: a head that parses OK is PARTIAL on every shorter
 * prefix and OK with the same length on every longer one, a PARTIAL input
 * has no erroring prefix; spans point inside the input. After an OK head,
 * the request-target and Host are split as the proxy does, the host is
 * normalised for the catalog, and a chunked body goes through the chunked
 * scanner both in one call and in small pieces, with the same verdict. */
#include <string.h>

#include "catalog.h"
#include "fuzz.h"
#include "fuzz_body.h"
#include "http1.h"

#define MAX_HEAD 65536
#define SMALL_HEAD 300

static void
check_target(const struct http1_head *h)
{
    struct http1_target t;
    int is_connect = h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0;
    enum http1_status st = http1_parse_target(&h->target, is_connect, &t);
    char host[CATALOG_MAX_HOST + 1];
    int is_ip;
    if (st == HTTP1_OK) {
        fuzz_check_span(&t.host, (const uint8_t *)h->target.p, h->target.len);
        fuzz_check_span(&t.path, (const uint8_t *)h->target.p, h->target.len);
        FUZZ_CHECK(t.path_only_len <= t.path.len);
        FUZZ_CHECK(t.host.len <= HTTP1_MAX_HOST);
        if (is_connect)
            FUZZ_CHECK(t.form == HTTP1_FORM_AUTHORITY && t.port != 0);
        if (t.host.len > 0) {
            int n = catalog_normalize(t.host.p, t.host.len, host, sizeof(host), &is_ip);
            FUZZ_CHECK(n < (int)sizeof(host));
            if (n > 0)
                FUZZ_CHECK(strlen(host) == (size_t)n);
        }
    } else {
        FUZZ_CHECK(st == HTTP1_ERR_TARGET || st == HTTP1_ERR_SCHEME);
    }
    if (h->host.len > 0) {
        struct http1_target a;
        if (http1_parse_authority(h->host.p, h->host.len, 0, 80, &a) == HTTP1_OK) {
            fuzz_check_span(&a.host, (const uint8_t *)h->host.p, h->host.len);
            int n = catalog_normalize(a.host.p, a.host.len, host, sizeof(host), &is_ip);
            FUZZ_CHECK(n < (int)sizeof(host));
        }
    }
}

/* One parse with the limit max_head, and the checks. */
static void
check(const uint8_t *data, size_t size, size_t max_head, int deep)
{
    static struct http1_head h, h2;
    enum http1_status st = http1_parse_request(data, size, max_head, &h);
    (void)http1_strerror(st);
    (void)http1_error_code(st);

    if (st == HTTP1_OK) {
        FUZZ_CHECK(h.head_len > 0 && h.head_len <= size && h.head_len <= max_head);
        FUZZ_CHECK(h.nheaders <= HTTP1_MAX_HEADERS);
        FUZZ_CHECK(h.minor == 0 || h.minor == 1);
        fuzz_check_span(&h.method, data, h.head_len);
        fuzz_check_span(&h.target, data, h.head_len);
        fuzz_check_span(&h.host, data, h.head_len);
        for (size_t i = 0; i < h.nheaders; i++) {
            fuzz_check_span(&h.headers[i].name, data, h.head_len);
            fuzz_check_span(&h.headers[i].value, data, h.head_len);
            FUZZ_CHECK(h.headers[i].name.len > 0);
            (void)http1_is_hop_by_hop(&h.headers[i].name);
            (void)http1_connection_names(&h, &h.headers[i].name);
            (void)http1_list_has(&h.headers[i].value, "chunked");
        }
        FUZZ_CHECK(h.body == HTTP1_BODY_NONE || h.body == HTTP1_BODY_LENGTH ||
                   h.body == HTTP1_BODY_CHUNKED);
        if (h.body == HTTP1_BODY_LENGTH)
            FUZZ_CHECK(h.content_length > 0);
        /* a request coding besides chunked is refused (501), never passed */
        FUZZ_CHECK(!(h.flags & HTTP1_F_TE_CODED));
        /* and its framing comes from Content-Length or Transfer-Encoding, never both */
        FUZZ_CHECK(!((h.flags & HTTP1_F_HAS_CL) && (h.flags & HTTP1_F_HAS_TE)));
        if (deep)
            check_target(&h);
        if (deep && h.body == HTTP1_BODY_CHUNKED)
            fuzz_check_body(data + h.head_len, size - h.head_len);

        /* Every prefix is PARTIAL until the head is whole, then OK alike. */
        size_t cuts[] = {0, 1, h.head_len / 2, h.head_len - 1, h.head_len,
                         h.head_len + (size - h.head_len) / 2};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            size_t n = cuts[i];
            if (n > size)
                continue;
            uint8_t *pre = fuzz_memdup(data, n);
            enum http1_status s2 = http1_parse_request(pre, n, max_head, &h2);
            if (n < h.head_len) {
                FUZZ_CHECK(s2 == HTTP1_PARTIAL);
            } else {
                FUZZ_CHECK(s2 == HTTP1_OK);
                FUZZ_CHECK(h2.head_len == h.head_len);
                FUZZ_CHECK(h2.body == h.body);
                FUZZ_CHECK(h2.content_length == h.content_length);
            }
            free(pre);
        }
        /* A smaller limit takes the same head when it fits. */
        if (h.head_len <= SMALL_HEAD) {
            FUZZ_CHECK(http1_parse_request(data, size, SMALL_HEAD, &h2) == HTTP1_OK);
            FUZZ_CHECK(h2.head_len == h.head_len);
        }
    } else if (st == HTTP1_PARTIAL) {
        FUZZ_CHECK(size < max_head);
        /* Nothing seen so far was refused, so no prefix is refused. */
        size_t cuts[] = {size / 3, size / 2, size ? size - 1 : 0};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            uint8_t *pre = fuzz_memdup(data, cuts[i]);
            FUZZ_CHECK(http1_parse_request(pre, cuts[i], max_head, &h2) == HTTP1_PARTIAL);
            free(pre);
        }
    } else {
        FUZZ_CHECK(h.err_off <= size || st == HTTP1_ERR_HEAD_TOO_LARGE);
        /* Once refused, more bytes never make it acceptable: checked from
         * the other side, the input with one more byte is refused too. */
        uint8_t *more = malloc(size + 1);
        if (more == NULL)
            abort();
        if (size)
            memcpy(more, data, size);
        more[size] = '\n';
        enum http1_status s2 = http1_parse_request(more, size + 1, max_head, &h2);
        FUZZ_CHECK(s2 != HTTP1_OK && s2 != HTTP1_PARTIAL);
        free(more);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size, MAX_HEAD, 1);
    /* A small limit, so that inputs of a few hundred bytes reach it (the
     * proxy's max_header_bytes is 1k at least; the parser takes any). */
    check(data, size, SMALL_HEAD, 0);
    return 0;
}
