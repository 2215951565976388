/* App readiness prober on the libuv loop; see readiness.h. One attempt at
 * a time, on one socket and one timer embedded here; an attempt's result
 * is applied only once its socket is closed, so attempts never overlap and
 * nothing is freed while libuv still holds a handle. */
#include "readiness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "grpc_health.h"
#include "http/h2_upstream.h"
#include "http/h2_upstream_request.h"

/* Knative's pkg/queue/readiness constants. */
#define RD_AGGRESSIVE_INTERVAL_MS 50
#define RD_AGGRESSIVE_TIMEOUT_MS 100
#define RD_POLL_TIMEOUT_MS 10000
/* (ours) background probing until first ready: every 2 ms while a fast
 * app is likely to come up (a refused loopback connect costs microseconds),
 * so a waiting activator learns readiness within milliseconds; then 25 ms
 * for slow starters. */
#define RD_BACKGROUND_FAST_INTERVAL_MS 2
#define RD_BACKGROUND_FAST_PERIOD_MS 3000
#define RD_BACKGROUND_INTERVAL_MS 25

typedef enum {
    RD_IDLE,       /* no socket; the timer, if running, starts the next attempt */
    RD_CONNECTING, /* the timer is the attempt's timeout */
    RD_AWAIT_STATUS,
    RD_CLOSING, /* result known; waiting for the socket's close callback */
    RD_H2_GET,  /* the GET over h2c, or the gRPC health check (no socket here) */
} rd_state_t;

struct kp_readiness {
    uv_loop_t *loop;
    kp_probe_kind_t kind;
    struct sockaddr_storage addr;
    char target[80]; /* host:port, for messages */
    char *request;   /* the whole HTTP probe request (gRPC: the request body), built once */
    size_t request_len;
    /* ENABLE_HTTP2_AUTO_DETECTION (Knative's NewProbeWithHTTP2AutoDetection):
     * each attempt first asks OPTIONS with Upgrade: h2c; 101 + Upgrade: h2c
     * sends the GET over h2c, a 2xx/3xx is success at once (HTTP/1). */
    int detect_h2;
    int upgrade_seen; /* this attempt's OPTIONS got 101 + Upgrade: h2c */
    kp_h2c_pool_t *h2_pool;
    kp_h2c_stream_t *h2_stream;
    kp_h2c_request_head_t h2_get; /* the h2c GET's (or gRPC POST's) header list, built once */
    int grpc_status;              /* the gRPC call's grpc-status, -1 until it came */
    int aggressive;
    uint64_t attempt_timeout_ms;
    uint64_t poll_timeout_ms;
    int success_threshold, failure_threshold;

    int ready;
    int successes, failures; /* consecutive, across checks, as Knative's count */

    int background;        /* probing until first ready */
    uint64_t background_start;
    uint64_t run_deadline; /* aggressive run in progress until this loop time; 0 = none */
    unsigned run_failures;
    kp_readiness_waiter_t *head, *tail; /* waiting for the next answer, in order */
    kp_readiness_waiter_t *answering;   /* being answered now (cbs may cancel) */

    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    rd_state_t state;
    int result;
    uint64_t attempt_start;
    char rbuf[512];
    size_t rlen;
    char last_error[200];

    int closing;
    int open_handles; /* freed when the last one's close callback runs */
};

static void rd_start_attempt(kp_readiness_t *r);
static void rd_apply(kp_readiness_t *r, int ok);
static void rd_h2_start(kp_readiness_t *r);

/* ------------------------------------------------------------------ */
/* Waiter lists */

static int rd_linked(const kp_readiness_t *r, const kp_readiness_waiter_t *w)
{
    return w->prev != NULL || r->head == w || r->answering == w;
}

static void rd_unlink(kp_readiness_t *r, kp_readiness_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (r->head == w)
        r->head = w->next;
    else if (r->answering == w)
        r->answering = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else if (r->tail == w)
        r->tail = w->prev;
    w->next = w->prev = NULL;
}

static void rd_append(kp_readiness_t *r, kp_readiness_waiter_t *w)
{
    w->next = NULL;
    w->prev = r->tail;
    if (r->tail)
        r->tail->next = w;
    else
        r->head = w;
    r->tail = w;
}

/* Moves the current waiters aside to be answered, so that scheduling sees
 * only checks that arrive later. */
static void rd_take_waiters(kp_readiness_t *r)
{
    r->answering = r->head;
    r->head = r->tail = NULL;
}

/* Callbacks may check again (that waits for a later answer), cancel other
 * waiters, or close r (the rest are then dropped). */
static void rd_answer_taken(kp_readiness_t *r, int ready)
{
    kp_readiness_waiter_t *w;
    while (!r->closing && (w = r->answering) != NULL) {
        rd_unlink(r, w);
        w->cb(w, ready);
    }
}

/* ------------------------------------------------------------------ */
/* Scheduling */

static void rd_set_ready(kp_readiness_t *r, int ready)
{
    if (ready == r->ready)
        return;
    r->ready = ready;
    if (ready)
        kp_log(KP_LOG_INFO, "app is ready (%s probe to %s)",
               r->kind == KP_PROBE_HTTP   ? "http"
               : r->kind == KP_PROBE_GRPC ? "grpc"
                                          : "tcp",
               r->target);
    else
        kp_log(KP_LOG_WARN, "app is not ready: %s", r->last_error);
}

static int rd_wants_attempt(const kp_readiness_t *r)
{
    return r->background || r->run_deadline || (!r->aggressive && r->head);
}

static void rd_on_timer(uv_timer_t *t);

/* Next attempt after the previous one started plus the interval, or at
 * once if that time has passed (like a ticker, as wait.PollImmediate). */
static void rd_schedule(kp_readiness_t *r)
{
    if (r->closing || r->state != RD_IDLE)
        return;
    if (!rd_wants_attempt(r)) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t interval = RD_AGGRESSIVE_INTERVAL_MS;
    if (r->background)
        interval = uv_now(r->loop) - r->background_start < RD_BACKGROUND_FAST_PERIOD_MS
                       ? RD_BACKGROUND_FAST_INTERVAL_MS
                       : RD_BACKGROUND_INTERVAL_MS;
    uint64_t elapsed = uv_now(r->loop) - r->attempt_start;
    uv_timer_start(&r->timer, rd_on_timer, elapsed >= interval ? 0 : interval - elapsed, 0);
}

/* Applies a finished attempt's result (its socket is closed by now). */
static void rd_apply(kp_readiness_t *r, int ok)
{
    if (ok) {
        r->successes++;
        r->failures = 0;
    } else {
        r->successes = 0;
        r->failures++;
    }
    int answer = -1;
    if (r->aggressive) {
        /* Knative: count consecutive successes (kept across checks) until
         * they reach successThreshold; failureThreshold plays no part. */
        rd_set_ready(r, r->successes >= r->success_threshold);
        if (r->ready) {
            r->background = 0;
            if (r->run_deadline)
                answer = 1;
        } else if (r->run_deadline) {
            r->run_failures += !ok;
            if (uv_now(r->loop) >= r->run_deadline) {
                kp_log(KP_LOG_WARN, "aggressive probe error (failed %u times): %s", r->run_failures,
                       r->last_error);
                answer = 0;
            }
        }
        if (answer >= 0)
            r->run_deadline = 0;
    } else {
        if (!r->ready && r->successes >= r->success_threshold)
            rd_set_ready(r, 1);
        else if (r->ready && r->failures >= r->failure_threshold)
            rd_set_ready(r, 0);
        if (r->ready)
            r->background = 0;
        answer = r->ready;
    }
    /* Schedule before answering: a callback that checks again then sees a
     * consistent state and may start its attempt at once. */
    if (answer >= 0)
        rd_take_waiters(r);
    rd_schedule(r);
    if (answer >= 0)
        rd_answer_taken(r, answer);
}

/* ------------------------------------------------------------------ */
/* One attempt */

static void rd_maybe_free(kp_readiness_t *r)
{
    if (r->closing && r->open_handles == 0) {
        kp_h2c_request_head_free(&r->h2_get);
        free(r->request);
        free(r);
    }
}

static void rd_on_tcp_closed(uv_handle_t *h)
{
    kp_readiness_t *r = h->data;
    r->open_handles--;
    r->state = RD_IDLE;
    if (r->closing) {
        rd_maybe_free(r);
        return;
    }
    if (r->upgrade_seen) {
        r->upgrade_seen = 0;
        rd_h2_start(r);
        return;
    }
    rd_apply(r, r->result);
}

static void rd_finish(kp_readiness_t *r, int ok, const char *why, int uv_err)
{
    if (r->state != RD_CONNECTING && r->state != RD_AWAIT_STATUS)
        return;
    r->state = RD_CLOSING;
    r->result = ok;
    if (!ok)
        snprintf(r->last_error, sizeof r->last_error, "%s %s: %s",
                 r->kind == KP_PROBE_HTTP ? "GET" : "connect", r->target,
                 uv_err ? uv_strerror(uv_err) : why);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->tcp, rd_on_tcp_closed);
}

/* "HTTP/1.1 200 ..." -> 200; -1 when it is not a status line. */
static int rd_parse_status(const char *b, size_t n)
{
    if (n < 12 || memcmp(b, "HTTP/", 5) != 0 || b[5] < '0' || b[5] > '9' || b[6] != '.' ||
        b[7] < '0' || b[7] > '9' || b[8] != ' ')
        return -1;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (b[i] < '0' || b[i] > '9')
            return -1;
        code = code * 10 + (b[i] - '0');
    }
    if (n > 12 && b[12] != ' ' && b[12] != '\r' && b[12] != '\n')
        return -1;
    return code;
}

/* Knative's IsHTTPProbeUpgradingToH2C: 101 and Upgrade exactly "h2c". */
static int rd_upgrades_to_h2c(const char *b, size_t n)
{
    const char *p = b, *end = b + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            return 0;
        const char *line = p;
        p = eol + 1;
        size_t len = (size_t)(eol - line);
        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0)
            return 0; /* end of the head */
        if (len < 8 || strncasecmp(line, "upgrade:", 8) != 0)
            continue;
        const char *v = line + 8, *ve = line + len;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        return ve - v == 3 && memcmp(v, "h2c", 3) == 0;
    }
    return 0;
}

/* The answer to the OPTIONS upgrade request, once its head is in. */
static void rd_read_upgrade_answer(kp_readiness_t *r)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < r->rlen; i++)
        if (memcmp(r->rbuf + i, "\r\n\r\n", 4) == 0) {
            end = r->rbuf + i + 4;
            break;
        }
    if (!end && r->rlen < sizeof r->rbuf)
        return;
    int code = rd_parse_status(r->rbuf, r->rlen);
    char why[64];
    if (code == 101 && end && rd_upgrades_to_h2c(r->rbuf, (size_t)(end - r->rbuf))) {
        r->upgrade_seen = 1; /* the GET follows over h2c once this socket is closed */
        rd_finish(r, 0, "upgrading to h2c", 0);
    } else if (code >= 200 && code < 400) {
        rd_finish(r, 1, NULL, 0);
    } else if (code < 0) {
        rd_finish(r, 0, "malformed HTTP status line", 0);
    } else {
        snprintf(why, sizeof why, "HTTP probe did not respond Ready, got status code: %d", code);
        rd_finish(r, 0, why, 0);
    }
}

/* --- the GET over h2c --- */

static void rd_h2_end(kp_readiness_t *r, int ok, const char *why)
{
    if (r->state != RD_H2_GET)
        return;
    uv_timer_stop(&r->timer);
    if (r->h2_stream) {
        kp_h2c_stream_cancel(r->h2_stream);
        r->h2_stream = NULL;
    }
    r->state = RD_IDLE;
    r->result = ok;
    if (!ok && r->kind == KP_PROBE_GRPC)
        snprintf(r->last_error, sizeof r->last_error, "gRPC health check %s: %.96s", r->target,
                 why);
    else if (!ok)
        snprintf(r->last_error, sizeof r->last_error, "GET %s over h2c: %.64s", r->target, why);
    rd_apply(r, ok);
}

static void rd_h2_on_connected(void *ctx, int status)
{
    kp_readiness_t *r = ctx;
    if (status < 0) {
        r->h2_stream = NULL;
        rd_h2_end(r, 0, uv_strerror(status));
        return;
    }
    int grpc = r->kind == KP_PROBE_GRPC;
    if (kp_h2c_stream_submit(r->h2_stream, r->h2_get.nv, r->h2_get.n, grpc) != 0) {
        r->h2_stream = NULL;
        rd_h2_end(r, 0, "the connection took no new stream");
        return;
    }
    if (grpc) {
        kp_h2c_stream_write(r->h2_stream, r->request, r->request_len);
        kp_h2c_stream_end(r->h2_stream, NULL, 0);
    }
}

/* grpc-status among fields (a Trailers-Only response's head, or the
 * trailers): its value, or -1 when absent. */
static int rd_grpc_status_of(const kp_http_header_t *hs, size_t n)
{
    const kp_http_header_t *h = kp_http_header_find(hs, n, "grpc-status");
    if (!h || h->value_len == 0 || h->value_len > 4)
        return h ? 99 : -1;
    int v = 0;
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9')
            return 99;
        v = v * 10 + (h->value[i] - '0');
    }
    return v;
}

static void rd_h2_on_head(void *ctx, const kp_upstream_response_t *resp)
{
    kp_readiness_t *r = ctx;
    char why[64];
    if (r->kind == KP_PROBE_GRPC) {
        if (resp->status == 200) { /* the answer is in the body and the trailers */
            r->grpc_status = rd_grpc_status_of(resp->headers, resp->n_headers);
            return;
        }
        snprintf(why, sizeof why, "HTTP status %d (a gRPC answer is 200)", resp->status);
        rd_h2_end(r, 0, why);
        return;
    }
    snprintf(why, sizeof why, "HTTP probe did not respond Ready, got status code: %d",
             resp->status);
    rd_h2_end(r, resp->status >= 200 && resp->status < 400, why);
}

static void rd_h2_on_body(void *ctx, const char *data, size_t len)
{
    kp_readiness_t *r = ctx;
    if (len > sizeof r->rbuf - r->rlen) {
        rd_h2_end(r, 0, "a response larger than a HealthCheckResponse");
        return;
    }
    memcpy(r->rbuf + r->rlen, data, len);
    r->rlen += len;
}

static void rd_h2_on_trailers(void *ctx, const kp_http_header_t *hs, size_t n)
{
    kp_readiness_t *r = ctx;
    int status = rd_grpc_status_of(hs, n);
    if (status >= 0)
        r->grpc_status = status;
}

/* Knative's GRPCProbe (the kubelet's too): ready when the call succeeds
 * and the answer is SERVING. */
static void rd_h2_on_end(void *ctx)
{
    kp_readiness_t *r = ctx;
    kp_h2c_stream_done(r->h2_stream);
    r->h2_stream = NULL;
    char why[96];
    int status = kp_grpc_health_status((const unsigned char *)r->rbuf, r->rlen);
    if (r->grpc_status != 0)
        snprintf(why, sizeof why, "the call failed, grpc-status %d%s", r->grpc_status,
                 r->grpc_status == 12 ? " (UNIMPLEMENTED: no grpc.health.v1.Health service)" : "");
    else if (status < 0)
        snprintf(why, sizeof why, "a response that is not a HealthCheckResponse");
    else
        snprintf(why, sizeof why, "service not serving (status %d)", status);
    rd_h2_end(r, r->grpc_status == 0 && status == KP_GRPC_HEALTH_SERVING, why);
}

static void rd_h2_on_error(void *ctx, int err, int response_started)
{
    kp_readiness_t *r = ctx;
    r->h2_stream = NULL;
    rd_h2_end(r, 0, err == KP_H2C_REFUSED ? "stream refused" : uv_strerror(err));
}

static const kp_h2c_ops_t rd_h2_ops = {
    .on_connected = rd_h2_on_connected,
    .on_response_head = rd_h2_on_head,
    .on_body = rd_h2_on_body,
    .on_trailers = rd_h2_on_trailers,
    .on_response_end = rd_h2_on_end,
    .on_error = rd_h2_on_error,
};

static void rd_h2_start(kp_readiness_t *r)
{
    r->state = RD_H2_GET;
    uint64_t spent = uv_now(r->loop) - r->attempt_start;
    uv_timer_start(&r->timer, rd_on_timer,
                   spent < r->attempt_timeout_ms ? r->attempt_timeout_ms - spent : 0, 0);
    int rc = kp_h2c_pool_get(r->h2_pool, &rd_h2_ops, r, &r->h2_stream);
    if (rc == 1)
        rd_h2_on_connected(r, 0);
    else if (rc < 0) {
        r->h2_stream = NULL;
        rd_h2_end(r, 0, uv_strerror(rc));
    }
}

static void rd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    kp_readiness_t *r = h->data;
    (void)suggested;
    *buf = uv_buf_init(r->rbuf + r->rlen, (unsigned)(sizeof r->rbuf - r->rlen));
}

static void rd_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kp_readiness_t *r = s->data;
    (void)buf;
    if (r->state != RD_AWAIT_STATUS)
        return;
    if (nread < 0) {
        rd_finish(r, 0, "connection closed before a status line", nread == UV_EOF ? 0 : (int)nread);
        return;
    }
    r->rlen += (size_t)nread;
    if (r->detect_h2) {
        rd_read_upgrade_answer(r);
        return;
    }
    /* The status line's first 12 bytes decide; the rest is not read. */
    if (r->rlen < 13 && !memchr(r->rbuf, '\n', r->rlen) && r->rlen < sizeof r->rbuf)
        return;
    int code = rd_parse_status(r->rbuf, r->rlen);
    char why[64];
    if (code < 0) {
        rd_finish(r, 0, "malformed HTTP status line", 0);
    } else if (code >= 200 && code < 400) {
        rd_finish(r, 1, NULL, 0);
    } else {
        snprintf(why, sizeof why, "HTTP probe did not respond Ready, got status code: %d", code);
        rd_finish(r, 0, why, 0);
    }
}

static void rd_on_write(uv_write_t *req, int status)
{
    kp_readiness_t *r = req->data;
    if (status < 0 && status != UV_ECANCELED)
        rd_finish(r, 0, NULL, status);
}

static void rd_on_connect(uv_connect_t *req, int status)
{
    kp_readiness_t *r = req->data;
    if (r->state != RD_CONNECTING)
        return; /* cancelled by a timeout's close */
    if (status < 0) {
        rd_finish(r, 0, NULL, status);
        return;
    }
    if (r->kind == KP_PROBE_TCP) {
        rd_finish(r, 1, NULL, 0);
        return;
    }
    r->state = RD_AWAIT_STATUS;
    /* The request is built once and never changes, so the write may point
     * at it for as long as it takes. */
    uv_buf_t b = uv_buf_init(r->request, (unsigned)r->request_len);
    int err = uv_write(&r->write_req, (uv_stream_t *)&r->tcp, &b, 1, rd_on_write);
    if (!err)
        err = uv_read_start((uv_stream_t *)&r->tcp, rd_alloc, rd_on_read);
    if (err)
        rd_finish(r, 0, NULL, err);
}

static void rd_on_timer(uv_timer_t *t)
{
    kp_readiness_t *r = t->data;
    if (r->state == RD_H2_GET) {
        char why[48];
        snprintf(why, sizeof why, "timeout after %llu ms",
                 (unsigned long long)r->attempt_timeout_ms);
        rd_h2_end(r, 0, why);
    } else if (r->state == RD_IDLE) {
        if (rd_wants_attempt(r))
            rd_start_attempt(r);
    } else {
        char why[48];
        snprintf(why, sizeof why, "timeout after %llu ms",
                 (unsigned long long)r->attempt_timeout_ms);
        rd_finish(r, 0, why, 0);
    }
}

static void rd_start_attempt(kp_readiness_t *r)
{
    if (r->closing || r->state != RD_IDLE)
        return;
    r->attempt_start = uv_now(r->loop);
    r->rlen = 0;
    r->result = 0;
    r->upgrade_seen = 0;
    r->grpc_status = -1;
    if (r->kind == KP_PROBE_GRPC) {
        rd_h2_start(r);
        return;
    }
    /* Without an address family uv_tcp_init creates no socket and cannot
     * fail; socket errors (EMFILE...) come from uv_tcp_connect below. */
    if (uv_tcp_init(r->loop, &r->tcp) != 0)
        abort();
    r->open_handles++;
    r->tcp.data = r;
    r->state = RD_CONNECTING;
    uv_timer_start(&r->timer, rd_on_timer, r->attempt_timeout_ms, 0);
    int err = uv_tcp_connect(&r->connect_req, &r->tcp, (struct sockaddr *)&r->addr, rd_on_connect);
    if (err)
        rd_finish(r, 0, NULL, err);
}

/* ------------------------------------------------------------------ */
/* Public API */

static void rd_build_request(kp_readiness_t *r, const kp_probe_spec_t *spec)
{
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_strbuf_printf(&sb, "GET %s HTTP/1.1\r\n", spec->path ? spec->path : "/");
    const char *host = NULL;
    for (size_t i = 0; i < spec->n_headers; i++)
        if (strcasecmp(spec->headers[i].name, "Host") == 0)
            host = spec->headers[i].value;
    if (host)
        kp_strbuf_printf(&sb, "Host: %s\r\n", host);
    else
        kp_strbuf_printf(&sb, "Host: %s\r\n", r->target);
    kp_strbuf_puts(&sb, "User-Agent: Knative-Queue-Proxy-Probe\r\n"
                        "K-Network-Probe: queue\r\n"
                        "Connection: close\r\n");
    /* Our own headers win, as they do in Knative's prober. */
    static const char *const ours[] = {"Host",       "User-Agent",     "K-Network-Probe",
                                       "Connection", "Content-Length", "Transfer-Encoding"};
    for (size_t i = 0; i < spec->n_headers; i++) {
        int skip = 0;
        for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++)
            skip |= strcasecmp(spec->headers[i].name, ours[k]) == 0;
        if (!skip)
            kp_strbuf_printf(&sb, "%s: %s\r\n", spec->headers[i].name, spec->headers[i].value);
    }
    kp_strbuf_puts(&sb, "\r\n");
    r->request = kp_strbuf_detach(&sb, &r->request_len);
}

static int rd_build_h2_get(kp_readiness_t *r, const kp_probe_spec_t *spec, const char *host);

/* The gRPC health check: a POST of one HealthCheckRequest over h2c, on a
 * connection kept for the next attempt. */
static int rd_build_grpc_check(kp_readiness_t *r, const kp_probe_spec_t *spec)
{
    r->request = malloc(KP_GRPC_HEALTH_MAX_SERVICE + 8);
    int len = r->request ? kp_grpc_health_request(spec->grpc_service, r->request) : -1;
    if (len < 0)
        return -1;
    r->request_len = (size_t)len;
    r->h2_pool = kp_h2c_pool_new(r->loop, (struct sockaddr *)&r->addr, 1);
    return r->h2_pool ? rd_build_h2_get(r, spec, r->target) : -1;
}

kp_readiness_t *kp_readiness_new(uv_loop_t *loop, const kp_probe_spec_t *spec)
{
    kp_readiness_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->loop = loop;
    r->kind = spec ? spec->kind : KP_PROBE_NONE;
    r->poll_timeout_ms = RD_POLL_TIMEOUT_MS;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->connect_req.data = r;
    r->write_req.data = r;
    r->open_handles = 1;
    kp_h2c_request_head_init(&r->h2_get);
    if (r->kind == KP_PROBE_NONE) {
        r->ready = 1;
        return r;
    }
    if (uv_ip4_addr(spec->host, spec->port, (struct sockaddr_in *)&r->addr) == 0) {
        snprintf(r->target, sizeof r->target, "%s:%d", spec->host, spec->port);
    } else {
        /* probe_spec only lets IP literals through. */
        uv_ip6_addr(spec->host, spec->port, (struct sockaddr_in6 *)&r->addr);
        snprintf(r->target, sizeof r->target, "[%s]:%d", spec->host, spec->port);
    }
    r->aggressive = spec->period_seconds == 0;
    r->attempt_timeout_ms =
        r->aggressive ? RD_AGGRESSIVE_TIMEOUT_MS
                      : (uint64_t)(spec->timeout_seconds > 0 ? spec->timeout_seconds : 1) * 1000;
    r->success_threshold = spec->success_threshold > 0 ? spec->success_threshold : 1;
    r->failure_threshold = spec->failure_threshold > 0 ? spec->failure_threshold : 3;
    snprintf(r->last_error, sizeof r->last_error, "not probed yet");
    if (r->kind == KP_PROBE_HTTP)
        rd_build_request(r, spec);
    if (r->kind == KP_PROBE_GRPC && rd_build_grpc_check(r, spec) != 0)
        abort(); /* out of memory at start */
    return r;
}

void kp_readiness_start(kp_readiness_t *r)
{
    if (r->kind == KP_PROBE_NONE || r->ready || r->closing)
        return;
    r->background = 1;
    r->background_start = uv_now(r->loop);
    if (r->state == RD_IDLE) {
        uv_timer_stop(&r->timer);
        rd_start_attempt(r);
    }
}

int kp_readiness_is_ready(const kp_readiness_t *r)
{
    return r->ready;
}

void kp_readiness_check(kp_readiness_t *r, kp_readiness_waiter_t *w, kp_readiness_cb cb)
{
    w->cb = cb;
    w->next = w->prev = NULL;
    if (r->kind == KP_PROBE_NONE) {
        cb(w, 1);
        return;
    }
    if (r->closing)
        return;
    if (r->aggressive && !r->run_deadline) {
        r->run_deadline = uv_now(r->loop) + r->poll_timeout_ms;
        r->run_failures = 0;
    }
    rd_append(r, w);
    /* Join the attempt in flight, else probe now. */
    if (r->state == RD_IDLE) {
        uv_timer_stop(&r->timer);
        rd_start_attempt(r);
    }
}

void kp_readiness_cancel(kp_readiness_t *r, kp_readiness_waiter_t *w)
{
    if (!rd_linked(r, w))
        return;
    rd_unlink(r, w);
    /* A run nobody waits for any more is not worth finishing. */
    if (r->aggressive && !r->head && !r->answering) {
        r->run_deadline = 0;
        rd_schedule(r);
    }
}

static void rd_on_timer_closed(uv_handle_t *h)
{
    kp_readiness_t *r = h->data;
    r->open_handles--;
    rd_maybe_free(r);
}

void kp_readiness_close(kp_readiness_t *r)
{
    if (!r || r->closing)
        return;
    r->closing = 1;
    while (r->head)
        rd_unlink(r, r->head);
    while (r->answering)
        rd_unlink(r, r->answering);
    if (r->state == RD_CONNECTING || r->state == RD_AWAIT_STATUS) {
        r->state = RD_CLOSING;
        uv_close((uv_handle_t *)&r->tcp, rd_on_tcp_closed);
    }
    if (r->h2_stream) {
        kp_h2c_stream_cancel(r->h2_stream);
        r->h2_stream = NULL;
    }
    kp_h2c_pool_release(r->h2_pool); /* frees itself once its connections are closed */
    r->h2_pool = NULL;
    uv_close((uv_handle_t *)&r->timer, rd_on_timer_closed);
}

/* Knative's http2UpgradeProbe request: OPTIONS with the three headers
 * RFC 7540 §3.2 asks of an upgrade. Knative sends HTTP2-Settings empty;
 * ours holds one setting (ENABLE_PUSH 0, base64url): a valid token68, and
 * servers that refuse empty field values take it too. */
static void rd_build_upgrade_request(kp_readiness_t *r, const kp_probe_spec_t *spec,
                                     const char *host)
{
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_strbuf_printf(&sb,
                     "OPTIONS %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Knative-Queue-Proxy-Probe\r\n"
                     "K-Network-Probe: queue\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     "Upgrade: h2c\r\nHTTP2-Settings: AAIAAAAA\r\n\r\n",
                     spec->path ? spec->path : "/", host);
    free(r->request);
    r->request = kp_strbuf_detach(&sb, &r->request_len);
}

/* The h2c GET carries what the HTTP/1.1 one does (our headers win). */
static int rd_build_h2_get(kp_readiness_t *r, const kp_probe_spec_t *spec, const char *host)
{
    static const char *const ours[] = {"host",       "user-agent",     "k-network-probe",
                                       "connection", "content-length", "transfer-encoding"};
    kp_http_header_t hs[2 + 64];
    size_t n = 0;
    hs[n++] = (kp_http_header_t){"user-agent", 10, "Knative-Queue-Proxy-Probe", 25};
    hs[n++] = (kp_http_header_t){"k-network-probe", 15, "queue", 5};
    for (size_t i = 0; i < spec->n_headers && n < sizeof hs / sizeof hs[0]; i++) {
        int skip = 0;
        for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++)
            skip |= strcasecmp(spec->headers[i].name, ours[k]) == 0;
        if (!skip)
            hs[n++] = (kp_http_header_t){spec->headers[i].name, strlen(spec->headers[i].name),
                                         spec->headers[i].value, strlen(spec->headers[i].value)};
    }
    int grpc = spec->kind == KP_PROBE_GRPC;
    if (grpc) {
        n = 0; /* the probe's own fields are httpGet's alone */
        hs[n++] = (kp_http_header_t){"content-type", 12, "application/grpc", 16};
        hs[n++] = (kp_http_header_t){"te", 2, "trailers", 8};
        hs[n++] = (kp_http_header_t){"user-agent", 10, "Knative-Queue-Proxy-Probe", 25};
    }
    const char *path = grpc ? KP_GRPC_HEALTH_PATH : spec->path ? spec->path : "/";
    kp_http_request_t req = {
        .method = grpc ? "POST" : "GET",
        .url = path,
        .url_len = strlen(path),
        .host = host,
        .host_len = strlen(host),
        .headers = hs,
        .n_headers = n,
        .content_length = -1,
        .peer_ip = "",
    };
    return kp_h2c_request_head_build(&r->h2_get, &req, NULL);
}

int kp_readiness_detect_http2(kp_readiness_t *r, const kp_probe_spec_t *spec)
{
    if (r->kind != KP_PROBE_HTTP || r->detect_h2)
        return 0;
    const char *host = r->target;
    for (size_t i = 0; i < spec->n_headers; i++)
        if (strcasecmp(spec->headers[i].name, "Host") == 0)
            host = spec->headers[i].value;
    r->h2_pool = kp_h2c_pool_new(r->loop, (struct sockaddr *)&r->addr, 1);
    if (!r->h2_pool || rd_build_h2_get(r, spec, host) != 0)
        return UV_ENOMEM;
    rd_build_upgrade_request(r, spec, host);
    r->detect_h2 = 1;
    return 0;
}

void kp_readiness_set_poll_timeout(kp_readiness_t *r, uint64_t ms)
{
    r->poll_timeout_ms = ms;
}
