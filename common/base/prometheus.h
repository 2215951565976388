/* Prometheus text exposition format (version 0.0.4): the pieces every
 * /metrics page of the project writes with. */
#ifndef KP_PROMETHEUS_H
#define KP_PROMETHEUS_H

#include "histogram.h"
#include "strbuf.h"

/* Appends s as a label value (inside the quotes), escaping backslash,
 * double quote and newline. NULL appends nothing. */
void kp_prom_label_value(kp_strbuf_t *out, const char *s);
/* Appends v as a sample value, the shortest decimal that reads back as v;
 * NaN and infinities as NaN, +Inf, -Inf. */
void kp_prom_value(kp_strbuf_t *out, double v);
/* Appends a histogram's samples: NAME_bucket (cumulative, one per bound
 * and +Inf), NAME_sum and NAME_count, each labelled {labels} (label pairs
 * already escaped, without braces; "" for none) plus le on the buckets.
 * # HELP and # TYPE are the caller's, written once per metric. */
void kp_prom_histogram(kp_strbuf_t *out, const char *name, const char *labels,
                       const kp_histogram_t *h);

#endif
