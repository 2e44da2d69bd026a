#include "negotiate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int
is_b64(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/' || ch == '=';
}

static int
is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

int
negotiate_parse_authorization(const char *v, size_t len, char *tok, size_t toksize)
{
    static const char scheme[] = "Negotiate";
    const size_t sl = sizeof(scheme) - 1;
    size_t i = 0;
    while (i < len && is_ws(v[i]))
        i++;
    if (len - i < sl || strncasecmp(v + i, scheme, sl) != 0 ||
        (len - i > sl && !is_ws(v[i + sl])))
        return 0;
    i += sl;
    while (i < len && is_ws(v[i]))
        i++;
    size_t end = len;
    while (end > i && is_ws(v[end - 1]))
        end--;
    if (end == i || end - i >= toksize || end - i > NEGOTIATE_MAX_TOKEN)
        return -1;
    for (size_t k = i; k < end; k++)
        if (!is_b64((unsigned char)v[k]))
            return -1;
    memcpy(tok, v + i, end - i);
    tok[end - i] = '\0';
    return 1;
}

size_t
negotiate_challenge(const char *token, int negotiate, int basic, const char *realm, char *out,
                    size_t size)
{
    int n;
    if (token)
        n = snprintf(out, size, "Proxy-Authenticate: Negotiate %s\r\n", token);
    else
        n = snprintf(out, size, "%s%s%s%s", negotiate ? "Proxy-Authenticate: Negotiate\r\n" : "",
                     basic ? "Proxy-Authenticate: Basic realm=\"" : "", basic ? realm : "",
                     basic ? "\"\r\n" : "");
    if (n < 0 || (size_t)n >= size)
        return 0;
    return (size_t)n;
}

int
negotiate_realms(const char *cmdline, char *first, size_t firstsize)
{
    char seen[2][256];
    int n = 0;
    if (firstsize)
        first[0] = '\0';
    const char *p = cmdline;
    while (p && *p && n < 2) {
        while (*p == ' ' || *p == '\t' || *p == '"' || *p == '\'')
            p++;
        const char *w = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '"' && *p != '\'')
            p++;
        const char *at = NULL;
        for (const char *q = w; q < p; q++)
            if (*q == '@')
                at = q;
        if (at == NULL || at + 1 >= p || (size_t)(p - at - 1) >= sizeof(seen[0]))
            continue;
        size_t rl = (size_t)(p - at - 1);
        int dup = 0;
        for (int k = 0; k < n; k++)
            dup |= strlen(seen[k]) == rl && strncasecmp(seen[k], at + 1, rl) == 0;
        if (dup)
            continue;
        memcpy(seen[n], at + 1, rl);
        seen[n][rl] = '\0';
        if (n == 0 && firstsize)
            snprintf(first, firstsize, "%s", seen[0]);
        n++;
    }
    return n;
}

int
negotiate_user_name(const char *principal, int nrealms, const char *realm, char *out, size_t size)
{
    const char *at = strrchr(principal, '@');
    size_t keep = strlen(principal);
    if (at && nrealms == 0)
        keep = (size_t)(at - principal);
    else if (at && nrealms == 1 && strcasecmp(at + 1, realm) == 0)
        keep = (size_t)(at - principal);
    if (keep == 0 || keep >= size)
        return -1;
    memcpy(out, principal, keep);
    out[keep] = '\0';
    return 0;
}
