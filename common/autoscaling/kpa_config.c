/* The KPA's settings: Knative's config-autoscaler keys and
 * autoscaling.knative.dev/ annotations, parsed, checked and defaulted as
 * Knative does (pkg/autoscaler/config, pkg/apis/autoscaling). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpa.h"

#define ANNOTATION_PREFIX "autoscaling.knative.dev/"
#define TARGET_MIN 0.01   /* Knative's autoscaling.TargetMin */
#define WINDOW_MIN_S 6.0  /* autoscaling.WindowMin */
#define WINDOW_MAX_S 3600 /* autoscaling.WindowMax */

void kp_kpa_config_defaults(kp_kpa_config_t *cfg)
{
    *cfg = (kp_kpa_config_t){
        .container_concurrency = 0,
        .hpa_class = 0,
        .metric = KP_KPA_METRIC_DEFAULT,
        .target_default = 100,
        .rps_target_default = 200,
        .target_percentage = 70,
        .target = 0,
        .stable_window_s = 60,
        .panic_window_pct = 10,
        .panic_threshold_pct = 200,
        .max_scale_up_rate = 1000,
        .max_scale_down_rate = 2,
        .scale_to_zero_grace_s = 30,
        .scale_to_zero_retention_s = 0,
        .scale_down_delay_s = 0,
        .target_burst_capacity = 211,
        .initial_scale = 1,
        .allow_zero_initial_scale = 0,
        .min_scale = 0,
        .max_scale = 0,
        .max_scale_limit = 0,
        .activation_scale = 1,
        .enable_scale_to_zero = 1,
    };
}

/* ---- value parsing ---------------------------------------------------- */

/* Digits with an optional fraction ("12", "1.5", ".5"); no sign, exponent,
 * hex or inf, which strtod would take. */
static int parse_decimal(const char **p, double *out)
{
    const char *s = *p;
    double v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    if (*s == '.') {
        double scale = 0.1;
        s++;
        while (*s >= '0' && *s <= '9') {
            v += (*s++ - '0') * scale;
            scale /= 10;
            digits++;
        }
    }
    if (!digits)
        return -1;
    *p = s;
    *out = v;
    return 0;
}

static int parse_number(const char *s, double *out)
{
    int neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (parse_decimal(&s, out) != 0 || *s)
        return -1;
    if (neg)
        *out = -*out;
    return 0;
}

static int parse_int(const char *s, int *out)
{
    long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > INT_MAX)
            return -1;
    }
    *out = (int)v;
    return 0;
}

/* Go's strconv.ParseBool. */
static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* Go's time.ParseDuration ("1m30s", "500ms", "1.5h", "0"), plus a bare
 * number meaning seconds as older config maps wrote them. */
static int parse_duration(const char *s, double *out)
{
    static const struct {
        const char *unit;
        double secs;
    } units[] = {
        /* Longer spellings first: "ms" must not read as "m" then "s". */
        {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"\xce\xbcs", 1e-6},
        {"ms", 1e-3}, {"s", 1},     {"m", 60},           {"h", 3600},
    };
    int neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return -1;
    double total;
    if (parse_number(s, &total) == 0) {
        *out = neg ? -total : total;
        return 0;
    }
    total = 0;
    while (*s) {
        double v;
        if (parse_decimal(&s, &v) != 0)
            return -1;
        size_t i = 0, n = sizeof units / sizeof units[0];
        for (; i < n; i++) {
            size_t len = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, len) == 0) {
                total += v * units[i].secs;
                s += len;
                break;
            }
        }
        if (i == n)
            return -1;
    }
    *out = neg ? -total : total;
    return 0;
}

/* ---- keys ------------------------------------------------------------- */

enum key_kind {
    KEY_NUMBER,
    KEY_INT,
    KEY_DURATION,
    KEY_BOOL,
    KEY_METRIC,
    KEY_CLASS,
    KEY_AGGREGATION,
};

#define NO_FIELD ((size_t)-1) /* validated, then ignored */

typedef struct key_spec {
    const char *config;     /* config-autoscaler key, or NULL */
    const char *annotation; /* after "autoscaling.knative.dev/", or NULL */
    const char *legacy;     /* older camelCase annotation, or NULL */
    enum key_kind kind;
    size_t off; /* double (number, duration) or int (int, bool) in the config */
    double lo, hi;
    int lo_open;       /* lo itself is refused */
    int whole_seconds; /* durations: Knative asks for second precision */
    int allow_minus_one;
    int int_min;        /* integers: the smallest accepted */
    const char *expect; /* the accepted values, for the error */
    const char *unused; /* accepted but not acted on: why (NULL: acted on) */
} key_spec_t;

#define F(field) offsetof(kp_kpa_config_t, field)

#define ACTIVATOR_ALWAYS_IN_PATH "the activator stays in the request path at every scale"

/* Keys, ranges and older spellings are Knative's: pkg/autoscaler/config
 * (config-autoscaler), pkg/apis/autoscaling/register.go and
 * annotation_validation.go (annotations). */
static const key_spec_t keys[] = {
    {.annotation = "class",
     .config = "pod-autoscaler-class",
     .kind = KEY_CLASS,
     .off = NO_FIELD,
     .expect = "expected " KP_KPA_CLASS " (the activator's autoscaler) or " KP_HPA_CLASS
               " (Kubernetes' HorizontalPodAutoscaler)"},
    {.annotation = "metric",
     .kind = KEY_METRIC,
     .off = NO_FIELD,
     .expect = "expected concurrency or rps with class " KP_KPA_CLASS
               ", cpu or memory with class " KP_HPA_CLASS},
    {.config = "container-concurrency-target-default",
     .kind = KEY_NUMBER,
     .off = F(target_default),
     .lo = TARGET_MIN,
     .hi = HUGE_VAL,
     .expect = "expected a number of 0.01 or more"},
    {.config = "container-concurrency-target-percentage",
     .kind = KEY_NUMBER,
     .off = F(target_percentage),
     .lo = 0,
     .hi = 100,
     .lo_open = 1,
     .expect = "expected a number above 0 and at most 100"},
    {.annotation = "target-utilization-percentage",
     .legacy = "targetUtilizationPercentage",
     .kind = KEY_NUMBER,
     .off = F(target_percentage),
     .lo = 1,
     .hi = 100,
     .expect = "expected a number from 1 to 100"},
    {.annotation = "target",
     .kind = KEY_NUMBER,
     .off = F(target),
     .lo = TARGET_MIN,
     .hi = HUGE_VAL,
     .expect = "expected a number of 0.01 or more"},
    {.config = "requests-per-second-target-default",
     .kind = KEY_NUMBER,
     .off = F(rps_target_default),
     .lo = TARGET_MIN,
     .hi = HUGE_VAL,
     .expect = "expected a number of 0.01 or more"},
    {.config = "stable-window",
     .annotation = "window",
     .kind = KEY_DURATION,
     .off = F(stable_window_s),
     .lo = WINDOW_MIN_S,
     .hi = WINDOW_MAX_S,
     .whole_seconds = 1,
     .expect = "expected 6s to 1h in whole seconds"},
    {.config = "panic-window-percentage",
     .annotation = "panic-window-percentage",
     .legacy = "panicWindowPercentage",
     .kind = KEY_NUMBER,
     .off = F(panic_window_pct),
     .lo = 1,
     .hi = 100,
     .expect = "expected a number from 1 to 100"},
    {.config = "panic-threshold-percentage",
     .annotation = "panic-threshold-percentage",
     .legacy = "panicThresholdPercentage",
     .kind = KEY_NUMBER,
     .off = F(panic_threshold_pct),
     .lo = 110,
     .hi = 1000,
     .expect = "expected a number from 110 to 1000"},
    {.config = "max-scale-up-rate",
     .kind = KEY_NUMBER,
     .off = F(max_scale_up_rate),
     .lo = 1,
     .hi = HUGE_VAL,
     .lo_open = 1,
     .expect = "expected a number greater than 1"},
    {.config = "max-scale-down-rate",
     .kind = KEY_NUMBER,
     .off = F(max_scale_down_rate),
     .lo = 1,
     .hi = HUGE_VAL,
     .lo_open = 1,
     .expect = "expected a number greater than 1"},
    {.config = "scale-to-zero-grace-period",
     .kind = KEY_DURATION,
     .off = F(scale_to_zero_grace_s),
     .lo = WINDOW_MIN_S,
     .hi = HUGE_VAL,
     .expect = "expected a duration of 6s or more"},
    {.config = "scale-to-zero-pod-retention-period",
     .annotation = "scale-to-zero-pod-retention-period",
     .legacy = "scaleToZeroPodRetentionPeriod",
     .kind = KEY_DURATION,
     .off = F(scale_to_zero_retention_s),
     .lo = 0,
     .hi = WINDOW_MAX_S,
     .expect = "expected a duration from 0s to 1h"},
    {.config = "scale-down-delay",
     .annotation = "scale-down-delay",
     .legacy = "scaleDownDelay",
     .kind = KEY_DURATION,
     .off = F(scale_down_delay_s),
     .lo = 0,
     .hi = WINDOW_MAX_S,
     .whole_seconds = 1,
     .expect = "expected 0s to 1h in whole seconds"},
    {.config = "initial-scale",
     .annotation = "initial-scale",
     .legacy = "initialScale",
     .kind = KEY_INT,
     .off = F(initial_scale),
     .expect = "expected 0 or more"},
    {.config = "allow-zero-initial-scale",
     .kind = KEY_BOOL,
     .off = F(allow_zero_initial_scale),
     .expect = "expected true or false"},
    {.config = "min-scale",
     .annotation = "min-scale",
     .legacy = "minScale",
     .kind = KEY_INT,
     .off = F(min_scale),
     .expect = "expected 0 or more"},
    {.config = "max-scale",
     .annotation = "max-scale",
     .legacy = "maxScale",
     .kind = KEY_INT,
     .off = F(max_scale),
     .expect = "expected 0 or more, 0 for no limit"},
    {.config = "max-scale-limit",
     .kind = KEY_INT,
     .off = F(max_scale_limit),
     .expect = "expected 0 or more, 0 for no limit"},
    {.annotation = "activation-scale",
     .kind = KEY_INT,
     .off = F(activation_scale),
     .int_min = 1,
     .expect = "expected 1 or more"},
    {.config = "enable-scale-to-zero",
     .kind = KEY_BOOL,
     .off = F(enable_scale_to_zero),
     .expect = "expected true or false"},
    {.config = "target-burst-capacity",
     .annotation = "target-burst-capacity",
     .legacy = "targetBurstCapacity",
     .kind = KEY_NUMBER,
     .off = F(target_burst_capacity),
     .lo = 0,
     .hi = HUGE_VAL,
     .allow_minus_one = 1,
     .expect = "expected a number of 0 or more, or -1",
     .unused = ACTIVATOR_ALWAYS_IN_PATH},
    {.config = "activator-capacity",
     .kind = KEY_NUMBER,
     .off = NO_FIELD,
     .lo = 1,
     .hi = HUGE_VAL,
     .expect = "expected a number of 1 or more",
     .unused = "every activator replica serves every revision"},
    {.annotation = "metric-aggregation-algorithm",
     .legacy = "metricAggregationAlgorithm",
     .kind = KEY_AGGREGATION,
     .off = NO_FIELD,
     .expect = "expected linear, weightedExponential or weighted-exponential"},
};

#define N_KEYS (sizeof keys / sizeof keys[0])
_Static_assert(N_KEYS <= 64, "kp_kpa_config_t.annotated has a bit per key");

static int is_annotation(const char *key)
{
    return strncmp(key, ANNOTATION_PREFIX, sizeof ANNOTATION_PREFIX - 1) == 0;
}

static const key_spec_t *key_find(const char *key)
{
    int annotation = is_annotation(key);
    const char *name = annotation ? key + sizeof ANNOTATION_PREFIX - 1 : key;
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_spec_t *k = &keys[i];
        if (annotation ? (k->annotation && strcmp(name, k->annotation) == 0) ||
                             (k->legacy && strcmp(name, k->legacy) == 0)
                       : k->config && strcmp(name, k->config) == 0)
            return k;
    }
    return NULL;
}

static int key_fail(char *err, size_t err_len, const char *key, const char *value, const char *what,
                    const char *expect)
{
    if (err && err_len)
        snprintf(err, err_len, "%s=\"%s\": %s (%s)", key, value, what, expect);
    return -1;
}

/* "unknown ... (expected one of a, b, c)", the names from the table. */
static int unknown_key(char *err, size_t err_len, const char *key, int annotation)
{
    if (!err || !err_len)
        return -1;
    int n = annotation ? snprintf(err, err_len,
                                  "%s: unknown autoscaling annotation (expected " ANNOTATION_PREFIX
                                  " followed by one of: ",
                                  key)
                       : snprintf(err, err_len,
                                  "%s: unknown config-autoscaler key (expected one of: ", key);
    size_t used = n > 0 ? (size_t)n : 0;
    const char *sep = "";
    for (size_t i = 0; i < N_KEYS && used < err_len; i++) {
        const char *name = annotation ? keys[i].annotation : keys[i].config;
        if (!name)
            continue;
        used += (size_t)snprintf(err + used, err_len - used, "%s%s", sep, name);
        sep = ", ";
    }
    if (used < err_len)
        snprintf(err + used, err_len - used, "%s)",
                 annotation ? "; or an older camelCase spelling such as minScale" : "");
    return -1;
}

static int in_range(const key_spec_t *k, double v)
{
    if (k->allow_minus_one && v == -1)
        return 1;
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo))
        return 0;
    return v <= k->hi;
}

static int ignored(char *err, size_t err_len, const char *key, const char *value, const char *why)
{
    if (err && err_len)
        snprintf(err, err_len, "%s=\"%s\": accepted, not acted on (%s)", key, value, why);
    return KP_KPA_IGNORED;
}

int kp_kpa_config_set(kp_kpa_config_t *cfg, const char *key, const char *value, char *err,
                      size_t err_len)
{
    if (!key || !value)
        return 0;
    int annotation = is_annotation(key);
    const key_spec_t *k = key_find(key);
    if (!k)
        return unknown_key(err, err_len, key, annotation);
    uint64_t bit = 1ull << (k - keys);
    if (annotation && (cfg->annotated & bit)) {
        char what[160];
        snprintf(what, sizeof what, "sets %s a second time",
                 k->annotation ? k->annotation : k->legacy);
        return key_fail(err, err_len, key, value, what,
                        "expected one spelling of each annotation, the older camelCase one or "
                        "the kebab-case one");
    }
    double d = 0;
    int i = 0;
    const char *unused = k->unused;
    switch (k->kind) {
    case KEY_NUMBER:
        if (parse_number(value, &d) != 0)
            return key_fail(err, err_len, key, value, "not a number", k->expect);
        if (!in_range(k, d))
            return key_fail(err, err_len, key, value, "out of range", k->expect);
        break;
    case KEY_DURATION:
        if (parse_duration(value, &d) != 0)
            return key_fail(err, err_len, key, value, "not a duration like 60s, 1m30s or 500ms",
                            k->expect);
        if (!in_range(k, d) || (k->whole_seconds && d != floor(d)))
            return key_fail(err, err_len, key, value, "out of range", k->expect);
        break;
    case KEY_INT:
        if (parse_int(value, &i) != 0)
            return key_fail(err, err_len, key, value, "not an integer", k->expect);
        if (i < k->int_min)
            return key_fail(err, err_len, key, value, "out of range", k->expect);
        break;
    case KEY_BOOL:
        if (parse_bool(value, &i) != 0)
            return key_fail(err, err_len, key, value, "not a boolean", k->expect);
        break;
    case KEY_METRIC:
        for (i = KP_KPA_METRIC_CONCURRENCY; i <= KP_KPA_METRIC_MEMORY; i++)
            if (strcmp(value, kp_kpa_metric_name((kp_kpa_metric_t)i)) == 0)
                break;
        if (i > KP_KPA_METRIC_MEMORY)
            return key_fail(err, err_len, key, value, "unknown metric", k->expect);
        break;
    case KEY_CLASS:
        /* Another class (KEDA, say) would need its own controller. */
        if (strcmp(value, KP_KPA_CLASS) != 0 && strcmp(value, KP_HPA_CLASS) != 0)
            return key_fail(err, err_len, key, value, "unsupported autoscaler class", k->expect);
        i = strcmp(value, KP_HPA_CLASS) == 0;
        break;
    case KEY_AGGREGATION:
        /* Knative's two algorithms: ours is the linear one. */
        if (strcmp(value, "weightedExponential") == 0 || strcmp(value, "weighted-exponential") == 0)
            unused = "windows are averaged linearly";
        else if (strcmp(value, "linear") != 0)
            return key_fail(err, err_len, key, value, "unknown algorithm", k->expect);
        break;
    }
    if (annotation)
        cfg->annotated |= bit;
    if (k->kind == KEY_METRIC)
        cfg->metric = (kp_kpa_metric_t)i;
    else if (k->kind == KEY_CLASS)
        cfg->hpa_class = i;
    if (k->off != NO_FIELD) {
        char *field = (char *)cfg + k->off;
        if (k->kind == KEY_INT || k->kind == KEY_BOOL)
            memcpy(field, &i, sizeof i);
        else
            memcpy(field, &d, sizeof d);
    }
    return unused ? ignored(err, err_len, key, value, unused) : 0;
}

int kp_kpa_annotation_set(kp_kpa_config_t *cfg, const char *key, const char *value, char *err,
                          size_t err_len)
{
    if (!key || !is_annotation(key))
        return 0; /* someone else's (serving.knative.dev/..., user labels) */
    return kp_kpa_config_set(cfg, key, value, err, err_len);
}

kp_kpa_metric_t kp_kpa_config_metric(const kp_kpa_config_t *cfg)
{
    if (cfg->metric != KP_KPA_METRIC_DEFAULT)
        return cfg->metric;
    return cfg->hpa_class ? KP_KPA_METRIC_CPU : KP_KPA_METRIC_CONCURRENCY;
}

const char *kp_kpa_metric_name(kp_kpa_metric_t metric)
{
    switch (metric) {
    case KP_KPA_METRIC_RPS:
        return "rps";
    case KP_KPA_METRIC_CPU:
        return "cpu";
    case KP_KPA_METRIC_MEMORY:
        return "memory";
    case KP_KPA_METRIC_DEFAULT:
    case KP_KPA_METRIC_CONCURRENCY:
        break;
    }
    return "concurrency";
}

int kp_kpa_config_check(const kp_kpa_config_t *cfg, char *err, size_t err_len)
{
    /* annotation_validation.go validateMetric: each class its own metrics. */
    kp_kpa_metric_t metric = kp_kpa_config_metric(cfg);
    int hpa_metric = metric == KP_KPA_METRIC_CPU || metric == KP_KPA_METRIC_MEMORY;
    if (hpa_metric != cfg->hpa_class) {
        snprintf(err, err_len,
                 "autoscaling.knative.dev/metric=%s does not go with class %s (expected "
                 "concurrency or rps with class " KP_KPA_CLASS
                 ", cpu or memory with class " KP_HPA_CLASS ")",
                 kp_kpa_metric_name(metric), cfg->hpa_class ? KP_HPA_CLASS : KP_KPA_CLASS);
        return -1;
    }
    /* config.go validate and annotation_validation.go validateInitialScale. */
    if (cfg->initial_scale == 0 && !cfg->allow_zero_initial_scale) {
        snprintf(err, err_len,
                 "initial-scale=0 needs allow-zero-initial-scale: true in the autoscaler "
                 "settings (expected initial-scale 1 or more)");
        return -1;
    }
    /* validateMinMaxScale. */
    if (cfg->max_scale != 0 && cfg->max_scale < cfg->min_scale) {
        snprintf(err, err_len,
                 "max-scale=%d is less than min-scale=%d (expected max-scale 0 for no limit, or "
                 "at least min-scale)",
                 cfg->max_scale, cfg->min_scale);
        return -1;
    }
    /* validateMaxScaleWithinLimit: with a limit, max-scale must be set. */
    if (cfg->max_scale_limit > 0 &&
        (cfg->max_scale == 0 || cfg->max_scale > cfg->max_scale_limit)) {
        snprintf(err, err_len, "max-scale=%d%s is beyond max-scale-limit=%d (expected 1 to %d)",
                 cfg->max_scale, cfg->max_scale == 0 ? " (unlimited)" : "", cfg->max_scale_limit,
                 cfg->max_scale_limit);
        return -1;
    }
    return 0;
}

double kp_kpa_config_total(const kp_kpa_config_t *cfg)
{
    if (kp_kpa_config_metric(cfg) == KP_KPA_METRIC_RPS)
        return cfg->target > 0 ? cfg->target : cfg->rps_target_default;
    double total =
        cfg->container_concurrency > 0 ? cfg->container_concurrency : cfg->target_default;
    if (cfg->target > 0) {
        total = cfg->target;
        /* Never aim above what a pod may take at once. */
        if (cfg->container_concurrency > 0 && total > cfg->container_concurrency)
            total = cfg->container_concurrency;
    }
    return total;
}

double kp_kpa_config_target(const kp_kpa_config_t *cfg)
{
    double t = kp_kpa_config_total(cfg) * cfg->target_percentage / 100;
    return t > TARGET_MIN ? t : TARGET_MIN;
}
