/* Inside the h2c client (h2_upstream.c: connections and the pool;
 * h2_upstream_stream.c: a stream's request and response): the objects
 * both files work on, and the calls between them. Not for other files. */
#ifndef KP_HTTP_H2_UPSTREAM_INTERNAL_H
#define KP_HTTP_H2_UPSTREAM_INTERNAL_H

#include "base/strbuf.h"
#include "h2_upstream.h"

#define H2_READ_BUF (32 * 1024)
#define H2_STREAM_WINDOW (256 * 1024)
#define H2_MAX_STREAMS_PER_CONN 100 /* also nghttp2's limit until the peer's SETTINGS */
#define H2_CONN_WINDOW (H2_STREAM_WINDOW * H2_MAX_STREAMS_PER_CONN)
#define H2_SETTINGS_TIMEOUT_MS 10000
#define H2_DEFAULT_IDLE_MS 90000
#define H2_OUT_HIGH_WATER (256 * 1024)
#define H2_SEND_BATCH (64 * 1024)

typedef enum {
    C_CONNECTING,
    C_AWAIT_SETTINGS, /* connected; streams wait for the peer's limits */
    C_READY,
    C_DRAINING, /* GOAWAY seen, or ids used up: no new streams */
    C_CLOSING,
} conn_state_t;

typedef struct h2_conn h2_conn_t;

struct kp_h2c_pool {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    int max_conns;
    uint32_t assumed_max; /* streams a connection is expected to take: the last peer's limit */
    uint64_t idle_ms;
    int released;
    size_t n_conns;
    h2_conn_t *conns;
    kp_h2c_stream_t *wait_head, *wait_tail; /* streams with no connection yet */
    size_t n_waiting;
    size_t n_alloc; /* connections not yet freed (closing ones too) */
    size_t n_live;  /* streams not yet freed: they point at the pool */
};

struct h2_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* settings wait, then idle time */
    uv_timer_t flush; /* next loop turn: sends what streams queued meanwhile */
    uv_connect_t connect_req;
    kp_h2c_pool_t *pool;
    h2_conn_t *next, *prev;
    conn_state_t state;
    nghttp2_session *session;
    kp_h2c_stream_t *streams; /* bound to this connection */
    uint32_t n_streams, max_streams;
    int32_t goaway_last_id; /* INT32_MAX until a GOAWAY */
    int pending_writes;
    int pending_closes;
    int depth; /* inside nghttp2 (mem_recv / mem_send) */
    unsigned want_pump : 1;
    unsigned reading : 1;
    char *rbuf;
    kp_strbuf_t out; /* one pump's frames, written together */
};

struct kp_h2c_stream {
    kp_h2c_pool_t *pool;
    h2_conn_t *conn; /* NULL while waiting for one */
    kp_h2c_stream_t *next, *prev;
    const kp_h2c_ops_t *ops;
    void *ctx;
    int32_t id;
    int busy;            /* inside one of its callbacks: freeing waits */
    kp_http_head_t head; /* the response head, then its trailers */
    int status;
    kp_upstream_response_t response;
    kp_strbuf_t out; /* request body not yet taken by nghttp2 */
    size_t out_off;
    kp_strbuf_t in; /* response body waiting while paused */
    size_t in_off;
    nghttp2_nv *trailers; /* request trailers, pointing into trailer_text */
    size_t n_trailers;
    char *trailer_text;
    int close_error;      /* the stream closed with this error while body waited */
    unsigned waiting : 1; /* on the pool's wait list */
    unsigned submitted : 1;
    unsigned headers_sent : 1;
    unsigned send_eof : 1;
    unsigned deferred : 1;
    unsigned above_low : 1;
    unsigned notify_writable : 1;
    unsigned paused : 1;
    unsigned got_final : 1;
    unsigned response_started : 1;
    unsigned remote_ended : 1;
    unsigned have_trailers : 1;
    unsigned finished : 1; /* end or error delivered: no callback follows */
    unsigned released : 1; /* the caller let go */
    unsigned touched : 1;  /* got something in this read */
};

/* Callbacks run through these: the caller may let the stream go inside
 * one; it is freed once the outermost returns. Return 0 when s is gone. */
#define STREAM_CALL(s, cb, ...)                                                                    \
    do {                                                                                           \
        (s)->busy++;                                                                               \
        if ((s)->ops && (s)->ops->cb)                                                              \
            (s)->ops->cb((s)->ctx, ##__VA_ARGS__);                                                 \
        (s)->busy--;                                                                               \
    } while (0)

/* h2_upstream.c */
void h2c_pool_maybe_free(kp_h2c_pool_t *p);
/* Sends what nghttp2 has on the next loop turn (or once nghttp2 returns,
 * when called from inside it): the requests of many streams started in
 * one turn leave in one write. */
void h2c_conn_pump(h2_conn_t *c);
void h2c_conn_idle_check(h2_conn_t *c);
void h2c_pool_dispatch(kp_h2c_pool_t *p);

/* h2_upstream_stream.c */
nghttp2_session_callbacks *h2c_callbacks(void);
void h2c_wait_unlink(kp_h2c_pool_t *p, kp_h2c_stream_t *s);
void h2c_stream_free(kp_h2c_stream_t *s);
void h2c_stream_detach(kp_h2c_stream_t *s);
void h2c_stream_maybe_free(kp_h2c_stream_t *s);
/* After a callback: 0 when the caller let s go (freed unless held). */
int h2c_stream_alive(kp_h2c_stream_t *s);
/* The stream's last callback (on_error); the pool lets it go after. */
void h2c_stream_fail(kp_h2c_stream_t *s, int err);

#endif
