/* The first bytes of a tunnel, read as the proxy reads them: the client's
 * TLS records and every ClientHello in them (sni_feed), a plain HTTP head
 * when they are not TLS (sni_http_feed), and the same bytes as the
 * server's side (sni_server_feed, HelloRetryRequest detection).
 *
 * Checks: names are NUL-terminated within their buffers and as long as
 * said; offsets stay within the input; the parsers are incremental and
 * give the same verdicts, names and offsets whole, in pieces and byte by
 * byte; a first hello that parses is PARTIAL on every shorter prefix;
 * INVALID is final; sni_normalize gives a host name of the catalog's
 * characters that normalises to itself. */
#include <string.h>

#include "catalog.h"
#include "fuzz.h"
#include "sni.h"

#define MAX_VERDICTS 16

struct run {
    int n; /* verdicts (OK or NO_SNI) */
    enum sni_status st[MAX_VERDICTS];
    size_t consumed[MAX_VERDICTS];
    char sni[MAX_VERDICTS][SNI_MAX_NAME + 1];
    enum sni_status last; /* PARTIAL, NOT_TLS or INVALID at the end */
    int pending;
};

static void
check_info(const struct sni_info *in, size_t size)
{
    FUZZ_CHECK(memchr(in->sni, '\0', sizeof(in->sni)) != NULL);
    FUZZ_CHECK(memchr(in->alpn, '\0', sizeof(in->alpn)) != NULL);
    FUZZ_CHECK(in->consumed <= size);
    FUZZ_CHECK(in->sni_len <= SNI_MAX_NAME);
    FUZZ_CHECK(memchr(in->sni, '\0', in->sni_len) == NULL);
    FUZZ_CHECK(in->sni[in->sni_len] == '\0');
    FUZZ_CHECK(in->has_sni == (in->sni_len > 0));
    FUZZ_CHECK(in->has_alpn == (in->alpn[0] != '\0'));
}

static void
check_name(const char *name, size_t len)
{
    char host[CATALOG_MAX_HOST + 1], again[CATALOG_MAX_HOST + 1];
    int is_ip, is_ip2;
    int n = sni_normalize(name, len, host, sizeof(host), &is_ip);
    FUZZ_CHECK(n >= -1 && n < (int)sizeof(host));
    if (n <= 0)
        return;
    FUZZ_CHECK(!is_ip);
    for (int i = 0; i < n; i++)
        FUZZ_CHECK((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= '0' && host[i] <= '9') ||
                   host[i] == '-' || host[i] == '.' || host[i] == '_');
    FUZZ_CHECK(sni_normalize(host, (size_t)n, again, sizeof(again), &is_ip2) == n);
    FUZZ_CHECK(memcmp(host, again, (size_t)n) == 0);
}

/* Feeds data in pieces of `step` bytes (0: all at once; SIZE_MAX: sizes
 * taken from the data itself). */
static void
client_run(const uint8_t *data, size_t size, size_t step, struct run *r)
{
    struct sni_parser s;
    sni_init(&s);
    memset(r, 0, sizeof(*r));
    r->last = SNI_PARTIAL;
    size_t pos = 0, k = 0;
    while (pos < size && r->last == SNI_PARTIAL) {
        size_t n = step == 0          ? size - pos
                   : step == SIZE_MAX ? (size_t)(1 + data[k++ % size] % 97)
                                      : step;
        if (n > size - pos)
            n = size - pos;
        uint8_t *piece = fuzz_memdup(data + pos, n);
        size_t off = 0;
        while (off < n) {
            size_t used;
            struct sni_info info;
            enum sni_status st = sni_feed(&s, piece + off, n - off, &used, &info);
            FUZZ_CHECK(used <= n - off);
            off += used;
            if (st == SNI_OK || st == SNI_NO_SNI) {
                check_info(&info, size);
                FUZZ_CHECK(info.consumed == pos + off);
                FUZZ_CHECK((st == SNI_OK) == info.has_sni);
                if (r->n < MAX_VERDICTS) {
                    r->st[r->n] = st;
                    r->consumed[r->n] = info.consumed;
                    memcpy(r->sni[r->n], info.sni, sizeof(info.sni));
                }
                r->n++;
                if (st == SNI_OK)
                    check_name(info.sni, info.sni_len);
                continue;
            }
            if (st == SNI_PARTIAL) {
                FUZZ_CHECK(off == n);
                continue;
            }
            FUZZ_CHECK(st == SNI_NOT_TLS || st == SNI_INVALID);
            FUZZ_CHECK(st != SNI_NOT_TLS || pos + off < 2);
            /* final: every later call says the same */
            FUZZ_CHECK(sni_feed(&s, piece, n, &used, &info) == st);
            r->last = st;
            break;
        }
        free(piece);
        pos += n;
    }
    r->pending = r->last == SNI_PARTIAL && sni_pending(&s);
    sni_free(&s);
}

static void
same_runs(const struct run *a, const struct run *b)
{
    FUZZ_CHECK(a->n == b->n);
    FUZZ_CHECK(a->last == b->last);
    FUZZ_CHECK(a->pending == b->pending);
    for (int i = 0; i < a->n && i < MAX_VERDICTS; i++) {
        FUZZ_CHECK(a->st[i] == b->st[i]);
        FUZZ_CHECK(a->consumed[i] == b->consumed[i]);
        FUZZ_CHECK(strcmp(a->sni[i], b->sni[i]) == 0);
    }
}

static enum sni_status
http_run(const uint8_t *data, size_t size, size_t step, struct sni_info *out)
{
    struct sni_http h;
    memset(&h, 0, sizeof(h));
    enum sni_status st = SNI_PARTIAL;
    memset(out, 0, sizeof(*out));
    for (size_t pos = 0; pos < size && st == SNI_PARTIAL;) {
        size_t n = step == 0 || step > size - pos ? size - pos : step;
        uint8_t *piece = fuzz_memdup(data + pos, n);
        st = sni_http_feed(&h, piece, n, out);
        free(piece);
        pos += n;
    }
    FUZZ_CHECK(st != SNI_NOT_TLS);
    if (st == SNI_OK || st == SNI_NO_SNI) {
        check_info(out, size);
        FUZZ_CHECK(out->http == 1);
        FUZZ_CHECK(out->consumed > 0 && out->consumed <= size);
        if (st == SNI_OK)
            check_name(out->sni, out->sni_len);
    }
    if (st != SNI_PARTIAL) { /* final */
        struct sni_info again;
        FUZZ_CHECK(sni_http_feed(&h, data, size ? 1 : 0, &again) == SNI_INVALID || size == 0);
    }
    sni_http_free(&h);
    return st;
}

static enum sni_server_status
server_run(const uint8_t *data, size_t size, size_t step, int *hrrs)
{
    struct sni_server s;
    memset(&s, 0, sizeof(s));
    enum sni_server_status st = SNI_SERVER_PARTIAL;
    *hrrs = 0;
    for (size_t pos = 0; pos < size && st != SNI_SERVER_DONE;) {
        size_t n = step == 0 || step > size - pos ? size - pos : step;
        uint8_t *piece = fuzz_memdup(data + pos, n);
        size_t off = 0;
        while (off < n && st != SNI_SERVER_DONE) {
            size_t used;
            st = sni_server_feed(&s, piece + off, n - off, &used);
            FUZZ_CHECK(used <= n - off);
            FUZZ_CHECK(used > 0 || st == SNI_SERVER_DONE);
            off += used;
            if (st == SNI_SERVER_HRR)
                ++*hrrs;
        }
        free(piece);
        pos += n;
    }
    return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, pieces, bytes;
    client_run(data, size, 0, &whole);
    client_run(data, size, SIZE_MAX, &pieces);
    same_runs(&whole, &pieces);
    if (size <= 8192) {
        client_run(data, size, 1, &bytes);
        same_runs(&whole, &bytes);
    }
    (void)sni_strstatus(whole.last);
    if (whole.n > 0) {
        /* The first hello: PARTIAL on shorter prefixes (or already
         * refused as not TLS: never), the same on longer ones. */
        size_t c = whole.consumed[0];
        size_t cuts[] = {0, 1, 5, c / 2, c - 1};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            if (cuts[i] >= c)
                continue;
            uint8_t *pre = fuzz_memdup(data, cuts[i]);
            struct sni_info info;
            FUZZ_CHECK(sni_parse(pre, cuts[i], &info) == SNI_PARTIAL);
            free(pre);
        }
        struct sni_info info;
        FUZZ_CHECK(sni_parse(data, size, &info) == whole.st[0]);
        FUZZ_CHECK(info.consumed == c);
    }
    if (whole.last == SNI_NOT_TLS || size < 2) {
        struct sni_info a, b;
        enum sni_status sa = http_run(data, size, 0, &a);
        enum sni_status sb = http_run(data, size, 1, &b);
        FUZZ_CHECK(sa == sb);
        if (sa == SNI_OK) {
            FUZZ_CHECK(strcmp(a.sni, b.sni) == 0);
            FUZZ_CHECK(a.consumed == b.consumed);
        }
    }
    int h1, h2;
    enum sni_server_status s1 = server_run(data, size, 0, &h1);
    enum sni_server_status s2 = server_run(data, size, 1, &h2);
    FUZZ_CHECK(s1 == s2 && h1 == h2);
    return 0;
}
