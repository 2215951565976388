/* Request-log templates, compiling; see request_log.h. A template compiles
 * into a list of text pieces and small expression trees over a fixed set
 * of fields, each typed at compile time so that a template that cannot
 * render fails at start. */
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

static const struct {
    const char *path;
    enum rl_field field;
    enum rl_type type;
} rl_fields[] = {
    {".Request.Method", F_METHOD, T_STR},
    {".Request.RequestURI", F_URI, T_STR},
    {".Request.URL", F_URL, T_STR},
    {".Request.URL.Path", F_URL_PATH, T_URLPATH},
    {".Request.URL.RawQuery", F_URL_QUERY, T_STR},
    {".Request.Host", F_HOST, T_STR},
    {".Request.ContentLength", F_CONTENT_LENGTH, T_INT},
    {".Request.UserAgent", F_USER_AGENT, T_STR},
    {".Request.Referer", F_REFERER, T_STR},
    {".Request.RemoteAddr", F_REMOTE_ADDR, T_STR},
    {".Request.Proto", F_PROTO, T_STR},
    {".Request.ProtoMajor", F_PROTO_MAJOR, T_INT},
    {".Request.ProtoMinor", F_PROTO_MINOR, T_INT},
    {".Request.Header", F_HEADER, T_HEADERS},
    {".Request.Header.Get", F_HEADER_GET, T_STR},
    {".Response.Code", F_CODE, T_INT},
    {".Response.Size", F_SIZE, T_INT},
    {".Response.Latency", F_LATENCY, T_FLOAT},
    {".Revision.Name", F_REV_NAME, T_STR},
    {".Revision.Namespace", F_REV_NAMESPACE, T_STR},
    {".Revision.Service", F_REV_SERVICE, T_STR},
    {".Revision.Configuration", F_REV_CONFIGURATION, T_STR},
    {".Revision.PodName", F_REV_POD_NAME, T_STR},
    {".Revision.PodIP", F_REV_POD_IP, T_STR},
    {".TraceID", F_TRACE_ID, T_STR},
};

#define RL_SUPPORTED_FIELDS                                                                        \
    ".Request.{Method,RequestURI,URL,URL.Path,URL.RawQuery,Host,ContentLength,UserAgent,"          \
    "Referer,RemoteAddr,Proto,ProtoMajor,ProtoMinor}, .Response.{Code,Size,Latency}, "             \
    ".Revision.{Name,Namespace,Service,Configuration,PodName,PodIP}, .TraceID"

/* ------------------------------------------------------------------ */
/* Compiling */

enum rl_tok {
    TK_NONE,   /* after a lexing error */
    TK_END,    /* }} */
    TK_FIELD,  /* .A.B */
    TK_DOT,    /* . alone */
    TK_IDENT,  /* js */
    TK_STRING, /* "..." or `...` (decoded into lits) */
    TK_NUMBER, /* integer */
    TK_LPAREN,
    TK_RPAREN,
    TK_PIPE,
    TK_OTHER, /* $x, :=, ... : unsupported */
};

typedef struct rl_token {
    enum rl_tok kind;
    size_t start, len; /* span in the template */
    int rtrim;         /* TK_END: " -}}" */
    uint32_t lit_off, lit_len;
    long long ival;
} rl_token_t;

typedef struct rl_parser {
    kp_reqlog_t *t;
    const char *src;
    size_t len;
    size_t pos;
    size_t action_start; /* of the current "{{", for messages */
    char *err;
    size_t errlen;
    int failed;
    const char *hint; /* appended to the next failure's message */
} rl_parser_t;

static void rl_fail(rl_parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message names the action as written, so the user can find it. */
static void rl_fail(rl_parser_t *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    if (!p->err || !p->errlen)
        return;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *a = p->src + p->action_start;
    const char *close = strstr(a, "}}");
    size_t alen = close ? (size_t)(close - a) + 2 : strlen(a);
    int shown = alen > 80 ? 77 : (int)alen;
    snprintf(p->err, p->errlen, "%s in action %.*s%s%s", what, shown, a, alen > 80 ? "..." : "",
             p->hint ? p->hint : "");
}

static int rl_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int rl_is_ident(char c, int first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

static void rl_put_utf8(kp_strbuf_t *sb, uint32_t r)
{
    char b[4];
    size_t n;
    if (r < 0x80) {
        b[0] = (char)r;
        n = 1;
    } else if (r < 0x800) {
        b[0] = (char)(0xC0 | (r >> 6));
        b[1] = (char)(0x80 | (r & 0x3F));
        n = 2;
    } else if (r < 0x10000) {
        b[0] = (char)(0xE0 | (r >> 12));
        b[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        b[2] = (char)(0x80 | (r & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (r >> 18));
        b[1] = (char)(0x80 | ((r >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((r >> 6) & 0x3F));
        b[3] = (char)(0x80 | (r & 0x3F));
        n = 4;
    }
    kp_strbuf_append(sb, b, n);
}

/* A Go interpreted string literal: \n \t \\ \" \xHH \uHHHH \UHHHHHHHH and
 * friends. The decoded bytes go to t->lits. */
static void rl_lex_string(rl_parser_t *p, rl_token_t *tok)
{
    kp_strbuf_t *lits = &p->t->lits;
    size_t i = p->pos + 1;
    tok->lit_off = (uint32_t)lits->len;
    while (i < p->len && p->src[i] != '"') {
        char c = p->src[i];
        if (c == '\n') {
            rl_fail(p, "unterminated quoted string");
            return;
        }
        if (c != '\\') {
            kp_strbuf_append(lits, &c, 1);
            i++;
            continue;
        }
        if (++i >= p->len)
            break;
        char e = p->src[i++];
        static const char esc_in[] = "abfnrtv\\\"'";
        static const char esc_out[] = "\a\b\f\n\r\t\v\\\"'";
        const char *simple = e ? strchr(esc_in, e) : NULL;
        if (simple) {
            kp_strbuf_append(lits, &esc_out[simple - esc_in], 1);
            continue;
        }
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (!digits) {
            rl_fail(p, "unsupported escape \\%c in string", e);
            return;
        }
        uint32_t v = 0;
        for (int k = 0; k < digits; k++, i++) {
            int h = i < p->len ? rl_hexval(p->src[i]) : -1;
            if (h < 0) {
                rl_fail(p, "bad \\%c escape in string", e);
                return;
            }
            v = v * 16 + (uint32_t)h;
        }
        if (e == 'x') {
            char b = (char)v;
            kp_strbuf_append(lits, &b, 1);
        } else if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
            rl_fail(p, "bad \\%c escape in string", e);
            return;
        } else {
            rl_put_utf8(lits, v);
        }
    }
    if (i >= p->len) {
        rl_fail(p, "unterminated quoted string");
        return;
    }
    tok->lit_len = (uint32_t)(lits->len - tok->lit_off);
    tok->kind = TK_STRING;
    p->pos = i + 1;
}

static void rl_lex_raw_string(rl_parser_t *p, rl_token_t *tok)
{
    const char *s = p->src + p->pos + 1;
    const char *end = memchr(s, '`', p->len - p->pos - 1);
    if (!end) {
        rl_fail(p, "unterminated raw string");
        return;
    }
    tok->lit_off = (uint32_t)p->t->lits.len;
    tok->lit_len = (uint32_t)(end - s);
    /* Go drops carriage returns from raw strings. */
    for (const char *c = s; c < end; c++)
        if (*c != '\r')
            kp_strbuf_append(&p->t->lits, c, 1);
    tok->lit_len = (uint32_t)(p->t->lits.len - tok->lit_off);
    tok->kind = TK_STRING;
    p->pos = (size_t)(end - p->src) + 1;
}

static void rl_next(rl_parser_t *p, rl_token_t *tok)
{
    memset(tok, 0, sizeof *tok);
    size_t before = p->pos;
    while (p->pos < p->len && rl_is_space(p->src[p->pos]))
        p->pos++;
    const char *s = p->src + p->pos;
    size_t left = p->len - p->pos;
    tok->start = p->pos;
    if (left == 0) {
        rl_fail(p, "unclosed action");
        tok->kind = TK_OTHER;
        return;
    }
    /* Go's right trim marker needs a space before the dash. */
    if (p->pos > before && left >= 3 && memcmp(s, "-}}", 3) == 0) {
        tok->kind = TK_END;
        tok->rtrim = 1;
        p->pos += 3;
    } else if (left >= 2 && memcmp(s, "}}", 2) == 0) {
        tok->kind = TK_END;
        p->pos += 2;
    } else if (s[0] == '.' && left > 1 && rl_is_ident(s[1], 1)) {
        size_t i = 1;
        while (i < left && (s[i] == '.' || rl_is_ident(s[i], 0))) {
            if (s[i] == '.' && (i + 1 >= left || !rl_is_ident(s[i + 1], 1)))
                break;
            i++;
        }
        tok->kind = TK_FIELD;
        p->pos += i;
    } else if (s[0] == '.') {
        tok->kind = TK_DOT;
        p->pos++;
    } else if (rl_is_ident(s[0], 1)) {
        size_t i = 1;
        while (i < left && rl_is_ident(s[i], 0))
            i++;
        tok->kind = TK_IDENT;
        p->pos += i;
    } else if (s[0] == '"') {
        rl_lex_string(p, tok);
    } else if (s[0] == '`') {
        rl_lex_raw_string(p, tok);
    } else if ((s[0] >= '0' && s[0] <= '9') ||
               (s[0] == '-' && left > 1 && s[1] >= '0' && s[1] <= '9')) {
        size_t i = s[0] == '-';
        long long v = 0;
        for (; i < left && s[i] >= '0' && s[i] <= '9'; i++) {
            if (v > (LLONG_MAX - (s[i] - '0')) / 10) {
                rl_fail(p, "number out of range");
                break;
            }
            v = v * 10 + (s[i] - '0');
        }
        if (i < left && (rl_is_ident(s[i], 0) || s[i] == '.')) {
            rl_fail(p, "only integer numbers are supported");
        }
        tok->kind = TK_NUMBER;
        tok->ival = s[0] == '-' ? -v : v;
        p->pos += i;
    } else if (s[0] == '(') {
        tok->kind = TK_LPAREN;
        p->pos++;
    } else if (s[0] == ')') {
        tok->kind = TK_RPAREN;
        p->pos++;
    } else if (s[0] == '|') {
        tok->kind = TK_PIPE;
        p->pos++;
    } else {
        tok->kind = TK_OTHER;
        p->pos++;
    }
    tok->len = p->pos - tok->start;
}

/* A lexing error seen while peeking stands: the token would be consumed
 * next anyway. */
static void rl_peek(rl_parser_t *p, rl_token_t *tok)
{
    size_t save_pos = p->pos, save_lits = p->t->lits.len;
    rl_next(p, tok);
    p->pos = save_pos;
    p->t->lits.len = save_lits;
}

static int32_t rl_new_expr(rl_parser_t *p, enum rl_op op, enum rl_type type)
{
    kp_reqlog_t *t = p->t;
    if (t->n_exprs == t->cap_exprs) {
        t->cap_exprs = t->cap_exprs ? t->cap_exprs * 2 : 16;
        t->exprs = realloc(t->exprs, t->cap_exprs * sizeof *t->exprs);
        if (!t->exprs)
            abort();
    }
    rl_expr_t *e = &t->exprs[t->n_exprs];
    memset(e, 0, sizeof *e);
    e->op = (uint8_t)op;
    e->type = (uint8_t)type;
    return (int32_t)t->n_exprs++;
}

/* Go's template keywords: control structures we do not run. */
static const char *const rl_keywords[] = {"if",     "else",  "end",   "range",    "with",
                                          "define", "block", "break", "continue", "template",
                                          "nil",    "true",  "false"};

static int rl_is_keyword(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof rl_keywords / sizeof rl_keywords[0]; i++)
        if (strlen(rl_keywords[i]) == n && memcmp(rl_keywords[i], s, n) == 0)
            return 1;
    return 0;
}

static int32_t rl_parse_pipeline(rl_parser_t *p);

static int32_t rl_parse_field(rl_parser_t *p, const rl_token_t *tok)
{
    const char *s = p->src + tok->start;
    for (size_t i = 0; i < sizeof rl_fields / sizeof rl_fields[0]; i++) {
        if (strlen(rl_fields[i].path) == tok->len && memcmp(rl_fields[i].path, s, tok->len) == 0) {
            int32_t e = rl_new_expr(p, OP_FIELD, rl_fields[i].type);
            p->t->exprs[e].field = (uint8_t)rl_fields[i].field;
            return e;
        }
    }
    p->hint = " (supported: " RL_SUPPORTED_FIELDS ")";
    rl_fail(p, "unknown field %.*s", (int)tok->len, s);
    return -1;
}

/* One argument of a function, or the head of a command. */
static int32_t rl_parse_operand(rl_parser_t *p, const rl_token_t *tok)
{
    int32_t e;
    switch (tok->kind) {
    case TK_FIELD:
        return rl_parse_field(p, tok);
    case TK_STRING:
        e = rl_new_expr(p, OP_STR, T_STR);
        p->t->exprs[e].lit_off = tok->lit_off;
        p->t->exprs[e].lit_len = tok->lit_len;
        return e;
    case TK_NUMBER:
        e = rl_new_expr(p, OP_INT, T_INT);
        p->t->exprs[e].ival = tok->ival;
        return e;
    case TK_LPAREN: {
        e = rl_parse_pipeline(p);
        rl_token_t close;
        rl_next(p, &close);
        if (!p->failed && close.kind != TK_RPAREN)
            rl_fail(p, "expected )");
        return p->failed ? -1 : e;
    }
    case TK_DOT:
        rl_fail(p, "printing the whole input {{.}} is not supported; name a field");
        return -1;
    case TK_IDENT:
        rl_fail(p, "function %.*s needs arguments here", (int)tok->len, p->src + tok->start);
        return -1;
    default:
        rl_fail(p,
                "unsupported syntax \"%.*s\" (variables, assignments and comparisons are "
                "not supported)",
                (int)tok->len, p->src + tok->start);
        return -1;
    }
}

static int rl_at_command_end(rl_parser_t *p)
{
    rl_token_t tok;
    rl_peek(p, &tok);
    return tok.kind == TK_END || tok.kind == TK_PIPE || tok.kind == TK_RPAREN;
}

/* Arguments up to the end of the command; piped (from "x | f") comes last,
 * as in Go. */
static int rl_parse_args(rl_parser_t *p, int32_t *args, int max, int32_t piped)
{
    int n = 0;
    while (!p->failed && !rl_at_command_end(p)) {
        rl_token_t tok;
        rl_next(p, &tok);
        int32_t a = rl_parse_operand(p, &tok);
        if (a < 0)
            return -1;
        if (n == max) {
            rl_fail(p, "too many arguments");
            return -1;
        }
        args[n++] = a;
    }
    if (piped >= 0) {
        if (n == max) {
            rl_fail(p, "too many arguments");
            return -1;
        }
        args[n++] = piped;
    }
    return p->failed ? -1 : n;
}

static int32_t rl_parse_command(rl_parser_t *p, int32_t piped)
{
    rl_token_t tok;
    rl_next(p, &tok);
    if (p->failed)
        return -1;
    const char *word = p->src + tok.start;
    int32_t args[3];
    if (tok.kind == TK_IDENT) {
        int is_js = tok.len == 2 && memcmp(word, "js", 2) == 0;
        int is_index = tok.len == 5 && memcmp(word, "index", 5) == 0;
        if (!is_js && !is_index) {
            if (rl_is_keyword(word, tok.len))
                rl_fail(p, "unsupported action \"%.*s\" (only fields, js and index are supported)",
                        (int)tok.len, word);
            else
                rl_fail(p, "unknown function \"%.*s\" (supported: js, index)", (int)tok.len, word);
            return -1;
        }
        int n = rl_parse_args(p, args, 3, piped);
        if (n < 0)
            return -1;
        const rl_expr_t *ex = p->t->exprs;
        if (is_js) {
            if (n != 1) {
                rl_fail(p, "js takes exactly one argument");
                return -1;
            }
            if (ex[args[0]].type == T_HEADERS) {
                rl_fail(p, "js of .Request.Header is not supported; use index");
                return -1;
            }
            int32_t e = rl_new_expr(p, OP_JS, T_STR);
            p->t->exprs[e].nargs = 1;
            p->t->exprs[e].args[0] = args[0];
            return e;
        }
        if (n < 2 || ex[args[0]].type != T_HEADERS || ex[args[1]].op != OP_STR ||
            (n == 3 && (ex[args[2]].op != OP_INT || ex[args[2]].ival < 0))) {
            rl_fail(p, "index supports only index .Request.Header \"Name\" [N]");
            return -1;
        }
        int32_t e = rl_new_expr(p, OP_INDEX, n == 3 ? T_STR : T_HVALS);
        p->t->exprs[e].nargs = (uint8_t)n;
        memcpy(p->t->exprs[e].args, args, sizeof args);
        return e;
    }

    int32_t head = rl_parse_operand(p, &tok);
    if (head < 0)
        return -1;
    if (p->t->exprs[head].op == OP_FIELD && p->t->exprs[head].field == F_HEADER_GET) {
        int n = rl_parse_args(p, args, 1, piped);
        if (n < 0)
            return -1;
        if (n != 1 || p->t->exprs[args[0]].op != OP_STR) {
            rl_fail(p, ".Request.Header.Get takes one quoted header name");
            return -1;
        }
        p->t->exprs[head].op = OP_HGET;
        p->t->exprs[head].nargs = 1;
        p->t->exprs[head].args[0] = args[0];
        return head;
    }
    if (piped >= 0 || !rl_at_command_end(p)) {
        rl_fail(p, "%.*s is not a function and takes no arguments", (int)tok.len, word);
        return -1;
    }
    return head;
}

static int32_t rl_parse_pipeline(rl_parser_t *p)
{
    int32_t e = rl_parse_command(p, -1);
    while (e >= 0 && !p->failed) {
        rl_token_t tok;
        rl_peek(p, &tok);
        if (tok.kind != TK_PIPE)
            break;
        rl_next(p, &tok);
        e = rl_parse_command(p, e);
    }
    return p->failed ? -1 : e;
}

static void rl_add_node(kp_reqlog_t *t, size_t text_off, size_t text_len, int32_t expr)
{
    if (text_len == 0 && expr < 0)
        return;
    if (t->n_nodes == t->cap_nodes) {
        t->cap_nodes = t->cap_nodes ? t->cap_nodes * 2 : 16;
        t->nodes = realloc(t->nodes, t->cap_nodes * sizeof *t->nodes);
        if (!t->nodes)
            abort();
    }
    t->nodes[t->n_nodes++] = (rl_node_t){(uint32_t)text_off, (uint32_t)text_len, expr};
}

/* A comment action ({{/\* text *\/}} in Go), possibly with trim markers; returns 1
 * when the action was one. */
static int rl_parse_comment(rl_parser_t *p, int *rtrim)
{
    if (p->len - p->pos < 2 || memcmp(p->src + p->pos, "/*", 2) != 0)
        return 0;
    const char *end = strstr(p->src + p->pos + 2, "*/");
    if (!end) {
        rl_fail(p, "unclosed comment");
        return 1;
    }
    size_t i = (size_t)(end - p->src) + 2;
    if (p->len - i >= 4 && memcmp(p->src + i, " -}}", 4) == 0) {
        *rtrim = 1;
        p->pos = i + 4;
    } else if (p->len - i >= 2 && memcmp(p->src + i, "}}", 2) == 0) {
        p->pos = i + 2;
    } else {
        rl_fail(p, "comment ends before closing delimiter");
    }
    return 1;
}

static int rl_compile(rl_parser_t *p)
{
    kp_reqlog_t *t = p->t;
    size_t text_start = 0;
    int trim_next = 0;
    while (!p->failed) {
        const char *open = strstr(p->src + p->pos, "{{");
        size_t text_end = open ? (size_t)(open - p->src) : p->len;
        if (trim_next)
            while (text_start < text_end && rl_is_space(p->src[text_start]))
                text_start++;
        if (!open) {
            rl_add_node(t, text_start, text_end - text_start, -1);
            break;
        }
        p->action_start = text_end;
        p->pos = text_end + 2;
        /* "{{- " trims the whitespace before the action. */
        if (p->pos + 1 < p->len && p->src[p->pos] == '-' && rl_is_space(p->src[p->pos + 1])) {
            while (text_end > text_start && rl_is_space(p->src[text_end - 1]))
                text_end--;
            p->pos += 2;
            while (p->pos < p->len && rl_is_space(p->src[p->pos]))
                p->pos++;
        }
        int rtrim = 0;
        int32_t expr = -1;
        if (!rl_parse_comment(p, &rtrim)) {
            rl_token_t tok;
            rl_peek(p, &tok);
            if (tok.kind == TK_END) {
                rl_fail(p, "missing value for command");
                break;
            }
            expr = rl_parse_pipeline(p);
            if (p->failed)
                break;
            rl_next(p, &tok);
            if (tok.kind != TK_END) {
                rl_fail(p, "unexpected \"%.*s\"", (int)tok.len, p->src + tok.start);
                break;
            }
            rtrim = tok.rtrim;
            if (t->exprs[expr].type == T_HEADERS) {
                rl_fail(p, "printing .Request.Header is not supported; use index "
                           ".Request.Header \"Name\"");
                break;
            }
        }
        rl_add_node(t, text_start, text_end - text_start, expr);
        text_start = p->pos;
        trim_next = rtrim;
    }
    return p->failed ? -1 : 0;
}

int kp_reqlog_compile(const char *tmpl, kp_reqlog_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!tmpl || !*tmpl)
        tmpl = KP_REQLOG_DEFAULT_TEMPLATE;
    kp_reqlog_t *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    kp_strbuf_init(&t->lits);
    /* Knative appends the newline before parsing, so " -}}" at the very
     * end trims it: we do the same and add it back at render time. */
    size_t n = strlen(tmpl);
    int add_nl = tmpl[n - 1] != '\n';
    t->text = malloc(n + 2);
    if (!t->text)
        abort();
    memcpy(t->text, tmpl, n);
    if (add_nl)
        t->text[n++] = '\n';
    t->text[n] = '\0';
    kp_strbuf_append(&t->lits, "", 0);

    rl_parser_t p = {.t = t, .src = t->text, .len = n, .err = err, .errlen = errlen};
    if (rl_compile(&p) < 0) {
        kp_reqlog_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void kp_reqlog_free(kp_reqlog_t *t)
{
    if (!t)
        return;
    free(t->text);
    kp_strbuf_free(&t->lits);
    free(t->nodes);
    free(t->exprs);
    free(t);
}
