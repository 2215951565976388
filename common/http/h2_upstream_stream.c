/* An h2c stream's request and response (see h2_upstream.h): nghttp2's
 * callbacks for the responses, the request body's data provider, and the
 * caller's calls on a stream.
 *
 * Flow control is the backpressure: the window we grant for a stream is
 * given back (nghttp2_session_consume) only as its body is handed to the
 * caller, so a caller that pauses stalls that stream and no other; the
 * connection window is large enough for every stream's window at once. */
#include <stdlib.h>
#include <string.h>

#include "h2_upstream_internal.h"

/* ------------------------------------------------------------------ */
/* Streams: lists, freeing */

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

void h2c_wait_unlink(kp_h2c_pool_t *p, kp_h2c_stream_t *s)
{
    if (p->wait_tail == s)
        p->wait_tail = s->prev;
    list_unlink(&p->wait_head, s);
    p->n_waiting--;
    s->waiting = 0;
}

void h2c_stream_free(kp_h2c_stream_t *s)
{
    kp_h2c_pool_t *p = s->pool;
    kp_http_head_free(&s->head);
    kp_strbuf_free(&s->out);
    kp_strbuf_free(&s->in);
    free(s->trailers);
    free(s->trailer_text);
    free(s);
    p->n_live--;
    h2c_pool_maybe_free(p);
}

/* Detaches s from its connection (or the wait list); nghttp2 forgets it. */
void h2c_stream_detach(kp_h2c_stream_t *s)
{
    h2_conn_t *c = s->conn;
    if (s->waiting)
        h2c_wait_unlink(s->pool, s);
    if (!c)
        return;
    if (s->id > 0 && c->session)
        nghttp2_session_set_stream_user_data(c->session, s->id, NULL);
    list_unlink(&c->streams, s);
    c->n_streams--;
    s->conn = NULL;
    h2c_conn_idle_check(c);
}

void h2c_stream_maybe_free(kp_h2c_stream_t *s)
{
    if (s->released && s->busy == 0)
        h2c_stream_free(s);
}

int h2c_stream_alive(kp_h2c_stream_t *s)
{
    if (s->released) {
        h2c_stream_maybe_free(s);
        return 0;
    }
    return 1;
}

/* The stream's last callback: after it the pool lets the stream go. */
void h2c_stream_fail(kp_h2c_stream_t *s, int err)
{
    if (s->finished)
        return;
    s->finished = 1;
    int started = s->response_started;
    h2c_stream_detach(s);
    STREAM_CALL(s, on_error, err, started);
    s->released = 1;
    h2c_stream_maybe_free(s);
}

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
        if (!h2c_stream_alive(s))
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
            if (!h2c_stream_alive(s))
                return 0;
        }
        STREAM_CALL(s, on_response_end);
        return h2c_stream_alive(s);
    }
    if (s->close_error) {
        h2c_stream_fail(s, s->close_error);
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
    h2c_stream_alive(s);
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
                h2c_conn_idle_check(c);
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
    h2c_stream_maybe_free(s);
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
    if (!h2c_stream_alive(s)) {
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
    h2c_stream_fail(s, err);
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

nghttp2_session_callbacks *h2c_callbacks(void)
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
        h2c_stream_detach(s);
        s->released = 1;
        h2c_stream_maybe_free(s);
        return err;
    }
    s->id = id;
    s->submitted = 1;
    if (!has_body)
        s->send_eof = 1;
    h2c_conn_pump(c);
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
    h2c_conn_pump(c);
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
            h2c_conn_pump(c);
    }
    h2c_stream_maybe_free(s); /* when the caller let go inside */
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
        int both_closed = nghttp2_session_find_stream(c->session, s->id) &&
                          nghttp2_session_get_stream_local_close(c->session, s->id) == 1 &&
                          s->remote_ended;
        if (cancel || (nghttp2_session_find_stream(c->session, s->id) && !both_closed))
            nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    }
    h2c_stream_detach(s);
    s->released = 1;
    if (c && c->state != C_CLOSING)
        h2c_conn_pump(c);
    /* Its room goes to a waiting stream; s still holds the pool. */
    kp_h2c_pool_t *p = s->pool;
    if ((!c || c->depth == 0) && !p->released)
        h2c_pool_dispatch(p);
    h2c_stream_maybe_free(s);
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
