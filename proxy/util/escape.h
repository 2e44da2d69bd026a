/* Escaping of usage-log values (pure). */
#ifndef SG_ESCAPE_H
#define SG_ESCAPE_H

#include <stddef.h>

/* Writes `v` as one usage-log value into out (always NUL-terminated):
 * "-" when empty; as is when every byte is printable ASCII other than '"',
 * '\' and '\''; otherwise in double quotes with \" \\ and \xHH for spaces,
 * control and non-ASCII bytes (PRODUCT.md, "The usage log"). A value never
 * holds a raw space, so a line never breaks, awk's columns never move and
 * no value can pass for another field (` user=alice `). A value that does
 * not fit is cut at a character boundary and ends with "...". Returns the
 * length written. */
size_t escape_log_value(const char *v, size_t len, char *out, size_t outsz);

#endif
