/* The autoscaler's eyes: every second it scrapes each ready pod's
 * queue-proxy stats (Knative's Stat protobuf on :9090) and gives the
 * revision's autoscaler the pods' own concurrency, summed. */
#ifndef KP_ACT_COLLECTOR_H
#define KP_ACT_COLLECTOR_H

#include "revision.h"

typedef struct act_collector act_collector_t;

/* What it did so far, for /status. */
typedef struct act_collector_counts {
    uint64_t rounds;          /* recorded in the autoscaler */
    uint64_t scrape_timeouts; /* scrapes dropped for want of an answer */
} act_collector_counts_t;

/* NULL on allocation failure. */
act_collector_t *act_collector_new(act_revision_t *rev);
/* The pod is being removed: its scrape under way, if any, is dropped now
 * rather than at its deadline, so the pod can be freed. */
void act_collector_forget_pod(act_collector_t *c, act_pod_t *pod);
const act_collector_counts_t *act_collector_counts(const act_collector_t *c);
/* Stops scraping: scrapes under way are dropped, it is freed once its
 * timer has closed. */
void act_collector_close(act_collector_t *c);

#endif
