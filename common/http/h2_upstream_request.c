/* See h2_upstream_request.h. Entries are kept as offsets while the text
 * grows (it may move) and turned into nghttp2_nv pointers at the end. */
#include "h2_upstream_request.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct kp_h2c_field_span {
    size_t name_off, name_len, value_off, value_len;
};

void kp_h2c_request_head_init(kp_h2c_request_head_t *h)
{
    memset(h, 0, sizeof *h);
    kp_strbuf_init(&h->text);
}

void kp_h2c_request_head_free(kp_h2c_request_head_t *h)
{
    kp_strbuf_free(&h->text);
    free(h->nv);
    free(h->spans);
    memset(h, 0, sizeof *h);
}

static int add(kp_h2c_request_head_t *h, const char *name, size_t name_len, const char *value,
               size_t value_len)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        kp_h2c_field_span_t *spans = realloc(h->spans, cap * sizeof *spans);
        if (!spans)
            return -1;
        h->spans = spans;
        h->cap = cap;
    }
    kp_h2c_field_span_t *f = &h->spans[h->n++];
    f->name_off = h->text.len;
    f->name_len = name_len;
    kp_strbuf_append(&h->text, name, name_len);
    for (char *p = h->text.data + f->name_off; p < h->text.data + h->text.len; p++)
        *p = (char)tolower((unsigned char)*p);
    f->value_off = h->text.len;
    f->value_len = value_len;
    kp_strbuf_append(&h->text, value, value_len);
    return 0;
}

static int adds(kp_h2c_request_head_t *h, const char *name, const char *value, size_t value_len)
{
    return add(h, name, strlen(name), value, value_len);
}

/* RFC 9113 §8.2.2: never sent in HTTP/2 (te apart, handled by the caller);
 * the rest are hop-by-hop for a proxy (RFC 9110 §7.6.1), and Host becomes
 * :authority. content-length is written from what the request says. */
static int is_dropped(const kp_http_header_t *f, const kp_http_header_t *connection,
                      const kp_proxy_edits_t *e)
{
    static const char *const names[] = {"connection",
                                        "keep-alive",
                                        "proxy-connection",
                                        "transfer-encoding",
                                        "upgrade",
                                        "host",
                                        "trailer",
                                        "expect",
                                        "proxy-authenticate",
                                        "proxy-authorization",
                                        "content-length",
                                        "http2-settings"};
    if (f->name_len == 0 || f->name[0] == ':')
        return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (kp_http_name_eq(f->name, f->name_len, names[i]))
            return 1;
    if (connection && f->name_len < 64) {
        char name[64];
        memcpy(name, f->name, f->name_len);
        name[f->name_len] = '\0';
        if (kp_http_value_has_token(connection->value, connection->value_len, name))
            return 1;
    }
    for (size_t i = 0; e && i < e->n_drop; i++)
        if (kp_http_name_eq(f->name, f->name_len, e->drop[i]))
            return 1;
    return 0;
}

/* The edits' raw "Name: value\r\n" lines. */
static int add_lines(kp_h2c_request_head_t *h, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon) {
            const char *v = colon + 1, *ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (colon > p && add(h, p, (size_t)(colon - p), v, (size_t)(ve - v)) != 0)
                return -1;
        }
        p = eol ? eol + 1 : end;
    }
    return 0;
}

int kp_h2c_request_head_build(kp_h2c_request_head_t *h, const kp_http_request_t *r,
                              const kp_proxy_edits_t *e)
{
    h->n = 0;
    kp_strbuf_reset(&h->text);
    const kp_http_header_t *connection =
        kp_http_header_find(r->headers, r->n_headers, "connection");
    const kp_http_header_t *xff = NULL, *forwarded = NULL;
    int append_ff = e && e->append_forwarded_for;
    const char *authority = e && e->host ? e->host : r->host;
    size_t authority_len = e && e->host ? e->host_len : r->host_len;
    if (adds(h, ":method", r->method, strlen(r->method)) != 0 ||
        adds(h, ":scheme", "http", 4) != 0 ||
        adds(h, ":path", r->url_len ? r->url : "/", r->url_len ? r->url_len : 1) != 0)
        return -1;
    if (authority && adds(h, ":authority", authority, authority_len) != 0)
        return -1;
    for (size_t i = 0; i < r->n_headers; i++) {
        const kp_http_header_t *f = &r->headers[i];
        if (kp_http_name_eq(f->name, f->name_len, "te")) {
            /* §8.2.2: only "trailers" may pass (gRPC sends it). */
            if (kp_http_value_has_token(f->value, f->value_len, "trailers") &&
                adds(h, "te", "trailers", 8) != 0)
                return -1;
            continue;
        }
        if (is_dropped(f, connection, e))
            continue;
        if (append_ff && kp_http_name_eq(f->name, f->name_len, "x-forwarded-for")) {
            xff = f;
            continue;
        }
        if (append_ff && kp_http_name_eq(f->name, f->name_len, "forwarded")) {
            forwarded = f;
            continue;
        }
        if (add(h, f->name, f->name_len, f->value, f->value_len) != 0)
            return -1;
    }
    kp_strbuf_t v;
    kp_strbuf_init(&v);
    int rc = 0;
    if (append_ff && r->peer_ip && r->peer_ip[0]) {
        if (xff && xff->value_len) {
            kp_strbuf_append(&v, xff->value, xff->value_len);
            kp_strbuf_append(&v, ", ", 2);
        }
        kp_strbuf_puts(&v, r->peer_ip);
        rc |= adds(h, "x-forwarded-for", v.data, v.len);
        if (forwarded) {
            /* RFC 7239: in step with X-Forwarded-For; IPv6 quoted. */
            int v6 = strchr(r->peer_ip, ':') != NULL;
            kp_strbuf_reset(&v);
            kp_strbuf_append(&v, forwarded->value, forwarded->value_len);
            kp_strbuf_printf(&v, ", for=%s%s%s", v6 ? "\"[" : "", r->peer_ip, v6 ? "]\"" : "");
            rc |= adds(h, "forwarded", v.data, v.len);
        }
    }
    if (!r->chunked && r->content_length >= 0) {
        kp_strbuf_reset(&v);
        kp_strbuf_printf(&v, "%lld", (long long)r->content_length);
        rc |= adds(h, "content-length", v.data, v.len);
    }
    kp_strbuf_free(&v);
    if (rc != 0 || (e && e->add_len && add_lines(h, e->add, e->add_len) != 0))
        return -1;
    nghttp2_nv *nv = realloc(h->nv, (h->n ? h->n : 1) * sizeof *nv);
    if (!nv)
        return -1;
    h->nv = nv;
    for (size_t i = 0; i < h->n; i++) {
        const kp_h2c_field_span_t *f = &h->spans[i];
        nv[i].name = (uint8_t *)h->text.data + f->name_off;
        nv[i].namelen = f->name_len;
        nv[i].value = (uint8_t *)h->text.data + f->value_off;
        nv[i].valuelen = f->value_len;
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    return 0;
}
