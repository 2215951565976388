/* A revision's throttler: pods and their free slots, the held requests and
 * Knative's load balancing. See revision.h. */
#include "revision.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "slot_share.h"

/* Upper bounds (seconds) of the cold-start histogram: from a warm process
 * start (milliseconds) to a slow image pull. */
static const double cold_start_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                           1,     2.5,  5,     10,   30,  60,   120};

static int pod_has_slot(const act_revision_t *rev, const act_pod_t *pod)
{
    int cc = rev->spec->container_concurrency;
    return pod->ready && !pod->removed && (cc == 0 || pod->in_flight < pod->slots);
}

/* --- pods with a free slot: a min-heap on arrival order --- */

static int free_before(const act_pod_t *a, const act_pod_t *b)
{
    return a->seq < b->seq;
}

static void free_place(act_revision_t *rev, int i, act_pod_t *pod)
{
    rev->free_pods[i] = pod;
    pod->free_index = i;
}

static void free_sift_up(act_revision_t *rev, int i)
{
    act_pod_t *pod = rev->free_pods[i];
    while (i > 0 && free_before(pod, rev->free_pods[(i - 1) / 2])) {
        free_place(rev, i, rev->free_pods[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    free_place(rev, i, pod);
}

static void free_sift_down(act_revision_t *rev, int i)
{
    act_pod_t *pod = rev->free_pods[i];
    for (;;) {
        int child = 2 * i + 1;
        if (child >= rev->n_free)
            break;
        if (child + 1 < rev->n_free && free_before(rev->free_pods[child + 1], rev->free_pods[child]))
            child++;
        if (!free_before(rev->free_pods[child], pod))
            break;
        free_place(rev, i, rev->free_pods[child]);
        i = child;
    }
    free_place(rev, i, pod);
}

static void free_remove(act_revision_t *rev, act_pod_t *pod)
{
    int i = pod->free_index;
    pod->free_index = -1;
    act_pod_t *last = rev->free_pods[--rev->n_free];
    if (last == pod)
        return;
    free_place(rev, i, last);
    free_sift_up(rev, i);
    free_sift_down(rev, last->free_index);
}

/* Puts pod in the heap or takes it out as its slots say. Adding needs
 * room: on allocation failure the pod is left out (chosen again once
 * another change makes room). */
static void pod_slots_changed(act_revision_t *rev, act_pod_t *pod)
{
    int has_slot = pod_has_slot(rev, pod);
    if (!has_slot && pod->free_index >= 0) {
        free_remove(rev, pod);
    } else if (has_slot && pod->free_index < 0) {
        if (rev->n_free == rev->cap_free) {
            int cap = rev->cap_free ? rev->cap_free * 2 : 8;
            act_pod_t **grown = realloc(rev->free_pods, (size_t)cap * sizeof *grown);
            if (!grown)
                return;
            rev->free_pods = grown;
            rev->cap_free = cap;
        }
        rev->free_pods[rev->n_free] = pod;
        rev->n_free++;
        free_sift_up(rev, rev->n_free - 1);
    }
}

static int by_pod_id(const void *a, const void *b)
{
    return strcmp((*(act_pod_t *const *)a)->info.id, (*(act_pod_t *const *)b)->info.id);
}

/* Each pod's slots that are this replica's (slot_share.h). Alone, or
 * unlimited, every pod's share is its whole containerConcurrency, and a
 * pod added or removed changes no other's (act_revision_pod_add and
 * _remove call this only when replicas share). */
static void share_slots(act_revision_t *rev)
{
    int cc = rev->spec->container_concurrency;
    int replicas = rev->act->n_activators, self = rev->act->activator_index;
    act_pod_t **sorted = NULL;
    size_t n = 0;
    if (cc > 0 && replicas > 1 && self >= 0 && rev->n_pods > 0)
        sorted = malloc((size_t)rev->n_pods * sizeof *sorted);
    if (sorted) {
        for (act_pod_t *p = rev->pods; p; p = p->next)
            if (!p->removed)
                sorted[n++] = p;
        qsort(sorted, n, sizeof *sorted, by_pod_id);
        int owned = 0;
        for (size_t i = 0; i < n; i++) {
            sorted[i]->slots = act_slot_share(cc, replicas, self, i);
            owned += sorted[i]->slots;
        }
        /* Fewer slots than replicas: rather than hold its requests until
         * the autoscaler adds pods, a replica that owns none borrows one,
         * and the pod's queue-proxy queues the excess. */
        if (owned == 0 && n > 0)
            sorted[(size_t)self % n]->slots = 1;
        free(sorted);
    } else {
        /* Our place among the replicas unknown (not yet a ready endpoint)
         * or no memory for the sort: an even share, at least one. */
        int even = replicas > 1 && cc > 0 ? (cc / replicas > 0 ? cc / replicas : 1) : cc;
        for (act_pod_t *p = rev->pods; p; p = p->next)
            p->slots = even;
    }
    for (act_pod_t *p = rev->pods; p; p = p->next)
        pod_slots_changed(rev, p);
}

static int shares_with_replicas(const act_revision_t *rev)
{
    return rev->spec->container_concurrency > 0 && rev->act->n_activators > 1;
}

void act_revision_capacity_changed(act_revision_t *rev)
{
    share_slots(rev);
    act_revision_dispatch(rev);
}

/* --- load balancing (Knative's policies), O(1) --- */

static act_pod_t *pick_least_of_two(act_revision_t *rev)
{
    act_pod_t *a = rev->free_pods[act_random(rev->act) % (uint32_t)rev->n_free];
    act_pod_t *b = rev->free_pods[act_random(rev->act) % (uint32_t)rev->n_free];
    return b->in_flight < a->in_flight ? b : a;
}

static act_pod_t *pick_round_robin(act_revision_t *rev)
{
    return rev->free_pods[rev->rr_next++ % (unsigned)rev->n_free];
}

static act_pod_t *pick_pod(act_revision_t *rev)
{
    if (rev->n_free == 0)
        return NULL;
    int cc = rev->spec->container_concurrency;
    if (cc == 0)
        return pick_least_of_two(rev);
    if (cc <= 3)
        return rev->free_pods[0]; /* first free: the oldest pod with a slot */
    return pick_round_robin(rev);
}

/* --- held requests --- */

static void grant(act_revision_t *rev, act_claim_t *claim, act_pod_t *pod)
{
    claim->pod = pod;
    pod->in_flight++;
    rev->in_flight++;
    pod_slots_changed(rev, pod);
    claim->ops->granted(claim);
}

static void held_unlink(act_revision_t *rev, act_claim_t *claim)
{
    if (claim->prev_held)
        claim->prev_held->next_held = claim->next_held;
    else
        rev->held_head = claim->next_held;
    if (claim->next_held)
        claim->next_held->prev_held = claim->prev_held;
    else
        rev->held_tail = claim->prev_held;
    claim->next_held = claim->prev_held = NULL;
    claim->held = 0;
    rev->n_held--;
}

int act_revision_desired(const act_revision_t *rev)
{
    return rev->autoscaler ? act_autoscaler_desired(rev->autoscaler) : 0;
}

static void on_held_timer(uv_timer_t *t);

static void arm_held_timer(act_revision_t *rev)
{
    if (!rev->held_head)
        return;
    uint64_t deadline = rev->held_head->start_ns + (uint64_t)(rev->spec->timeout_s * 1e9);
    uint64_t now = kp_now_ns();
    uint64_t ms = deadline > now ? (deadline - now) / 1000000 + 1 : 0;
    uv_timer_start(&rev->held_timer, on_held_timer, ms, 0);
}

static void on_held_timer(uv_timer_t *t)
{
    act_revision_t *rev = t->data;
    uint64_t now = kp_now_ns();
    uint64_t timeout_ns = (uint64_t)(rev->spec->timeout_s * 1e9);
    while (rev->held_head && rev->held_head->start_ns + timeout_ns <= now) {
        act_claim_t *claim = rev->held_head;
        held_unlink(rev, claim);
        char body[512];
        snprintf(body, sizeof body,
                 "request for revision %.300s timed out after %ds waiting for a ready pod "
                 "(ready pods: %d, desired: %d)\n",
                 rev->key, rev->spec->timeout_s, rev->n_ready, act_revision_desired(rev));
        act_revision_note_failure(rev,
                                  "a request timed out after %ds waiting for a ready pod "
                                  "(ready: %d, desired: %d)",
                                  rev->spec->timeout_s, rev->n_ready, act_revision_desired(rev));
        claim->ops->refused(claim, 503, body);
    }
    arm_held_timer(rev);
}

/* The oldest request of a start from zero tells how long the start took as
 * seen by a client. */
static void record_cold_start(act_revision_t *rev, const act_claim_t *claim)
{
    double held_seconds = (double)(kp_now_ns() - claim->start_ns) / 1e9;
    rev->cold_start_pending = 0;
    rev->cold_starts++;
    kp_histogram_observe(&rev->cold_start_seconds, held_seconds);
    kp_log_fields(KP_LOG_INFO, "cold start", KP_LOG_STR("revision", rev->key),
                  KP_LOG_NUM("held_seconds", round(held_seconds * 1e6) / 1e6),
                  KP_LOG_NUM("held_ms", round(held_seconds * 1e6) / 1e3));
}

/* Hands held requests, oldest first, to pods with a free slot. */
void act_revision_dispatch(act_revision_t *rev)
{
    while (rev->held_head) {
        act_pod_t *pod = pick_pod(rev);
        if (!pod)
            break;
        act_claim_t *claim = rev->held_head;
        held_unlink(rev, claim);
        if (rev->cold_start_pending)
            record_cold_start(rev, claim);
        grant(rev, claim, pod);
    }
    if (!rev->held_head)
        uv_timer_stop(&rev->held_timer);
    else
        arm_held_timer(rev);
}

/* Class hpa.autoscaling.knative.dev on Kubernetes: the reconciler's HPA
 * owns the Deployment's replicas; neither a scale nor a wake of ours may
 * fight it. The local backend has no HPA: it runs the autoscaler's fixed
 * count (min-scale, at least one). */
static int hpa_scaled(const act_revision_t *rev)
{
    const act_autoscaler_state_t *st =
        rev->autoscaler ? act_autoscaler_state(rev->autoscaler) : NULL;
    return st && st->hpa_class && strcmp(rev->act->backend->name, "local") != 0;
}

/* --- a revision that cannot run --- */

const char *act_revision_failure(const act_revision_t *rev)
{
    if (rev->n_ready > 0)
        return NULL;
    /* The reconciler's word (the Revision's own status) comes first. */
    if (rev->spec->failure && *rev->spec->failure)
        return rev->spec->failure;
    return rev->start_failure[0] ? rev->start_failure : NULL;
}

static void refuse_failed(act_revision_t *rev, act_claim_t *claim, const char *failure)
{
    char body[700];
    snprintf(body, sizeof body, "revision %.200s cannot start: %.380s\n", rev->spec->name, failure);
    rev->failed_fast++;
    claim->ops->refused(claim, 503, body);
}

/* Requests still come: the pods asked for keep being started (the backend
 * spaces the attempts with its back-off), so a fixed cause is seen. */
static void keep_trying(act_revision_t *rev)
{
    if (rev->autoscaler && act_revision_desired(rev) == 0 && !rev->retired)
        act_autoscaler_adopt(rev->autoscaler);
}

/* Nothing held waits for a revision that cannot run. */
static void fail_held(act_revision_t *rev)
{
    const char *failure = act_revision_failure(rev);
    if (!failure)
        return;
    while (rev->held_head) {
        act_claim_t *claim = rev->held_head;
        held_unlink(rev, claim);
        refuse_failed(rev, claim, failure);
    }
    rev->cold_start_pending = 0;
    uv_timer_stop(&rev->held_timer);
}

void act_revision_start_failed(act_revision_t *rev, act_pod_t *pod, const char *reason)
{
    if (pod && pod->ever_ready)
        return;
    if (strcmp(rev->start_failure, reason) != 0)
        kp_log_kv(KP_LOG_WARN, "revision cannot start", "revision", rev->key, "reason", reason,
                  NULL);
    /* The backend's own account of the attempt is among the recent
     * failures already (revision_failed). */
    snprintf(rev->start_failure, sizeof rev->start_failure, "%s", reason);
    fail_held(rev);
}

void act_revision_demand_rose(act_revision_t *rev)
{
    if (rev->autoscaler)
        act_autoscaler_demand_rose(rev->autoscaler);
}

void act_revision_admit(act_revision_t *rev, act_claim_t *claim)
{
    claim->rev = rev;
    claim->pod = NULL;
    if (!rev->held_head) {
        act_pod_t *pod = pick_pod(rev);
        if (pod) {
            grant(rev, claim, pod);
            return;
        }
    }
    const char *failure = act_revision_failure(rev);
    if (failure) {
        refuse_failed(rev, claim, failure);
        keep_trying(rev);
        return;
    }
    if (rev->n_held >= rev->act->max_held) {
        claim->ops->refused(claim, 503, "pending request queue full\n");
        return;
    }
    claim->held = 1;
    claim->prev_held = rev->held_tail;
    claim->next_held = NULL;
    if (rev->held_tail)
        rev->held_tail->next_held = claim;
    else
        rev->held_head = claim;
    rev->held_tail = claim;
    rev->n_held++;
    if (rev->held_head == claim)
        arm_held_timer(rev);
    if (rev->n_ready == 0) {
        act_backend_t *backend = rev->act->backend;
        rev->cold_start_pending = 1;
        if (rev->autoscaler)
            act_autoscaler_poke(rev->autoscaler);
        if (backend->wake && !hpa_scaled(rev))
            backend->wake(backend, rev->backend_rev);
    }
    act_revision_demand_rose(rev);
}

void act_revision_cancel(act_claim_t *claim)
{
    act_revision_t *rev = claim->rev;
    if (!claim->held)
        return;
    held_unlink(rev, claim);
    if (!rev->held_head)
        uv_timer_stop(&rev->held_timer);
}

/* --- pods --- */

static void on_pod_timer_closed(uv_handle_t *h)
{
    act_pod_t *pod = h->data;
    kp_upstream_pool_release(pod->pool);
    kp_h2c_pool_release(pod->h2_pool);
    if (pod->metrics_pool)
        kp_upstream_pool_release(pod->metrics_pool);
    free(pod);
}

static void pod_unlink(act_revision_t *rev, act_pod_t *pod)
{
    if (pod->prev)
        pod->prev->next = pod->next;
    else
        rev->pods = pod->next;
    if (pod->next)
        pod->next->prev = pod->prev;
    rev->n_pods--;
}

/* Frees a removed pod once nothing refers to it any more. */
static void pod_maybe_free(act_pod_t *pod)
{
    if (!pod->removed || pod->backend_holds || pod->in_flight > 0 || pod->probing ||
        pod->scraping || pod->closing)
        return;
    pod->closing = 1;
    pod_unlink(pod->rev, pod);
    uv_close((uv_handle_t *)&pod->probe_timer, on_pod_timer_closed);
}

void act_revision_release(act_claim_t *claim)
{
    act_revision_t *rev = claim->rev;
    act_pod_t *pod = claim->pod;
    if (!pod)
        return;
    claim->pod = NULL;
    pod->in_flight--;
    rev->in_flight--;
    pod_slots_changed(rev, pod);
    if (pod->removed)
        pod_maybe_free(pod);
    act_revision_dispatch(rev);
}

void act_revision_pod_ready(act_pod_t *pod)
{
    act_revision_t *rev = pod->rev;
    if (pod->ready || pod->removed)
        return;
    pod->ready = 1;
    pod->ever_ready = 1;
    rev->n_ready++;
    if (rev->start_failure[0]) {
        kp_log_kv(KP_LOG_INFO, "revision can start again", "revision", rev->key, "pod",
                  pod->info.id, NULL);
        rev->start_failure[0] = '\0';
    }
    pod_slots_changed(rev, pod);
    kp_log_kv(KP_LOG_INFO, "pod ready", "revision", rev->key, "pod", pod->info.id, NULL);
    /* A pod nobody here asked for: another replica raised the revision
     * from zero for a request it holds. */
    if (rev->autoscaler && act_revision_desired(rev) == 0 && rev->act->backend->wake)
        act_autoscaler_adopt(rev->autoscaler);
    act_revision_dispatch(rev);
}

void act_revision_pod_unready(act_pod_t *pod)
{
    if (!pod->ready)
        return;
    pod->ready = 0;
    pod->rev->n_ready--;
    pod_slots_changed(pod->rev, pod);
    fail_held(pod->rev);
}

void act_revision_pod_settled(act_pod_t *pod)
{
    pod_maybe_free(pod);
}

act_pod_t *act_revision_pod_add(act_revision_t *rev, const act_pod_info_t *info)
{
    int cc = rev->spec->container_concurrency;
    kp_upstream_pool_t *pool =
        kp_upstream_pool_for(rev->act->loop, info->ip, info->serving_port, cc > 0 ? cc : 100);
    kp_h2c_pool_t *h2_pool =
        pool ? kp_h2c_pool_for(rev->act->loop, info->ip, info->serving_port, cc > 0 ? cc : 100)
             : NULL;
    act_pod_t *pod = h2_pool ? calloc(1, sizeof *pod) : NULL;
    if (!pod) {
        if (pool)
            kp_upstream_pool_release(pool);
        if (h2_pool)
            kp_h2c_pool_release(h2_pool);
        kp_log_kv(KP_LOG_ERROR, "pod left out", "revision", rev->key, "pod", info->id, "ip",
                  info->ip, "why", pool ? "out of memory" : "not an IP address", NULL);
        return NULL;
    }
    pod->rev = rev;
    pod->info = *info;
    pod->added_ns = kp_now_ns();
    pod->seq = rev->pod_seq++;
    pod->free_index = -1;
    pod->pool = pool;
    pod->h2_pool = h2_pool;
    uv_timer_init(rev->act->loop, &pod->probe_timer);
    pod->probe_timer.data = pod;
    pod->next = rev->pods;
    if (rev->pods)
        rev->pods->prev = pod;
    rev->pods = pod;
    rev->n_pods++;
    pod->slots = cc;
    if (shares_with_replicas(rev))
        act_revision_capacity_changed(rev); /* the others' places moved */
    return pod;
}

void act_revision_pod_remove(act_pod_t *pod)
{
    act_revision_t *rev = pod->rev;
    act_revision_pod_unready(pod);
    pod->removed = 1;
    pod_slots_changed(rev, pod);
    pod_maybe_free(pod);
    if (shares_with_replicas(rev))
        act_revision_capacity_changed(rev); /* the others' places moved */
}

/* --- the revision --- */

static void read_demand(void *ctx, act_demand_t *out)
{
    const act_revision_t *rev = ctx;
    out->ready_pods = rev->n_ready;
    out->held = rev->n_held;
    out->in_flight = rev->in_flight;
    out->peer_load = rev->peer_load;
}

static void scale(void *ctx, int from, int to, const char *reason)
{
    act_revision_t *rev = ctx;
    act_backend_t *backend = rev->act->backend;
    if (hpa_scaled(rev))
        return;
    /* Every replica decides; only the one whose decision is written says
     * it scaled, so that the logs of all replicas tell one story. */
    int writes = !backend->writes_scale || backend->writes_scale(backend);
    kp_log_fields(KP_LOG_INFO, writes ? "scale" : "scale decided here, written by another replica",
                  KP_LOG_STR("revision", rev->key), KP_LOG_INT("from", from), KP_LOG_INT("to", to),
                  KP_LOG_STR("why", reason), KP_LOG_INT("ready", rev->n_ready),
                  KP_LOG_INT("held", rev->n_held));
    backend->set_scale(backend, rev->backend_rev, to);
}

void act_revision_note_failure(act_revision_t *rev, const char *fmt, ...)
{
    act_failure_t f = {.at_ns = kp_now_ns(), .count = 1};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.reason, sizeof f.reason, fmt, ap);
    va_end(ap);
    /* The same reason again moves to the front; otherwise the oldest goes. */
    size_t n = ACT_REVISION_FAILURES - 1;
    for (size_t i = 0; i < ACT_REVISION_FAILURES; i++) {
        if (rev->failures[i].at_ns && strcmp(rev->failures[i].reason, f.reason) == 0) {
            f.count += rev->failures[i].count;
            n = i;
            break;
        }
    }
    memmove(&rev->failures[1], &rev->failures[0], n * sizeof rev->failures[0]);
    rev->failures[0] = f;
}

static void autoscaler_config(const act_revision_t *rev, kp_kpa_config_t *cfg)
{
    act_autoscaler_config(rev->act->cfg, rev->spec, cfg);
    if (rev->retired) {
        cfg->min_scale = 0;
        cfg->unreachable = 1;
    }
}

act_revision_t *act_revision_new(act_t *act, const kp_revision_spec_t *spec)
{
    act_revision_t *rev = calloc(1, sizeof *rev);
    if (!rev)
        return NULL;
    if (kp_revision_spec_copy(&rev->spec_storage, spec) != 0) {
        free(rev);
        return NULL;
    }
    rev->act = act;
    rev->spec = &rev->spec_storage;
    snprintf(rev->key, sizeof rev->key, "%s/%s", spec->namespace_, spec->name);
    kp_histogram_init(&rev->cold_start_seconds, cold_start_bounds,
                      sizeof cold_start_bounds / sizeof cold_start_bounds[0]);
    kp_kpa_config_t cfg;
    autoscaler_config(rev, &cfg);
    act_autoscaler_hooks_t hooks = {
        .read_demand = read_demand, .scale = scale, .ctx = rev, .name = rev->key};
    rev->autoscaler = act_autoscaler_new(act->loop, &cfg, &hooks);
    if (!rev->autoscaler) {
        kp_revision_spec_free(&rev->spec_storage);
        free(rev);
        return NULL;
    }
    uv_timer_init(act->loop, &rev->held_timer);
    rev->held_timer.data = rev;
    rev->backend_rev = act->backend->add_revision(act->backend, rev->spec, rev);
    return rev;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Whether a and b start the same process: command and environment. */
static int same_pod_template(const kp_revision_spec_t *a, const kp_revision_spec_t *b)
{
    if (a->n_command != b->n_command || a->n_env != b->n_env)
        return 0;
    for (size_t i = 0; i < a->n_command; i++)
        if (!same_str(a->command[i], b->command[i]))
            return 0;
    for (size_t i = 0; i < a->n_env; i++)
        if (!same_str(a->env[i].key, b->env[i].key) || !same_str(a->env[i].value, b->env[i].value))
            return 0;
    return 1;
}

int act_revision_reconfigure(act_revision_t *rev, const kp_revision_spec_t *spec)
{
    kp_revision_spec_t fresh;
    if (kp_revision_spec_copy(&fresh, spec) != 0)
        return -1;
    /* A start failure was the old command's or environment's. */
    if (rev->start_failure[0] && !same_pod_template(&rev->spec_storage, &fresh)) {
        kp_log_kv(KP_LOG_INFO, "revision changed; its start failure is forgotten", "revision",
                  rev->key, NULL);
        rev->start_failure[0] = '\0';
    }
    /* In place: the backend holds the address. */
    kp_revision_spec_free(&rev->spec_storage);
    rev->spec_storage = fresh;
    rev->retired = 0;
    if (rev->autoscaler) {
        kp_kpa_config_t cfg;
        autoscaler_config(rev, &cfg);
        act_autoscaler_reconfigure(rev->autoscaler, &cfg);
    }
    act_revision_capacity_changed(rev);
    fail_held(rev);
    return 0;
}

void act_revision_retire(act_revision_t *rev)
{
    if (rev->retired)
        return;
    rev->retired = 1;
    if (rev->autoscaler) {
        kp_kpa_config_t cfg;
        autoscaler_config(rev, &cfg);
        act_autoscaler_reconfigure(rev->autoscaler, &cfg);
    }
}

int act_revision_is_idle(const act_revision_t *rev)
{
    return rev->n_held == 0 && rev->in_flight == 0 && rev->n_pods == 0 &&
           act_revision_desired(rev) == 0;
}

static void on_held_timer_closed(uv_handle_t *h)
{
    act_revision_t *rev = h->data;
    if (rev->on_closed)
        rev->on_closed(rev);
}

void act_revision_close(act_revision_t *rev, void (*on_closed)(act_revision_t *rev))
{
    while (rev->held_head) {
        act_claim_t *claim = rev->held_head;
        held_unlink(rev, claim);
        claim->ops->refused(claim, 503, "activator shutting down\n");
    }
    if (rev->autoscaler) {
        act_autoscaler_close(rev->autoscaler);
        rev->autoscaler = NULL;
    }
    rev->on_closed = on_closed;
    uv_close((uv_handle_t *)&rev->held_timer, on_held_timer_closed);
}

void act_revision_free(act_revision_t *rev)
{
    act_response_stats_free(&rev->responses);
    kp_revision_spec_free(&rev->spec_storage);
    free(rev->free_pods);
    free(rev);
}
