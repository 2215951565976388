/* The set of revisions and the wiring of each: see revisions.h. */
#include "revisions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "collector.h"
#include "peers.h"
#include "pod_probe.h"
#include "revision.h"

/* How often retired revisions are looked at: one that is idle is freed. */
#define REAP_PERIOD_MS 1000

static long revision_named(act_t *act, const kp_revision_spec_t *spec)
{
    for (size_t i = 0; i < act->n_revisions; i++) {
        const kp_revision_spec_t *s = act->revisions[i]->spec;
        if (strcmp(s->name, spec->name) == 0 && strcmp(s->namespace_, spec->namespace_) == 0)
            return (long)i;
    }
    return -1;
}

static int revision_add(act_t *act, kp_revision_spec_t *spec)
{
    if (act->n_revisions == act->cap_revisions) {
        size_t cap = act->cap_revisions ? act->cap_revisions * 2 : 8;
        act_revision_t **grown = realloc(act->revisions, cap * sizeof *grown);
        if (!grown)
            return -1;
        act->revisions = grown;
        act->cap_revisions = cap;
    }
    act_revision_t *rev = act_revision_new(act, spec);
    if (!rev)
        return -1;
    rev->collector = act_collector_new(rev);
    if (!rev->collector)
        abort();
    act->revisions[act->n_revisions++] = rev;
    spec->runtime = rev;
    return 0;
}

static void on_reaped(act_revision_t *rev)
{
    act_revision_free(rev);
}

/* A retired revision holds nothing and has no pod: everything of it goes. */
static void reap(act_t *act, size_t i)
{
    act_revision_t *rev = act->revisions[i];
    act->revisions[i] = act->revisions[--act->n_revisions];
    kp_log_kv(KP_LOG_INFO, "revision freed", "revision", rev->key, NULL);
    act_peers_forget_revision(act, rev);
    if (act->backend->remove_revision)
        act->backend->remove_revision(act->backend, rev->backend_rev);
    act_collector_close(rev->collector);
    rev->collector = NULL;
    act_revision_close(rev, on_reaped);
}

static void on_reap_tick(uv_timer_t *t)
{
    act_t *act = t->data;
    for (size_t i = 0; i < act->n_revisions;) {
        act_revision_t *rev = act->revisions[i];
        if (rev->retired && act_revision_is_idle(rev))
            reap(act, i); /* another revision took index i */
        else
            i++;
    }
}

int act_revisions_apply(act_t *act, kp_activator_config_t *cfg)
{
    kp_router_t *router = kp_router_new(cfg);
    unsigned char *named = calloc(act->n_revisions + 1, 1);
    if (!router || !named) {
        kp_router_free(router);
        free(named);
        kp_activator_config_free(cfg);
        free(cfg);
        return -1;
    }
    kp_activator_config_t *previous = act->cfg;
    act->cfg = cfg;
    size_t n_before = act->n_revisions;
    int added = 0, kept = 0, retired = 0;
    for (size_t i = 0; i < cfg->n_services; i++) {
        for (size_t j = 0; j < cfg->services[i].n_revisions; j++) {
            kp_revision_spec_t *spec = &cfg->services[i].revisions[j];
            long at = revision_named(act, spec);
            if (at >= 0) {
                act_revision_t *rev = act->revisions[at];
                if (act_revision_reconfigure(rev, spec) != 0) {
                    kp_log_kv(KP_LOG_ERROR, "revision kept its earlier settings: out of memory",
                              "revision", rev->key, NULL);
                    rev->retired = 0;
                }
                spec->runtime = rev;
                if ((size_t)at < n_before)
                    named[at] = 1;
                kept++;
            } else if (revision_add(act, spec) == 0) {
                added++;
            }
        }
    }
    for (size_t i = 0; i < n_before; i++) {
        if (named[i])
            continue;
        act_revision_retire(act->revisions[i]);
        retired++;
    }
    free(named);
    kp_router_free(act->router);
    act->router = router;
    /* Nothing refers into the previous config any more: revisions hold
     * copies of their specs and the router is the new one's. */
    if (previous) {
        kp_activator_config_free(previous);
        free(previous);
    }
    if (!act->reap_timer_on) {
        uv_timer_init(act->loop, &act->reap_timer);
        act->reap_timer.data = act;
        uv_timer_start(&act->reap_timer, on_reap_tick, REAP_PERIOD_MS, REAP_PERIOD_MS);
        act->reap_timer_on = 1;
    }
    kp_log_fields(KP_LOG_INFO, previous ? "config reloaded" : "config loaded",
                  KP_LOG_STR("file", act->config_path ? act->config_path : ""),
                  KP_LOG_INT("revisions_added", added), KP_LOG_INT("revisions_kept", kept),
                  KP_LOG_INT("revisions_retired", retired));
    return 0;
}

/* Each pod takes descriptors of its own: fewer are left for clients. */
static void count_pods(act_t *act, int delta)
{
    act_capacity_add_pods(&act->capacity, delta);
}

static void *on_pod_added(void *rev_ctx, const act_pod_info_t *info)
{
    act_pod_t *pod = act_revision_pod_add(rev_ctx, info);
    if (!pod)
        return NULL;
    count_pods(pod->rev->act, 1);
    pod->backend_holds = 1;
    act_pod_probe_start(pod);
    return pod;
}

static void remove_pod(act_pod_t *pod)
{
    act_pod_probe_stop(pod);
    if (pod->rev->collector)
        act_collector_forget_pod(pod->rev->collector, pod);
    act_revision_pod_remove(pod);
}

static void on_pod_removed(void *rev_ctx, void *handle)
{
    act_pod_t *pod = handle;
    pod->backend_holds = 0;
    count_pods(pod->rev->act, -1);
    if (pod->removed)
        act_revision_pod_settled(pod); /* we removed it first, at shutdown */
    else
        remove_pod(pod);
}

static void on_revision_failed(void *rev_ctx, const char *reason)
{
    act_revision_note_failure(rev_ctx, "%s", reason);
}

static void on_pod_failed(void *rev_ctx, void *pod, const char *reason)
{
    act_revision_start_failed(rev_ctx, pod, reason);
}

const act_backend_events_t act_revisions_backend_events = {
    .pod_added = on_pod_added,
    .pod_removed = on_pod_removed,
    .revision_failed = on_revision_failed,
    .pod_failed = on_pod_failed,
};

void act_revisions_set_activators(act_t *act, int n, int self)
{
    if (n < 1 || (n == act->n_activators && self == act->activator_index))
        return;
    kp_log_fields(KP_LOG_INFO, "activator replicas changed", KP_LOG_INT("ready", n),
                  KP_LOG_INT("index", self));
    act->n_activators = n;
    act->activator_index = self;
    for (size_t i = 0; i < act->n_revisions; i++)
        act_revision_capacity_changed(act->revisions[i]);
}

void act_revisions_close(act_t *act)
{
    if (act->reap_timer_on) {
        uv_close((uv_handle_t *)&act->reap_timer, NULL);
        act->reap_timer_on = 0;
    }
    for (size_t i = 0; i < act->n_revisions; i++) {
        act_revision_t *rev = act->revisions[i];
        act_revision_close(rev, NULL);
        if (rev->collector) {
            act_collector_close(rev->collector);
            rev->collector = NULL;
        }
        for (act_pod_t *pod = rev->pods, *next; pod; pod = next) {
            next = pod->next;
            if (!pod->removed)
                remove_pod(pod);
        }
    }
}

void act_revisions_free(act_t *act)
{
    for (size_t i = 0; i < act->n_revisions; i++)
        act_revision_free(act->revisions[i]);
    free(act->revisions);
    if (act->cfg) {
        kp_activator_config_free(act->cfg);
        free(act->cfg);
    }
    kp_router_free(act->router);
}
