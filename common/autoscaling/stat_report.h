/* Serialises one autoscaler stats report for :9090 /metrics: Knative's
 * protobuf Stat message, or (ours) the same values as Prometheus text. */
#ifndef KP_STAT_REPORT_H
#define KP_STAT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"
#include "base/strbuf.h"

typedef struct {
    const char *namespace_, *configuration, *revision, *pod;
} kp_stat_labels_t;

/* Packs a metrics.Stat (timestamp 0, as Knative's queue-proxy sends). On
 * success returns 0 and *out (malloc'd, caller frees) holds *out_len bytes;
 * -ENOMEM otherwise. pod_name may be NULL (sent as ""). */
int kp_stat_report_protobuf(const kp_stat_report_t *r, const char *pod_name, double uptime_s,
                            uint8_t **out, size_t *out_len);

/* Appends the gauges queue_average_concurrent_requests,
 * queue_average_proxied_concurrent_requests, queue_requests_per_second,
 * queue_proxied_operations_per_second and process_uptime, each with # HELP
 * and # TYPE, labelled destination_{namespace,configuration,revision,pod}
 * (NULL label values are sent as ""). */
void kp_stat_report_prometheus(const kp_stat_report_t *r, const kp_stat_labels_t *labels,
                               double uptime_s, kp_strbuf_t *out);

#endif
