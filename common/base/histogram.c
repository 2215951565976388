/* Fixed-bound histogram. See histogram.h. */
#include "histogram.h"

#include <assert.h>
#include <string.h>

void kp_histogram_init(kp_histogram_t *h, const double *bounds, size_t n_bounds)
{
    assert(n_bounds <= KP_HISTOGRAM_MAX_BOUNDS);
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n_bounds = n_bounds;
}

void kp_histogram_observe(kp_histogram_t *h, double value)
{
    size_t i = 0;
    while (i < h->n_bounds && value > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += value;
}
