/* HTTP requests other than the WebSocket: routing, the query-driven answers
 * (sleep, status, bytes, drip, hang), body counting, /headers and /stats.
 *
 * A request that is answered at once needs no state. Any other gets an
 * hw_req_t, bound to the connection, that lives until its response ended or
 * the engine reported the connection gone (on_abort); either way exactly one
 * call to req_finish leaves the in-flight count and closes the timer, and
 * the memory goes back to the app's free list in the close callback, so it
 * stays valid for the rest of the call chain that finished it. */
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "query.h"

#define DRIP_INTERVAL_MS 10

typedef enum {
    REQ_BODY,     /* reading the request body */
    REQ_SLEEPING, /* sleep= timer running */
    REQ_SENDING,  /* bytes= body going out as the connection drains */
    REQ_DRIPPING, /* drip= timer sending a byte per tick */
    REQ_HANGING,  /* hang=1: waiting for the client to leave */
    REQ_DONE,     /* finished; timer closing */
} req_state_t;

typedef enum { ROUTE_HELLO, ROUTE_HEADERS, ROUTE_STATS, ROUTE_STATS_RESET, ROUTE_WS } route_t;

struct hw_req {
    hw_app_t *app;
    kp_http_request_t *http; /* valid until the response ends or on_abort */
    kp_http_conn_t *conn;
    uv_timer_t timer;
    req_state_t state;
    route_t route;
    hw_query_t query;
    int had_body;
    uint64_t received;  /* request body bytes */
    uint64_t remaining; /* response body bytes still to send */
    hw_req_t *next_free;
};

static const char text_plain[] = "text/plain; charset=utf-8";
static const char octet_stream_hdr[] = "Content-Type: application/octet-stream\r\n";

/* --- answers --- */

/* RFC 9110 §6.4.1, §15.3.5, §15.4.5: HEAD, 204 and 304 carry no body; 204
 * and 304 not even a Content-Length for one. */
static int status_has_no_body(int status)
{
    return status == 204 || status == 304;
}

static void respond_text(kp_http_conn_t *conn, int status, const char *type, const char *body,
                         size_t len)
{
    if (status_has_no_body(status)) {
        kp_http_conn_send_head(conn, status, NULL, 0, -2);
        kp_http_conn_send_end(conn);
        return;
    }
    kp_http_conn_respond(conn, status, type, body, len);
}

static size_t headers_text(const kp_http_request_t *http, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < http->n_headers; i++) {
        const kp_http_header_t *h = &http->headers[i];
        if (n + h->name_len + h->value_len + 3 > cap)
            break; /* cannot happen: cap covers the largest head */
        memcpy(out + n, h->name, h->name_len);
        n += h->name_len;
        memcpy(out + n, ": ", 2);
        n += 2;
        memcpy(out + n, h->value, h->value_len);
        n += h->value_len;
        out[n++] = '\n';
    }
    return n;
}

/* The small text answer for a request whose parameters ask for nothing
 * longer. */
static void respond_plain(hw_app_t *app, kp_http_request_t *http, route_t route, int status,
                          int had_body, uint64_t received)
{
    if (route == ROUTE_HEADERS) {
        size_t n = headers_text(http, app->scratch, sizeof app->scratch);
        respond_text(http->conn, status, text_plain, app->scratch, n);
    } else if (had_body) {
        char msg[48];
        int n = snprintf(msg, sizeof msg, "received %llu bytes\n", (unsigned long long)received);
        respond_text(http->conn, status, text_plain, msg, (size_t)n);
    } else {
        respond_text(http->conn, status, text_plain, app->hello, app->hello_len);
    }
}

/* --- request state --- */

static void on_req_closed(uv_handle_t *h)
{
    hw_req_t *r = h->data;
    r->next_free = r->app->free_reqs;
    r->app->free_reqs = r;
}

static hw_req_t *req_new(hw_app_t *app, kp_http_request_t *http)
{
    hw_req_t *r = app->free_reqs;
    if (r)
        app->free_reqs = r->next_free;
    else if (!(r = malloc(sizeof *r)))
        return NULL;
    memset(r, 0, sizeof *r);
    r->app = app;
    r->http = http;
    r->conn = http->conn;
    uv_timer_init(app->loop, &r->timer);
    r->timer.data = r;
    return r;
}

static void req_finish(hw_req_t *r)
{
    if (r->state == REQ_DONE)
        return;
    r->state = REQ_DONE;
    r->http = NULL;
    r->conn = NULL;
    hw_counters_leave(&r->app->counters);
    uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

void hw_handlers_free(hw_app_t *app)
{
    while (app->free_reqs) {
        hw_req_t *r = app->free_reqs;
        app->free_reqs = r->next_free;
        free(r);
    }
}

/* --- bytes= and drip= bodies --- */

/* Sends while the connection's write queue is below the high-water mark;
 * on_writable calls again once it drained, so a 1 GiB body never holds
 * more than about KP_HTTP_HIGH_WATER + HW_FILL_SIZE in memory. */
static void req_pump(hw_req_t *r)
{
    while (r->state == REQ_SENDING && r->remaining > 0 &&
           kp_http_conn_write_queue(r->conn) < KP_HTTP_HIGH_WATER) {
        size_t n = r->remaining < HW_FILL_SIZE ? (size_t)r->remaining : HW_FILL_SIZE;
        r->remaining -= n;
        kp_http_conn_send_body(r->conn, r->app->fill, n); /* may abort: state re-checked */
    }
    if (r->state == REQ_SENDING && r->remaining == 0) {
        kp_http_conn_send_end(r->conn);
        req_finish(r);
    }
}

static void on_drip(uv_timer_t *t)
{
    hw_req_t *r = t->data;
    if (r->state != REQ_DRIPPING)
        return;
    r->remaining--;
    kp_http_conn_send_body(r->conn, r->app->fill, 1);
    if (r->state == REQ_DRIPPING && r->remaining == 0) {
        kp_http_conn_send_end(r->conn);
        req_finish(r);
    }
}

/* Head with Content-Length, then the body as the mode dictates. */
static void req_start_body(hw_req_t *r, uint64_t len, req_state_t mode)
{
    int status = r->query.status;
    if (status_has_no_body(status)) {
        kp_http_conn_send_head(r->conn, status, NULL, 0, -2);
        kp_http_conn_send_end(r->conn);
        req_finish(r);
        return;
    }
    kp_http_conn_send_head(r->conn, status, octet_stream_hdr, sizeof octet_stream_hdr - 1,
                           (int64_t)len);
    if (r->state == REQ_DONE)
        return; /* the head's write failed */
    if (len == 0 || r->http->method_id == HTTP_HEAD) {
        kp_http_conn_send_end(r->conn);
        req_finish(r);
        return;
    }
    r->remaining = len;
    r->state = mode;
    if (mode == REQ_SENDING) {
        req_pump(r);
    } else {
        on_drip(&r->timer);
        if (r->state == REQ_DRIPPING)
            uv_timer_start(&r->timer, on_drip, DRIP_INTERVAL_MS, DRIP_INTERVAL_MS);
    }
}

/* After the body and the sleep: the answer itself. */
static void req_answer(hw_req_t *r)
{
    const hw_query_t *q = &r->query;
    if (q->hang) {
        r->state = REQ_HANGING;
    } else if (q->has_drip) {
        req_start_body(r, q->drip, REQ_DRIPPING);
    } else if (q->has_bytes) {
        req_start_body(r, q->bytes, REQ_SENDING);
    } else {
        respond_plain(r->app, r->http, r->route, q->status, r->had_body, r->received);
        req_finish(r);
    }
}

static void on_sleep_done(uv_timer_t *t)
{
    hw_req_t *r = t->data;
    if (r->state == REQ_SLEEPING)
        req_answer(r);
}

static void req_after_body(hw_req_t *r)
{
    if (r->query.sleep_ms > 0) {
        r->state = REQ_SLEEPING;
        uv_timer_start(&r->timer, on_sleep_done, r->query.sleep_ms, 0);
    } else {
        req_answer(r);
    }
}

/* --- engine callbacks --- */

static void on_body(void *ctx, const char *data, size_t len)
{
    hw_req_t *r = ctx;
    r->received += len;
}

static void on_body_end(void *ctx)
{
    hw_req_t *r = ctx;
    if (r->state == REQ_BODY)
        req_after_body(r);
}

static void on_writable(void *ctx)
{
    hw_req_t *r = ctx;
    if (r->state == REQ_SENDING)
        req_pump(r);
}

static void on_abort(void *ctx)
{
    req_finish(ctx);
}

static const kp_http_request_ops_t req_ops = {
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_writable = on_writable,
    .on_abort = on_abort,
};

/* --- routing --- */

static route_t route_of(const char *path, size_t len)
{
#define IS(s) (len == sizeof(s) - 1 && memcmp(path, s, len) == 0)
    if (IS("/headers"))
        return ROUTE_HEADERS;
    if (IS("/stats"))
        return ROUTE_STATS;
    if (IS("/stats/reset"))
        return ROUTE_STATS_RESET;
    if (IS("/ws"))
        return ROUTE_WS;
    return ROUTE_HELLO;
#undef IS
}

/* /stats and /stats/reset are not counted, so that reading the counters
 * does not move them. A body on them is not read; the engine then closes
 * the connection after the answer. */
static void handle_stats(hw_app_t *app, kp_http_request_t *http, route_t route)
{
    char json[128];
    if (route == ROUTE_STATS_RESET)
        hw_counters_reset(&app->counters);
    size_t n = hw_counters_json(&app->counters, json, sizeof json);
    kp_http_conn_respond(http->conn, 200, "application/json", json, n);
}

void hw_on_request(kp_http_request_t *http, void *ctx)
{
    hw_app_t *app = ctx;
    const char *path, *qs;
    size_t path_len, qs_len;
    hw_target_split(http->url, http->url_len, &path, &path_len, &qs, &qs_len);
    route_t route = route_of(path, path_len);
    int get = http->method_id == HTTP_GET || http->method_id == HTTP_HEAD;

    if (route == ROUTE_WS) {
        hw_ws_handle(app, http);
        return;
    }
    if ((route == ROUTE_STATS && get) ||
        (route == ROUTE_STATS_RESET && http->method_id == HTTP_POST)) {
        handle_stats(app, http, route);
        return;
    }
    if (route == ROUTE_STATS || route == ROUTE_STATS_RESET)
        route = ROUTE_HELLO; /* other methods: an ordinary request */

    hw_counters_enter(&app->counters);
    hw_query_t q;
    char err[160];
    if (hw_query_parse(qs, qs_len, &q, err, sizeof err) != 0) {
        kp_http_conn_respond(http->conn, 400, text_plain, err, strlen(err));
        hw_counters_leave(&app->counters);
        return;
    }
    /* Content-Length: 0 is a body too, of zero bytes. */
    int had_body = http->chunked || http->content_length >= 0;
    if (!http->has_body && hw_query_is_plain(&q)) {
        respond_plain(app, http, route, q.status, had_body, 0);
        hw_counters_leave(&app->counters);
        return;
    }
    hw_req_t *r = req_new(app, http);
    if (!r) {
        static const char msg[] = "out of memory\n";
        kp_http_conn_respond(http->conn, 503, text_plain, msg, sizeof msg - 1);
        hw_counters_leave(&app->counters);
        return;
    }
    r->route = route;
    r->query = q;
    r->had_body = had_body;
    kp_http_conn_bind(http->conn, &req_ops, r);
    if (http->has_body) {
        r->state = REQ_BODY;
        kp_http_conn_read_body(http->conn);
    } else {
        req_after_body(r);
    }
}
