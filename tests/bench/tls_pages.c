/* tls_pages: a load client for HTTPS pages, a new TCP connection and a new
 * TLS session (no resumption) for every page.
 *
 *   tls_pages --proxy HOST:PORT --name NAME --cafile CA [options]
 *       CONNECT NAME:443 through the proxy, expect its 200, then TLS with
 *       SNI NAME over the tunnel, GET /, read the answer until close and
 *       expect 403 (socialgate's deny page).
 *   tls_pages --connect HOST:PORT --name NAME --cafile CA [options]
 *       the same without CONNECT (a TLS server such as nginx); expects 200.
 *
 * Options: --threads N (2), --seconds S (5), --expect STATUS,
 *   --names K: 1 (default) uses NAME for every page; K > 1 cycles through K
 *   names made by appending 0..K-1 to NAME's first label (x.example.com ->
 *   x0.example.com, x1.example.com, ...); 0 gives every page a name not
 *   used before in the run.
 *
 * The server's certificate is verified against CA for the name; a failed
 * verification is reported on stderr and stops the run. Any error makes
 * the exit status 1 (the first few are reported on stderr). One line on stdout:
 *   pages_per_s=... p50_ms=... p99_ms=... errors=... pages=... seconds=...
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define IO_TIMEOUT_S 5
#define MAX_ANSWER (1024 * 1024)
#define MAX_MESSAGES 10

static struct {
    int via_proxy;
    char host[256];
    char port[16];
    const char *name;
    const char *cafile;
    int threads;
    double seconds;
    long names;
    int expect;
} opt = {.threads = 2, .seconds = 5, .names = 1, .expect = 0};

static SSL_CTX *ctx;
static struct addrinfo *target;
static atomic_ulong next_name;
static atomic_int messages;
static atomic_int verify_failures;
static atomic_int stop; /* a certificate failed verification */
static double deadline;

struct worker {
    pthread_t tid;
    long pages, errors;
    double *ms;
    size_t n, cap;
};

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "tls_pages: NAME: WHAT[: DETAIL]" on stderr, for the first few errors. */
static void
complain(const char *name, const char *what, const char *detail)
{
    if (atomic_fetch_add(&messages, 1) >= MAX_MESSAGES)
        return;
    fprintf(stderr, "tls_pages: %s: %s%s%s\n", name, what, detail ? ": " : "",
            detail ? detail : "");
}

static void
ssl_complain(const char *name, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "%s", errno != 0 ? strerror(errno) : "connection closed");
    ERR_clear_error();
    complain(name, what, buf);
}

/* The name of the i-th page. */
static void
page_name(char *out, size_t size)
{
    if (opt.names == 1) {
        snprintf(out, size, "%s", opt.name);
        return;
    }
    unsigned long i = atomic_fetch_add(&next_name, 1);
    if (opt.names > 1)
        i %= (unsigned long)opt.names;
    const char *dot = strchr(opt.name, '.');
    int label = dot != NULL ? (int)(dot - opt.name) : (int)strlen(opt.name);
    snprintf(out, size, "%.*s%lu%s", label, opt.name, i, dot != NULL ? dot : "");
}

static int
connect_target(const char *name)
{
    int fd = socket(target->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        complain(name, "socket", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, target->ai_addr, target->ai_addrlen) != 0) {
        complain(name, "connect", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* CONNECT NAME:443 and the proxy's 200. Nothing follows the answer's head
 * until our ClientHello, so reading it in pieces takes no TLS byte. */
static int
tunnel(int fd, const char *name)
{
    char req[640];
    int n =
        snprintf(req, sizeof req, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", name, name);
    if (send_all(fd, req, (size_t)n) != 0) {
        complain(name, "sending CONNECT", strerror(errno));
        return -1;
    }
    char head[4096];
    size_t len = 0;
    for (;;) {
        ssize_t r = recv(fd, head + len, sizeof head - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            complain(name, "reading the CONNECT answer",
                     r == 0 ? "connection closed" : strerror(errno));
            return -1;
        }
        len += (size_t)r;
        head[len] = '\0';
        char *end = strstr(head, "\r\n\r\n");
        if (end != NULL) {
            if (strncmp(head, "HTTP/1.1 200", 12) != 0 && strncmp(head, "HTTP/1.0 200", 12) != 0) {
                head[strcspn(head, "\r\n")] = '\0';
                complain(name, "CONNECT answered", head);
                return -1;
            }
            if (end + 4 != head + len) {
                complain(name, "bytes after the CONNECT answer", NULL);
                return -1;
            }
            return 0;
        }
        if (len == sizeof head - 1) {
            complain(name, "CONNECT answer too long", NULL);
            return -1;
        }
    }
}

/* The value of header NAME in the head ending at END, or NULL. */
static const char *
header(const char *head, const char *end, const char *hname)
{
    size_t n = strlen(hname);
    for (const char *p = strstr(head, "\r\n"); p != NULL && p + 2 < end;
         p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, hname, n) == 0 && p[2 + n] == ':')
            return p + 3 + n;
    }
    return NULL;
}

/* The status of a whole answer, checked for a complete body; -1 if bad. */
static int
check_answer(const char *name, char *buf, size_t len)
{
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || end == NULL) {
        complain(name, "no complete HTTP answer before close", NULL);
        return -1;
    }
    int status = atoi(buf + 9);
    const char *cl = header(buf, end, "Content-Length");
    if (cl != NULL) {
        long want = strtol(cl, NULL, 10);
        long got = (long)(buf + len - (end + 4));
        if (want != got) {
            char msg[96];
            snprintf(msg, sizeof msg, "%ld body bytes, Content-Length %ld", got, want);
            complain(name, msg, NULL);
            return -1;
        }
    }
    return status;
}

static int
one_page(char *buf)
{
    char name[300];
    page_name(name, sizeof name);
    int fd = connect_target(name);
    if (fd < 0)
        return -1;
    int rc = -1;
    SSL *ssl = NULL;
    if (opt.via_proxy && tunnel(fd, name) != 0)
        goto out;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, name) != 1 ||
        SSL_set1_host(ssl, name) != 1) {
        ssl_complain(name, "SSL setup");
        goto out;
    }
    errno = 0;
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK) {
            /* said however many other errors came before; the run stops */
            if (atomic_fetch_add(&verify_failures, 1) == 0)
                fprintf(stderr, "tls_pages: %s: certificate verification failed: %s\n", name,
                        X509_verify_cert_error_string(v));
            atomic_store(&stop, 1);
            ERR_clear_error();
        } else {
            ssl_complain(name, "TLS handshake");
        }
        goto out;
    }
    char req[400];
    int n =
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name);
    if (SSL_write(ssl, req, n) != n) {
        ssl_complain(name, "sending GET");
        goto out;
    }
    size_t len = 0;
    for (;;) {
        if (len == MAX_ANSWER) {
            complain(name, "answer too long", NULL);
            goto out;
        }
        errno = 0;
        int r = SSL_read(ssl, buf + len, (int)(MAX_ANSWER - len));
        if (r > 0) {
            len += (size_t)r;
            continue;
        }
        if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN)
            break;
        ssl_complain(name, "reading the answer");
        goto out;
    }
    int status = check_answer(name, buf, len);
    if (status < 0)
        goto out;
    if (status != opt.expect) {
        char msg[64];
        snprintf(msg, sizeof msg, "status %d, expected %d", status, opt.expect);
        complain(name, msg, NULL);
        goto out;
    }
    SSL_shutdown(ssl);
    rc = 0;
out:
    SSL_free(ssl);
    ERR_clear_error();
    close(fd);
    return rc;
}

static void *
run(void *arg)
{
    struct worker *w = arg;
    char *buf = malloc(MAX_ANSWER + 1);
    if (buf == NULL)
        return NULL;
    while (now() < deadline && !atomic_load(&stop)) {
        double t0 = now();
        if (one_page(buf) != 0) {
            w->errors++;
            continue;
        }
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 4096;
            double *ms = realloc(w->ms, cap * sizeof *ms);
            if (ms == NULL)
                break;
            w->ms = ms;
            w->cap = cap;
        }
        w->ms[w->n++] = (now() - t0) * 1000.0;
        w->pages++;
    }
    free(buf);
    return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: tls_pages (--proxy HOST:PORT | --connect HOST:PORT) --name NAME --cafile CA\n"
            "                 [--threads N] [--seconds S] [--names K] [--expect STATUS]\n");
    exit(2);
}

static void
set_target(const char *arg)
{
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || colon == arg || (size_t)(colon - arg) >= sizeof opt.host ||
        strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof opt.port) {
        fprintf(stderr, "tls_pages: %s: expected HOST:PORT\n", arg);
        exit(2);
    }
    snprintf(opt.host, sizeof opt.host, "%.*s", (int)(colon - arg), arg);
    snprintf(opt.port, sizeof opt.port, "%s", colon + 1);
}

static long
number(const char *flag, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
        fprintf(stderr, "tls_pages: %s %s: expected a number from %ld to %ld\n", flag, v, min, max);
        exit(2);
    }
    return n;
}

int
main(int argc, char **argv)
{
    int have_target = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--proxy") == 0 || strcmp(a, "--connect") == 0) {
            opt.via_proxy = strcmp(a, "--proxy") == 0;
            set_target(v);
            have_target = 1;
        } else if (strcmp(a, "--name") == 0) {
            opt.name = v;
        } else if (strcmp(a, "--cafile") == 0) {
            opt.cafile = v;
        } else if (strcmp(a, "--threads") == 0) {
            opt.threads = (int)number(a, v, 1, 256);
        } else if (strcmp(a, "--seconds") == 0) {
            opt.seconds = (double)number(a, v, 1, 3600);
        } else if (strcmp(a, "--names") == 0) {
            opt.names = number(a, v, 0, 1000000000);
        } else if (strcmp(a, "--expect") == 0) {
            opt.expect = (int)number(a, v, 100, 599);
        } else {
            usage();
        }
    }
    if (!have_target || opt.name == NULL || opt.cafile == NULL || strlen(opt.name) > 240)
        usage();
    if (opt.expect == 0)
        opt.expect = opt.via_proxy ? 403 : 200;
    signal(SIGPIPE, SIG_IGN);

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int g = getaddrinfo(opt.host, opt.port, &hints, &target);
    if (g != 0) {
        fprintf(stderr, "tls_pages: %s:%s: %s\n", opt.host, opt.port, gai_strerror(g));
        return 2;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, opt.cafile, NULL) != 1) {
        fprintf(stderr, "tls_pages: %s: cannot load: ", opt.cafile);
        ERR_print_errors_fp(stderr);
        return 2;
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);

    struct worker *w = calloc((size_t)opt.threads, sizeof *w);
    if (w == NULL)
        return 1;
    double t0 = now();
    deadline = t0 + opt.seconds;
    for (int i = 0; i < opt.threads; i++) {
        if (pthread_create(&w[i].tid, NULL, run, &w[i]) != 0) {
            fprintf(stderr, "tls_pages: cannot start a thread\n");
            return 1;
        }
    }
    long pages = 0, errors = 0;
    size_t n = 0;
    for (int i = 0; i < opt.threads; i++) {
        pthread_join(w[i].tid, NULL);
        pages += w[i].pages;
        errors += w[i].errors;
        n += w[i].n;
    }
    double elapsed = now() - t0;
    double *all = malloc((n ? n : 1) * sizeof *all);
    if (all == NULL)
        return 1;
    size_t k = 0;
    for (int i = 0; i < opt.threads; i++) {
        memcpy(all + k, w[i].ms, w[i].n * sizeof *all);
        k += w[i].n;
        free(w[i].ms);
    }
    qsort(all, n, sizeof *all, cmp_double);
    double p50 = n ? all[(n - 1) / 2] : 0, p99 = n ? all[(size_t)((double)(n - 1) * 0.99)] : 0;
    printf("pages_per_s=%.1f p50_ms=%.2f p99_ms=%.2f errors=%ld pages=%ld seconds=%.2f\n",
           (double)pages / elapsed, p50, p99, errors, pages, elapsed);
    fflush(stdout);
    if (atomic_load(&verify_failures) > 0)
        fprintf(stderr, "tls_pages: certificate verification failed, run stopped\n");
    free(all);
    free(w);
    freeaddrinfo(target);
    SSL_CTX_free(ctx);
    return errors > 0 || pages == 0 ? 1 : 0;
}
