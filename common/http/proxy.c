/* One proxied exchange; see proxy.h.
 *
 * RFC 9110 §7.6.1: hop-by-hop headers (and any named in Connection) are not
 * forwarded; body framing is re-encoded on each side. */
#include "proxy.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/strbuf.h"
#include "h2_upstream_request.h"

/* Tries of a request that h2c upstreams refused unprocessed (GOAWAY,
 * REFUSED_STREAM), as Go's HTTP/2 transport retries them. */
#define H2_MAX_REFUSED 10

typedef enum {
    PX_CONNECTING,
    PX_EXCHANGING, /* request going up, response coming down */
    PX_TUNNEL,
    PX_FINISHED,
} px_state_t;

struct kp_proxy {
    uv_timer_t timer;
    px_state_t state;
    kp_http_conn_t *down; /* NULL once the client side is finished with */
    kp_http_request_t *req;
    kp_upstream_pool_t *pool;
    kp_upstream_t *up; /* NULL once released */
    kp_h2c_pool_t *h2_pool;
    kp_h2c_stream_t *h2; /* over h2c instead of up; NULL once released */
    kp_h2c_request_head_t h2_head;
    int h2_refused;      /* tries refused unprocessed */
    uint64_t body_bytes; /* request body bytes passed upstream */
    kp_proxy_opts_t opts;
    uint64_t start_ns;
    uint64_t last_write_ns;
    kp_proxy_done_cb done;
    void *ctx;
    kp_strbuf_t head; /* the request head for upstream, kept for a retry */
    kp_proxy_result_t result;
    unsigned request_sent : 1;   /* whole request written upstream */
    unsigned body_paused : 1;
    unsigned response_paused : 1;
    unsigned response_done : 1;
    unsigned retried : 1;
    unsigned up_reused : 1; /* the request went out on a kept-alive connection */
    unsigned body_started : 1;
    unsigned down_eof : 1;
    unsigned use_h2 : 1;
    unsigned up_eof : 1;
    /* The response head waits (in head) for its first body bytes, or for
     * the end of the upstream read that brought it, to go out in one
     * write with them. Never outlives that read. */
    unsigned head_pending : 1;
    int pending_status;
    int64_t pending_length;
};

static const kp_upstream_ops_t upstream_ops;
static const kp_h2c_ops_t h2_upstream_ops;
static const kp_http_request_ops_t downstream_ops;
static void arm_timer(kp_proxy_t *p);

static void on_timer_closed(uv_handle_t *h)
{
    kp_proxy_t *p = h->data;
    kp_strbuf_free(&p->head);
    kp_h2c_request_head_free(&p->h2_head);
    free(p);
}

/* Reports the outcome once both sides are let go. */
static void finish(kp_proxy_t *p, kp_proxy_outcome_t outcome)
{
    if (p->state == PX_FINISHED)
        return;
    int was_tunnel = p->state == PX_TUNNEL;
    p->state = PX_FINISHED;
    p->head_pending = 0;
    p->result.outcome = outcome;
    if (p->up) {
        if (outcome == KP_PROXY_OK && p->request_sent && p->response_done)
            kp_upstream_done(p->up);
        else
            kp_upstream_close(p->up);
        p->up = NULL;
    }
    if (p->h2) {
        if (outcome == KP_PROXY_OK && p->response_done)
            kp_h2c_stream_done(p->h2);
        else
            kp_h2c_stream_cancel(p->h2); /* RST_STREAM(CANCEL): the app hears of it */
        p->h2 = NULL;
    }
    if (p->down) {
        p->result.bytes_sent = kp_http_conn_bytes_sent(p->down);
        if (outcome == KP_PROXY_OK && was_tunnel)
            kp_http_conn_shutdown(p->down);
        else if (outcome == KP_PROXY_TIMEOUT)
            kp_http_conn_reset(p->down, KP_H2_CANCEL); /* HTTP/2: that stream alone */
        else if (outcome != KP_PROXY_CLIENT_GONE)
            kp_http_conn_abort(p->down);
        p->down = NULL;
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    p->done(p->ctx, &p->result);
}

static void close_upstream(kp_proxy_t *p)
{
    if (p->up) {
        kp_upstream_close(p->up);
        p->up = NULL;
    }
    if (p->h2) {
        kp_h2c_stream_cancel(p->h2);
        p->h2 = NULL;
    }
}

/* A failure before any response byte gets a status; after, a cut. */
static void fail(kp_proxy_t *p, kp_proxy_outcome_t outcome, int status, const char *body)
{
    if (p->state == PX_FINISHED)
        return;
    p->head_pending = 0; /* replaced by this status */
    if (p->down && !kp_http_conn_response_started(p->down)) {
        p->result.status = status;
        close_upstream(p);
        kp_http_conn_t *down = p->down;
        kp_http_conn_bind(down, NULL, NULL);
        kp_http_conn_respond(down, status, "text/plain; charset=utf-8", body, strlen(body));
        p->result.bytes_sent = kp_http_conn_bytes_sent(down);
        p->down = NULL;
        finish(p, outcome);
        return;
    }
    finish(p, outcome);
}

/* Nothing of the request left: hand it back if the caller wants to try
 * elsewhere, else 502. */
static void fail_unreachable(kp_proxy_t *p, const char *body)
{
    if (p->state == PX_FINISHED)
        return;
    if (!p->opts.hand_back_unreachable || p->body_started || !p->down ||
        kp_http_conn_response_started(p->down)) {
        fail(p, KP_PROXY_UPSTREAM_FAILED, 502, body);
        return;
    }
    close_upstream(p);
    kp_http_conn_bind(p->down, NULL, NULL);
    p->down = NULL; /* the caller's again, untouched */
    finish(p, KP_PROXY_UNREACHABLE);
}

/* --- building the upstream request head --- */

static int is_hop_by_hop(const kp_http_header_t *h, const kp_http_header_t *connection)
{
    static const char *const names[] = {"connection",         "keep-alive", "proxy-connection",
                                        "transfer-encoding",  "te",         "trailer",
                                        "upgrade",            "proxy-authenticate",
                                        "proxy-authorization", "expect",    "content-length"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (kp_http_name_eq(h->name, h->name_len, names[i]))
            return 1;
    if (connection) {
        char name[64];
        if (h->name_len < sizeof name) {
            memcpy(name, h->name, h->name_len);
            name[h->name_len] = '\0';
            if (kp_http_value_has_token(connection->value, connection->value_len, name))
                return 1;
        }
    }
    return 0;
}

static int is_dropped(const kp_http_header_t *h, const kp_proxy_edits_t *e)
{
    for (size_t i = 0; i < e->n_drop; i++)
        if (kp_http_name_eq(h->name, h->name_len, e->drop[i]))
            return 1;
    return 0;
}

static void add_header(kp_strbuf_t *b, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    kp_strbuf_append(b, name, name_len);
    kp_strbuf_append(b, ": ", 2);
    kp_strbuf_append(b, value, value_len);
    kp_strbuf_append(b, "\r\n", 2);
}

static void build_request_head(kp_proxy_t *p, const kp_proxy_edits_t *e)
{
    const kp_http_request_t *r = p->req;
    kp_strbuf_t *b = &p->head;
    const kp_http_header_t *connection = kp_http_header_find(r->headers, r->n_headers, "connection");
    const kp_http_header_t *upgrade = kp_http_header_find(r->headers, r->n_headers, "upgrade");
    const kp_http_header_t *xff = NULL;
    const kp_http_header_t *forwarded = NULL;
    /* Origin-form, also for an absolute-form target: the next hop is the
     * origin (or the queue-proxy in front of it), not a forward proxy. */
    kp_strbuf_puts(b, r->method);
    kp_strbuf_append(b, " ", 1);
    kp_strbuf_append(b, r->url, r->url_len);
    kp_strbuf_append(b, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < r->n_headers; i++) {
        const kp_http_header_t *h = &r->headers[i];
        if (is_hop_by_hop(h, connection) || is_dropped(h, e))
            continue;
        /* Host is written below, from the target (RFC 9112 §3.2.2: an
         * absolute-form target's authority replaces it). */
        if (kp_http_name_eq(h->name, h->name_len, "host"))
            continue;
        if (e->append_forwarded_for && kp_http_name_eq(h->name, h->name_len, "x-forwarded-for")) {
            xff = h;
            continue;
        }
        if (e->append_forwarded_for && kp_http_name_eq(h->name, h->name_len, "forwarded")) {
            forwarded = h;
            continue;
        }
        add_header(b, h->name, h->name_len, h->value, h->value_len);
    }
    if (e->host)
        add_header(b, "Host", 4, e->host, e->host_len);
    else if (r->host)
        add_header(b, "Host", 4, r->host, r->host_len);
    if (e->append_forwarded_for && r->peer_ip[0]) {
        kp_strbuf_puts(b, "X-Forwarded-For: ");
        if (xff && xff->value_len) {
            kp_strbuf_append(b, xff->value, xff->value_len);
            kp_strbuf_append(b, ", ", 2);
        }
        kp_strbuf_puts(b, r->peer_ip);
        kp_strbuf_append(b, "\r\n", 2);
    }
    if (forwarded) {
        /* RFC 7239: keep Forwarded in step with X-Forwarded-For; an IPv6
         * node is quoted and bracketed. */
        int v6 = strchr(r->peer_ip, ':') != NULL;
        kp_strbuf_puts(b, "Forwarded: ");
        kp_strbuf_append(b, forwarded->value, forwarded->value_len);
        kp_strbuf_printf(b, ", for=%s%s%s\r\n", v6 ? "\"[" : "", r->peer_ip, v6 ? "]\"" : "");
    }
    if (r->chunked)
        kp_strbuf_puts(b, "Transfer-Encoding: chunked\r\n");
    else if (r->content_length >= 0)
        kp_strbuf_printf(b, "Content-Length: %lld\r\n", (long long)r->content_length);
    if (r->upgrade && upgrade) {
        kp_strbuf_puts(b, "Connection: Upgrade\r\n");
        add_header(b, "Upgrade", 7, upgrade->value, upgrade->value_len);
    }
    if (e->add_len)
        kp_strbuf_append(b, e->add, e->add_len);
    kp_strbuf_append(b, "\r\n", 2);
}

/* --- request going up --- */

static void send_request_head(kp_proxy_t *p)
{
    p->state = PX_EXCHANGING;
    p->up_reused = kp_upstream_reused(p->up) != 0;
    if (p->req->method_id == HTTP_HEAD)
        kp_upstream_set_head_request(p->up);
    uv_buf_t b = uv_buf_init(p->head.data, (unsigned)p->head.len);
    kp_upstream_write(p->up, &b, 1);
    if (p->state != PX_EXCHANGING)
        return;
    if (!p->req->has_body) {
        p->request_sent = 1;
        return;
    }
    p->body_started = 1;
    kp_http_conn_read_body(p->down);
}

static void down_on_body(void *ctx, const char *data, size_t len)
{
    kp_proxy_t *p = ctx;
    if (p->use_h2) {
        if (!p->h2)
            return;
        kp_h2c_stream_write(p->h2, data, len);
        p->body_bytes += len;
        if (!p->body_paused && kp_h2c_stream_write_queue(p->h2) > KP_HTTP_HIGH_WATER) {
            p->body_paused = 1;
            kp_http_conn_pause_body(p->down);
        }
        return;
    }
    if (!p->up || p->state != PX_EXCHANGING)
        return;
    if (p->req->chunked) {
        char size[20];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        uv_buf_t bufs[3] = {uv_buf_init(size, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
                            uv_buf_init("\r\n", 2)};
        kp_upstream_write(p->up, bufs, 3);
    } else {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        kp_upstream_write(p->up, &b, 1);
    }
    if (p->up && !p->body_paused && kp_upstream_write_queue(p->up) > KP_HTTP_HIGH_WATER) {
        p->body_paused = 1;
        kp_http_conn_pause_body(p->down);
    }
}

static void down_on_body_end(void *ctx)
{
    kp_proxy_t *p = ctx;
    if (p->use_h2 && p->h2 && !p->request_sent) {
        kp_h2c_stream_end(p->h2, NULL, 0);
        p->request_sent = 1;
        if (p->response_done)
            finish(p, KP_PROXY_OK);
        return;
    }
    if (!p->up || p->state != PX_EXCHANGING || p->request_sent)
        return;
    if (p->req->chunked) {
        uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
        kp_upstream_write(p->up, &b, 1);
    }
    p->request_sent = 1;
    if (p->response_done)
        finish(p, KP_PROXY_OK);
}

static void up_on_writable(void *ctx)
{
    kp_proxy_t *p = ctx;
    if (p->state == PX_TUNNEL && p->body_paused) {
        p->body_paused = 0;
        kp_http_conn_resume_tunnel(p->down);
    } else if (p->body_paused && p->down) {
        p->body_paused = 0;
        kp_http_conn_read_body(p->down);
    }
}

/* --- response coming down --- */

static int is_response_hop_by_hop(const kp_http_header_t *h, int upgrade)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "te", "trailer", "content-length"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (kp_http_name_eq(h->name, h->name_len, names[i]))
            return 1;
    return !upgrade && kp_http_name_eq(h->name, h->name_len, "upgrade");
}

/* The protocol a head asks to switch to, as Go's ReverseProxy reads it
 * (upgradeType): Upgrade's value when Connection names "upgrade", else "". */
static void upgrade_type(const kp_http_header_t *hs, size_t n, const char **v, size_t *len)
{
    const kp_http_header_t *u = kp_http_head_has_token(hs, n, "connection", "upgrade")
                                    ? kp_http_header_find(hs, n, "upgrade")
                                    : NULL;
    *v = u ? u->value : "";
    *len = u ? u->value_len : 0;
}

/* RFC 9110 §15.2.2: a switch only to the protocol the client asked for.
 * Go's handleUpgradeResponse answers 502 otherwise (also when none was
 * asked for: its 101 then has no connection to hand over). */
static int switch_was_asked_for(const kp_proxy_t *p, const kp_upstream_response_t *r)
{
    const char *want, *got;
    size_t want_len, got_len;
    upgrade_type(p->req->headers, p->req->n_headers, &want, &want_len);
    upgrade_type(r->headers, r->n_headers, &got, &got_len);
    return p->req->upgrade && want_len > 0 && want_len == got_len &&
           strncasecmp(want, got, want_len) == 0;
}

static void up_on_response_head(void *ctx, const kp_upstream_response_t *r)
{
    kp_proxy_t *p = ctx;
    if (!p->down)
        return;
    int upgrade = r->status == 101;
    if (upgrade && !switch_was_asked_for(p, r)) {
        fail(p, KP_PROXY_UPSTREAM_FAILED, 502, "error reverse proxying request\n");
        return;
    }
    /* The request head is not needed any more (no retry once a response
     * came): its buffer holds the response's header lines. */
    kp_strbuf_t *extra = &p->head;
    kp_strbuf_reset(extra);
    for (size_t i = 0; i < r->n_headers; i++) {
        const kp_http_header_t *h = &r->headers[i];
        if (is_response_hop_by_hop(h, upgrade))
            continue;
        add_header(extra, h->name, h->name_len, h->value, h->value_len);
    }
    int64_t length = r->chunked ? -1 : r->content_length;
    int bodyless = p->req->method_id == HTTP_HEAD || r->status == 204 || r->status == 304;
    if (bodyless) {
        const kp_http_header_t *cl = kp_http_header_find(r->headers, r->n_headers, "content-length");
        if (cl && r->status != 204)
            add_header(extra, "Content-Length", 14, cl->value, cl->value_len);
        length = -2;
    }
    p->result.status = r->status;
    p->last_write_ns = kp_now_ns();
    if (upgrade) {
        kp_strbuf_puts(extra, "Connection: Upgrade\r\n");
        kp_http_conn_send_head(p->down, r->status, extra->data, extra->len, length);
        p->state = PX_TUNNEL;
        p->result.upgraded = 1;
        p->request_sent = 1;
        kp_http_conn_start_tunnel(p->down);
    } else {
        p->head_pending = 1;
        p->pending_status = r->status;
        p->pending_length = length;
    }
    arm_timer(p);
}

static void flush_head(kp_proxy_t *p)
{
    if (!p->head_pending)
        return;
    p->head_pending = 0;
    if (p->down)
        kp_http_conn_send_head(p->down, p->pending_status, p->head.data, p->head.len,
                               p->pending_length);
}

static void up_on_read_done(void *ctx)
{
    flush_head(ctx);
}

static void up_on_body(void *ctx, const char *data, size_t len)
{
    kp_proxy_t *p = ctx;
    if (!p->down)
        return;
    if (p->head_pending) {
        p->head_pending = 0;
        kp_http_conn_send_head_body(p->down, p->pending_status, p->head.data, p->head.len,
                                    p->pending_length, data, len);
    } else {
        kp_http_conn_send_body(p->down, data, len);
    }
    p->last_write_ns = kp_now_ns();
    if (p->down && (p->up || p->h2) && !p->response_paused &&
        kp_http_conn_write_queue(p->down) > KP_HTTP_HIGH_WATER) {
        p->response_paused = 1;
        if (p->h2)
            kp_h2c_stream_pause(p->h2); /* stalls this stream alone */
        else
            kp_upstream_pause(p->up);
    }
}

static void up_on_response_end(void *ctx)
{
    kp_proxy_t *p = ctx;
    p->response_done = 1;
    if (!p->down)
        return;
    if (p->h2 && p->head_pending && p->pending_length >= -1) {
        /* A head-only answer: to an HTTP/2 client it stays one HEADERS
         * frame with END_STREAM (gRPC's Trailers-Only: grpc-status in the
         * head), to an HTTP/1.1 one it gets Content-Length: 0. */
        p->pending_length = kp_http_conn_is_h2(p->down) ? -2 : 0;
    }
    flush_head(p);
    kp_http_conn_t *down = p->down;
    p->result.bytes_sent = kp_http_conn_bytes_sent(down);
    if (!p->request_sent) {
        /* The app answered before reading the whole body: the upstream
         * connection cannot be reused and the client's ends after this
         * (over h2c, that stream alone is cancelled). */
        close_upstream(p);
    }
    p->down = NULL;
    kp_http_conn_send_end(down);
    finish(p, KP_PROXY_OK);
}

static void down_on_writable(void *ctx)
{
    kp_proxy_t *p = ctx;
    if (p->response_paused && p->h2) {
        p->response_paused = 0;
        kp_h2c_stream_resume(p->h2);
    } else if (p->response_paused && p->up) {
        p->response_paused = 0;
        kp_upstream_resume(p->up);
    }
}

static void down_on_abort(void *ctx)
{
    kp_proxy_t *p = ctx;
    p->down = NULL;
    finish(p, KP_PROXY_CLIENT_GONE);
}

static void up_on_connected(void *ctx, int status)
{
    kp_proxy_t *p = ctx;
    if (status < 0) {
        p->up = NULL;
        fail_unreachable(p, "error reverse proxying request: upstream unreachable\n");
        return;
    }
    send_request_head(p);
}

/* Go's Request.isReplayable: what may be sent twice. */
static int replayable(const kp_http_request_t *r)
{
    if (r->method_id == HTTP_GET || r->method_id == HTTP_HEAD || r->method_id == HTTP_OPTIONS ||
        r->method_id == HTTP_TRACE)
        return 1;
    return kp_http_header_find(r->headers, r->n_headers, "idempotency-key") ||
           kp_http_header_find(r->headers, r->n_headers, "x-idempotency-key");
}

static void up_on_error(void *ctx, int err, int response_started)
{
    kp_proxy_t *p = ctx;
    p->up = NULL;
    if (p->state == PX_FINISHED)
        return;
    /* A kept-alive connection may have been closed by the app just as we
     * reused it (RFC 9112 §9.3.1): a replayable request without a body
     * goes again once, as Go's Transport does (shouldRetryRequest). Not
     * after a fresh connection failed, nor after an answer that was not
     * HTTP: the app may have acted on the request. */
    if (!response_started && !p->retried && !p->body_started && p->state == PX_EXCHANGING &&
        p->up_reused && err != UV_EPROTO && replayable(p->req)) {
        p->retried = 1;
        p->state = PX_CONNECTING;
        int rc = kp_upstream_get(p->pool, &upstream_ops, p, &p->up);
        if (rc == 1)
            send_request_head(p);
        else if (rc < 0)
            fail(p, KP_PROXY_UPSTREAM_FAILED, 502, "error reverse proxying request\n");
        return;
    }
    fail(p, KP_PROXY_UPSTREAM_FAILED, 502, "error reverse proxying request\n");
}

/* --- over h2c --- */

static void h2_submit(kp_proxy_t *p);

static void h2_get(kp_proxy_t *p)
{
    p->state = PX_CONNECTING;
    int rc = kp_h2c_pool_get(p->h2_pool, &h2_upstream_ops, p, &p->h2);
    if (rc == 1)
        h2_submit(p);
    else if (rc < 0)
        fail_unreachable(p, "error reverse proxying request: upstream unreachable\n");
}

static void h2_submit(kp_proxy_t *p)
{
    p->state = PX_EXCHANGING;
    /* A body already ended (a retry) or never there: the head ends it. */
    int has_body = p->req->has_body && !(p->request_sent && p->body_bytes == 0);
    int rc = kp_h2c_stream_submit(p->h2, p->h2_head.nv, p->h2_head.n, has_body);
    if (rc != 0) {
        p->h2 = NULL;
        if (rc == KP_H2C_REFUSED && ++p->h2_refused < H2_MAX_REFUSED)
            h2_get(p);
        else
            fail(p, KP_PROXY_UPSTREAM_FAILED, 502, "error reverse proxying request\n");
        return;
    }
    if (!has_body) {
        p->request_sent = 1;
        return;
    }
    if (!p->body_started) {
        p->body_started = 1;
        kp_http_conn_read_body(p->down);
    }
}

static void h2_on_connected(void *ctx, int status)
{
    kp_proxy_t *p = ctx;
    if (status < 0) {
        p->h2 = NULL;
        fail_unreachable(p, "error reverse proxying request: upstream unreachable\n");
        return;
    }
    h2_submit(p);
}

static void h2_on_error(void *ctx, int err, int response_started)
{
    kp_proxy_t *p = ctx;
    p->h2 = NULL;
    if (p->state == PX_FINISHED)
        return;
    /* Not processed (RFC 9113 §8.7): sent again on a new stream, the
     * connection that refused it draining; the client sees nothing. Only
     * while no body byte left us: those are not kept. */
    if (err == KP_H2C_REFUSED && !response_started && p->body_bytes == 0) {
        if (++p->h2_refused < H2_MAX_REFUSED) {
            h2_get(p);
            return;
        }
        fail_unreachable(p, "error reverse proxying request: upstream refused it\n");
        return;
    }
    /* Before the head: 502; after it, the client's response is cut (its
     * stream reset when it speaks HTTP/2). */
    fail(p, KP_PROXY_UPSTREAM_FAILED, 502, "error reverse proxying request\n");
}

/* gRPC's status travels here (grpc-status, grpc-message). */
static void h2_on_trailers(void *ctx, const kp_http_header_t *hs, size_t n)
{
    kp_proxy_t *p = ctx;
    if (!p->down)
        return;
    flush_head(p);
    kp_strbuf_t *lines = &p->head;
    kp_strbuf_reset(lines);
    for (size_t i = 0; i < n; i++)
        add_header(lines, hs[i].name, hs[i].name_len, hs[i].value, hs[i].value_len);
    p->response_done = 1;
    kp_http_conn_t *down = p->down;
    p->down = NULL;
    p->result.bytes_sent = kp_http_conn_bytes_sent(down);
    if (!p->request_sent)
        close_upstream(p);
    kp_http_conn_send_trailers(down, lines->data ? lines->data : "", lines->len);
    p->result.bytes_sent = kp_http_conn_bytes_sent(down);
    finish(p, KP_PROXY_OK);
}

/* --- tunnel --- */

static void down_on_tunnel_data(void *ctx, const char *data, size_t len)
{
    kp_proxy_t *p = ctx;
    if (!p->up)
        return;
    if (!data) {
        p->down_eof = 1;
        kp_upstream_shutdown_write(p->up);
        if (p->up_eof)
            finish(p, KP_PROXY_OK);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    kp_upstream_write(p->up, &b, 1);
    p->last_write_ns = kp_now_ns();
    if (p->up && p->down && !p->body_paused && kp_upstream_write_queue(p->up) > KP_HTTP_HIGH_WATER) {
        p->body_paused = 1;
        kp_http_conn_pause_tunnel(p->down);
    }
}

static void up_on_tunnel_data(void *ctx, const char *data, size_t len)
{
    kp_proxy_t *p = ctx;
    if (!p->down)
        return;
    if (!data) {
        p->up_eof = 1;
        if (p->down_eof) {
            finish(p, KP_PROXY_OK);
            return;
        }
        kp_http_conn_t *down = p->down;
        p->down = NULL;
        p->result.bytes_sent = kp_http_conn_bytes_sent(down);
        kp_http_conn_shutdown(down);
        finish(p, KP_PROXY_OK);
        return;
    }
    kp_http_conn_send_raw(p->down, data, len);
    p->last_write_ns = kp_now_ns();
    if (p->down && p->up && !p->response_paused &&
        kp_http_conn_write_queue(p->down) > KP_HTTP_HIGH_WATER) {
        p->response_paused = 1;
        kp_upstream_pause(p->up);
    }
}

/* --- timeouts --- */

static void on_timer(uv_timer_t *t)
{
    kp_proxy_t *p = t->data;
    uint64_t now = kp_now_ns();
    uint64_t ms = 1000000;
    int started = p->down && kp_http_conn_response_started(p->down);
    int expired = 0;
    if (p->opts.timeout_ms && now >= p->start_ns + p->opts.timeout_ms * ms)
        expired = 1;
    if (!started && p->opts.response_start_timeout_ms &&
        now >= p->start_ns + p->opts.response_start_timeout_ms * ms)
        expired = 1;
    if (p->opts.idle_timeout_ms && now >= p->last_write_ns + p->opts.idle_timeout_ms * ms)
        expired = 1;
    if (expired)
        fail(p, KP_PROXY_TIMEOUT, 504, "request timeout");
    else
        arm_timer(p);
}

static void arm_timer(kp_proxy_t *p)
{
    if (p->state == PX_FINISHED)
        return;
    uint64_t ms = 1000000;
    uint64_t deadline = UINT64_MAX;
    int started = p->down && kp_http_conn_response_started(p->down);
    if (p->opts.timeout_ms)
        deadline = p->start_ns + p->opts.timeout_ms * ms;
    if (!started && p->opts.response_start_timeout_ms) {
        uint64_t d = p->start_ns + p->opts.response_start_timeout_ms * ms;
        if (d < deadline)
            deadline = d;
    }
    if (p->opts.idle_timeout_ms) {
        uint64_t d = p->last_write_ns + p->opts.idle_timeout_ms * ms;
        if (d < deadline)
            deadline = d;
    }
    if (deadline == UINT64_MAX)
        return;
    uint64_t now = kp_now_ns();
    uint64_t wait_ms = deadline > now ? (deadline - now + ms - 1) / ms : 0;
    uv_timer_start(&p->timer, on_timer, wait_ms, 0);
}

static const kp_upstream_ops_t upstream_ops = {
    .on_connected = up_on_connected,
    .on_response_head = up_on_response_head,
    .on_body = up_on_body,
    .on_response_end = up_on_response_end,
    .on_error = up_on_error,
    .on_writable = up_on_writable,
    .on_tunnel_data = up_on_tunnel_data,
    .on_read_done = up_on_read_done,
};

static const kp_h2c_ops_t h2_upstream_ops = {
    .on_connected = h2_on_connected,
    .on_response_head = up_on_response_head,
    .on_body = up_on_body,
    .on_trailers = h2_on_trailers,
    .on_response_end = up_on_response_end,
    .on_error = h2_on_error,
    .on_writable = up_on_writable,
    .on_read_done = up_on_read_done,
};

static const kp_http_request_ops_t downstream_ops = {
    .on_body = down_on_body,
    .on_body_end = down_on_body_end,
    .on_writable = down_on_writable,
    .on_abort = down_on_abort,
    .on_tunnel_data = down_on_tunnel_data,
};

int kp_proxy_start(kp_http_request_t *req, kp_upstream_pool_t *pool, const kp_proxy_opts_t *opts,
                   const kp_proxy_edits_t *edits, uint64_t start_ns, kp_proxy_done_cb done,
                   void *ctx)
{
    kp_proxy_t *p = calloc(1, sizeof *p);
    if (!p)
        return UV_ENOMEM;
    p->down = req->conn;
    p->req = req;
    p->pool = pool;
    p->opts = *opts;
    p->start_ns = start_ns;
    p->last_write_ns = start_ns;
    p->done = done;
    p->ctx = ctx;
    p->state = PX_CONNECTING;
    kp_strbuf_init(&p->head);
    kp_h2c_request_head_init(&p->h2_head);
    p->h2_pool = opts->h2_pool;
    p->use_h2 = p->h2_pool && !req->upgrade && (req->http_major == 2 || opts->h2_always);
    if (p->use_h2 && kp_h2c_request_head_build(&p->h2_head, req, edits) != 0) {
        kp_h2c_request_head_free(&p->h2_head);
        kp_strbuf_free(&p->head);
        free(p);
        return UV_ENOMEM;
    }
    uv_timer_init(kp_http_conn_loop(req->conn), &p->timer);
    p->timer.data = p;
    kp_http_conn_bind(p->down, &downstream_ops, p);
    arm_timer(p);
    if (p->use_h2) {
        h2_get(p);
        return 0;
    }
    build_request_head(p, edits);
    int rc = kp_upstream_get(pool, &upstream_ops, p, &p->up);
    if (rc == 1)
        send_request_head(p);
    else if (rc < 0)
        fail_unreachable(p, "error reverse proxying request: upstream unreachable\n");
    return 0;
}
