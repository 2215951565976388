/* Concurrency accounting that tests read through GET /stats: a request is
 * in flight from its head's arrival until its response is complete or it
 * is aborted. max_in_flight proves a proxy never let more through than its
 * containerConcurrency, so every enter has exactly one leave. */
#ifndef HW_COUNTERS_H
#define HW_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct hw_counters {
    uint64_t in_flight;
    uint64_t max_in_flight;
    uint64_t requests; /* entered since start or the last reset */
} hw_counters_t;

void hw_counters_enter(hw_counters_t *c);
void hw_counters_leave(hw_counters_t *c);
/* requests to 0 and max_in_flight to the current in_flight (0 when idle):
 * a maximum below what is in flight right now would be a lie. */
void hw_counters_reset(hw_counters_t *c);
/* {"in_flight":N,"max_in_flight":M,"requests":R}; returns its length. */
size_t hw_counters_json(const hw_counters_t *c, char *out, size_t cap);

#endif
