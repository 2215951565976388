/* The autoscaler stats report as Knative's protobuf Stat or as Prometheus
 * text (the names older Knative queue-proxies served). See stat_report.h. */
#include "stat_report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/prometheus.h"
#include "stat.pb-c.h"

int kp_stat_report_protobuf(const kp_stat_report_t *r, const char *pod_name, double uptime_s,
                            uint8_t **out, size_t *out_len)
{
    Metrics__Stat msg = METRICS__STAT__INIT;
    /* protobuf-c's string fields are not const; pack only reads it. */
    msg.pod_name = (char *)(pod_name ? pod_name : "");
    msg.average_concurrent_requests = r->average_concurrency;
    msg.average_proxied_concurrent_requests = r->average_proxied_concurrency;
    msg.request_count = r->request_count;
    msg.proxied_request_count = r->proxied_request_count;
    msg.process_uptime = uptime_s;

    size_t len = metrics__stat__get_packed_size(&msg);
    /* An all-default proto3 message packs to 0 bytes; still hand back a
     * pointer the caller can free. */
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    *out_len = metrics__stat__pack(&msg, buf);
    *out = buf;
    return 0;
}

struct gauge {
    const char *name, *help;
};

void kp_stat_report_prometheus(const kp_stat_report_t *r, const kp_stat_labels_t *labels,
                               double uptime_s, kp_strbuf_t *out)
{
    /* Sorted by name, as Go's client library (which Knative used) emits. */
    static const struct gauge gauges[] = {
        {"process_uptime", "The number of seconds that the process has been up"},
        {"queue_average_concurrent_requests",
         "Number of requests currently being handled by this pod"},
        {"queue_average_proxied_concurrent_requests",
         "Number of proxied requests currently being handled by this pod"},
        {"queue_proxied_operations_per_second", "Number of proxied requests per second"},
        {"queue_requests_per_second", "Number of requests per second"},
    };
    const double values[] = {
        uptime_s,
        r->average_concurrency,
        r->average_proxied_concurrency,
        r->proxied_request_count,
        r->request_count,
    };

    kp_strbuf_t lbl;
    kp_strbuf_init(&lbl);
    kp_strbuf_puts(&lbl, "{destination_configuration=\"");
    kp_prom_label_value(&lbl, labels->configuration);
    kp_strbuf_puts(&lbl, "\",destination_namespace=\"");
    kp_prom_label_value(&lbl, labels->namespace_);
    kp_strbuf_puts(&lbl, "\",destination_pod=\"");
    kp_prom_label_value(&lbl, labels->pod);
    kp_strbuf_puts(&lbl, "\",destination_revision=\"");
    kp_prom_label_value(&lbl, labels->revision);
    kp_strbuf_puts(&lbl, "\"} ");

    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        kp_strbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s", gauges[i].name, gauges[i].help,
                         gauges[i].name, gauges[i].name);
        kp_strbuf_append(out, lbl.data, lbl.len);
        kp_prom_value(out, values[i]);
        kp_strbuf_append(out, "\n", 1);
    }
    kp_strbuf_free(&lbl);
}
