/* See h2_fields.h. The nv entries hold offsets into the buffer while it
 * grows; kp_h2_fields_finish turns them into pointers. */
#include "h2_fields.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"

void kp_h2_fields_init(kp_h2_fields_t *f)
{
    memset(f, 0, sizeof *f);
}

void kp_h2_fields_free(kp_h2_fields_t *f)
{
    free(f->nv);
    free(f->buf);
    kp_h2_fields_init(f);
}

static int reserve(kp_h2_fields_t *f, size_t bytes)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        nghttp2_nv *nv = realloc(f->nv, cap * sizeof *nv);
        if (!nv)
            return -1;
        f->nv = nv;
        f->cap = cap;
    }
    if (f->len + bytes > f->buf_cap) {
        size_t cap = f->buf_cap ? f->buf_cap : 256;
        while (cap < f->len + bytes)
            cap *= 2;
        char *buf = realloc(f->buf, cap);
        if (!buf)
            return -1;
        f->buf = buf;
        f->buf_cap = cap;
    }
    return 0;
}

static int add(kp_h2_fields_t *f, const char *name, size_t name_len, const char *value,
               size_t value_len, int lowercase)
{
    if (reserve(f, name_len + value_len + 2) != 0)
        return -1;
    nghttp2_nv *nv = &f->nv[f->n++];
    char *at = f->buf + f->len;
    for (size_t i = 0; i < name_len; i++) {
        char ch = name[i];
        at[i] = lowercase && ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    at[name_len] = '\0';
    memcpy(at + name_len + 1, value, value_len);
    at[name_len + 1 + value_len] = '\0';
    nv->name = (uint8_t *)(uintptr_t)f->len;
    nv->namelen = name_len;
    nv->value = (uint8_t *)(uintptr_t)(f->len + name_len + 1);
    nv->valuelen = value_len;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
    f->len += name_len + value_len + 2;
    return 0;
}

int kp_h2_fields_add(kp_h2_fields_t *f, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    return add(f, name, name_len, value, value_len, 0);
}

int kp_h2_field_is_connection_specific(const char *name, size_t name_len, const char *value,
                                       size_t value_len)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (kp_http_name_eq(name, name_len, names[i]))
            return 1;
    return kp_http_name_eq(name, name_len, "te") && !kp_http_name_eq(value, value_len, "trailers");
}

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

int kp_h2_fields_add_lines(kp_h2_fields_t *f, const char *lines, size_t len)
{
    if (len == 0)
        return 0; /* lines may be NULL then */
    const char *s = lines, *end = lines + len;
    while (s < end) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        const char *line_end = eol ? eol : end;
        const char *next = eol ? eol + 1 : end;
        if (line_end > s && line_end[-1] == '\r')
            line_end--;
        const char *colon = memchr(s, ':', (size_t)(line_end - s));
        /* A name is a non-empty token (RFC 9110 §5.1); a pseudo-header or
         * a line without a colon is nothing a handler meant to send. */
        size_t name_len = colon ? (size_t)(colon - s) : 0;
        int ok = name_len > 0;
        for (size_t i = 0; ok && i < name_len; i++)
            ok = kp_http_is_tchar((unsigned char)s[i]);
        if (ok) {
            const char *v = colon + 1, *v_end = line_end;
            while (v < v_end && is_ows(*v))
                v++;
            while (v_end > v && is_ows(v_end[-1]))
                v_end--;
            size_t value_len = (size_t)(v_end - v);
            if (!kp_h2_field_is_connection_specific(s, name_len, v, value_len) &&
                add(f, s, name_len, v, value_len, 1) != 0)
                return -1;
        }
        s = next;
    }
    return 0;
}

void kp_h2_fields_finish(kp_h2_fields_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        nghttp2_nv *nv = &f->nv[i];
        if ((uintptr_t)nv->name <= f->len) {
            nv->name = (uint8_t *)f->buf + (uintptr_t)nv->name;
            nv->value = (uint8_t *)f->buf + (uintptr_t)nv->value;
        }
    }
}
