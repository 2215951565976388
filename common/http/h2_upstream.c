/* h2c connections and the pool; see h2_upstream.h (a stream's own work is
 * in h2_upstream_stream.c).
 *
 * nghttp2 does the framing, HPACK and flow control; this file moves bytes
 * between it and libuv and decides which connection a stream goes on.
 * nghttp2 must not be re-entered (mem_send) from its own callbacks, so
 * work asked for inside them is flagged and done once mem_recv or
 * mem_send returns (conn->depth counts how deep we are). */
#include <stdlib.h>
#include <string.h>

#include "h2_upstream_internal.h"
#include "stream_write.h"

void h2c_pool_maybe_free(kp_h2c_pool_t *p)
{
    if (p->released && p->n_alloc == 0 && p->n_live == 0)
        free(p);
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
    h2c_pool_maybe_free(p);
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
            h2c_stream_detach(s);
            continue;
        }
        h2c_stream_fail(s, refused ? KP_H2C_REFUSED : err);
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
    c->pending_closes = 3;
    uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
    uv_close((uv_handle_t *)&c->timer, conn_on_closed);
    uv_close((uv_handle_t *)&c->flush, conn_on_closed);
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
         * hears it now (a caller may try elsewhere), as a failed dial fails
         * the requests waiting on it in Go's transport; retrying here could
         * spin on an upstream that refuses. */
        while (p->wait_head) {
            kp_h2c_stream_t *s = p->wait_head;
            h2c_wait_unlink(p, s);
            s->finished = 1;
            STREAM_CALL(s, on_connected, err);
            s->released = 1;
            h2c_stream_maybe_free(s);
        }
    }
    h2c_pool_dispatch(p);
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
void h2c_conn_idle_check(h2_conn_t *c)
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

static void conn_pump_now(h2_conn_t *c);

static void on_write_done(void *ctx, int status)
{
    h2_conn_t *c = ctx;
    if (c->state == C_CLOSING)
        return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    conn_pump_now(c);
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
        h2c_stream_alive(s);
        if (c->state == C_CLOSING)
            return;
    }
}

static void on_flush(uv_timer_t *t)
{
    conn_pump_now(t->data);
}

void h2c_conn_pump(h2_conn_t *c)
{
    if (c->depth > 0) {
        c->want_pump = 1;
        return;
    }
    if (c->state != C_CLOSING && !uv_is_active((uv_handle_t *)&c->flush))
        uv_timer_start(&c->flush, on_flush, 0, 0);
}

/* Sends what nghttp2 has, as far as the socket keeps up. */
static void conn_pump_now(h2_conn_t *c)
{
    if (c->depth > 0) {
        c->want_pump = 1;
        return;
    }
    uv_timer_stop(&c->flush);
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
        h2c_stream_alive(s);
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
    conn_pump_now(c);
    h2c_pool_dispatch(p);
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
    conn_pump_now(c); /* the preface and our SETTINGS */
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
    int rv = nghttp2_session_client_new2(&c->session, h2c_callbacks(), c, opt);
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
    uv_timer_init(p->loop, &c->flush);
    c->tcp.data = c->timer.data = c->flush.data = c->connect_req.data = c;
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
void h2c_pool_dispatch(kp_h2c_pool_t *p)
{
    while (p->wait_head) {
        h2_conn_t *c = conn_with_room(p);
        if (!c)
            break;
        kp_h2c_stream_t *s = p->wait_head;
        h2c_wait_unlink(p, s);
        bind_stream(c, s);
        STREAM_CALL(s, on_connected, 0);
        if (h2c_stream_alive(s) && !s->submitted) {
            /* Not submitted: nothing sent, nothing to tell. */
            h2c_stream_detach(s);
            s->released = 1;
            h2c_stream_maybe_free(s);
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
        h2c_stream_free(s);
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
    h2c_pool_dispatch(p);
    return 0;
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
        h2c_wait_unlink(p, s);
        s->finished = 1;
        STREAM_CALL(s, on_connected, UV_ECANCELED);
        s->released = 1;
        h2c_stream_maybe_free(s);
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
    h2c_pool_maybe_free(p);
}
