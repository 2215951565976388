/* Request-log templates, rendering; see request_log.h. Walks a compiled
 * template and writes straight into the caller's buffer. The output follows
 * Go's text/template byte for byte except where noted (marked
 * "deviation"). */
#include "request_log.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "request_log_types.h"

/* ------------------------------------------------------------------ */
/* Rendering */

typedef struct rl_val {
    enum rl_type type;
    int js; /* how many times js-escaping applies when printed */
    const char *s;
    size_t len;
    long long i;
    double f;
    long long nth; /* T_STR from index ... N: which value (-1: not indexed) */
} rl_val_t;

static int rl_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

/* Header values in arrival order, each line one value, as Go's Header. */
static const kp_reqlog_header_t *rl_header_nth(const kp_reqlog_entry_t *e, const char *name,
                                               size_t name_len, long long nth)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (rl_name_eq(e->headers[i].name, e->headers[i].name_len, name, name_len) && nth-- == 0)
            return &e->headers[i];
    return NULL;
}

static void rl_set_header(rl_val_t *v, const kp_reqlog_entry_t *e, const char *name, size_t nlen,
                          long long nth)
{
    const kp_reqlog_header_t *h = rl_header_nth(e, name, nlen, nth);
    v->type = T_STR;
    v->s = h ? h->value : "";
    v->len = h ? h->value_len : 0;
}

static void rl_set_cstr(rl_val_t *v, const char *s)
{
    v->type = T_STR;
    v->s = s ? s : "";
    v->len = strlen(v->s);
}

static int rl_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rl_hexval(s[i]) < 0)
            return 0;
    return 1;
}

/* The trace id the way newer Knative extracts it: W3C traceparent
 * "vv-<32 hex>-<16 hex>-<2 hex>" first, then B3. */
static void rl_trace_id(rl_val_t *v, const kp_reqlog_entry_t *e)
{
    const kp_reqlog_header_t *tp = rl_header_nth(e, "traceparent", 11, 0);
    if (tp && tp->value_len >= 55 && tp->value[2] == '-' && tp->value[35] == '-' &&
        rl_is_hex(tp->value + 3, 32)) {
        v->type = T_STR;
        v->s = tp->value + 3;
        v->len = 32;
        return;
    }
    rl_set_header(v, e, "X-B3-TraceId", 12, 0);
}

/* Skips "scheme://authority" of an absolute-form target. */
static size_t rl_path_start(const char *u, size_t n)
{
    for (size_t i = 0; i + 2 < n && u[i] != '/' && u[i] != '?'; i++) {
        if (u[i] == ':' && u[i + 1] == '/' && u[i + 2] == '/') {
            size_t j = i + 3;
            while (j < n && u[j] != '/' && u[j] != '?')
                j++;
            return j;
        }
    }
    return 0;
}

static long long rl_proto_part(const char *proto, int minor)
{
    if (!proto)
        proto = "HTTP/1.1";
    const char *slash = strchr(proto, '/');
    if (!slash)
        return 0;
    const char *dot = strchr(slash, '.');
    return minor ? (dot ? atoll(dot + 1) : 0) : atoll(slash + 1);
}

static void rl_eval_field(enum rl_field f, const kp_reqlog_entry_t *e,
                          const kp_reqlog_revision_t *rev, rl_val_t *v)
{
    switch (f) {
    case F_METHOD:
        rl_set_cstr(v, e->method);
        break;
    case F_URI:
    case F_URL:
        v->type = T_STR;
        v->s = e->uri ? e->uri : "";
        v->len = e->uri ? e->uri_len : 0;
        break;
    case F_URL_PATH:
    case F_URL_QUERY: {
        const char *u = e->uri ? e->uri : "";
        size_t n = e->uri ? e->uri_len : 0;
        const char *q = memchr(u, '?', n);
        size_t qpos = q ? (size_t)(q - u) : n;
        if (f == F_URL_QUERY) {
            v->type = T_STR;
            v->s = q ? q + 1 : "";
            v->len = q ? n - qpos - 1 : 0;
        } else {
            size_t ps = rl_path_start(u, qpos);
            v->type = T_URLPATH;
            v->s = u + ps;
            v->len = qpos - ps;
        }
        break;
    }
    case F_HOST:
        if (e->host) {
            v->type = T_STR;
            v->s = e->host;
            v->len = e->host_len;
        } else
            rl_set_header(v, e, "Host", 4, 0);
        break;
    case F_CONTENT_LENGTH:
        v->type = T_INT;
        v->i = e->content_length;
        break;
    case F_USER_AGENT:
        rl_set_header(v, e, "User-Agent", 10, 0);
        break;
    case F_REFERER:
        rl_set_header(v, e, "Referer", 7, 0);
        break;
    case F_REMOTE_ADDR:
        rl_set_cstr(v, e->remote_addr);
        break;
    case F_PROTO:
        rl_set_cstr(v, e->proto ? e->proto : "HTTP/1.1");
        break;
    case F_PROTO_MAJOR:
    case F_PROTO_MINOR:
        v->type = T_INT;
        v->i = rl_proto_part(e->proto, f == F_PROTO_MINOR);
        break;
    case F_HEADER:
    case F_HEADER_GET:
        v->type = T_HEADERS;
        break;
    case F_CODE:
        v->type = T_INT;
        v->i = e->status;
        break;
    case F_SIZE:
        v->type = T_INT;
        v->i = e->response_size;
        break;
    case F_LATENCY:
        v->type = T_FLOAT;
        v->f = e->latency_s;
        break;
    case F_REV_NAME:
        rl_set_cstr(v, rev ? rev->name : NULL);
        break;
    case F_REV_NAMESPACE:
        rl_set_cstr(v, rev ? rev->namespace_ : NULL);
        break;
    case F_REV_SERVICE:
        rl_set_cstr(v, rev ? rev->service : NULL);
        break;
    case F_REV_CONFIGURATION:
        rl_set_cstr(v, rev ? rev->configuration : NULL);
        break;
    case F_REV_POD_NAME:
        rl_set_cstr(v, rev ? rev->pod_name : NULL);
        break;
    case F_REV_POD_IP:
        rl_set_cstr(v, rev ? rev->pod_ip : NULL);
        break;
    case F_TRACE_ID:
        rl_trace_id(v, e);
        break;
    }
}

static void rl_eval(const kp_reqlog_t *t, int32_t idx, const kp_reqlog_entry_t *e,
                    const kp_reqlog_revision_t *rev, rl_val_t *v)
{
    const rl_expr_t *x = &t->exprs[idx];
    memset(v, 0, sizeof *v);
    v->nth = -1;
    switch ((enum rl_op)x->op) {
    case OP_FIELD:
        rl_eval_field((enum rl_field)x->field, e, rev, v);
        break;
    case OP_STR:
        v->type = T_STR;
        v->s = t->lits.data + x->lit_off;
        v->len = x->lit_len;
        break;
    case OP_INT:
        v->type = T_INT;
        v->i = x->ival;
        break;
    case OP_JS:
        /* Escaping is applied lazily when printing: no buffer needed. */
        rl_eval(t, x->args[0], e, rev, v);
        v->js++;
        break;
    case OP_HGET:
    case OP_INDEX: {
        const rl_expr_t *key = &t->exprs[x->args[x->op == OP_HGET ? 0 : 1]];
        const char *name = t->lits.data + key->lit_off;
        if (x->op == OP_INDEX && x->nargs == 2) {
            v->type = T_HVALS;
            v->s = name;
            v->len = key->lit_len;
        } else {
            long long nth = x->op == OP_INDEX ? t->exprs[x->args[2]].ival : 0;
            rl_set_header(v, e, name, key->lit_len, nth);
        }
        break;
    }
    }
}

/* Go's unicode.IsPrint, approximated without Unicode tables: the
 * separators, format characters, private use and noncharacters that show
 * up in practice are "not printable"; unassigned code points count as
 * printable (deviation). */
static int rl_rune_printable(uint32_t r)
{
    if (r < 0xA0)
        return r >= 0x20 && r != 0x7F;
    if (r == 0xA0 || r == 0xAD || r == 0x061C || r == 0x06DD || r == 0x070F || r == 0x1680 ||
        r == 0x180E || r == 0x3000 || r == 0xFEFF)
        return 0;
    if ((r >= 0x0600 && r <= 0x0605) || (r >= 0x2000 && r <= 0x200F) ||
        (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F) ||
        (r >= 0xE000 && r <= 0xF8FF) || (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFE ||
        r == 0xFFFF || (r >= 0xE0000 && r <= 0xE0FFF) || r >= 0xF0000)
        return 0;
    return 1;
}

/* Decodes one UTF-8 sequence; 0 when invalid (overlong, surrogate, cut). */
static size_t rl_utf8_decode(const unsigned char *s, size_t n, uint32_t *r)
{
    size_t len;
    uint32_t min;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        *r = s[0] & 0x1F;
        min = 0x80;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        *r = s[0] & 0x0F;
        min = 0x800;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        *r = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        *r = (*r << 6) | (s[i] & 0x3F);
    }
    if (*r < min || *r > 0x10FFFF || (*r >= 0xD800 && *r <= 0xDFFF))
        return 0;
    return len;
}

static int rl_js_special(unsigned char c)
{
    return c < 0x20 || c >= 0x80 || c == '\\' || c == '\'' || c == '"' || c == '<' || c == '>' ||
           c == '&' || c == '=';
}

/* Writes s escaped `depth` times the way Go's text/template JSEscape does,
 * with two deviations that keep a template's JSON valid: an apostrophe
 * becomes \u0027 (Go writes \', which no JSON parser accepts) and an
 * invalid UTF-8 byte becomes \uFFFD (Go copies it through). */
static void rl_emit(kp_strbuf_t *out, const char *s, size_t len, int depth)
{
    if (depth == 0) {
        kp_strbuf_append(out, s, len);
        return;
    }
    static const char hex[] = "0123456789ABCDEF";
    size_t last = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (!rl_js_special(c)) {
            i++;
            continue;
        }
        rl_emit(out, s + last, i - last, depth - 1);
        size_t size = 1;
        char esc[16];
        const char *rep = esc;
        size_t rep_len = 6;
        switch (c) {
        case '\\':
            rep = "\\\\";
            rep_len = 2;
            break;
        case '"':
            rep = "\\\"";
            rep_len = 2;
            break;
        case '\'':
            rep = "\\u0027";
            break;
        case '<':
            rep = "\\u003C";
            break;
        case '>':
            rep = "\\u003E";
            break;
        case '&':
            rep = "\\u0026";
            break;
        case '=':
            rep = "\\u003D";
            break;
        default:
            if (c < 0x80) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
            } else {
                uint32_t r;
                size = rl_utf8_decode((const unsigned char *)s + i, len - i, &r);
                if (size == 0) {
                    size = 1;
                    rep = "\\uFFFD";
                } else if (rl_rune_printable(r)) {
                    rep = s + i;
                    rep_len = size;
                } else {
                    rep_len = (size_t)snprintf(esc, sizeof esc, "\\u%04X", (unsigned)r);
                }
            }
        }
        rl_emit(out, rep, rep_len, depth - 1);
        i += size;
        last = i;
    }
    rl_emit(out, s + last, len - last, depth - 1);
}

/* Go's fmt %v for a float64 (strconv 'g' with precision -1): the shortest
 * decimal that reads back as the same value, in %e form with a two-digit
 * exponent when the exponent is < -4 or >= 6 (1e+06, 1.5e-05), else plain
 * (0.0012, 123456). */
size_t rl_fmt_float(double f, char *buf, size_t buflen)
{
    if (isnan(f))
        return (size_t)snprintf(buf, buflen, "NaN");
    if (isinf(f))
        return (size_t)snprintf(buf, buflen, f > 0 ? "+Inf" : "-Inf");
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp is "[-]d[.ddd]e[+-]XX" */
    char digits[24];
    size_t nd = 0;
    const char *c = tmp;
    int neg = *c == '-';
    c += neg;
    for (; *c && *c != 'e'; c++)
        if (*c != '.')
            digits[nd++] = *c;
    int exp = atoi(c + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (f == 0) {
        nd = 1;
        exp = 0;
    }
    size_t o = 0;
    char out[64];
    if (neg)
        out[o++] = '-';
    if (exp < -4 || exp >= 6) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", exp < 0 ? '-' : '+',
                              exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int z = 0; z < -exp - 1; z++)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    } else {
        for (int k = 0; k <= exp; k++)
            out[o++] = (size_t)k < nd ? digits[k] : '0';
        if (nd > (size_t)exp + 1) {
            out[o++] = '.';
            memcpy(out + o, digits + exp + 1, nd - (size_t)exp - 1);
            o += nd - (size_t)exp - 1;
        }
    }
    out[o] = '\0';
    return (size_t)snprintf(buf, buflen, "%s", out);
}

static void rl_print(kp_strbuf_t *out, const rl_val_t *v, const kp_reqlog_entry_t *e)
{
    char num[64];
    size_t n;
    switch (v->type) {
    case T_STR:
        rl_emit(out, v->s, v->len, v->js);
        break;
    case T_INT:
        n = (size_t)snprintf(num, sizeof num, "%lld", v->i);
        rl_emit(out, num, n, v->js);
        break;
    case T_FLOAT:
        n = rl_fmt_float(v->f, num, sizeof num);
        rl_emit(out, num, n, v->js);
        break;
    case T_URLPATH: {
        /* Go's URL.Path is percent-decoded. */
        char buf[KP_HTTP_MAX_URL];
        if (v->len > sizeof buf) {
            rl_emit(out, v->s, v->len, v->js);
            break;
        }
        n = 0;
        for (size_t i = 0; i < v->len; i++) {
            if (v->s[i] == '%' && i + 2 < v->len && rl_hexval(v->s[i + 1]) >= 0 &&
                rl_hexval(v->s[i + 2]) >= 0) {
                buf[n++] = (char)(rl_hexval(v->s[i + 1]) * 16 + rl_hexval(v->s[i + 2]));
                i += 2;
            } else {
                buf[n++] = v->s[i];
            }
        }
        rl_emit(out, buf, n, v->js);
        break;
    }
    case T_HVALS: {
        /* fmt prints a []string as [a b]; a missing key as []. */
        rl_emit(out, "[", 1, v->js);
        int first = 1;
        for (size_t i = 0; i < e->n_headers; i++) {
            const kp_reqlog_header_t *h = &e->headers[i];
            if (!rl_name_eq(h->name, h->name_len, v->s, v->len))
                continue;
            if (!first)
                rl_emit(out, " ", 1, v->js);
            rl_emit(out, h->value, h->value_len, v->js);
            first = 0;
        }
        rl_emit(out, "]", 1, v->js);
        break;
    }
    case T_HEADERS:
        break; /* refused at compile time */
    }
}

void kp_reqlog_render(const kp_reqlog_t *t, const kp_reqlog_entry_t *e,
                      const kp_reqlog_revision_t *rev, kp_strbuf_t *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < t->n_nodes; i++) {
        const rl_node_t *nd = &t->nodes[i];
        kp_strbuf_append(out, t->text + nd->text_off, nd->text_len);
        if (nd->expr >= 0) {
            rl_val_t v;
            rl_eval(t, nd->expr, e, rev, &v);
            rl_print(out, &v, e);
        }
    }
    if (out->len == start || out->data[out->len - 1] != '\n')
        kp_strbuf_append(out, "\n", 1);
}
