/* HTTP/1.1 server connections; see server.h.
 *
 * One request at a time per connection: the parser pauses at the end of
 * each head and each message, so pipelined bytes wait in the read buffer
 * (bounded) until the current response is done. */
#include "server.h"
#include "server_internal.h"

#include <llhttp.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/env.h"
#include "base/log.h"
#include "h2.h"
#include "stream_write.h"

static void conn_process(kp_http_conn_t *c);
static void on_idle_timeout(uv_timer_t *t);

/* A connection with nothing buffered reads into this buffer, and most
 * reads are consumed whole before on_read returns: a connection owns a
 * read buffer only while bytes wait in it (a head cut by the read, a body
 * its handler does not read yet, pipelined requests). One per thread:
 * a loop handles one read at a time. */
static _Thread_local char read_scratch[READ_BUF_SIZE];

/* A keep-alive connection idle this long gives back the storage of its
 * last request's head; a busy one keeps reusing it. */
#define IDLE_TRIM_MS 1000
static void respond_error(kp_http_conn_t *c, int status, const char *body);

/* An optional positive integer from the environment; def when unset,
 * and def with a warning when malformed (the servers start anyway). */
static long long env_positive(const char *name, long long def)
{
    long long v;
    char err[200];
    if (kp_env_int(NULL, name, 0, def, 1, 1LL << 40, &v, err, sizeof err) != 0) {
        kp_log_kv(KP_LOG_WARN, "ignored a malformed variable", "error", err, NULL);
        return def;
    }
    return v;
}

void kp_http_server_opts_default(kp_http_server_opts_t *o)
{
    /* KP_HTTP_* tune every server of the process (tests shorten them). */
    o->header_timeout_ms = (uint64_t)env_positive("KP_HTTP_HEADER_TIMEOUT_MS", 30000);
    o->keepalive_timeout_ms = 120000;
    o->max_connections = (size_t)env_positive("KP_HTTP_MAX_CONNECTIONS", 20000);
    o->stall_timeout_ms = (uint64_t)env_positive("KP_HTTP_STALL_TIMEOUT_MS", 60000);
    o->reuse_port = 0;
    o->budget = NULL;
}

/* --- llhttp callbacks --- */

static int on_message_begin(llhttp_t *p)
{
    kp_http_conn_t *c = p->data;
    kp_http_head_reset(&c->head);
    c->head_started = 1;
    c->http1_seen = 1;
    c->reject_status = 0;
    c->reject_msg = NULL;
    uv_timer_start(&c->timer, on_idle_timeout, c->server->opts.header_timeout_ms, 0);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    kp_http_conn_t *c = p->data;
    return kp_http_head_add_url(&c->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    kp_http_conn_t *c = p->data;
    return kp_http_head_add_field(&c->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_field_complete(llhttp_t *p)
{
    kp_http_conn_t *c = p->data;
    return kp_http_head_field_done(&c->head) == 0 ? 0 : HPE_USER;
}

/* llhttp runs with LENIENT_VERSION so that HTTP/1.2 and up reach us: RFC
 * 9110 §6.2 has them answered as 1.1, where strict llhttp refuses them. The
 * version rules are then ours, checked before any header is read. */
static int on_version_complete(llhttp_t *p)
{
    kp_http_conn_t *c = p->data;
    c->reject_status = kp_http_version_check(llhttp_get_http_major(p), llhttp_get_http_minor(p),
                                             &c->reject_msg);
    return c->reject_status ? HPE_USER : 0;
}

/* Whether a header value span starts on a line that began with SP or HT:
 * llhttp accepts such obs-fold continuations and hands them over as more
 * value (RFC 9112 §5.2: a server must refuse or unfold them; a proxy that
 * forwards them can disagree with the next hop about the field). */
static int value_continues_fold(const kp_http_conn_t *c, const char *at)
{
    const char *s = at;
    while (s > c->exec_start && (s[-1] == ' ' || s[-1] == '\t'))
        s--;
    if (s > c->exec_start)
        return s[-1] == '\n';
    return c->parsed_ends_in_fold;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    kp_http_conn_t *c = p->data;
    /* An empty value ("X-A:") is reported as an empty span past its line
     * end; only bytes that follow a line break make a fold. */
    if (len > 0 && value_continues_fold(c, at)) {
        c->reject_status = 400;
        c->reject_msg = "bad request: obsolete line folding is not accepted\n";
        return HPE_USER;
    }
    return kp_http_head_add_value(&c->head, at, len) == 0 ? 0 : HPE_USER;
}

static int on_header_value_complete(llhttp_t *p)
{
    kp_http_conn_t *c = p->data;
    return kp_http_head_value_done(&c->head) == 0 ? 0 : HPE_USER;
}

/* Checks of a complete head that llhttp (strict mode) leaves to us; 0, or
 * the status to refuse it with (c->reject_msg says why). */
static int head_check(kp_http_conn_t *c, const llhttp_t *p)
{
    return kp_http_head_check(&c->head, llhttp_get_http_major((llhttp_t *)p),
                              llhttp_get_http_minor((llhttp_t *)p),
                              llhttp_get_method((llhttp_t *)p), &c->reject_msg);
}

static int on_headers_complete(llhttp_t *p)
{
    kp_http_conn_t *c = p->data;
    kp_http_head_t *h = &c->head;
    kp_http_head_finish(h);
    c->head_started = 0;
    c->reject_status = head_check(c, p);
    if (!c->reject_status)
        c->reject_status = kp_http_head_read_target(h, llhttp_get_method(p), &c->reject_msg);
    if (c->reject_status)
        return HPE_USER;
    /* head_check accepted the transfer codings only if they end in
     * chunked. llhttp reads "chunked<HTAB>" as an unknown coding (RFC 9110
     * §5.6.3: OWS is SP or HTAB) and would refuse the request after this
     * callback; the flag makes it read the chunked body instead. */
    if (kp_http_header_find(h->headers, h->n_headers, "transfer-encoding"))
        p->flags |= F_CHUNKED;
    kp_http_request_t *r = &c->req;
    memset(r, 0, sizeof *r);
    r->conn = c;
    r->method_id = llhttp_get_method(p);
    r->method = llhttp_method_name((llhttp_method_t)r->method_id);
    r->url = h->origin;
    r->url_len = h->origin_len;
    r->target = h->url;
    r->target_len = h->url_len;
    const kp_http_header_t *host = kp_http_header_find(h->headers, h->n_headers, "host");
    if (h->authority) {
        r->host = h->authority;
        r->host_len = h->authority_len;
    } else if (host) {
        r->host = host->value;
        r->host_len = host->value_len;
    }
    r->http_major = llhttp_get_http_major(p);
    r->http_minor = llhttp_get_http_minor(p) > 1 ? 1 : llhttp_get_http_minor(p);
    r->headers = h->headers;
    r->n_headers = h->n_headers;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    r->has_body = r->chunked || r->content_length > 0;
    r->upgrade = llhttp_get_upgrade(p);
    r->start_ns = kp_now_ns();
    r->peer_ip = c->peer_ip;
    r->peer_port = c->peer_port;
    /* llhttp misses "close<HTAB>" too (RFC 9112 §9.6: the server closes
     * after a request that asked to). */
    c->keep_alive = llhttp_should_keep_alive(p) && r->http_minor >= 1 &&
                    !kp_http_head_has_token(h->headers, h->n_headers, "connection", "close");
    c->head_ready = 1;
    uv_timer_stop(&c->timer);
    /* A request without a body runs on to message-complete, so it is
     * handed over whole; one with a body waits here for the handler. */
    return r->has_body ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    kp_http_conn_t *c = p->data;
    if (c->ops && c->ops->on_body)
        c->ops->on_body(c->ctx, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    kp_http_conn_t *c = p->data;
    c->body_done = 1;
    if (c->dispatched)
        c->body_end_due = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- closing --- */

/* After a crowd of connections (thousands held at a cold start, say) has
 * gone, the allocator keeps their memory in a heap that a few live objects
 * pin; hand it back to the kernel once, when the crowd has mostly left. */
static void release_memory_after_peak(kp_http_server_t *s)
{
    if (s->peak_conns >= 1000 && s->n_conns <= s->peak_conns / 8) {
        s->peak_conns = s->n_conns;
        malloc_trim(0);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    kp_http_conn_t *c = h->data;
    if (--c->pending_closes > 0)
        return;
    kp_http_server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (s->opts.budget)
        s->opts.budget->n_conns--;
    kp_http_head_free(&c->head);
    kp_conn_drop_read_buffer(c);
    free(c);
    release_memory_after_peak(s);
    if (s->n_conns == 0 && !s->accepting && s->on_closed && uv_is_closing((uv_handle_t *)&s->listener)) {
        void (*cb)(kp_http_server_t *) = s->on_closed;
        s->on_closed = NULL;
        cb(s);
    }
}

static void notify_abort(kp_http_conn_t *c)
{
    const kp_http_request_ops_t *ops = c->ops;
    void *ctx = c->ctx;
    c->ops = NULL;
    c->ctx = NULL;
    if (ops && ops->on_abort)
        ops->on_abort(ctx);
}

void kp_conn_close(kp_http_conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    notify_abort(c);
    if (c->h2)
        kp_h2_close(c->h2);
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
    kp_conn_close(t->data);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    kp_http_conn_t *c = req->data;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        kp_conn_close(c);
        return;
    }
    /* Reading on until the client's EOF keeps the kernel from answering
     * unread input with a RST that could destroy our last response. */
    c->state = CONN_LINGERING;
    c->rpos = c->rlen = 0;
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
    kp_conn_update_reading(c);
}

/* Sends what is queued, then closes. */
void kp_conn_finish_and_close(kp_http_conn_t *c)
{
    if (c->state == CONN_CLOSING || c->shutting_down)
        return;
    c->shutting_down = 1;
    notify_abort(c);
    if (c->h2)
        kp_h2_close(c->h2);
    c->state = CONN_LINGERING;
    c->shutdown_req.data = c;
    uv_timer_start(&c->timer, on_linger_timeout, c->server->opts.header_timeout_ms, 0);
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown_done) != 0)
        kp_conn_close(c);
}

/* --- writing --- */

static void on_write_done(void *ctx, int status)
{
    kp_http_conn_t *c = ctx;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        kp_conn_close(c);
        return;
    }
    if (c->state == CONN_H2) {
        if (c->h2)
            kp_h2_on_written(c->h2);
        return;
    }
    if (c->ops && c->ops->on_writable &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < KP_HTTP_LOW_WATER)
        c->ops->on_writable(c->ctx);
}

void kp_conn_write(kp_http_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->state == CONN_CLOSING || c->shutting_down)
        return;
    for (unsigned i = 0; i < n; i++)
        c->bytes_sent += bufs[i].len;
    if (kp_stream_write((uv_stream_t *)&c->tcp, bufs, n, on_write_done, c, &c->pending_writes) != 0)
        kp_conn_close(c);
}

size_t kp_http_conn_write_queue(const kp_http_conn_t *c)
{
    if (c->h2s)
        return kp_h2_stream_write_queue(c->h2s);
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

uv_loop_t *kp_http_conn_loop(const kp_http_conn_t *c)
{
    return c->server->loop;
}

int kp_http_conn_response_started(const kp_http_conn_t *c)
{
    return c->response_started;
}

uint64_t kp_http_conn_bytes_sent(const kp_http_conn_t *c)
{
    return c->bytes_sent;
}

/* --- request lifecycle --- */

static void on_idle_timeout(uv_timer_t *t)
{
    kp_http_conn_t *c = t->data;
    /* A head still incomplete at the deadline is a slow or stuck client:
     * RFC 9110 §15.5.9, 408 and close. An idle keep-alive connection is
     * closed without a word (RFC 9112 §9.5: the client may be sending). */
    if (c->state == CONN_READING_HEAD && (c->head_started || c->rlen > c->rpos)) {
        c->rpos = c->rlen = 0;
        respond_error(c, 408, "request timeout: the request head took too long\n");
        return;
    }
    kp_conn_close(c);
}

static void on_idle_trim(uv_timer_t *t)
{
    kp_http_conn_t *c = t->data;
    kp_http_head_free(&c->head);
    c->req.url = c->req.target = c->req.host = NULL;
    c->req.url_len = c->req.target_len = c->req.host_len = 0;
    c->req.headers = NULL;
    c->req.n_headers = 0;
    uv_timer_start(&c->timer, on_idle_timeout, c->server->opts.keepalive_timeout_ms - IDLE_TRIM_MS,
                   0);
}

static void on_pipelined(uv_timer_t *t)
{
    kp_http_conn_t *c = t->data;
    uv_timer_start(&c->timer, on_idle_timeout, c->server->opts.header_timeout_ms, 0);
    conn_process(c);
}

static void conn_wait_next_request(kp_http_conn_t *c)
{
    c->state = CONN_READING_HEAD;
    c->ops = NULL;
    c->ctx = NULL;
    c->head_ready = c->dispatched = c->body_wanted = c->body_paused = 0;
    c->body_done = c->body_end_due = c->response_started = c->response_done = 0;
    c->response_chunked = c->response_no_body = c->continue_sent = 0;
    c->bytes_sent = 0;
    if (c->rlen > c->rpos) {
        /* A pipelined request waits for the next loop turn: the handler of
         * the one just answered may still be unwinding and reading it. */
        uv_timer_start(&c->timer, on_pipelined, 0, 0);
        return;
    }
    /* The handler of the request just answered may still be unwinding and
     * reading its head: the head's storage goes later, on on_idle_trim. */
    if (c->server->opts.keepalive_timeout_ms > IDLE_TRIM_MS)
        uv_timer_start(&c->timer, on_idle_trim, IDLE_TRIM_MS, 0);
    else
        uv_timer_start(&c->timer, on_idle_timeout, c->server->opts.keepalive_timeout_ms, 0);
    kp_conn_update_reading(c);
}

/* Both halves done: the response was written and the request was read. */
static void conn_request_finished(kp_http_conn_t *c)
{
    c->ops = NULL;
    c->ctx = NULL;
    if (!c->keep_alive || !c->server->accepting)
        kp_conn_finish_and_close(c);
    else
        conn_wait_next_request(c);
}

void kp_conn_response_ended(kp_http_conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return; /* the last write failed and closed it */
    c->response_done = 1;
    if (!c->body_done) {
        /* The handler answered without the whole body: the rest of it
         * cannot be told apart from a next request, so the connection ends. */
        c->keep_alive = 0;
    }
    conn_request_finished(c);
}

static void respond_error(kp_http_conn_t *c, int status, const char *body)
{
    if (!c->dispatched) {
        /* No head was handed over: c->req still describes the previous
         * request on this connection (a HEAD would strip our body). */
        memset(&c->req, 0, sizeof c->req);
        c->req.conn = c;
        c->req.method_id = HTTP_GET;
        c->req.http_major = c->req.http_minor = 1;
        c->req.content_length = -1;
    }
    c->keep_alive = 0;
    c->state = CONN_IN_REQUEST;
    c->ops = NULL;
    kp_http_conn_respond(c, status, "text/plain; charset=utf-8", body, strlen(body));
}

/* Whether the buffered bytes start with a whole request line of HTTP/1
 * syntax (RFC 9112 §3: method SP request-target SP HTTP-version CRLF),
 * after the empty lines §2.2 lets us skip. */
static int request_line_well_formed(const kp_http_conn_t *c)
{
    const char *s = c->rbuf + c->rpos, *end = c->rbuf + c->rlen;
    while (s < end && (*s == '\r' || *s == '\n'))
        s++;
    const char *m = s;
    while (s < end && kp_http_is_tchar((unsigned char)*s))
        s++;
    if (s == m || s == end || *s++ != ' ')
        return 0;
    const char *t = s;
    while (s < end && (unsigned char)*s > 0x20 && *s != 0x7f)
        s++;
    if (s == t || end - s < 11 || *s != ' ')
        return 0;
    s++;
    return memcmp(s, "HTTP/", 5) == 0 && s[5] >= '0' && s[5] <= '9' && s[6] == '.' && s[7] >= '0' &&
           s[7] <= '9' && s[8] == '\r' && s[9] == '\n';
}

static void conn_parse_error(kp_http_conn_t *c, llhttp_errno_t err)
{
    /* A handler may have ended the connection from a parser callback
     * (kp_http_conn_abort in on_body) while llhttp ran on into a malformed
     * rest: responding would revive a closing connection and close its
     * handles twice. */
    if (c->state == CONN_CLOSING)
        return;
    if (c->dispatched) {
        /* The body was malformed after the head was handed over. */
        if (!c->response_started) {
            notify_abort(c);
            respond_error(c, 400, "bad request: malformed body\n");
        } else {
            kp_conn_close(c);
        }
        return;
    }
    if (c->reject_status) /* HPE_USER, or HPE_CB_* from on_headers_complete */
        respond_error(c, c->reject_status, c->reject_msg);
    else if (err == HPE_USER && c->head.error == KP_HEAD_URL_TOO_LONG)
        respond_error(c, 414, "request URL too long\n");
    else if (err == HPE_USER && c->head.error != KP_HEAD_OK)
        respond_error(c, 431, "request header fields too large\n");
    else if (err == HPE_INVALID_METHOD && c->head.len == 0 && c->rpos == 0 &&
             c->rlen > 0 && (unsigned char)c->rbuf[0] == 0x16)
        kp_conn_close(c); /* a TLS handshake on the plain port: nothing to say */
    else if (err == HPE_PAUSED_H2_UPGRADE)
        /* An HTTP/2 prior-knowledge preface: RFC 9110 §15.6.6. */
        respond_error(c, 505, "HTTP version not supported (use HTTP/1.1)\n");
    else if (err == HPE_INVALID_METHOD && request_line_well_formed(c))
        /* RFC 9110 §9.1: a well-formed method we do not know (methods are
         * case-sensitive, so "get" is one) is a 501, not a syntax error. */
        respond_error(c, 501, "method not implemented\n");
    else {
        char body[160];
        snprintf(body, sizeof body, "bad request: %s\n", llhttp_get_error_reason(&c->parser));
        respond_error(c, 400, body);
    }
}

static void conn_dispatch(kp_http_conn_t *c)
{
    c->dispatched = 1;
    c->state = CONN_IN_REQUEST;
    const char *settings;
    size_t settings_len;
    if (c->req.upgrade && kp_h2_upgrade_wanted(&c->req, &settings, &settings_len) &&
        kp_h2_upgrade(c, settings, settings_len) == 0)
        return;
    if (c->req.upgrade &&
        kp_http_head_has_token(c->req.headers, c->req.n_headers, "upgrade", "h2c")) {
        /* RFC 7540 §3.2: an h2c upgrade not taken (a body came with it) is
         * served as if Upgrade were absent, never as a tunnel; llhttp
         * cannot parse on after it, so the connection ends with it. */
        c->req.upgrade = 0;
        c->keep_alive = 0;
    }
    c->server->on_request(&c->req, c->server->ctx);
}

/* RFC 9113 §3.3: a connection whose first bytes are the client preface
 * speaks HTTP/2. 1: it does (now in CONN_H2); 0: it does not; -1: the
 * bytes so far are a part of the preface (wait), or -2 they began as one
 * and then broke off (closed). */
static int conn_check_preface(kp_http_conn_t *c)
{
    size_t avail = c->rlen - c->rpos;
    if (c->state != CONN_READING_HEAD || c->http1_seen || c->head_started || avail == 0)
        return 0;
    const char *b = c->rbuf + c->rpos;
    size_t n = avail < NGHTTP2_CLIENT_MAGIC_LEN ? avail : NGHTTP2_CLIENT_MAGIC_LEN;
    size_t match = 0;
    while (match < n && b[match] == NGHTTP2_CLIENT_MAGIC[match])
        match++;
    if (match == NGHTTP2_CLIENT_MAGIC_LEN) {
        kp_h2_start(c);
        return 1;
    }
    if (match == avail)
        return -1;
    if (match >= 4) { /* "PRI " is HTTP/2's alone */
        kp_conn_close(c);
        return -2;
    }
    return 0;
}

static int conn_may_parse(const kp_http_conn_t *c)
{
    if (c->state == CONN_READING_HEAD)
        return 1;
    return c->state == CONN_IN_REQUEST && c->body_wanted && !c->body_paused && !c->body_done;
}

static void deliver_body_end(kp_http_conn_t *c)
{
    if (c->body_end_due && c->state == CONN_IN_REQUEST && c->body_wanted) {
        c->body_end_due = 0;
        if (c->ops && c->ops->on_body_end)
            c->ops->on_body_end(c->ctx);
    }
}

/* After processing: bytes left unread move from the scratch buffer into
 * one of the connection's own; an own buffer read to its end is freed. */
static void settle_read_buffer(kp_http_conn_t *c)
{
    size_t left = c->rlen - c->rpos;
    if (c->rbuf == read_scratch) {
        c->rbuf = NULL;
        char *own = left && c->state != CONN_CLOSING ? malloc(READ_BUF_SIZE) : NULL;
        if (own) {
            memcpy(own, read_scratch + c->rpos, left);
            c->rbuf = own;
            c->rpos = 0;
            c->rlen = left;
            return;
        }
        c->rpos = c->rlen = 0;
        if (left && c->state != CONN_CLOSING)
            kp_conn_close(c); /* out of memory: the bytes cannot be kept */
    } else if (c->rbuf && left == 0) {
        kp_conn_drop_read_buffer(c);
    }
}

void kp_conn_drop_read_buffer(kp_http_conn_t *c)
{
    if (c->rbuf != read_scratch)
        free(c->rbuf);
    c->rbuf = NULL;
    c->rpos = c->rlen = 0;
}

static void conn_process(kp_http_conn_t *c)
{
    if (c->processing) {
        c->process_again = 1;
        return;
    }
    c->processing = 1;
    do {
        c->process_again = 0;
        while (c->state != CONN_CLOSING && conn_may_parse(c)) {
            size_t avail = c->rlen - c->rpos;
            if (avail == 0 && !c->parser_pending)
                break;
            if (conn_check_preface(c) != 0)
                break;
            c->parser_pending = 0;
            const char *start = c->rbuf ? c->rbuf + c->rpos : "";
            c->exec_start = start;
            llhttp_errno_t err = llhttp_execute(&c->parser, start, avail);
            if (err == HPE_OK || err == HPE_PAUSED) {
                const char *end = err == HPE_OK ? start + avail : llhttp_get_error_pos(&c->parser);
                const char *s = end;
                while (s > start && (s[-1] == ' ' || s[-1] == '\t'))
                    s--;
                if (s > start)
                    c->parsed_ends_in_fold = s[-1] == '\n';
            }
            if (err == HPE_OK) {
                c->rpos = c->rlen;
            } else if (err == HPE_PAUSED) {
                c->rpos += (size_t)(llhttp_get_error_pos(&c->parser) - start);
                llhttp_resume(&c->parser);
                c->parser_pending = 1;
            } else {
                conn_parse_error(c, err);
                break;
            }
            if (c->head_ready && !c->dispatched) {
                conn_dispatch(c);
                if (c->body_done && c->state == CONN_IN_REQUEST)
                    c->body_end_due = 1;
            }
            deliver_body_end(c);
            if (c->body_done && c->response_done)
                break;
        }
        deliver_body_end(c);
    } while (c->process_again && c->state != CONN_CLOSING);
    c->processing = 0;
    settle_read_buffer(c);
    if (c->state != CONN_CLOSING)
        kp_conn_update_reading(c);
}

/* --- reading --- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    kp_http_conn_t *c = h->data;
    if (c->state == CONN_LINGERING || c->state == CONN_TUNNEL || c->state == CONN_H2 ||
        c->rpos == c->rlen) {
        /* Consumed (or discarded) before on_read returns. */
        if (c->state != CONN_LINGERING)
            kp_conn_drop_read_buffer(c);
        buf->base = read_scratch;
        buf->len = READ_BUF_SIZE;
        return;
    }
    if (c->rpos > 0 && c->rlen == READ_BUF_SIZE) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    buf->base = c->rbuf + c->rlen;
    buf->len = READ_BUF_SIZE - c->rlen;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    kp_http_conn_t *c = stream->data;
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_LINGERING) {
        if (nread < 0)
            kp_conn_close(c);
        return;
    }
    if (c->state == CONN_H2) {
        if (nread < 0)
            kp_conn_close(c);
        else if (nread > 0 && c->h2)
            kp_h2_recv(c->h2, buf->base, (size_t)nread);
        return;
    }
    if (nread < 0) {
        if (c->state == CONN_TUNNEL) {
            c->reading = 0;
            uv_read_stop(stream);
            if (c->ops && c->ops->on_tunnel_data)
                c->ops->on_tunnel_data(c->ctx, NULL, 0);
            return;
        }
        if (nread == UV_EOF && c->state == CONN_READING_HEAD && c->rlen == c->rpos) {
            kp_conn_close(c); /* a keep-alive connection the client ended */
            return;
        }
        if (nread == UV_EOF && c->state == CONN_READING_HEAD) {
            llhttp_errno_t err = llhttp_finish(&c->parser);
            if (err != HPE_OK) {
                conn_parse_error(c, err);
                return;
            }
        }
        kp_conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == CONN_TUNNEL) {
        if (c->ops && c->ops->on_tunnel_data)
            c->ops->on_tunnel_data(c->ctx, buf->base, (size_t)nread);
        return;
    }
    if (buf->base == read_scratch) {
        c->rbuf = read_scratch;
        c->rpos = 0;
        c->rlen = (size_t)nread;
    } else {
        c->rlen += (size_t)nread;
    }
    conn_process(c);
}

void kp_conn_update_reading(kp_http_conn_t *c)
{
    int want;
    if (c->state == CONN_TUNNEL)
        want = !c->tunnel_paused;
    else if (c->state == CONN_LINGERING || c->state == CONN_H2)
        want = 1;
    else
        want = c->rlen < READ_BUF_SIZE; /* keeps watching for EOF while busy */
    if (c->state == CONN_IN_REQUEST && c->body_wanted && c->body_paused)
        want = 0;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* --- the handler's side --- */

void kp_http_conn_bind(kp_http_conn_t *c, const kp_http_request_ops_t *ops, void *ctx)
{
    c->ops = ops;
    c->ctx = ctx;
}

void kp_http_conn_read_body(kp_http_conn_t *c)
{
    if (c->h2s) {
        kp_h2_stream_read_body(c->h2s);
        return;
    }
    if (c->state != CONN_IN_REQUEST)
        return;
    if (!c->continue_sent && c->req.has_body && !c->body_done) {
        const kp_http_header_t *e = kp_http_header_find(c->req.headers, c->req.n_headers, "expect");
        c->continue_sent = 1;
        if (e && kp_http_name_eq(e->value, e->value_len, "100-continue")) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
            kp_conn_write(c, &b, 1);
            c->bytes_sent = 0;
        }
    }
    c->body_wanted = 1;
    c->body_paused = 0;
    if (c->body_done)
        c->body_end_due = 1;
    conn_process(c);
}

void kp_http_conn_pause_body(kp_http_conn_t *c)
{
    if (c->h2s) {
        kp_h2_stream_pause_body(c->h2s);
        return;
    }
    c->body_paused = 1;
    kp_conn_update_reading(c);
}

/* --- new connections (the listener is listener.c) --- */

kp_http_conn_t *kp_http_conn_new(kp_http_server_t *s)
{
    kp_http_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (s->opts.budget)
        s->opts.budget->n_conns++;
    if (s->n_conns > s->peak_conns)
        s->peak_conns = s->n_conns;
    kp_http_head_init(&c->head);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.lenient_flags |= LENIENT_VERSION;
    c->parser.data = c;
    return c;
}

void kp_http_conn_accepted(kp_http_conn_t *c)
{
    kp_http_server_t *s = c->server;
    const kp_http_conn_budget_t *b = s->opts.budget;
    if (b ? b->n_conns > b->max_connections : s->n_conns > s->opts.max_connections) {
        /* Refusing cleanly: the client sees its connection closed at once
         * instead of hanging in an accept queue. */
        kp_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage peer;
    int len = sizeof peer;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0) {
        if (peer.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&peer, c->peer_ip, sizeof c->peer_ip);
            c->peer_port = ntohs(((struct sockaddr_in6 *)&peer)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&peer, c->peer_ip, sizeof c->peer_ip);
            c->peer_port = ntohs(((struct sockaddr_in *)&peer)->sin_port);
        }
    }
    conn_wait_next_request(c);
    /* The first request's head is due within the header timeout from the
     * accept, as Go's ReadHeaderTimeout counts it: a connection that
     * never speaks must not hold a slot for the whole keep-alive time. */
    uv_timer_start(&c->timer, on_idle_timeout, s->opts.header_timeout_ms, 0);
}

void kp_http_server_close_idle(kp_http_server_t *s)
{
    kp_http_conn_t *next;
    for (kp_http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        if (c->state == CONN_READING_HEAD && c->rlen == c->rpos)
            kp_conn_close(c);
        else if (c->state == CONN_H2 && c->h2)
            kp_h2_drain(c->h2);
    }
}

size_t kp_http_server_busy(const kp_http_server_t *s)
{
    size_t n = 0;
    for (const kp_http_conn_t *c = s->conns; c; c = c->next)
        if (c->state == CONN_IN_REQUEST || c->state == CONN_TUNNEL ||
            (c->state == CONN_H2 && c->h2 && kp_h2_busy_streams(c->h2) > 0))
            n++;
    return n;
}

static void on_listener_closed(uv_handle_t *h)
{
    kp_http_server_t *s = h->data;
    if (s->n_conns == 0 && s->on_closed) {
        void (*cb)(kp_http_server_t *) = s->on_closed;
        s->on_closed = NULL;
        cb(s);
    }
}

void kp_http_server_close(kp_http_server_t *s, void (*on_closed)(kp_http_server_t *s))
{
    s->on_closed = on_closed;
    if (s->accepting) {
        s->accepting = 0;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    } else if (s->n_conns == 0 && on_closed) {
        s->on_closed = NULL;
        on_closed(s);
        return;
    }
    kp_http_conn_t *next;
    for (kp_http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        kp_conn_close(c);
    }
}
