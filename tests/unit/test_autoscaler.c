/* Tests for activator/autoscaler.c: decisions come from the numbers the
 * hooks give and leave through the scale hook; no pod, revision or backend
 * is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/autoscaler.h"
#include "base/log.h"

typedef struct probe {
    act_demand_t demand; /* what read_demand answers */
    int scales;
    int from, to;
    char reason[64];
} probe_t;

static void read_demand(void *ctx, act_demand_t *out)
{
    *out = ((probe_t *)ctx)->demand;
}

static void scale(void *ctx, int from, int to, const char *reason)
{
    probe_t *p = ctx;
    p->scales++;
    p->from = from;
    p->to = to;
    snprintf(p->reason, sizeof p->reason, "%s", reason);
}

typedef struct fixture {
    uv_loop_t loop;
    probe_t probe;
    act_autoscaler_t *as;
} fixture_t;

static fixture_t *start_with(const kp_kpa_config_t *cfg)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    act_autoscaler_hooks_t hooks = {.read_demand = read_demand, .scale = scale, .ctx = &f->probe};
    f->as = act_autoscaler_new(&f->loop, cfg, &hooks);
    assert_non_null(f->as);
    return f;
}

static fixture_t *start(int container_concurrency)
{
    kp_kpa_config_t cfg;
    kp_kpa_config_defaults(&cfg);
    cfg.container_concurrency = container_concurrency;
    return start_with(&cfg);
}

static void stop(fixture_t *f)
{
    act_autoscaler_close(f->as);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

static void a_request_held_at_zero_asks_for_one_pod(void **state)
{
    fixture_t *f = start(10);
    f->probe.demand = (act_demand_t){.ready_pods = 0, .held = 1};
    act_autoscaler_poke(f->as);
    assert_int_equal(f->probe.scales, 1);
    assert_int_equal(f->probe.from, 0);
    assert_int_equal(f->probe.to, 1);
    assert_int_equal(act_autoscaler_desired(f->as), 1);
    stop(f);
}

static void a_burst_asks_for_enough_pods_at_once(void **state)
{
    fixture_t *f = start(10);
    /* 50 requests, 35 of them held at peers: ceil(50 / (10 × 70 %)) = 8. */
    f->probe.demand = (act_demand_t){.ready_pods = 0, .held = 10, .in_flight = 5, .peer_load = 35};
    act_autoscaler_demand_rose(f->as);
    assert_int_equal(f->probe.to, 8);
    /* The same demand again needs no new decision. */
    int scales = f->probe.scales;
    act_autoscaler_demand_rose(f->as);
    assert_int_equal(f->probe.scales, scales);
    stop(f);
}

static void demand_within_what_was_asked_decides_nothing(void **state)
{
    fixture_t *f = start(10);
    f->probe.demand = (act_demand_t){.ready_pods = 0, .held = 1};
    act_autoscaler_poke(f->as);
    f->probe.demand = (act_demand_t){.ready_pods = 1, .in_flight = 5};
    act_autoscaler_demand_rose(f->as);
    assert_int_equal(f->probe.scales, 1);
    assert_int_equal(act_autoscaler_desired(f->as), 1);
    stop(f);
}

static void an_adopted_pod_is_kept(void **state)
{
    fixture_t *f = start(10);
    f->probe.demand = (act_demand_t){.ready_pods = 1};
    act_autoscaler_adopt(f->as);
    assert_int_equal(act_autoscaler_desired(f->as), 1);
    stop(f);
}

/* /status reads what the last decision saw and why, and the last change. */
static void state_keeps_the_last_decision_and_the_last_scale(void **state)
{
    fixture_t *f = start(10);
    const act_autoscaler_state_t *st = act_autoscaler_state(f->as);
    assert_int_equal(st->scaled_ns, 0);
    f->probe.demand = (act_demand_t){.ready_pods = 0, .held = 1};
    act_autoscaler_poke(f->as);
    assert_true(st->decided_ns > 0 && st->scaled_ns == st->decided_ns);
    assert_int_equal(st->desired, 1);
    assert_int_equal(st->scale_from, 0);
    assert_int_equal(st->scale_to, 1);
    /* Knative's default initial-scale 1 is what asks for it here. */
    assert_string_equal(st->scale_reason, "initial scale");
    assert_string_equal(st->reason, "initial scale");
    assert_int_equal(st->demand.held, 1);
    assert_float_equal(st->decision.target, 7, 1e-9);

    /* 30 requests waiting: a burst the panic window has not seen yet. */
    f->probe.demand = (act_demand_t){.ready_pods = 1, .held = 20, .in_flight = 10};
    act_autoscaler_demand_rose(f->as);
    assert_int_equal(st->scale_from, 1);
    assert_int_equal(st->scale_to, 5); /* ceil(30 / 7) */
    assert_int_equal(st->decision.panicking, 1);
    assert_string_equal(st->scale_reason, "panic");
    stop(f);
}

/* Class hpa: no KPA decision, whatever the load: min-scale's pods, at
 * least one, none once no route reaches it. */
static void an_hpa_class_revision_keeps_min_scale_whatever_the_load(void **state)
{
    kp_kpa_config_t cfg;
    kp_kpa_config_defaults(&cfg);
    cfg.container_concurrency = 10;
    cfg.hpa_class = 1;
    cfg.metric = KP_KPA_METRIC_CPU;
    fixture_t *f = start_with(&cfg);
    f->probe.demand = (act_demand_t){.ready_pods = 0, .held = 1};
    act_autoscaler_poke(f->as);
    assert_int_equal(act_autoscaler_desired(f->as), 1);
    f->probe.demand = (act_demand_t){.ready_pods = 1, .held = 500, .in_flight = 10};
    act_autoscaler_demand_rose(f->as);
    for (int i = 0; i < 5; i++)
        act_autoscaler_record(f->as, 300, 5000);
    act_autoscaler_poke(f->as);
    assert_int_equal(act_autoscaler_desired(f->as), 1);
    assert_int_equal(f->probe.scales, 1);
    const act_autoscaler_state_t *st = act_autoscaler_state(f->as);
    assert_int_equal(st->hpa_class, 1);
    assert_int_equal(st->metric, KP_KPA_METRIC_CPU);
    assert_string_equal(st->reason, "class hpa.autoscaling.knative.dev: min-scale");
    cfg.min_scale = 3;
    act_autoscaler_reconfigure(f->as, &cfg);
    act_autoscaler_poke(f->as);
    assert_int_equal(act_autoscaler_desired(f->as), 3);
    cfg.min_scale = 0;
    cfg.unreachable = 1; /* retired: it may go */
    act_autoscaler_reconfigure(f->as, &cfg);
    f->probe.demand = (act_demand_t){0};
    act_autoscaler_poke(f->as);
    assert_int_equal(act_autoscaler_desired(f->as), 0);
    stop(f);
}

/* Metric rps: the pods' request rate is what the windows average; the
 * activator's held requests are no rps and burst nothing. */
static void an_rps_revision_scales_on_the_pods_request_rate(void **state)
{
    kp_kpa_config_t cfg;
    kp_kpa_config_defaults(&cfg);
    cfg.container_concurrency = 10;
    cfg.metric = KP_KPA_METRIC_RPS;
    cfg.target = 10; /* × 70 %: 7 rps per pod */
    fixture_t *f = start_with(&cfg);
    f->probe.demand = (act_demand_t){.ready_pods = 1, .held = 100};
    act_autoscaler_demand_rose(f->as);
    assert_int_equal(f->probe.scales, 0);
    /* Concurrency 1, 70 rps: the rate decides, 10 pods (in panic). */
    act_autoscaler_record(f->as, 1, 70);
    act_autoscaler_poke(f->as);
    const act_autoscaler_state_t *st = act_autoscaler_state(f->as);
    assert_int_equal(st->metric, KP_KPA_METRIC_RPS);
    assert_float_equal(st->decision.target, 7, 1e-9);
    assert_float_equal(st->decision.observed_panic, 70, 1e-9);
    assert_int_equal(act_autoscaler_desired(f->as), 10);
    stop(f);
}

static void settings_merge_defaults_global_then_annotations(void **state)
{
    kp_kv_t global[] = {{"container-concurrency-target-percentage", "50"},
                        {"stable-window", "30s"}};
    kp_kv_t annotations[] = {{"autoscaling.knative.dev/window", "90s"},
                             {"autoscaling.knative.dev/max-scale", "4"}};
    kp_activator_config_t cfg = {.autoscaler = global, .n_autoscaler = 2};
    kp_revision_spec_t spec = {.name = "r",
                               .namespace_ = "default",
                               .container_concurrency = 20,
                               .annotations = annotations,
                               .n_annotations = 2};
    kp_kpa_config_t out;
    act_autoscaler_config(&cfg, &spec, &out);
    assert_int_equal(out.container_concurrency, 20);
    assert_true(out.target_percentage == 50);
    assert_true(out.stable_window_s == 90); /* the annotation wins */
    assert_int_equal(out.max_scale, 4);
    assert_true(kp_kpa_config_target(&out) == 10);
    assert_true(out.panic_threshold_pct == 200); /* Knative's default */
}

int main(void)
{
    kp_log_init("test", KP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_request_held_at_zero_asks_for_one_pod),
        cmocka_unit_test(a_burst_asks_for_enough_pods_at_once),
        cmocka_unit_test(demand_within_what_was_asked_decides_nothing),
        cmocka_unit_test(an_adopted_pod_is_kept),
        cmocka_unit_test(state_keeps_the_last_decision_and_the_last_scale),
        cmocka_unit_test(settings_merge_defaults_global_then_annotations),
        cmocka_unit_test(an_hpa_class_revision_keeps_min_scale_whatever_the_load),
        cmocka_unit_test(an_rps_revision_scales_on_the_pods_request_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
