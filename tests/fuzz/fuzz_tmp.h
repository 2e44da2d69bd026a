/* A temporary folder per fuzzing process, removed at exit by the process
 * that made it (replay.c forks children, which must leave it alone). */
#ifndef SG_FUZZ_TMP_H
#define SG_FUZZ_TMP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_tmp[512];
static pid_t fuzz_tmp_owner;

static inline void
fuzz_tmp_path(char *buf, size_t size, const char *rel)
{
    if (snprintf(buf, size, "%s/%s", fuzz_tmp, rel) >= (int)size)
        abort();
}

static inline void
fuzz_tmp_mkdir(const char *rel)
{
    char p[1024];
    fuzz_tmp_path(p, sizeof(p), rel);
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        abort();
}

/* Writes data[0..size) to rel, replacing it. */
static inline void
fuzz_tmp_write(const char *rel, const void *data, size_t size)
{
    char p[1024];
    fuzz_tmp_path(p, sizeof(p), rel);
    FILE *f = fopen(p, "wb");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size))
        abort();
    fclose(f);
}

static inline void
fuzz_rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(p);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char sub[1024];
                if (snprintf(sub, sizeof(sub), "%s/%s", p, e->d_name) < (int)sizeof(sub))
                    fuzz_rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(p);
    } else {
        unlink(p);
    }
}

static inline void
fuzz_tmp_cleanup(void)
{
    if (fuzz_tmp[0] != '\0' && getpid() == fuzz_tmp_owner)
        fuzz_rm_tree(fuzz_tmp);
}

/* Makes the folder under $TMPDIR (or /tmp) once; `tag` names it. */
static inline void
fuzz_tmp_init(const char *tag)
{
    if (fuzz_tmp[0] != '\0')
        return;
    const char *base = getenv("TMPDIR");
    snprintf(fuzz_tmp, sizeof(fuzz_tmp), "%s/sgfuzz-%s.XXXXXX", base && base[0] ? base : "/tmp",
             tag);
    if (mkdtemp(fuzz_tmp) == NULL)
        abort();
    fuzz_tmp_owner = getpid();
    atexit(fuzz_tmp_cleanup);
}

#endif
