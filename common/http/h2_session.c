/* The nghttp2 server session of one h2c connection: fed from the
 * connection's reads (nghttp2_session_mem_recv), drained into its writes
 * (nghttp2_session_mem_send), with the defences nghttp2 leaves to us
 * (reset and control-frame floods, stalled windows, slow header blocks)
 * and the graceful drain. Streams themselves are h2_stream.c's. */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "h2.h"

/* Frames are copied here and written in one go: mem_send hands them over
 * a few bytes at a time. One per thread: a loop runs one pump at a time. */
static _Thread_local uint8_t out_scratch[64 * 1024];

static void session_fatal(kp_h2_session_t *s, uint32_t code);
static void on_session_closed(uv_handle_t *h);

static kp_h2_stream_t *stream_of(kp_h2_session_t *s, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(s->ng, id) : NULL;
}

/* --- defences: token buckets per connection --- */

static void refill(kp_h2_session_t *s)
{
    uint64_t now = kp_now_ns();
    double secs = (double)(now - s->tokens_at_ns) / 1e9;
    s->tokens_at_ns = now;
    s->reset_tokens += secs * KP_H2_RESET_RATE;
    if (s->reset_tokens > KP_H2_RESET_BURST)
        s->reset_tokens = KP_H2_RESET_BURST;
    s->control_tokens += secs * KP_H2_CONTROL_RATE;
    if (s->control_tokens > KP_H2_CONTROL_BURST)
        s->control_tokens = KP_H2_CONTROL_BURST;
}

/* Spends one token; past the budget the peer is told to calm down and
 * the connection ends (CVE-2023-44487 and control-frame floods). */
static void spend(kp_h2_session_t *s, double *tokens, const char *what)
{
    refill(s);
    *tokens -= 1;
    if (*tokens < 0 && !s->fatal) {
        kp_log_kv(KP_LOG_WARN, "HTTP/2 client over its frame budget; closing its connection",
                  "frames", what, "peer", s->c ? s->c->peer_ip : "", NULL);
        session_fatal(s, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

/* --- nghttp2 callbacks --- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    kp_h2_session_t *s = ud;
    if (!s->c)
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* the connection went meanwhile */
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    kp_h2_stream_t *st = kp_h2_stream_new(s, f->hd.stream_id);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    kp_h2_session_t *s = ud;
    kp_h2_stream_t *st = stream_of(s, f->hd.stream_id);
    /* Request trailers (a second HEADERS) are not passed on. */
    if (!st || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    kp_h2_stream_add_field(st, (const char *)name, namelen, (const char *)value, valuelen);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    kp_h2_session_t *s = ud;
    if (!s->c)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    kp_h2_stream_t *st = stream_of(s, f->hd.stream_id);
    int end_stream = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (!st)
            break;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
            kp_h2_stream_dispatch(st, end_stream);
        else if (end_stream)
            kp_h2_stream_on_end(st);
        break;
    case NGHTTP2_DATA:
        if (st && end_stream)
            kp_h2_stream_on_end(st);
        break;
    case NGHTTP2_RST_STREAM:
        /* Rapid reset abuses work started then dropped: a reset of a
         * stream already answered (some clients send one after every
         * response) costs nothing and spends no budget. */
        if (st && !st->conn.response_done)
            spend(s, &s->reset_tokens, "RST_STREAM");
        break;
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            spend(s, &s->control_tokens, "SETTINGS");
        else
            s->settings_sent_ns = 0;
        break;
    case NGHTTP2_PING:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            spend(s, &s->control_tokens, "PING");
        else if (s->notice_sent && !s->goaway_sent)
            s->drain_at_ns = kp_now_ns(); /* one round trip: the final GOAWAY is due */
        break;
    default:
        break;
    }
    (void)ng;
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    kp_h2_session_t *s = ud;
    if (!s->c)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    kp_h2_stream_t *st = stream_of(s, id);
    if (!st) {
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    kp_h2_stream_on_data(st, (const char *)data, len);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    /* RFC 9113 §8.1: a response complete before the request is may be
     * followed by RST_STREAM NO_ERROR, so the client stops sending. */
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(ng, f->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    kp_h2_session_t *s = ud;
    kp_h2_stream_t *st = stream_of(s, id);
    if (st) {
        nghttp2_session_set_stream_user_data(ng, id, NULL);
        kp_h2_stream_on_close(st, code);
    }
    return 0;
}

/* --- life --- */

static void reap(kp_h2_session_t *s)
{
    while (s->dead) {
        kp_h2_stream_t *st = s->dead;
        s->dead = st->next;
        kp_h2_stream_retire(st);
    }
}

/* Framing first: streams it closes are freed right after, as nothing
 * but this callback is on the stack. */
static void on_soon(uv_timer_t *t)
{
    kp_h2_session_t *s = t->data;
    if (s->pump_due) {
        s->pump_due = 0;
        kp_h2_pump(s);
    }
    reap(s);
}

static void arm_soon(kp_h2_session_t *s)
{
    if (s->c && !uv_is_active((uv_handle_t *)&s->soon))
        uv_timer_start(&s->soon, on_soon, 0, 0);
}

void kp_h2_reap_soon(kp_h2_session_t *s)
{
    arm_soon(s);
}

void kp_h2_pump_soon(kp_h2_session_t *s)
{
    if (!s->c)
        return;
    if (s->in_recv || s->pumping) {
        s->pump_again = 1; /* the pump under way (or the read's) frames it */
        return;
    }
    s->pump_due = 1;
    arm_soon(s);
}

static kp_h2_session_t *session_new(kp_http_conn_t *c)
{
    kp_h2_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        free(s);
        return NULL;
    }
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        free(s);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    /* Request bytes are acknowledged only once a handler took them: the
     * window is the backpressure. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_send_header_block_length(opt, KP_HTTP_MAX_HEAD);
    /* CVE-2024-28182 (Debian's 1.52.0-1+deb12u2 and later). */
    nghttp2_option_set_max_continuations(opt, 8);
    /* Our own reset budget answers first, with ENHANCE_YOUR_CALM. */
    nghttp2_option_set_stream_reset_rate_limit(opt, KP_H2_RESET_BURST * 5, KP_H2_RESET_RATE * 5);
    int rc = nghttp2_session_server_new2(&s->ng, cbs, s, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rc != 0) {
        free(s);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, KP_H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, KP_H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, KP_H2_MAX_HEADER_LIST},
    };
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, KP_H2_CONN_WINDOW) !=
            0) {
        nghttp2_session_del(s->ng);
        free(s);
        return NULL;
    }
    s->c = c;
    s->reset_tokens = KP_H2_RESET_BURST;
    s->control_tokens = KP_H2_CONTROL_BURST;
    s->tokens_at_ns = s->idle_since_ns = s->settings_sent_ns = kp_now_ns();
    uv_timer_init(c->server->loop, &s->soon);
    s->soon.data = s;
    return s;
}

static void on_conn_timer(uv_timer_t *t)
{
    kp_http_conn_t *c = t->data;
    if (c->state == CONN_H2 && c->h2)
        kp_h2_on_timer(c->h2);
}

/* The connection timer ticks while the connection speaks HTTP/2: idle,
 * header, stall and drain deadlines are checked on each tick. */
static void start_ticking(kp_http_conn_t *c)
{
    uint64_t tick = c->server->opts.header_timeout_ms / 4;
    if (tick > 1000)
        tick = 1000;
    if (tick < 20)
        tick = 20;
    uv_timer_start(&c->timer, on_conn_timer, tick, tick);
}

int kp_h2_start(kp_http_conn_t *c)
{
    kp_h2_session_t *s = session_new(c);
    if (!s) {
        kp_conn_close(c);
        return -1;
    }
    c->h2 = s;
    c->state = CONN_H2;
    start_ticking(c);
    size_t left = c->rlen - c->rpos;
    const char *data = c->rbuf + c->rpos;
    c->rpos = c->rlen;
    kp_h2_recv(s, data, left);
    return 0;
}

/* RFC 4648 §5 (base64url, no padding) into out; its length, or -1. */
static ssize_t base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        int v;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '-' || ch == '+')
            v = 62;
        else if (ch == '_' || ch == '/')
            v = 63;
        else if (ch == '=')
            break;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)n;
}

int kp_h2_upgrade_wanted(const kp_http_request_t *req, const char **settings, size_t *settings_len)
{
    const kp_http_header_t *hs = req->headers;
    size_t n = req->n_headers, n_settings = 0;
    const kp_http_header_t *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (kp_http_name_eq(hs[i].name, hs[i].name_len, "http2-settings")) {
            found = &hs[i];
            n_settings++;
        }
    /* RFC 7540 §3.2: exactly one HTTP2-Settings, named in Connection. */
    if (req->http_major != 1 || req->has_body || n_settings != 1 ||
        !kp_http_head_has_token(hs, n, "upgrade", "h2c") ||
        !kp_http_head_has_token(hs, n, "connection", "upgrade") ||
        !kp_http_head_has_token(hs, n, "connection", "http2-settings"))
        return 0;
    *settings = found->value;
    *settings_len = found->value_len;
    return 1;
}

int kp_h2_upgrade(kp_http_conn_t *c, const char *settings, size_t settings_len)
{
    uint8_t payload[256];
    ssize_t n = base64url_decode(settings, settings_len, payload, sizeof payload);
    if (n < 0 || n % 6 != 0)
        return -1;
    kp_h2_session_t *s = session_new(c);
    if (!s)
        return -1;
    kp_h2_stream_t *st = kp_h2_stream_new(s, 1);
    if (!st || nghttp2_session_upgrade2(s->ng, payload, (size_t)n, c->req.method_id == HTTP_HEAD,
                                        st) != 0) {
        s->c = NULL;
        uv_close((uv_handle_t *)&s->soon, on_session_closed);
        return -1;
    }
    static const char switching[] =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)switching, sizeof switching - 1);
    kp_conn_write(c, &b, 1);
    c->h2 = s;
    c->state = CONN_H2;
    c->keep_alive = 1;
    start_ticking(c);
    kp_h2_stream_from_http1(st, &c->req);
    /* What followed the request (the client preface) is HTTP/2's. */
    size_t left = c->rlen - c->rpos;
    const char *data = c->rbuf ? c->rbuf + c->rpos : "";
    c->rpos = c->rlen;
    if (left)
        kp_h2_recv(s, data, left);
    else
        kp_h2_pump(s);
    return 0;
}

static void session_fatal(kp_h2_session_t *s, uint32_t code)
{
    if (s->fatal)
        return;
    s->fatal = 1;
    nghttp2_session_terminate_session(s->ng, code);
    kp_h2_pump(s);
}

void kp_h2_recv(kp_h2_session_t *s, const char *data, size_t len)
{
    s->in_recv++;
    ssize_t rv = nghttp2_session_mem_recv(s->ng, (const uint8_t *)data, len);
    s->in_recv--;
    if (!s->c)
        return;
    if (rv < 0) {
        kp_log_kv(KP_LOG_DEBUG, "HTTP/2 connection error", "error", nghttp2_strerror((int)rv),
                  "peer", s->c->peer_ip, NULL);
        /* nghttp2 has queued the GOAWAY that says why (most errors). */
        s->fatal = 1;
        kp_h2_pump(s);
        if (s->c)
            kp_conn_finish_and_close(s->c);
        return;
    }
    kp_h2_pump(s);
}

static void flush(kp_h2_session_t *s, size_t used)
{
    if (used && s->c) {
        uv_buf_t b = uv_buf_init((char *)out_scratch, (unsigned)used);
        kp_conn_write(s->c, &b, 1);
    }
}

static void fire_writable(kp_h2_session_t *s)
{
    kp_h2_stream_t *next;
    for (kp_h2_stream_t *st = s->streams; st && s->c; st = next) {
        next = st->next;
        if (!st->writable_due)
            continue;
        st->writable_due = 0;
        const kp_http_request_ops_t *ops = st->conn.ops;
        if (ops && ops->on_writable)
            ops->on_writable(st->conn.ctx);
    }
}

void kp_h2_pump(kp_h2_session_t *s)
{
    if (!s->c)
        return;
    if (s->in_recv || s->pumping) {
        s->pump_again = 1;
        return;
    }
    s->pumping = 1;
    s->pump_due = 0;
    do {
        s->pump_again = 0;
        size_t used = 0;
        while (s->c) {
            if (uv_stream_get_write_queue_size((uv_stream_t *)&s->c->tcp) > KP_HTTP_HIGH_WATER)
                break; /* on_written resumes */
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(s->ng, &p);
            if (n <= 0) {
                if (n < 0 && s->c) {
                    s->fatal = 1;
                    kp_conn_close(s->c);
                }
                break;
            }
            if (used + (size_t)n > sizeof out_scratch) {
                flush(s, used);
                used = 0;
            }
            if ((size_t)n > sizeof out_scratch) {
                uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
                if (s->c)
                    kp_conn_write(s->c, &b, 1);
                continue;
            }
            memcpy(out_scratch + used, p, (size_t)n);
            used += (size_t)n;
        }
        flush(s, used);
        fire_writable(s);
    } while (s->pump_again && s->c);
    s->pumping = 0;
    if (s->c && !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
        kp_conn_finish_and_close(s->c);
}

void kp_h2_on_written(kp_h2_session_t *s)
{
    if (uv_stream_get_write_queue_size((uv_stream_t *)&s->c->tcp) < KP_HTTP_LOW_WATER)
        kp_h2_pump(s);
}

static void on_session_closed(uv_handle_t *h)
{
    kp_h2_session_t *s = h->data;
    reap(s);
    while (s->streams) {
        kp_h2_stream_t *st = s->streams;
        s->streams = st->next;
        kp_h2_stream_free(st);
    }
    while (s->spare) {
        kp_h2_stream_t *st = s->spare;
        s->spare = st->next;
        kp_h2_stream_free(st);
    }
    nghttp2_session_del(s->ng);
    free(s);
}

void kp_h2_close(kp_h2_session_t *s)
{
    kp_http_conn_t *c = s->c;
    if (!c)
        return;
    /* What streams queued for the next turn (a drain closes right after
     * the last response ended), then a last GOAWAY, if the socket takes
     * them now: the client then knows which streams were not processed. */
    if (!s->fatal && !s->in_recv && !s->pumping) {
        if (!s->goaway_sent)
            nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR,
                                  NULL, 0);
        const uint8_t *p;
        ssize_t n;
        s->pumping = 1; /* a handler called from here must not pump again */
        while ((n = nghttp2_session_mem_send(s->ng, &p)) > 0) {
            uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
            if (c->pending_writes || uv_try_write((uv_stream_t *)&c->tcp, &b, 1) != n)
                break;
        }
        s->pumping = 0;
    }
    s->c = NULL;
    c->h2 = NULL;
    for (kp_h2_stream_t *st = s->streams; st; st = st->next)
        kp_h2_stream_on_conn_gone(st);
    uv_close((uv_handle_t *)&s->soon, on_session_closed);
}

static void final_goaway(kp_h2_session_t *s)
{
    s->goaway_sent = 1;
    s->drain_at_ns = 0;
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    kp_h2_pump(s);
}

void kp_h2_drain(kp_h2_session_t *s)
{
    if (!s->c || s->notice_sent || s->fatal)
        return;
    /* RFC 9113 §6.8: a GOAWAY with the largest id first, so streams on
     * their way are still taken; after a round trip, the real one. */
    s->notice_sent = 1;
    s->drain_at_ns = kp_now_ns() + (uint64_t)KP_H2_DRAIN_GRACE_MS * 1000000;
    nghttp2_submit_shutdown_notice(s->ng);
    nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, NULL);
    kp_h2_pump(s);
}

size_t kp_h2_busy_streams(const kp_h2_session_t *s)
{
    size_t n = 0;
    for (const kp_h2_stream_t *st = s->streams; st; st = st->next)
        n += !st->conn.response_done;
    return n;
}

void kp_h2_on_timer(kp_h2_session_t *s)
{
    kp_http_conn_t *c = s->c;
    uint64_t now = kp_now_ns(), ms = 1000000;
    const kp_http_server_opts_t *o = &c->server->opts;
    if (s->drain_at_ns && now >= s->drain_at_ns && !s->goaway_sent) {
        final_goaway(s);
        if (!s->c)
            return;
    }
    if (s->settings_sent_ns && now - s->settings_sent_ns >= o->header_timeout_ms * ms) {
        /* RFC 9113 §6.5.3: our SETTINGS were never acknowledged. */
        session_fatal(s, NGHTTP2_SETTINGS_TIMEOUT);
        if (s->c)
            kp_conn_finish_and_close(s->c);
        return;
    }
    if (s->n_streams == 0) {
        /* Before the first stream the header timeout counts, as for
         * HTTP/1's first request; between streams, the keep-alive one. */
        uint64_t limit = nghttp2_session_get_last_proc_stream_id(s->ng) == 0
                             ? o->header_timeout_ms
                             : o->keepalive_timeout_ms;
        if (now - s->idle_since_ns >= limit * ms) {
            s->goaway_sent = 1;
            session_fatal(s, NGHTTP2_NO_ERROR);
            if (s->c)
                kp_conn_finish_and_close(s->c);
        }
        return;
    }
    kp_h2_stream_t *next;
    for (kp_h2_stream_t *st = s->streams; st && s->c; st = next) {
        next = st->next;
        if (st->headers_since_ns && now - st->headers_since_ns >= o->header_timeout_ms * ms) {
            /* A header block held open (CONTINUATION trickle). */
            session_fatal(s, NGHTTP2_ENHANCE_YOUR_CALM);
            if (s->c)
                kp_conn_finish_and_close(s->c);
            return;
        }
        int waiting =
            st->out.len > 0 && (nghttp2_session_get_stream_remote_window_size(s->ng, st->id) <= 0 ||
                                nghttp2_session_get_remote_window_size(s->ng) <= 0);
        if (!waiting) {
            st->stalled_since_ns = 0;
        } else if (!st->stalled_since_ns) {
            st->stalled_since_ns = now;
        } else if (now - st->stalled_since_ns >= o->stall_timeout_ms * ms) {
            /* The client stopped reading this stream: its bytes and the
             * work behind them are let go. */
            kp_h2_stream_cut(st, NGHTTP2_CANCEL);
        }
    }
}
