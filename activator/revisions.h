/* The activator's revisions over time: a configuration names revisions
 * that are created, updated in place (their pods, held requests and
 * autoscaler history stay) or retired (no longer routed to; it finishes
 * what it has and scales to zero like any idle revision). Each revision is
 * wired here to its collector, its pods' probes and the backend's pod
 * events. */
#ifndef KP_ACT_REVISIONS_H
#define KP_ACT_REVISIONS_H

#include "activator.h"

/* Makes cfg (taken over) the current configuration and swaps the router.
 * -1 (cfg freed, nothing changed) on allocation failure. */
int act_revisions_apply(act_t *act, kp_activator_config_t *cfg);

/* The backend's pod events; rev_ctx is the revision. */
extern const act_backend_events_t act_revisions_backend_events;

/* The ready activator replicas sharing the pods: n of them, this one at
 * self in their order by pod name (-1: not among them). */
void act_revisions_set_activators(act_t *act, int n, int self);

/* Shutdown: refuses what is held, stops collectors and probes, lets pods go. */
void act_revisions_close(act_t *act);
/* After the loop ended: every revision and config. */
void act_revisions_free(act_t *act);

#endif
