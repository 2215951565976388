/* The compiled form of a request-log template, shared by its compiler
 * (request_log_compile.c) and its renderer (request_log_render.c). */
#ifndef KP_REQUEST_LOG_TYPES_H
#define KP_REQUEST_LOG_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "request_log.h"
#include "base/strbuf.h"

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

static inline int rl_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* request_log_render.c: f as Go's strconv.FormatFloat(f, 'g', -1, 64)
 * writes it (the shortest text that reads back as f); returns the length. */
size_t rl_fmt_float(double f, char *buf, size_t buflen);

#endif
