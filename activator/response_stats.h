/* A revision's responses as the activator answered them: counts by status
 * class, and per status code the latency histogram Knative's activator
 * exports as activator_request_latencies (milliseconds, its buckets).
 * Embedded in the revision; handler.c records, observe.c reads. */
#ifndef KP_ACT_RESPONSE_STATS_H
#define KP_ACT_RESPONSE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "base/histogram.h"

typedef struct act_code_latency {
    int code;
    kp_histogram_t ms;
} act_code_latency_t;

typedef struct act_response_stats {
    uint64_t by_class[6]; /* 1xx..5xx; [0] for a status outside 100..599 */
    /* Ascending by code; a code's entry is made by its first response. */
    act_code_latency_t *by_code;
    size_t n_codes, cap_codes;
} act_response_stats_t;

/* All zero is an empty record. */
void act_response_stats_record(act_response_stats_t *s, int status, double latency_ms);
void act_response_stats_free(act_response_stats_t *s);

#endif
