#include "escape.h"

#include <string.h>

/* A single quote is quoted too, so that sh and shlex split lines right. */
static int
plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '\'';
}

size_t
escape_log_value(const char *v, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    int quote = 0;

    if (outsz < 8) {
        if (outsz)
            out[0] = '\0';
        return 0;
    }
    if (v == NULL || len == 0) {
        memcpy(out, "-", 2);
        return 1;
    }
    for (size_t i = 0; i < len; i++)
        if (!plain((unsigned char)v[i]))
            quote = 1;
    if (len == 1 && v[0] == '-')
        quote = 1; /* a real "-" must not read as "empty" */
    if (!quote) {
        if (len < outsz) {
            memcpy(out, v, len);
            out[len] = '\0';
            return len;
        }
        memcpy(out, v, outsz - 4);
        memcpy(out + outsz - 4, "...", 4);
        return outsz - 1;
    }
    /* The room for a cut ("..." and the closing quote) is only kept when the
     * whole value cannot fit; otherwise a value that just fits was cut. */
    size_t need = 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        need += (c == '"' || c == '\\') ? 2 : (c <= 0x20 || c >= 0x7f) ? 4 : 1;
    }
    int cut = need >= outsz;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        char tmp[4];
        size_t n;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c <= 0x20 || c >= 0x7f) { /* a space too: no raw space in a value */
            tmp[0] = '\\';
            tmp[1] = 'x';
            tmp[2] = hex[c >> 4];
            tmp[3] = hex[c & 15];
            n = 4;
        } else {
            tmp[0] = (char)c;
            n = 1;
        }
        if (cut && o + n + 5 > outsz) { /* room for ...", NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}
