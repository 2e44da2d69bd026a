#include "local.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "decision.h"
#include "errpage.h"
#include "policy.h"
#include "snapshot.h"
#include "usage.h"

static const char *
platform_name(const struct snapshot *snap, int platform)
{
    const struct catalog_platform *p = catalog_platform(snap->rules->catalog, platform);
    return p ? p->name : "unclassified";
}

size_t
local_deny_page(const struct snapshot *snap, int platform, int rule, char *out, size_t size)
{
    const struct policy_rule *r = policy_rule(snap->rules->policy, (size_t)rule);
    char detail[1024];
    snprintf(detail, sizeof(detail), "Access to %s is blocked by rule '%s' (%s:%d).%s%s",
             platform_name(snap, platform), r ? r->name : "-", r ? r->file : "-",
             r ? r->line : 0, r && r->message ? " " : "", r && r->message ? r->message : "");
    return errpage_format(out, size, 403, detail, "");
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

size_t
local_warn_page(const struct snapshot *snap, int platform, int rule, const char *url, char *out,
                size_t size)
{
    const struct policy_rule *r = policy_rule(snap->rules->policy, (size_t)rule);
    /* to: room for the whole link in the page (errpage escapes it into
     * 1536 bytes) */
    char detail[1024], link[2048], to[1024], rn[200];
    const char *pn = platform_name(snap, platform);
    snprintf(detail, sizeof(detail),
             "%s is subject to rule '%s'.%s%s Continue if you need it for work; your visit is "
             "logged.",
             pn, r ? r->name : "-", r && r->message ? " " : "", r && r->message ? r->message : "");
    url_encode(r ? r->name : "", rn, sizeof(rn));
    /* A page address too long for the link is left out rather than cut:
     * the Continue is still recorded, the user just is not sent back. */
    if (url && strncmp(url, "http://", 7) == 0 && url_encode(url, to, sizeof(to)) == 0)
        snprintf(link, sizeof(link), "http://%s/continue?p=%s&r=%s&to=%s", LOCAL_HOST, pn, rn,
                 to);
    else
        snprintf(link, sizeof(link), "http://%s/continue?p=%s&r=%s", LOCAL_HOST, pn, rn);
    return errpage_format_link(out, size, 403, detail, "Continue", link, "");
}

size_t
local_auth_page(const struct snapshot *snap, char *out, size_t size)
{
    char hdr[400];
    snprintf(hdr, sizeof(hdr), "Proxy-Authenticate: Basic realm=\"%s\"\r\n",
             snap->cfg->auth_realm);
    return errpage_format(out, size, 407, "Please sign in to use the web gateway.", hdr);
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

static size_t
answer_continue(const struct snapshot *snap, const char *identity, const char *q, time_t now,
                char *out, size_t size, int *status)
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
    for (size_t i = 0; i < policy_rule_count(pol); i++)
        if (strcmp(policy_rule(pol, i)->name, rn) == 0)
            r = policy_rule(pol, i);
    if (r == NULL || r->action != POLICY_WARN || !policy_rule_has_platform(r, cat, pidx)) {
        *status = 400;
        return errpage_format(out, size, 400, "This Continue link is out of date.", "");
    }
    usage_continue_set(identity, p, (int64_t)now + (int64_t)(r->warn_for_ms / 1000));
    if (query_param(q, "to", to, sizeof(to)) == 0 && strncmp(to, "http://", 7) == 0 &&
        strpbrk(to, " \"<>") == NULL) {
        char hdr[1400];
        snprintf(hdr, sizeof(hdr), "Location: %s\r\n", to);
        *status = 302;
        return respond(out, size, 302, "text/plain", hdr, "Continue recorded.\n");
    }
    *status = 200;
    return respond(out, size, 200, "text/plain", "", "Continue recorded.\n");
}

static size_t
answer_quota(const struct snapshot *snap, const char *identity, const char *roles,
             const struct tm *local, char *out, size_t size, int *status)
{
    const struct policy *pol = snap->rules->policy;
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
        n = snprintf(body + o, sizeof(body) - o, "rule %s: %u of %u minutes used per %s, %u left\n",
                     r->name, used, r->quota_min, r->quota_weekly ? "week" : "day", left);
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
local_answer(const struct snapshot *snap, const char *identity, const char *user,
             const char *roles, const char *target, time_t now, const struct tm *local,
             char *out, size_t size, int *status)
{
    (void)user;
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    if (plen == 9 && strncmp(target, "/continue", 9) == 0)
        return answer_continue(snap, identity, q ? q + 1 : "", now, out, size, status);
    if (plen == 6 && strncmp(target, "/quota", 6) == 0)
        return answer_quota(snap, identity, roles, local, out, size, status);
    *status = 404;
    return errpage_format(out, size, 404, "No such page on socialgate.", "");
}
