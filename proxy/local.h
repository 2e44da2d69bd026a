/* Pages socialgate serves itself, for the host socialgate.local and for
 * its decisions: deny and warn pages, the Continue link, /quota (pure: no
 * libevent; the clock is passed in). Every function writes one complete
 * HTTP response into out and returns its length (0: did not fit). */
#ifndef SG_LOCAL_H
#define SG_LOCAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct snapshot;
struct policy_rule;
struct tm;

#define LOCAL_HOST "socialgate.local"

/* A warn page's Continue link carries a token, an HMAC-SHA256 under a key
 * the gateway keeps in state_dir (shared by a pool of gateways), over the
 * identity shown the page, the platform, the rule and the link's expiry:
 * no other page can make a browser skip the warning. */
#define LOCAL_CONTINUE_KEY_FILE "continue.key"
#define LOCAL_CONTINUE_KEY_LEN 32
#define LOCAL_CONTINUE_TOKEN_LEN 64 /* hex digits */
/* How long a Continue link works after its warn page was shown. */
#define LOCAL_CONTINUE_LINK_SECONDS 600

/* The token of a Continue link into out (LOCAL_CONTINUE_TOKEN_LEN lowercase
 * hex digits and a NUL): HMAC-SHA256 under key (LOCAL_CONTINUE_KEY_LEN
 * bytes) over identity, platform, rule and expiry (seconds since the
 * epoch). 0, or -1 (inputs too long; out is then empty). */
int local_continue_token(const uint8_t *key, const char *identity, const char *platform,
                         const char *rule, int64_t expiry, char out[LOCAL_CONTINUE_TOKEN_LEN + 1]);
/* Reads state_dir/continue.key, which must hold exactly LOCAL_CONTINUE_KEY_LEN
 * bytes, into key. With create, first makes it when missing: random bytes,
 * mode 0600. 0, or -1 with errno (EINVAL: the file has another size). */
int local_continue_key_load(const char *state_dir, uint8_t key[LOCAL_CONTINUE_KEY_LEN], int create);

/* The pages of a decision, rendered with the snapshot's [pages] (pages.h):
 * each returns the length of a complete response put in *out (malloc'd,
 * free with free()), or 0 when out of memory. `host` is the host asked
 * for, `identity` the user name or client address. No page names a file. */

/* 403: `rule` denies (its message; its name only with show_rule). */
size_t local_deny_page(const struct snapshot *snap, int platform, int rule, const char *host,
                       const char *identity, char **out);
/* 403: the quota of `quota_rule` (a rule that would have allowed it) is
 * used up: its minutes, those identity used in the period of local, when
 * they come back. */
size_t local_quota_page(const struct snapshot *snap, int platform, int quota_rule, const char *host,
                        const char *identity, const struct tm *local, char **out);
/* 403, titled as a warning, with a Continue link that lets identity use
 * the platform for the rule's warn_for. `url` is the page asked for
 * (http://...). The link is signed with the snapshot's key for identity and
 * works until now + LOCAL_CONTINUE_LINK_SECONDS. */
size_t local_warn_page(const struct snapshot *snap, int platform, int rule, const char *url,
                       const char *host, const char *identity, time_t now, char **out);
/* The path of a Continue link answered inside TLS, on the warned host
 * itself (the TLS page phase): https://HOST/.socialgate/continue?... */
#define LOCAL_TLS_CONTINUE_PATH "/.socialgate/continue"
/* The warn page shown inside TLS to a tunnel: as local_warn_page (the same
 * template and placeholders), with its Continue link on
 * https://authority LOCAL_TLS_CONTINUE_PATH and `url` (https://...) the
 * page to go back to. */
size_t local_warn_page_tls(const struct snapshot *snap, int platform, int rule,
                           const char *authority, const char *url, const char *host,
                           const char *identity, time_t now, char **out);
/* What a request inside a TLS page tunnel asks for (pure; the TLS page
 * phase parses the request, fuzz_tlspage feeds this). */
struct local_tls_route {
    int is_continue;      /* the warn page's Continue link: answer `target` */
    char target[4096];    /* "/continue?..." for local_answer */
    char authority[300];  /* host[:port] of the page, for the Continue link */
    char url[1200];       /* https://authority/target: the page asked for */
};
/* From the request's Host field (host, host_len; 0: none) and target, in
 * a tunnel to `name` (the name the certificate was minted for) and
 * `port`: the authority is the Host as a name with its port (else name
 * and `port`), the port left out when 443; the url is https://authority followed by an origin-form
 * target (else "/", and "/" when the whole does not fit). With `warn`, a
 * target of LOCAL_TLS_CONTINUE_PATH (or with a query) is the Continue
 * link. 0, or -1 when the target does not fit (the request is refused). */
int local_tls_route(const char *name, int port, const char *host, size_t host_len,
                    const char *target, size_t target_len, int warn, struct local_tls_route *out);
/* 407 with Proxy-Authenticate for the configured realm. */
size_t local_auth_page(const struct snapshot *snap, const char *host, char **out);
/* The same 407 continuing a Negotiate exchange: "Proxy-Authenticate:
 * Negotiate TOKEN" alone (token NULL: the first offer, as
 * local_auth_page); keep_alive: without Connection: close. */
size_t local_negotiate_page(const struct snapshot *snap, const char *host, const char *token,
                            int keep_alive, char **out);
/* The same with message (a basic_helper's message= of its no; NULL: the
 * page's default sentence), HTML-escaped where the page shows it. */
size_t local_auth_page_message(const struct snapshot *snap, const char *host, const char *message,
                               char **out);
/* 502 or 504: `message` says why host could not be reached
 * (errpage_upstream_text). snap may be NULL: the built-in page. */
size_t local_error_page(const struct snapshot *snap, int status, const char *host,
                        const char *message, char **out);
/* When the minutes of quota rule r come back: "00:00", "Monday 00:00". */
void local_resets(const struct policy_rule *r, char *out, size_t size);
/* A request for socialgate.local: /continue?... records a Continue and
 * redirects, /quota lists minutes used and left. *status gets the code,
 * *reason the usage log's reason (a static string) or NULL. A Continue
 * link without a valid, unexpired token for this identity is refused (403,
 * bad-continue-token) and records nothing. The redirect goes to the link's
 * `to` when it is an http:// or https:// URL. */
size_t local_answer(const struct snapshot *snap, const char *identity, const char *user,
                    const char *roles, const char *target, time_t now, const struct tm *local,
                    char *out, size_t size, int *status, const char **reason);

#endif
