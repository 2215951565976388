/* Request count and latency histogram per status code, rendered as
 * Prometheus text with Knative's metric and label names. See
 * req_metrics.h. */
#include "req_metrics.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/prometheus.h"

#define MAX_STATUS 999

/* Knative's latency buckets in ms, with their `le` label text spelled the
 * way Go prints them, so series match Knative's own. */
static const double bucket_bounds[] = {5,   10,   20,   40,   60,    80,    100,  150, 200,
                                       250, 300,  350,  400,  450,   500,   600,  700, 800,
                                       900, 1000, 2000, 5000, 10000, 20000, 50000};
static const char *const bucket_le[] = {"5",    "10",    "20",    "40",   "60",  "80",   "100",
                                        "150",  "200",   "250",   "300",  "350", "400",  "450",
                                        "500",  "600",   "700",   "800",  "900", "1000", "2000",
                                        "5000", "10000", "20000", "50000"};
#define NBUCKETS (sizeof bucket_bounds / sizeof bucket_bounds[0])
_Static_assert(sizeof bucket_le / sizeof bucket_le[0] == NBUCKETS, "one le label per bound");

struct series {
    kp_strbuf_t labels;               /* label pairs without braces, ready to paste */
    uint64_t in_bucket[NBUCKETS + 1]; /* not cumulative; the last is above every bound */
    uint64_t count;
    double sum;
};

struct kp_req_metrics {
    kp_req_metrics_labels_t labels;
    /* Indexed by status code: O(1) on the request path, ascending when
     * rendering, and 8 KB once per process. */
    struct series *by_code[MAX_STATUS + 1];
};

kp_req_metrics_t *kp_req_metrics_new(const kp_req_metrics_labels_t *labels)
{
    kp_req_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->labels = *labels;
    return m;
}

void kp_req_metrics_free(kp_req_metrics_t *m)
{
    if (!m)
        return;
    for (int code = 0; code <= MAX_STATUS; code++) {
        if (m->by_code[code]) {
            kp_strbuf_free(&m->by_code[code]->labels);
            free(m->by_code[code]);
        }
    }
    free(m);
}

static void add_label(kp_strbuf_t *sb, const char *name, const char *value, int first)
{
    if (!first)
        kp_strbuf_append(sb, ",", 1);
    kp_strbuf_puts(sb, name);
    kp_strbuf_append(sb, "=\"", 2);
    kp_prom_label_value(sb, value);
    kp_strbuf_append(sb, "\"", 1);
}

static struct series *series_new(const kp_req_metrics_labels_t *l, int code)
{
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    char code_s[4], class_s[4];
    snprintf(code_s, sizeof code_s, "%d", code);
    snprintf(class_s, sizeof class_s, "%dxx", code / 100);
    /* Alphabetical, as Knative's exporter writes them. */
    kp_strbuf_init(&s->labels);
    add_label(&s->labels, "configuration_name", l->configuration, 1);
    add_label(&s->labels, "container_name", "queue-proxy", 0);
    add_label(&s->labels, "namespace_name", l->namespace_, 0);
    add_label(&s->labels, "pod_name", l->pod, 0);
    add_label(&s->labels, "response_code", code_s, 0);
    add_label(&s->labels, "response_code_class", class_s, 0);
    add_label(&s->labels, "revision_name", l->revision, 0);
    add_label(&s->labels, "service_name", l->service, 0);
    return s;
}

void kp_req_metrics_observe(kp_req_metrics_t *m, int status, double latency_ms)
{
    if (status < 0 || status > MAX_STATUS)
        status = 0;
    if (!(latency_ms >= 0))
        latency_ms = 0;
    struct series *s = m->by_code[status];
    if (!s) {
        s = series_new(&m->labels, status);
        if (!s)
            return; /* out of memory: lose one sample, not the request */
        m->by_code[status] = s;
    }
    /* `le` is inclusive: a value equal to a bound belongs to that bucket. */
    size_t i = 0;
    while (i < NBUCKETS && latency_ms > bucket_bounds[i])
        i++;
    s->in_bucket[i]++;
    s->count++;
    s->sum += latency_ms;
}

static void sample_u64(kp_strbuf_t *out, const char *name, const struct series *s, const char *le,
                       uint64_t v)
{
    kp_strbuf_puts(out, name);
    kp_strbuf_append(out, "{", 1);
    kp_strbuf_append(out, s->labels.data, s->labels.len);
    if (le) {
        kp_strbuf_append(out, ",le=\"", 5);
        kp_strbuf_puts(out, le);
        kp_strbuf_append(out, "\"", 1);
    }
    kp_strbuf_printf(out, "} %" PRIu64 "\n", v);
}

void kp_req_metrics_render(const kp_req_metrics_t *m, kp_strbuf_t *out)
{
    int any = 0;
    for (int code = 0; code <= MAX_STATUS && !any; code++)
        any = m->by_code[code] != NULL;
    if (!any)
        return;

    /* promtool's lint wants `_total` on a counter and no `_count` outside
     * histograms; Knative's dashboards want this exact name. */
    kp_strbuf_puts(out, "# HELP revision_app_request_count The number of requests that are "
                        "routed to user-container\n"
                        "# TYPE revision_app_request_count counter\n");
    for (int code = 0; code <= MAX_STATUS; code++) {
        const struct series *s = m->by_code[code];
        if (s)
            sample_u64(out, "revision_app_request_count", s, NULL, s->count);
    }

    kp_strbuf_puts(out, "# HELP revision_app_request_latencies The response time in millisecond\n"
                        "# TYPE revision_app_request_latencies histogram\n");
    for (int code = 0; code <= MAX_STATUS; code++) {
        const struct series *s = m->by_code[code];
        if (!s)
            continue;
        uint64_t cumulative = 0;
        for (size_t i = 0; i < NBUCKETS; i++) {
            cumulative += s->in_bucket[i];
            sample_u64(out, "revision_app_request_latencies_bucket", s, bucket_le[i], cumulative);
        }
        sample_u64(out, "revision_app_request_latencies_bucket", s, "+Inf", s->count);
        kp_strbuf_puts(out, "revision_app_request_latencies_sum{");
        kp_strbuf_append(out, s->labels.data, s->labels.len);
        kp_strbuf_append(out, "} ", 2);
        kp_prom_value(out, s->sum);
        kp_strbuf_append(out, "\n", 1);
        sample_u64(out, "revision_app_request_latencies_count", s, NULL, s->count);
    }
}
