/* The activator process: one act_t, owned by main.c, holding the current
 * configuration, the revisions ever configured, the backend and the
 * servers. Each module reaches what it needs from here; none of them
 * calls back into main.c. */
#ifndef KP_ACTIVATOR_H
#define KP_ACTIVATOR_H

#include <stdint.h>
#include <uv.h>

#include "activator/backend/backend.h"
#include "activator/config/config.h"
#include "base/rng.h"
#include "capacity.h"
#include "http/server.h"
#include "router.h"

typedef struct act_revision act_revision_t;

typedef struct act {
    uv_loop_t *loop;
    kp_activator_config_t *cfg; /* the current one; revisions keep copies of their specs */
    kp_router_t *router;
    act_backend_t *backend;
    /* The current config's revisions, and retired ones until they are idle
     * (revisions.c). */
    act_revision_t **revisions;
    size_t n_revisions, cap_revisions;
    uv_timer_t reap_timer; /* frees idle retired revisions */
    int reap_timer_on;
    const char *config_path;
    /* When set, a config read from the file goes through it (taken over)
     * instead of straight to act_revisions_apply: the Knative controller
     * merges it with the services the cluster's objects define. */
    int (*apply_file_config)(void *ctx, kp_activator_config_t *cfg);
    void *apply_file_config_ctx;
    uv_fs_poll_t config_poll; /* config_watch.c */
    uv_signal_t sighup;
    kp_http_server_t server;       /* traffic (handler.c) */
    kp_http_server_t admin_server; /* /status, /metrics, /load (observe.c) */
    int max_held;                  /* per revision, Knative's 10 000 */
    act_capacity_t capacity;       /* every revision together (capacity.h) */
    int n_activators;              /* ready activator replicas sharing each pod (>= 1) */
    int activator_index;           /* ours among them by pod name; -1: not one of them */
    struct act_peers *peers;       /* peers.c; NULL when alone */
    const char *identity;          /* this replica's pod name, or "" */
    int draining;
    kp_rng_t rng; /* load balancing and the traffic split; seeded per process */
} act_t;

static inline uint32_t act_random(act_t *act)
{
    return (uint32_t)(kp_rng_next(&act->rng) >> 32);
}

#endif
