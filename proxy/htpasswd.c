#include "htpasswd.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- small helpers ------------------------------------------------------- */

static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Blanks trimmed around lines, as Apache's ap_cfg_getline does (isspace in
 * the C locale). */
static int
is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int
is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Spelled out instead of isalnum: the C library's classes follow the
 * locale, and these alphabets are fixed. */
static int
is_itoa64(unsigned char c)
{
    return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
           (c >= 'a' && c <= 'z');
}

static int
all_itoa64(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_itoa64((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Length of the salt starting at s: up to the next '$', which must come
 * within max characters. Salt bytes are printable ASCII other than '$'
 * and ':' (crypt(3) salts never hold more, and a longer salt would be
 * truncated by the algorithm, so the stored hash could never match).
 * Returns -1 when malformed. */
static long
salt_len(const char *s, size_t n, size_t max)
{
    for (size_t i = 0; i < n && i <= max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '$')
            return (long)i;
        if (c <= 0x20 || c >= 0x7f || c == ':')
            return -1;
    }
    return -1;
}

/* Equal lengths first (not secret: every hash of a format has the same
 * shape), then the bytes in constant time. */
static int
ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

/* --- hash formats -------------------------------------------------------- */

enum hash_kind {
    HK_NONE,
    HK_BCRYPT,
    HK_SHA256,
    HK_SHA512,
    HK_MD5CRYPT,
    HK_APR1,
    HK_SHA1,
    HK_DES,
};

#define APR1_PREFIX "$apr1$"
#define APR1_SALT_MAX 8
#define MD5_B64_LEN 22
#define SHA1_PREFIX "{SHA}"
#define SHA1_B64_LEN 28

/* "$5$" or "$6$" [rounds=N$] salt(0..16) '$' digest. */
static int
shacrypt_ok(const char *h, size_t n, size_t digest_len)
{
    const char *p = h + 3, *end = h + n;
    if ((size_t)(end - p) > 7 && memcmp(p, "rounds=", 7) == 0) {
        p += 7;
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == d || p - d > 9 || p == end || *p != '$')
            return 0;
        p++;
    }
    long sl = salt_len(p, (size_t)(end - p), 16);
    if (sl < 0)
        return 0;
    p += sl + 1;
    return (size_t)(end - p) == digest_len && all_itoa64(p, digest_len);
}

/* prefix salt(0..8) '$' 22 characters: $1$ and $apr1$. */
static int
md5_ok(const char *h, size_t n, size_t prefix_len)
{
    const char *p = h + prefix_len, *end = h + n;
    long sl = salt_len(p, (size_t)(end - p), APR1_SALT_MAX);
    if (sl < 0)
        return 0;
    p += sl + 1;
    return (size_t)(end - p) == MD5_B64_LEN && all_itoa64(p, MD5_B64_LEN);
}

static int
bcrypt_ok(const char *h, size_t n)
{
    /* $2y$NN$ then 22 salt and 31 digest characters. */
    if (n != 60 || h[3] != '$' || h[6] != '$')
        return 0;
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9')
        return 0;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    return cost >= 4 && cost <= 31 && all_itoa64(h + 7, 53);
}

static int
sha1_ok(const char *h, size_t n)
{
    if (n != strlen(SHA1_PREFIX) + SHA1_B64_LEN || h[n - 1] != '=')
        return 0;
    for (size_t i = strlen(SHA1_PREFIX); i < n - 1; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return 0;
    }
    return 1;
}

/* The format of h[0..n). HK_NONE with *family set when the prefix names a
 * supported format but the rest does not fit it; *family NULL when the
 * format is unknown. */
static enum hash_kind
classify(const char *h, size_t n, const char **family)
{
    *family = NULL;
    if (n >= 4 && h[0] == '$' && h[1] == '2' && (h[2] == 'a' || h[2] == 'b' || h[2] == 'y') &&
        h[3] == '$') {
        *family = "bcrypt";
        return bcrypt_ok(h, n) ? HK_BCRYPT : HK_NONE;
    }
    if (n >= 3 && memcmp(h, "$5$", 3) == 0) {
        *family = "SHA-256-crypt";
        return shacrypt_ok(h, n, 43) ? HK_SHA256 : HK_NONE;
    }
    if (n >= 3 && memcmp(h, "$6$", 3) == 0) {
        *family = "SHA-512-crypt";
        return shacrypt_ok(h, n, 86) ? HK_SHA512 : HK_NONE;
    }
    if (n >= 3 && memcmp(h, "$1$", 3) == 0) {
        *family = "MD5-crypt";
        return md5_ok(h, n, 3) ? HK_MD5CRYPT : HK_NONE;
    }
    if (n >= strlen(APR1_PREFIX) && memcmp(h, APR1_PREFIX, strlen(APR1_PREFIX)) == 0) {
        *family = "$apr1$";
        return md5_ok(h, n, strlen(APR1_PREFIX)) ? HK_APR1 : HK_NONE;
    }
    if (n >= strlen(SHA1_PREFIX) && memcmp(h, SHA1_PREFIX, strlen(SHA1_PREFIX)) == 0) {
        *family = "{SHA}";
        return sha1_ok(h, n) ? HK_SHA1 : HK_NONE;
    }
    if (n == 13 && all_itoa64(h, n))
        return HK_DES;
    return HK_NONE;
}

/* bcrypt, SHA-crypt, MD5-crypt and DES through libxcrypt. crypt_data is
 * about 32 KiB: on the heap, since checks run on pool threads whose stacks
 * may be small. */
static int
check_crypt(const char *hash, size_t hlen, const char *pw)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return 0;
    const char *out = crypt_rn(pw, hash, cd, (int)sizeof(*cd));
    /* libxcrypt reports failure as NULL here, or as a "*..." string from
     * the other entry points; either is a mismatch. */
    int ok = out != NULL && out[0] != '*' && ct_equal(out, strlen(out), hash, hlen);
    OPENSSL_cleanse(cd, sizeof(*cd)); /* holds the password and its hash */
    free(cd);
    return ok;
}

static void
to64(char *s, unsigned long v, int n)
{
    while (--n >= 0) {
        *s++ = itoa64[v & 0x3f];
        v >>= 6;
    }
}

/* Apache's apr_md5_encode (apr-util crypto/apr_md5.c), step by step: the
 * "$apr1$" magic instead of "$1$" is its only difference from MD5-crypt,
 * which is why libxcrypt cannot check it. Writes "$apr1$salt$digest" and
 * its length to out (at least 6 + 8 + 1 + 22 + 1 bytes). Returns 0, or -1
 * when OpenSSL fails (MD5 unavailable, e.g. in FIPS mode). */
static int
apr1_encode(const char *pw, size_t pl, const char *salt, size_t sl, char *out, size_t *olen)
{
    unsigned char fin[16];
    unsigned int flen = 0;
    int bad = 0;
    EVP_MD *md = EVP_MD_fetch(NULL, "MD5", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new(), *ctx1 = EVP_MD_CTX_new();
    if (md == NULL || ctx == NULL || ctx1 == NULL) {
        bad = 1;
        goto out;
    }

    bad |= !EVP_DigestInit_ex2(ctx, md, NULL);
    bad |= !EVP_DigestUpdate(ctx, pw, pl);
    bad |= !EVP_DigestUpdate(ctx, APR1_PREFIX, strlen(APR1_PREFIX));
    bad |= !EVP_DigestUpdate(ctx, salt, sl);

    bad |= !EVP_DigestInit_ex2(ctx1, md, NULL);
    bad |= !EVP_DigestUpdate(ctx1, pw, pl);
    bad |= !EVP_DigestUpdate(ctx1, salt, sl);
    bad |= !EVP_DigestUpdate(ctx1, pw, pl);
    bad |= !EVP_DigestFinal_ex(ctx1, fin, &flen);
    for (size_t left = pl; left > 0;) {
        size_t k = left > 16 ? 16 : left;
        bad |= !EVP_DigestUpdate(ctx, fin, k);
        left -= k;
    }
    /* A zero byte for each set bit of the length, the first password byte
     * for each clear one: a quirk of the original that must be kept. */
    memset(fin, 0, sizeof(fin));
    for (size_t i = pl; i != 0; i >>= 1)
        bad |= !EVP_DigestUpdate(ctx, (i & 1) ? (const void *)fin : (const void *)pw, 1);
    bad |= !EVP_DigestFinal_ex(ctx, fin, &flen);

    /* 1000 rounds meant to slow down guessing (in 1995). */
    for (int i = 0; i < 1000 && !bad; i++) {
        bad |= !EVP_DigestInit_ex2(ctx1, md, NULL);
        if (i & 1)
            bad |= !EVP_DigestUpdate(ctx1, pw, pl);
        else
            bad |= !EVP_DigestUpdate(ctx1, fin, 16);
        if (i % 3)
            bad |= !EVP_DigestUpdate(ctx1, salt, sl);
        if (i % 7)
            bad |= !EVP_DigestUpdate(ctx1, pw, pl);
        if (i & 1)
            bad |= !EVP_DigestUpdate(ctx1, fin, 16);
        else
            bad |= !EVP_DigestUpdate(ctx1, pw, pl);
        bad |= !EVP_DigestFinal_ex(ctx1, fin, &flen);
    }
    if (bad || flen != 16)
        goto out;

    size_t n = strlen(APR1_PREFIX);
    memcpy(out, APR1_PREFIX, n);
    memcpy(out + n, salt, sl);
    n += sl;
    out[n++] = '$';
    to64(out + n, ((unsigned long)fin[0] << 16) | ((unsigned long)fin[6] << 8) | fin[12], 4);
    to64(out + n + 4, ((unsigned long)fin[1] << 16) | ((unsigned long)fin[7] << 8) | fin[13], 4);
    to64(out + n + 8, ((unsigned long)fin[2] << 16) | ((unsigned long)fin[8] << 8) | fin[14], 4);
    to64(out + n + 12, ((unsigned long)fin[3] << 16) | ((unsigned long)fin[9] << 8) | fin[15], 4);
    to64(out + n + 16, ((unsigned long)fin[4] << 16) | ((unsigned long)fin[10] << 8) | fin[5], 4);
    to64(out + n + 20, fin[11], 2);
    n += MD5_B64_LEN;
    out[n] = '\0';
    *olen = n;

out:
    OPENSSL_cleanse(fin, sizeof(fin));
    EVP_MD_CTX_free(ctx);
    EVP_MD_CTX_free(ctx1);
    EVP_MD_free(md);
    return bad || flen != 16 ? -1 : 0;
}

static int
check_apr1(const char *hash, size_t hlen, const char *pw, size_t pl)
{
    const char *salt = hash + strlen(APR1_PREFIX);
    size_t sl = (size_t)(strchr(salt, '$') - salt); /* classify saw the '$' */
    char out[sizeof(APR1_PREFIX) + APR1_SALT_MAX + 1 + MD5_B64_LEN];
    size_t olen = 0;
    if (apr1_encode(pw, pl, salt, sl, out, &olen) != 0)
        return 0;
    int ok = ct_equal(out, olen, hash, hlen);
    OPENSSL_cleanse(out, sizeof(out));
    return ok;
}

static int
check_sha1(const char *hash, const char *pw, size_t pl)
{
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    unsigned char b64[SHA1_B64_LEN + 1];
    int ok = 0;
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (md != NULL && EVP_Digest(pw, pl, dg, &dl, md, NULL) && dl == 20 &&
        EVP_EncodeBlock(b64, dg, 20) == SHA1_B64_LEN)
        ok = ct_equal((const char *)b64, SHA1_B64_LEN, hash + strlen(SHA1_PREFIX),
                      strlen(hash + strlen(SHA1_PREFIX)));
    EVP_MD_free(md);
    OPENSSL_cleanse(dg, sizeof(dg));
    OPENSSL_cleanse(b64, sizeof(b64));
    return ok;
}

int
htpasswd_check_hash(const char *hash, const char *password)
{
    if (hash == NULL || password == NULL)
        return 0;
    size_t pl = strnlen(password, HTPASSWD_MAX_PASSWORD + 1);
    if (pl > HTPASSWD_MAX_PASSWORD)
        return 0;
    size_t hl = strlen(hash);
    const char *family;
    switch (classify(hash, hl, &family)) {
    case HK_BCRYPT:
    case HK_SHA256:
    case HK_SHA512:
    case HK_MD5CRYPT:
    case HK_DES:
        return check_crypt(hash, hl, password);
    case HK_APR1:
        return check_apr1(hash, hl, password, pl);
    case HK_SHA1:
        return check_sha1(hash, password, pl);
    case HK_NONE:
        break;
    }
    return 0;
}

/* --- reading files and lines ---------------------------------------------- */

/* The whole file, NUL-terminated (it may hold other NULs: *lenp counts
 * them); NULL with a message in d. */
static char *
read_file(const char *path, struct diag *d, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        diag_error(d, path, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        if (cap - len < 2) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                diag_error(d, path, 0, "out of memory");
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len > HTPASSWD_MAX_FILE) {
            diag_error(d, path, 0, "larger than %u bytes", (unsigned)HTPASSWD_MAX_FILE);
            goto fail;
        }
        if (n == 0) {
            if (ferror(f)) {
                diag_error(d, path, 0, "read error: %s", strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    *lenp = len;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

static char *
copy_string(const char *text, size_t *lenp)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    if (buf != NULL) {
        memcpy(buf, text, n + 1);
        *lenp = n;
    }
    return buf;
}

struct lines {
    char *p, *end; /* what is left of the buffer */
    int line;      /* number of the line last returned */
};

/* The next line that is neither empty nor a comment, trimmed and
 * NUL-terminated in place, or NULL at the end. Lines holding a NUL byte
 * are reported to d and skipped. */
static char *
next_line(struct lines *ls, const char *name, struct diag *d)
{
    while (ls->p < ls->end) {
        char *s = ls->p;
        char *nl = memchr(s, '\n', (size_t)(ls->end - s));
        char *e = nl ? nl : ls->end;
        ls->p = nl ? nl + 1 : ls->end;
        ls->line++;
        if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
            diag_error(d, name, ls->line, "NUL byte in line");
            continue;
        }
        while (s < e && is_blank((unsigned char)*s))
            s++;
        while (e > s && is_blank((unsigned char)e[-1]))
            e--;
        *e = '\0'; /* a '\n', a blank, or the buffer's final NUL */
        if (s == e || *s == '#')
            continue;
        return s;
    }
    return NULL;
}

/* Why s[0..n) is not a valid user (or group) name, or NULL. A space is
 * allowed where spaces can be told from separators (an htpasswd user
 * name, as in Apache), not in a group file. */
static const char *
bad_name(const char *s, size_t n, int spaces)
{
    if (n == 0)
        return "empty";
    if (n > HTPASSWD_MAX_USER)
        return "longer than 255 bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' && !spaces)
            return "contains a space";
        if (is_ctl(c))
            return "contains a control character";
        if (c == ':')
            return "contains ':'";
    }
    return NULL;
}

/* --- htpasswd ------------------------------------------------------------ */

struct hp_entry {
    const char *user; /* both point into buf */
    const char *hash;
    int line;
};

struct htpasswd {
    char *buf;
    struct hp_entry *v;
    size_t n;
    const char *decoy; /* the costliest stored hash, see htpasswd_decoy_hash */
};

/* How long a check against hash takes, roughly ordered: bcrypt by its cost,
 * then SHA-crypt (by rounds), apr1, and the single-round hashes. */
static long
hash_cost(const char *hash)
{
    if (hash[0] == '$' && hash[1] == '2' && hash[2] && hash[3] == '$' &&
        isdigit((unsigned char)hash[4]) && isdigit((unsigned char)hash[5]))
        return 3000000L + (hash[4] - '0') * 10 + (hash[5] - '0');
    if (strncmp(hash, "$5$", 3) == 0 || strncmp(hash, "$6$", 3) == 0) {
        long rounds = 5000;
        if (strncmp(hash + 3, "rounds=", 7) == 0)
            rounds = strtol(hash + 10, NULL, 10);
        return 1000000L + (rounds > 999999 ? 999999 : rounds);
    }
    if (strncmp(hash, "$apr1$", 6) == 0)
        return 1000;
    return 0;
}

static int
hp_cmp(const void *a, const void *b)
{
    const struct hp_entry *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c != 0)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

static int
hp_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct hp_entry *)elem)->user);
}

/* Parses buf[0..len) (owned, NUL-terminated) into h; takes buf. */
static struct htpasswd *
htpasswd_parse(char *buf, size_t len, const char *name, struct diag *d)
{
    size_t errors = d->errors, cap = 0;
    struct htpasswd *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        free(buf);
        diag_error(d, name, 0, "out of memory");
        return NULL;
    }
    h->buf = buf;
    struct lines ls = {buf, buf + len, 0};
    char *s;
    while ((s = next_line(&ls, name, d)) != NULL) {
        char *colon = strchr(s, ':');
        if (colon == NULL) {
            diag_error(d, name, ls.line, "expected user:hash");
            continue;
        }
        const char *why = bad_name(s, (size_t)(colon - s), 1);
        if (why != NULL) {
            diag_error(d, name, ls.line, "invalid user name: %s", why);
            continue;
        }
        *colon = '\0';
        char *hash = colon + 1;
        char *more = strchr(hash, ':'); /* Apache ignores what follows */
        if (more != NULL)
            *more = '\0';
        const char *family;
        if (classify(hash, strlen(hash), &family) == HK_NONE) {
            if (family != NULL)
                diag_error(d, name, ls.line, "user '%s': malformed %s password hash", s, family);
            else
                diag_error(d, name, ls.line, "user '%s': unsupported password hash", s);
            continue;
        }
        if (h->n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct hp_entry *nv = realloc(h->v, ncap * sizeof(*nv));
            if (nv == NULL) {
                diag_error(d, name, ls.line, "out of memory");
                break;
            }
            h->v = nv;
            cap = ncap;
        }
        h->v[h->n++] = (struct hp_entry){s, hash, ls.line};
    }
    if (h->n > 1)
        qsort(h->v, h->n, sizeof(*h->v), hp_cmp);
    for (size_t i = 0; i < h->n; i++)
        if (h->decoy == NULL || hash_cost(h->v[i].hash) > hash_cost(h->decoy))
            h->decoy = h->v[i].hash;
    /* Apache would silently use the first line: a mistake either way. */
    for (size_t i = 1, first = 0; i < h->n; i++) {
        if (strcmp(h->v[i].user, h->v[first].user) == 0)
            diag_error(d, name, h->v[i].line, "duplicate user '%s' (first on line %d)",
                       h->v[i].user, h->v[first].line);
        else
            first = i;
    }
    if (d->errors != errors) {
        htpasswd_free(h);
        return NULL;
    }
    return h;
}

struct htpasswd *
htpasswd_load(const char *path, struct diag *d)
{
    size_t len = 0;
    char *buf = read_file(path, d, &len);
    return buf ? htpasswd_parse(buf, len, path, d) : NULL;
}

struct htpasswd *
htpasswd_load_string(const char *text, const char *name, struct diag *d)
{
    size_t len = 0;
    if (name == NULL)
        name = "<string>";
    char *buf = copy_string(text, &len);
    if (buf == NULL) {
        diag_error(d, name, 0, "out of memory");
        return NULL;
    }
    return htpasswd_parse(buf, len, name, d);
}

void
htpasswd_free(struct htpasswd *h)
{
    if (h == NULL)
        return;
    free(h->v);
    free(h->buf);
    free(h);
}

const char *
htpasswd_hash(const struct htpasswd *h, const char *user)
{
    if (h == NULL || user == NULL || h->n == 0)
        return NULL;
    const struct hp_entry *e = bsearch(user, h->v, h->n, sizeof(*h->v), hp_key_cmp);
    return e ? e->hash : NULL;
}

int
htpasswd_verify(const struct htpasswd *h, const char *user, const char *password)
{
    const char *hash = htpasswd_hash(h, user);
    return hash != NULL && htpasswd_check_hash(hash, password);
}

const char *
htpasswd_decoy_hash(const struct htpasswd *h)
{
    return h ? h->decoy : NULL;
}

size_t
htpasswd_count(const struct htpasswd *h)
{
    return h ? h->n : 0;
}

/* --- groups -------------------------------------------------------------- */

struct hg_pair {
    const char *user; /* both point into buf */
    const char *group;
    int line; /* the first that lists user in group */
};

struct htgroups {
    char *buf;
    struct hg_pair *v; /* sorted by user, then group; no duplicates */
    size_t n;
    const char **names; /* every group named, members or not: sorted, unique */
    size_t nnames;
};

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
hg_cmp(const void *a, const void *b)
{
    const struct hg_pair *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    return c ? c : strcmp(x->group, y->group);
}

/* As hg_cmp, then by line: the pair kept of duplicates is the first. */
static int
hg_cmp_line(const void *a, const void *b)
{
    const struct hg_pair *x = a, *y = b;
    int c = hg_cmp(a, b);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static struct htgroups *
htgroups_parse(char *buf, size_t len, const char *name, struct diag *d)
{
    size_t errors = d->errors, cap = 0, names_cap = 0;
    struct htgroups *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        free(buf);
        diag_error(d, name, 0, "out of memory");
        return NULL;
    }
    g->buf = buf;
    struct lines ls = {buf, buf + len, 0};
    char *s;
    while ((s = next_line(&ls, name, d)) != NULL) {
        char *colon = strchr(s, ':');
        if (colon == NULL) {
            diag_error(d, name, ls.line, "expected group: user ...");
            continue;
        }
        char *ge = colon;
        while (ge > s && (ge[-1] == ' ' || ge[-1] == '\t'))
            ge--;
        const char *why = bad_name(s, (size_t)(ge - s), 0);
        if (why != NULL) {
            diag_error(d, name, ls.line, "invalid group name: %s", why);
            continue;
        }
        *ge = '\0';
        const char *group = s;
        if (g->nnames == names_cap) {
            size_t nc = names_cap ? names_cap * 2 : 16;
            const char **nv = realloc(g->names, nc * sizeof(*nv));
            if (nv == NULL) {
                diag_error(d, name, ls.line, "out of memory");
                break;
            }
            g->names = nv;
            names_cap = nc;
        }
        g->names[g->nnames++] = group;
        char *p = colon + 1;
        for (;;) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == '\0')
                break;
            char *m = p;
            while (*p != '\0' && *p != ' ' && *p != '\t')
                p++;
            int last = *p == '\0';
            *p = '\0';
            why = bad_name(m, (size_t)(p - m), 0);
            if (why != NULL) {
                diag_error(d, name, ls.line, "group '%s': invalid member name: %s", group, why);
            } else {
                if (g->n == cap) {
                    size_t ncap = cap ? cap * 2 : 64;
                    struct hg_pair *nv = realloc(g->v, ncap * sizeof(*nv));
                    if (nv == NULL) {
                        diag_error(d, name, ls.line, "out of memory");
                        break;
                    }
                    g->v = nv;
                    cap = ncap;
                }
                g->v[g->n++] = (struct hg_pair){m, group, ls.line};
            }
            if (last)
                break;
            p++;
        }
    }
    if (g->n > 1) {
        qsort(g->v, g->n, sizeof(*g->v), hg_cmp_line);
        size_t w = 1;
        for (size_t i = 1; i < g->n; i++)
            if (hg_cmp(&g->v[i], &g->v[w - 1]) != 0)
                g->v[w++] = g->v[i];
        g->n = w;
    }
    if (g->nnames > 1) {
        qsort(g->names, g->nnames, sizeof(*g->names), name_cmp);
        size_t w = 1;
        for (size_t i = 1; i < g->nnames; i++)
            if (strcmp(g->names[i], g->names[w - 1]) != 0)
                g->names[w++] = g->names[i];
        g->nnames = w;
    }
    if (d->errors != errors) {
        htgroups_free(g);
        return NULL;
    }
    return g;
}

struct htgroups *
htgroups_load(const char *path, struct diag *d)
{
    size_t len = 0;
    char *buf = read_file(path, d, &len);
    return buf ? htgroups_parse(buf, len, path, d) : NULL;
}

struct htgroups *
htgroups_load_string(const char *text, const char *name, struct diag *d)
{
    size_t len = 0;
    if (name == NULL)
        name = "<string>";
    char *buf = copy_string(text, &len);
    if (buf == NULL) {
        diag_error(d, name, 0, "out of memory");
        return NULL;
    }
    return htgroups_parse(buf, len, name, d);
}

void
htgroups_free(struct htgroups *g)
{
    if (g == NULL)
        return;
    free(g->v);
    free(g->names);
    free(g->buf);
    free(g);
}

/* Index of the first pair of user (all of them follow), or g->n. */
static size_t
hg_lower(const struct htgroups *g, const char *user)
{
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(g->v[mid].user, user) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int
htgroups_member(const struct htgroups *g, const char *group, const char *user)
{
    if (g == NULL || group == NULL || user == NULL || g->n == 0)
        return 0;
    struct hg_pair key = {user, group, 0};
    return bsearch(&key, g->v, g->n, sizeof(*g->v), hg_cmp) != NULL;
}

int
htgroups_has_group(const struct htgroups *g, const char *group)
{
    if (g == NULL || group == NULL || g->nnames == 0)
        return 0;
    return bsearch(&group, g->names, g->nnames, sizeof(*g->names), name_cmp) != NULL;
}

void
htgroups_foreach_of(const struct htgroups *g, const char *user,
                    void (*fn)(void *arg, const char *group), void *arg)
{
    if (g == NULL || user == NULL || fn == NULL)
        return;
    for (size_t i = hg_lower(g, user); i < g->n && strcmp(g->v[i].user, user) == 0; i++)
        fn(arg, g->v[i].group);
}

/* The pair of user in group, or NULL. */
static const struct hg_pair *
hg_find(const struct htgroups *g, const char *group, const char *user)
{
    struct hg_pair key = {user, group, 0};
    return bsearch(&key, g->v, g->n, sizeof(*g->v), hg_cmp);
}

void
htgroups_check_users(const struct htgroups *g, const struct htpasswd *h, const char *name,
                     struct diag *d)
{
    if (g == NULL || h == NULL || d == NULL)
        return;
    for (size_t i = 0; i < h->n; i++) {
        const char *u = h->v[i].user;
        size_t w1 = strcspn(u, " ");
        if (u[w1] == '\0' || w1 == 0 || w1 > HTPASSWD_MAX_USER)
            continue; /* no space, or none after a first word */
        char first[HTPASSWD_MAX_USER + 1];
        memcpy(first, u, w1);
        first[w1] = '\0';
        for (size_t k = hg_lower(g, first); k < g->n && strcmp(g->v[k].user, first) == 0; k++) {
            const char *group = g->v[k].group;
            /* Every other word of the name is a member too: the group
             * meant the user whose name holds spaces. */
            int all = 1;
            for (const char *p = u + w1; *p && all;) {
                while (*p == ' ')
                    p++;
                size_t n = strcspn(p, " ");
                if (n == 0)
                    break;
                char word[HTPASSWD_MAX_USER + 1];
                memcpy(word, p, n);
                word[n] = '\0';
                all = hg_find(g, group, word) != NULL;
                p += n;
            }
            if (all)
                diag_warning(d, name, g->v[k].line,
                             "group '%s': the user '%s' cannot be listed in a group file "
                             "(members are separated by blanks): its words are read as "
                             "other users",
                             group, u);
        }
    }
}

/* --- Proxy-Authorization: Basic -------------------------------------------- */

/* Value of a base64 character, -1 for anything else ('=' included). */
static int
b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Where decoded bytes go: the user until the first ':', then the
 * password. */
struct basic_out {
    char *user, *pass;
    size_t usz, psz, ulen, plen;
    int in_pass;
};

static int
basic_put(struct basic_out *o, unsigned char c)
{
    if (is_ctl(c))
        return -1;
    if (!o->in_pass) {
        if (c == ':') {
            o->in_pass = 1;
            return 0;
        }
        if (o->ulen + 1 >= o->usz)
            return -1;
        o->user[o->ulen++] = (char)c;
        return 0;
    }
    if (o->plen + 1 >= o->psz)
        return -1;
    o->pass[o->plen++] = (char)c;
    return 0;
}

int
htpasswd_parse_basic(const char *value, size_t len, char *user, size_t usz, char *pass, size_t psz)
{
    struct basic_out o = {user, pass, usz, psz, 0, 0, 0};
    size_t i = 0, end = len;
    if (value == NULL || user == NULL || pass == NULL || usz == 0 || psz == 0)
        goto fail;
    while (i < end && (value[i] == ' ' || value[i] == '\t'))
        i++;
    while (end > i && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        end--;
    static const char scheme[] = "basic";
    if (end - i < sizeof(scheme) - 1)
        goto fail;
    for (size_t k = 0; k < sizeof(scheme) - 1; k++) {
        unsigned char c = (unsigned char)value[i + k];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)scheme[k])
            goto fail;
    }
    i += sizeof(scheme) - 1;
    if (i == end || value[i] != ' ')
        goto fail;
    while (i < end && value[i] == ' ')
        i++;
    size_t n = end - i;
    if (n == 0 || n % 4 != 0)
        goto fail;
    for (size_t q = i; q < end; q += 4) {
        const unsigned char *c = (const unsigned char *)value + q;
        int lastq = q + 4 == end;
        int a = b64_val(c[0]), b = b64_val(c[1]), x = b64_val(c[2]), y = b64_val(c[3]);
        if (a < 0 || b < 0)
            goto fail;
        if (x >= 0 && y >= 0) {
            if (basic_put(&o, (unsigned char)(a << 2 | b >> 4)) ||
                basic_put(&o, (unsigned char)((b & 0xf) << 4 | x >> 2)) ||
                basic_put(&o, (unsigned char)((x & 0x3) << 6 | y)))
                goto fail;
        } else if (lastq && x >= 0 && c[3] == '=') {
            /* "xxx=": two bytes; the low 2 bits of x are padding */
            if ((x & 0x3) != 0 || basic_put(&o, (unsigned char)(a << 2 | b >> 4)) ||
                basic_put(&o, (unsigned char)((b & 0xf) << 4 | x >> 2)))
                goto fail;
        } else if (lastq && c[2] == '=' && c[3] == '=') {
            /* "xx==": one byte; the low 4 bits of b are padding */
            if ((b & 0xf) != 0 || basic_put(&o, (unsigned char)(a << 2 | b >> 4)))
                goto fail;
        } else {
            goto fail;
        }
    }
    if (!o.in_pass || o.ulen == 0)
        goto fail;
    user[o.ulen] = '\0';
    pass[o.plen] = '\0';
    return 0;
fail:
    if (user != NULL && usz > 0) {
        OPENSSL_cleanse(user, usz);
        user[0] = '\0';
    }
    if (pass != NULL && psz > 0) {
        OPENSSL_cleanse(pass, psz);
        pass[0] = '\0';
    }
    return -1;
}
