/* One HTTP/2 stream as the engine's handlers see a request: its head
 * becomes a kp_http_request_t, its body is handed over as the handler asks
 * (and acknowledged to the client only then), and the handler's
 * kp_http_conn_* calls become HEADERS, DATA, trailers and RST_STREAM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "h2.h"
#include "h2_fields.h"

/* Request body is handed over in pieces of at most this, so a handler
 * that pauses is heard before the next piece. */
#define DELIVER_PIECE (16 * 1024)

/* --- byte queues --- */

static int bytes_append(kp_h2_bytes_t *b, const char *data, size_t len)
{
    if (b->off + b->len + len > b->cap) {
        if (b->off) {
            memmove(b->data, b->data + b->off, b->len);
            b->off = 0;
        }
        if (b->len + len > b->cap) {
            /* Small first: most bodies are a few bytes, and a large
             * first block per stream costs the allocator more than the
             * doublings a big body takes. */
            size_t cap = b->cap ? b->cap : 512;
            while (cap < b->len + len)
                cap *= 2;
            char *d = realloc(b->data, cap);
            if (!d)
                return -1;
            b->data = d;
            b->cap = cap;
        }
    }
    if (len)
        memcpy(b->data + b->off + b->len, data, len);
    b->len += len;
    return 0;
}

static void bytes_take(kp_h2_bytes_t *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

static void bytes_free(kp_h2_bytes_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* --- life --- */

/* Whether the handler may still act on the stream. */
static int live(const kp_h2_stream_t *st)
{
    return st->sess->c && !st->closed && !st->reset;
}

kp_h2_stream_t *kp_h2_stream_new(kp_h2_session_t *s, int32_t id)
{
    kp_h2_stream_t *st = s->spare;
    if (st) {
        s->spare = st->next;
        s->n_spare--;
        st->next = NULL;
    } else {
        st = calloc(1, sizeof *st);
        if (!st)
            return NULL;
        kp_http_head_init(&st->conn.head);
    }
    st->sess = s;
    st->id = id;
    st->conn.h2s = st;
    st->conn.server = s->c->server;
    st->conn.state = CONN_IN_REQUEST;
    memcpy(st->conn.peer_ip, s->c->peer_ip, sizeof st->conn.peer_ip);
    st->conn.peer_port = s->c->peer_port;
    st->headers_since_ns = kp_now_ns();
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->n_streams++;
    return st;
}

void kp_h2_stream_free(kp_h2_stream_t *st)
{
    kp_http_head_free(&st->conn.head);
    bytes_free(&st->in);
    bytes_free(&st->out);
    free(st->authority);
    free(st->cookie);
    free(st->trailers);
    free(st);
}

/* Kept buffers must stay small: a spare holds them while idle. */
static void bytes_keep_small(kp_h2_bytes_t *b)
{
    if (b->cap > KP_H2_SPARE_BUF_MAX)
        bytes_free(b);
    b->off = b->len = 0;
}

void kp_h2_stream_retire(kp_h2_stream_t *st)
{
    kp_h2_session_t *s = st->sess;
    if (s->n_spare >= KP_H2_SPARE_STREAMS || st->conn.head.cap > KP_H2_SPARE_BUF_MAX) {
        kp_h2_stream_free(st);
        return;
    }
    free(st->authority);
    free(st->cookie);
    free(st->trailers);
    kp_http_head_t head = st->conn.head;
    kp_h2_bytes_t in = st->in, out = st->out;
    kp_http_head_reset(&head);
    bytes_keep_small(&in);
    bytes_keep_small(&out);
    memset(st, 0, sizeof *st);
    st->conn.head = head;
    st->in = in;
    st->out = out;
    st->next = s->spare;
    s->spare = st;
    s->n_spare++;
}

static void unlink_open(kp_h2_stream_t *st)
{
    kp_h2_session_t *s = st->sess;
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = NULL;
    st->next = s->dead;
    s->dead = st;
    if (--s->n_streams == 0)
        s->idle_since_ns = kp_now_ns();
}

static void notify_abort(kp_h2_stream_t *st)
{
    const kp_http_request_ops_t *ops = st->conn.ops;
    void *ctx = st->conn.ctx;
    st->conn.ops = NULL;
    st->conn.ctx = NULL;
    if (ops && ops->on_abort)
        ops->on_abort(ctx);
}

void kp_h2_stream_on_close(kp_h2_stream_t *st, uint32_t code)
{
    st->closed = 1;
    st->conn.state = CONN_CLOSING;
    unlink_open(st);
    /* A response sent whole ends the exchange; anything else (the
     * client's RST_STREAM, a stream refused by GOAWAY) cuts it. */
    if (code != NGHTTP2_NO_ERROR || !st->conn.response_done)
        notify_abort(st);
    else
        st->conn.ops = NULL;
    kp_h2_reap_soon(st->sess);
}

void kp_h2_stream_on_conn_gone(kp_h2_stream_t *st)
{
    st->closed = 1;
    st->conn.state = CONN_CLOSING;
    notify_abort(st);
}

/* --- the request head --- */

static int method_id_of(const char *name, size_t len)
{
    for (int m = 0; m <= HTTP_FLUSH; m++) {
        const char *n = llhttp_method_name((llhttp_method_t)m);
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return m;
    }
    return -1;
}

static void add_regular(kp_h2_stream_t *st, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    kp_http_head_t *h = &st->conn.head;
    if (st->header_error)
        return;
    if (kp_http_head_add_field(h, name, name_len) != 0 || kp_http_head_field_done(h) != 0 ||
        kp_http_head_add_value(h, value, value_len) != 0 || kp_http_head_value_done(h) != 0)
        st->header_error = 431;
}

void kp_h2_stream_add_field(kp_h2_stream_t *st, const char *name, size_t name_len,
                            const char *value, size_t value_len)
{
    if (st->header_error)
        return;
    kp_http_request_t *r = &st->conn.req;
    if (name_len && name[0] == ':') {
        if (kp_http_name_eq(name, name_len, ":method")) {
            r->method_id = method_id_of(value, value_len);
            st->has_method = 1;
        } else if (kp_http_name_eq(name, name_len, ":path")) {
            if (kp_http_head_add_url(&st->conn.head, value, value_len) != 0)
                st->header_error = 414;
        } else if (kp_http_name_eq(name, name_len, ":authority")) {
            free(st->authority);
            st->authority = strndup(value, value_len);
            if (!st->authority)
                st->header_error = 431;
        }
        return;
    }
    if (kp_http_name_eq(name, name_len, "cookie")) {
        /* RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1. */
        size_t need = st->cookie_len + (st->cookie_len ? 2 : 0) + value_len + 1;
        if (need > KP_HTTP_MAX_HEAD) {
            st->header_error = 431;
            return;
        }
        char *c = realloc(st->cookie, need);
        if (!c) {
            st->header_error = 431;
            return;
        }
        st->cookie = c;
        if (st->cookie_len) {
            memcpy(c + st->cookie_len, "; ", 2);
            st->cookie_len += 2;
        }
        memcpy(c + st->cookie_len, value, value_len);
        st->cookie_len += value_len;
        c[st->cookie_len] = '\0';
        return;
    }
    add_regular(st, name, name_len, value, value_len);
}

/* Sets conn.req from the head; 0, or the status to refuse it with. */
static int build_request(kp_h2_stream_t *st, int end_stream, const char **msg)
{
    kp_http_head_t *h = &st->conn.head;
    kp_http_request_t *r = &st->conn.req;
    r->conn = &st->conn;
    r->http_major = 2;
    r->http_minor = 0;
    r->content_length = -1;
    r->start_ns = kp_now_ns();
    r->peer_ip = st->conn.peer_ip;
    r->peer_port = st->conn.peer_port;
    if (st->cookie)
        add_regular(st, "cookie", 6, st->cookie, st->cookie_len);
    if (!st->has_method || r->method_id < 0) {
        r->method_id = HTTP_GET; /* for the answer's framing */
        r->method = "GET";
        kp_http_head_finish(h);
        *msg = "method not implemented\n";
        return 501;
    }
    r->method = llhttp_method_name((llhttp_method_t)r->method_id);
    if (st->header_error) {
        kp_http_head_finish(h);
        *msg = st->header_error == 414 ? "request URL too long\n"
                                       : "request header fields too large\n";
        return st->header_error;
    }
    kp_http_head_finish(h);
    /* No RFC 8441 extended CONNECT, and no tunnel over a stream. */
    if (r->method_id == HTTP_CONNECT) {
        *msg = "CONNECT is not supported over HTTP/2\n";
        return 501;
    }
    if (h->url_len == 0 || !(h->url[0] == '/' || (h->url_len == 1 && h->url[0] == '*'))) {
        *msg = "bad request: :path must be a path or *\n";
        return 400;
    }
    int status = kp_http_head_read_target(h, r->method_id, msg);
    if (status)
        return status;
    const kp_http_header_t *host = kp_http_header_find(h->headers, h->n_headers, "host");
    /* RFC 9113 §8.3.1: :authority names the target; a Host that says
     * otherwise makes the request malformed. */
    if (st->authority && host &&
        (strlen(st->authority) != host->value_len ||
         strncasecmp(st->authority, host->value, host->value_len) != 0)) {
        *msg = "bad request: Host differs from :authority\n";
        return 400;
    }
    if (st->authority) {
        r->host = st->authority;
        r->host_len = strlen(st->authority);
    } else if (host) {
        r->host = host->value;
        r->host_len = host->value_len;
    }
    if (r->host && !kp_http_host_valid(r->host, r->host_len)) {
        *msg = "bad request: invalid :authority\n";
        return 400;
    }
    r->url = h->origin;
    r->url_len = h->origin_len;
    r->target = h->url;
    r->target_len = h->url_len;
    r->headers = h->headers;
    r->n_headers = h->n_headers;
    const kp_http_header_t *cl = kp_http_header_find(h->headers, h->n_headers, "content-length");
    if (cl) { /* nghttp2 checked it is one valid number */
        int64_t v = 0;
        for (size_t i = 0; i < cl->value_len; i++)
            v = v * 10 + (cl->value[i] - '0');
        r->content_length = v;
    }
    r->has_body = !end_stream;
    r->chunked = r->has_body && r->content_length < 0;
    return 0;
}

static void refuse(kp_h2_stream_t *st, int status, const char *msg)
{
    kp_h2_stream_respond(st, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

void kp_h2_stream_dispatch(kp_h2_stream_t *st, int end_stream)
{
    st->headers_since_ns = 0;
    if (end_stream)
        st->in_eof = 1;
    const char *msg = NULL;
    int status = build_request(st, end_stream, &msg);
    st->dispatched = 1;
    if (status) {
        refuse(st, status, msg);
        return;
    }
    kp_http_server_t *srv = st->conn.server;
    srv->on_request(&st->conn.req, srv->ctx);
}

void kp_h2_stream_from_http1(kp_h2_stream_t *st, const kp_http_request_t *req)
{
    static const char *const skipped[] = {"connection", "upgrade",          "http2-settings",
                                          "keep-alive", "proxy-connection", "transfer-encoding",
                                          "te"};
    st->conn.req.method_id = req->method_id;
    st->has_method = 1;
    if (kp_http_head_add_url(&st->conn.head, req->target, req->target_len) != 0)
        st->header_error = 414;
    if (req->host && !st->header_error) {
        st->authority = strndup(req->host, req->host_len);
        if (!st->authority)
            st->header_error = 431;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const kp_http_header_t *f = &req->headers[i];
        int skip = kp_http_name_eq(f->name, f->name_len, "host");
        for (size_t k = 0; k < sizeof skipped / sizeof skipped[0]; k++)
            skip |= kp_http_name_eq(f->name, f->name_len, skipped[k]);
        if (!skip)
            add_regular(st, f->name, f->name_len, f->value, f->value_len);
    }
    kp_h2_stream_dispatch(st, 1);
}

/* --- the request body --- */

static void consume(kp_h2_stream_t *st, size_t n)
{
    if (n && st->sess->c)
        nghttp2_session_consume(st->sess->ng, st->id, n);
}

static int may_deliver(const kp_h2_stream_t *st)
{
    return live(st) && st->body_wanted && !st->body_paused && !st->conn.response_done;
}

/* Hands buffered body (then its end) to the handler while it wants it. */
static void deliver(kp_h2_stream_t *st)
{
    if (st->delivering)
        return;
    st->delivering = 1;
    while (st->in.len && may_deliver(st)) {
        size_t n = st->in.len < DELIVER_PIECE ? st->in.len : DELIVER_PIECE;
        const char *p = st->in.data + st->in.off;
        bytes_take(&st->in, n);
        if (st->conn.ops && st->conn.ops->on_body)
            st->conn.ops->on_body(st->conn.ctx, p, n);
        consume(st, n);
    }
    if (st->in.len == 0 && st->in_eof && may_deliver(st) && !st->conn.body_done) {
        st->conn.body_done = 1;
        if (st->conn.ops && st->conn.ops->on_body_end)
            st->conn.ops->on_body_end(st->conn.ctx);
    }
    st->delivering = 0;
    kp_h2_pump_soon(st->sess);
}

void kp_h2_stream_on_data(kp_h2_stream_t *st, const char *data, size_t len)
{
    if (!live(st) || st->conn.response_done) {
        consume(st, len); /* nobody will read it: keep the window open */
        return;
    }
    if (st->in.len == 0 && may_deliver(st) && !st->delivering) {
        st->delivering = 1;
        if (st->conn.ops && st->conn.ops->on_body)
            st->conn.ops->on_body(st->conn.ctx, data, len);
        st->delivering = 0;
        consume(st, len);
        return;
    }
    /* Bounded by the stream's window: the client cannot send more than
     * was acknowledged. */
    if (bytes_append(&st->in, data, len) != 0)
        kp_h2_stream_reset(st, NGHTTP2_INTERNAL_ERROR);
}

void kp_h2_stream_on_end(kp_h2_stream_t *st)
{
    st->in_eof = 1;
    if (may_deliver(st))
        deliver(st);
}

void kp_h2_stream_read_body(kp_h2_stream_t *st)
{
    if (!live(st))
        return;
    if (!st->body_wanted && !st->in_eof && !st->conn.continue_sent) {
        const kp_http_header_t *e =
            kp_http_header_find(st->conn.req.headers, st->conn.req.n_headers, "expect");
        st->conn.continue_sent = 1;
        if (e && kp_http_name_eq(e->value, e->value_len, "100-continue")) {
            nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
            nghttp2_submit_headers(st->sess->ng, NGHTTP2_FLAG_NONE, st->id, NULL, &nv, 1, NULL);
        }
    }
    st->body_wanted = 1;
    st->body_paused = 0;
    deliver(st);
}

void kp_h2_stream_pause_body(kp_h2_stream_t *st)
{
    /* Unacknowledged bytes stop the client once its window is used. */
    st->body_paused = 1;
}

/* --- the response --- */

static ssize_t read_out(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *data_flags, nghttp2_data_source *src, void *ud)
{
    (void)id;
    (void)ud;
    kp_h2_stream_t *st = src->ptr;
    size_t before = st->out.len;
    size_t n = before < length ? before : length;
    if (n) {
        memcpy(buf, st->out.data + st->out.off, n);
        bytes_take(&st->out, n);
    }
    if (st->out.len == 0 && st->out_eof) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailers) {
            kp_h2_fields_t f;
            kp_h2_fields_init(&f);
            if (kp_h2_fields_add_lines(&f, st->trailers, st->trailers_len) == 0 && f.n) {
                kp_h2_fields_finish(&f);
                if (nghttp2_submit_trailer(ng, st->id, f.nv, f.n) == 0)
                    *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            }
            kp_h2_fields_free(&f);
        }
        return (ssize_t)n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    if (before >= KP_HTTP_LOW_WATER && st->out.len < KP_HTTP_LOW_WATER)
        st->writable_due = 1;
    return (ssize_t)n;
}

static void add_status(kp_h2_fields_t *f, int status)
{
    char s[8];
    int n = snprintf(s, sizeof s, "%d", status);
    kp_h2_fields_add(f, ":status", 7, s, (size_t)n);
}

static void add_length(kp_h2_fields_t *f, uint64_t len)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%llu", (unsigned long long)len);
    kp_h2_fields_add(f, "content-length", 14, s, (size_t)n);
}

/* Submits the response head; with_data: DATA (and maybe trailers) follow
 * through the stream's data provider, else END_STREAM rides on HEADERS. */
static void submit(kp_h2_stream_t *st, kp_h2_fields_t *f, int with_data)
{
    nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = read_out};
    kp_h2_fields_finish(f);
    st->submitted = 1;
    st->has_data = with_data != 0;
    st->conn.response_started = 1;
    if (nghttp2_submit_response(st->sess->ng, st->id, f->nv, f->n, with_data ? &prd : NULL) != 0)
        kp_h2_stream_reset(st, NGHTTP2_INTERNAL_ERROR);
}

static int bodiless(const kp_h2_stream_t *st, int status)
{
    return st->conn.req.method_id == HTTP_HEAD || status == 204 || status == 304;
}

void kp_h2_stream_send_head(kp_h2_stream_t *st, int status, const char *extra, size_t extra_len,
                            int64_t content_length, const char *data, size_t len)
{
    if (!live(st) || st->conn.response_started)
        return;
    kp_h2_fields_t f;
    kp_h2_fields_init(&f);
    add_status(&f, status);
    kp_h2_fields_add_lines(&f, extra, extra_len);
    if (status < 200) {
        /* 1xx: informational HEADERS; 101 has no meaning in HTTP/2. */
        if (status != 101) {
            kp_h2_fields_finish(&f);
            nghttp2_submit_headers(st->sess->ng, NGHTTP2_FLAG_NONE, st->id, NULL, f.nv, f.n, NULL);
            kp_h2_pump_soon(st->sess);
        }
        kp_h2_fields_free(&f);
        return;
    }
    /* A known-empty body ends the stream on the head: a gRPC
     * Trailers-Only answer must stay one HEADERS frame with END_STREAM,
     * or clients read its grpc-status as initial metadata. */
    int no_body = bodiless(st, status) || content_length == -2 || content_length == 0;
    if (content_length >= 0 && status != 204 && status != 304)
        add_length(&f, (uint64_t)content_length);
    st->conn.response_no_body = no_body;
    if (no_body)
        st->conn.response_done = 1; /* END_STREAM rides on the head */
    submit(st, &f, !no_body);
    kp_h2_fields_free(&f);
    if (len)
        kp_h2_stream_send_body(st, data, len);
    else
        kp_h2_pump_soon(st->sess);
}

void kp_h2_stream_send_body(kp_h2_stream_t *st, const char *data, size_t len)
{
    if (!live(st) || !st->has_data || st->out_eof || len == 0)
        return;
    if (bytes_append(&st->out, data, len) != 0) {
        kp_h2_stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->conn.bytes_sent += len;
    nghttp2_session_resume_data(st->sess->ng, st->id);
    kp_h2_pump_soon(st->sess);
}

void kp_h2_stream_send_end(kp_h2_stream_t *st, const char *trailers, size_t trailers_len)
{
    if (!live(st) || !st->conn.response_started || st->out_eof)
        return;
    st->out_eof = 1;
    st->conn.response_done = 1;
    st->conn.ops = NULL;
    st->conn.ctx = NULL;
    if (!st->has_data)
        return;
    if (trailers_len) {
        st->trailers = malloc(trailers_len);
        if (st->trailers) {
            memcpy(st->trailers, trailers, trailers_len);
            st->trailers_len = trailers_len;
        }
    }
    nghttp2_session_resume_data(st->sess->ng, st->id);
    kp_h2_pump_soon(st->sess);
}

void kp_h2_stream_respond(kp_h2_stream_t *st, int status, const char *content_type,
                          const char *body, size_t body_len)
{
    if (!live(st) || st->conn.response_started)
        return;
    kp_h2_fields_t f;
    kp_h2_fields_init(&f);
    add_status(&f, status);
    kp_h2_fields_add(&f, "content-type", 12, content_type, strlen(content_type));
    if (status != 204 && status != 304)
        add_length(&f, body_len);
    int with_data = !bodiless(st, status) && body_len > 0;
    if (with_data && bytes_append(&st->out, body, body_len) != 0)
        with_data = 0;
    st->conn.response_done = 1;
    st->out_eof = 1;
    st->conn.ops = NULL;
    st->conn.ctx = NULL;
    if (with_data)
        st->conn.bytes_sent += body_len;
    submit(st, &f, with_data);
    kp_h2_fields_free(&f);
    kp_h2_pump_soon(st->sess);
}

void kp_h2_stream_reset(kp_h2_stream_t *st, uint32_t code)
{
    if (!live(st))
        return;
    st->reset = 1;
    st->conn.response_done = 1;
    st->conn.state = CONN_CLOSING;
    st->conn.ops = NULL;
    st->conn.ctx = NULL;
    nghttp2_submit_rst_stream(st->sess->ng, NGHTTP2_FLAG_NONE, st->id, code);
    kp_h2_pump_soon(st->sess);
}

void kp_h2_stream_cut(kp_h2_stream_t *st, uint32_t code)
{
    if (!live(st))
        return;
    const kp_http_request_ops_t *ops = st->conn.ops;
    void *ctx = st->conn.ctx;
    kp_h2_stream_reset(st, code);
    if (ops && ops->on_abort)
        ops->on_abort(ctx);
}

size_t kp_h2_stream_write_queue(const kp_h2_stream_t *st)
{
    return st->out.len;
}
