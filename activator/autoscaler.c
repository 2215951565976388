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
    act_autoscaler_state_t state;
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

/* Three decimals are all a reader of the log needs. */
static double milli(double v)
{
    return round(v * 1000) / 1000;
}

static void log_decision(const act_autoscaler_t *as, const kp_kpa_decision_t *d,
                         const act_demand_t *demand, int want, const char *reason)
{
    if (!kp_log_enabled(KP_LOG_DEBUG))
        return;
    kp_log_fields(KP_LOG_DEBUG, "scale decision", KP_LOG_STR("revision", as->hooks.name),
                  KP_LOG_NUM("observed_stable", milli(d->observed_stable)),
                  KP_LOG_NUM("observed_panic", milli(d->observed_panic)),
                  KP_LOG_NUM("target", milli(d->target)), KP_LOG_INT("stable_pods", d->stable_pods),
                  KP_LOG_INT("panic_pods", d->panic_pods),
                  KP_LOG_INT("ready_pods", demand->ready_pods), KP_LOG_NUM("held", demand->held),
                  KP_LOG_NUM("in_flight", demand->in_flight),
                  KP_LOG_NUM("peer_load", milli(demand->peer_load)),
                  KP_LOG_BOOL("panic_mode", d->panicking), KP_LOG_INT("from", as->state.desired),
                  KP_LOG_INT("desired", want), KP_LOG_STR("why", reason));
}

/* An hpa-class revision: min-scale's pods, at least one while a route
 * reaches it (an HPA's minReplicas is 1 or more). */
static void decide_hpa(const act_autoscaler_t *as, kp_kpa_decision_t *d)
{
    const kp_kpa_config_t *cfg = &as->cfg;
    int pods = cfg->min_scale > 1 ? cfg->min_scale : 1;
    if (cfg->unreachable)
        pods = 0;
    *d = (kp_kpa_decision_t){
        .desired_scale = pods,
        .stable_pods = pods,
        .panic_pods = pods,
        .excess_burst_capacity = -1,
        .reason = cfg->unreachable ? "class " KP_HPA_CLASS ": not routed"
                                   : "class " KP_HPA_CLASS ": min-scale",
    };
}

static void decide(act_autoscaler_t *as)
{
    act_demand_t d;
    as->hooks.read_demand(as->hooks.ctx, &d);
    kp_kpa_decision_t decision;
    uint64_t now = kp_now_ns();
    if (as->cfg.hpa_class)
        decide_hpa(as, &decision);
    else if (kp_kpa_decide(&as->kpa, now, d.ready_pods, &decision) != 0)
        return;
    int want = decision.desired_scale;
    const char *reason = decision.reason;
    /* A request is waiting and nothing runs: one pod at least, whatever
     * the windows still say. */
    if (want == 0 && !as->cfg.hpa_class && (d.held > 0 || d.peer_load > 0)) {
        want = 1;
        reason = "request waiting";
    }
    log_decision(as, &decision, &d, want, reason);
    act_autoscaler_state_t *st = &as->state;
    st->decision = decision;
    st->demand = d;
    st->decided_ns = now;
    st->reason = reason;
    st->metric = kp_kpa_config_metric(&as->cfg);
    st->hpa_class = as->cfg.hpa_class;
    if (want == st->desired)
        return;
    int from = st->desired;
    st->desired = want;
    st->scale_from = from;
    st->scale_to = want;
    st->scale_reason = reason;
    st->scaled_ns = now;
    as->hooks.scale(as->hooks.ctx, from, want, reason);
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
    as->state.metric = kp_kpa_config_metric(cfg);
    as->state.hpa_class = cfg->hpa_class;
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
    as->state.metric = kp_kpa_config_metric(cfg);
    as->state.hpa_class = cfg->hpa_class;
    if (kp_kpa_reconfigure(&as->kpa, &as->cfg) != 0)
        kp_log(KP_LOG_WARN, "autoscaler: out of memory resizing the stable window's history; "
                            "the window averages what the old one kept");
}

void act_autoscaler_record(act_autoscaler_t *as, double pods_concurrency, double pods_rps)
{
    if (kp_kpa_config_metric(&as->cfg) == KP_KPA_METRIC_RPS) {
        /* Knative adds the activators' arrival rates to the pods'
         * unproxied one; every request passes an activator here, so the
         * pods' count of all arrivals is that sum, measured once whatever
         * the number of activator replicas. A request still held at zero
         * is the poke's. */
        kp_kpa_record(&as->kpa, kp_now_ns(), pods_rps);
        return;
    }
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
    /* Held requests are concurrency: an rps target does not weigh them,
     * and an HPA's count is not ours. */
    if (as->cfg.hpa_class || kp_kpa_config_metric(&as->cfg) != KP_KPA_METRIC_CONCURRENCY)
        return;
    act_demand_t d;
    as->hooks.read_demand(as->hooks.ctx, &d);
    double load = d.held + d.in_flight + d.peer_load;
    int needed = (int)ceil(load / kp_kpa_config_target(&as->cfg));
    if (needed <= as->state.desired)
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
    return as->state.desired;
}

const act_autoscaler_state_t *act_autoscaler_state(const act_autoscaler_t *as)
{
    return &as->state;
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
