/* The configuration over time: the first load and every later one. A new
 * config names revisions that are created, updated in place (their pods,
 * held requests and autoscaler history stay) or retired: a retired
 * revision is no longer routed to, finishes what it has and scales to
 * zero like any idle revision. Its spec lives in the config it came from,
 * which is kept until exit. Reloads come from the file changing (polled,
 * so a ConfigMap's symlink swap is seen too) or SIGHUP. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activator.h"
#include "base/log.h"

#define CONFIG_POLL_MS 1000

act_revision_t *act_revision_for_spec(act_t *act, const kp_revision_spec_t *spec)
{
    (void)act;
    act_revision_t *rev = spec->runtime;
    return rev && rev->spec == spec && !rev->retired ? rev : NULL;
}

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
    spec->runtime = rev;
    return 0;
}

int act_config_apply(act_t *act, kp_activator_config_t *cfg)
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
                rev->spec = spec;
                spec->runtime = rev;
                rev->retired = 0;
                act_scaler_reconfigure(rev);
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

static void reload(act_t *act)
{
    kp_activator_config_t *cfg = calloc(1, sizeof *cfg);
    char err[512];
    if (!cfg)
        return;
    if (kp_activator_config_load_file(act->config_path, cfg, err, sizeof err) != 0) {
        kp_log_kv(KP_LOG_ERROR, "config reload rejected; the running config stays", "error", err,
                  NULL);
        free(cfg);
        return;
    }
    if (act_config_apply(act, cfg) != 0)
        kp_log(KP_LOG_ERROR, "config reload failed: out of memory; the running config stays");
}

static void on_config_changed(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                              const uv_stat_t *curr)
{
    act_t *act = h->data;
    if (status < 0) {
        kp_log_kv(KP_LOG_WARN, "config file unreadable; the running config stays", "file",
                  act->config_path, "error", uv_strerror(status), NULL);
        return;
    }
    reload(act);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    reload(s->data);
}

void act_config_watch_start(act_t *act, const char *path)
{
    act->config_path = path;
    uv_fs_poll_init(act->loop, &act->config_poll);
    act->config_poll.data = act;
    uv_fs_poll_start(&act->config_poll, on_config_changed, path, CONFIG_POLL_MS);
    uv_signal_init(act->loop, &act->sighup);
    act->sighup.data = act;
    uv_signal_start(&act->sighup, on_sighup, SIGHUP);
}

void act_config_watch_stop(act_t *act)
{
    if (!act->config_path)
        return;
    uv_close((uv_handle_t *)&act->config_poll, NULL);
    uv_close((uv_handle_t *)&act->sighup, NULL);
}

void act_config_free_all(act_t *act)
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
