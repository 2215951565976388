/* Prometheus text exposition format (version 0.0.4): the pieces every
 * /metrics page of the project writes with. */
#ifndef KP_PROMETHEUS_H
#define KP_PROMETHEUS_H

#include "strbuf.h"

/* Appends s as a label value (inside the quotes), escaping backslash,
 * double quote and newline. NULL appends nothing. */
void kp_prom_label_value(kp_strbuf_t *out, const char *s);
/* Appends v as a sample value, the shortest decimal that reads back as v;
 * NaN and infinities as NaN, +Inf, -Inf. */
void kp_prom_value(kp_strbuf_t *out, double v);

#endif
