/* A temporary folder per fuzzing process, removed at exit by the process
 * that made it (replay.c forks children, which must leave it alone). */
#ifndef SG_FUZZ_TMP_H
#define SG_FUZZ_TMP_H

#include <errno.h>
#include <ftw.h>
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

/* nftw(3) needs _XOPEN_SOURCE >= 500, defined by each includer first. */
static int
fuzz_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

/* Removes p and everything under it (depth first, symlinks not followed). */
static inline void
fuzz_rm_tree(const char *p)
{
    nftw(p, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
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
