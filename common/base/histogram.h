/* A histogram over fixed upper bounds (Prometheus' shape): counts per
 * bucket, their sum and total, updated in O(bounds) with no allocation.
 * Rendered by kp_prom_histogram (prometheus.h). */
#ifndef KP_HISTOGRAM_H
#define KP_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define KP_HISTOGRAM_MAX_BOUNDS 32

typedef struct kp_histogram {
    const double *bounds; /* ascending; a constant table that outlives it */
    size_t n_bounds;
    /* Per bucket, not cumulative; [n_bounds] counts values above every bound. */
    uint64_t counts[KP_HISTOGRAM_MAX_BOUNDS + 1];
    uint64_t count;
    double sum;
} kp_histogram_t;

/* n_bounds is at most KP_HISTOGRAM_MAX_BOUNDS. */
void kp_histogram_init(kp_histogram_t *h, const double *bounds, size_t n_bounds);
void kp_histogram_observe(kp_histogram_t *h, double value);

#endif
