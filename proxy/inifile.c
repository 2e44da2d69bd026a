#include "inifile.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

struct reader {
    FILE *fp;          /* or NULL when reading from text */
    const char *text;  /* remaining text */
    const char *file;  /* display name */
    int line;          /* number of the line last returned */
    int continued;     /* libinih will take that line as a continuation */
    int key_seen;      /* a key since the last section header (libinih's
                        * prev_name is set): indented lines continue it */
    int too_long;      /* stopped on an over-long line */
    int bad_nul;
    int first_error;   /* first line the handler reported an error on */
    int section_line;  /* line of the last section header */
    inifile_handler fn;
    void *arg;
    struct diag *d;
};

static char *
read_line(char *str, int num, void *stream)
{
    struct reader *r = stream;
    size_t n = 0;
    int c = 0;

    if (r->too_long)
        return NULL;
    for (;;) {
        if (r->fp) {
            c = fgetc(r->fp);
            if (c == EOF)
                break;
        } else {
            if (*r->text == '\0')
                break;
            c = (unsigned char)*r->text++;
        }
        if (c == '\0')
            r->bad_nul = 1;
        if (n + 1 >= (size_t)num) {
            r->too_long = 1;
            diag_error(r->d, r->file, r->line + 1,
                       "line longer than %d bytes; continue long lists and messages on "
                       "indented lines",
                       num - 2);
            return NULL;
        }
        str[n++] = (char)c;
        if (c == '\n')
            break;
    }
    if (n == 0)
        return NULL;
    str[n] = '\0';
    r->line++;
    /* Mirror libinih: an indented line continues the previous key only
     * when there is one since the last section header; otherwise (first
     * key of a section, indented) it is an ordinary key. Comments and blank
     * lines change nothing. */
    const char *s = str;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f' || *s == '\v')
        s++;
    int comment = *s == '\0' || *s == ';' || *s == '#';
    r->continued = !comment && s > str && r->key_seen;
    if (!comment && !r->continued && *s == '[' && strchr(s, ']') != NULL) {
        r->key_seen = 0;
        r->section_line = r->line;
    }
    if (r->bad_nul) {
        diag_error(r->d, r->file, r->line, "NUL byte in file");
        r->too_long = 1;
        return NULL;
    }
    return str;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
    struct reader *r = user;
    int continued = r->continued;
    r->key_seen = 1;
    if (r->fn(r->arg, r->file, r->line, r->section_line, section, name, value, continued) < 0) {
        if (r->first_error == 0)
            r->first_error = r->line;
        return 0;
    }
    return 1;
}

static int
run(struct reader *r)
{
    int rc = ini_parse_stream(read_line, r, handler, r);
    if (r->too_long)
        return -1;
    /* libinih returns the first bad line only: a syntax error when no
     * handler error came first. */
    if (rc > 0 && (r->first_error == 0 || rc < r->first_error))
        diag_error(r->d, r->file, rc, "syntax error (expected [section] or key = value)");
    return rc < 0 ? -1 : 0;
}

int
inifile_parse(const char *path, const char *display_name, inifile_handler fn, void *arg,
              struct diag *d)
{
    struct reader r = {0};
    r.file = display_name ? display_name : path;
    r.fn = fn;
    r.arg = arg;
    r.d = d;
    r.fp = fopen(path, "r");
    if (r.fp == NULL) {
        diag_error(d, r.file, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    int rc = run(&r);
    if (ferror(r.fp)) {
        diag_error(d, r.file, r.line, "read error");
        rc = -1;
    }
    fclose(r.fp);
    return rc;
}

int
inifile_parse_string(const char *text, const char *display_name, inifile_handler fn, void *arg,
                     struct diag *d)
{
    struct reader r = {0};
    r.file = display_name;
    r.text = text;
    r.fn = fn;
    r.arg = arg;
    r.d = d;
    return run(&r);
}
