/* Responses by class and latency by code. See response_stats.h. */
#include "response_stats.h"

#include <stdlib.h>
#include <string.h>

/* Knative's activator latency buckets (ms), pkg/activator/handler. */
static const double latency_bounds_ms[] = {5,   10,   20,   40,   60,    80,    100,   150,   200,
                                           250, 300,  350,  400,  450,   500,   600,   700,   800,
                                           900, 1000, 2000, 5000, 10000, 20000, 50000, 100000};

/* The code's entry, made in order when it is the first of its code; NULL
 * when out of memory (the response is then only counted by class). */
static act_code_latency_t *entry_for(act_response_stats_t *s, int code)
{
    size_t i = 0;
    while (i < s->n_codes && s->by_code[i].code < code)
        i++;
    if (i < s->n_codes && s->by_code[i].code == code)
        return &s->by_code[i];
    if (s->n_codes == s->cap_codes) {
        size_t cap = s->cap_codes ? s->cap_codes * 2 : 4;
        act_code_latency_t *grown = realloc(s->by_code, cap * sizeof *grown);
        if (!grown)
            return NULL;
        s->by_code = grown;
        s->cap_codes = cap;
    }
    memmove(&s->by_code[i + 1], &s->by_code[i], (s->n_codes - i) * sizeof *s->by_code);
    s->n_codes++;
    s->by_code[i].code = code;
    kp_histogram_init(&s->by_code[i].ms, latency_bounds_ms,
                      sizeof latency_bounds_ms / sizeof latency_bounds_ms[0]);
    return &s->by_code[i];
}

void act_response_stats_record(act_response_stats_t *s, int status, double latency_ms)
{
    int known = status >= 100 && status < 600;
    s->by_class[known ? status / 100 : 0]++;
    if (!known)
        return;
    act_code_latency_t *e = entry_for(s, status);
    if (e)
        kp_histogram_observe(&e->ms, latency_ms >= 0 ? latency_ms : 0);
}

void act_response_stats_free(act_response_stats_t *s)
{
    free(s->by_code);
    memset(s, 0, sizeof *s);
}
