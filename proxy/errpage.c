#include "errpage.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *
errpage_reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 508: return "Loop Detected";
    default: return "Error";
    }
}

static size_t
html_escape(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s && o + 7 < size; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        }
        if (rep) {
            size_t n = strlen(rep);
            memcpy(out + o, rep, n);
            o += n;
        } else if ((unsigned char)*s >= 0x20 && *s != 0x7f) {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return o;
}

size_t
errpage_format(char *buf, size_t size, int status, const char *detail, const char *extra_headers)
{
    return errpage_format_link(buf, size, status, detail, NULL, NULL, extra_headers);
}

size_t
errpage_format_link(char *buf, size_t size, int status, const char *detail,
                    const char *link_text, const char *link_url, const char *extra_headers)
{
    char esc[1024], body[4096], link[2048] = "";
    const char *phrase = errpage_reason_phrase(status);
    html_escape(detail ? detail : "", esc, sizeof(esc));
    if (link_text && link_url) {
        char t[256], u[1536];
        html_escape(link_text, t, sizeof(t));
        html_escape(link_url, u, sizeof(u));
        snprintf(link, sizeof(link), "<p><a href=\"%s\">%s</a></p>\n", u, t);
    }
    int bn = snprintf(body, sizeof(body),
                      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                      "<title>%d %s</title></head>\n<body><h1>%d %s</h1>\n<p>%s</p>\n%s"
                      "<hr><p>socialgate</p></body></html>\n",
                      status, phrase, status, phrase, esc, link);
    if (bn < 0 || (size_t)bn >= sizeof(body))
        return 0;
    int n = snprintf(buf, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                     "Content-Length: %d\r\nCache-Control: no-store\r\n%s"
                     "Connection: close\r\n\r\n%s",
                     status, phrase, bn, extra_headers ? extra_headers : "", body);
    if (n < 0 || (size_t)n >= size)
        return 0;
    return (size_t)n;
}

enum errpage_upstream
errpage_connect_error(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return ERRPAGE_REFUSED;
    case ETIMEDOUT:
        return ERRPAGE_TIMEOUT;
    case EHOSTUNREACH:
    case ENETUNREACH:
        return ERRPAGE_UNREACHABLE;
    default:
        return ERRPAGE_FAILED;
    }
}

size_t
errpage_upstream_text(char *buf, size_t size, enum errpage_upstream why, const char *host,
                      unsigned port, uint64_t timeout_ms)
{
    char wait[48] = "";
    if (timeout_ms > 0 && timeout_ms % 1000 == 0)
        snprintf(wait, sizeof(wait), " in %" PRIu64 " s", timeout_ms / 1000);
    else if (timeout_ms > 0)
        snprintf(wait, sizeof(wait), " in %" PRIu64 " ms", timeout_ms);
    int n;
    switch (why) {
    case ERRPAGE_NAME_UNKNOWN:
        n = snprintf(buf, size, "The name %s does not exist.", host);
        break;
    case ERRPAGE_NAME_FAILED:
        n = snprintf(buf, size,
                     "The name %s could not be looked up: the name servers did not give an "
                     "answer. Try again in a moment.",
                     host);
        break;
    case ERRPAGE_REFUSED:
        n = snprintf(buf, size, "%s refused the connection on port %u.", host, port);
        break;
    case ERRPAGE_UNREACHABLE:
        n = snprintf(buf, size, "%s cannot be reached from here (no route to it).", host);
        break;
    case ERRPAGE_TIMEOUT:
        n = snprintf(buf, size, "%s did not answer%s.", host, wait);
        break;
    default:
        n = snprintf(buf, size, "Could not connect to %s on port %u.", host, port);
        break;
    }
    if (n < 0 || size == 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}
