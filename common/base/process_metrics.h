/* The process's own resources as Prometheus' standard process collector
 * names them (client_golang's process_* metrics, which Knative's Go
 * components serve), so dashboards built for those work unchanged. */
#ifndef KP_PROCESS_METRICS_H
#define KP_PROCESS_METRICS_H

#include "strbuf.h"

/* Appends process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds, read from /proc/self. A figure that cannot
 * be read is left out rather than written as a wrong value. */
void kp_process_render_metrics(kp_strbuf_t *out);

#endif
