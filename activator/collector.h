/* The autoscaler's eyes: every second it scrapes each ready pod's
 * queue-proxy stats (Knative's Stat protobuf on :9090) and gives the
 * revision's autoscaler the pods' own concurrency, summed. */
#ifndef KP_ACT_COLLECTOR_H
#define KP_ACT_COLLECTOR_H

#include "revision.h"

typedef struct act_collector act_collector_t;

/* NULL on allocation failure. */
act_collector_t *act_collector_new(act_revision_t *rev);
/* Stops scraping; scrapes under way end first, then it is freed. */
void act_collector_close(act_collector_t *c);

#endif
