/* INI files through Debian's libinih, with line numbers (pure: file I/O
 * only). libinih calls its handler with no line number and gives up on
 * lines over 200 bytes; this wraps ini_parse_stream with a reader that counts
 * lines and turns an over-long line into a clear FILE:LINE error. */
#ifndef SG_INIFILE_H
#define SG_INIFILE_H

#include "diag.h"

#define INIFILE_MAX_LINE 200 /* libinih's INI_MAX_LINE in Debian's build */

/* Called for every key; `section_line` is the line of the section header
 * the key belongs to (0 before any); `continued` is 1 when the line is an indented
 * continuation of the previous key (libinih passes it with the same name).
 * Return 0 on success, -1 after adding a diag error. */
typedef int (*inifile_handler)(void *arg, const char *file, int line, int section_line,
                               const char *section, const char *key, const char *value,
                               int continued);

/* Parses `path`; problems go to d. Returns 0 when the file could be read
 * entirely (handler errors are only in d), -1 otherwise. */
int inifile_parse(const char *path, const char *display_name, inifile_handler fn, void *arg,
                  struct diag *d);
/* The same over a NUL-terminated string (tests, fuzzing). */
int inifile_parse_string(const char *text, const char *display_name, inifile_handler fn,
                         void *arg, struct diag *d);

#endif
