#include "pages.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errpage.h"

/* --- built-in templates (the same text as contrib/pages/KIND.html) ------ */

/* One stylesheet for every page; ACCENT colours the bar on top. No
 * external resource, no script. .rule and .contact are hidden when
 * empty (show_rule = no, no contact). */
#define HEAD(TITLE, ACCENT)                                                                        \
    "<!DOCTYPE html>\n"                                                                            \
    "<html lang=\"en\">\n"                                                                         \
    "<head>\n"                                                                                     \
    "<meta charset=\"utf-8\">\n"                                                                   \
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"                   \
    "<title>" TITLE "</title>\n"                                                                   \
    "<style>\n"                                                                                    \
    "body{margin:0;background:#f2f3f5;color:#1f2328;"                                              \
    "font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif}\n"                \
    "main{max-width:36em;margin:10vh auto 2em;padding:2em 2.5em;background:#fff;"                  \
    "border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15);border-top:6px solid " ACCENT "}\n"    \
    "h1{font-size:1.5em;line-height:1.25;margin:0 0 .75em}\n"                                      \
    ".site{color:#57606a;font-size:.95em}\n"                                                       \
    ".rule{color:#57606a;font-size:.9em}\n"                                                        \
    ".rule::before{content:\"Rule: \"}\n"                                                          \
    ".contact::before{content:\"Help: \"}\n"                                                       \
    ".rule:empty,.contact:empty{display:none}\n"                                                   \
    "a.button{display:inline-block;margin-top:.5em;padding:.55em 1.3em;border-radius:6px;"         \
    "background:" ACCENT ";color:#fff;text-decoration:none;font-weight:600}\n"                     \
    "footer{margin-top:1.75em;padding-top:1em;border-top:1px solid #d8dee4;color:#57606a;"         \
    "font-size:.9em}\n"                                                                            \
    "footer p{margin:.25em 0}\n"                                                                   \
    "</style>\n"                                                                                   \
    "</head>\n"                                                                                    \
    "<body>\n"                                                                                     \
    "<main>\n"

#define FOOT                                                                                       \
    "<footer>\n"                                                                                   \
    "<p class=\"contact\">{contact}</p>\n"                                                         \
    "<p>socialgate web gateway</p>\n"                                                              \
    "</footer>\n"                                                                                  \
    "</main>\n"                                                                                    \
    "</body>\n"                                                                                    \
    "</html>\n"

static const char *const builtin[PAGE_KINDS] = {
    [PAGE_DENY] = HEAD("Blocked: {host}", "#cf222e") "<h1>This site is blocked</h1>\n"
                                                     "<p>{message}</p>\n"
                                                     "<p class=\"site\">{host} ({platform})</p>\n"
                                                     "<p class=\"rule\">{rule}</p>\n" FOOT,
    [PAGE_WARN] = HEAD(
        "Warning: {host}",
        "#bf8700") "<h1>Warning: {platform}</h1>\n"
                   "<p>{message}</p>\n"
                   "<p>Continue only if you need it for your work; your visit is logged.</p>\n"
                   "<p><a href=\"{continue_url}\" class=\"button\">Continue to {host}</a></p>\n"
                   "<p class=\"rule\">{rule}</p>\n" FOOT,
    [PAGE_QUOTA] =
        HEAD("Time used up: {platform}",
             "#8250df") "<h1>Your time on {platform} is used up</h1>\n"
                        "<p>You have used {used_min} of your {quota_min} minutes on {platform}. "
                        "They come back at {resets}.</p>\n"
                        "<p>{message}</p>\n"
                        "<p class=\"site\">{host}</p>\n"
                        "<p class=\"rule\">{rule}</p>\n" FOOT,
    [PAGE_SIGNIN] = HEAD("Sign in", "#0969da") "<h1>Please sign in</h1>\n"
                                               "<p>{message}</p>\n"
                                               "<p class=\"site\">{host}</p>\n" FOOT,
    [PAGE_ERROR] = HEAD("Cannot reach {host}", "#57606a") "<h1>This site cannot be reached</h1>\n"
                                                          "<p>{message}</p>\n"
                                                          "<p class=\"site\">{host}</p>\n" FOOT,
};

static const char *const kind_names[PAGE_KINDS] = {"deny", "warn", "quota", "signin", "error"};

const char *
pages_builtin(enum page_kind kind)
{
    return (unsigned)kind < PAGE_KINDS ? builtin[kind] : "";
}

const char *
pages_kind_name(enum page_kind kind)
{
    return (unsigned)kind < PAGE_KINDS ? kind_names[kind] : "?";
}

int
pages_default_status(enum page_kind kind)
{
    switch (kind) {
    case PAGE_SIGNIN:
        return 407;
    case PAGE_ERROR:
        return 502;
    default:
        return 403;
    }
}

/* --- rendering ------------------------------------------------------------ */

static const char *const names[] = {"message",  "platform",  "category", "host",
                                    "user",     "rule",      "contact",  "continue_url",
                                    "used_min", "quota_min", "resets"};
#define NNAMES (sizeof(names) / sizeof(names[0]))
#define MAX_NAME 32

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void
put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 1024;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* s HTML-escaped; control bytes (but tab) are left out. */
static void
put_escaped(struct buf *b, const char *s)
{
    for (const char *q = s; q && *q; q++) {
        switch (*q) {
        case '<':
            put(b, "&lt;", 4);
            break;
        case '>':
            put(b, "&gt;", 4);
            break;
        case '&':
            put(b, "&amp;", 5);
            break;
        case '"':
            put(b, "&quot;", 6);
            break;
        case '\'':
            put(b, "&#39;", 5);
            break;
        default:
            if ((unsigned char)*q >= 0x20 && *q != 0x7f)
                put(b, q, 1);
        }
    }
}

/* The length of a placeholder's name at s (just after '{'), when it is
 * one: a-z and _, then '}'. 0: not a placeholder's shape. */
static size_t
name_len(const char *s)
{
    size_t n = 0;
    while (n < MAX_NAME && ((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_'))
        n++;
    return n > 0 && s[n] == '}' ? n : 0;
}

static int
name_index(const char *s, size_t n)
{
    for (size_t i = 0; i < NNAMES; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return (int)i;
    return -1;
}

/* The default sentence of kind, for a page without a message. */
static void
default_message(enum page_kind kind, const struct page_vars *v, char *out, size_t size)
{
    const char *host = v->host && *v->host ? v->host : "this site";
    const char *pf = v->platform && *v->platform ? v->platform : host;
    switch (kind) {
    case PAGE_DENY:
        snprintf(out, size, "Access to %s is not allowed by the company's web policy.", host);
        break;
    case PAGE_WARN:
        snprintf(out, size, "The company's web policy asks you to think twice before using %s.",
                 pf);
        break;
    case PAGE_QUOTA:
        snprintf(out, size, "The time the company's web policy allows on %s is used up.", pf);
        break;
    case PAGE_SIGNIN:
        snprintf(out, size, "Sign in with your user name and password to use the web gateway.");
        break;
    default:
        snprintf(out, size, "%s could not be reached.", host);
        break;
    }
}

char *
pages_render_body(const struct pages *p, enum page_kind kind, const struct page_vars *v,
                  size_t *len)
{
    if ((unsigned)kind >= PAGE_KINDS)
        kind = PAGE_ERROR;
    const char *t = p && p->tmpl[kind] ? p->tmpl[kind] : builtin[kind];
    char msg[512], used[24] = "", quota[24] = "";
    const char *message = v->message;
    if (message == NULL || *message == '\0') {
        default_message(kind, v, msg, sizeof(msg));
        message = msg;
    }
    if (v->used_min >= 0)
        snprintf(used, sizeof(used), "%ld", v->used_min);
    if (v->quota_min >= 0)
        snprintf(quota, sizeof(quota), "%ld", v->quota_min);
    const char *values[NNAMES] = {
        message,
        v->platform,
        v->category,
        v->host,
        v->user,
        p && p->show_rule ? v->rule : NULL,
        p ? p->contact : NULL,
        v->continue_url,
        used,
        quota,
        v->resets,
    };
    struct buf b = {0};
    put(&b, "", 0);
    const char *s = t;
    while (*s) {
        const char *open = strchr(s, '{');
        if (open == NULL) {
            put(&b, s, strlen(s));
            break;
        }
        put(&b, s, (size_t)(open - s));
        size_t n = name_len(open + 1);
        int idx = n ? name_index(open + 1, n) : -1;
        if (idx < 0) { /* not ours: as written */
            put(&b, open, 1);
            s = open + 1;
            continue;
        }
        put_escaped(&b, values[idx]);
        s = open + 1 + n + 1;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

size_t
pages_render(const struct pages *p, enum page_kind kind, const struct page_vars *v, char **out)
{
    *out = NULL;
    size_t blen;
    char *body = pages_render_body(p, kind, v, &blen);
    if (body == NULL)
        return 0;
    int status = v->status ? v->status : pages_default_status(kind);
    const char *extra = v->extra_headers ? v->extra_headers : "";
    char head[1024];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                      "Content-Length: %zu\r\nCache-Control: no-store\r\n",
                      status, errpage_reason_phrase(status), blen);
    size_t elen = strlen(extra);
    const char *tail = v->keep_alive ? "\r\n" : "Connection: close\r\n\r\n";
    size_t tlen = strlen(tail);
    size_t total = (size_t)hn + elen + tlen + blen;
    char *r = hn > 0 && (size_t)hn < sizeof(head) ? malloc(total + 1) : NULL;
    if (r == NULL) {
        free(body);
        return 0;
    }
    size_t o = 0;
    memcpy(r + o, head, (size_t)hn);
    o += (size_t)hn;
    memcpy(r + o, extra, elen);
    o += elen;
    memcpy(r + o, tail, tlen);
    o += tlen;
    memcpy(r + o, body, blen);
    o += blen;
    r[o] = '\0';
    free(body);
    *out = r;
    return o;
}

/* --- loading -------------------------------------------------------------- */

void
pages_check(const char *text, const char *file, struct diag *d)
{
    int line = 1;
    for (const char *s = text; *s; s++) {
        if (*s == '\n')
            line++;
        if (*s != '{')
            continue;
        size_t n = name_len(s + 1);
        if (n && name_index(s + 1, n) < 0)
            diag_warning(d, file, line,
                         "{%.*s} is not a placeholder and is shown as written (expected "
                         "message, platform, category, host, user, rule, contact, "
                         "continue_url, used_min, quota_min or resets)",
                         (int)n, s + 1);
    }
}

/* Reads path into *out (owned). 1: read, 0: no such file, -1: an error in d. */
static int
read_template(const char *path, char **out, struct diag *d)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        diag_error(d, path, 0, "cannot read the page template: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        diag_error(d, path, 0, "cannot read the page template: not a regular file");
        close(fd);
        return -1;
    }
    if (st.st_size > PAGES_MAX_TEMPLATE) {
        diag_error(d, path, 0, "page template larger than %d KiB", PAGES_MAX_TEMPLATE / 1024);
        close(fd);
        return -1;
    }
    /* One byte more than the limit: a file that grew since fstat is refused too. */
    char *t = malloc(PAGES_MAX_TEMPLATE + 2);
    if (t == NULL) {
        diag_error(d, path, 0, "out of memory");
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < PAGES_MAX_TEMPLATE + 1) {
        ssize_t r = read(fd, t + got, PAGES_MAX_TEMPLATE + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            diag_error(d, path, 0, "cannot read the page template: %s", strerror(errno));
            close(fd);
            free(t);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    t[got] = '\0';
    if (got > PAGES_MAX_TEMPLATE) {
        diag_error(d, path, 0, "page template larger than %d KiB", PAGES_MAX_TEMPLATE / 1024);
        free(t);
        return -1;
    }
    if (memchr(t, '\0', got) != NULL) {
        diag_error(d, path, 0, "NUL byte in the page template");
        free(t);
        return -1;
    }
    *out = t;
    return 1;
}

int
pages_load(struct pages *p, const char *folder, struct diag *d)
{
    int rc = 0;
    for (int k = 0; k < PAGE_KINDS; k++) {
        char path[4200];
        int n = snprintf(path, sizeof(path), "%s/%s.html", folder, kind_names[k]);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            diag_error(d, folder, 0, "folder name too long");
            return -1;
        }
        char *t;
        int r = read_template(path, &t, d);
        if (r < 0)
            rc = -1;
        if (r <= 0)
            continue;
        pages_check(t, path, d);
        free(p->tmpl[k]);
        p->tmpl[k] = t;
    }
    return rc;
}

void
pages_free(struct pages *p)
{
    if (p == NULL)
        return;
    for (int k = 0; k < PAGE_KINDS; k++)
        free(p->tmpl[k]);
    free(p->contact);
    memset(p, 0, sizeof(*p));
}
