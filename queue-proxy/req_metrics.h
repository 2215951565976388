/* User-facing request metrics served on :9091 /metrics under Knative's names
 * (its dashboards query them): revision_app_request_count and the
 * revision_app_request_latencies histogram, one series per status code. */
#ifndef KP_REQ_METRICS_H
#define KP_REQ_METRICS_H

#include "base/strbuf.h"

/* Strings owned by the caller; they must outlive the metrics. NULL is sent
 * as an empty label value. */
typedef struct {
    const char *service, *configuration, *revision, *namespace_, *pod;
} kp_req_metrics_labels_t;

/* One series per distinct status code: the first response with a code
 * allocates its series, later ones only add to counters. */
typedef struct kp_req_metrics kp_req_metrics_t;

/* NULL on out-of-memory. */
kp_req_metrics_t *kp_req_metrics_new(const kp_req_metrics_labels_t *labels);
void kp_req_metrics_free(kp_req_metrics_t *m);
/* status outside 0..999 (no HTTP/1 response carries one) is counted as 0;
 * a negative or NaN latency as 0 ms. */
void kp_req_metrics_observe(kp_req_metrics_t *m, int status, double latency_ms);
/* Appends Prometheus text (# HELP, # TYPE, samples by ascending code). A
 * metric with no series yet is left out, as Knative's exporter does. */
void kp_req_metrics_render(const kp_req_metrics_t *m, kp_strbuf_t *out);

#endif
