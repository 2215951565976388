/* Head accumulation and header lookup; see head.h. Offsets instead of
 * pointers while parsing because the buffer may move when it grows. */
#include "head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void kp_http_head_init(kp_http_head_t *h)
{
    memset(h, 0, sizeof *h);
}

void kp_http_head_free(kp_http_head_t *h)
{
    free(h->buf);
    free(h->spans);
    free(h->headers);
    h->buf = NULL;
    h->spans = NULL;
    h->headers = NULL;
    h->cap = h->fields_cap = 0;
    kp_http_head_reset(h);
}

void kp_http_head_reset(kp_http_head_t *h)
{
    h->len = 0;
    h->url_off = h->url_len = 0;
    h->n_headers = 0;
    if (h->spans)
        h->spans[0].name_len = 0;
    h->in_value = 0;
    h->error = KP_HEAD_OK;
    h->origin_off = h->origin_len = 0;
    h->authority_off = h->authority_len = 0;
    h->url = h->origin = h->authority = NULL;
}

/* Room for len more bytes, within KP_HTTP_MAX_HEAD; the buffer may move. */
static int reserve(kp_http_head_t *h, size_t len)
{
    if ((size_t)h->len + len > KP_HTTP_MAX_HEAD) {
        h->error = KP_HEAD_TOO_LARGE;
        return -1;
    }
    if (h->len + len > h->cap) {
        uint32_t cap = h->cap ? h->cap : 128; /* grows with the head: most are short */
        while (cap < h->len + len)
            cap *= 2;
        if (cap > KP_HTTP_MAX_HEAD)
            cap = KP_HTTP_MAX_HEAD;
        char *buf = realloc(h->buf, cap);
        if (!buf) {
            h->error = KP_HEAD_TOO_LARGE;
            return -1;
        }
        h->buf = buf;
        h->cap = cap;
    }
    return 0;
}

static int append(kp_http_head_t *h, const char *at, size_t len)
{
    /* llhttp may hand over an empty piece, also before the buffer exists:
     * NULL + 0 and memcpy to NULL are undefined (C11 6.5.6, 7.24.1). */
    if (len == 0)
        return 0;
    if (reserve(h, len) != 0)
        return -1;
    memcpy(h->buf + h->len, at, len);
    h->len += (uint32_t)len;
    return 0;
}

int kp_http_head_add_url(kp_http_head_t *h, const char *at, size_t len)
{
    if (h->url_len == 0)
        h->url_off = h->len;
    if ((size_t)h->url_len + len > KP_HTTP_MAX_URL) {
        h->error = KP_HEAD_URL_TOO_LONG;
        return -1;
    }
    if (append(h, at, len) != 0)
        return -1;
    h->url_len += (uint32_t)len;
    h->origin_off = h->url_off;
    h->origin_len = h->url_len;
    return 0;
}

/* Room for field n_headers, within KP_HTTP_MAX_HEADERS; a new entry's
 * name_len is 0, which marks it as not begun. */
static int reserve_field(kp_http_head_t *h)
{
    if (h->n_headers == KP_HTTP_MAX_HEADERS) {
        h->error = KP_HEAD_TOO_MANY;
        return -1;
    }
    if (h->n_headers < h->fields_cap)
        return 0;
    uint32_t cap = h->fields_cap ? h->fields_cap * 2 : 4;
    if (cap > KP_HTTP_MAX_HEADERS)
        cap = KP_HTTP_MAX_HEADERS;
    kp_http_field_span_t *spans = realloc(h->spans, cap * sizeof *spans);
    if (spans)
        h->spans = spans;
    kp_http_header_t *headers = spans ? realloc(h->headers, cap * sizeof *headers) : NULL;
    if (!headers) { /* out of memory: the head cannot be taken, as if too large */
        h->error = KP_HEAD_TOO_LARGE;
        return -1;
    }
    h->headers = headers;
    memset(spans + h->fields_cap, 0, (cap - h->fields_cap) * sizeof *spans);
    h->fields_cap = cap;
    return 0;
}

int kp_http_head_add_field(kp_http_head_t *h, const char *at, size_t len)
{
    if (reserve_field(h) != 0)
        return -1;
    if (!h->in_value && h->spans[h->n_headers].name_len == 0)
        h->spans[h->n_headers].name_off = h->len;
    if (append(h, at, len) != 0)
        return -1;
    h->spans[h->n_headers].name_len += (uint32_t)len;
    return 0;
}

int kp_http_head_field_done(kp_http_head_t *h)
{
    if (reserve_field(h) != 0)
        return -1;
    h->in_value = 1;
    h->spans[h->n_headers].value_off = h->len;
    h->spans[h->n_headers].value_len = 0;
    return 0;
}

int kp_http_head_add_value(kp_http_head_t *h, const char *at, size_t len)
{
    if (reserve_field(h) != 0 || append(h, at, len) != 0)
        return -1;
    h->spans[h->n_headers].value_len += (uint32_t)len;
    return 0;
}

int kp_http_head_value_done(kp_http_head_t *h)
{
    /* RFC 9110 §5.5: a field value excludes the whitespace (SP or HTAB,
     * §5.6.3 OWS) around it. llhttp drops the leading OWS and hands over
     * the trailing. */
    if (reserve_field(h) != 0)
        return -1;
    uint32_t off = h->spans[h->n_headers].value_off;
    uint32_t *len = &h->spans[h->n_headers].value_len;
    while (*len > 0 && (h->buf[off + *len - 1] == ' ' || h->buf[off + *len - 1] == '\t'))
        (*len)--;
    h->in_value = 0;
    h->n_headers++;
    if (h->n_headers < h->fields_cap)
        h->spans[h->n_headers].name_len = 0;
    return 0;
}

int kp_http_head_set_origin(kp_http_head_t *h, const char *prefix, uint32_t off, uint32_t len)
{
    size_t plen = strlen(prefix);
    if (reserve(h, plen + len) != 0)
        return -1;
    h->origin_off = h->len;
    h->origin_len = (uint32_t)(plen + len);
    memcpy(h->buf + h->len, prefix, plen);
    memcpy(h->buf + h->len + plen, h->buf + off, len); /* off + len <= h->len: no overlap */
    h->len += h->origin_len;
    return 0;
}

void kp_http_head_finish(kp_http_head_t *h)
{
    h->url = h->buf ? h->buf + h->url_off : "";
    h->origin = h->buf ? h->buf + h->origin_off : "";
    h->authority = h->authority_len && h->buf ? h->buf + h->authority_off : NULL;
    /* Fields of no bytes at all may come before the buffer exists. */
    const char *base = h->buf ? h->buf : "";
    for (uint32_t i = 0; i < h->n_headers; i++) {
        h->headers[i].name = base + (h->buf ? h->spans[i].name_off : 0);
        h->headers[i].name_len = h->spans[i].name_len;
        h->headers[i].value = base + (h->buf ? h->spans[i].value_off : 0);
        h->headers[i].value_len = h->spans[i].value_len;
    }
}

int kp_http_name_eq(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    return a_len == b_len && strncasecmp(a, b, a_len) == 0;
}

const kp_http_header_t *kp_http_header_find(const kp_http_header_t *hs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (kp_http_name_eq(hs[i].name, hs[i].name_len, name))
            return &hs[i];
    return NULL;
}

int kp_http_head_has_token(const kp_http_header_t *hs, size_t n, const char *name,
                           const char *token)
{
    for (size_t i = 0; i < n; i++)
        if (kp_http_name_eq(hs[i].name, hs[i].name_len, name) &&
            kp_http_value_has_token(hs[i].value, hs[i].value_len, token))
            return 1;
    return 0;
}

int kp_http_value_has_token(const char *value, size_t len, const char *token)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end > start && kp_http_name_eq(value + start, end - start, token))
            return 1;
    }
    return 0;
}

const char *kp_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
