/* A list of "FILE:LINE: message" problems collected while loading
 * configuration (pure). Owned by whoever made it; free with diag_free. */
#ifndef SG_DIAG_H
#define SG_DIAG_H

#include <stddef.h>

struct diag {
    char **msgs;
    size_t n, cap;
    size_t errors;   /* messages that make the load fail */
    size_t warnings; /* messages that do not */
};

void diag_error(struct diag *d, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_warning(struct diag *d, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_free(struct diag *d);

#endif
