/* The set of revisions and the wiring of each: see revisions.h. A retired
 * revision's spec lives in the config it came from, which is kept until
 * exit. */
#include "revisions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "collector.h"
#include "pod_probe.h"
#include "revision.h"

static act_revision_t *revision_named(act_t *act, const kp_revision_spec_t *spec)
{
    for (size_t i = 0; i < act->n_revisions; i++) {
        const kp_revision_spec_t *s = act->revisions[i]->spec;
        if (strcmp(s->name, spec->name) == 0 && strcmp(s->namespace_, spec->namespace_) == 0)
            return act->revisions[i];
    }
    return NULL;
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
    act_revision_t *rev = malloc(sizeof *rev);
    if (!rev)
        return -1;
    act->revisions[act->n_revisions++] = rev;
    act_revision_init(act, rev, spec);
    rev->collector = act_collector_new(rev);
    if (!rev->collector)
        abort();
    spec->runtime = rev;
    return 0;
}

int act_revisions_apply(act_t *act, kp_activator_config_t *cfg)
{
    kp_router_t *router = kp_router_new(cfg);
    kp_activator_config_t **old = realloc(act->old_cfgs, (act->n_old_cfgs + 1) * sizeof *old);
    if (!router || !old) {
        kp_router_free(router);
        if (old)
            act->old_cfgs = old;
        kp_activator_config_free(cfg);
        free(cfg);
        return -1;
    }
    act->old_cfgs = old;
    kp_activator_config_t *previous = act->cfg;
    act->cfg = cfg;
    for (size_t i = 0; i < act->n_revisions; i++)
        act->revisions[i]->retired = 1;
    int added = 0, kept = 0;
    for (size_t i = 0; i < cfg->n_services; i++) {
        for (size_t j = 0; j < cfg->services[i].n_revisions; j++) {
            kp_revision_spec_t *spec = &cfg->services[i].revisions[j];
            act_revision_t *rev = revision_named(act, spec);
            if (rev) {
                act_revision_reconfigure(rev, spec);
                spec->runtime = rev;
                rev->retired = 0;
                kept++;
            } else if (revision_add(act, spec) == 0) {
                added++;
            }
        }
    }
    int retired = 0;
    for (size_t i = 0; i < act->n_revisions; i++)
        retired += act->revisions[i]->retired;
    kp_router_free(act->router);
    act->router = router;
    if (previous)
        act->old_cfgs[act->n_old_cfgs++] = previous;
    char a[16], k[16], r[16];
    snprintf(a, sizeof a, "%d", added);
    snprintf(k, sizeof k, "%d", kept);
    snprintf(r, sizeof r, "%d", retired);
    kp_log_kv(KP_LOG_INFO, previous ? "config reloaded" : "config loaded", "file",
              act->config_path ? act->config_path : "", "revisions_added", a, "revisions_kept", k,
              "revisions_retired", r, NULL);
    return 0;
}

static void on_pod_added(void *rev_ctx, const act_pod_info_t *info)
{
    act_pod_t *pod = act_revision_pod_add(rev_ctx, info);
    if (pod)
        act_pod_probe_start(pod);
}

static void remove_pod(act_pod_t *pod)
{
    act_pod_probe_stop(pod);
    if (pod->rev->collector)
        act_collector_forget_pod(pod->rev->collector, pod);
    act_revision_pod_remove(pod);
}

static void on_pod_removed(void *rev_ctx, const char *pod_id)
{
    act_pod_t *pod = act_revision_pod_find(rev_ctx, pod_id);
    if (pod)
        remove_pod(pod);
}

const act_backend_events_t act_revisions_backend_events = {
    .pod_added = on_pod_added,
    .pod_removed = on_pod_removed,
};

void act_revisions_set_activator_count(act_t *act, int n)
{
    if (n < 1 || n == act->n_activators)
        return;
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    kp_log_kv(KP_LOG_INFO, "activator replicas changed", "ready", count, NULL);
    act->n_activators = n;
    for (size_t i = 0; i < act->n_revisions; i++)
        act_revision_dispatch(act->revisions[i]);
}

void act_revisions_close(act_t *act)
{
    for (size_t i = 0; i < act->n_revisions; i++) {
        act_revision_t *rev = act->revisions[i];
        act_revision_close(rev);
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
        free(act->revisions[i]);
    free(act->revisions);
    for (size_t i = 0; i < act->n_old_cfgs; i++) {
        kp_activator_config_free(act->old_cfgs[i]);
        free(act->old_cfgs[i]);
    }
    free(act->old_cfgs);
    if (act->cfg) {
        kp_activator_config_free(act->cfg);
        free(act->cfg);
    }
    kp_router_free(act->router);
}
