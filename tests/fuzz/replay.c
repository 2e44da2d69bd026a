/* Replays a fuzz target's corpus without libFuzzer: main() reads every
 * regular file of the directories (or the files) given and calls
 * LLVMFuzzerTestOneInput on it, each in a child process so that one crash
 * or hang is counted and the others still run. Linked with one target by
 * `make fuzz-replay`.
 *
 *   fuzz_xxx [-q] DIR|FILE...
 *
 * Prints "FAILED path (why)" for each input that crashed, aborted or took
 * longer than REPLAY_TIMEOUT seconds (default 60), and last a line
 * "NAME: N passed, N failed". Exit status 1 when any failed or no input
 * was found. REPLAY_NOFORK=1 runs inputs in the process itself (for gdb). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

struct inputs {
    char **v;
    size_t n, cap;
};

static void
add_input(struct inputs *in, const char *path)
{
    if (in->n == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 64;
        char **nv = realloc(in->v, in->cap * sizeof(*nv));
        if (nv == NULL)
            abort();
        in->v = nv;
    }
    in->v[in->n] = strdup(path);
    if (in->v[in->n] == NULL)
        abort();
    in->n++;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files of dir (not recursive, no dot files), or path itself. */
static int
collect(struct inputs *in, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        add_input(in, path);
        return 0;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t first = in->n;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (p == NULL)
            abort();
        snprintf(p, n, "%s/%s", path, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            add_input(in, p);
        free(p);
    }
    closedir(d);
    qsort(in->v + first, in->n - first, sizeof(*in->v), cmp_str);
    return 0;
}

static int
read_all(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        abort();
    for (;;) {
        if (n == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL)
                abort();
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    /* An exact-size copy, as libFuzzer hands inputs. */
    *data = fuzz_memdup(buf, n);
    *size = n;
    free(buf);
    return 0;
}

static int
run_one(const char *path, int nofork, char *why, size_t whysz)
{
    uint8_t *data;
    size_t size;
    if (read_all(path, &data, &size) < 0) {
        snprintf(why, whysz, "cannot read: %s", strerror(errno));
        return -1;
    }
    if (nofork) {
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whysz, "fork: %s", strerror(errno));
        free(data);
        return -1;
    }
    if (pid == 0) {
        const char *t = getenv("REPLAY_TIMEOUT");
        alarm(t && atoi(t) > 0 ? (unsigned)atoi(t) : 60);
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        exit(0); /* not _exit: AddressSanitizer's leak check runs at exit */
    }
    free(data);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, whysz, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        snprintf(why, whysz, "%s", WTERMSIG(status) == SIGALRM ? "timeout" : strsignal(WTERMSIG(status)));
    else
        snprintf(why, whysz, "exit status %d", WEXITSTATUS(status));
    return -1;
}

int
main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int quiet = 0, bad_args = 0;
    struct inputs in = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0)
            quiet = 1;
        else if (collect(&in, argv[i]) < 0)
            bad_args = 1;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s [-q] DIR|FILE...\n", name);
        return 2;
    }
    const char *nf = getenv("REPLAY_NOFORK");
    int nofork = nf != NULL && nf[0] == '1';

    /* One empty input first, in this process: lazily built state (temporary
     * folders, fixed tables) is then shared by every child. */
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);

    size_t passed = 0, failed = 0;
    for (size_t i = 0; i < in.n; i++) {
        char why[128] = "";
        if (run_one(in.v[i], nofork, why, sizeof(why)) == 0) {
            passed++;
            if (!quiet)
                printf("ok %s\n", in.v[i]);
        } else {
            failed++;
            printf("FAILED %s (%s)\n", in.v[i], why);
        }
        free(in.v[i]);
    }
    free(in.v);
    if (in.n == 0 && !bad_args)
        fprintf(stderr, "%s: no input found\n", name);
    printf("%s: %zu passed, %zu failed\n", name, passed, failed);
    return failed || bad_args || in.n == 0 ? 1 : 0;
}
