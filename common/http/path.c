/* Request paths as Go's net/http ServeMux sees them (see path.h). The rules
 * are those of Go's url.ParseRequestURI (the path of a request target),
 * url.PathUnescape, path.Clean and net/http's cleanPath, which keeps a
 * trailing slash. */
#include "path.h"

#include <string.h>

#include "head.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
static size_t scheme_length(const char *s, size_t len)
{
    if (len == 0 || !is_alpha(s[0]))
        return 0;
    size_t i = 1;
    while (i < len && (is_alpha(s[i]) || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' ||
                       s[i] == '-' || s[i] == '.'))
        i++;
    return i < len && s[i] == ':' ? i : 0;
}

const char *kp_http_target_path(const char *target, size_t len, size_t *path_len)
{
    const char *query = memchr(target, '?', len);
    if (query)
        len = (size_t)(query - target);
    if (len > 0 && target[0] == '/') {
        *path_len = len;
        return target;
    }
    /* Absolute-form (RFC 9112 §3.2.2), which a server must accept:
     * scheme "://" authority, then the path up to the query. */
    size_t scheme = scheme_length(target, len);
    if (scheme == 0 || len < scheme + 3 || memcmp(target + scheme, "://", 3) != 0)
        return NULL;
    const char *authority = target + scheme + 3;
    const char *path = memchr(authority, '/', len - (size_t)(authority - target));
    if (!path)
        path = target + len;
    *path_len = len - (size_t)(path - target);
    return path;
}

long kp_http_path_unescape(const char *path, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (path[i] != '%') {
            out[o++] = path[i];
            continue;
        }
        int hi = i + 2 < len ? hex_value(path[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(path[i + 2]) : -1;
        if (lo < 0)
            return -1;
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    return (long)o;
}

size_t kp_http_path_clean(const char *path, size_t len, char *out)
{
    /* out is "/" then the kept segments joined by "/"; o == 1 is the root. */
    size_t o = 1;
    out[0] = '/';
    size_t i = 0;
    while (i < len) {
        if (path[i] == '/') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        size_t n = i - start;
        if (n == 1 && path[start] == '.')
            continue;
        if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
            while (o > 1 && out[o - 1] != '/')
                o--;
            if (o > 1)
                o--; /* the slash before the segment removed */
            continue;
        }
        if (o > 1)
            out[o++] = '/';
        memcpy(out + o, path + start, n);
        o += n;
    }
    /* cleanPath puts back the trailing slash path.Clean removes. */
    if (len > 0 && path[len - 1] == '/' && o > 1)
        out[o++] = '/';
    return o;
}

int kp_http_target_is(const char *target, size_t len, const char *route)
{
    size_t path_len;
    const char *path = kp_http_target_path(target, len, &path_len);
    if (!path || path_len > KP_HTTP_MAX_URL)
        return 0;
    char unescaped[KP_HTTP_MAX_URL];
    char cleaned[KP_HTTP_MAX_URL + 1];
    long n = kp_http_path_unescape(path, path_len, unescaped);
    if (n < 0)
        return 0;
    size_t clean_len = kp_http_path_clean(unescaped, (size_t)n, cleaned);
    return clean_len == strlen(route) && memcmp(cleaned, route, clean_len) == 0;
}
