/* A revision in the activator: its pods and their free slots, the requests
 * held while no pod has one, and load balancing as Knative's throttler
 * does it (first free pod for small containerConcurrency, round robin
 * above, the less loaded of two random pods when unlimited). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activator.h"
#include "base/log.h"
#include "observe.h"

int act_revision_capacity_per_pod(const act_revision_t *rev)
{
    int cc = rev->spec->container_concurrency;
    int n = rev->act->n_activators > 1 ? rev->act->n_activators : 1;
    /* Knative divides each pod's slots among the ready activators, so the
     * pod's limit holds whichever replica a request went through. At least
     * one slot each: with more replicas than slots, the queue-proxy's own
     * breaker queues the excess. */
    if (cc == 0 || n == 1)
        return cc;
    return cc / n > 0 ? cc / n : 1;
}

static int pod_has_slot(const act_revision_t *rev, const act_pod_t *pod)
{
    int cc = act_revision_capacity_per_pod(rev);
    return pod->ready && !pod->removed && (cc == 0 || pod->in_flight < cc);
}

static act_pod_t *pick_least_of_two(act_revision_t *rev)
{
    int n = 0;
    for (act_pod_t *p = rev->pods; p; p = p->next)
        if (pod_has_slot(rev, p))
            n++;
    if (n == 0)
        return NULL;
    int a = (int)(act_random(rev->act) % (uint32_t)n);
    int b = (int)(act_random(rev->act) % (uint32_t)n);
    act_pod_t *pa = NULL, *pb = NULL;
    int i = 0;
    for (act_pod_t *p = rev->pods; p; p = p->next) {
        if (!pod_has_slot(rev, p))
            continue;
        if (i == a)
            pa = p;
        if (i == b)
            pb = p;
        i++;
    }
    return pb->in_flight < pa->in_flight ? pb : pa;
}

static act_pod_t *pick_first_free(act_revision_t *rev)
{
    for (act_pod_t *p = rev->pods; p; p = p->next)
        if (pod_has_slot(rev, p))
            return p;
    return NULL;
}

static act_pod_t *pick_round_robin(act_revision_t *rev)
{
    if (rev->n_pods == 0)
        return NULL;
    unsigned start = rev->rr_next % (unsigned)rev->n_pods;
    for (int pass = 0; pass < 2; pass++) {
        unsigned i = 0;
        for (act_pod_t *p = rev->pods; p; p = p->next, i++) {
            if ((pass == 0 && i < start) || (pass == 1 && i >= start))
                continue;
            if (pod_has_slot(rev, p)) {
                rev->rr_next = i + 1;
                return p;
            }
        }
    }
    return NULL;
}

static act_pod_t *pick_pod(act_revision_t *rev)
{
    int cc = act_revision_capacity_per_pod(rev);
    if (cc == 0)
        return pick_least_of_two(rev);
    if (cc <= 3)
        return pick_first_free(rev);
    return pick_round_robin(rev);
}

static void send_to_pod(act_revision_t *rev, act_request_t *r, act_pod_t *pod)
{
    r->pod = pod;
    pod->in_flight++;
    rev->in_flight++;
    act_handler_forward(r);
}

static void held_unlink(act_revision_t *rev, act_request_t *r)
{
    if (r->prev_held)
        r->prev_held->next_held = r->next_held;
    else
        rev->held_head = r->next_held;
    if (r->next_held)
        r->next_held->prev_held = r->prev_held;
    else
        rev->held_tail = r->prev_held;
    r->next_held = r->prev_held = NULL;
    r->held = 0;
    rev->n_held--;
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
        act_request_t *r = rev->held_head;
        held_unlink(rev, r);
        char body[512];
        snprintf(body, sizeof body,
                 "request for revision %.300s timed out after %ds waiting for a ready pod "
                 "(ready pods: %d, desired: %d)\n",
                 rev->key, rev->spec->timeout_s, rev->n_ready, rev->desired);
        act_handler_reject(r, 503, body);
    }
    arm_held_timer(rev);
}

/* Hands held requests, oldest first, to pods with a free slot. */
static void dispatch_held(act_revision_t *rev)
{
    while (rev->held_head) {
        act_pod_t *pod = pick_pod(rev);
        if (!pod)
            break;
        act_request_t *r = rev->held_head;
        held_unlink(rev, r);
        if (rev->cold_start_pending) {
            /* The oldest request of a start from zero tells how long the
             * start took as seen by a client. */
            rev->cold_start_pending = 0;
            rev->cold_starts++;
            act_observe_cold_start(rev, (double)(kp_now_ns() - r->start_ns) / 1e9);
        }
        send_to_pod(rev, r, pod);
    }
    if (!rev->held_head)
        uv_timer_stop(&rev->held_timer);
    else
        arm_held_timer(rev);
}

void act_revision_admit(act_revision_t *rev, act_request_t *r)
{
    r->rev = rev;
    if (!rev->held_head) {
        act_pod_t *pod = pick_pod(rev);
        if (pod) {
            send_to_pod(rev, r, pod);
            return;
        }
    }
    if (rev->n_held >= rev->act->max_held) {
        act_handler_reject(r, 503, "pending request queue full\n");
        return;
    }
    r->held = 1;
    r->prev_held = rev->held_tail;
    r->next_held = NULL;
    if (rev->held_tail)
        rev->held_tail->next_held = r;
    else
        rev->held_head = r;
    rev->held_tail = r;
    rev->n_held++;
    if (rev->held_head == r)
        arm_held_timer(rev);
    if (rev->n_ready == 0) {
        act_backend_t *backend = rev->act->backend;
        rev->cold_start_pending = 1;
        act_scaler_poke(rev);
        if (backend->wake)
            backend->wake(backend, rev->backend_rev);
    }
    act_scaler_note_held(rev);
}

/* The client left while its request was held. */
void act_revision_unhold(act_revision_t *rev, act_request_t *r)
{
    if (!r->held)
        return;
    held_unlink(rev, r);
    if (!rev->held_head)
        uv_timer_stop(&rev->held_timer);
}

/* --- pods --- */

static void on_pod_timer_closed(uv_handle_t *h)
{
    act_pod_t *pod = h->data;
    kp_upstream_pool_release(pod->pool);
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
    if (!pod->removed || pod->in_flight > 0 || pod->probing || pod->scraping || pod->closing)
        return;
    pod->closing = 1;
    pod_unlink(pod->rev, pod);
    uv_close((uv_handle_t *)&pod->probe_timer, on_pod_timer_closed);
}

void act_set_activator_count(act_t *act, int n)
{
    if (n < 1 || n == act->n_activators)
        return;
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    kp_log_kv(KP_LOG_INFO, "activator replicas changed", "ready", count, NULL);
    act->n_activators = n;
    for (size_t i = 0; i < act->n_revisions; i++)
        dispatch_held(act->revisions[i]);
}

void act_revision_request_done(act_request_t *r)
{
    act_revision_t *rev = r->rev;
    act_pod_t *pod = r->pod;
    if (!pod)
        return;
    r->pod = NULL;
    pod->in_flight--;
    rev->in_flight--;
    if (pod->removed)
        pod_maybe_free(pod);
    dispatch_held(rev);
}

void act_revision_pod_ready(act_pod_t *pod)
{
    act_revision_t *rev = pod->rev;
    if (pod->ready || pod->removed)
        return;
    pod->ready = 1;
    rev->n_ready++;
    kp_log_kv(KP_LOG_INFO, "pod ready", "revision", rev->key, "pod", pod->info.id, NULL);
    /* A pod nobody here asked for: another replica raised the revision
     * from zero for a request it holds. */
    if (rev->desired == 0 && rev->act->backend->wake)
        act_scaler_adopt(rev);
    dispatch_held(rev);
}

void act_revision_pod_unready(act_pod_t *pod)
{
    if (!pod->ready)
        return;
    pod->ready = 0;
    pod->rev->n_ready--;
}

void act_revision_pod_settled(act_pod_t *pod)
{
    pod_maybe_free(pod);
}

void act_revision_pod_added(void *rev_ctx, const act_pod_info_t *info)
{
    act_revision_t *rev = rev_ctx;
    int cc = act_revision_capacity_per_pod(rev);
    kp_upstream_pool_t *pool =
        kp_upstream_pool_for(rev->act->loop, info->ip, info->serving_port, cc > 0 ? cc : 100);
    act_pod_t *pod = pool ? calloc(1, sizeof *pod) : NULL;
    if (!pod) {
        if (pool)
            kp_upstream_pool_release(pool);
        kp_log_kv(KP_LOG_ERROR, "pod left out", "revision", rev->key, "pod", info->id, "ip",
                  info->ip, "why", pool ? "out of memory" : "not an IP address", NULL);
        return;
    }
    pod->rev = rev;
    pod->info = *info;
    pod->added_ns = kp_now_ns();
    pod->pool = pool;
    uv_timer_init(rev->act->loop, &pod->probe_timer);
    pod->probe_timer.data = pod;
    pod->next = rev->pods;
    if (rev->pods)
        rev->pods->prev = pod;
    rev->pods = pod;
    rev->n_pods++;
    act_pod_probe_start(pod);
}

void act_revision_pod_removed(void *rev_ctx, const char *pod_id)
{
    act_revision_t *rev = rev_ctx;
    for (act_pod_t *pod = rev->pods; pod; pod = pod->next) {
        if (pod->removed || strcmp(pod->info.id, pod_id) != 0)
            continue;
        act_revision_pod_unready(pod);
        pod->removed = 1;
        act_pod_probe_stop(pod);
        pod_maybe_free(pod);
        return;
    }
}

void act_revision_init(act_t *act, act_revision_t *rev, const kp_revision_spec_t *spec)
{
    memset(rev, 0, sizeof *rev);
    rev->act = act;
    rev->spec = spec;
    snprintf(rev->key, sizeof rev->key, "%s/%s", spec->namespace_, spec->name);
    uv_timer_init(act->loop, &rev->held_timer);
    rev->held_timer.data = rev;
    rev->backend_rev = act->backend->add_revision(act->backend, spec, rev);
    act_scaler_init(rev);
}

void act_revision_close(act_revision_t *rev)
{
    while (rev->held_head) {
        act_request_t *r = rev->held_head;
        held_unlink(rev, r);
        act_handler_reject(r, 503, "activator shutting down\n");
    }
    act_scaler_close(rev);
    uv_close((uv_handle_t *)&rev->held_timer, NULL);
    for (act_pod_t *pod = rev->pods, *next; pod; pod = next) {
        next = pod->next;
        act_revision_pod_removed(rev, pod->info.id);
    }
}
