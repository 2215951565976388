/* One revision's autoscaler: Knative's KPA deciding a pod count from the
 * numbers it is given (the pods' concurrency or request rate from the
 * collector, the activator's own held and in-flight requests from
 * read_demand) every two seconds, or at once when demand jumps. It knows
 * no pods, no revision and no backend: its decisions leave through the
 * scale hook, and each decision's inputs are logged at debug level.
 *
 * A revision of class hpa.autoscaling.knative.dev is Kubernetes' HPA's to
 * scale: no KPA runs for it and its count is fixed at min-scale (at least
 * one: an HPA never scales to zero), which the revision writes only where
 * no HPA exists (the local backend). */
#ifndef KP_ACT_AUTOSCALER_H
#define KP_ACT_AUTOSCALER_H

#include <stdint.h>
#include <uv.h>

#include "activator/config/config.h"
#include "autoscaling/kpa.h"

/* What the activators carry for the revision, read when a decision is due. */
typedef struct act_demand {
    int ready_pods;
    double held;      /* requests waiting here for a pod slot */
    double in_flight; /* requests proxied from here, not done */
    double peer_load; /* held + in flight at the other activator replicas */
} act_demand_t;

typedef struct act_autoscaler_hooks {
    void (*read_demand)(void *ctx, act_demand_t *out);
    /* The desired pod count changed from `from` to `to`, for `reason`. */
    void (*scale)(void *ctx, int from, int to, const char *reason);
    void *ctx;
    const char *name; /* for its debug log lines; outlives the autoscaler */
} act_autoscaler_hooks_t;

typedef struct act_autoscaler act_autoscaler_t;

/* What it last saw and decided (for /status and /metrics). Reasons are
 * static strings. */
typedef struct act_autoscaler_state {
    kp_kpa_decision_t decision; /* the latest decision, every two seconds */
    act_demand_t demand;        /* what was read for it */
    uint64_t decided_ns;        /* when (monotonic); 0 before the first */
    int desired;                /* pods asked for */
    const char *reason;         /* why that many: the decision's, or a request waiting */
    /* The last change of the pods asked for; scaled_ns 0 before the first. */
    int scale_from, scale_to;
    const char *scale_reason;
    uint64_t scaled_ns;
    kp_kpa_metric_t metric; /* what decision.observed_* and .target measure */
    int hpa_class;          /* the HPA scales it; the fixed count is min-scale's */
} act_autoscaler_state_t;

/* Knative's defaults, then the global settings (the config's
 * "autoscaler"), then the revision's annotations; values were checked when
 * the config was loaded, so a bad one is only logged. */
void act_autoscaler_config(const kp_activator_config_t *global, const kp_revision_spec_t *spec,
                           kp_kpa_config_t *out);

/* Starts deciding at once, then every two seconds. hooks is copied. NULL
 * on allocation failure. */
act_autoscaler_t *act_autoscaler_new(uv_loop_t *loop, const kp_kpa_config_t *cfg,
                                     const act_autoscaler_hooks_t *hooks);
/* New settings; the windows keep their history. */
void act_autoscaler_reconfigure(act_autoscaler_t *as, const kp_kpa_config_t *cfg);
/* One collection round: the pods' own concurrency, summed (the part the
 * activators proxied left out, so that nothing counts twice), and the
 * requests per second that reached the pods, summed (all of them: the
 * activators do not exchange their rates, and every request reaches a pod
 * through one of them). The revision's metric picks one. */
void act_autoscaler_record(act_autoscaler_t *as, double pods_concurrency, double pods_rps);
/* The first request held while no pod is ready: decide now. */
void act_autoscaler_poke(act_autoscaler_t *as);
/* A request was held, here or at a peer: if the activators' load needs
 * more pods than asked for, ask now rather than at the next tick. */
void act_autoscaler_demand_rose(act_autoscaler_t *as);
/* A pod is ready that this replica did not ask for (another one raised
 * the revision from zero): keep it as if a request had come, so that the
 * windows, not a stale decision of zero, say when it goes. */
void act_autoscaler_adopt(act_autoscaler_t *as);
/* Pods asked for by the last decision. */
int act_autoscaler_desired(const act_autoscaler_t *as);
const act_autoscaler_state_t *act_autoscaler_state(const act_autoscaler_t *as);
/* Stops its timers; freed once they are closed. */
void act_autoscaler_close(act_autoscaler_t *as);

#endif
