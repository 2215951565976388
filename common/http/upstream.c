/* Upstream connections and their keep-alive pool; see upstream.h.
 *
 * Idle connections keep reading so a connection the upstream closed leaves
 * the pool at once instead of failing the next request. */
#include "upstream.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#include "stream_write.h"

#define READ_BUF_SIZE (32 * 1024)

typedef enum { UP_CONNECTING, UP_IDLE, UP_ACTIVE, UP_TUNNEL, UP_CLOSING } up_state_t;

struct kp_upstream_pool {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    int max_idle;
    size_t n_idle;
    size_t n_active;
    int released;
    kp_upstream_t *idle; /* most recently used first */
};

struct kp_upstream {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    llhttp_t parser;
    kp_http_head_t head;
    kp_upstream_pool_t *pool;
    kp_upstream_t *next_idle, *prev_idle;
    up_state_t state;
    const kp_upstream_ops_t *ops;
    void *ctx;
    char *rbuf;
    size_t rlen, rpos;
    int pending_writes;
    unsigned reused : 1;
    unsigned reading : 1;
    unsigned paused : 1;
    unsigned head_request : 1;
    unsigned response_started : 1;
    unsigned response_done : 1;
    unsigned keep_alive : 1;
    unsigned upgraded : 1;
    kp_upstream_response_t response;
};

static void pool_maybe_free(kp_upstream_pool_t *p)
{
    if (p->released && p->n_active == 0 && p->n_idle == 0)
        free(p);
}

/* A connection owns a read buffer only while an exchange is under way:
 * kept-alive connections to many pods would otherwise hold 32 KiB each for
 * their life. A few given-back buffers wait per thread for the next
 * exchange, so a busy proxy does not malloc one per request. */
#define SPARE_BUFS 16
static __thread char *spare_bufs[SPARE_BUFS];
static __thread int n_spare_bufs;

static char *rbuf_take(void)
{
    return n_spare_bufs ? spare_bufs[--n_spare_bufs] : malloc(READ_BUF_SIZE);
}

static void rbuf_give(char *buf)
{
    if (buf && n_spare_bufs < SPARE_BUFS)
        spare_bufs[n_spare_bufs++] = buf;
    else
        free(buf);
}

/* Every pool's connections together: descriptors a caller may budget. */
static size_t open_connections;

size_t kp_upstream_open_connections(void)
{
    return __atomic_load_n(&open_connections, __ATOMIC_RELAXED);
}

void kp_upstream_connections_add(int delta)
{
    if (delta >= 0)
        __atomic_add_fetch(&open_connections, (size_t)delta, __ATOMIC_RELAXED);
    else
        __atomic_sub_fetch(&open_connections, (size_t)-delta, __ATOMIC_RELAXED);
}

static void on_closed(uv_handle_t *h)
{
    kp_upstream_t *u = h->data;
    kp_upstream_pool_t *p = u->pool;
    __atomic_sub_fetch(&open_connections, 1, __ATOMIC_RELAXED);
    p->n_active--;
    kp_http_head_free(&u->head);
    rbuf_give(u->rbuf);
    free(u);
    pool_maybe_free(p);
}

static void idle_remove(kp_upstream_t *u)
{
    kp_upstream_pool_t *p = u->pool;
    if (u->prev_idle)
        u->prev_idle->next_idle = u->next_idle;
    else
        p->idle = u->next_idle;
    if (u->next_idle)
        u->next_idle->prev_idle = u->prev_idle;
    u->next_idle = u->prev_idle = NULL;
    p->n_idle--;
    p->n_active++;
}

void kp_upstream_close(kp_upstream_t *u)
{
    if (u->state == UP_CLOSING)
        return;
    if (u->state == UP_IDLE)
        idle_remove(u);
    u->state = UP_CLOSING;
    u->ops = NULL;
    uv_close((uv_handle_t *)&u->tcp, on_closed);
}

static void fail(kp_upstream_t *u, int err)
{
    const kp_upstream_ops_t *ops = u->ops;
    void *ctx = u->ctx;
    int started = u->response_started;
    kp_upstream_close(u);
    if (ops && ops->on_error)
        ops->on_error(ctx, err, started);
}

/* --- response parsing --- */

static int on_message_begin(llhttp_t *p)
{
    kp_upstream_t *u = p->data;
    kp_http_head_reset(&u->head);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    kp_upstream_t *u = p->data;
    return kp_http_head_add_field(&u->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_field_complete(llhttp_t *p)
{
    kp_upstream_t *u = p->data;
    return kp_http_head_field_done(&u->head) == 0 ? 0 : HPE_USER;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    kp_upstream_t *u = p->data;
    return kp_http_head_add_value(&u->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_value_complete(llhttp_t *p)
{
    kp_upstream_t *u = p->data;
    return kp_http_head_value_done(&u->head) == 0 ? 0 : HPE_USER;
}

static int on_headers_complete(llhttp_t *p)
{
    kp_upstream_t *u = p->data;
    int status = llhttp_get_status_code(p);
    /* A status is three digits from 100 (RFC 9110 §15); llhttp 8 takes
     * any number up to 999. No client could read one below 100. */
    if (status < 100)
        return -1;
    /* Interim responses are not forwarded, and have no body whatever
     * their head says (RFC 9112 §6.3, rule 1): what follows is the next
     * response. llhttp 8 would read a Content-Length's worth of body. */
    if (status >= 100 && status < 200 && status != 101)
        return 1;
    kp_http_head_finish(&u->head);
    kp_upstream_response_t *r = &u->response;
    r->status = status;
    r->headers = u->head.headers;
    r->n_headers = u->head.n_headers;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    r->keep_alive = llhttp_should_keep_alive(p);
    u->keep_alive = r->keep_alive;
    u->response_started = 1;
    if (u->ops && u->ops->on_response_head)
        u->ops->on_response_head(u->ctx, r);
    if (u->state != UP_ACTIVE)
        return HPE_PAUSED;
    if (status == 101) {
        u->upgraded = 1;
        return 2;
    }
    /* RFC 9112 §6.3, rule 1: a 204 or 304 ends at its head, whatever its
     * Content-Length (a 304 may name the representation's size) or
     * Transfer-Encoding say; llhttp 8 would read a body for them. */
    return u->head_request || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    kp_upstream_t *u = p->data;
    if (u->ops && u->ops->on_body)
        u->ops->on_body(u->ctx, at, len);
    return u->state == UP_ACTIVE ? 0 : HPE_USER;
}

static int on_message_complete(llhttp_t *p)
{
    kp_upstream_t *u = p->data;
    if (!u->response_started || u->upgraded)
        return 0; /* an interim 1xx, or a 101 whose tunnel follows */
    u->response_done = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void response_finished(kp_upstream_t *u)
{
    const kp_upstream_ops_t *ops = u->ops;
    void *ctx = u->ctx;
    u->ops = NULL;
    if (ops && ops->on_response_end)
        ops->on_response_end(ctx);
}

static void start_tunnel(kp_upstream_t *u);

static void process(kp_upstream_t *u)
{
    while (u->state == UP_ACTIVE && !u->paused && u->rpos < u->rlen && !u->response_done) {
        const char *start = u->rbuf + u->rpos;
        llhttp_errno_t err = llhttp_execute(&u->parser, start, u->rlen - u->rpos);
        if (u->state == UP_CLOSING)
            return;
        if (err == HPE_OK) {
            u->rpos = u->rlen;
        } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            u->rpos += (size_t)(llhttp_get_error_pos(&u->parser) - start);
            if (err == HPE_PAUSED)
                llhttp_resume(&u->parser);
            if (u->upgraded) {
                start_tunnel(u);
                return;
            }
        } else {
            fail(u, UV_EPROTO);
            return;
        }
    }
    if (u->state == UP_ACTIVE && u->response_done)
        response_finished(u);
    else if (u->state == UP_ACTIVE && u->ops && u->ops->on_read_done)
        u->ops->on_read_done(u->ctx);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    kp_upstream_t *u = h->data;
    if (!u->rbuf) {
        /* Idle: whatever comes closes the connection (on_read). */
        static __thread char idle_buf[64];
        buf->base = idle_buf;
        buf->len = sizeof idle_buf;
        return;
    }
    if (u->rpos == u->rlen) {
        u->rpos = u->rlen = 0;
    } else if (u->rpos > 0) {
        memmove(u->rbuf, u->rbuf + u->rpos, u->rlen - u->rpos);
        u->rlen -= u->rpos;
        u->rpos = 0;
    }
    buf->base = u->rbuf + u->rlen;
    buf->len = READ_BUF_SIZE - u->rlen;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kp_upstream_t *u = s->data;
    if (u->state == UP_CLOSING || nread == 0)
        return;
    if (u->state == UP_IDLE) {
        kp_upstream_close(u); /* closed by the upstream, or it spoke out of turn */
        return;
    }
    if (u->state == UP_TUNNEL) {
        if (nread < 0) {
            uv_read_stop(s);
            u->reading = 0;
        }
        if (u->ops && u->ops->on_tunnel_data)
            u->ops->on_tunnel_data(u->ctx, nread < 0 ? NULL : buf->base, nread < 0 ? 0 : (size_t)nread);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && u->response_started && llhttp_message_needs_eof(&u->parser)) {
            /* A close-delimited body ends here (RFC 9112 §6.3, rule 8).
             * llhttp_finish passes on on_message_complete's HPE_PAUSED. */
            u->keep_alive = 0;
            llhttp_errno_t err = llhttp_finish(&u->parser);
            if ((err == HPE_OK || err == HPE_PAUSED) && u->response_done) {
                response_finished(u);
                return;
            }
        }
        fail(u, (int)nread);
        return;
    }
    u->rlen += (size_t)nread;
    process(u);
}

static void update_reading(kp_upstream_t *u)
{
    /* on_alloc compacts the buffer, so the room is what is not yet parsed. */
    int want = u->state != UP_CLOSING && u->state != UP_CONNECTING && !u->paused &&
               u->rlen - u->rpos < READ_BUF_SIZE;
    if (want && !u->reading) {
        if (uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read) == 0)
            u->reading = 1;
    } else if (!want && u->reading) {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = 0;
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    kp_upstream_t *u = req->data;
    if (u->state == UP_CLOSING)
        return;
    if (status < 0) {
        const kp_upstream_ops_t *ops = u->ops;
        void *ctx = u->ctx;
        kp_upstream_close(u);
        if (ops && ops->on_connected)
            ops->on_connected(ctx, status);
        return;
    }
    uv_tcp_nodelay(&u->tcp, 1);
    u->state = UP_ACTIVE;
    update_reading(u);
    if (u->ops && u->ops->on_connected)
        u->ops->on_connected(u->ctx, 0);
}

static void begin_exchange(kp_upstream_t *u, const kp_upstream_ops_t *ops, void *ctx)
{
    u->ops = ops;
    u->ctx = ctx;
    u->paused = 0;
    u->head_request = u->response_started = u->response_done = u->upgraded = 0;
    u->keep_alive = 0;
    llhttp_init(&u->parser, HTTP_RESPONSE, &parser_settings);
    u->parser.data = u;
}

int kp_upstream_get(kp_upstream_pool_t *p, const kp_upstream_ops_t *ops, void *ctx,
                    kp_upstream_t **out)
{
    kp_upstream_t *u = p->idle;
    if (u) {
        char *rbuf = rbuf_take();
        if (!rbuf)
            return UV_ENOMEM;
        idle_remove(u);
        u->rbuf = rbuf;
        u->state = UP_ACTIVE;
        u->reused = 1;
        begin_exchange(u, ops, ctx);
        *out = u;
        return 1;
    }
    u = calloc(1, sizeof *u);
    char *rbuf = rbuf_take();
    if (!u || !rbuf) {
        free(u);
        rbuf_give(rbuf);
        return UV_ENOMEM;
    }
    u->rbuf = rbuf;
    u->pool = p;
    kp_http_head_init(&u->head);
    uv_tcp_init(p->loop, &u->tcp);
    __atomic_add_fetch(&open_connections, 1, __ATOMIC_RELAXED);
    u->tcp.data = u;
    u->connect_req.data = u;
    u->state = UP_CONNECTING;
    p->n_active++;
    begin_exchange(u, ops, ctx);
    int err = uv_tcp_connect(&u->connect_req, &u->tcp, (struct sockaddr *)&p->addr, on_connect);
    if (err) {
        u->ops = NULL;
        kp_upstream_close(u);
        return err;
    }
    *out = u;
    return 0;
}

int kp_upstream_reused(const kp_upstream_t *u)
{
    return u->reused;
}

static void on_write_done(void *ctx, int status)
{
    kp_upstream_t *u = ctx;
    if (u->state == UP_CLOSING)
        return;
    if (status < 0) {
        fail(u, status);
        return;
    }
    if (u->ops && u->ops->on_writable &&
        uv_stream_get_write_queue_size((uv_stream_t *)&u->tcp) < 64 * 1024)
        u->ops->on_writable(u->ctx);
}

void kp_upstream_write(kp_upstream_t *u, const uv_buf_t *bufs, unsigned n)
{
    if (u->state != UP_ACTIVE && u->state != UP_TUNNEL)
        return;
    int err = kp_stream_write((uv_stream_t *)&u->tcp, bufs, n, on_write_done, u, &u->pending_writes);
    if (err)
        fail(u, err);
}

size_t kp_upstream_write_queue(const kp_upstream_t *u)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&u->tcp);
}

void kp_upstream_set_head_request(kp_upstream_t *u)
{
    u->head_request = 1;
}

void kp_upstream_pause(kp_upstream_t *u)
{
    u->paused = 1;
    update_reading(u);
}

void kp_upstream_resume(kp_upstream_t *u)
{
    if (!u->paused)
        return;
    u->paused = 0;
    if (u->state == UP_ACTIVE)
        process(u);
    update_reading(u);
}

void kp_upstream_done(kp_upstream_t *u)
{
    kp_upstream_pool_t *p = u->pool;
    if (u->state != UP_ACTIVE || !u->keep_alive || !u->response_done || u->upgraded ||
        u->rpos != u->rlen || p->released || (int)p->n_idle >= p->max_idle) {
        kp_upstream_close(u);
        return;
    }
    u->ops = NULL;
    u->ctx = NULL;
    u->paused = 0;
    u->state = UP_IDLE;
    u->rpos = u->rlen = 0;
    rbuf_give(u->rbuf);
    u->rbuf = NULL;
    kp_http_head_free(&u->head); /* the next response grows it again */
    u->next_idle = p->idle;
    u->prev_idle = NULL;
    if (p->idle)
        p->idle->prev_idle = u;
    p->idle = u;
    p->n_idle++;
    p->n_active--;
    update_reading(u);
}

static void start_tunnel(kp_upstream_t *u)
{
    u->state = UP_TUNNEL;
    size_t residue = u->rlen - u->rpos;
    if (residue && u->ops && u->ops->on_tunnel_data)
        u->ops->on_tunnel_data(u->ctx, u->rbuf + u->rpos, residue);
    u->rpos = u->rlen = 0;
    update_reading(u);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

void kp_upstream_shutdown_write(kp_upstream_t *u)
{
    if (u->state == UP_TUNNEL)
        uv_shutdown(&u->shutdown_req, (uv_stream_t *)&u->tcp, on_shutdown);
}

kp_upstream_pool_t *kp_upstream_pool_for(uv_loop_t *loop, const char *ip, int port, int max_idle)
{
    struct sockaddr_storage addr;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr) != 0)
        return NULL;
    return kp_upstream_pool_new(loop, (struct sockaddr *)&addr, max_idle);
}

kp_upstream_pool_t *kp_upstream_pool_new(uv_loop_t *loop, const struct sockaddr *addr, int max_idle)
{
    kp_upstream_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    memcpy(&p->addr, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in));
    p->max_idle = max_idle;
    return p;
}

void kp_upstream_pool_release(kp_upstream_pool_t *p)
{
    p->released = 1;
    while (p->idle)
        kp_upstream_close(p->idle);
    pool_maybe_free(p);
}

size_t kp_upstream_pool_idle(const kp_upstream_pool_t *p)
{
    return p->n_idle;
}
