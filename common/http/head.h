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

typedef struct kp_http_head {
    char *buf; /* grows up to KP_HTTP_MAX_HEAD; offsets below point into it */
    uint32_t len, cap;
    uint32_t url_off, url_len;
    struct {
        uint32_t name_off, name_len, value_off, value_len;
    } spans[KP_HTTP_MAX_HEADERS];
    uint32_t n_headers;
    int in_value; /* the current header's name is complete */
    kp_head_error_t error;
    /* Valid after kp_http_head_finish, until the next reset. */
    const char *url;
    kp_http_header_t headers[KP_HTTP_MAX_HEADERS];
} kp_http_head_t;

void kp_http_head_init(kp_http_head_t *h);
void kp_http_head_free(kp_http_head_t *h);
void kp_http_head_reset(kp_http_head_t *h);
/* Each returns 0, or -1 with h->error set when a limit is passed. */
int kp_http_head_add_url(kp_http_head_t *h, const char *at, size_t len);
int kp_http_head_add_field(kp_http_head_t *h, const char *at, size_t len);
int kp_http_head_field_done(kp_http_head_t *h);
int kp_http_head_add_value(kp_http_head_t *h, const char *at, size_t len);
int kp_http_head_value_done(kp_http_head_t *h);
/* Resolves offsets into h->url and h->headers. */
void kp_http_head_finish(kp_http_head_t *h);

/* Case-insensitive lookup; NULL when absent. */
const kp_http_header_t *kp_http_header_find(const kp_http_header_t *hs, size_t n, const char *name);
int kp_http_name_eq(const char *a, size_t a_len, const char *b);
/* Whether a comma-separated header value holds token (case-insensitive). */
int kp_http_value_has_token(const char *value, size_t len, const char *token);
/* Standard reason phrase for a status code ("Unknown" when none). */
const char *kp_http_reason(int status);

/* RFC 9110 §5.6.2: a token character. */
int kp_http_is_tchar(unsigned char ch);
/* A request's HTTP version: 0, or the status to refuse it with (400 or
 * 505) and *reject_msg the body saying why. HTTP/1.x for any x is served. */
int kp_http_version_check(int major, int minor, const char **reject_msg);
/* A complete head against the rules llhttp leaves to us (version, CONNECT,
 * asterisk-form, field names and values, Host). 0, or the status to refuse
 * it with and *reject_msg the body saying why. method: llhttp_method_t. */
int kp_http_head_check(const kp_http_head_t *h, int major, int minor, int method,
                       const char **reject_msg);

#endif
