/* h2c connections and their streams; see h2_upstream.h.
 *
 * nghttp2 does the framing, HPACK and flow control; this file moves bytes
 * between it and libuv and decides which connection a stream goes on.
 * nghttp2 must not be re-entered (mem_send) from its own callbacks, so
 * work asked for inside them is flagged and done once mem_recv or
 * mem_send returns (conn->depth counts how deep we are).
 *
 * Flow control is the backpressure: the window we grant for a stream is
 * given back (nghttp2_session_consume) only as its body is handed to the
 * caller, so a caller that pauses stalls that stream and no other; the
 * connection window is large enough for every stream's window at once. */
#include "h2_upstream.h"

#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "stream_write.h"

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

static nghttp2_session_callbacks *callbacks(void);
static void conn_pump(h2_conn_t *c);
static void conn_close(h2_conn_t *c);
static void pool_dispatch(kp_h2c_pool_t *p);
static void conn_idle_check(h2_conn_t *c);

/* Every pool's connections count in kp_upstream_open_connections(). */

/* ------------------------------------------------------------------ */
/* Streams: lists, callbacks with a guard, freeing */

static void list_unlink(kp_h2c_stream_t **head, kp_h2c_stream_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (*head == s)
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static void wait_unlink(kp_h2c_pool_t *p, kp_h2c_stream_t *s)
{
    if (p->wait_tail == s)
        p->wait_tail = s->prev;
    list_unlink(&p->wait_head, s);
    p->n_waiting--;
    s->waiting = 0;
}

static void pool_maybe_free(kp_h2c_pool_t *p)
{
    if (p->released && p->n_alloc == 0 && p->n_live == 0)
        free(p);
}

static void stream_free(kp_h2c_stream_t *s)
{
    kp_h2c_pool_t *p = s->pool;
    kp_http_head_free(&s->head);
    kp_strbuf_free(&s->out);
    kp_strbuf_free(&s->in);
    free(s->trailers);
    free(s->trailer_text);
    free(s);
    p->n_live--;
    pool_maybe_free(p);
}

/* Detaches s from its connection (or the wait list); nghttp2 forgets it. */
static void stream_detach(kp_h2c_stream_t *s)
{
    h2_conn_t *c = s->conn;
    if (s->waiting)
        wait_unlink(s->pool, s);
    if (!c)
        return;
    if (s->id > 0 && c->session)
        nghttp2_session_set_stream_user_data(c->session, s->id, NULL);
    list_unlink(&c->streams, s);
    c->n_streams--;
    s->conn = NULL;
    conn_idle_check(c);
}

static void stream_maybe_free(kp_h2c_stream_t *s)
{
    if (s->released && s->busy == 0)
        stream_free(s);
}

/* Callbacks run through these: the caller may let the stream go inside
 * one; it is freed once the outermost returns. Return 0 when s is gone. */
#define STREAM_CALL(s, cb, ...)                                                                    \
    do {                                                                                           \
        (s)->busy++;                                                                               \
        if ((s)->ops && (s)->ops->cb)                                                              \
            (s)->ops->cb((s)->ctx, ##__VA_ARGS__);                                                 \
        (s)->busy--;                                                                               \
    } while (0)

static int stream_alive(kp_h2c_stream_t *s)
{
    if (s->released) {
        stream_maybe_free(s);
        return 0;
    }
    return 1;
}

/* The stream's last callback: after it the pool lets the stream go. */
static void stream_fail(kp_h2c_stream_t *s, int err)
{
    if (s->finished)
        return;
    s->finished = 1;
    int started = s->response_started;
    stream_detach(s);
    STREAM_CALL(s, on_error, err, started);
    s->released = 1;
    stream_maybe_free(s);
}

/* ------------------------------------------------------------------ */
/* Response delivery */

/* Also after nghttp2 closed the stream: the connection window still
 * counts those bytes. */
static void stream_consume(kp_h2c_stream_t *s, size_t len)
{
    h2_conn_t *c = s->conn;
    if (c && c->session && s->id != 0 && len) {
        nghttp2_session_consume(c->session, s->id < 0 ? -s->id : s->id, len);
        c->want_pump = 1;
    }
}

/* Delivers what waited (body, trailers, end) as long as the caller takes
 * it. Returns 0 when s is gone. */
static int stream_deliver(kp_h2c_stream_t *s)
{
    while (!s->paused && !s->finished && s->in_off < s->in.len) {
        size_t len = s->in.len - s->in_off;
        if (len > 16 * 1024)
            len = 16 * 1024;
        const char *data = s->in.data + s->in_off;
        s->in_off += len;
        STREAM_CALL(s, on_body, data, len);
        if (!stream_alive(s))
            return 0;
        stream_consume(s, len);
    }
    if (s->in_off == s->in.len && s->in.len) {
        kp_strbuf_reset(&s->in);
        s->in_off = 0;
    }
    if (s->paused || s->finished || s->in.len)
        return 1;
    if (s->remote_ended) {
        s->finished = 1;
        if (s->have_trailers) {
            kp_http_head_finish(&s->head);
            STREAM_CALL(s, on_trailers, s->head.headers, s->head.n_headers);
            if (!stream_alive(s))
                return 0;
        }
        STREAM_CALL(s, on_response_end);
        return stream_alive(s);
    }
    if (s->close_error) {
        stream_fail(s, s->close_error);
        return 0;
    }
    return 1;
}

static int status_of(const uint8_t *v, size_t len)
{
    if (len != 3)
        return -1;
    int n = 0;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n >= 100 ? n : -1;
}

static int64_t length_of(const kp_http_header_t *h)
{
    if (!h || h->value_len == 0 || h->value_len > 18)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9')
            return -1;
        n = n * 10 + (h->value[i] - '0');
    }
    return n;
}

static kp_h2c_stream_t *stream_of(nghttp2_session *session, int32_t id)
{
    kp_h2c_stream_t *s = nghttp2_session_get_stream_user_data(session, id);
    return s && !s->released && !s->finished ? s : NULL;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    kp_h2c_stream_t *s = stream_of(session, frame->hd.stream_id);
    if (!s || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    s->status = 0;
    kp_http_head_reset(&s->head);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    kp_h2c_stream_t *s = stream_of(session, frame->hd.stream_id);
    if (!s || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (namelen > 0 && name[0] == ':') {
        if (namelen == 7 && memcmp(name, ":status", 7) == 0)
            s->status = status_of(value, valuelen);
        return 0;
    }
    kp_http_head_t *h = &s->head;
    if (kp_http_head_add_field(h, (const char *)name, namelen) != 0 ||
        kp_http_head_field_done(h) != 0 ||
        kp_http_head_add_value(h, (const char *)value, valuelen) != 0 ||
        kp_http_head_value_done(h) != 0) {
        /* Over our head limits: this stream is reset, the connection goes on. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

static void on_response_headers(kp_h2c_stream_t *s)
{
    if (s->status < 0) {
        nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_PROTOCOL_ERROR);
        s->conn->want_pump = 1;
        return;
    }
    if (s->status < 200) {
        kp_http_head_reset(&s->head); /* interim: not passed on */
        return;
    }
    s->got_final = 1;
    s->response_started = 1;
    kp_http_head_finish(&s->head);
    kp_upstream_response_t *r = &s->response;
    r->status = s->status;
    r->headers = s->head.headers;
    r->n_headers = s->head.n_headers;
    r->content_length = length_of(kp_http_header_find(r->headers, r->n_headers, "content-length"));
    r->chunked = 0;
    r->keep_alive = 1;
    STREAM_CALL(s, on_response_head, r);
    stream_alive(s);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    h2_conn_t *c = user_data;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            uint32_t max = nghttp2_session_get_remote_settings(
                session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
            c->max_streams = max < H2_MAX_STREAMS_PER_CONN ? max : H2_MAX_STREAMS_PER_CONN;
            c->pool->assumed_max = c->max_streams ? c->max_streams : 1;
            if (c->state == C_AWAIT_SETTINGS) {
                c->state = C_READY;
                uv_timer_stop(&c->timer);
                conn_idle_check(c);
            }
        }
        return 0;
    case NGHTTP2_GOAWAY:
        /* Streams above last_stream_id were not processed: nghttp2 closes
         * them (REFUSED_STREAM), and they may go again elsewhere. */
        c->goaway_last_id = frame->goaway.last_stream_id;
        if (c->state != C_CLOSING)
            c->state = C_DRAINING;
        return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        break;
    default:
        return 0;
    }
    kp_h2c_stream_t *s = stream_of(session, frame->hd.stream_id);
    if (!s)
        return 0;
    s->touched = 1;
    s->busy++; /* the caller may let it go in any callback below */
    if (frame->hd.type == NGHTTP2_HEADERS) {
        if (!s->got_final)
            on_response_headers(s);
        else
            s->have_trailers = 1;
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->released && !s->finished) {
        if (!s->got_final) {
            /* Ended without a final head (nghttp2's HTTP checks should not
             * let this through). */
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
            c->want_pump = 1;
        } else {
            s->remote_ended = 1;
            stream_deliver(s);
        }
    }
    s->busy--;
    stream_maybe_free(s);
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t id,
                              const uint8_t *data, size_t len, void *user_data)
{
    h2_conn_t *c = user_data;
    kp_h2c_stream_t *s = stream_of(session, id);
    if (!s) {
        /* Nobody wants it; the window is given back at once. */
        nghttp2_session_consume(session, id, len);
        c->want_pump = 1;
        return 0;
    }
    s->touched = 1;
    if (s->paused || s->in.len) {
        kp_strbuf_append(&s->in, (const char *)data, len);
        return 0;
    }
    STREAM_CALL(s, on_body, (const char *)data, len);
    if (!stream_alive(s)) {
        nghttp2_session_consume(session, id, len);
        c->want_pump = 1;
        return 0;
    }
    stream_consume(s, len);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code,
                           void *user_data)
{
    h2_conn_t *c = user_data;
    kp_h2c_stream_t *s = stream_of(session, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    s->id = -s->id; /* closed: nothing more goes to nghttp2 for it */
    if (s->remote_ended && (error_code == NGHTTP2_NO_ERROR || s->got_final))
        return 0; /* the response is whole; what waits is delivered later */
    int refused = !s->response_started &&
                  (error_code == NGHTTP2_REFUSED_STREAM || -s->id > c->goaway_last_id);
    int err = refused ? KP_H2C_REFUSED : UV_ECONNRESET;
    if (s->in.len) {
        s->close_error = err; /* after what waits */
        return 0;
    }
    stream_fail(s, err);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if (frame->hd.type == NGHTTP2_HEADERS) {
        kp_h2c_stream_t *s = stream_of(session, frame->hd.stream_id);
        if (s)
            s->headers_sent = 1;
    }
    return 0;
}

/* Request body: what was written so far, EOF when ended. */
static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    kp_h2c_stream_t *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s || s->released)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t avail = s->out.len - s->out_off;
    if (avail == 0 && !s->send_eof) {
        s->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    if (n)
        memcpy(buf, s->out.data + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out.len) {
        kp_strbuf_reset(&s->out);
        s->out_off = 0;
    }
    if (s->above_low && s->out.len - s->out_off < KP_H2C_LOW_WATER) {
        s->above_low = 0;
        s->notify_writable = 1;
    }
    if (s->send_eof && s->out.len == s->out_off) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->n_trailers) {
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(session, id, s->trailers, s->n_trailers);
        }
    }
    return (ssize_t)n;
}

static nghttp2_session_callbacks *callbacks(void)
{
    /* Built once per thread and never freed: the same for every session. */
    static __thread nghttp2_session_callbacks *cbs;
    if (!cbs) {
        if (nghttp2_session_callbacks_new(&cbs) != 0)
            abort();
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    }
    return cbs;
}

/* ------------------------------------------------------------------ */
/* Connections */

static void conn_on_closed(uv_handle_t *h)
{
    h2_conn_t *c = h->data;
    if (--c->pending_closes > 0)
        return;
    kp_h2c_pool_t *p = c->pool;
    if (c->session)
        nghttp2_session_del(c->session);
    free(c->rbuf);
    kp_strbuf_free(&c->out);
    free(c);
    kp_upstream_connections_add(-1);
    p->n_alloc--;
    pool_maybe_free(p);
}

static int conn_has_room(const h2_conn_t *c)
{
    return c->state == C_READY && c->n_streams < c->max_streams;
}

/* Every stream of a connection that is going: the ones nghttp2 never sent
 * (or that are above a GOAWAY) may be sent again. */
static void conn_fail_streams(h2_conn_t *c, int err)
{
    while (c->streams) {
        kp_h2c_stream_t *s = c->streams;
        int32_t id = s->id < 0 ? -s->id : s->id;
        int refused = !s->response_started && (!s->headers_sent || id > c->goaway_last_id);
        if (s->remote_ended && s->got_final) {
            /* Whole response already in hand, waiting for the caller. */
            stream_detach(s);
            continue;
        }
        stream_fail(s, refused ? KP_H2C_REFUSED : err);
    }
}

static void conn_close(h2_conn_t *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    kp_h2c_pool_t *p = c->pool;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    p->n_conns--;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
    uv_close((uv_handle_t *)&c->timer, conn_on_closed);
}

/* A connection that cannot go on: its streams fail, waiting ones may find
 * another connection. */
static void conn_fail(h2_conn_t *c, int err)
{
    if (c->state == C_CLOSING)
        return;
    int was_connecting = c->state == C_CONNECTING || c->state == C_AWAIT_SETTINGS;
    conn_close(c);
    conn_fail_streams(c, err);
    kp_h2c_pool_t *p = c->pool;
    if (was_connecting) {
        /* The upstream cannot be reached: whoever waits for a connection
         * hears it now rather than after another try. */
        int others = 0;
        for (h2_conn_t *o = p->conns; o; o = o->next)
            others |= o->state == C_READY;
        while (!others && p->wait_head) {
            kp_h2c_stream_t *s = p->wait_head;
            wait_unlink(p, s);
            s->finished = 1;
            STREAM_CALL(s, on_connected, err);
            s->released = 1;
            stream_maybe_free(s);
        }
    }
    pool_dispatch(p);
}

static void on_timer(uv_timer_t *t)
{
    h2_conn_t *c = t->data;
    if (c->state == C_AWAIT_SETTINGS || c->state == C_CONNECTING)
        conn_fail(c, UV_ETIMEDOUT);
    else if (c->n_streams == 0)
        conn_close(c);
}

/* Idle connections close after a while; a draining or released one with
 * nothing left closes now. */
static void conn_idle_check(h2_conn_t *c)
{
    if (c->state == C_CLOSING || c->state == C_CONNECTING || c->state == C_AWAIT_SETTINGS)
        return;
    if (c->n_streams > 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    if (c->state == C_DRAINING || c->pool->released) {
        if (c->depth == 0)
            conn_close(c);
        else
            c->want_pump = 1; /* closed once nghttp2 returns */
        return;
    }
    uv_timer_start(&c->timer, on_timer, c->pool->idle_ms, 0);
}

static void on_write_done(void *ctx, int status)
{
    h2_conn_t *c = ctx;
    if (c->state == C_CLOSING)
        return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    conn_pump(c);
}

static void notify_writable(h2_conn_t *c)
{
    for (;;) {
        kp_h2c_stream_t *s = c->streams;
        while (s && !s->notify_writable)
            s = s->next;
        if (!s)
            return;
        s->notify_writable = 0;
        STREAM_CALL(s, on_writable);
        stream_alive(s);
        if (c->state == C_CLOSING)
            return;
    }
}

/* Sends what nghttp2 has, as far as the socket keeps up. */
static void conn_pump(h2_conn_t *c)
{
    if (c->depth > 0) {
        c->want_pump = 1;
        return;
    }
    while (c->state != C_CLOSING && c->state != C_CONNECTING) {
        c->want_pump = 0;
        if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > H2_OUT_HIGH_WATER)
            break; /* on_write_done pumps again */
        kp_strbuf_reset(&c->out);
        c->depth++;
        while (c->out.len < H2_SEND_BATCH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->session, &data);
            if (n < 0) {
                c->depth--;
                conn_fail(c, UV_EPROTO);
                return;
            }
            if (n == 0)
                break;
            kp_strbuf_append(&c->out, (const char *)data, (size_t)n);
        }
        c->depth--;
        if (c->out.len) {
            uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
            int err = kp_stream_write((uv_stream_t *)&c->tcp, &b, 1, on_write_done, c,
                                      &c->pending_writes);
            if (err) {
                conn_fail(c, err);
                return;
            }
        }
        notify_writable(c);
        if (c->state == C_CLOSING)
            return;
        if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session) &&
            c->pending_writes == 0) {
            conn_fail(c, UV_ECONNRESET);
            return;
        }
        if (c->n_streams == 0 && (c->state == C_DRAINING || c->pool->released)) {
            conn_close(c);
            return;
        }
        if (!c->want_pump && c->out.len < H2_SEND_BATCH)
            break;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    h2_conn_t *c = h->data;
    *buf = uv_buf_init(c->rbuf, H2_READ_BUF);
}

static void on_read_done_all(h2_conn_t *c)
{
    for (;;) {
        kp_h2c_stream_t *s = c->streams;
        while (s && !s->touched)
            s = s->next;
        if (!s)
            return;
        s->touched = 0;
        if (!s->finished)
            STREAM_CALL(s, on_read_done);
        stream_alive(s);
        if (c->state == C_CLOSING)
            return;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    h2_conn_t *c = st->data;
    if (c->state == C_CLOSING || nread == 0)
        return;
    if (nread < 0) {
        conn_fail(c, nread == UV_EOF ? UV_ECONNRESET : (int)nread);
        return;
    }
    c->depth++;
    ssize_t rv = nghttp2_session_mem_recv(c->session, (const uint8_t *)buf->base, (size_t)nread);
    c->depth--;
    if (c->state == C_CLOSING)
        return;
    if (rv < 0) {
        conn_fail(c, UV_EPROTO);
        return;
    }
    on_read_done_all(c);
    if (c->state == C_CLOSING)
        return;
    kp_h2c_pool_t *p = c->pool;
    conn_pump(c);
    pool_dispatch(p);
}

static void on_connect(uv_connect_t *req, int status)
{
    h2_conn_t *c = req->data;
    if (c->state == C_CLOSING)
        return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = C_AWAIT_SETTINGS;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_fail(c, UV_EIO);
        return;
    }
    c->reading = 1;
    conn_pump(c); /* the preface and our SETTINGS */
}

static h2_conn_t *conn_open(kp_h2c_pool_t *p)
{
    h2_conn_t *c = calloc(1, sizeof *c);
    char *rbuf = malloc(H2_READ_BUF);
    nghttp2_option *opt = NULL;
    if (!c || !rbuf || nghttp2_option_new(&opt) != 0)
        goto fail;
    /* We give the window back ourselves, as the caller takes the body. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = nghttp2_session_client_new2(&c->session, callbacks(), c, opt);
    nghttp2_option_del(opt);
    opt = NULL;
    if (rv != 0)
        goto fail;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) !=
            0)
        goto fail;
    c->rbuf = rbuf;
    c->pool = p;
    c->goaway_last_id = INT32_MAX;
    c->max_streams = p->assumed_max;
    kp_strbuf_init(&c->out);
    uv_tcp_init(p->loop, &c->tcp);
    uv_timer_init(p->loop, &c->timer);
    c->tcp.data = c->timer.data = c->connect_req.data = c;
    kp_upstream_connections_add(1);
    p->n_alloc++;
    c->state = C_CONNECTING;
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->n_conns++;
    uv_timer_start(&c->timer, on_timer, H2_SETTINGS_TIMEOUT_MS, 0);
    int err = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&p->addr, on_connect);
    if (err) {
        conn_close(c);
        return NULL;
    }
    return c;
fail:
    if (opt)
        nghttp2_option_del(opt);
    if (c && c->session)
        nghttp2_session_del(c->session);
    free(rbuf);
    free(c);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The pool: which connection a stream goes on */

static void bind_stream(h2_conn_t *c, kp_h2c_stream_t *s)
{
    s->conn = c;
    s->next = c->streams;
    s->prev = NULL;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    uv_timer_stop(&c->timer);
}

static h2_conn_t *conn_with_room(kp_h2c_pool_t *p)
{
    for (h2_conn_t *c = p->conns; c; c = c->next)
        if (conn_has_room(c))
            return c;
    return NULL;
}

/* Waiting streams go on connections with room, in arrival order; more
 * connections open when those being set up will not take them all. */
static void pool_dispatch(kp_h2c_pool_t *p)
{
    while (p->wait_head) {
        h2_conn_t *c = conn_with_room(p);
        if (!c)
            break;
        kp_h2c_stream_t *s = p->wait_head;
        wait_unlink(p, s);
        bind_stream(c, s);
        STREAM_CALL(s, on_connected, 0);
        if (stream_alive(s) && !s->submitted) {
            /* Not submitted: nothing sent, nothing to tell. */
            stream_detach(s);
            s->released = 1;
            stream_maybe_free(s);
        }
    }
    if (!p->wait_head || p->released)
        return;
    size_t coming = 0;
    for (h2_conn_t *c = p->conns; c; c = c->next)
        if (c->state == C_CONNECTING || c->state == C_AWAIT_SETTINGS)
            coming += p->assumed_max;
    while (coming < p->n_waiting && (int)p->n_conns < p->max_conns) {
        if (!conn_open(p))
            break;
        coming += p->assumed_max;
    }
}

int kp_h2c_pool_get(kp_h2c_pool_t *p, const kp_h2c_ops_t *ops, void *ctx, kp_h2c_stream_t **out)
{
    kp_h2c_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return UV_ENOMEM;
    s->pool = p;
    p->n_live++;
    s->ops = ops;
    s->ctx = ctx;
    kp_http_head_init(&s->head);
    kp_strbuf_init(&s->out);
    kp_strbuf_init(&s->in);
    h2_conn_t *c = p->wait_head ? NULL : conn_with_room(p);
    if (c) {
        bind_stream(c, s);
        *out = s;
        return 1;
    }
    if (p->n_conns == 0 && !conn_open(p)) {
        stream_free(s);
        return UV_ENOMEM;
    }
    s->waiting = 1;
    s->prev = p->wait_tail;
    if (p->wait_tail)
        p->wait_tail->next = s;
    else
        p->wait_head = s;
    p->wait_tail = s;
    p->n_waiting++;
    /* Set before: a connection with room may take s (and call back) now. */
    *out = s;
    pool_dispatch(p);
    return 0;
}

/* ------------------------------------------------------------------ */
/* A stream's request */

int kp_h2c_stream_submit(kp_h2c_stream_t *s, const nghttp2_nv *nva, size_t nvlen, int has_body)
{
    h2_conn_t *c = s->conn;
    nghttp2_data_provider prd = {.read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->session, NULL, nva, nvlen, has_body ? &prd : NULL, s);
    if (id < 0) {
        int err = id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? KP_H2C_REFUSED : UV_ENOMEM;
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE && c->state == C_READY)
            c->state = C_DRAINING;
        s->finished = 1;
        stream_detach(s);
        s->released = 1;
        stream_maybe_free(s);
        return err;
    }
    s->id = id;
    s->submitted = 1;
    if (!has_body)
        s->send_eof = 1;
    conn_pump(c);
    return 0;
}

static void stream_resume_send(kp_h2c_stream_t *s)
{
    h2_conn_t *c = s->conn;
    if (!c || s->id <= 0)
        return;
    if (s->deferred) {
        s->deferred = 0;
        nghttp2_session_resume_data(c->session, s->id);
    }
    conn_pump(c);
}

void kp_h2c_stream_write(kp_h2c_stream_t *s, const char *data, size_t len)
{
    if (s->finished || s->send_eof || !len)
        return;
    kp_strbuf_append(&s->out, data, len);
    if (s->out.len - s->out_off >= KP_H2C_LOW_WATER)
        s->above_low = 1;
    stream_resume_send(s);
}

void kp_h2c_stream_end(kp_h2c_stream_t *s, const nghttp2_nv *trailers, size_t n)
{
    if (s->finished || s->send_eof)
        return;
    if (n) {
        size_t text = 0;
        for (size_t i = 0; i < n; i++)
            text += trailers[i].namelen + trailers[i].valuelen;
        s->trailers = calloc(n, sizeof *s->trailers);
        s->trailer_text = malloc(text ? text : 1);
        if (s->trailers && s->trailer_text) {
            char *t = s->trailer_text;
            for (size_t i = 0; i < n; i++) {
                s->trailers[i] = trailers[i];
                memcpy(t, trailers[i].name, trailers[i].namelen);
                s->trailers[i].name = (uint8_t *)t;
                t += trailers[i].namelen;
                memcpy(t, trailers[i].value, trailers[i].valuelen);
                s->trailers[i].value = (uint8_t *)t;
                t += trailers[i].valuelen;
            }
            s->n_trailers = n;
        }
    }
    s->send_eof = 1;
    stream_resume_send(s);
}

size_t kp_h2c_stream_write_queue(const kp_h2c_stream_t *s)
{
    return s->out.len - s->out_off;
}

void kp_h2c_stream_pause(kp_h2c_stream_t *s)
{
    s->paused = 1;
}

void kp_h2c_stream_resume(kp_h2c_stream_t *s)
{
    if (!s->paused)
        return;
    s->paused = 0;
    h2_conn_t *c = s->conn;
    if (c)
        c->depth++; /* the caller's callbacks below must not pump inside */
    s->busy++;
    stream_deliver(s);
    s->busy--;
    if (c) {
        c->depth--;
        if (c->state != C_CLOSING)
            conn_pump(c);
    }
    stream_maybe_free(s); /* when the caller let go inside */
}

static void stream_release(kp_h2c_stream_t *s, int cancel)
{
    if (s->released)
        return;
    h2_conn_t *c = s->conn;
    s->finished = 1;
    if (c && s->id > 0 && c->session) {
        /* Still open in nghttp2: the request is not all sent, or the
         * caller gives up on the response. */
        if (cancel || nghttp2_session_find_stream(c->session, s->id))
            nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    }
    stream_detach(s);
    s->released = 1;
    if (c && c->state != C_CLOSING)
        conn_pump(c);
    /* Its room goes to a waiting stream; s still holds the pool. */
    kp_h2c_pool_t *p = s->pool;
    if ((!c || c->depth == 0) && !p->released)
        pool_dispatch(p);
    stream_maybe_free(s);
}

void kp_h2c_stream_done(kp_h2c_stream_t *s)
{
    stream_release(s, 0);
}

void kp_h2c_stream_cancel(kp_h2c_stream_t *s)
{
    stream_release(s, 1);
}

int32_t kp_h2c_stream_id(const kp_h2c_stream_t *s)
{
    return s->id < 0 ? -s->id : s->id;
}

/* ------------------------------------------------------------------ */
/* Pool life */

kp_h2c_pool_t *kp_h2c_pool_new(uv_loop_t *loop, const struct sockaddr *addr, int max_conns)
{
    kp_h2c_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    memcpy(&p->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    p->max_conns = max_conns > 0 ? max_conns : 1;
    p->assumed_max = H2_MAX_STREAMS_PER_CONN;
    p->idle_ms = H2_DEFAULT_IDLE_MS;
    return p;
}

kp_h2c_pool_t *kp_h2c_pool_for(uv_loop_t *loop, const char *ip, int port, int max_conns)
{
    struct sockaddr_storage addr;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr) != 0)
        return NULL;
    return kp_h2c_pool_new(loop, (struct sockaddr *)&addr, max_conns);
}

void kp_h2c_pool_set_idle_timeout(kp_h2c_pool_t *p, uint64_t ms)
{
    p->idle_ms = ms;
}

size_t kp_h2c_pool_connections(const kp_h2c_pool_t *p)
{
    return p->n_conns;
}

void kp_h2c_pool_release(kp_h2c_pool_t *p)
{
    if (!p)
        return;
    p->released = 1;
    p->n_live++; /* held while its streams are let go below */
    /* Waiting streams are told the upstream went (a caller may try
     * another); streams under way finish on their connections. */
    while (p->wait_head) {
        kp_h2c_stream_t *s = p->wait_head;
        wait_unlink(p, s);
        s->finished = 1;
        STREAM_CALL(s, on_connected, UV_ECANCELED);
        s->released = 1;
        stream_maybe_free(s);
    }
    h2_conn_t *c = p->conns;
    while (c) {
        h2_conn_t *next = c->next;
        if (c->n_streams == 0 || c->state == C_CONNECTING || c->state == C_AWAIT_SETTINGS) {
            conn_close(c);
            conn_fail_streams(c, UV_ECANCELED);
        }
        c = next;
    }
    p->n_live--;
    pool_maybe_free(p);
}
