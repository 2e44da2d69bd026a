#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
vadd(struct diag *d, const char *kind, const char *file, int line, const char *fmt, va_list ap)
{
    char msg[1024], full[1400];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (line > 0)
        snprintf(full, sizeof(full), "%s:%d: %s%s", file, line, kind, msg);
    else
        snprintf(full, sizeof(full), "%s: %s%s", file, kind, msg);
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 8;
        char **nv = realloc(d->msgs, ncap * sizeof(*nv));
        if (nv == NULL)
            return; /* out of memory: the count below still fails the load */
        d->msgs = nv;
        d->cap = ncap;
    }
    char *s = strdup(full);
    if (s != NULL)
        d->msgs[d->n++] = s;
}

void
diag_error(struct diag *d, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(d, "", file, line, fmt, ap);
    va_end(ap);
    d->errors++;
}

void
diag_warning(struct diag *d, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(d, "warning: ", file, line, fmt, ap);
    va_end(ap);
    d->warnings++;
}

void
diag_free(struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    memset(d, 0, sizeof(*d));
}
