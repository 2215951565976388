/* The main port (QUEUE_SERVING_PORT): answers Knative's probes itself and
 * sends every other request through the breaker to the app. */
#include "traffic.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "drain.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct qp_request {
    qp_t *qp;
    kp_http_request_t *req;
    kp_breaker_waiter_t waiter;
    kp_readiness_waiter_t ready_waiter;
    uint64_t start_ns;
    int proxied; /* sent by the activator */
    int holds_slot;
} qp_request_t;

static const char *const headers_for_us_only[] = {"K-Original-Host", "Knative-Serving-Revision",
                                                  "Knative-Serving-Namespace"};

static int header_is(const kp_http_request_t *req, const char *name, const char *value)
{
    const kp_http_header_t *h = kp_http_header_find(req->headers, req->n_headers, name);
    return h && kp_http_name_eq(h->value, h->value_len, value);
}

static int user_agent_starts(const kp_http_header_t *ua, const char *prefix)
{
    size_t n = strlen(prefix);
    return ua && ua->value_len >= n && memcmp(ua->value, prefix, n) == 0;
}

/* Knative: kubelet probes, and the activator's and autoscaler's probes of
 * this pod, are answered here from the app's readiness. */
static int is_health_check(const kp_http_request_t *req)
{
    const kp_http_header_t *ua = kp_http_header_find(req->headers, req->n_headers, "user-agent");
    return user_agent_starts(ua, "kube-probe/") || user_agent_starts(ua, "Knative-Activator-Probe") ||
           user_agent_starts(ua, "Knative-Autoscaling-Probe") ||
           kp_http_header_find(req->headers, req->n_headers, "k-kubelet-probe") != NULL;
}

static void write_request_log(qp_t *qp, const kp_http_request_t *req, int status,
                              uint64_t bytes, uint64_t start_ns)
{
    if (!qp->request_log)
        return;
    char remote[80];
    snprintf(remote, sizeof remote, "%s:%d", req->peer_ip, req->peer_port);
    char proto[16];
    snprintf(proto, sizeof proto, "HTTP/%u.%u", req->http_major, req->http_minor);
    kp_reqlog_entry_t e = {
        .method = req->method,
        .uri = req->target, /* Go's RequestURI: the target as received */
        .uri_len = req->target_len,
        .host = req->host,
        .host_len = req->host_len,
        .proto = proto,
        .remote_addr = remote,
        .headers = req->headers,
        .n_headers = req->n_headers,
        .content_length = req->chunked ? -1 : req->content_length < 0 ? 0 : req->content_length,
        .status = status,
        .response_size = (long long)bytes,
        .latency_s = (double)(kp_now_ns() - start_ns) / 1e9,
    };
    kp_reqlog_revision_t rev = {
        .name = qp->cfg.revision,
        .namespace_ = qp->cfg.namespace_,
        .service = qp->cfg.service,
        .configuration = qp->cfg.configuration,
        .pod_name = qp->cfg.pod,
        .pod_ip = qp->cfg.pod_ip,
    };
    kp_strbuf_t line;
    kp_strbuf_init(&line);
    kp_reqlog_render(qp->request_log, &e, &rev, &line);
    if (line.len) /* never waits for stdout: a full buffer drops the line */
        kp_log_line(KP_LOG_STDOUT, line.data, line.len);
    kp_strbuf_free(&line);
}

/* --- probes --- */

static void respond_probe(qp_t *qp, kp_http_request_t *req, int status, const char *body)
{
    uint64_t start = req->start_ns;
    kp_http_conn_respond(req->conn, status, "text/plain; charset=utf-8", body, strlen(body));
    if (qp->cfg.enable_probe_request_log)
        write_request_log(qp, req, status, strlen(body), start);
}

static void health_answer(qp_request_t *r, int ready)
{
    kp_http_conn_bind(r->req->conn, NULL, NULL);
    respond_probe(r->qp, r->req, ready ? 200 : 503, ready ? "queue" : "");
    free(r);
}

static void on_app_readiness(kp_readiness_waiter_t *w, int ready)
{
    health_answer(container_of(w, qp_request_t, ready_waiter), ready);
}

static void on_health_client_gone(void *ctx)
{
    qp_request_t *r = ctx;
    kp_readiness_cancel(r->qp->readiness, &r->ready_waiter);
    free(r);
}

static const kp_http_request_ops_t health_ops = {.on_abort = on_health_client_gone};

static void answer_health_check(qp_t *qp, kp_http_request_t *req)
{
    if (qp->draining) {
        respond_probe(qp, req, 503, "shutting down");
        return;
    }
    const kp_http_header_t *probe = kp_http_header_find(req->headers, req->n_headers, "k-network-probe");
    if (!probe || !kp_http_name_eq(probe->value, probe->value_len, "queue")) {
        char body[160];
        snprintf(body, sizeof body, "unexpected probe header value: %.*s",
                 probe ? (int)(probe->value_len > 100 ? 100 : probe->value_len) : 0,
                 probe ? probe->value : "");
        respond_probe(qp, req, 400, body);
        return;
    }
    qp_request_t *r = calloc(1, sizeof *r);
    if (!r) {
        respond_probe(qp, req, 503, "");
        return;
    }
    r->qp = qp;
    r->req = req;
    kp_http_conn_bind(req->conn, &health_ops, r);
    kp_readiness_check(qp->readiness, &r->ready_waiter, on_app_readiness);
}

static void answer_network_probe(qp_t *qp, kp_http_request_t *req)
{
    if (qp->draining) {
        respond_probe(qp, req, 503, "shutting down");
        return;
    }
    const kp_http_header_t *hash = kp_http_header_find(req->headers, req->n_headers, "k-network-hash");
    if (!hash || hash->value_len == 0) {
        respond_probe(qp, req, 400, "header K-Network-Hash is required");
        return;
    }
    kp_strbuf_t extra;
    kp_strbuf_init(&extra);
    kp_strbuf_puts(&extra, "K-Network-Hash: ");
    kp_strbuf_append(&extra, hash->value, hash->value_len);
    kp_strbuf_puts(&extra, "\r\n");
    kp_http_conn_send_head(req->conn, 200, extra.data, extra.len, 0);
    kp_http_conn_send_end(req->conn);
    kp_strbuf_free(&extra);
}

/* --- traffic --- */

static void traffic_end(qp_request_t *r, int status, uint64_t bytes)
{
    qp_t *qp = r->qp;
    uint64_t now = kp_now_ns();
    kp_stats_request_out(&qp->stats, now, r->proxied);
    qp->traffic_in_flight--;
    if (status > 0) {
        if (qp->req_metrics)
            kp_req_metrics_observe(qp->req_metrics, status, (double)(now - r->start_ns) / 1e6);
        write_request_log(qp, r->req, status, bytes, r->start_ns);
    }
    int held = r->holds_slot;
    free(r);
    if (held)
        kp_breaker_release(&qp->breaker); /* may start the next waiter at once */
    qp_drain_check(qp);
}

static void on_proxy_done(void *ctx, const kp_proxy_result_t *res)
{
    qp_request_t *r = ctx;
    if (res->outcome == KP_PROXY_UPSTREAM_FAILED)
        kp_log(KP_LOG_WARN, "error reverse proxying request to the app (status %d)", res->status);
    traffic_end(r, res->status, res->bytes_sent);
}

static void start_proxy(qp_request_t *r)
{
    qp_t *qp = r->qp;
    kp_http_request_t *req = r->req;
    r->holds_slot = 1;
    const kp_http_header_t *orig = kp_http_header_find(req->headers, req->n_headers, "k-original-host");
    const char *host = orig ? orig->value : NULL;
    size_t host_len = orig ? orig->value_len : 0;
    if (!host && !req->host) {
        /* HTTP/1.0 may come without Host; the app gets HTTP/1.1, which
         * must carry one (RFC 9112 §3.2): name the app itself. */
        host = qp->app_host;
        host_len = strlen(qp->app_host);
    }
    kp_proxy_edits_t edits = {
        .host = host,
        .host_len = host_len,
        .drop = headers_for_us_only,
        .n_drop = sizeof headers_for_us_only / sizeof headers_for_us_only[0],
        .append_forwarded_for = 1,
    };
    if (kp_proxy_start(req, qp->app_pool, &qp->proxy_opts, &edits, r->start_ns, on_proxy_done, r) != 0) {
        kp_http_conn_bind(req->conn, NULL, NULL);
        kp_http_conn_respond(req->conn, 503, "text/plain", "out of memory\n", 14);
        traffic_end(r, 503, 0);
    }
}

static void on_slot(kp_breaker_waiter_t *w)
{
    qp_request_t *r = container_of(w, qp_request_t, waiter);
    start_proxy(r);
}

static void on_waiting_client_gone(void *ctx)
{
    qp_request_t *r = ctx;
    kp_breaker_cancel(&r->qp->breaker, &r->waiter);
    traffic_end(r, 0, 0);
}

static const kp_http_request_ops_t waiting_ops = {.on_abort = on_waiting_client_gone};

static void on_queue_timer(uv_timer_t *t);

static void arm_queue_timer(qp_t *qp)
{
    if (!qp->breaker.head || qp->queue_timeout_ns == 0)
        return;
    qp_request_t *oldest = container_of(qp->breaker.head, qp_request_t, waiter);
    uint64_t deadline = oldest->start_ns + qp->queue_timeout_ns;
    uint64_t now = kp_now_ns();
    uint64_t ms = deadline > now ? (deadline - now) / 1000000 + 1 : 0;
    uv_timer_start(&qp->queue_timer, on_queue_timer, ms, 0);
}

/* Waiters leave the queue in arrival order and all share the revision
 * timeout, so the oldest always expires first: one timer serves all. */
static void on_queue_timer(uv_timer_t *t)
{
    qp_t *qp = t->data;
    uint64_t now = kp_now_ns();
    while (qp->breaker.head) {
        qp_request_t *r = container_of(qp->breaker.head, qp_request_t, waiter);
        if (r->start_ns + qp->queue_timeout_ns > now)
            break;
        kp_breaker_cancel(&qp->breaker, &r->waiter);
        static const char body[] = "context deadline exceeded\n";
        kp_http_conn_bind(r->req->conn, NULL, NULL);
        kp_http_conn_respond(r->req->conn, 503, "text/plain; charset=utf-8", body, sizeof body - 1);
        traffic_end(r, 503, sizeof body - 1);
    }
    arm_queue_timer(qp);
}

void qp_queue_timer_init(qp_t *qp)
{
    uv_timer_init(qp->loop, &qp->queue_timer);
    qp->queue_timer.data = qp;
}

static void handle_traffic(qp_t *qp, kp_http_request_t *req)
{
    qp_request_t *r = calloc(1, sizeof *r);
    if (!r) {
        kp_http_conn_respond(req->conn, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    r->qp = qp;
    r->req = req;
    r->start_ns = req->start_ns;
    r->proxied = header_is(req, "k-proxy-request", "activator");
    qp_drain_note_traffic(qp);
    kp_stats_request_in(&qp->stats, r->start_ns, r->proxied);
    qp->traffic_in_flight++;
    kp_http_conn_bind(req->conn, &waiting_ops, r);
    switch (kp_breaker_acquire(&qp->breaker, &r->waiter, on_slot)) {
    case KP_BREAKER_ACQUIRED:
        start_proxy(r);
        break;
    case KP_BREAKER_QUEUED:
        qp->queued_requests++;
        if (qp->breaker.head == &r->waiter)
            arm_queue_timer(qp);
        break;
    default: {
        static const char body[] = "pending request queue full\n";
        kp_http_conn_bind(req->conn, NULL, NULL);
        kp_http_conn_respond(req->conn, 503, "text/plain; charset=utf-8", body, sizeof body - 1);
        traffic_end(r, 503, sizeof body - 1);
    }
    }
}

void qp_on_main_request(kp_http_request_t *req, void *ctx)
{
    qp_t *qp = ctx;
    if (is_health_check(req))
        answer_health_check(qp, req);
    else if (header_is(req, "k-network-probe", "probe"))
        answer_network_probe(qp, req);
    else
        handle_traffic(qp, req);
}
