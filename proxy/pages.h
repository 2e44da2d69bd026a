/* The pages people read: a denial, a warning with Continue, a used-up
 * quota, a sign-in request, an upstream error ([pages] in proxy.ini).
 * Pure: no libevent, no clock, no logging; file I/O only in pages_load.
 *
 * A page is a template with placeholders {message} {platform} {category}
 * {host} {user} {rule} {contact} {continue_url} {used_min} {quota_min}
 * {resets}; every value is HTML-escaped where it is put. Any other {name}
 * is left as written (pages_load warns about it). Each kind has a built-in
 * template (pages_builtin), the same text as contrib/pages/KIND.html; a
 * file KIND.html in [pages] folder replaces it. A page never shows a file
 * path, and {rule} is empty unless [pages] show_rule = yes. */
#ifndef SG_PAGES_H
#define SG_PAGES_H

#include <stddef.h>

#include "diag.h"

enum page_kind {
    PAGE_DENY,   /* 403: a rule denies */
    PAGE_WARN,   /* 403, titled as a warning: a warn rule, with its Continue link */
    PAGE_QUOTA,  /* 403: a quota that allowed it is used up */
    PAGE_SIGNIN, /* 407: sign in first (pass Proxy-Authenticate in extra_headers) */
    PAGE_ERROR,  /* 502 or 504 (page_vars.status): the origin could not be reached */
    PAGE_KINDS
};

/* The largest template file pages_load accepts. */
#define PAGES_MAX_TEMPLATE (64 * 1024)

/* What pages are made of: [pages] settings and the templates read from
 * its folder. Immutable once loaded (part of the snapshot: a reload swaps
 * it whole). A zeroed struct is valid: built-in pages, no contact, no rule
 * names. */
struct pages {
    char *tmpl[PAGE_KINDS]; /* owned; NULL: the built-in template */
    char *contact;          /* owned; NULL: none ({contact} is empty) */
    int show_rule;          /* {rule} holds the rule's name; else empty */
};

/* The values of one page. NULL strings are empty; numbers < 0 are empty. */
struct page_vars {
    int status;                /* 0: the kind's own (403, 403, 403, 407, 502) */
    const char *message;       /* the rule's message, or the error's words;
                                * NULL or "": the kind's default sentence */
    const char *platform;      /* "facebook", "unclassified" */
    const char *category;      /* "social" */
    const char *host;          /* the host asked for */
    const char *user;          /* the identity: user name or client address */
    const char *rule;          /* the deciding rule's name (shown only with show_rule) */
    const char *continue_url;  /* PAGE_WARN: the Continue link */
    long used_min;             /* PAGE_QUOTA: minutes used in this period */
    long quota_min;            /* PAGE_QUOTA: the rule's quota in minutes */
    const char *resets;        /* PAGE_QUOTA: when minutes come back: "00:00",
                                * "Monday 00:00" */
    const char *extra_headers; /* "" / NULL, or CRLF-terminated header lines */
    int keep_alive;            /* no Connection: close (the connection stays open) */
};

/* Renders the page of `kind` with the values v into a complete HTTP/1.1
 * response: status line, Content-Type: text/html; charset=utf-8,
 * Content-Length, Cache-Control: no-store, v->extra_headers, Connection:
 * close, the body. p may be NULL (built-in pages, no contact). *out gets
 * the malloc'd response (free with free(); not NUL-terminated for the
 * caller's purposes, though a NUL follows it). Returns its length, or 0
 * when out of memory (*out is then NULL). */
size_t pages_render(const struct pages *p, enum page_kind kind, const struct page_vars *v,
                    char **out);

/* The body alone (the template filled in), malloc'd and NUL-terminated;
 * *len gets its length. NULL when out of memory. */
char *pages_render_body(const struct pages *p, enum page_kind kind, const struct page_vars *v,
                        size_t *len);

/* The built-in template of kind. */
const char *pages_builtin(enum page_kind kind);
/* "deny", "warn", "quota", "signin", "error": the file is NAME.html. */
const char *pages_kind_name(enum page_kind kind);
/* The status line's code for kind when page_vars.status is 0. */
int pages_default_status(enum page_kind kind);

/* Reads FOLDER/KIND.html for each kind into p->tmpl (a missing file keeps
 * the built-in page). An unreadable file, one over PAGES_MAX_TEMPLATE or
 * one with a NUL byte is an error "FILE: message" in d; an unknown
 * placeholder a warning "FILE:LINE: ...". 0, or -1 after errors (p then
 * holds what could be read; free it with pages_free). */
int pages_load(struct pages *p, const char *folder, struct diag *d);
/* Warns in d about each {name} in text that is no placeholder; `file`
 * names text in the messages. */
void pages_check(const char *text, const char *file, struct diag *d);
/* Frees what p owns (not p itself); p is zeroed. */
void pages_free(struct pages *p);

#endif
