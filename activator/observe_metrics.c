/* /metrics as Prometheus text. See observe_metrics.h. */
#include "observe_metrics.h"

#include <stdio.h>

#include "base/log.h"
#include "base/process_metrics.h"
#include "base/prometheus.h"
#include "revision.h"

/* Our own series: namespace="..",service="..",revision=".." */
static void labels_ours(kp_strbuf_t *sb, const act_revision_t *rev)
{
    kp_strbuf_puts(sb, "namespace=\"");
    kp_prom_label_value(sb, rev->spec->namespace_);
    kp_strbuf_puts(sb, "\",service=\"");
    kp_prom_label_value(sb, rev->spec->service ? rev->spec->service : "");
    kp_strbuf_puts(sb, "\",revision=\"");
    kp_prom_label_value(sb, rev->spec->name);
    kp_strbuf_puts(sb, "\"");
}

/* Knative's revision labels (pkg/metrics CommonRevisionKeys) in the order
 * its Prometheus exporter writes them (sorted). A Service's Configuration
 * carries the Service's name; a revision with no service is "unknown", as
 * Knative's reporters write it. */
static void labels_knative(kp_strbuf_t *sb, const act_revision_t *rev)
{
    const char *service = rev->spec->service && *rev->spec->service ? rev->spec->service : NULL;
    kp_strbuf_puts(sb, "configuration_name=\"");
    kp_prom_label_value(sb, service ? service : "");
    kp_strbuf_puts(sb, "\",namespace_name=\"");
    kp_prom_label_value(sb, rev->spec->namespace_);
    kp_strbuf_puts(sb, "\",revision_name=\"");
    kp_prom_label_value(sb, rev->spec->name);
    kp_strbuf_puts(sb, "\",service_name=\"");
    kp_prom_label_value(sb, service ? service : "unknown");
    kp_strbuf_puts(sb, "\"");
}

/* Knative's activator request series: the revision's labels with the
 * activator's pod and container and the response code, sorted. */
static void labels_request(kp_strbuf_t *sb, const act_revision_t *rev, int code)
{
    const char *service = rev->spec->service && *rev->spec->service ? rev->spec->service : NULL;
    kp_strbuf_puts(sb, "configuration_name=\"");
    kp_prom_label_value(sb, service ? service : "");
    kp_strbuf_puts(sb, "\",container_name=\"activator\",namespace_name=\"");
    kp_prom_label_value(sb, rev->spec->namespace_);
    kp_strbuf_puts(sb, "\",pod_name=\"");
    kp_prom_label_value(sb, rev->act->identity);
    kp_strbuf_printf(sb, "\",response_code=\"%d\",response_code_class=\"%dxx\",revision_name=\"",
                     code, code / 100);
    kp_prom_label_value(sb, rev->spec->name);
    kp_strbuf_puts(sb, "\",service_name=\"");
    kp_prom_label_value(sb, service ? service : "unknown");
    kp_strbuf_puts(sb, "\"");
}

static const act_autoscaler_state_t *autoscaler_of(const act_revision_t *rev)
{
    static const act_autoscaler_state_t none; /* closing: nothing decided any more */
    return rev->autoscaler ? act_autoscaler_state(rev->autoscaler) : &none;
}

typedef struct gauge {
    const char *name, *help;
    void (*labels)(kp_strbuf_t *sb, const act_revision_t *rev);
    double (*value)(const act_revision_t *rev);
} gauge_t;

static double held_of(const act_revision_t *r)
{
    return r->n_held;
}
static double desired_of(const act_revision_t *r)
{
    return act_revision_desired(r);
}
static double ready_of(const act_revision_t *r)
{
    return r->n_ready;
}
static double pods_of(const act_revision_t *r)
{
    return r->n_pods;
}
static double in_flight_of(const act_revision_t *r)
{
    return r->in_flight;
}

static double cannot_run_of(const act_revision_t *r)
{
    return act_revision_failure(r) != NULL;
}

static double kpa_desired_of(const act_revision_t *r)
{
    return autoscaler_of(r)->decision.desired_scale;
}
static double not_ready_of(const act_revision_t *r)
{
    int n = 0;
    for (const act_pod_t *p = r->pods; p; p = p->next)
        n += !p->ready && !p->removed;
    return n;
}
static double terminating_of(const act_revision_t *r)
{
    int n = 0;
    for (const act_pod_t *p = r->pods; p; p = p->next)
        n += p->removed;
    return n;
}
/* The KPA measures one metric: the other's series read 0. */
static double measured(const act_revision_t *r, kp_kpa_metric_t metric, double v)
{
    const act_autoscaler_state_t *st = autoscaler_of(r);
    return !st->hpa_class && st->metric == metric ? v : 0;
}
static double stable_of(const act_revision_t *r)
{
    return measured(r, KP_KPA_METRIC_CONCURRENCY, autoscaler_of(r)->decision.observed_stable);
}
static double panic_of(const act_revision_t *r)
{
    return measured(r, KP_KPA_METRIC_CONCURRENCY, autoscaler_of(r)->decision.observed_panic);
}
static double target_of(const act_revision_t *r)
{
    return measured(r, KP_KPA_METRIC_CONCURRENCY, autoscaler_of(r)->decision.target);
}
static double stable_rps_of(const act_revision_t *r)
{
    return measured(r, KP_KPA_METRIC_RPS, autoscaler_of(r)->decision.observed_stable);
}
static double panic_rps_of(const act_revision_t *r)
{
    return measured(r, KP_KPA_METRIC_RPS, autoscaler_of(r)->decision.observed_panic);
}
static double target_rps_of(const act_revision_t *r)
{
    return measured(r, KP_KPA_METRIC_RPS, autoscaler_of(r)->decision.target);
}
static double panic_mode_of(const act_revision_t *r)
{
    return autoscaler_of(r)->decision.panicking;
}
static double excess_of(const act_revision_t *r)
{
    return autoscaler_of(r)->decision.excess_burst_capacity;
}

static const gauge_t gauges[] = {
    {"activator_held_requests", "Requests held waiting for a pod with a free slot.", labels_ours,
     held_of},
    {"activator_desired_pods", "Pods the autoscaler asked for.", labels_ours, desired_of},
    {"activator_ready_pods", "Pods whose queue-proxy answered the activator's probe.", labels_ours,
     ready_of},
    {"activator_pods", "Pods known to the activator, ready or not.", labels_ours, pods_of},
    {"activator_in_flight_requests", "Requests proxied to pods and not finished.", labels_ours,
     in_flight_of},
    {"activator_revision_cannot_run",
     "1 while the revision cannot run (its pods fail to start, or its Revision is not Ready) "
     "and its requests get 503 at once.",
     labels_ours, cannot_run_of},
    /* Knative's autoscaler series (pkg/autoscaler/scaling, and the KPA
     * reconciler's pod counts), same names, labels and meaning. */
    {"autoscaler_desired_pods", "Number of pods autoscaler wants to allocate", labels_knative,
     kpa_desired_of},
    {"autoscaler_requested_pods", "Number of pods autoscaler requested from Kubernetes",
     labels_knative, desired_of},
    {"autoscaler_actual_pods", "Number of pods that are allocated currently", labels_knative,
     ready_of},
    {"autoscaler_not_ready_pods", "Number of pods that are not ready currently", labels_knative,
     not_ready_of},
    {"autoscaler_terminating_pods", "Number of pods that are terminating currently", labels_knative,
     terminating_of},
    {"autoscaler_stable_request_concurrency",
     "Average of requests count per observed pod over the stable window", labels_knative,
     stable_of},
    {"autoscaler_panic_request_concurrency",
     "Average of requests count per observed pod over the panic window", labels_knative, panic_of},
    {"autoscaler_target_concurrency_per_pod",
     "The desired number of concurrent requests for each pod", labels_knative, target_of},
    {"autoscaler_stable_requests_per_second",
     "Average requests-per-second per observed pod over the stable window", labels_knative,
     stable_rps_of},
    {"autoscaler_panic_requests_per_second",
     "Average requests-per-second per observed pod over the panic window", labels_knative,
     panic_rps_of},
    {"autoscaler_target_requests_per_second", "The desired requests-per-second for each pod",
     labels_knative, target_rps_of},
    {"autoscaler_excess_burst_capacity", "Excess burst capacity overserved over the stable window",
     labels_knative, excess_of},
    {"autoscaler_panic_mode", "1 if autoscaler is in panic mode, 0 otherwise", labels_knative,
     panic_mode_of},
};

static void render_gauges(act_t *act, kp_strbuf_t *sb)
{
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        kp_strbuf_printf(sb, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help,
                         gauges[g].name);
        for (size_t i = 0; i < act->n_revisions; i++) {
            const act_revision_t *rev = act->revisions[i];
            kp_strbuf_puts(sb, gauges[g].name);
            kp_strbuf_puts(sb, "{");
            gauges[g].labels(sb, rev);
            kp_strbuf_puts(sb, "} ");
            kp_prom_value(sb, gauges[g].value(rev));
            kp_strbuf_puts(sb, "\n");
        }
    }
}

/* Knative's activator: a counter and a latency histogram (ms) per
 * revision and response code, from arrival to the end of the response. */
static void render_responses(act_t *act, kp_strbuf_t *sb)
{
    kp_strbuf_t labels;
    kp_strbuf_init(&labels);
    /* Knative's name, which promtool would want as _total. */
    kp_strbuf_puts(sb, "# HELP activator_request_count The number of requests that are routed to "
                       "Activator\n# TYPE activator_request_count counter\n");
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        for (size_t c = 0; c < rev->responses.n_codes; c++) {
            const act_code_latency_t *e = &rev->responses.by_code[c];
            kp_strbuf_puts(sb, "activator_request_count{");
            labels_request(sb, rev, e->code);
            kp_strbuf_printf(sb, "} %llu\n", (unsigned long long)e->ms.count);
        }
    }
    kp_strbuf_puts(sb, "# HELP activator_request_latencies The response time in millisecond\n"
                       "# TYPE activator_request_latencies histogram\n");
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        for (size_t c = 0; c < rev->responses.n_codes; c++) {
            const act_code_latency_t *e = &rev->responses.by_code[c];
            kp_strbuf_reset(&labels);
            labels_request(&labels, rev, e->code);
            kp_prom_histogram(sb, "activator_request_latencies", labels.data, &e->ms);
        }
    }
    kp_strbuf_free(&labels);
}

void act_observe_render_metrics(act_t *act, kp_strbuf_t *sb)
{
    render_gauges(act, sb);
    kp_strbuf_puts(sb, "# HELP activator_requests_total Responses by status class.\n"
                       "# TYPE activator_requests_total counter\n");
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        for (int cls = 1; cls <= 5; cls++) {
            kp_strbuf_puts(sb, "activator_requests_total{");
            labels_ours(sb, rev);
            kp_strbuf_printf(sb, ",code_class=\"%dxx\"} %llu\n", cls,
                             (unsigned long long)rev->responses.by_class[cls]);
        }
    }
    kp_strbuf_puts(sb, "# HELP activator_failed_fast_requests_total Requests answered 503 at "
                       "once because their revision cannot run.\n"
                       "# TYPE activator_failed_fast_requests_total counter\n");
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        kp_strbuf_puts(sb, "activator_failed_fast_requests_total{");
        labels_ours(sb, rev);
        kp_strbuf_printf(sb, "} %llu\n", (unsigned long long)rev->failed_fast);
    }
    render_responses(act, sb);
    kp_strbuf_puts(sb, "# HELP activator_cold_start_seconds Time the first request of a start "
                       "from zero was held.\n# TYPE activator_cold_start_seconds histogram\n");
    kp_strbuf_t labels;
    kp_strbuf_init(&labels);
    for (size_t i = 0; i < act->n_revisions; i++) {
        const act_revision_t *rev = act->revisions[i];
        kp_strbuf_reset(&labels);
        labels_ours(&labels, rev);
        kp_prom_histogram(sb, "activator_cold_start_seconds", labels.data ? labels.data : "",
                          &rev->cold_start_seconds);
    }
    kp_strbuf_free(&labels);
    const act_capacity_t *cap = &act->capacity;
    kp_strbuf_printf(sb,
                     "# HELP activator_capacity_requests Held and in-flight requests of all "
                     "revisions together before 503 \"activator at capacity\".\n"
                     "# TYPE activator_capacity_requests gauge\nactivator_capacity_requests %zu\n"
                     "# HELP activator_active_requests Requests held or in flight now.\n"
                     "# TYPE activator_active_requests gauge\nactivator_active_requests %zu\n"
                     "# HELP activator_capacity_rejected_requests_total Requests answered 503 "
                     "\"activator at capacity\".\n"
                     "# TYPE activator_capacity_rejected_requests_total counter\n"
                     "activator_capacity_rejected_requests_total %llu\n",
                     cap->max_requests, cap->active_requests, (unsigned long long)cap->rejected);
    kp_log_render_metrics(sb);
    kp_process_render_metrics(sb);
}
