/* The activator's /metrics (Prometheus text): its own series per revision
 * (activator_held_requests, activator_requests_total...), the autoscaler's
 * under Knative's names and labels (autoscaler_desired_pods,
 * autoscaler_stable_request_concurrency...), Knative's
 * activator_request_count and activator_request_latencies, and the
 * logger's dropped lines. */
#ifndef KP_ACT_OBSERVE_METRICS_H
#define KP_ACT_OBSERVE_METRICS_H

#include "activator.h"
#include "base/strbuf.h"

void act_observe_render_metrics(act_t *act, kp_strbuf_t *sb);

#endif
