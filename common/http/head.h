/* Accumulates one HTTP message head (URL or status text, header fields)
 * from llhttp's split callbacks into one buffer, enforcing the size limits
 * that turn into 414 and 431, and finds headers by name. */
#ifndef KP_HTTP_HEAD_H
#define KP_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

#define KP_HTTP_MAX_URL 8192
#define KP_HTTP_MAX_HEAD (64 * 1024)
#define KP_HTTP_MAX_HEADERS 100

typedef struct kp_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} kp_http_header_t;

typedef enum {
    KP_HEAD_OK = 0,
    KP_HEAD_URL_TOO_LONG, /* 414 */
    KP_HEAD_TOO_LARGE,    /* 431: total bytes */
    KP_HEAD_TOO_MANY,     /* 431: header count */
} kp_head_error_t;

/* Where one field line lies in the head's buffer while it is parsed. */
typedef struct kp_http_field_span {
    uint32_t name_off, name_len, value_off, value_len;
} kp_http_field_span_t;

/* Storage grows with what arrives and is freed by kp_http_head_free, so
 * a connection between requests (or a request held with a short head)
 * carries a few hundred bytes, not room for the largest head allowed. */
typedef struct kp_http_head {
    char *buf; /* grows up to KP_HTTP_MAX_HEAD; offsets below point into it */
    uint32_t len, cap;
    uint32_t url_off, url_len;
    kp_http_field_span_t *spans; /* fields_cap entries, as headers */
    uint32_t n_headers, fields_cap;
    int in_value; /* the current header's name is complete */
    kp_head_error_t error;
    /* A request's target as RFC 9112 §3.2 reads it (kp_http_head_read_target);
     * before that, the origin is the whole target and there is no authority. */
    uint32_t origin_off, origin_len;       /* origin-form, or "*": what the origin serves */
    uint32_t authority_off, authority_len; /* absolute-form's authority, else empty */
    /* Valid after kp_http_head_finish, until the next reset. */
    const char *url;
    const char *origin;
    const char *authority; /* NULL unless the target was in absolute-form */
    kp_http_header_t *headers; /* n_headers entries */
} kp_http_head_t;

void kp_http_head_init(kp_http_head_t *h);
/* Frees the storage; the head is empty and usable again. */
void kp_http_head_free(kp_http_head_t *h);
void kp_http_head_reset(kp_http_head_t *h);
/* Each returns 0, or -1 with h->error set when a limit is passed. */
int kp_http_head_add_url(kp_http_head_t *h, const char *at, size_t len);
int kp_http_head_add_field(kp_http_head_t *h, const char *at, size_t len);
int kp_http_head_field_done(kp_http_head_t *h);
int kp_http_head_add_value(kp_http_head_t *h, const char *at, size_t len);
int kp_http_head_value_done(kp_http_head_t *h);
/* Makes the origin-form prefix followed by the len bytes at off in the
 * head, copied to its end; 0, or -1 with h->error set when it does not fit.
 * Finish again afterwards: the buffer may move. */
int kp_http_head_set_origin(kp_http_head_t *h, const char *prefix, uint32_t off, uint32_t len);
/* Resolves offsets into h->url, h->origin, h->authority and h->headers. */
void kp_http_head_finish(kp_http_head_t *h);

/* Case-insensitive lookup; NULL when absent. */
const kp_http_header_t *kp_http_header_find(const kp_http_header_t *hs, size_t n, const char *name);
int kp_http_name_eq(const char *a, size_t a_len, const char *b);
/* Whether a comma-separated header value holds token (case-insensitive). */
int kp_http_value_has_token(const char *value, size_t len, const char *token);
/* Whether any field line called name holds token ("connection", "close"). */
int kp_http_head_has_token(const kp_http_header_t *hs, size_t n, const char *name,
                           const char *token);
/* Standard reason phrase for a status code ("Unknown" when none). */
const char *kp_http_reason(int status);

/* RFC 9110 §5.6.2: a token character. */
int kp_http_is_tchar(unsigned char ch);
/* RFC 9112 §3.2: a valid Host value (uri-host [ ":" port ]; empty is valid). */
int kp_http_host_valid(const char *v, size_t len);
/* A request's HTTP version: 0, or the status to refuse it with (400 or
 * 505) and *reject_msg the body saying why. HTTP/1.x for any x is served. */
int kp_http_version_check(int major, int minor, const char **reject_msg);
/* A complete head against the rules llhttp leaves to us (version, CONNECT,
 * asterisk-form, field names and values, Host, transfer codings). 0, or the
 * status to refuse it with and *reject_msg the body saying why. method:
 * llhttp_method_t. A head it accepts with a Transfer-Encoding has a
 * chunked body: its codings end in chunked, and no other is allowed. */
int kp_http_head_check(const kp_http_head_t *h, int major, int minor, int method,
                       const char **reject_msg);
/* Reads the request-target of a checked head (RFC 9112 §3.2): an
 * absolute-form target gives its authority (which replaces Host, §3.2.2)
 * and the origin-form the origin server is asked for. 0, or 400 (or 431
 * when the rewritten target does not fit) and *reject_msg. Finishes the
 * head again: pointers into it move. */
int kp_http_head_read_target(kp_http_head_t *h, int method, const char **reject_msg);

#endif
