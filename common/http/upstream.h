/* HTTP/1.1 client side: connections to one upstream address, kept alive in
 * a pool between requests. The caller writes the request bytes itself and
 * gets the parsed response head and the decoded body back. */
#ifndef KP_HTTP_UPSTREAM_H
#define KP_HTTP_UPSTREAM_H

#include <stdint.h>
#include <uv.h>

#include "head.h"

typedef struct kp_upstream_pool kp_upstream_pool_t;
typedef struct kp_upstream kp_upstream_t;

typedef struct kp_upstream_response {
    int status;
    const kp_http_header_t *headers;
    size_t n_headers;
    int64_t content_length; /* -1 when chunked or close-delimited */
    int chunked;
    int keep_alive;
} kp_upstream_response_t;

/* No callback runs after on_response_end, on_error, or kp_upstream_close. */
typedef struct kp_upstream_ops {
    void (*on_connected)(void *ctx, int status); /* 0 or a libuv error */
    void (*on_response_head)(void *ctx, const kp_upstream_response_t *r);
    void (*on_body)(void *ctx, const char *data, size_t len);
    void (*on_response_end)(void *ctx);
    /* The connection failed or ended before the response did. */
    void (*on_error)(void *ctx, int err, int response_started);
    void (*on_writable)(void *ctx);
    void (*on_tunnel_data)(void *ctx, const char *data, size_t len); /* NULL,0: EOF */
    /* The bytes at hand are parsed and the response is not over: a proxy
     * flushes what it held back to write it together (optional). */
    void (*on_read_done)(void *ctx);
} kp_upstream_ops_t;

kp_upstream_pool_t *kp_upstream_pool_new(uv_loop_t *loop, const struct sockaddr *addr,
                                         int max_idle);
/* The same for an IP literal (v4 or v6) and a port; NULL when ip is not
 * one, or out of memory. */
kp_upstream_pool_t *kp_upstream_pool_for(uv_loop_t *loop, const char *ip, int port, int max_idle);
/* The owner lets go: idle connections close; the pool is freed once the
 * last active connection is done. */
void kp_upstream_pool_release(kp_upstream_pool_t *p);
size_t kp_upstream_pool_idle(const kp_upstream_pool_t *p);
/* Connections of every pool, open or opening, idle ones included. */
size_t kp_upstream_open_connections(void);
/* Connections opened by other client code (the h2c pool, h2_upstream.h)
 * count in the same budget: +1 when one opens, -1 once it is closed. */
void kp_upstream_connections_add(int delta);

/* Returns 1 with *out ready now (a kept-alive connection), 0 with *out
 * connecting (on_connected follows), or a negative libuv error. */
int kp_upstream_get(kp_upstream_pool_t *p, const kp_upstream_ops_t *ops, void *ctx,
                    kp_upstream_t **out);
int kp_upstream_reused(const kp_upstream_t *u);
void kp_upstream_write(kp_upstream_t *u, const uv_buf_t *bufs, unsigned n);
size_t kp_upstream_write_queue(const kp_upstream_t *u);
/* The request was HEAD: its response has no body whatever it says. */
void kp_upstream_set_head_request(kp_upstream_t *u);
void kp_upstream_pause(kp_upstream_t *u);
void kp_upstream_resume(kp_upstream_t *u);
/* Response ended and the whole request was written: back to the pool if the
 * connection can be reused, else closed. */
void kp_upstream_done(kp_upstream_t *u);
/* Ends the connection now; no callback follows. */
void kp_upstream_close(kp_upstream_t *u);
/* After a 101 the connection turns into a tunnel by itself: bytes after the
 * head arrive through on_tunnel_data, kp_upstream_write sends raw bytes. */
void kp_upstream_shutdown_write(kp_upstream_t *u);

#endif
