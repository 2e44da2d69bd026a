/* Error responses: a status line, headers and a short HTML page naming the
 * cause (pure). */
#ifndef SG_ERRPAGE_H
#define SG_ERRPAGE_H

#include <stddef.h>

const char *errpage_reason_phrase(int status);
/* Writes a complete response with Connection: close into buf. `detail` is
 * plain text (HTML-escaped here). `extra_headers` is "" or CRLF-terminated
 * header lines. Returns the length, or 0 when it does not fit. */
size_t errpage_format(char *buf, size_t size, int status, const char *detail,
                      const char *extra_headers);

/* The same with a link under the text (warn pages: Continue). */
size_t errpage_format_link(char *buf, size_t size, int status, const char *detail,
                           const char *link_text, const char *link_url,
                           const char *extra_headers);

#endif
