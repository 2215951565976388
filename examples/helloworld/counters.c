/* In-flight counters behind /stats; see counters.h. */
#include "counters.h"

#include <inttypes.h>
#include <stdio.h>

void hw_counters_enter(hw_counters_t *c)
{
    c->requests++;
    if (++c->in_flight > c->max_in_flight)
        c->max_in_flight = c->in_flight;
}

void hw_counters_leave(hw_counters_t *c)
{
    if (c->in_flight > 0)
        c->in_flight--;
}

void hw_counters_reset(hw_counters_t *c)
{
    c->requests = 0;
    c->max_in_flight = c->in_flight;
}

size_t hw_counters_json(const hw_counters_t *c, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "{\"in_flight\":%" PRIu64 ",\"max_in_flight\":%" PRIu64
                     ",\"requests\":%" PRIu64 "}\n",
                     c->in_flight, c->max_in_flight, c->requests);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
