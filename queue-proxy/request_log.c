/* Request log templates; see request_log.h. A template compiles into a list
 * of text pieces and small expression trees over a fixed set of fields;
 * rendering walks them and writes straight into the caller's buffer. The
 * output follows Go's text/template byte for byte except where noted
 * (marked "deviation"). */
#include "request_log.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Static types: every expression's type is known at compile time, so that
 * a template that cannot render fails at start. */
enum rl_type { T_STR, T_INT, T_FLOAT, T_URLPATH, T_HEADERS, T_HVALS };

enum rl_field {
    F_METHOD,
    F_URI,
    F_URL,
    F_URL_PATH,
    F_URL_QUERY,
    F_HOST,
    F_CONTENT_LENGTH,
    F_USER_AGENT,
    F_REFERER,
    F_REMOTE_ADDR,
    F_PROTO,
    F_PROTO_MAJOR,
    F_PROTO_MINOR,
    F_HEADER,
    F_CODE,
    F_SIZE,
    F_LATENCY,
    F_REV_NAME,
    F_REV_NAMESPACE,
    F_REV_SERVICE,
    F_REV_CONFIGURATION,
    F_REV_POD_NAME,
    F_REV_POD_IP,
    F_TRACE_ID,
    F_HEADER_GET, /* the method .Request.Header.Get "Name" */
};

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

enum rl_op { OP_FIELD, OP_STR, OP_INT, OP_JS, OP_INDEX, OP_HGET };

typedef struct rl_expr {
    uint8_t op;
    uint8_t type;
    uint8_t nargs;
    uint8_t field;
    uint32_t lit_off, lit_len; /* OP_STR: into t->lits */
    long long ival;            /* OP_INT */
    int32_t args[3];
} rl_expr_t;

typedef struct rl_node {
    uint32_t text_off, text_len; /* literal text before the action, into t->text */
    int32_t expr;                /* -1: text only */
} rl_node_t;

struct kp_reqlog {
    char *text; /* the template, newline-terminated as Knative makes it */
    kp_strbuf_t lits;
    rl_node_t *nodes;
    size_t n_nodes, cap_nodes;
    rl_expr_t *exprs;
    size_t n_exprs, cap_exprs;
};

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

static int rl_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
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
        if (e->host)
            rl_set_cstr(v, e->host);
        else
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
static size_t rl_fmt_float(double f, char *buf, size_t buflen)
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
