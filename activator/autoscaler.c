/* A revision's KPA on the loop: a decision every two seconds and at once
 * when a request is held at zero or demand outgrows the pods asked for.
 * See autoscaler.h. */
#include "autoscaler.h"

#include <math.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"

#define DECIDE_PERIOD_MS 2000

struct act_autoscaler {
    act_autoscaler_hooks_t hooks;
    kp_kpa_config_t cfg;
    kp_kpa_t kpa;
    uv_timer_t decide_timer;
    int desired;
    int closing;
};

void act_autoscaler_config(const kp_activator_config_t *global, const kp_revision_spec_t *spec,
                           kp_kpa_config_t *cfg)
{
    kp_kpa_config_defaults(cfg);
    /* The config loader refused whatever is invalid; what is left to say
     * is which valid Knative settings have no effect here, and why. */
    char err[768];
    for (size_t i = 0; i < global->n_autoscaler; i++) {
        int rc = kp_kpa_config_set(cfg, global->autoscaler[i].key, global->autoscaler[i].value, err,
                                   sizeof err);
        if (rc != 0)
            kp_log_kv(rc < 0 ? KP_LOG_WARN : KP_LOG_INFO, "autoscaler setting", "revision",
                      spec->name, "note", err, NULL);
    }
    for (size_t i = 0; i < spec->n_annotations; i++) {
        int rc = kp_kpa_annotation_set(cfg, spec->annotations[i].key, spec->annotations[i].value,
                                       err, sizeof err);
        if (rc != 0)
            kp_log_kv(rc < 0 ? KP_LOG_WARN : KP_LOG_INFO, "autoscaling annotation", "revision",
                      spec->name, "note", err, NULL);
    }
    cfg->container_concurrency = spec->container_concurrency;
}

static void decide(act_autoscaler_t *as)
{
    act_demand_t d;
    as->hooks.read_demand(as->hooks.ctx, &d);
    kp_kpa_decision_t decision;
    if (kp_kpa_decide(&as->kpa, kp_now_ns(), d.ready_pods, &decision) != 0)
        return;
    int want = decision.desired_scale;
    /* A request is waiting and nothing runs: one pod at least, whatever
     * the windows still say. */
    if (want == 0 && (d.held > 0 || d.peer_load > 0))
        want = 1;
    if (want == as->desired)
        return;
    int from = as->desired;
    as->desired = want;
    as->hooks.scale(as->hooks.ctx, from, want, decision.reason);
}

static void on_decide_tick(uv_timer_t *t)
{
    decide(t->data);
}

act_autoscaler_t *act_autoscaler_new(uv_loop_t *loop, const kp_kpa_config_t *cfg,
                                     const act_autoscaler_hooks_t *hooks)
{
    act_autoscaler_t *as = calloc(1, sizeof *as);
    if (!as)
        return NULL;
    as->hooks = *hooks;
    as->cfg = *cfg;
    if (kp_kpa_init(&as->kpa, &as->cfg, kp_now_ns()) != 0) {
        free(as);
        return NULL;
    }
    uv_timer_init(loop, &as->decide_timer);
    as->decide_timer.data = as;
    uv_timer_start(&as->decide_timer, on_decide_tick, 0, DECIDE_PERIOD_MS);
    return as;
}

void act_autoscaler_reconfigure(act_autoscaler_t *as, const kp_kpa_config_t *cfg)
{
    as->cfg = *cfg;
    if (kp_kpa_reconfigure(&as->kpa, &as->cfg) != 0)
        kp_log(KP_LOG_WARN, "autoscaler: out of memory resizing the stable window's history; "
                            "the window averages what the old one kept");
}

void act_autoscaler_record(act_autoscaler_t *as, double pods_concurrency)
{
    act_demand_t d;
    as->hooks.read_demand(as->hooks.ctx, &d);
    /* Requests the activators hold or have in flight count as load; the
     * pods' proxied share was left out, so nothing counts twice. */
    kp_kpa_record(&as->kpa, kp_now_ns(), pods_concurrency + d.held + d.in_flight + d.peer_load);
}

void act_autoscaler_poke(act_autoscaler_t *as)
{
    kp_kpa_poke(&as->kpa, kp_now_ns());
    decide(as);
}

void act_autoscaler_demand_rose(act_autoscaler_t *as)
{
    act_demand_t d;
    as->hooks.read_demand(as->hooks.ctx, &d);
    double load = d.held + d.in_flight + d.peer_load;
    int needed = (int)ceil(load / kp_kpa_config_target(&as->cfg));
    if (needed <= as->desired)
        return;
    kp_kpa_burst(&as->kpa, kp_now_ns(), load);
    decide(as);
}

void act_autoscaler_adopt(act_autoscaler_t *as)
{
    /* One request's worth of demand, kept for a stable window: then the
     * windows decide, and a scale to zero is written like any other. */
    kp_kpa_burst(&as->kpa, kp_now_ns(), 1);
    decide(as);
}

int act_autoscaler_desired(const act_autoscaler_t *as)
{
    return as->desired;
}

static void on_timer_closed(uv_handle_t *h)
{
    act_autoscaler_t *as = h->data;
    kp_kpa_free(&as->kpa);
    free(as);
}

void act_autoscaler_close(act_autoscaler_t *as)
{
    if (as->closing)
        return;
    as->closing = 1;
    uv_close((uv_handle_t *)&as->decide_timer, on_timer_closed);
}
