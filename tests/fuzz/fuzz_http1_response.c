/* An origin's bytes: status line, fields, then the body framing.
 *
 * Checks as for requests: an OK head is PARTIAL on shorter prefixes and OK
 * with the same length on longer ones, spans stay inside the input, the
 * framing follows RFC 9112 6.3 (no body after HEAD, 1xx, 204 and 304), and
 * a chunked body scans the same whole and in pieces. */
#include <string.h>

#include "fuzz.h"
#include "fuzz_body.h"
#include "http1.h"

#define MAX_HEAD 65536
#define SMALL_HEAD 300

static void
one(const uint8_t *data, size_t size, size_t max_head, int head_request)
{
    static struct http1_head h, h2;
    enum http1_status st = http1_parse_response(data, size, max_head, head_request, &h);
    (void)http1_strerror(st);
    if (st == HTTP1_OK) {
        FUZZ_CHECK(h.head_len >= 15 && h.head_len <= size && h.head_len <= max_head);
        FUZZ_CHECK(h.status >= 100 && h.status <= 999);
        FUZZ_CHECK(h.nheaders <= HTTP1_MAX_HEADERS);
        fuzz_check_span(&h.reason, data, h.head_len);
        for (size_t i = 0; i < h.nheaders; i++) {
            fuzz_check_span(&h.headers[i].name, data, h.head_len);
            fuzz_check_span(&h.headers[i].value, data, h.head_len);
            FUZZ_CHECK(h.headers[i].name.len > 0);
            (void)http1_is_hop_by_hop(&h.headers[i].name);
            (void)http1_connection_names(&h, &h.headers[i].name);
        }
        if (head_request || h.status < 200 || h.status == 204 || h.status == 304)
            FUZZ_CHECK(h.body == HTTP1_BODY_NONE);
        if (h.body == HTTP1_BODY_LENGTH)
            FUZZ_CHECK(h.content_length > 0);
        if (h.body == HTTP1_BODY_CHUNKED && max_head == MAX_HEAD)
            fuzz_check_body(data + h.head_len, size - h.head_len);

        size_t cuts[] = {0, 1, 12, 13, h.head_len / 2, h.head_len - 1, h.head_len,
                         h.head_len + (size - h.head_len) / 2};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            size_t n = cuts[i];
            if (n > size)
                continue;
            uint8_t *pre = fuzz_memdup(data, n);
            enum http1_status s2 = http1_parse_response(pre, n, max_head, head_request, &h2);
            if (n < h.head_len) {
                FUZZ_CHECK(s2 == HTTP1_PARTIAL);
            } else {
                FUZZ_CHECK(s2 == HTTP1_OK);
                FUZZ_CHECK(h2.head_len == h.head_len);
                FUZZ_CHECK(h2.body == h.body);
                FUZZ_CHECK(h2.status == h.status);
            }
            free(pre);
        }
    } else if (st == HTTP1_PARTIAL) {
        FUZZ_CHECK(size < max_head); /* the caller would wait forever */
        size_t cuts[] = {size / 3, size / 2, size ? size - 1 : 0};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            uint8_t *pre = fuzz_memdup(data, cuts[i]);
            FUZZ_CHECK(http1_parse_response(pre, cuts[i], max_head, head_request, &h2) ==
                       HTTP1_PARTIAL);
            free(pre);
        }
    } else {
        uint8_t *more = malloc(size + 1);
        if (more == NULL)
            abort();
        if (size)
            memcpy(more, data, size);
        more[size] = '\n';
        enum http1_status s2 = http1_parse_response(more, size + 1, max_head, head_request, &h2);
        FUZZ_CHECK(s2 != HTTP1_OK && s2 != HTTP1_PARTIAL);
        free(more);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size, MAX_HEAD, 0);
    one(data, size, MAX_HEAD, 1);
    one(data, size, SMALL_HEAD, 0); /* a limit small inputs reach */
    return 0;
}
