/* Error responses: a status line, headers and a short HTML page naming the
 * cause (pure). */
#ifndef SG_ERRPAGE_H
#define SG_ERRPAGE_H

#include <stddef.h>
#include <stdint.h>

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

/* Why an origin could not be reached, in the words of the 502/504 page. */
enum errpage_upstream {
    ERRPAGE_NAME_UNKNOWN, /* the name does not exist (NXDOMAIN, no such host) */
    ERRPAGE_NAME_FAILED,  /* the name servers failed or did not answer */
    ERRPAGE_REFUSED,      /* the origin refused the connection */
    ERRPAGE_UNREACHABLE,  /* no route to the origin */
    ERRPAGE_TIMEOUT,      /* no answer to the connect */
    ERRPAGE_FAILED,       /* anything else */
};

/* The kind of a failed connect's errno (0: no address was tried). */
enum errpage_upstream errpage_connect_error(int err);
/* Writes the page text for an origin host:port that could not be reached:
 * "The name HOST does not exist.", "HOST refused the connection on port
 * P.", "HOST did not answer in 10 s." (timeout_ms: how long was waited, 0
 * when unknown), ... Never a resolver's or the C library's message.
 * Returns the length (truncated to fit, NUL-terminated). */
size_t errpage_upstream_text(char *buf, size_t size, enum errpage_upstream why, const char *host,
                             unsigned port, uint64_t timeout_ms);

#endif
