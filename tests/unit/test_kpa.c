/* Tests for common/autoscaling/kpa.c: Knative's KPA decisions (windows, panic, scale
 * bounds, scale to zero) driven with synthetic monotonic times. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autoscaling/kpa.h"

#define T0 1000.0 /* seconds; away from 0 so windows never reach before it */
#define NS(sec) ((uint64_t)((sec)*1e9))

/* A revision driven like the activator does: load recorded once a second,
 * a decision every two seconds, and (when follow is set) pods that are
 * ready as soon as they are asked for. */
typedef struct sim {
    kp_kpa_t kpa;
    double t; /* next second to simulate */
    int ready;
    int follow;
    kp_kpa_decision_t d;
    int decided;
} sim_t;

static sim_t *sim_new(const kp_kpa_config_t *cfg, int ready)
{
    sim_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(kp_kpa_init(&s->kpa, cfg, NS(T0)), 0);
    s->t = T0;
    s->ready = ready;
    s->follow = 1;
    return s;
}

static void sim_free(sim_t *s)
{
    kp_kpa_free(&s->kpa);
    free(s);
}

/* One simulated second: record at .5, decide at .9 of odd seconds. */
static void sim_step(sim_t *s, double load)
{
    kp_kpa_record(&s->kpa, NS(s->t + 0.5), load);
    s->decided = 0;
    if (((long)s->t) % 2 == 1) {
        assert_int_equal(kp_kpa_decide(&s->kpa, NS(s->t + 0.9), s->ready, &s->d), 0);
        s->decided = 1;
        if (s->follow)
            s->ready = s->d.desired_scale;
    }
    s->t += 1;
}

static void sim_run(sim_t *s, double seconds, double load)
{
    double end = s->t + seconds;
    while (s->t < end)
        sim_step(s, load);
}

static kp_kpa_config_t cfg_cc(int cc)
{
    kp_kpa_config_t cfg;
    kp_kpa_config_defaults(&cfg);
    cfg.container_concurrency = cc;
    return cfg;
}

static void set_ok(kp_kpa_config_t *cfg, const char *key, const char *value)
{
    char err[256] = "";
    int rc = kp_kpa_config_set(cfg, key, value, err, sizeof err);
    if (rc != 0)
        fail_msg("%s=%s refused: %s", key, value, err);
}

static void defaults_match_knative_compat(void **state)
{
    kp_kpa_config_t c;
    kp_kpa_config_defaults(&c);
    assert_int_equal(c.container_concurrency, 0);
    assert_true(c.target_default == 100);
    assert_true(c.target_percentage == 70);
    assert_true(c.target == 0);
    assert_true(c.stable_window_s == 60);
    assert_true(c.panic_window_pct == 10);
    assert_true(c.panic_threshold_pct == 200);
    assert_true(c.max_scale_up_rate == 1000);
    assert_true(c.max_scale_down_rate == 2);
    assert_true(c.scale_to_zero_grace_s == 30);
    assert_true(c.scale_to_zero_retention_s == 0);
    assert_true(c.scale_down_delay_s == 0);
    assert_true(c.target_burst_capacity == 211);
    assert_int_equal(c.initial_scale, 1);
    assert_int_equal(c.allow_zero_initial_scale, 0);
    assert_int_equal(c.min_scale, 0);
    assert_int_equal(c.max_scale, 0);
    assert_int_equal(c.max_scale_limit, 0);
    assert_int_equal(c.activation_scale, 1);
    assert_int_equal(c.enable_scale_to_zero, 1);
}

static void target_follows_knative_resolve_metric_target(void **state)
{
    kp_kpa_config_t c = cfg_cc(10);
    assert_float_equal(kp_kpa_config_target(&c), 7, 1e-9);
    c = cfg_cc(0); /* unlimited: the default target, 100 × 70 % */
    assert_float_equal(kp_kpa_config_target(&c), 70, 1e-9);
    set_ok(&c, "autoscaling.knative.dev/target", "50");
    assert_float_equal(kp_kpa_config_target(&c), 35, 1e-9);
    c.container_concurrency = 10; /* annotation target capped at CC */
    assert_float_equal(kp_kpa_config_target(&c), 7, 1e-9);
    set_ok(&c, "autoscaling.knative.dev/target-utilization-percentage", "100");
    assert_float_equal(kp_kpa_config_target(&c), 10, 1e-9);
    c = cfg_cc(0);
    set_ok(&c, "container-concurrency-target-default", "20");
    set_ok(&c, "container-concurrency-target-percentage", "50");
    assert_float_equal(kp_kpa_config_target(&c), 10, 1e-9);
}

/* ResolveMetricTarget for rps: the annotation target or
 * requests-per-second-target-default (200), never capped at CC, times the
 * utilization percentage. */
static void rps_target_follows_knative_resolve_metric_target(void **state)
{
    kp_kpa_config_t c = cfg_cc(10);
    set_ok(&c, "autoscaling.knative.dev/metric", "rps");
    assert_int_equal(kp_kpa_config_metric(&c), KP_KPA_METRIC_RPS);
    assert_float_equal(kp_kpa_config_total(&c), 200, 1e-9);
    assert_float_equal(kp_kpa_config_target(&c), 140, 1e-9);
    set_ok(&c, "requests-per-second-target-default", "50");
    assert_float_equal(kp_kpa_config_target(&c), 35, 1e-9);
    set_ok(&c, "autoscaling.knative.dev/target", "150"); /* above CC 10: no cap for rps */
    assert_float_equal(kp_kpa_config_target(&c), 105, 1e-9);
    set_ok(&c, "autoscaling.knative.dev/target-utilization-percentage", "100");
    assert_float_equal(kp_kpa_config_target(&c), 150, 1e-9);
    /* The same windows and rules: 1000 rps against 105 per pod is 10 pods. */
    c = cfg_cc(0);
    set_ok(&c, "autoscaling.knative.dev/metric", "rps");
    set_ok(&c, "autoscaling.knative.dev/target", "150");
    kp_kpa_t kpa;
    assert_int_equal(kp_kpa_init(&kpa, &c, NS(T0)), 0);
    for (int s = 0; s < 60; s++)
        kp_kpa_record(&kpa, NS(T0 + s + 0.5), 1000);
    kp_kpa_decision_t d;
    kp_kpa_decide(&kpa, NS(T0 + 60), 1, &d);
    assert_float_equal(d.target, 105, 1e-9);
    assert_int_equal(d.desired_scale, 10);
    kp_kpa_free(&kpa);
}

/* annotation_validation.go validateMetric: concurrency and rps are the
 * KPA's, cpu and memory the HPA's (its default: cpu), in whichever order
 * class and metric come, the class from config-autoscaler or annotation. */
static void each_class_takes_its_own_metrics(void **state)
{
    static const struct {
        const char *cls, *metric;
        int ok;
    } cases[] = {
        {NULL, NULL, 1},           {NULL, "rps", 1},     {NULL, "concurrency", 1},
        {NULL, "cpu", 0},          {NULL, "memory", 0},  {"hpa", NULL, 1},
        {"hpa", "cpu", 1},         {"hpa", "memory", 1}, {"hpa", "rps", 0},
        {"hpa", "concurrency", 0}, {"kpa", "rps", 1},    {"kpa", "memory", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kp_kpa_config_t c;
        kp_kpa_config_defaults(&c);
        char cls[64], err[512] = "";
        if (cases[i].metric)
            set_ok(&c, "autoscaling.knative.dev/metric", cases[i].metric);
        if (cases[i].cls) {
            snprintf(cls, sizeof cls, "%s.autoscaling.knative.dev", cases[i].cls);
            set_ok(&c, i % 2 ? "pod-autoscaler-class" : "autoscaling.knative.dev/class", cls);
        }
        int rc = kp_kpa_config_check(&c, err, sizeof err);
        if ((rc == 0) != cases[i].ok)
            fail_msg("class %s metric %s: rc %d (%s)", cases[i].cls ? cases[i].cls : "-",
                     cases[i].metric ? cases[i].metric : "-", rc, err);
        if (!cases[i].ok && !strstr(err, "does not go with class"))
            fail_msg("error \"%s\" does not say why", err);
    }
    kp_kpa_config_t c;
    kp_kpa_config_defaults(&c);
    set_ok(&c, "autoscaling.knative.dev/class", "hpa.autoscaling.knative.dev");
    assert_int_equal(c.hpa_class, 1);
    assert_int_equal(kp_kpa_config_metric(&c), KP_KPA_METRIC_CPU);
    assert_string_equal(kp_kpa_metric_name(kp_kpa_config_metric(&c)), "cpu");
}

static void durations_accept_go_forms_and_bare_seconds(void **state)
{
    kp_kpa_config_t c;
    kp_kpa_config_defaults(&c);
    set_ok(&c, "stable-window", "1m30s");
    assert_true(c.stable_window_s == 90);
    set_ok(&c, "autoscaling.knative.dev/window", "6s");
    assert_true(c.stable_window_s == 6);
    set_ok(&c, "stable-window", "120");
    assert_true(c.stable_window_s == 120);
    set_ok(&c, "stable-window", "1h");
    assert_true(c.stable_window_s == 3600);
    set_ok(&c, "scale-to-zero-pod-retention-period", "500ms");
    assert_float_equal(c.scale_to_zero_retention_s, 0.5, 1e-12);
    set_ok(&c, "scale-to-zero-grace-period", "1m");
    assert_true(c.scale_to_zero_grace_s == 60);
    set_ok(&c, "scale-down-delay", "0");
    assert_true(c.scale_down_delay_s == 0);
    set_ok(&c, "autoscaling.knative.dev/scale-down-delay", "2m");
    assert_true(c.scale_down_delay_s == 120);
    set_ok(&c, "scale-to-zero-pod-retention-period", "1.5m");
    assert_true(c.scale_to_zero_retention_s == 90);
}

static void expect_refused(const char *key, const char *value, const char *want_err)
{
    kp_kpa_config_t c, before;
    kp_kpa_config_defaults(&c);
    before = c;
    char err[256] = "";
    assert_int_equal(kp_kpa_config_set(&c, key, value, err, sizeof err), -1);
    if (!strstr(err, want_err))
        fail_msg("%s=%s: error \"%s\" lacks \"%s\"", key, value, err, want_err);
    assert_memory_equal(&c, &before, sizeof c);
}

static void bad_values_say_key_value_and_what_is_accepted(void **state)
{
    expect_refused("autoscaling.knative.dev/min-scale", "x",
                   "autoscaling.knative.dev/min-scale=\"x\": not an integer (expected 0 or more)");
    expect_refused("min-scale", "-1", "min-scale=\"-1\": not an integer (expected 0 or more)");
    expect_refused("autoscaling.knative.dev/max-scale", "2.5", "not an integer");
    expect_refused("stable-window", "5s", "stable-window=\"5s\": out of range (expected 6s to 1h");
    expect_refused("stable-window", "2h", "out of range");
    expect_refused("autoscaling.knative.dev/window", "6500ms", "whole seconds");
    expect_refused("stable-window", "sixty", "not a duration");
    expect_refused("stable-window", "60x", "not a duration");
    expect_refused("stable-window", "", "not a duration");
    expect_refused("scale-to-zero-grace-period", "5s", "6s or more");
    expect_refused("scale-down-delay", "-1s", "out of range");
    expect_refused("panic-window-percentage", "0", "from 1 to 100");
    expect_refused("autoscaling.knative.dev/panic-window-percentage", "101", "from 1 to 100");
    expect_refused("panic-threshold-percentage", "100", "from 110 to 1000");
    expect_refused("max-scale-up-rate", "1", "greater than 1");
    expect_refused("max-scale-down-rate", "0.5", "greater than 1");
    expect_refused("container-concurrency-target-percentage", "0", "above 0 and at most 100");
    expect_refused("autoscaling.knative.dev/target-utilization-percentage", "120", "from 1 to 100");
    expect_refused("autoscaling.knative.dev/target", "0", "0.01 or more");
    expect_refused("autoscaling.knative.dev/target", "1e3", "not a number");
    expect_refused("enable-scale-to-zero", "maybe", "not a boolean (expected true or false)");
    expect_refused("target-burst-capacity", "-2", "or -1");
    expect_refused("autoscaling.knative.dev/metric", "qps",
                   "autoscaling.knative.dev/metric=\"qps\": unknown metric (expected concurrency "
                   "or rps with class kpa.autoscaling.knative.dev, cpu or memory with class "
                   "hpa.autoscaling.knative.dev)");
    expect_refused("autoscaling.knative.dev/class", "keda.autoscaling.knative.dev",
                   "unsupported autoscaler class (expected kpa.autoscaling.knative.dev (the "
                   "activator's autoscaler) or hpa.autoscaling.knative.dev");
    expect_refused("pod-autoscaler-class", "custom.example.com",
                   "pod-autoscaler-class=\"custom.example.com\": unsupported autoscaler class");
    expect_refused("autoscaling.knative.dev/metric", "CPU", "unknown metric");
    expect_refused("autoscaling.knative.dev/activation-scale", "0",
                   "activation-scale=\"0\": out of range (expected 1 or more)");
    expect_refused("autoscaling.knative.dev/metric-aggregation-algorithm", "median",
                   "unknown algorithm (expected linear, weightedExponential or "
                   "weighted-exponential)");
    expect_refused("max-scale-limit", "ten", "max-scale-limit=\"ten\": not an integer");
    expect_refused("autoscaling.knative.dev/scaleDownDelay", "1.5s", "whole seconds");
}

static void expect_ignored(kp_kpa_config_t *c, const char *key, const char *value,
                           const char *want_note)
{
    char err[256] = "";
    int rc = kp_kpa_config_set(c, key, value, err, sizeof err);
    if (rc != KP_KPA_IGNORED || !strstr(err, "accepted, not acted on") || !strstr(err, want_note))
        fail_msg("%s=%s: rc %d, note \"%s\" (wanted \"%s\")", key, value, rc, err, want_note);
}

static void valid_knative_settings_without_effect_are_accepted_with_the_reason(void **state)
{
    kp_kpa_config_t c;
    kp_kpa_config_defaults(&c);
    expect_ignored(&c, "target-burst-capacity", "-1", "the activator stays in the request path");
    expect_ignored(&c, "autoscaling.knative.dev/target-burst-capacity", "0",
                   "the activator stays in the request path");
    expect_ignored(&c, "activator-capacity", "50", "every activator replica serves");
    expect_ignored(&c, "autoscaling.knative.dev/metric-aggregation-algorithm",
                   "weightedExponential", "averaged linearly");
    kp_kpa_config_defaults(&c);
    expect_ignored(&c, "autoscaling.knative.dev/metricAggregationAlgorithm", "weighted-exponential",
                   "averaged linearly");
    /* What we do is what they ask for: applied. */
    kp_kpa_config_defaults(&c);
    set_ok(&c, "autoscaling.knative.dev/metric-aggregation-algorithm", "linear");
    set_ok(&c, "autoscaling.knative.dev/metric", "concurrency");
    set_ok(&c, "autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev");
    set_ok(&c, "pod-autoscaler-class", "kpa.autoscaling.knative.dev");
    set_ok(&c, "enable-scale-to-zero", "false");
    assert_int_equal(c.enable_scale_to_zero, 0);
}

static void unknown_keys_are_refused_naming_the_accepted_ones(void **state)
{
    kp_kpa_config_t c, before;
    kp_kpa_config_defaults(&c);
    before = c;
    char err[1024] = "";
    assert_int_equal(
        kp_kpa_config_set(&c, "autoscaling.knative.dev/min-scael", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "autoscaling.knative.dev/min-scael: unknown autoscaling "
                                "annotation (expected autoscaling.knative.dev/ followed by one "
                                "of: class, metric, "));
    const char *names[] = {"target-utilization-percentage",
                           "window",
                           "panic-window-percentage",
                           "panic-threshold-percentage",
                           "scale-to-zero-pod-retention-period",
                           "scale-down-delay",
                           "initial-scale",
                           "min-scale",
                           "max-scale",
                           "activation-scale",
                           "target-burst-capacity",
                           "metric-aggregation-algorithm",
                           "older camelCase spelling"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(err, names[i]))
            fail_msg("\"%s\" not named in: %s", names[i], err);
    assert_null(strstr(err, "stable-window")); /* a config key, not an annotation */
    /* Through the annotation door too, whatever the case of the rest. */
    assert_int_equal(
        kp_kpa_annotation_set(&c, "autoscaling.knative.dev/Min-Scale", "1", err, sizeof err), -1);
    assert_int_equal(kp_kpa_config_set(&c, "stable-windw", "60s", err, sizeof err), -1);
    assert_non_null(strstr(err, "stable-windw: unknown config-autoscaler key (expected one of: "));
    assert_non_null(strstr(err, "stable-window"));
    assert_non_null(strstr(err, "max-scale-limit"));
    assert_null(strstr(err, "activation-scale")); /* an annotation, not a config key */
    assert_memory_equal(&c, &before, sizeof c);
}

static void other_annotations_are_left_alone(void **state)
{
    kp_kpa_config_t c, before;
    kp_kpa_config_defaults(&c);
    before = c;
    char err[64] = "";
    /* Other groups' annotations, and a config key's name without the
     * prefix, are not this autoscaler's business. */
    assert_int_equal(kp_kpa_annotation_set(&c, "serving.knative.dev/creator", "x", err, sizeof err),
                     0);
    assert_int_equal(kp_kpa_annotation_set(&c, "min-scale", "5", err, sizeof err), 0);
    assert_int_equal(kp_kpa_annotation_set(&c, "stable-window", "x", err, sizeof err), 0);
    assert_memory_equal(&c, &before, sizeof c);
    assert_int_equal(
        kp_kpa_annotation_set(&c, "autoscaling.knative.dev/min-scale", "5", err, sizeof err), 0);
    assert_int_equal(c.min_scale, 5);
}

static void older_spellings_are_accepted_once(void **state)
{
    kp_kpa_config_t c;
    kp_kpa_config_defaults(&c);
    set_ok(&c, "autoscaling.knative.dev/minScale", "2");
    assert_int_equal(c.min_scale, 2);
    set_ok(&c, "autoscaling.knative.dev/maxScale", "4");
    set_ok(&c, "autoscaling.knative.dev/initialScale", "3");
    set_ok(&c, "autoscaling.knative.dev/scaleDownDelay", "30s");
    set_ok(&c, "autoscaling.knative.dev/scaleToZeroPodRetentionPeriod", "1m");
    set_ok(&c, "autoscaling.knative.dev/targetUtilizationPercentage", "80");
    set_ok(&c, "autoscaling.knative.dev/panicWindowPercentage", "20");
    set_ok(&c, "autoscaling.knative.dev/panicThresholdPercentage", "300");
    assert_int_equal(c.max_scale, 4);
    assert_int_equal(c.initial_scale, 3);
    assert_true(c.scale_down_delay_s == 30);
    assert_true(c.scale_to_zero_retention_s == 60);
    assert_true(c.target_percentage == 80);
    assert_true(c.panic_window_pct == 20);
    assert_true(c.panic_threshold_pct == 300);
    /* Both spellings of one setting: which one wins would be a guess. */
    kp_kpa_config_t before = c;
    char err[256] = "";
    assert_int_equal(
        kp_kpa_config_set(&c, "autoscaling.knative.dev/min-scale", "3", err, sizeof err), -1);
    assert_non_null(strstr(err, "autoscaling.knative.dev/min-scale=\"3\": sets min-scale a "
                                "second time"));
    assert_memory_equal(&c, &before, sizeof c);
    /* A config-autoscaler default under an annotation is no repeat. */
    kp_kpa_config_defaults(&c);
    set_ok(&c, "min-scale", "1");
    set_ok(&c, "autoscaling.knative.dev/min-scale", "2");
    assert_int_equal(c.min_scale, 2);
}

static void expect_rules(const char *const *kv, size_t n, const char *want)
{
    kp_kpa_config_t c;
    kp_kpa_config_defaults(&c);
    for (size_t i = 0; i < n; i += 2)
        set_ok(&c, kv[i], kv[i + 1]);
    char err[256] = "";
    int rc = kp_kpa_config_check(&c, err, sizeof err);
    if (want ? rc != -1 || !strstr(err, want) : rc != 0)
        fail_msg("rc %d, \"%s\" (wanted %s)", rc, err, want ? want : "no error");
}

#define CHECK(want, ...)                                                                           \
    do {                                                                                           \
        const char *kv_[] = {__VA_ARGS__};                                                         \
        expect_rules(kv_, sizeof kv_ / sizeof kv_[0], want);                                       \
    } while (0)

static void rules_across_keys_follow_knatives_webhook(void **state)
{
    CHECK(NULL, "autoscaling.knative.dev/min-scale", "3", "autoscaling.knative.dev/max-scale", "3");
    CHECK(NULL, "autoscaling.knative.dev/min-scale", "3", "autoscaling.knative.dev/max-scale", "0");
    CHECK("max-scale=2 is less than min-scale=3", "autoscaling.knative.dev/min-scale", "3",
          "autoscaling.knative.dev/max-scale", "2");
    CHECK("max-scale=2 is less than min-scale=3", "max-scale", "2",
          "autoscaling.knative.dev/minScale", "3");
    CHECK("initial-scale=0 needs allow-zero-initial-scale", "autoscaling.knative.dev/initial-scale",
          "0");
    CHECK(NULL, "allow-zero-initial-scale", "true", "autoscaling.knative.dev/initial-scale", "0");
    CHECK("max-scale=0 (unlimited) is beyond max-scale-limit=10 (expected 1 to 10)",
          "max-scale-limit", "10");
    CHECK("max-scale=11 is beyond max-scale-limit=10", "max-scale-limit", "10",
          "autoscaling.knative.dev/max-scale", "11");
    CHECK(NULL, "max-scale-limit", "10", "max-scale", "5", "autoscaling.knative.dev/max-scale",
          "10");
}

static void activation_scale_wakes_a_revision_to_that_many_pods(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "autoscaling.knative.dev/activation-scale", "3");
    set_ok(&cfg, "allow-zero-initial-scale", "true");
    set_ok(&cfg, "autoscaling.knative.dev/initial-scale", "0");
    sim_t *s = sim_new(&cfg, 0);
    s->follow = 0;
    sim_run(s, 40, 0);
    assert_int_equal(s->d.desired_scale, 0); /* no demand: zero stays zero */
    kp_kpa_poke(&s->kpa, NS(s->t + 0.1));
    kp_kpa_decide(&s->kpa, NS(s->t + 0.1), 0, &s->d);
    assert_int_equal(s->d.desired_scale, 3);
    /* A trickle (one pod's worth) still runs three. */
    s->ready = 3;
    s->follow = 1;
    sim_run(s, 70, 1);
    assert_int_equal(s->d.desired_scale, 3);
    /* More than three pods' worth: the windows decide. */
    sim_run(s, 70, 50);
    assert_int_equal(s->d.desired_scale, 8);
    /* Idle: down to zero, not to three. */
    sim_run(s, 200, 0);
    assert_int_equal(s->d.desired_scale, 0);
    sim_free(s);
    /* max-scale bounds it. */
    set_ok(&cfg, "autoscaling.knative.dev/max-scale", "2");
    s = sim_new(&cfg, 0);
    kp_kpa_poke(&s->kpa, NS(T0 + 0.1));
    kp_kpa_decide(&s->kpa, NS(T0 + 0.1), 0, &s->d);
    assert_int_equal(s->d.desired_scale, 2);
    sim_free(s);
}

static void windows_average_what_exists_since_the_first_record(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 1);
    kp_kpa_record(&s->kpa, NS(T0 + 0.2), 30);
    kp_kpa_record(&s->kpa, NS(T0 + 0.7), 40); /* same second: averaged */
    kp_kpa_record(&s->kpa, NS(T0 + 1.5), 35);
    kp_kpa_decide(&s->kpa, NS(T0 + 1.9), 1, &s->d);
    assert_float_equal(s->d.observed_stable, 35, 1e-9);
    assert_float_equal(s->d.observed_panic, 35, 1e-9);
    /* A silent second between records counts as 0... */
    kp_kpa_record(&s->kpa, NS(T0 + 3.5), 35);
    kp_kpa_decide(&s->kpa, NS(T0 + 3.9), 1, &s->d);
    assert_float_equal(s->d.observed_stable, 105.0 / 4, 1e-9);
    /* ...seconds after the last record are unknown, not 0... */
    kp_kpa_decide(&s->kpa, NS(T0 + 5.9), 1, &s->d);
    assert_float_equal(s->d.observed_stable, 105.0 / 4, 1e-9);
    /* ...and a window with no record at all is 0. */
    kp_kpa_decide(&s->kpa, NS(T0 + 10.1), 1, &s->d);
    assert_float_equal(s->d.observed_panic, 0, 1e-9);
    assert_true(s->d.observed_stable > 0);
    sim_free(s);
}

/* The ring of 1 s buckets is sized by the stable window (two windows'
 * worth), and a new window keeps the seconds that still fit. */
static void history_ring_follows_the_stable_window(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 1);
    assert_int_equal(s->kpa.n_buckets, 122); /* 60 s: an idle revision holds 122 seconds */
    sim_run(s, 60, 35);
    assert_true(s->d.observed_stable > 34.9 && s->d.observed_stable < 35.1);

    set_ok(&cfg, "stable-window", "180s");
    assert_int_equal(kp_kpa_reconfigure(&s->kpa, &cfg), 0);
    assert_int_equal(s->kpa.n_buckets, 362);
    /* The 60 s of 35 moved over: the longer window averages what exists. */
    sim_run(s, 2, 35);
    assert_true(s->d.observed_stable > 34.9 && s->d.observed_stable < 35.1);
    sim_run(s, 60, 0); /* 62 s of 35, then 60 s of 0 */
    assert_true(s->d.observed_stable > 17 && s->d.observed_stable < 19);

    set_ok(&cfg, "stable-window", "6s");
    assert_int_equal(kp_kpa_reconfigure(&s->kpa, &cfg), 0);
    assert_int_equal(s->kpa.n_buckets, 14);
    sim_run(s, 2, 0);
    assert_true(s->d.observed_stable == 0);
    sim_run(s, 6, 70);
    assert_true(s->d.observed_stable > 69.9 && s->d.observed_stable < 70.1);
    sim_free(s);
}

static void steady_load_35_at_cc_10_wants_5_pods(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 0);
    sim_run(s, 180, 35);
    assert_int_equal(s->d.desired_scale, 5);
    assert_float_equal(s->d.target, 7, 1e-9);
    assert_float_equal(s->d.observed_stable, 35, 1e-9);
    assert_int_equal(s->d.panicking, 0);
    assert_string_equal(s->d.reason, "stable");
    sim_free(s);
}

/* autoscaler.go: floor(ready × total per pod − target-burst-capacity −
 * panic concurrency); 0 and -1 as the setting's own special values. */
static void excess_burst_capacity_is_knatives(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10); /* total 10 per pod, target-burst-capacity 211 */
    sim_t *s = sim_new(&cfg, 0);
    s->follow = 0;
    s->ready = 3;
    sim_run(s, 20, 12.5);
    assert_float_equal(s->d.observed_panic, 12.5, 1e-9);
    assert_float_equal(s->d.excess_burst_capacity, floor(3 * 10 - 211 - 12.5), 1e-9);
    assert_int_equal(s->d.stable_pods, 2); /* ceil(12.5 / 7) */
    assert_int_equal(s->d.panic_pods, 2);
    sim_free(s);

    cfg.target_burst_capacity = 0;
    s = sim_new(&cfg, 2);
    sim_run(s, 4, 5);
    assert_float_equal(s->d.excess_burst_capacity, 0, 1e-9);
    sim_free(s);

    cfg.target_burst_capacity = -1;
    s = sim_new(&cfg, 2);
    sim_run(s, 4, 5);
    assert_float_equal(s->d.excess_burst_capacity, -1, 1e-9);
    sim_free(s);

    cfg = cfg_cc(0); /* unlimited: the per-pod total is target-default, 100 */
    cfg.target_burst_capacity = 50;
    s = sim_new(&cfg, 0);
    s->follow = 0;
    s->ready = 2;
    sim_run(s, 10, 30);
    assert_float_equal(s->d.excess_burst_capacity, 2 * 100 - 50 - 30, 1e-9);
    sim_free(s);
}

static void step_to_high_load_panics_within_the_panic_window(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 1);
    sim_run(s, 120, 7);
    assert_int_equal(s->d.desired_scale, 1);
    assert_int_equal(s->d.panicking, 0);
    double step = s->t;
    int panicked_at = -1;
    while (s->t < step + 6) {
        sim_step(s, 70);
        if (s->decided && s->d.panicking && panicked_at < 0)
            panicked_at = (int)(s->t - step);
    }
    assert_true(panicked_at > 0 && panicked_at <= 6);
    assert_string_equal(s->d.reason, "panic");
    /* The panic window is all 70 by now: 10 pods, while the stable window
     * alone would still ask for 2. */
    assert_int_equal(s->d.desired_scale, 10);
    assert_true(s->d.observed_stable < 20);
    sim_free(s);
}

static void panic_never_scales_down(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 1);
    sim_run(s, 120, 7);
    sim_run(s, 8, 70);
    assert_true(s->d.panicking);
    int peak = s->d.desired_scale;
    assert_int_equal(peak, 10);
    /* Load falls back at once; the panic holds its peak for a stable
     * window after the last crossing. */
    double drop = s->t;
    while (s->t < drop + 50) {
        sim_step(s, 7);
        if (s->decided) {
            assert_true(s->d.panicking);
            assert_int_equal(s->d.desired_scale, peak);
        }
    }
    sim_run(s, 80, 7);
    assert_int_equal(s->d.panicking, 0);
    assert_true(s->d.desired_scale < peak);
    sim_free(s);
}

static void pods_stay_until_the_grace_period_then_zero(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 1);
    sim_run(s, 120, 7);
    assert_int_equal(s->d.desired_scale, 1);
    double stop = s->t;
    double zero_at = -1;
    while (s->t < stop + 200) {
        sim_step(s, 0);
        if (s->decided && s->d.desired_scale == 0 && zero_at < 0) {
            zero_at = s->t - stop;
            assert_string_equal(s->d.reason, "scale to zero after grace period");
        }
        if (zero_at >= 0)
            assert_int_equal(s->d.desired_scale, 0); /* and stays there */
    }
    /* The last load leaves the 60 s stable window, then 30 s of grace. */
    assert_true(zero_at >= 60 + 30);
    assert_true(zero_at <= 60 + 30 + 4);
    sim_free(s);
}

static void retention_period_counts_from_the_last_request(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "scale-to-zero-pod-retention-period", "2m");
    sim_t *s = sim_new(&cfg, 1);
    sim_run(s, 120, 7);
    double stop = s->t;
    while (s->t < stop + 200) {
        sim_step(s, 0);
        if (s->decided && s->t - stop < 119)
            assert_int_equal(s->d.desired_scale, 1);
    }
    assert_int_equal(s->d.desired_scale, 0);
    sim_free(s);
}

static void scale_to_zero_disabled_keeps_one_pod(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "enable-scale-to-zero", "false");
    sim_t *s = sim_new(&cfg, 1);
    sim_run(s, 60, 7);
    sim_run(s, 300, 0);
    assert_int_equal(s->d.desired_scale, 1);
    sim_free(s);
}

static void min_scale_keeps_pods_without_load(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "autoscaling.knative.dev/min-scale", "2");
    sim_t *s = sim_new(&cfg, 0);
    sim_run(s, 300, 0);
    assert_int_equal(s->d.desired_scale, 2);
    assert_string_equal(s->d.reason, "min-scale");
    sim_free(s);
}

static void max_scale_caps_the_wish(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "autoscaling.knative.dev/max-scale", "3");
    sim_t *s = sim_new(&cfg, 1);
    sim_run(s, 120, 1000);
    assert_int_equal(s->d.desired_scale, 3);
    assert_string_equal(s->d.reason, "max-scale");
    sim_free(s);
}

static void scale_down_rate_halves_at_most_per_decision(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 10);
    kp_kpa_t *k = &s->kpa;
    /* No load at all: the wish is 0, the rate allows floor(ready / 2). */
    kp_kpa_decide(k, NS(T0 + 1), 10, &s->d);
    assert_int_equal(s->d.desired_scale, 5);
    kp_kpa_decide(k, NS(T0 + 3), 5, &s->d);
    assert_int_equal(s->d.desired_scale, 2);
    kp_kpa_decide(k, NS(T0 + 5), 2, &s->d);
    assert_int_equal(s->d.desired_scale, 1);
    /* 1 → 0 is allowed by the rate but the grace period keeps the pod. */
    kp_kpa_decide(k, NS(T0 + 7), 1, &s->d);
    assert_int_equal(s->d.desired_scale, 1);
    assert_string_equal(s->d.reason, "scale-to-zero grace period");

    set_ok(&k->cfg, "max-scale-down-rate", "4");
    kp_kpa_decide(k, NS(T0 + 9), 9, &s->d);
    assert_int_equal(s->d.desired_scale, 2);
    sim_free(s);
}

static void scale_up_rate_bounds_each_decision(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "max-scale-up-rate", "2");
    sim_t *s = sim_new(&cfg, 1);
    kp_kpa_record(&s->kpa, NS(T0 + 0.5), 700);
    kp_kpa_decide(&s->kpa, NS(T0 + 0.9), 1, &s->d);
    assert_int_equal(s->d.desired_scale, 2);
    kp_kpa_decide(&s->kpa, NS(T0 + 0.95), 3, &s->d);
    assert_int_equal(s->d.desired_scale, 6);
    sim_free(s);
}

static void scale_down_delay_holds_the_recent_max(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "stable-window", "6s");
    set_ok(&cfg, "scale-down-delay", "30s");
    sim_t *s = sim_new(&cfg, 1);
    sim_run(s, 60, 70);
    assert_int_equal(s->d.desired_scale, 10);
    double stop = s->t;
    while (s->t < stop + 28) {
        sim_step(s, 0);
        if (s->decided)
            assert_int_equal(s->d.desired_scale, 10);
    }
    /* Each lower wish on the way down is held 30 s in turn. */
    sim_run(s, 20, 0);
    assert_true(s->d.desired_scale < 10);
    assert_string_equal(s->d.reason, "scale-down delay");
    sim_free(s);
}

static void burst_of_held_requests_scales_out_at_once_and_holds(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10); /* target 7 per pod */
    set_ok(&cfg, "allow-zero-initial-scale", "true");
    set_ok(&cfg, "initial-scale", "0");
    sim_t *s = sim_new(&cfg, 0);
    s->follow = 0;
    sim_run(s, 40, 0);
    assert_int_equal(s->d.desired_scale, 0);

    /* 50 requests arrive at once at zero: 8 pods now, not after windows fill. */
    kp_kpa_poke(&s->kpa, NS(s->t + 0.1));
    kp_kpa_burst(&s->kpa, NS(s->t + 0.1), 50);
    kp_kpa_decide(&s->kpa, NS(s->t + 0.1), 0, &s->d);
    assert_int_equal(s->d.desired_scale, 8);
    /* The load goes on at 50: the windows, still diluted by idle seconds,
     * never take pods back meanwhile. */
    s->ready = 8;
    s->follow = 1;
    for (int i = 0; i < 70; i++) {
        sim_step(s, 50);
        if (s->decided)
            assert_true(s->d.desired_scale >= 8);
    }
    sim_free(s);
}

static void poke_at_zero_asks_for_one_pod_at_once(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "allow-zero-initial-scale", "true");
    set_ok(&cfg, "initial-scale", "0");
    sim_t *s = sim_new(&cfg, 0);
    s->follow = 0;
    sim_run(s, 40, 0);
    assert_int_equal(s->d.desired_scale, 0);

    kp_kpa_poke(&s->kpa, NS(s->t + 0.1));
    kp_kpa_decide(&s->kpa, NS(s->t + 0.1), 0, &s->d);
    assert_int_equal(s->d.desired_scale, 1);
    assert_string_equal(s->d.reason, "poke: request waiting");
    /* Still no pod: the poke holds. */
    kp_kpa_decide(&s->kpa, NS(s->t + 2.1), 0, &s->d);
    assert_int_equal(s->d.desired_scale, 1);
    /* The pod is ready and serves the request: the load keeps it. */
    s->ready = 1;
    s->follow = 1;
    sim_run(s, 10, 1);
    assert_int_equal(s->d.desired_scale, 1);
    assert_int_equal(s->kpa.poked, 0);
    /* Idle again: back to zero after the stable window and grace. */
    sim_run(s, 120, 0);
    assert_int_equal(s->d.desired_scale, 0);
    sim_free(s);
}

static void initial_scale_holds_until_that_many_pods_were_ready(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    set_ok(&cfg, "autoscaling.knative.dev/initial-scale", "3");
    sim_t *s = sim_new(&cfg, 0);
    kp_kpa_t *k = &s->kpa;
    kp_kpa_decide(k, NS(T0 + 1), 0, &s->d);
    assert_int_equal(s->d.desired_scale, 3);
    assert_string_equal(s->d.reason, "initial scale");
    kp_kpa_decide(k, NS(T0 + 3), 2, &s->d);
    assert_int_equal(s->d.desired_scale, 3);
    /* Reached once: from now on the windows decide (rate-limited). */
    kp_kpa_decide(k, NS(T0 + 5), 3, &s->d);
    assert_int_equal(s->d.desired_scale, 1);
    sim_free(s);

    /* initial-scale 0 needs allow-zero-initial-scale; else it means 1. */
    cfg = cfg_cc(10);
    set_ok(&cfg, "initial-scale", "0");
    s = sim_new(&cfg, 0);
    kp_kpa_decide(&s->kpa, NS(T0 + 1), 0, &s->d);
    assert_int_equal(s->d.desired_scale, 1);
    sim_free(s);
}

static void idle_new_revision_goes_to_zero_after_stable_window_and_grace(void **state)
{
    kp_kpa_config_t cfg = cfg_cc(10);
    sim_t *s = sim_new(&cfg, 0);
    sim_step(s, 0);
    sim_step(s, 0);
    assert_int_equal(s->d.desired_scale, 1);
    double zero_at = -1;
    while (s->t < T0 + 200 && zero_at < 0) {
        sim_step(s, 0);
        if (s->decided && s->d.desired_scale == 0)
            zero_at = s->t - T0;
    }
    /* The first pod serves a whole stable window, then the grace period. */
    assert_true(zero_at >= 60 + 30);
    assert_true(zero_at <= 60 + 30 + 4);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_knative_compat),
        cmocka_unit_test(target_follows_knative_resolve_metric_target),
        cmocka_unit_test(rps_target_follows_knative_resolve_metric_target),
        cmocka_unit_test(each_class_takes_its_own_metrics),
        cmocka_unit_test(durations_accept_go_forms_and_bare_seconds),
        cmocka_unit_test(bad_values_say_key_value_and_what_is_accepted),
        cmocka_unit_test(valid_knative_settings_without_effect_are_accepted_with_the_reason),
        cmocka_unit_test(unknown_keys_are_refused_naming_the_accepted_ones),
        cmocka_unit_test(other_annotations_are_left_alone),
        cmocka_unit_test(older_spellings_are_accepted_once),
        cmocka_unit_test(rules_across_keys_follow_knatives_webhook),
        cmocka_unit_test(activation_scale_wakes_a_revision_to_that_many_pods),
        cmocka_unit_test(windows_average_what_exists_since_the_first_record),
        cmocka_unit_test(history_ring_follows_the_stable_window),
        cmocka_unit_test(steady_load_35_at_cc_10_wants_5_pods),
        cmocka_unit_test(step_to_high_load_panics_within_the_panic_window),
        cmocka_unit_test(panic_never_scales_down),
        cmocka_unit_test(pods_stay_until_the_grace_period_then_zero),
        cmocka_unit_test(retention_period_counts_from_the_last_request),
        cmocka_unit_test(scale_to_zero_disabled_keeps_one_pod),
        cmocka_unit_test(min_scale_keeps_pods_without_load),
        cmocka_unit_test(max_scale_caps_the_wish),
        cmocka_unit_test(scale_down_rate_halves_at_most_per_decision),
        cmocka_unit_test(scale_up_rate_bounds_each_decision),
        cmocka_unit_test(excess_burst_capacity_is_knatives),
        cmocka_unit_test(scale_down_delay_holds_the_recent_max),
        cmocka_unit_test(poke_at_zero_asks_for_one_pod_at_once),
        cmocka_unit_test(burst_of_held_requests_scales_out_at_once_and_holds),
        cmocka_unit_test(initial_scale_holds_until_that_many_pods_were_ready),
        cmocka_unit_test(idle_new_revision_goes_to_zero_after_stable_window_and_grace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
