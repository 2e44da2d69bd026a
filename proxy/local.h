/* Pages socialgate serves itself, for the host socialgate.local and for
 * its decisions: deny and warn pages, the Continue link, /quota (pure: no
 * libevent; the clock is passed in). Every function writes one complete
 * HTTP response into out and returns its length (0: did not fit). */
#ifndef SG_LOCAL_H
#define SG_LOCAL_H

#include <stddef.h>
#include <time.h>

struct snapshot;

#define LOCAL_HOST "socialgate.local"

/* 403 naming the platform, the rule (FILE:LINE) and its message. */
size_t local_deny_page(const struct snapshot *snap, int platform, int rule, char *out,
                       size_t size);
/* 403 with a Continue link that lets identity use the platform for the
 * rule's warn_for. `url` is the page asked for (http://...). */
size_t local_warn_page(const struct snapshot *snap, int platform, int rule, const char *url,
                       char *out, size_t size);
/* 407 with Proxy-Authenticate for the configured realm. */
size_t local_auth_page(const struct snapshot *snap, char *out, size_t size);
/* A request for socialgate.local: /continue?... records a Continue and
 * redirects, /quota lists minutes used and left. *status gets the code. */
size_t local_answer(const struct snapshot *snap, const char *identity, const char *user,
                    const char *roles, const char *target, time_t now, const struct tm *local,
                    char *out, size_t size, int *status);

#endif
