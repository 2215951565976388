/* HTTP/2 client side over cleartext TCP (h2c, prior knowledge, RFC 9113
 * §3.3): connections to one upstream address, each carrying up to the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS requests at once, more connections
 * beyond that (up to a cap per pool). A request is a stream: its head goes
 * as an nghttp2 header list, its body through kp_h2c_stream_write with
 * backpressure from flow control, and its response comes back through the
 * same callbacks as the HTTP/1.1 pool's (upstream.h) plus trailers. */
#ifndef KP_HTTP_H2_UPSTREAM_H
#define KP_HTTP_H2_UPSTREAM_H

#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <uv.h>

#include "head.h"
#include "upstream.h"

typedef struct kp_h2c_pool kp_h2c_pool_t;
typedef struct kp_h2c_stream kp_h2c_stream_t;

/* on_error's err when the upstream did not process the stream (RST_STREAM
 * REFUSED_STREAM, or above a GOAWAY's last stream id, or never sent before
 * the connection went): safe to send again (RFC 9113 §8.7). */
#define KP_H2C_REFUSED (-100001)

/* No callback runs after on_response_end, on_error, kp_h2c_stream_done or
 * kp_h2c_stream_cancel. */
typedef struct kp_h2c_ops {
    /* A connection has room for the stream (0): submit it now, from
     * inside this callback; or a libuv error, nothing sent: the connect
     * failed (every stream waiting for a connection hears it), or
     * UV_ECANCELED when the pool was released. The stream is gone then. */
    void (*on_connected)(void *ctx, int status);
    /* The final head (1xx interim heads are not passed on); chunked 0,
     * keep_alive 1, content_length from content-length or -1. */
    void (*on_response_head)(void *ctx, const kp_upstream_response_t *r);
    void (*on_body)(void *ctx, const char *data, size_t len);
    /* Trailer fields (names lowercase), before on_response_end. */
    void (*on_trailers)(void *ctx, const kp_http_header_t *hs, size_t n);
    void (*on_response_end)(void *ctx);
    /* The stream was reset, or its connection failed, before the response
     * ended; err is KP_H2C_REFUSED or a libuv error. The stream is gone. */
    void (*on_error)(void *ctx, int err, int response_started);
    /* The request body queue fell below KP_H2C_LOW_WATER. */
    void (*on_writable)(void *ctx);
    /* The bytes at hand are processed and the response is not over (a
     * proxy flushes what it held back to write it together). Optional. */
    void (*on_read_done)(void *ctx);
} kp_h2c_ops_t;

#define KP_H2C_LOW_WATER (64 * 1024)

/* max_conns: connections open at once; streams beyond what they carry
 * wait for a free one, in arrival order. */
kp_h2c_pool_t *kp_h2c_pool_new(uv_loop_t *loop, const struct sockaddr *addr, int max_conns);
/* The same for an IP literal (v4 or v6) and a port; NULL when ip is not
 * one, or out of memory. */
kp_h2c_pool_t *kp_h2c_pool_for(uv_loop_t *loop, const char *ip, int port, int max_conns);
/* The owner lets go: streams still waiting for a connection get
 * on_connected(UV_ECANCELED); connections without streams close now, the
 * others when their last stream ends; the pool is freed then. NULL: no-op. */
void kp_h2c_pool_release(kp_h2c_pool_t *p);
/* Idle time after which a connection without streams closes (default
 * 90 s, as Go's transport). */
void kp_h2c_pool_set_idle_timeout(kp_h2c_pool_t *p, uint64_t ms);
/* Connections of this pool, open or opening. */
size_t kp_h2c_pool_connections(const kp_h2c_pool_t *p);

/* Returns 1 with *out bound to a connection (submit it now), 0 with *out
 * waiting (on_connected follows; it may run before this returns, *out is
 * set first), or a negative libuv error (no callback follows). */
int kp_h2c_pool_get(kp_h2c_pool_t *p, const kp_h2c_ops_t *ops, void *ctx, kp_h2c_stream_t **out);
/* Sends the request head (nva is copied). has_body 0: the stream ends with
 * the head; else the body follows through write and end. 0, or
 * KP_H2C_REFUSED (no stream id left on that connection: get another) or a
 * negative error; the stream is gone either way on failure. */
int kp_h2c_stream_submit(kp_h2c_stream_t *s, const nghttp2_nv *nva, size_t nvlen, int has_body);
/* Queues request body bytes (copied); they leave as the peer's flow
 * control window allows. */
void kp_h2c_stream_write(kp_h2c_stream_t *s, const char *data, size_t len);
/* Ends the request body, with trailer fields (copied; n may be 0). */
void kp_h2c_stream_end(kp_h2c_stream_t *s, const nghttp2_nv *trailers, size_t n);
/* Request body bytes queued and not yet sent. */
size_t kp_h2c_stream_write_queue(const kp_h2c_stream_t *s);
/* Response body: stop delivering (and stop granting the upstream window
 * for this stream only); resume delivers what waited. */
void kp_h2c_stream_pause(kp_h2c_stream_t *s);
void kp_h2c_stream_resume(kp_h2c_stream_t *s);
/* The caller is finished with a stream whose response ended; a request
 * still being sent is cut (RST_STREAM CANCEL). */
void kp_h2c_stream_done(kp_h2c_stream_t *s);
/* Ends the stream now with RST_STREAM(CANCEL); no callback follows. */
void kp_h2c_stream_cancel(kp_h2c_stream_t *s);
/* The stream's id on its connection (0 before submit). */
int32_t kp_h2c_stream_id(const kp_h2c_stream_t *s);

#endif
