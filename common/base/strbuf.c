/* Growable byte buffer; see strbuf.h. */
#include "strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kp_strbuf_init(kp_strbuf_t *sb)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void kp_strbuf_free(kp_strbuf_t *sb)
{
    free(sb->data);
    kp_strbuf_init(sb);
}

void kp_strbuf_reset(kp_strbuf_t *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

static void reserve(kp_strbuf_t *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    char *data = realloc(sb->data, cap);
    if (!data)
        abort();
    sb->data = data;
    sb->cap = cap;
}

void kp_strbuf_append(kp_strbuf_t *sb, const char *data, size_t len)
{
    reserve(sb, len);
    if (len)
        memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void kp_strbuf_puts(kp_strbuf_t *sb, const char *s)
{
    kp_strbuf_append(sb, s, strlen(s));
}

void kp_strbuf_printf(kp_strbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    reserve(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void kp_strbuf_json_escape(kp_strbuf_t *sb, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            kp_strbuf_append(sb, "\\\"", 2);
            break;
        case '\\':
            kp_strbuf_append(sb, "\\\\", 2);
            break;
        case '\n':
            kp_strbuf_append(sb, "\\n", 2);
            break;
        case '\r':
            kp_strbuf_append(sb, "\\r", 2);
            break;
        case '\t':
            kp_strbuf_append(sb, "\\t", 2);
            break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                kp_strbuf_append(sb, esc, sizeof esc);
            } else {
                kp_strbuf_append(sb, (const char *)&c, 1);
            }
        }
    }
}

void kp_strbuf_json_number(kp_strbuf_t *sb, double v)
{
    if (isnan(v) || isinf(v)) {
        kp_strbuf_append(sb, "null", 4);
        return;
    }
    kp_strbuf_shortest_double(sb, v);
}

void kp_strbuf_shortest_double(kp_strbuf_t *sb, double v)
{
    /* %.17g always reads back exactly but spells 0.1 as 0.10000000000000001;
     * the first precision that reads back exactly keeps it short. */
    char buf[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    kp_strbuf_puts(sb, buf);
}

char *kp_strbuf_detach(kp_strbuf_t *sb, size_t *len)
{
    char *data = sb->data;
    if (len)
        *len = sb->len;
    kp_strbuf_init(sb);
    return data;
}
