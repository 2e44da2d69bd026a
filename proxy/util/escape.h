/* Escaping of usage-log values (pure). */
#ifndef SG_ESCAPE_H
#define SG_ESCAPE_H

#include <stddef.h>

/* Writes `v` as one usage-log value into out (always NUL-terminated):
 * "-" when empty; as is when every byte is printable ASCII other than '"',
 * '\' and '\''; otherwise in double quotes with \" \\ and \xHH for control and
 * non-ASCII bytes, so a line never breaks and awk splits on spaces. A value
 * that does not fit is cut at a character boundary and ends with "...".
 * Returns the length written. */
size_t escape_log_value(const char *v, size_t len, char *out, size_t outsz);

#endif
