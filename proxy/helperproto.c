#include "helperproto.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int
helperproto_escape(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    if (size == 0)
        return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            if (n + 1 >= size)
                goto full;
            out[n++] = (char)*p;
        } else {
            if (n + 3 >= size)
                goto full;
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return (int)n;
full:
    out[n] = '\0';
    return -1;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t
helperproto_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hexval((unsigned char)r[1])) >= 0 &&
            (lo = hexval((unsigned char)r[2])) >= 0) {
            *w++ = (char)(hi << 4 | lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static int
pair_request(const char *a, const char *b, char *out, size_t size)
{
    int n = helperproto_escape(a, out, size);
    if (n < 0 || (size_t)n + 2 >= size)
        return -1;
    out[n++] = ' ';
    int m = helperproto_escape(b, out + n, size - (size_t)n);
    if (m < 0 || (size_t)(n + m) + 1 >= size)
        return -1;
    n += m;
    out[n++] = '\n';
    out[n] = '\0';
    return n;
}

int
helperproto_basic_request(const char *user, const char *password, char *out, size_t size)
{
    return pair_request(user, password, out, size);
}

int
helperproto_group_request(const char *user, const char *group, char *out, size_t size)
{
    return pair_request(user, group, out, size);
}

int
helperproto_negotiate_request(int first, const char *token, char *out, size_t size)
{
    size_t len = strlen(token);
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (!isalnum(c) && c != '+' && c != '/' && c != '=')
            return -1;
    }
    if (len + 4 >= size)
        return -1;
    memcpy(out, first ? "YR " : "KK ", 3);
    memcpy(out + 3, token, len);
    out[3 + len] = '\n';
    out[4 + len] = '\0';
    return (int)len + 4;
}

int
helperproto_split_channel(const char *line, size_t len, unsigned long *id, const char **rest,
                          size_t *rest_len)
{
    size_t i = 0;
    unsigned long v = 0;
    while (i < len && line[i] >= '0' && line[i] <= '9') {
        if (v > 99999999UL)
            return -1;
        v = v * 10 + (unsigned long)(line[i] - '0');
        i++;
    }
    if (i == 0)
        return -1;
    size_t end = len;
    while (end > i && (line[end - 1] == '\n' || line[end - 1] == '\r'))
        end--;
    if (i < end && line[i] != ' ')
        return -1;
    if (i < end)
        i++;
    *id = v;
    *rest = line + i;
    *rest_len = end - i;
    return 0;
}

const char *
helperproto_code_name(enum helper_code c)
{
    switch (c) {
    case HELPER_CODE_OK:
        return "OK";
    case HELPER_CODE_ERR:
        return "ERR";
    case HELPER_CODE_BH:
        return "BH";
    case HELPER_CODE_TT:
        return "TT";
    default:
        return "garbage";
    }
}

const char *
helperproto_note(const struct helper_reply *r, const char *key)
{
    for (size_t i = 0; i < r->nnotes; i++)
        if (strcmp(r->notes[i].key, key) == 0)
            return r->notes[i].value;
    return NULL;
}

/* Reads one value at *p (bare up to a blank, URL-decoded; or "quoted"
 * with backslash escapes), in place; advances *p past it. NULL when a
 * quote is not closed. */
static char *
take_value(char **p)
{
    char *s = *p;
    if (*s == '"') {
        char *w = s, *r = s + 1;
        for (;;) {
            if (*r == '\0')
                return NULL;
            if (*r == '"')
                break;
            if (*r == '\\' && r[1] != '\0') {
                r++;
                switch (*r) {
                case 'n':
                    *w++ = '\n';
                    break;
                case 'r':
                    *w++ = '\r';
                    break;
                case 't':
                    *w++ = '\t';
                    break;
                default:
                    *w++ = *r;
                }
                r++;
                continue;
            }
            *w++ = *r++;
        }
        *w = '\0';
        *p = r + 1;
        if (**p != '\0' && **p != ' ' && **p != '\t')
            return NULL; /* junk glued after the closing quote */
        return s;
    }
    char *e = s;
    while (*e && *e != ' ' && *e != '\t')
        e++;
    *p = *e ? e + 1 : e;
    *e = '\0';
    helperproto_unescape(s);
    return s;
}

static void
skip_blanks(char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
}

static int
valid_key(const char *k)
{
    if (*k == '\0')
        return 0;
    for (; *k; k++)
        if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-')
            return 0;
    return 1;
}

/* key=value notes up to the end. 0, or -1 on a malformed one. */
static int
parse_notes(char *p, struct helper_reply *r)
{
    for (;;) {
        skip_blanks(&p);
        if (*p == '\0')
            return 0;
        char *key = p;
        char *eq = p;
        while (*eq && *eq != '=' && *eq != ' ' && *eq != '\t')
            eq++;
        if (*eq != '=')
            return -1;
        *eq = '\0';
        if (!valid_key(key))
            return -1;
        p = eq + 1;
        char *v = take_value(&p);
        if (v == NULL)
            return -1;
        if (r->nnotes < HELPER_MAX_NOTES) {
            r->notes[r->nnotes].key = key;
            r->notes[r->nnotes].value = v;
            r->nnotes++;
        }
    }
}

/* base64: '=' only as trailing padding. */
static int
is_token(const char *t)
{
    if (*t == '\0')
        return 0;
    for (; *t && *t != '='; t++)
        if (!isalnum((unsigned char)*t) && *t != '+' && *t != '/')
            return 0;
    while (*t == '=')
        t++;
    return *t == '\0';
}

/* The old free-text tail ("NA reason", "BH reason") as message=. */
static void
free_text(char *p, struct helper_reply *r)
{
    skip_blanks(&p);
    if (*p && r->nnotes < HELPER_MAX_NOTES) {
        r->notes[r->nnotes].key = (char *)"message";
        r->notes[r->nnotes].value = p;
        r->nnotes++;
    }
}

static void
garbage(struct helper_reply *r)
{
    r->code = HELPER_CODE_GARBAGE;
    r->nnotes = 0;
}

int
helperproto_parse_reply(const char *line, size_t len, int negotiate, struct helper_reply *r)
{
    memset(r, 0, sizeof(*r));
    r->code = HELPER_CODE_GARBAGE;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len > HELPER_MAX_LINE || memchr(line, '\0', len) != NULL)
        return 0;
    r->buf = malloc(len + 1);
    if (r->buf == NULL)
        return -1;
    memcpy(r->buf, line, len);
    r->buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (r->buf[i] == '\n' || r->buf[i] == '\r')
            return 0; /* one line only */
    char *p = r->buf;
    char *word = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    size_t wl = (size_t)(p - word);
    if (*p)
        *p++ = '\0';
    if (wl == 2 && memcmp(word, "OK", 2) == 0) {
        r->code = HELPER_CODE_OK;
        if (parse_notes(p, r) < 0)
            garbage(r);
    } else if ((wl == 3 && memcmp(word, "ERR", 3) == 0) ||
               (wl == 2 && memcmp(word, "BH", 2) == 0)) {
        r->code = wl == 3 ? HELPER_CODE_ERR : HELPER_CODE_BH;
        /* "ERR message=..." or the old "ERR free text" (basic_ldap_auth's
         * "ERR Invalid credentials"): either way a no; the same for BH. */
        char *copy = p;
        char *save = strdup(p);
        if (save == NULL)
            return -1;
        if (parse_notes(copy, r) < 0) {
            r->nnotes = 0;
            strcpy(copy, save);
            free_text(copy, r);
        }
        free(save);
        /* Squid 5's basic_ldap_auth answers "BH Success" for a wrong
         * password or an unknown name (it reads the LDAP error after the
         * bind's connection is gone), and also when its search failed: a
         * no, but not one to remember. */
        if (!negotiate && r->code == HELPER_CODE_BH && r->nnotes == 1 &&
            strcmp(r->notes[0].key, "message") == 0 && strcmp(r->notes[0].value, "Success") == 0) {
            r->code = HELPER_CODE_ERR;
            r->uncertain = 1;
        }
    } else if (negotiate && wl == 2 && memcmp(word, "TT", 2) == 0) {
        r->code = HELPER_CODE_TT;
        skip_blanks(&p);
        if (strchr(p, '=') != NULL && (!is_token(p) || strncmp(p, "token=", 6) == 0)) {
            if (parse_notes(p, r) < 0) /* "TT token=..." */
                garbage(r);
        } else if (is_token(p)) { /* old form: "TT token" */
            r->notes[0].key = (char *)"token";
            r->notes[0].value = p;
            r->nnotes = 1;
        }
    } else if (negotiate && wl == 2 && memcmp(word, "AF", 2) == 0) {
        /* "AF token user" (user may be "user@REALM"); Squid 3.4+ also
         * sends "AF = user" when there is no token. */
        r->code = HELPER_CODE_OK;
        skip_blanks(&p);
        char *tok = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
        skip_blanks(&p);
        char *user = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
        skip_blanks(&p);
        if (*user == '\0' || *p != '\0' || (strcmp(tok, "=") != 0 && !is_token(tok))) {
            garbage(r);
        } else {
            helperproto_unescape(user);
            if (strcmp(tok, "=") != 0) {
                r->notes[r->nnotes].key = (char *)"token";
                r->notes[r->nnotes++].value = tok;
            }
            r->notes[r->nnotes].key = (char *)"user";
            r->notes[r->nnotes++].value = user;
        }
    } else if (negotiate && wl == 2 && memcmp(word, "NA", 2) == 0) {
        r->code = HELPER_CODE_ERR;
        /* "NA token message" or "NA message": the text is the message. */
        free_text(p, r);
    }
    if (r->code == HELPER_CODE_GARBAGE)
        r->nnotes = 0;
    r->user = helperproto_note(r, "user");
    r->token = helperproto_note(r, "token");
    r->message = helperproto_note(r, "message");
    r->log = helperproto_note(r, "log");
    if (r->code == HELPER_CODE_TT && (r->token == NULL || !is_token(r->token))) {
        garbage(r);
        r->user = r->token = r->message = r->log = NULL;
    }
    return 0;
}

void
helperproto_reply_free(struct helper_reply *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

void
helperproto_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

char **
helperproto_argv(const char *cmdline, int *concurrency, const char **err)
{
    size_t cap = 8, n = 0;
    char **argv = calloc(cap, sizeof(*argv));
    char *word = malloc(strlen(cmdline) + 1);
    *concurrency = 0;
    *err = "out of memory";
    if (argv == NULL || word == NULL)
        goto fail;
    const char *p = cmdline;
    int first = 1;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        size_t w = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '"' || *p == '\'') {
                char q = *p++;
                while (*p && *p != q)
                    word[w++] = *p++;
                if (*p != q) {
                    *err = "a quote is not closed";
                    goto fail;
                }
                p++;
            } else {
                word[w++] = *p++;
            }
        }
        word[w] = '\0';
        if (first && strncmp(word, "concurrency=", 12) == 0) {
            first = 0;
            char *end;
            long v = strtol(word + 12, &end, 10);
            if (*end != '\0' || end == word + 12 || v < 0 || v > 1000) {
                *err = "concurrency= needs a number from 0 to 1000";
                goto fail;
            }
            *concurrency = (int)v;
            continue;
        }
        first = 0;
        if (n + 2 > cap) {
            cap *= 2;
            char **na = realloc(argv, cap * sizeof(*argv));
            if (na == NULL)
                goto fail;
            argv = na;
        }
        argv[n] = strdup(word);
        if (argv[n] == NULL)
            goto fail;
        argv[++n] = NULL;
    }
    if (n == 0) {
        *err = "no program given";
        goto fail;
    }
    free(word);
    *err = NULL;
    return argv;
fail:
    free(word);
    helperproto_argv_free(argv);
    return NULL;
}

static int
executable(const char *path, char *why, size_t size)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(why, size, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, size, "%s: not a file", path);
        return -1;
    }
    if (access(path, X_OK) < 0) {
        snprintf(why, size, "%s: not executable", path);
        return -1;
    }
    return 0;
}

int
helperproto_check_program(const char *cmdline, const char *dir, char *why, size_t size)
{
    int conc;
    const char *err;
    char **argv = helperproto_argv(cmdline, &conc, &err);
    if (argv == NULL) {
        snprintf(why, size, "%s", err);
        return -1;
    }
    int rc = -1;
    char path[4096];
    if (argv[0][0] == '/') {
        rc = executable(argv[0], why, size);
    } else if (strchr(argv[0], '/') != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir ? dir : ".", argv[0]);
        rc = executable(path, why, size);
    } else {
        const char *pathenv = getenv("PATH");
        if (pathenv == NULL)
            pathenv = "/usr/local/bin:/usr/bin:/bin";
        const char *p = pathenv;
        while (rc < 0 && *p) {
            const char *e = strchr(p, ':');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            snprintf(path, sizeof(path), "%.*s/%s", (int)n, n ? p : ".", argv[0]);
            char ignored[8];
            rc = executable(path, ignored, sizeof(ignored));
            p += n + (e ? 1 : 0);
        }
        if (rc < 0)
            snprintf(why, size, "%s: not found in PATH", argv[0]);
    }
    helperproto_argv_free(argv);
    return rc;
}
