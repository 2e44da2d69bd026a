#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "catalog.h"
#include "decision.h"
#include "errpage.h"
#include "negotiate.h"
#include "pages.h"
#include "policy.h"
#include "snapshot.h"
#include "usage.h"

_Static_assert(sizeof(((struct snapshot *)0)->continue_key) == LOCAL_CONTINUE_KEY_LEN,
               "the snapshot holds one Continue key");

int
local_continue_token(const uint8_t *key, const char *identity, const char *platform,
                     const char *rule, int64_t expiry, char out[LOCAL_CONTINUE_TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    /* NUL-separated: none of the parts can hold a NUL, so no two inputs
     * give the same message. */
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "socialgate-continue-1%c%s%c%s%c%s%c%" PRId64, 0, identity,
                     0, platform, 0, rule, 0, expiry);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (n < 0 || (size_t)n >= sizeof(msg))
        return -1;
    if (HMAC(EVP_sha256(), key, LOCAL_CONTINUE_KEY_LEN, (const unsigned char *)msg, (size_t)n, md,
             &mdlen) == NULL ||
        mdlen * 2 != LOCAL_CONTINUE_TOKEN_LEN)
        return -1;
    for (unsigned i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[LOCAL_CONTINUE_TOKEN_LEN] = '\0';
    return 0;
}

/* Makes path with fresh random bytes, written to a file of its own first
 * and linked in place: a reader never sees half a key, and a second process
 * that was first wins (EEXIST; its key is then read). */
static int
key_create(const char *path)
{
    char tmp[4200];
    uint8_t key[LOCAL_CONTINUE_KEY_LEN];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (RAND_bytes(key, sizeof(key)) != 1) {
        errno = EIO;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    int rc = w == (ssize_t)sizeof(key) && fsync(fd) == 0 ? 0 : -1;
    int e = w >= 0 && w != (ssize_t)sizeof(key) ? EIO : errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && link(tmp, path) != 0) {
        rc = -1;
        e = errno;
    }
    unlink(tmp);
    errno = e;
    return rc;
}

int
local_continue_key_load(const char *state_dir, uint8_t key[LOCAL_CONTINUE_KEY_LEN], int create)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", state_dir, LOCAL_CONTINUE_KEY_FILE);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        if (key_create(path) < 0 && errno != EEXIST)
            return -1;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return -1;
    /* One byte more than a key: a longer file is refused, not cut. */
    uint8_t buf[LOCAL_CONTINUE_KEY_LEN + 1];
    size_t got = 0;
    while (got < sizeof(buf)) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != LOCAL_CONTINUE_KEY_LEN) {
        OPENSSL_cleanse(buf, sizeof(buf));
        errno = EINVAL;
        return -1;
    }
    memcpy(key, buf, LOCAL_CONTINUE_KEY_LEN);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* The page values every decision page shares. */
static void
page_base(const struct snapshot *snap, int platform, const struct policy_rule *r, const char *host,
          const char *identity, struct page_vars *v)
{
    const struct catalog_platform *p = catalog_platform(snap->rules->catalog, platform);
    memset(v, 0, sizeof(*v));
    v->platform = p ? p->name : "unclassified";
    v->category = p ? p->category : "";
    v->host = host;
    v->user = identity;
    v->rule = r ? r->name : NULL;
    v->message = r ? r->message : NULL;
    v->used_min = -1;
    v->quota_min = -1;
}

size_t
local_deny_page(const struct snapshot *snap, int platform, int rule, const char *host,
                const char *identity, char **out)
{
    const struct policy_rule *r = rule >= 0 ? policy_rule(snap->rules->policy, (size_t)rule) : NULL;
    struct page_vars v;
    page_base(snap, platform, r, host, identity, &v);
    return pages_render(snap->pages, PAGE_DENY, &v, out);
}

void
local_resets(const struct policy_rule *r, char *out, size_t size)
{
    snprintf(out, size, "%s", r && r->quota_weekly ? "Monday 00:00" : "00:00");
}

size_t
local_quota_page(const struct snapshot *snap, int platform, int quota_rule, const char *host,
                 const char *identity, const struct tm *local, char **out)
{
    const struct policy_rule *r =
        quota_rule >= 0 ? policy_rule(snap->rules->policy, (size_t)quota_rule) : NULL;
    struct page_vars v;
    char resets[32];
    page_base(snap, platform, r, host, identity, &v);
    if (r && r->quota_min) {
        v.quota_min = r->quota_min;
        v.used_min = usage_quota_used(identity, r->name, decision_period(r, local));
        local_resets(r, resets, sizeof(resets));
        v.resets = resets;
    }
    return pages_render(snap->pages, PAGE_QUOTA, &v, out);
}

size_t
local_error_page(const struct snapshot *snap, int status, const char *host, const char *message,
                 char **out)
{
    struct page_vars v = {
        .status = status, .message = message, .host = host, .used_min = -1, .quota_min = -1};
    return pages_render(snap ? snap->pages : NULL, PAGE_ERROR, &v, out);
}

/* Percent-encodes s into out. Returns 0, or -1 when it did not fit (out
 * then holds a truncated prefix that must not be used as a URL). */
static int
url_encode(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return *s ? -1 : 0;
}

/* What a Continue link carries as `r`: the rule's name with show_rule, else
 * "k" and 16 hex digits of an HMAC of the name under the Continue key, so
 * a page that must not name its rule does not name it in its link either.
 * Without a key (no link can work then) an unkeyed SHA-256 stands in. */
static void
rule_ref(const struct snapshot *snap, const char *name, char out[18])
{
    static const char hex[] = "0123456789abcdef";
    static const char tag[] = "socialgate-rule-1";
    unsigned char msg[256], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t n = strlen(name);
    if (n > sizeof(msg) - sizeof(tag))
        n = sizeof(msg) - sizeof(tag);
    memcpy(msg, tag, sizeof(tag)); /* the tag and its NUL */
    memcpy(msg + sizeof(tag), name, n);
    n += sizeof(tag);
    int ok = snap->has_continue_key
                 ? HMAC(EVP_sha256(), snap->continue_key, LOCAL_CONTINUE_KEY_LEN, msg, n, md,
                        &mdlen) != NULL
                 : EVP_Digest(msg, n, md, &mdlen, EVP_sha256(), NULL) == 1;
    if (!ok || mdlen < 8)
        memset(md, 0, 8);
    out[0] = 'k';
    for (unsigned i = 0; i < 8; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 15];
    }
    out[17] = '\0';
}

/* Whether ref has the shape of a reference rule_ref makes. */
static int
ref_shaped(const char *ref)
{
    return ref[0] == 'k' && strlen(ref) == 17 && strspn(ref + 1, "0123456789abcdef") == 16;
}

/* Whether r is the rule a Continue link names with ref (see rule_ref). */
static int
rule_is_ref(const struct snapshot *snap, const struct policy_rule *r, const char *ref)
{
    if (strcmp(r->name, ref) == 0)
        return 1;
    char k[18];
    if (!ref_shaped(ref))
        return 0;
    rule_ref(snap, r->name, k);
    return strcmp(k, ref) == 0;
}

/* The warn page, its Continue link at `link` (up to the query), with the
 * page asked for as its `to` when that is a `scheme` URL. */
static size_t
warn_page(const struct snapshot *snap, int platform, int rule, const char *url, const char *scheme,
          const char *link_base, const char *host, const char *identity, time_t now, char **out)
{
    const struct policy_rule *r = rule >= 0 ? policy_rule(snap->rules->policy, (size_t)rule) : NULL;
    char link[2048], to[1024], rn[200], sig[200] = "";
    char tok[LOCAL_CONTINUE_TOKEN_LEN + 1];
    struct page_vars v;
    page_base(snap, platform, r, host, identity, &v);
    const char *pn = v.platform;
    if (r && !(snap->pages && snap->pages->show_rule))
        rule_ref(snap, r->name, rn);
    else
        url_encode(r ? r->name : "", rn, sizeof(rn));
    /* Without a key the link has no token, and /continue refuses it. */
    int64_t expiry = (int64_t)now + LOCAL_CONTINUE_LINK_SECONDS;
    if (snap->has_continue_key && identity &&
        local_continue_token(snap->continue_key, identity, pn, r ? r->name : "", expiry, tok) == 0)
        snprintf(sig, sizeof(sig), "&e=%" PRId64 "&t=%s", expiry, tok);
    /* A page address too long for the link is left out rather than cut:
     * the Continue is still recorded, the user just is not sent back. */
    int n = -1;
    if (url && strncmp(url, scheme, strlen(scheme)) == 0 && url_encode(url, to, sizeof(to)) == 0)
        n = snprintf(link, sizeof(link), "%s?p=%s&r=%s%s&to=%s", link_base, pn, rn, sig, to);
    if (n < 0 || (size_t)n + 4 * 4 >= 1536)
        n = snprintf(link, sizeof(link), "%s?p=%s&r=%s%s", link_base, pn, rn, sig);
    if (n < 0 || (size_t)n >= sizeof(link))
        return 0;
    v.continue_url = link;
    return pages_render(snap->pages, PAGE_WARN, &v, out);
}

size_t
local_warn_page(const struct snapshot *snap, int platform, int rule, const char *url,
                const char *host, const char *identity, time_t now, char **out)
{
    return warn_page(snap, platform, rule, url, "http://", "http://" LOCAL_HOST "/continue", host,
                     identity, now, out);
}

size_t
local_warn_page_tls(const struct snapshot *snap, int platform, int rule, const char *authority,
                    const char *url, const char *host, const char *identity, time_t now, char **out)
{
    char base[400];
    int n = snprintf(base, sizeof(base), "https://%s%s", authority, LOCAL_TLS_CONTINUE_PATH);
    if (n < 0 || (size_t)n >= sizeof(base))
        return 0;
    return warn_page(snap, platform, rule, url, "https://", base, host, identity, now, out);
}

int
local_tls_route(const char *name, int port, const char *host, size_t host_len, const char *target,
                size_t target_len, int warn, struct local_tls_route *out)
{
    char norm[CATALOG_MAX_HOST + 1];
    int is_ip = 0, n;
    memset(out, 0, sizeof(*out));
    /* A Host that is no plain name (catalog_normalize refuses URL
     * delimiters; this also keeps anything but letters, digits, '.', '-'
     * and '_' out of the page's URL) is not used: the tunnel's name is. */
    if (host_len > 0 && catalog_normalize(host, host_len, norm, sizeof(norm), &is_ip) > 0 &&
        !is_ip && norm[strspn(norm, "abcdefghijklmnopqrstuvwxyz0123456789.-_")] == '\0') {
        name = norm;
        /* The port the browser has in its URL: the Host's (443 without
         * one), not the tunnel's, which a fronted tunnel does not share. */
        const char *colon = memchr(host, ':', host_len);
        size_t dl = colon ? host_len - (size_t)(colon + 1 - host) : 0;
        port = 443;
        if (dl >= 1 && dl <= 5) {
            int v = 0;
            for (size_t i = 0; i < dl && v >= 0; i++)
                v = colon[1 + i] >= '0' && colon[1 + i] <= '9' ? v * 10 + (colon[1 + i] - '0') : -1;
            if (v > 0 && v <= 65535)
                port = v;
        }
    } else
        is_ip = strchr(name, ':') != NULL ? 6 : 0; /* an IPv6 address: in brackets */
    if (strlen(name) > CATALOG_MAX_HOST)
        return -1;
    if (port == 443 || port <= 0)
        n = snprintf(out->authority, sizeof(out->authority), is_ip == 6 ? "[%s]" : "%s", name);
    else
        n = snprintf(out->authority, sizeof(out->authority), is_ip == 6 ? "[%s]:%d" : "%s:%d", name,
                     port);
    if (n < 0 || (size_t)n >= sizeof(out->authority))
        return -1;
    /* Only the origin form makes sense inside TLS; anything else is
     * answered with the page, sent back to the site's root. */
    int origin = target_len > 0 && target[0] == '/';
    n = snprintf(out->url, sizeof(out->url), "https://%s%.*s", out->authority,
                 origin ? (int)target_len : 1, origin ? target : "/");
    if (n < 0 || (size_t)n >= sizeof(out->url))
        snprintf(out->url, sizeof(out->url), "https://%s/", out->authority);
    size_t cp = strlen(LOCAL_TLS_CONTINUE_PATH);
    if (!warn || !origin || target_len < cp || memcmp(target, LOCAL_TLS_CONTINUE_PATH, cp) != 0 ||
        (target_len > cp && target[cp] != '?'))
        return 0;
    n = snprintf(out->target, sizeof(out->target), "/continue%.*s", (int)(target_len - cp),
                 target + cp);
    if (n < 0 || (size_t)n >= sizeof(out->target))
        return -1;
    out->is_continue = 1;
    return 0;
}

/* The sign-in page: 407 with Negotiate first (single sign-on), then
 * Basic when there is anything to check Basic credentials against
 * (htpasswd or basic_helper; without any [auth] the Basic offer stays as
 * it always was). A token continues a Negotiate exchange: offered alone. */
static size_t
auth_page(const struct snapshot *snap, const char *host, const char *message, const char *token,
          int keep_alive, char **out)
{
    const struct config *cfg = snap->cfg;
    size_t hsize = 400 + (token ? strlen(token) : 0);
    char *hdr = malloc(hsize);
    if (hdr == NULL)
        return 0;
    if (negotiate_challenge(token, cfg->auth_negotiate_helper != NULL,
                            cfg->auth_negotiate_helper == NULL || config_has_basic(cfg),
                            cfg->auth_realm, hdr, hsize) == 0) {
        free(hdr);
        return 0;
    }
    struct page_vars v = {.host = host,
                          .message = message,
                          .used_min = -1,
                          .quota_min = -1,
                          .extra_headers = hdr,
                          .keep_alive = keep_alive};
    size_t n = pages_render(snap->pages, PAGE_SIGNIN, &v, out);
    free(hdr);
    return n;
}

size_t
local_auth_page_message(const struct snapshot *snap, const char *host, const char *message,
                        char **out)
{
    return auth_page(snap, host, message, NULL, 0, out);
}

size_t
local_negotiate_page(const struct snapshot *snap, const char *host, const char *token,
                     int keep_alive, char **out)
{
    return auth_page(snap, host, NULL, token, keep_alive, out);
}

size_t
local_auth_page(const struct snapshot *snap, const char *host, char **out)
{
    return local_auth_page_message(snap, host, NULL, out);
}

/* Value of parameter `name` in a query string, percent-decoded. */
static int
query_param(const char *q, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    while (q && *q) {
        if (strncmp(q, name, nl) == 0 && q[nl] == '=') {
            const char *v = q + nl + 1;
            size_t o = 0;
            for (; *v && *v != '&' && o + 1 < size; v++) {
                if (*v == '%' && v[1] && v[2]) {
                    char h[3] = {v[1], v[2], 0};
                    char *end;
                    long c = strtol(h, &end, 16);
                    if (*end != '\0' || c < 0x20 || c == 0x7f)
                        return -1; /* no control bytes, no CR/LF in headers */
                    out[o++] = (char)c;
                    v += 2;
                } else {
                    out[o++] = *v == '+' ? ' ' : *v;
                }
            }
            out[o] = '\0';
            return *v && *v != '&' ? -1 : 0; /* never a cut value */
        }
        q = strchr(q, '&');
        if (q)
            q++;
    }
    return -1;
}

static size_t
respond(char *out, size_t size, int status, const char *type, const char *extra, const char *body)
{
    const char *phrase = status == 302 ? "Found" : errpage_reason_phrase(status);
    int n = snprintf(out, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n%s",
                     status, phrase, type, strlen(body), extra, body);
    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* Whether q carries a valid token, unexpired at now, for this identity,
 * platform and rule. */
static int
continue_token_ok(const struct snapshot *snap, const char *identity, const char *platform,
                  const char *rule, const char *q, time_t now)
{
    char e[24], t[LOCAL_CONTINUE_TOKEN_LEN + 2], want[LOCAL_CONTINUE_TOKEN_LEN + 1];
    if (!snap->has_continue_key || query_param(q, "e", e, sizeof(e)) < 0 ||
        query_param(q, "t", t, sizeof(t)) < 0 || strlen(t) != LOCAL_CONTINUE_TOKEN_LEN)
        return 0;
    /* as the warn page wrote it: digits, no sign, no leading zero */
    if (e[0] < '1' || e[0] > '9' || strspn(e, "0123456789") != strlen(e) || strlen(e) > 18)
        return 0;
    int64_t expiry = strtoll(e, NULL, 10);
    if (expiry < (int64_t)now)
        return 0;
    if (local_continue_token(snap->continue_key, identity, platform, rule, expiry, want) < 0)
        return 0;
    return CRYPTO_memcmp(want, t, LOCAL_CONTINUE_TOKEN_LEN) == 0;
}

static size_t
answer_continue(const struct snapshot *snap, const char *identity, const char *q, time_t now,
                char *out, size_t size, int *status, const char **reason)
{
    char p[128], rn[128], to[1200];
    const struct policy *pol = snap->rules->policy;
    const struct catalog *cat = snap->rules->catalog;
    /* The warn page names traffic of no platform "unclassified". */
    int pidx = -1;
    if (query_param(q, "p", p, sizeof(p)) < 0 || query_param(q, "r", rn, sizeof(rn)) < 0 ||
        (strcmp(p, "unclassified") != 0 && (pidx = catalog_find_platform(cat, p)) < 0)) {
        *status = 400;
        return errpage_format(out, size, 400, "This Continue link is not valid.", "");
    }
    const struct policy_rule *r = NULL;
    for (size_t i = 0; i < policy_rule_count(pol) && r == NULL; i++)
        if (rule_is_ref(snap, policy_rule(pol, i), rn))
            r = policy_rule(pol, i);
    /* A reference no rule has under this key was made under another key
     * (or for a rule since removed): refused as any link not made here. */
    int foreign = r == NULL && ref_shaped(rn);
    if (!foreign &&
        (r == NULL || r->action != POLICY_WARN || !policy_rule_has_platform(r, cat, pidx))) {
        *status = 400;
        return errpage_format(out, size, 400, "This Continue link is out of date.", "");
    }
    if (foreign || !continue_token_ok(snap, identity, p, r->name, q, now)) {
        *status = 403;
        *reason = "bad-continue-token";
        return errpage_format(out, size, 403,
                              "This Continue link was not made for you, or has expired. Open the "
                              "page again to see the warning and continue from there.",
                              "");
    }
    usage_continue_set(identity, p, (int64_t)now + (int64_t)(r->warn_for_ms / 1000));
    if (query_param(q, "to", to, sizeof(to)) == 0 &&
        (strncmp(to, "http://", 7) == 0 || strncmp(to, "https://", 8) == 0) &&
        strpbrk(to, " \"<>") == NULL) {
        char hdr[1400];
        snprintf(hdr, sizeof(hdr), "Location: %s\r\n", to);
        *status = 302;
        return respond(out, size, 302, "text/plain", hdr, "Continue recorded.\n");
    }
    *status = 200;
    return respond(out, size, 200, "text/plain", "", "Continue recorded.\n");
}

/* What a quota rule counts, in words: "facebook, instagram", "social
 * platforms", "every platform". */
static void
quota_scope(const struct snapshot *snap, const struct policy_rule *r, char *out, size_t size)
{
    const struct catalog *cat = snap->rules->catalog;
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->nplatforms && o < size; i++) {
        const struct catalog_platform *p = catalog_platform(cat, r->platforms[i]);
        int n =
            snprintf(out + o, size - o, "%s%s", o ? ", " : "", p ? p->name : "unclassified sites");
        o = n < 0 ? size : o + (size_t)n;
    }
    for (size_t i = 0; i < r->ncategories && o < size; i++) {
        int n = snprintf(out + o, size - o, "%s%s platforms", o ? ", " : "", r->categories[i]);
        o = n < 0 ? size : o + (size_t)n;
    }
    if (out[0] == '\0')
        snprintf(out, size, "every platform");
}

static size_t
answer_quota(const struct snapshot *snap, const char *identity, const char *roles,
             const struct tm *local, char *out, size_t size, int *status)
{
    const struct policy *pol = snap->rules->policy;
    int show_rule = snap->pages && snap->pages->show_rule;
    char body[8192];
    size_t o = 0;
    int n = snprintf(body, sizeof(body), "Quota for %s (roles %s)\n\n", identity, roles);
    o = n > 0 ? (size_t)n : 0;
    int any = 0;
    for (size_t i = 0; i < policy_rule_count(pol) && o < sizeof(body); i++) {
        const struct policy_rule *r = policy_rule(pol, i);
        if (r->quota_min == 0)
            continue;
        unsigned used = usage_quota_used(identity, r->name, decision_period(r, local));
        unsigned left = used >= r->quota_min ? 0 : r->quota_min - used;
        char scope[1024], resets[32], rule[200] = "";
        quota_scope(snap, r, scope, sizeof(scope));
        local_resets(r, resets, sizeof(resets));
        if (show_rule)
            snprintf(rule, sizeof(rule), " (rule %s)", r->name);
        n = snprintf(body + o, sizeof(body) - o,
                     "%s: %u of %u minutes a %s used, %u left; they come back at %s%s\n", scope,
                     used, r->quota_min, r->quota_weekly ? "week" : "day", left, resets, rule);
        if (n < 0)
            break;
        o += (size_t)n;
        any = 1;
    }
    if (!any && o < sizeof(body))
        snprintf(body + o, sizeof(body) - o, "No quota applies.\n");
    body[sizeof(body) - 1] = '\0';
    *status = 200;
    return respond(out, size, 200, "text/plain; charset=utf-8", "", body);
}

size_t
local_answer(const struct snapshot *snap, const char *identity, const char *user, const char *roles,
             const char *target, time_t now, const struct tm *local, char *out, size_t size,
             int *status, const char **reason)
{
    (void)user;
    *reason = NULL;
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    if (plen == 9 && strncmp(target, "/continue", 9) == 0)
        return answer_continue(snap, identity, q ? q + 1 : "", now, out, size, status, reason);
    if (plen == 6 && strncmp(target, "/quota", 6) == 0)
        return answer_quota(snap, identity, roles, local, out, size, status);
    *status = 404;
    return errpage_format(out, size, 404, "No such page on socialgate.", "");
}
