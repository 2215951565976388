/* The queue-proxy's autoscaler stats: time-weighted average concurrency and
 * arrival rate per reporting window, for all requests and for those proxied
 * by the activator (Knative's RequestStats). Times are monotonic ns. */
#ifndef KP_STATS_H
#define KP_STATS_H

#include <stdint.h>

typedef struct {
    double average_concurrency;
    double average_proxied_concurrency;
    double request_count;         /* arrivals per second over the window */
    double proxied_request_count; /* arrivals per second over the window */
} kp_stat_report_t;

typedef struct kp_stats {
    /* Carried across windows. */
    int64_t concurrency, proxied_concurrency;
    uint64_t last_change_ns;
    /* Reset when a window closes. Integrals are in request-nanoseconds,
     * kept as integers so no rounding builds up within a window. */
    uint64_t window_start_ns;
    int64_t concurrency_ns, proxied_concurrency_ns;
    uint64_t requests, proxied_requests;
} kp_stats_t;

void kp_stats_init(kp_stats_t *s, uint64_t now_ns);
/* proxied: the request came through the activator (Knative's ProxiedIn). */
void kp_stats_request_in(kp_stats_t *s, uint64_t now_ns, int proxied);
/* proxied must match the value given to kp_stats_request_in. */
void kp_stats_request_out(kp_stats_t *s, uint64_t now_ns, int proxied);
/* Closes the window that began at the previous report (or init):
 * averages = integral of concurrency dt / window length, counts = arrivals
 * in the window / window seconds. A new window starts, keeping the current
 * concurrency. A zero-length window reports zeros and stays open, so its
 * arrivals count in the next one. */
void kp_stats_report(kp_stats_t *s, uint64_t now_ns, kp_stat_report_t *out);

#endif
