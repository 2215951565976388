/* A revision in the activator and its throttler: the pods with their free
 * slots, the requests held while no pod has one, and load balancing as
 * Knative's throttler does it (first free pod for small
 * containerConcurrency, round robin above, the less loaded of two random
 * pods when unlimited). A request enters as an act_claim_t; the throttler
 * hands it on through the claim's own ops, never by calling whoever
 * forwards it. */
#ifndef KP_ACT_REVISION_H
#define KP_ACT_REVISION_H

#include <stdint.h>
#include <uv.h>

#include "activator.h"
#include "autoscaler.h"
#include "base/histogram.h"
#include "http/h2_upstream.h"
#include "http/upstream.h"
#include "response_stats.h"

typedef struct act_pod act_pod_t;
typedef struct act_claim act_claim_t;

#define ACT_REVISION_FAILURES 4

typedef struct act_failure {
    char reason[256];
    uint64_t at_ns; /* its last time (monotonic) */
    uint64_t count; /* times it happened while it stayed among the kept ones */
} act_failure_t;

typedef struct act_claim_ops {
    /* A slot on claim->pod is the claim's: send the request there. It
     * holds the slot until act_revision_release. */
    void (*granted)(act_claim_t *claim);
    /* The revision will not serve it (queue full, held too long,
     * shutdown): answer status with body. The revision has let it go. */
    void (*refused)(act_claim_t *claim, int status, const char *body);
} act_claim_ops_t;

/* A request's claim on a pod slot, embedded in the caller's request
 * (recovered with container_of): held until a pod has a free slot, then
 * holding that slot until released. */
struct act_claim {
    const act_claim_ops_t *ops;
    act_revision_t *rev;
    act_pod_t *pod; /* the pod whose slot it holds, or NULL */
    act_claim_t *next_held, *prev_held;
    uint64_t start_ns; /* arrival: the revision timeout counts from here */
    int held;
};

/* A pod of a revision. Owned by its revision; it lives on after the backend
 * removed it until its last request, its probe and its scrape are done. */
struct act_pod {
    act_pod_t *next, *prev;
    act_revision_t *rev;
    act_pod_info_t info;
    kp_upstream_pool_t *pool; /* keep-alive connections to its queue-proxy */
    kp_h2c_pool_t *h2_pool;    /* h2c connections to it, for HTTP/2 requests */
    int in_flight;            /* requests we sent it that are not done */
    int slots;                /* of its containerConcurrency, ours to fill (slot_share.h) */
    int ready;                /* its queue-proxy answered our probe */
    int ever_ready;           /* it answered once: a later death is no failure to start */
    int removed;              /* the backend took it away: send nothing new */
    int backend_holds;        /* the backend may still name it (pod_removed owed) */
    uint64_t added_ns;
    uint64_t seq;   /* order of arrival in its revision: older pods are chosen first */
    int free_index; /* its place in rev->free_pods, -1 while it has no free slot */
    int closing;
    /* Readiness probe (pod_probe.c); the timer is closed with the pod. */
    int probing;
    int probe_failures;
    uv_timer_t probe_timer;
    kp_upstream_t *probe_conn;
    int probe_status;
    size_t probe_body_len;
    char probe_body[8];
    /* Stats scrape (collector.c). */
    kp_upstream_pool_t *metrics_pool;
    int scraping;
    int scrape_timeouts; /* in a row, since it last answered */
};

struct act_revision {
    act_t *act;
    /* Its own copy (spec_storage): the config it came from may be gone.
     * The address stays the same for the revision's life, so the backend
     * may keep it. */
    const kp_revision_spec_t *spec;
    kp_revision_spec_t spec_storage;
    char key[300]; /* namespace/name */
    act_backend_revision_t *backend_rev;
    act_autoscaler_t *autoscaler;    /* owned; NULL once closed */
    struct act_collector *collector; /* collector.c's; set and closed by revisions.c */
    act_pod_t *pods;
    int n_pods;
    int n_ready;
    uint64_t pod_seq;
    /* The pods with a free slot, a min-heap on seq: a request's pod is
     * chosen without walking the others. */
    act_pod_t **free_pods;
    int n_free, cap_free;
    unsigned rr_next; /* round robin cursor */
    /* Held requests, oldest first; all share the revision timeout, so the
     * oldest expires first and one timer serves them all. */
    act_claim_t *held_head, *held_tail;
    int n_held;
    uv_timer_t held_timer;
    int in_flight;    /* claims holding a slot */
    double peer_load; /* held + in flight at the other activator replicas (peers.c) */
    int retired;      /* no longer in the config: gets no new request */
    void (*on_closed)(act_revision_t *rev); /* act_revision_close's */
    /* Records, read by observe.c. */
    act_response_stats_t responses; /* handler.c's */
    uint64_t cold_starts;
    /* How long the first request of each start from zero was held. */
    kp_histogram_t cold_start_seconds;
    int cold_start_pending; /* a request is held while no pod is ready */
    /* What went wrong for it lately, for operators: a pod that would not
     * start, a scale not written, a scrape or a held request that timed
     * out... Newest first, each reason once; at_ns 0: none. A few are kept
     * because the last is often the consequence (a request that waited in
     * vain) of the one before (the pod that did not start). */
    act_failure_t failures[ACT_REVISION_FAILURES];
    /* Why its pods cannot start, as the backend found it ("ExitCode1:
     * panic: no PORT"); "" while none failed since the last ready pod or
     * the last change of its command or environment. */
    char start_failure[256];
    uint64_t failed_fast; /* requests answered 503 at once: it cannot run */
};

/* The revision that serves a spec of the current config, or NULL (not
 * applied: out of memory). */
static inline act_revision_t *act_revision_of(const kp_revision_spec_t *spec)
{
    act_revision_t *rev = spec->runtime;
    return rev && !rev->retired ? rev : NULL;
}

/* Copies spec, registers the revision with the backend and starts its
 * autoscaler. NULL on allocation failure. */
act_revision_t *act_revision_new(act_t *act, const kp_revision_spec_t *spec);
/* The spec or the global autoscaler settings changed (and a retired
 * revision may be back). -1 (nothing changed) on allocation failure. */
int act_revision_reconfigure(act_revision_t *rev, const kp_revision_spec_t *spec);
/* No longer in the config: it gets no new request, and min-scale no longer
 * holds it up (Knative's rule for a revision no route reaches). */
void act_revision_retire(act_revision_t *rev);
/* Nothing held, nothing in flight, no pod and none asked for: retired, it
 * can go. */
int act_revision_is_idle(const act_revision_t *rev);
/* Refuses what is held and stops the autoscaler; pods are the caller's to
 * remove (their probes first). on_closed (may be NULL) runs once its
 * handles are closed; from then on act_revision_free may be called. */
void act_revision_close(act_revision_t *rev, void (*on_closed)(act_revision_t *rev));
void act_revision_free(act_revision_t *rev);
/* The slots per pod changed (containerConcurrency, activator replicas):
 * each pod's share is dealt again, and held requests go out. */
void act_revision_capacity_changed(act_revision_t *rev);
/* Pods its autoscaler asked for. */
int act_revision_desired(const act_revision_t *rev);

/* A request (claim->ops and start_ns set): granted a slot now, or held. */
void act_revision_admit(act_revision_t *rev, act_claim_t *claim);
/* The client left while its claim was held (no-op if it is not). */
void act_revision_cancel(act_claim_t *claim);
/* A granted claim is done with its slot (no-op if it holds none). */
void act_revision_release(act_claim_t *claim);
/* Slots may have appeared (the replica count changed): serve the held. */
void act_revision_dispatch(act_revision_t *rev);

/* NULL when left out (an address that is not an IP, out of memory). */
act_pod_t *act_revision_pod_add(act_revision_t *rev, const act_pod_info_t *info);
/* Sends nothing new to it; freed once settled. Its probe must be stopped. */
void act_revision_pod_remove(act_pod_t *pod);
void act_revision_pod_ready(act_pod_t *pod);
void act_revision_pod_unready(act_pod_t *pod);
/* A pod's probe or scrape ended: a removed pod may be freed now. */
void act_revision_pod_settled(act_pod_t *pod);

/* Demand here or at a peer rose: the autoscaler may want more pods now. */
void act_revision_demand_rose(act_revision_t *rev);

/* Why the revision cannot run, or NULL: the spec's failure (Kubernetes:
 * the Revision's Ready condition) or the backend's start failure, while
 * none of its pods is ready. Held and new requests then end at once with
 * a 503 naming it instead of waiting for the revision timeout. */
const char *act_revision_failure(const act_revision_t *rev);
/* The backend could not start a pod (pod: its handle, or NULL when no pod
 * was made). A pod that was ready once only died: that is no failure to
 * start. Held requests end at once. */
void act_revision_start_failed(act_revision_t *rev, act_pod_t *pod, const char *reason);

/* Something went wrong for the revision (what, to what): kept among its
 * recent failures for /status. */
void act_revision_note_failure(act_revision_t *rev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
