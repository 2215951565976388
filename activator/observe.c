/* The activator's admin port. See observe.h. */
#include "observe.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/process_metrics.h"
#include "base/prometheus.h"
#include "base/strbuf.h"
#include "collector.h"
#include "revision.h"

static void json_str(kp_strbuf_t *sb, const char *s)
{
    kp_strbuf_puts(sb, "\"");
    kp_strbuf_json_escape(sb, s, strlen(s));
    kp_strbuf_puts(sb, "\"");
}

static void status_pods(kp_strbuf_t *sb, const act_revision_t *rev)
{
    kp_strbuf_puts(sb, "\"pods\":[");
    int first = 1;
    for (const act_pod_t *p = rev->pods; p; p = p->next) {
        kp_strbuf_puts(sb, first ? "{\"id\":" : ",{\"id\":");
        first = 0;
        json_str(sb, p->info.id);
        kp_strbuf_puts(sb, ",\"ip\":");
        json_str(sb, p->info.ip);
        kp_strbuf_printf(sb,
                         ",\"port\":%d,\"ready\":%s,\"removed\":%s,\"in_flight\":%d,"
                         "\"age_seconds\":%.3f}",
                         p->info.serving_port, p->ready ? "true" : "false",
                         p->removed ? "true" : "false", p->in_flight,
                         (double)(kp_now_ns() - p->added_ns) / 1e9);
    }
    kp_strbuf_puts(sb, "]");
}

static void status_revision(kp_strbuf_t *sb, const act_revision_t *rev)
{
    const kp_revision_spec_t *spec = rev->spec;
    kp_strbuf_puts(sb, "{\"name\":");
    json_str(sb, spec->name);
    kp_strbuf_printf(sb,
                     ",\"containerConcurrency\":%d,\"timeoutSeconds\":%d,\"desired_pods\":%d,"
                     "\"ready_pods\":%d,\"held\":%d,\"in_flight\":%d,\"cold_starts\":%llu,"
                     "\"requests\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,"
                     "\"5xx\":%llu},",
                     spec->container_concurrency, spec->timeout_s,
                     act_revision_desired(rev), rev->n_ready,
                     rev->n_held, rev->in_flight, (unsigned long long)rev->cold_starts,
                     (unsigned long long)rev->requests_by_class[1],
                     (unsigned long long)rev->requests_by_class[2],
                     (unsigned long long)rev->requests_by_class[3],
                     (unsigned long long)rev->requests_by_class[4],
                     (unsigned long long)rev->requests_by_class[5]);
    if (rev->collector) {
        /* Rounds that keep coming say no pod stalls the autoscaler. */
        const act_collector_counts_t *counts = act_collector_counts(rev->collector);
        kp_strbuf_printf(sb, "\"stats\":{\"rounds\":%llu,\"scrape_timeouts\":%llu},",
                         (unsigned long long)counts->rounds,
                         (unsigned long long)counts->scrape_timeouts);
    }
    status_pods(sb, rev);
    kp_strbuf_puts(sb, "}");
}

static void status_service(kp_strbuf_t *sb, act_t *act, const kp_service_spec_t *svc)
{
    kp_strbuf_puts(sb, "{\"name\":");
    json_str(sb, svc->name);
    kp_strbuf_puts(sb, ",\"namespace\":");
    json_str(sb, svc->namespace_);
    if (act->cfg->domain) {
        char host[512];
        snprintf(host, sizeof host, "%s.%s.%s", svc->name, svc->namespace_, act->cfg->domain);
        kp_strbuf_puts(sb, ",\"url\":");
        json_str(sb, host);
    }
    kp_strbuf_puts(sb, ",\"traffic\":[");
    for (size_t i = 0; i < svc->n_traffic; i++) {
        const kp_traffic_target_t *t = &svc->traffic[i];
        kp_strbuf_puts(sb, i ? ",{\"revisionName\":" : "{\"revisionName\":");
        json_str(sb, t->revision_name);
        kp_strbuf_printf(sb, ",\"percent\":%d", t->percent);
        if (t->tag) {
            kp_strbuf_puts(sb, ",\"tag\":");
            json_str(sb, t->tag);
        }
        kp_strbuf_puts(sb, "}");
    }
    kp_strbuf_puts(sb, "],\"revisions\":[");
    for (size_t i = 0; i < svc->n_revisions; i++) {
        if (i)
            kp_strbuf_puts(sb, ",");
        const act_revision_t *rev = act_revision_of(&svc->revisions[i]);
        if (rev)
            status_revision(sb, rev);
        else
            kp_strbuf_puts(sb, "null");
    }
    kp_strbuf_puts(sb, "]}");
}

static void render_status(act_t *act, kp_strbuf_t *sb)
{
    kp_strbuf_printf(sb, "{\"draining\":%s,\"backend\":", act->draining ? "true" : "false");
    json_str(sb, act->backend ? act->backend->name : "");
    kp_strbuf_puts(sb, ",\"services\":[");
    for (size_t i = 0; i < act->cfg->n_services; i++) {
        if (i)
            kp_strbuf_puts(sb, ",");
        status_service(sb, act, &act->cfg->services[i]);
    }
    kp_strbuf_puts(sb, "]}\n");
}

/* namespace="..",service="..",revision=".." */
static void prom_label_pairs(kp_strbuf_t *sb, const act_revision_t *rev)
{
    kp_strbuf_puts(sb, "namespace=\"");
    kp_prom_label_value(sb, rev->spec->namespace_);
    kp_strbuf_puts(sb, "\",service=\"");
    kp_prom_label_value(sb, rev->spec->service ? rev->spec->service : "");
    kp_strbuf_puts(sb, "\",revision=\"");
    kp_prom_label_value(sb, rev->spec->name);
    kp_strbuf_puts(sb, "\"");
}

/* {label pairs, left open for more */
static void prom_labels(kp_strbuf_t *sb, const act_revision_t *rev)
{
    kp_strbuf_puts(sb, "{");
    prom_label_pairs(sb, rev);
}

typedef struct gauge {
    const char *name, *help;
    double (*value)(const act_revision_t *rev);
} gauge_t;

static double held_of(const act_revision_t *r) { return r->n_held; }
static double desired_of(const act_revision_t *r) { return act_revision_desired(r); }
static double ready_of(const act_revision_t *r) { return r->n_ready; }
static double pods_of(const act_revision_t *r) { return r->n_pods; }
static double in_flight_of(const act_revision_t *r) { return r->in_flight; }

static const gauge_t gauges[] = {
    {"activator_held_requests", "Requests held waiting for a pod with a free slot.", held_of},
    {"activator_desired_pods", "Pods the autoscaler asked for.", desired_of},
    {"activator_ready_pods", "Pods whose queue-proxy answered the activator's probe.", ready_of},
    {"activator_pods", "Pods known to the activator, ready or not.", pods_of},
    {"activator_in_flight_requests", "Requests proxied to pods and not finished.", in_flight_of},
};

static void render_metrics(act_t *act, kp_strbuf_t *sb)
{
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        kp_strbuf_printf(sb, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help,
                         gauges[g].name);
        for (size_t i = 0; i < act->n_revisions; i++) {
            const act_revision_t *rev = act->revisions[i];
            kp_strbuf_puts(sb, gauges[g].name);
            prom_labels(sb, rev);
            kp_strbuf_puts(sb, "} ");
            kp_prom_value(sb, gauges[g].value(rev));
            kp_strbuf_puts(sb, "\n");
        }
    }
    kp_strbuf_puts(sb, "# HELP activator_requests_total Responses by status class.\n"
                       "# TYPE activator_requests_total counter\n");
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        for (int cls = 1; cls <= 5; cls++) {
            kp_strbuf_puts(sb, "activator_requests_total");
            prom_labels(sb, rev);
            kp_strbuf_printf(sb, ",code_class=\"%dxx\"} %llu\n", cls,
                             (unsigned long long)rev->requests_by_class[cls]);
        }
    }
    kp_strbuf_puts(sb, "# HELP activator_cold_start_seconds Time the first request of a start "
                       "from zero was held.\n# TYPE activator_cold_start_seconds histogram\n");
    kp_strbuf_t labels;
    kp_strbuf_init(&labels);
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        kp_strbuf_reset(&labels);
        prom_label_pairs(&labels, rev);
        kp_prom_histogram(sb, "activator_cold_start_seconds", labels.data ? labels.data : "",
                          &rev->cold_start_seconds);
    }
    kp_strbuf_free(&labels);
    kp_log_render_metrics(sb);
    kp_process_render_metrics(sb);
}

/* For the other replicas (peers.c): this replica's own share of each
 * revision's demand, "namespace/name held in_flight" per line. */
static void render_load(const act_t *act, kp_strbuf_t *sb)
{
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        if (rev->n_held > 0 || rev->in_flight > 0)
            kp_strbuf_printf(sb, "%s %d %d\n", rev->key, rev->n_held, rev->in_flight);
    }
}

static int path_is(const kp_http_request_t *req, const char *path)
{
    size_t n = strlen(path);
    return req->url_len >= n && memcmp(req->url, path, n) == 0 &&
           (req->url_len == n || req->url[n] == '?');
}

static void on_admin_request(kp_http_request_t *req, void *ctx)
{
    act_t *act = ctx;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        kp_http_conn_respond(req->conn, 405, "text/plain", "only GET\n", 9);
        return;
    }
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    const char *type = "text/plain; charset=utf-8";
    int status = 200;
    if (path_is(req, "/status")) {
        render_status(act, &sb);
        type = "application/json";
    } else if (path_is(req, "/metrics")) {
        render_metrics(act, &sb);
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (path_is(req, "/load")) {
        render_load(act, &sb);
    } else if (path_is(req, "/healthz")) {
        status = act->draining ? 503 : 200;
        kp_strbuf_puts(&sb, act->draining ? "shutting down\n" : "ok\n");
    } else {
        status = 404;
        kp_strbuf_puts(&sb, "not found (try /status, /metrics, /load, /healthz)\n");
    }
    kp_http_conn_respond(req->conn, status, type, sb.data, sb.len);
    kp_strbuf_free(&sb);
}

int act_observe_init(act_t *act, const char *host, int port)
{
    int rc = kp_http_server_init(&act->admin_server, act->loop, host, port, NULL,
                                 on_admin_request, act);
    if (rc != 0) {
        fprintf(stderr, "activator: cannot listen on %s:%d (--admin): %s\n", host, port,
                uv_strerror(rc));
        return -1;
    }
    return 0;
}

void act_observe_close(act_t *act)
{
    kp_http_server_close(&act->admin_server, NULL);
}
