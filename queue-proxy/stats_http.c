/* The autoscaler's stats port (Knative's Stat as protobuf, or Prometheus
 * text) and the user-facing request metrics port. A window closes every
 * second; scrapes read the last closed one, as Knative's reporter does. */
#include "stats_http.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "autoscaling/stat_report.h"
#include "base/log.h"
#include "base/process_metrics.h"
#include "base/strbuf.h"
#include "http/path.h"

#define REPORT_PERIOD_MS 1000

static void on_report_tick(uv_timer_t *t)
{
    qp_t *qp = t->data;
    kp_stats_report(&qp->stats, kp_now_ns(), &qp->last_report);
}

void qp_stats_init(qp_t *qp)
{
    kp_stats_init(&qp->stats, kp_now_ns());
    memset(&qp->last_report, 0, sizeof qp->last_report);
    uv_timer_init(qp->loop, &qp->report_timer);
    qp->report_timer.data = qp;
    uv_timer_start(&qp->report_timer, on_report_tick, REPORT_PERIOD_MS, REPORT_PERIOD_MS);
}

/* Matched as Knative's Go mux matches its routes (http/path.h). */
static int path_is(const kp_http_request_t *req, const char *path)
{
    return kp_http_target_is(req->url, req->url_len, path);
}

static int accepts_protobuf(const kp_http_request_t *req)
{
    const kp_http_header_t *accept = kp_http_header_find(req->headers, req->n_headers, "accept");
    if (!accept)
        return 0;
    static const char want[] = "application/protobuf";
    for (size_t i = 0; i + sizeof want - 1 <= accept->value_len; i++)
        if (strncasecmp(accept->value + i, want, sizeof want - 1) == 0)
            return 1;
    return 0;
}

static double uptime_s(const qp_t *qp)
{
    return (double)(kp_now_ns() - qp->start_ns) / 1e9;
}

void qp_on_stats_request(kp_http_request_t *req, void *ctx)
{
    qp_t *qp = ctx;
    if (!path_is(req, "/metrics") && !path_is(req, "/")) {
        kp_http_conn_respond(req->conn, 404, "text/plain; charset=utf-8", "not found\n", 10);
        return;
    }
    if (accepts_protobuf(req)) {
        uint8_t *body = NULL;
        size_t len = 0;
        if (kp_stat_report_protobuf(&qp->last_report, qp->cfg.pod, uptime_s(qp), &body, &len) != 0) {
            kp_http_conn_respond(req->conn, 500, "text/plain", "encoding failed\n", 16);
            return;
        }
        kp_http_conn_respond(req->conn, 200, "application/protobuf", (const char *)body, len);
        free(body);
        return;
    }
    kp_stat_labels_t labels = {
        .namespace_ = qp->cfg.namespace_,
        .configuration = qp->cfg.configuration,
        .revision = qp->cfg.revision,
        .pod = qp->cfg.pod,
    };
    kp_strbuf_t text;
    kp_strbuf_init(&text);
    kp_stat_report_prometheus(&qp->last_report, &labels, uptime_s(qp), &text);
    kp_http_conn_respond(req->conn, 200, "text/plain; version=0.0.4; charset=utf-8", text.data,
                         text.len);
    kp_strbuf_free(&text);
}

void qp_on_user_metrics_request(kp_http_request_t *req, void *ctx)
{
    qp_t *qp = ctx;
    if (!path_is(req, "/metrics")) {
        kp_http_conn_respond(req->conn, 404, "text/plain; charset=utf-8", "not found\n", 10);
        return;
    }
    kp_strbuf_t text;
    kp_strbuf_init(&text);
    kp_req_metrics_render(qp->req_metrics, &text);
    kp_strbuf_printf(&text,
                     "# HELP kp_queue_proxy_queued_requests_total Requests that waited in the "
                     "queue for a free slot of containerConcurrency\n"
                     "# TYPE kp_queue_proxy_queued_requests_total counter\n"
                     "kp_queue_proxy_queued_requests_total %" PRIu64 "\n",
                     qp->queued_requests);
    /* Here rather than on the autoscaler's port: this is the port Knative
     * names "metrics emitted by queue-proxy for end user", the one their
     * Prometheus scrapes. */
    kp_log_render_metrics(&text);
    kp_process_render_metrics(&text);
    kp_http_conn_respond(req->conn, 200, "text/plain; version=0.0.4; charset=utf-8",
                         text.data ? text.data : "", text.len);
    kp_strbuf_free(&text);
}
