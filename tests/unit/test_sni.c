/* Unit tests for proxy/sni.c: real ClientHellos captured from curl,
 * openssl and Chromium (tests/unit/data/clienthello, see its README), the
 * same hellos cut into prefixes and re-framed into many small records,
 * hand-made hostile hellos, and random input. Every input is copied so
 * that it ends right before an unmapped page: an over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sni.h"

#define CATALOG_MAX_HOST_FOR_TEST 253

/* --- guard-page copies -------------------------------------------------- */

struct guarded {
    uint8_t *map;
    size_t maplen;
    uint8_t *p; /* the copy; p + len is the first byte of a PROT_NONE page */
};

static struct guarded
guard_copy(const uint8_t *src, size_t len)
{
    struct guarded g;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    g.maplen = (data_pages + 1) * page;
    g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + data_pages * page, page, PROT_NONE), 0);
    g.p = g.map + data_pages * page - len;
    if (len > 0)
        memcpy(g.p, src, len);
    return g;
}

static void
guard_free(struct guarded *g)
{
    munmap(g->map, g->maplen);
}

static enum sni_status
parse_guarded(const uint8_t *p, size_t len, struct sni_info *info)
{
    struct guarded g = guard_copy(p, len);
    enum sni_status st = sni_parse(g.p, len, info);
    guard_free(&g);
    return st;
}

/* --- byte buffers -------------------------------------------------------- */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void
put(struct buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n)
            ncap *= 2;
        b->p = realloc(b->p, ncap);
        assert_non_null(b->p);
        b->cap = ncap;
    }
    if (n > 0)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void
put8(struct buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void
put16(struct buf *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v);
}

static void
put24(struct buf *b, unsigned long v)
{
    put8(b, (unsigned)(v >> 16));
    put8(b, (unsigned)(v >> 8));
    put8(b, (unsigned)v);
}

static void
buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* --- captured hellos ----------------------------------------------------- */

/* Reads a data file; tests run from the repository root (make unit), but
 * also work from tests/unit or anywhere below the root. */
static uint8_t *
load_data(const char *name, size_t *len)
{
    static const char *const prefixes[] = {"tests/unit/data/clienthello/", "data/clienthello/",
                                           "../tests/unit/data/clienthello/",
                                           "../../tests/unit/data/clienthello/",
                                           "../../../tests/unit/data/clienthello/"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s%s", prefixes[i], name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        struct buf b = {0};
        uint8_t chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            put(&b, chunk, n);
        fclose(f);
        *len = b.len;
        return b.p;
    }
    fail_msg("cannot find %s (run from the repository root)", name);
    return NULL;
}

struct capture {
    const char *file;
    const char *sni; /* "" when absent */
    const char *alpn;
    int ech;
    size_t min_len; /* sanity bound on the file size */
};

static const struct capture captures[] = {
    {"curl-facebook-h2.bin", "www.facebook.com", "h2", 0, 300},
    {"openssl-linkedin.bin", "www.linkedin.com", "", 0, 200},
    {"openssl-nosni.bin", "", "", 0, 200},
    {"chromium-tiktok.bin", "www.tiktok.com", "h2", 1, 1500},
    {"chromium-tiktok-2records.bin", "www.tiktok.com", "h2", 1, 1500},
};
#define NCAPTURES (sizeof(captures) / sizeof(captures[0]))

static enum sni_status
expected(const struct capture *c)
{
    return c->sni[0] ? SNI_OK : SNI_NO_SNI;
}

static void
check_info(const struct capture *c, const struct sni_info *info)
{
    assert_string_equal(info->sni, c->sni);
    assert_int_equal(info->has_sni, c->sni[0] != '\0');
    assert_string_equal(info->alpn, c->alpn);
    assert_int_equal(info->has_alpn, c->alpn[0] != '\0');
    assert_int_equal(info->ech, c->ech);
}

/* The handshake bytes of a sequence of records. */
static struct buf
handshake_of(const uint8_t *p, size_t len)
{
    struct buf hs = {0};
    size_t pos = 0;
    while (pos + 5 <= len) {
        size_t rlen = (size_t)p[pos + 3] << 8 | p[pos + 4];
        assert_true(pos + 5 + rlen <= len);
        put(&hs, p + pos + 5, rlen);
        pos += 5 + rlen;
    }
    assert_int_equal(pos, len);
    return hs;
}

/* Frames handshake bytes into records; size(i) gives the i-th record's
 * length. */
static struct buf
reframe(const uint8_t *hs, size_t len, size_t (*size)(size_t i, void *arg), void *arg)
{
    struct buf out = {0};
    size_t pos = 0;
    for (size_t i = 0; pos < len; i++) {
        size_t n = size(i, arg);
        if (n > len - pos)
            n = len - pos;
        put8(&out, 22);
        put16(&out, 0x0301);
        put16(&out, (unsigned)n);
        put(&out, hs + pos, n);
        pos += n;
    }
    return out;
}

static size_t
fixed_size(size_t i, void *arg)
{
    (void)i;
    return *(size_t *)arg;
}

static uint32_t rng_state = 0x9e3779b9u;

static uint32_t
rng(void)
{
    /* xorshift32: reproducible across libcs, unlike rand(). */
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static size_t
random_size(size_t i, void *arg)
{
    (void)i;
    size_t max = *(size_t *)arg;
    return 1 + rng() % max;
}

static void
test_captures_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCAPTURES; i++) {
        const struct capture *c = &captures[i];
        size_t len;
        uint8_t *p = load_data(c->file, &len);
        assert_true(len >= c->min_len);
        struct sni_info info;
        enum sni_status st = parse_guarded(p, len, &info);
        if (st != expected(c))
            fail_msg("%s: %s", c->file, sni_strstatus(st));
        check_info(c, &info);
        assert_int_equal(info.consumed, len);
        free(p);
    }
}

/* Bytes after the hello (the client's next flight, or junk) are not part
 * of it: consumed stops at the hello's last record. */
static void
test_captures_trailing_bytes(void **state)
{
    (void)state;
    static const uint8_t more[] = {20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 2, 'h', 'i'};
    for (size_t i = 0; i < NCAPTURES; i++) {
        const struct capture *c = &captures[i];
        size_t len;
        uint8_t *p = load_data(c->file, &len);
        struct buf b = {0};
        put(&b, p, len);
        put(&b, more, sizeof(more));
        struct sni_info info;
        assert_int_equal(parse_guarded(b.p, b.len, &info), expected(c));
        check_info(c, &info);
        assert_int_equal(info.consumed, len);
        buf_free(&b);
        free(p);
    }
}

static void
test_captures_every_prefix(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCAPTURES; i++) {
        const struct capture *c = &captures[i];
        size_t len;
        uint8_t *p = load_data(c->file, &len);
        for (size_t n = 0; n < len; n++) {
            struct sni_info info;
            enum sni_status st = parse_guarded(p, n, &info);
            if (st != SNI_PARTIAL)
                fail_msg("%s: prefix of %zu/%zu bytes: %s", c->file, n, len,
                         sni_strstatus(st));
        }
        free(p);
    }
}

/* The same handshake in records of 1..50 bytes (fixed and random sizes)
 * gives the same answer, whole, and partial for every prefix. */
static void
test_captures_reframed(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCAPTURES; i++) {
        const struct capture *c = &captures[i];
        size_t len;
        uint8_t *p = load_data(c->file, &len);
        struct buf hs = handshake_of(p, len);
        for (size_t sz = 1; sz <= 50; sz++) {
            for (int rnd = 0; rnd < 2; rnd++) {
                struct buf r = reframe(hs.p, hs.len, rnd ? random_size : fixed_size, &sz);
                struct sni_info info;
                enum sni_status st = parse_guarded(r.p, r.len, &info);
                if (st != expected(c))
                    fail_msg("%s: %s records of %zu: %s", c->file, rnd ? "random" : "fixed",
                             sz, sni_strstatus(st));
                check_info(c, &info);
                assert_int_equal(info.consumed, r.len);
                /* Prefixes of a few framings (all of them would be slow). */
                if (sz == 1 || sz == 7 || sz == 50) {
                    for (size_t n = 0; n < r.len; n += (sz == 1 ? 3 : 1)) {
                        st = parse_guarded(r.p, n, &info);
                        if (st != SNI_PARTIAL)
                            fail_msg("%s: records of %zu, prefix %zu/%zu: %s", c->file, sz, n,
                                     r.len, sni_strstatus(st));
                    }
                }
                buf_free(&r);
            }
        }
        buf_free(&hs);
        free(p);
    }
}

/* --- hand-made hellos ---------------------------------------------------- */

/* A TLS 1.2-style ClientHello body around the given extensions block
 * (ext == NULL: no extensions block at all). */
static struct buf
hello_body(const struct buf *ext)
{
    struct buf b = {0};
    put16(&b, 0x0303);
    for (int i = 0; i < 32; i++)
        put8(&b, (unsigned)i);
    put8(&b, 0);         /* session id */
    put16(&b, 4);        /* cipher suites */
    put16(&b, 0x1301);
    put16(&b, 0x1302);
    put8(&b, 1);         /* compression methods */
    put8(&b, 0);
    if (ext) {
        put16(&b, (unsigned)ext->len);
        put(&b, ext->p, ext->len);
    }
    return b;
}

/* One record holding one handshake message of type `type`. */
static struct buf
record_of(unsigned type, const struct buf *body)
{
    struct buf r = {0};
    put8(&r, 22);
    put16(&r, 0x0301);
    put16(&r, (unsigned)(body->len + 4));
    put8(&r, type);
    put24(&r, body->len);
    put(&r, body->p, body->len);
    return r;
}

static void
ext_add(struct buf *ext, unsigned type, const struct buf *data)
{
    put16(ext, type);
    put16(ext, (unsigned)data->len);
    put(ext, data->p, data->len);
}

static void
ext_sni(struct buf *ext, const char *host, size_t n)
{
    struct buf d = {0};
    put16(&d, (unsigned)(n + 3));
    put8(&d, 0);
    put16(&d, (unsigned)n);
    put(&d, host, n);
    ext_add(ext, 0, &d);
    buf_free(&d);
}

static enum sni_status
parse_exts(const struct buf *ext, struct sni_info *info)
{
    struct buf body = hello_body(ext);
    struct buf rec = record_of(1, &body);
    enum sni_status st = parse_guarded(rec.p, rec.len, info);
    buf_free(&rec);
    buf_free(&body);
    return st;
}

static void
test_made_ok(void **state)
{
    (void)state;
    struct sni_info info;

    /* No extensions at all (an SSLv3-era hello): fine, nothing found. */
    struct buf body = hello_body(NULL);
    struct buf rec = record_of(1, &body);
    assert_int_equal(parse_guarded(rec.p, rec.len, &info), SNI_NO_SNI);
    assert_int_equal(info.has_sni, 0);
    assert_int_equal(info.consumed, rec.len);
    buf_free(&rec);
    buf_free(&body);

    /* Empty extensions block. */
    struct buf ext = {0};
    assert_int_equal(parse_exts(&ext, &info), SNI_NO_SNI);

    /* SNI, ALPN with two protocols (first one reported), ECH. */
    ext_sni(&ext, "Mixed.Case.example", 18);
    struct buf d = {0};
    put16(&d, 12);
    put8(&d, 8);
    put(&d, "http/1.1", 8);
    put8(&d, 2);
    put(&d, "h2", 2);
    ext_add(&ext, 16, &d);
    buf_free(&d);
    ext_add(&ext, 0xfe0d, &d); /* empty ECH: only its presence counts */
    assert_int_equal(parse_exts(&ext, &info), SNI_OK);
    assert_string_equal(info.sni, "Mixed.Case.example");
    assert_string_equal(info.alpn, "http/1.1");
    assert_int_equal(info.ech, 1);
    buf_free(&ext);

    /* The longest host name there can be. */
    char host[254];
    for (size_t i = 0; i < 253; i++)
        host[i] = (i % 64 == 63) ? '.' : 'a';
    host[253] = '\0';
    ext_sni(&ext, host, 253);
    assert_int_equal(parse_exts(&ext, &info), SNI_OK);
    assert_string_equal(info.sni, host);
    buf_free(&ext);

    /* The first host_name entry wins; other name types are skipped. */
    put16(&d, 3 + 4 + 3 + 5);
    put8(&d, 7); /* unknown name type */
    put16(&d, 4);
    put(&d, "xxxx", 4);
    put8(&d, 0);
    put16(&d, 5);
    put(&d, "a.com", 5);
    ext_add(&ext, 0, &d);
    buf_free(&d);
    assert_int_equal(parse_exts(&ext, &info), SNI_OK);
    assert_string_equal(info.sni, "a.com");
    buf_free(&ext);

    /* An ALPN protocol with control bytes is shown with '?'. */
    put16(&d, 4);
    put8(&d, 3);
    put(&d, "h\001 ", 3);
    ext_add(&ext, 16, &d);
    buf_free(&d);
    assert_int_equal(parse_exts(&ext, &info), SNI_NO_SNI);
    assert_string_equal(info.alpn, "h??");
    buf_free(&ext);

    /* A first ALPN protocol too long to report leaves ALPN unset: the
     * second one is not the client's first choice. */
    put16(&d, 1 + 64 + 1 + 2);
    put8(&d, 64);
    for (int i = 0; i < 64; i++)
        put8(&d, 'x');
    put8(&d, 2);
    put(&d, "h2", 2);
    ext_add(&ext, 16, &d);
    buf_free(&d);
    assert_int_equal(parse_exts(&ext, &info), SNI_NO_SNI);
    assert_int_equal(info.has_alpn, 0);
    assert_string_equal(info.alpn, "");
    buf_free(&ext);
}

static void
expect_status(const uint8_t *p, size_t len, enum sni_status want, const char *what)
{
    struct sni_info info;
    enum sni_status st = parse_guarded(p, len, &info);
    if (st != want)
        fail_msg("%s: got %s, want %s", what, sni_strstatus(st), sni_strstatus(want));
}

static void
test_not_tls(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "GET / HTTP/1.1\r\nHost: www.facebook.com\r\n\r\n",
        "CONNECT www.facebook.com:443 HTTP/1.1\r\n\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n",
        "\x80\x2e\x01\x00\x02", /* SSLv2 hello */
        "\x16\x02\x00",        /* wrong major version */
        "\x17\x03\x03\x00\x05hello", /* application data first */
        "\x14\x02",                    /* a CCS type, then no major version 3 */
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        expect_status((const uint8_t *)texts[i], strlen(texts[i]), SNI_NOT_TLS, texts[i]);
    expect_status((const uint8_t *)"G", 1, SNI_NOT_TLS, "one byte");
    /* Too few bytes to tell. */
    expect_status((const uint8_t *)"", 0, SNI_PARTIAL, "empty");
    expect_status((const uint8_t *)"\x16", 1, SNI_PARTIAL, "0x16");
    expect_status((const uint8_t *)"\x16\x03\x01\x00", 4, SNI_PARTIAL, "header prefix");
}

static void
test_record_framing(void **state)
{
    (void)state;
    /* Record length 0: skipped, as OpenSSL does. */
    expect_status((const uint8_t *)"\x16\x03\x01\x00\x00", 5, SNI_PARTIAL, "rlen 0");
    /* Record length over 16384 + 2048, known from the header alone. */
    expect_status((const uint8_t *)"\x16\x03\x01\x48\x01", 5, SNI_INVALID, "rlen 18433");
    expect_status((const uint8_t *)"\x16\x03\x01\xff\xff", 5, SNI_INVALID, "rlen 65535");
    expect_status((const uint8_t *)"\x16\x03\x01\x48\x00", 5, SNI_PARTIAL, "rlen 18432");

    /* Handshake type other than client_hello (1). */
    static const uint8_t server_hello[] = {22, 3, 3, 0, 4, 2, 0, 0, 0};
    expect_status(server_hello, sizeof(server_hello), SNI_INVALID, "server hello");
    static const uint8_t type0_split[] = {22, 3, 3, 0, 1, 0};
    expect_status(type0_split, sizeof(type0_split), SNI_INVALID, "type 0 in 1-byte record");

    /* Handshake lengths beyond what the peek accepts, or too small. */
    static const uint8_t huge[] = {22, 3, 1, 0, 4, 1, 0x02, 0x01, 0x45};
    expect_status(huge, sizeof(huge), SNI_INVALID, "hs len 131397");
    static const uint8_t over64k[] = {22, 3, 1, 0, 4, 1, 0x02, 0x01, 0x44};
    expect_status(over64k, sizeof(over64k), SNI_PARTIAL, "hs len 131396");
    static const uint8_t huge2[] = {22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff};
    expect_status(huge2, sizeof(huge2), SNI_INVALID, "hs len 2^24-1");
    static const uint8_t tiny[] = {22, 3, 1, 0, 4, 1, 0, 0, 10};
    expect_status(tiny, sizeof(tiny), SNI_INVALID, "hs len 10");
    static const uint8_t big_ok[] = {22, 3, 1, 0, 4, 1, 0x00, 0xff, 0xfc};
    expect_status(big_ok, sizeof(big_ok), SNI_PARTIAL, "hs len 65532");

    /* A second record that is not a handshake while the hello is
     * incomplete. */
    struct buf body = hello_body(NULL);
    struct buf rec = record_of(1, &body);
    struct buf two = {0};
    size_t cut = 20;
    put8(&two, 22);
    put16(&two, 0x0301);
    put16(&two, (unsigned)(cut - 5));
    put(&two, rec.p + 5, cut - 5);
    struct buf bad = {0};
    put(&bad, two.p, two.len);
    put8(&bad, 23); /* application data */
    put16(&bad, 0x0303);
    put16(&bad, (unsigned)(rec.len - cut));
    put(&bad, rec.p + cut, rec.len - cut);
    expect_status(bad.p, bad.len, SNI_INVALID, "second record type 23");
    bad.p[two.len] = 24; /* heartbeat */
    expect_status(bad.p, bad.len, SNI_INVALID, "second record type 24");
    bad.p[two.len] = 20; /* change_cipher_spec: skipped, the hello is unfinished */
    expect_status(bad.p, bad.len, SNI_PARTIAL, "second record type 20");
    bad.p[two.len] = 22;
    bad.p[two.len + 1] = 2; /* bad version in a later record */
    expect_status(bad.p, bad.len, SNI_INVALID, "second record version 2");
    bad.p[two.len + 1] = 3;
    expect_status(bad.p, bad.len, SNI_NO_SNI, "second record repaired");
    /* A second record of length 0. */
    struct buf zero = {0};
    put(&zero, two.p, two.len);
    put(&zero, "\x16\x03\x03\x00\x00", 5);
    expect_status(zero.p, zero.len, SNI_PARTIAL, "second record empty");
    buf_free(&zero);
    buf_free(&bad);
    buf_free(&two);
    buf_free(&rec);
    buf_free(&body);
}

static void
test_bad_hello_body(void **state)
{
    (void)state;
    struct buf body = hello_body(NULL);
    struct buf rec;

    /* Body version 2.x. */
    body.p[0] = 2;
    rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "body version");
    buf_free(&rec);
    body.p[0] = 3;

    /* Session id longer than 32. */
    body.p[34] = 33;
    rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "session id 33");
    buf_free(&rec);
    body.p[34] = 0;

    /* Odd and empty cipher suite lists. */
    body.p[36] = 3;
    rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "odd suites");
    buf_free(&rec);
    body.p[36] = 0;
    rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "no suites");
    buf_free(&rec);
    body.p[36] = 4;

    /* No compression method. */
    body.p[41] = 0;
    rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "no compression");
    buf_free(&rec);
    body.p[41] = 1;

    /* One stray byte where the extensions length would be. */
    put8(&body, 0);
    rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "stray byte");
    buf_free(&rec);
    buf_free(&body);
}

static void
test_bad_extensions(void **state)
{
    (void)state;
    struct sni_info info;
    struct buf ext = {0}, d = {0};

    /* An extension longer than the block. */
    put16(&ext, 0);
    put16(&ext, 100);
    put(&ext, "abc", 3);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&ext);

    /* A truncated extension header. */
    put16(&ext, 0);
    put8(&ext, 0);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&ext);

    /* The extensions length disagrees with what follows. */
    ext_sni(&ext, "a.com", 5);
    struct buf body = hello_body(&ext);
    size_t at = body.len - ext.len - 2;
    body.p[at + 1]++;
    struct buf rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "ext block longer");
    buf_free(&rec);
    body.p[at + 1] -= 2;
    rec = record_of(1, &body);
    expect_status(rec.p, rec.len, SNI_INVALID, "ext block shorter");
    buf_free(&rec);
    buf_free(&body);
    buf_free(&ext);

    /* SNI list length mismatches (too long, too short). */
    for (int delta = -1; delta <= 1; delta += 2) {
        put16(&d, (unsigned)(3 + 5 + delta));
        put8(&d, 0);
        put16(&d, 5);
        put(&d, "a.com", 5);
        ext_add(&ext, 0, &d);
        assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
        buf_free(&d);
        buf_free(&ext);
    }
    /* Name length past the list. */
    put16(&d, 3 + 5);
    put8(&d, 0);
    put16(&d, 6);
    put(&d, "a.com", 5);
    ext_add(&ext, 0, &d);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&d);
    buf_free(&ext);
    /* Extension too short for its list length. */
    put8(&d, 0);
    ext_add(&ext, 0, &d);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&d);
    buf_free(&ext);

    /* Names are reported as sent; sni_normalize judges them. */
    static const char *const raw_hosts[] = {"face book.com", "a/b.com", "a:443", "caf\xc3\xa9.fr",
                                            "x\r\nHost: y", "a%2e.com"};
    for (size_t i = 0; i < sizeof(raw_hosts) / sizeof(raw_hosts[0]); i++) {
        ext_sni(&ext, raw_hosts[i], strlen(raw_hosts[i]));
        if (parse_exts(&ext, &info) != SNI_OK || strcmp(info.sni, raw_hosts[i]) != 0)
            fail_msg("SNI '%s' not reported as sent", raw_hosts[i]);
        assert_int_equal(info.sni_len, strlen(raw_hosts[i]));
        buf_free(&ext);
    }
    /* What servers refuse: a NUL, over 255 bytes, two host names, two
     * server_name extensions. Empty: no name. */
    ext_sni(&ext, "a\0b.com", 7);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&ext);
    ext_sni(&ext, "", 0);
    assert_int_equal(parse_exts(&ext, &info), SNI_NO_SNI);
    buf_free(&ext);
    char host[300];
    memset(host, 'a', sizeof(host));
    ext_sni(&ext, host, 255);
    assert_int_equal(parse_exts(&ext, &info), SNI_OK);
    buf_free(&ext);
    ext_sni(&ext, host, 256);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&ext);
    put16(&d, 3 + 5 + 3 + 16);
    put8(&d, 0);
    put16(&d, 5);
    put(&d, "a.com", 5);
    put8(&d, 0);
    put16(&d, 16);
    put(&d, "www.facebook.com", 16);
    ext_add(&ext, 0, &d);
    buf_free(&d);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&ext);
    ext_sni(&ext, "a.com", 5);
    ext_sni(&ext, "www.facebook.com", 16);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&ext);

    /* ALPN: empty list, empty protocol, mismatched list length. */
    put16(&d, 0);
    ext_add(&ext, 16, &d);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&d);
    buf_free(&ext);
    ext_add(&ext, 16, &d); /* no list length at all */
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&ext);
    put16(&d, 1);
    put8(&d, 0);
    ext_add(&ext, 16, &d);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&d);
    buf_free(&ext);
    put16(&d, 4);
    put8(&d, 2);
    put(&d, "h2", 2);
    ext_add(&ext, 16, &d);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&d);
    buf_free(&ext);
    put16(&d, 3);
    put8(&d, 3);
    put(&d, "h2", 2);
    ext_add(&ext, 16, &d);
    assert_int_equal(parse_exts(&ext, &info), SNI_INVALID);
    buf_free(&d);
    buf_free(&ext);
}

/* Random bytes, random bytes behind a plausible header, and real hellos
 * with random damage: no crash, no over-read, sane results. */
static void
test_fuzz(void **state)
{
    (void)state;
    size_t clen;
    uint8_t *cap = load_data("curl-facebook-h2.bin", &clen);
    uint8_t in[2048];
    rng_state = 12345;
    for (int iter = 0; iter < 10000; iter++) {
        size_t len;
        int mode = iter % 3;
        if (mode == 0) {
            len = rng() % 600;
            for (size_t i = 0; i < len; i++)
                in[i] = (uint8_t)rng();
        } else if (mode == 1) {
            len = 9 + rng() % 600;
            for (size_t i = 0; i < len; i++)
                in[i] = (uint8_t)rng();
            in[0] = 22;
            in[1] = 3;
            in[3] = (uint8_t)((len - 5) >> 8);
            in[4] = (uint8_t)(len - 5);
            in[5] = 1;
            in[6] = 0;
            in[7] = (uint8_t)((len - 9) >> 8);
            in[8] = (uint8_t)(len - 9);
            in[9] = 3;
        } else {
            len = clen;
            memcpy(in, cap, clen);
            int flips = 1 + (int)(rng() % 4);
            for (int k = 0; k < flips; k++)
                in[5 + rng() % (clen - 5)] ^= (uint8_t)(1u << (rng() % 8));
            if (rng() % 4 == 0)
                len = rng() % clen;
        }
        struct sni_info info;
        enum sni_status st = parse_guarded(in, len, &info);
        assert_true(st == SNI_OK || st == SNI_NO_SNI || st == SNI_PARTIAL || st == SNI_NOT_TLS ||
                    st == SNI_INVALID);
        if (st == SNI_OK || st == SNI_NO_SNI) {
            assert_true(info.consumed <= len);
            assert_true(strlen(info.sni) < sizeof(info.sni));
            assert_true(strlen(info.alpn) < sizeof(info.alpn));
            assert_int_equal(info.has_sni, info.sni[0] != '\0');
        }
    }
    free(cap);
}

static void
test_strstatus(void **state)
{
    (void)state;
    assert_string_equal(sni_strstatus(SNI_OK), "ok");
    assert_string_equal(sni_strstatus(SNI_PARTIAL), "partial");
    assert_string_equal(sni_strstatus(SNI_NOT_TLS), "not-tls");
    assert_string_equal(sni_strstatus(SNI_INVALID), "invalid");
    assert_string_equal(sni_strstatus(SNI_NO_SNI), "no-sni");
}

/* --- what TLS stacks accept around and across hellos ---------------------- */

/* Feeds p to a parser in pieces of `step` bytes (0: random 1..64), as the
 * tunnel does, collecting every verdict; returns the last one. */
static enum sni_status
feed_pieces(const uint8_t *p, size_t len, size_t step, struct sni_info *last, int *verdicts)
{
    struct sni_parser s;
    sni_init(&s);
    enum sni_status st = SNI_PARTIAL;
    size_t pos = 0;
    *verdicts = 0;
    while (pos < len) {
        size_t n = step ? step : 1 + rng() % 64;
        if (n > len - pos)
            n = len - pos;
        struct guarded g = guard_copy(p + pos, n);
        size_t off = 0;
        while (off < n) {
            size_t used;
            struct sni_info info;
            st = sni_feed(&s, g.p + off, n - off, &used, &info);
            assert_true(used <= n - off);
            off += used;
            if (st == SNI_OK || st == SNI_NO_SNI) {
                *last = info;
                ++*verdicts;
                continue;
            }
            if (st != SNI_PARTIAL)
                break;
            assert_int_equal(off, n); /* PARTIAL takes everything */
        }
        guard_free(&g);
        if (st == SNI_INVALID || st == SNI_NOT_TLS)
            break;
        pos += n;
    }
    sni_free(&s);
    return st;
}

static struct buf
capture_hello(const char *file)
{
    size_t len;
    uint8_t *p = load_data(file, &len);
    struct buf b = {0};
    put(&b, p, len);
    free(p);
    return b;
}

/* Records with no handshake byte before the hello: an empty handshake
 * record, ChangeCipherSpec, a warning alert. OpenSSL reads past them, so
 * the hello behind them is what counts. Application data first is not
 * TLS a server takes. */
static void
test_records_before_hello(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        enum sni_status want;
    } pre[] = {
        {"empty handshake record", "\x16\x03\x01\x00\x00", 5, SNI_OK},
        {"two empty records", "\x16\x03\x01\x00\x00\x16\x03\x03\x00\x00", 10, SNI_OK},
        {"change_cipher_spec", "\x14\x03\x01\x00\x01\x01", 6, SNI_OK},
        {"warning alert", "\x15\x03\x01\x00\x02\x01\x5a", 7, SNI_OK},
        {"application data", "\x17\x03\x03\x00\x01\x00", 6, SNI_NOT_TLS},
        {"heartbeat", "\x18\x03\x03\x00\x01\x00", 6, SNI_NOT_TLS},
        {"alert, then application data", "\x15\x03\x01\x00\x02\x01\x5a\x17\x03\x03\x00\x01\x00",
         13, SNI_INVALID},
    };
    struct buf hello = capture_hello("curl-facebook-h2.bin");
    for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
        struct buf b = {0};
        put(&b, pre[i].bytes, pre[i].len);
        put(&b, hello.p, hello.len);
        struct sni_info info;
        enum sni_status st = parse_guarded(b.p, b.len, &info);
        if (st != pre[i].want)
            fail_msg("%s: %s", pre[i].what, sni_strstatus(st));
        if (st == SNI_OK) {
            assert_string_equal(info.sni, "www.facebook.com");
            assert_int_equal(info.consumed, b.len);
        }
        buf_free(&b);
    }
    buf_free(&hello);
}

/* A ClientHello over 64 KiB (OpenSSL takes up to 131396 bytes: a long
 * cipher suite list and long extensions), in records of 16 KiB fed in
 * pieces of 4 KiB. A declared length over the limit is refused as soon as
 * it is read (test_record_framing). */
static void
test_big_hello(void **state)
{
    (void)state;
    struct buf body = {0}, ext = {0}, d = {0};
    put16(&body, 0x0303);
    for (int i = 0; i < 32; i++)
        put8(&body, 0);
    put8(&body, 32); /* session id */
    for (int i = 0; i < 32; i++)
        put8(&body, 7);
    put16(&body, 40000); /* cipher suites */
    for (unsigned i = 0; i < 20000; i++)
        put16(&body, 0x1301 + (i % 3));
    put8(&body, 1);
    put8(&body, 0);
    for (size_t i = 0; i < 60000; i++)
        put8(&d, 0xaa);
    ext_add(&ext, 21, &d); /* padding */
    ext_sni(&ext, "www.facebook.com", 16);
    put16(&body, (unsigned)ext.len);
    put(&body, ext.p, ext.len);
    assert_true(body.len > 65536 && body.len <= SNI_MAX_HELLO);
    struct buf hs = {0};
    put8(&hs, 1);
    put24(&hs, body.len);
    put(&hs, body.p, body.len);
    size_t sz = 16384;
    struct buf rec = reframe(hs.p, hs.len, fixed_size, &sz);
    struct sni_info info;
    int verdicts;
    assert_int_equal(feed_pieces(rec.p, rec.len, 4096, &info, &verdicts), SNI_OK);
    assert_int_equal(verdicts, 1);
    assert_string_equal(info.sni, "www.facebook.com");
    assert_int_equal(info.consumed, rec.len);
    buf_free(&rec);
    buf_free(&hs);
    buf_free(&d);
    buf_free(&ext);
    buf_free(&body);
}

/* Fed byte by byte, in random pieces and whole: the same verdicts. Each
 * byte is taken once (incremental), so a large hello in 1-byte records
 * sent 1 byte at a time costs no more than in one piece. */
static void
test_incremental(void **state)
{
    (void)state;
    rng_state = 777;
    for (size_t i = 0; i < NCAPTURES; i++) {
        const struct capture *c = &captures[i];
        struct buf hello = capture_hello(c->file);
        struct buf hs = handshake_of(hello.p, hello.len);
        size_t one = 1;
        struct buf tiny = reframe(hs.p, hs.len, fixed_size, &one);
        const struct buf *inputs[] = {&hello, &tiny};
        for (size_t k = 0; k < 2; k++) {
            for (size_t step = 0; step <= 3; step++) {
                struct sni_info info;
                int verdicts;
                enum sni_status st = feed_pieces(inputs[k]->p, inputs[k]->len, step, &info,
                                                 &verdicts);
                assert_int_equal(verdicts, 1);
                assert_int_equal(st, expected(c));
                check_info(c, &info);
                assert_int_equal(info.consumed, inputs[k]->len);
            }
        }
        buf_free(&tiny);
        buf_free(&hs);
        buf_free(&hello);
    }
}

/* After a HelloRetryRequest the client sends ChangeCipherSpec and a second
 * hello (RFC 8446 4.1.4), which may name another server: both are
 * reported in turn, whatever the pieces. Early data between them is
 * skipped; a message other than a ClientHello is refused. */
static void
test_second_hello(void **state)
{
    (void)state;
    struct buf first = {0}, second = {0}, stream = {0};
    struct buf ext = {0};
    ext_sni(&ext, "example.test", 12);
    struct buf body = hello_body(&ext);
    first = record_of(1, &body);
    buf_free(&body);
    buf_free(&ext);
    ext_sni(&ext, "www.facebook.com", 16);
    body = hello_body(&ext);
    second = record_of(1, &body);
    buf_free(&body);
    buf_free(&ext);
    put(&stream, first.p, first.len);
    put(&stream, "\x17\x03\x03\x00\x03" "abc", 8); /* early data, skipped */
    put(&stream, "\x14\x03\x03\x00\x01\x01", 6);
    put(&stream, second.p, second.len);
    for (size_t step = 0; step <= 2; step++) {
        struct sni_parser s;
        sni_init(&s);
        const char *names[2] = {NULL, NULL};
        size_t ends[2] = {0, 0};
        char got[2][SNI_MAX_NAME + 1];
        int n = 0;
        size_t pos = 0;
        while (pos < stream.len) {
            size_t len = step ? step : stream.len - pos;
            if (len > stream.len - pos)
                len = stream.len - pos;
            size_t used;
            struct sni_info info;
            enum sni_status st = sni_feed(&s, stream.p + pos, len, &used, &info);
            pos += used;
            assert_true(st == SNI_OK || st == SNI_PARTIAL);
            if (st == SNI_OK) {
                assert_true(n < 2);
                snprintf(got[n], sizeof(got[n]), "%s", info.sni);
                names[n] = got[n];
                ends[n] = info.consumed;
                n++;
                assert_false(sni_pending(&s));
            }
        }
        assert_int_equal(n, 2);
        assert_string_equal(names[0], "example.test");
        assert_string_equal(names[1], "www.facebook.com");
        assert_int_equal(ends[0], first.len);
        assert_int_equal(ends[1], stream.len);
        sni_free(&s);
    }
    /* A Finished (type 20) message instead of a second hello. */
    struct buf bad = {0};
    put(&bad, first.p, first.len);
    put(&bad, "\x16\x03\x03\x00\x05\x14\x00\x00\x01\x00", 10);
    struct sni_parser s;
    sni_init(&s);
    size_t used;
    struct sni_info info;
    assert_int_equal(sni_feed(&s, bad.p, bad.len, &used, &info), SNI_OK);
    assert_int_equal(sni_feed(&s, bad.p + used, bad.len - used, &used, &info), SNI_INVALID);
    assert_int_equal(sni_feed(&s, bad.p, 1, &used, &info), SNI_INVALID); /* sticky */
    sni_free(&s);
    /* Half a second hello is pending: what a client's EOF leaves undecided. */
    sni_init(&s);
    assert_int_equal(sni_feed(&s, stream.p, first.len, &used, &info), SNI_OK);
    assert_false(sni_pending(&s));
    assert_int_equal(sni_feed(&s, second.p, 10, &used, &info), SNI_PARTIAL);
    assert_true(sni_pending(&s));
    sni_free(&s);
    buf_free(&bad);
    buf_free(&stream);
    buf_free(&second);
    buf_free(&first);
}

/* Client bytes held undecided are bounded: a hello in 1-byte records whose
 * stream would exceed SNI_MAX_PEEK is refused. */
static void
test_peek_bound(void **state)
{
    (void)state;
    struct buf hs = {0};
    put8(&hs, 1);
    put24(&hs, 60000);
    for (size_t i = 0; i < 60000; i++)
        put8(&hs, 0);
    hs.p[4] = 3;
    size_t one = 1;
    struct buf rec = reframe(hs.p, hs.len, fixed_size, &one); /* 6 bytes per hello byte */
    struct sni_info info;
    int verdicts;
    assert_int_equal(feed_pieces(rec.p, rec.len, 1000, &info, &verdicts), SNI_INVALID);
    buf_free(&rec);
    buf_free(&hs);
}

/* --- the server's side --------------------------------------------------- */

static struct buf
server_hello(int hrr, size_t extra)
{
    static const uint8_t hrr_random[32] = {
        0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c,
        0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
        0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};
    struct buf body = {0};
    put16(&body, 0x0303);
    if (hrr)
        put(&body, hrr_random, 32);
    else
        for (int i = 0; i < 32; i++)
            put8(&body, 0x42);
    for (size_t i = 0; i < extra; i++)
        put8(&body, 0);
    struct buf r = record_of(2, &body);
    buf_free(&body);
    return r;
}

static enum sni_server_status
server_pieces(const uint8_t *p, size_t len, size_t step, int *hrrs)
{
    struct sni_server s;
    memset(&s, 0, sizeof(s));
    *hrrs = 0;
    size_t pos = 0;
    enum sni_server_status st = SNI_SERVER_PARTIAL;
    while (pos < len && st != SNI_SERVER_DONE) {
        size_t n = step && step < len - pos ? step : len - pos;
        struct guarded g = guard_copy(p + pos, n);
        size_t off = 0;
        while (off < n) {
            size_t used;
            st = sni_server_feed(&s, g.p + off, n - off, &used);
            off += used;
            if (st == SNI_SERVER_HRR)
                ++*hrrs;
            if (st == SNI_SERVER_DONE)
                break;
        }
        guard_free(&g);
        pos += n;
    }
    return st;
}

static void
test_server_hrr(void **state)
{
    (void)state;
    for (size_t step = 0; step <= 3; step++) {
        int hrrs;
        struct buf b = server_hello(1, 40);
        put(&b, "\x14\x03\x03\x00\x01\x01", 6); /* middlebox compatibility CCS */
        assert_int_equal(server_pieces(b.p, b.len, step, &hrrs), SNI_SERVER_PARTIAL);
        assert_int_equal(hrrs, 1);
        struct buf sh = server_hello(0, 40);
        put(&b, sh.p, sh.len);
        assert_int_equal(server_pieces(b.p, b.len, step, &hrrs), SNI_SERVER_DONE);
        assert_int_equal(hrrs, 1);
        /* A plain ServerHello first. */
        assert_int_equal(server_pieces(sh.p, sh.len, step, &hrrs), SNI_SERVER_DONE);
        assert_int_equal(hrrs, 0);
        buf_free(&sh);
        buf_free(&b);
    }
    int hrrs;
    /* An alert, something not TLS, another message type: the hellos are over. */
    assert_int_equal(server_pieces((const uint8_t *)"\x15\x03\x03\x00\x02\x02\x28", 7, 0, &hrrs),
                     SNI_SERVER_DONE);
    assert_int_equal(server_pieces((const uint8_t *)"HTTP/1.1 200 OK\r\n", 17, 1, &hrrs),
                     SNI_SERVER_DONE);
    assert_int_equal(server_pieces((const uint8_t *)"\x16\x03\x03\x00\x04\x0b\x00\x00\x00", 9, 0,
                                   &hrrs),
                     SNI_SERVER_DONE);
    /* Empty records and a short ServerHello. */
    assert_int_equal(server_pieces((const uint8_t *)"\x16\x03\x03\x00\x00", 5, 0, &hrrs),
                     SNI_SERVER_PARTIAL);
    assert_int_equal(server_pieces((const uint8_t *)"\x16\x03\x03\x00\x04\x02\x00\x00\x01", 9, 0,
                                   &hrrs),
                     SNI_SERVER_DONE);
}

/* --- plain HTTP and names ------------------------------------------------- */

static enum sni_status
http_pieces(const char *text, size_t step, struct sni_info *out)
{
    struct sni_http h;
    memset(&h, 0, sizeof(h));
    size_t len = strlen(text), pos = 0;
    enum sni_status st = SNI_PARTIAL;
    while (pos < len && st == SNI_PARTIAL) {
        size_t n = step && step < len - pos ? step : len - pos;
        struct guarded g = guard_copy((const uint8_t *)text + pos, n);
        st = sni_http_feed(&h, g.p, n, out);
        guard_free(&g);
        pos += n;
    }
    sni_http_free(&h);
    return st;
}

static void
test_http(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum sni_status want;
        const char *name;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: www.facebook.com\r\n\r\nbody", SNI_OK, "www.facebook.com"},
        {"GET / HTTP/1.1\r\nHost: www.facebook.com:80\r\n\r\n", SNI_OK, "www.facebook.com:80"},
        {"GET / HTTP/1.1\nHost: a.com\n\n", SNI_INVALID, ""}, /* bare LF: http1.c refuses it */
        {"GET http://www.facebook.com/ HTTP/1.1\r\nHost: www.facebook.com\r\n\r\n", SNI_OK,
         "www.facebook.com"},
        {"GET http://www.facebook.com/ HTTP/1.1\r\nHost: example.test\r\n\r\n", SNI_INVALID, ""},
        {"CONNECT www.facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n\r\n", SNI_OK,
         "www.facebook.com"},
        {"GET / HTTP/1.0\r\n\r\n", SNI_NO_SNI, ""},
        {"GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n", SNI_INVALID, ""},
        {"GET / HTTP/1.1\r\nHost: a.com\r\n", SNI_PARTIAL, ""},
        {"GET / HTTP/1.1\r", SNI_PARTIAL, ""},
        {"ECHO\nhello", SNI_INVALID, ""},
        {"SSH-2.0-OpenSSH_9.2\r\n", SNI_INVALID, ""},
        {"GET / HTTP/2.0\r\n\r\n", SNI_INVALID, ""},
        {"\r\nGET / HTTP/1.1\r\nHost: a.com\r\n\r\n", SNI_INVALID, ""},
        {"GET  / HTTP/1.1\r\n\r\n", SNI_INVALID, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t step = 0; step <= 2; step++) {
            struct sni_info info;
            enum sni_status st = http_pieces(cases[i].text, step, &info);
            if (st != cases[i].want)
                fail_msg("'%s' in pieces of %zu: %s", cases[i].text, step, sni_strstatus(st));
            if (st == SNI_OK) {
                assert_string_equal(info.sni, cases[i].name);
                assert_int_equal(info.http, 1);
            }
        }
    }
    /* Over SNI_MAX_HTTP_HEAD without an end: refused. */
    struct buf b = {0};
    put(&b, "GET / HTTP/1.1\r\nX: ", 19);
    while (b.len <= SNI_MAX_HTTP_HEAD)
        put8(&b, 'a');
    put8(&b, 0);
    struct sni_info info;
    assert_int_equal(http_pieces((const char *)b.p, 1000, &info), SNI_INVALID);
    buf_free(&b);
}

static void
test_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int want; /* length, 0, -1 */
        const char *out;
        int is_ip;
    } cases[] = {
        {"www.facebook.com", 16, "www.facebook.com", 0},
        {"WWW.Facebook.COM.", 16, "www.facebook.com", 0},
        {"www.facebook.com:443", 16, "www.facebook.com", 0},
        {"\xef\xbd\x97\xef\xbd\x97\xef\xbd\x97.facebook.com", 16, "www.facebook.com", 0},
        {"caf\xc3\xa9.fr", 14, "xn--caf-dma.fr", 0},
        {"157.240.1.35", 0, "", 1},
        {"[2a03:2880::1]:443", 0, "", 1},
        {"", 0, "", 0},
        {".", 0, "", 0},
        {"face book.com", -1, "", 0},
        {"a/b.com", -1, "", 0},
        {"a%2e.com", -1, "", 0},
        {"x\r\nHost: y", -1, "", 0},
        {"www.facebook.com:https", -1, "", 0},
        {"\xff\xfe.com", -1, "", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[CATALOG_MAX_HOST_FOR_TEST + 1];
        int is_ip;
        int n = sni_normalize(cases[i].in, strlen(cases[i].in), out, sizeof(out), &is_ip);
        if (n != cases[i].want)
            fail_msg("'%s': %d, want %d", cases[i].in, n, cases[i].want);
        if (n > 0)
            assert_string_equal(out, cases[i].out);
        assert_int_equal(is_ip, cases[i].is_ip);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures_whole),
        cmocka_unit_test(test_captures_trailing_bytes),
        cmocka_unit_test(test_captures_every_prefix),
        cmocka_unit_test(test_captures_reframed),
        cmocka_unit_test(test_made_ok),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_record_framing),
        cmocka_unit_test(test_bad_hello_body),
        cmocka_unit_test(test_bad_extensions),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_strstatus),
        cmocka_unit_test(test_records_before_hello),
        cmocka_unit_test(test_big_hello),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_second_hello),
        cmocka_unit_test(test_peek_bound),
        cmocka_unit_test(test_server_hrr),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_normalize),
    };
    return cmocka_run_group_tests_name("sni", tests, NULL, NULL);
}
