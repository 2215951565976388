/* The activator's state: revisions with their pods, held requests and
 * autoscaler, one process-wide act_t owning them all. */
#ifndef KP_ACTIVATOR_H
#define KP_ACTIVATOR_H

#include <stdint.h>
#include <uv.h>

#include "activator/backend/backend.h"
#include "activator/config/config.h"
#include "http/server.h"
#include "http/upstream.h"
#include "http/proxy.h"
#include "router.h"

typedef struct act act_t;
typedef struct act_revision act_revision_t;
typedef struct act_request act_request_t;

/* A pod of a revision. Owned by its revision; it lives on after the backend
 * removed it until its last request and its probe are done. */
typedef struct act_pod {
    struct act_pod *next, *prev;
    act_revision_t *rev;
    act_pod_info_t info;
    kp_upstream_pool_t *pool; /* keep-alive connections to its queue-proxy */
    int in_flight;            /* requests we sent it that are not done */
    int ready;                /* its queue-proxy answered our probe */
    int removed;              /* the backend took it away: send nothing new */
    int probing;              /* a probe exchange is under way */
    int probe_failures;
    uint64_t added_ns;
    uv_timer_t probe_timer;
    kp_upstream_t *probe_conn;
    int probe_status;
    size_t probe_body_len;
    char probe_body[8];
    int closing;
    /* Autoscaler scrape (scaler.c). */
    kp_upstream_pool_t *metrics_pool;
    int scraping;
} act_pod_t;

/* One request in the activator: held, then proxied to a pod. Owned by
 * the handler from arrival to the end of its response. */
struct act_request {
    act_t *act;
    act_revision_t *rev;
    kp_http_request_t *req;
    act_pod_t *pod;
    act_request_t *next_held, *prev_held;
    uint64_t start_ns;
    int held;
    int unreachable_pods; /* pods it was sent to that could not be reached */
    char original_host[256];
};

struct act_revision {
    act_t *act;
    const kp_revision_spec_t *spec;
    char key[300]; /* namespace/name */
    act_backend_revision_t *backend_rev;
    act_pod_t *pods;
    int n_pods;
    int n_ready;
    unsigned rr_next; /* round robin cursor */
    /* Held requests, oldest first; all share the revision timeout, so the
     * oldest expires first and one timer serves them all. */
    act_request_t *held_head, *held_tail;
    int n_held;
    uv_timer_t held_timer;
    int in_flight; /* proxied requests not done */
    int desired;   /* pods asked of the backend */
    /* Figures for /status and metrics. */
    uint64_t requests_by_class[6]; /* 1xx..5xx, [0] for no status */
    uint64_t cold_starts;
    /* Cold-start durations, cumulative buckets at observe.c's bounds. */
    uint64_t cold_start_buckets[16];
    double cold_start_seconds_sum;
    uint64_t scale_decisions;
    int cold_start_pending; /* a request is held while no pod is ready */
    int retired; /* no longer in the config: gets no new request */
    double peer_load; /* held + in flight at the other activator replicas */
    void *scaler; /* scaler.c's per-revision state */
};

struct act {
    uv_loop_t *loop;
    kp_activator_config_t *cfg; /* the current one */
    /* Earlier configs: revisions they named may still be draining, so
     * they live until exit. */
    kp_activator_config_t **old_cfgs;
    size_t n_old_cfgs;
    kp_router_t *router;
    act_backend_t *backend;
    act_revision_t **revisions; /* every revision ever configured */
    size_t n_revisions, cap_revisions;
    const char *config_path;
    uv_fs_poll_t config_poll;
    uv_signal_t sighup;
    kp_http_server_t server;
    kp_http_server_t admin_server;
    int max_held; /* per revision, Knative's 10 000 */
    int n_activators; /* ready activator replicas sharing each pod (>= 1) */
    struct act_peers *peers; /* peers.c; NULL when alone */
    const char *identity;    /* this replica's pod name, or "" */
    int draining;
    uint32_t rng;
};

/* revision.c */
void act_revision_init(act_t *act, act_revision_t *rev, const kp_revision_spec_t *spec);
void act_revision_pod_added(void *rev_ctx, const act_pod_info_t *info);
void act_revision_pod_removed(void *rev_ctx, const char *pod_id);
/* A request for this revision: sent to a pod with a free slot, or held. */
void act_revision_admit(act_revision_t *rev, act_request_t *r);
void act_revision_close(act_revision_t *rev);
int act_revision_capacity_per_pod(const act_revision_t *rev);
/* The number of activator replicas sharing the pods changed. */
void act_set_activator_count(act_t *act, int n);

void act_revision_unhold(act_revision_t *rev, act_request_t *r);
void act_revision_request_done(act_request_t *r);
void act_revision_pod_ready(act_pod_t *pod);
void act_revision_pod_unready(act_pod_t *pod);
/* A pod's probe or scrape ended: a removed pod may be freed now. */
void act_revision_pod_settled(act_pod_t *pod);

/* config_reload.c */
/* Makes cfg (taken over) the current configuration: revisions it names
 * are created or updated, others retired. -1 (cfg freed) on failure. */
int act_config_apply(act_t *act, kp_activator_config_t *cfg);
/* Re-reads the file when it changes (ConfigMap updates included) or on
 * SIGHUP; an invalid file is logged and the running config stays. */
void act_config_watch_start(act_t *act, const char *path);
void act_config_watch_stop(act_t *act);
void act_config_free_all(act_t *act);
act_revision_t *act_revision_for_spec(act_t *act, const kp_revision_spec_t *spec);

/* handler.c */
void act_handler_forward(act_request_t *r);
void act_handler_reject(act_request_t *r, int status, const char *body);
void act_on_request(kp_http_request_t *req, void *ctx);

/* pod_probe.c */
void act_pod_probe_start(act_pod_t *pod);
void act_pod_probe_stop(act_pod_t *pod);

/* scaler.c */
void act_scaler_init(act_revision_t *rev);
/* The first request held while the revision has no pod: decide at once. */
void act_scaler_poke(act_revision_t *rev);
/* The revision's spec or the global autoscaler settings changed. */
void act_scaler_reconfigure(act_revision_t *rev);
/* A request was held, here or at a peer: if the held and in-flight
 * requests need more pods than asked for, ask for them now rather than at
 * the next tick. */
void act_scaler_note_held(act_revision_t *rev);
/* A pod is ready that this replica did not ask for (another one raised the
 * revision from zero): keep it as if a request had come, so that the
 * windows, not a stale decision of zero, say when it goes. */
void act_scaler_adopt(act_revision_t *rev);
void act_scaler_close(act_revision_t *rev);

/* peers.c: the other activator replicas' load, read from their admin
 * port (the same port as ours: they run the same Deployment). */
typedef struct act_peers act_peers_t;
void act_peers_start(act_t *act, int admin_port);
/* The peers' addresses now (ours left out). */
void act_peers_set(act_t *act, const char *const *ips, size_t n);
void act_peers_stop(act_t *act);

uint32_t act_random(act_t *act);

#endif
