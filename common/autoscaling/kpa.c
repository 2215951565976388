/* Knative's KPA decision logic (pkg/autoscaler/scaling/autoscaler.go, the
 * 1 s bucket averaging of pkg/autoscaler/aggregation and the scale-to-zero
 * rules of pkg/reconciler/autoscaling/kpa/scaler.go), with no I/O. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpa.h"

#define NS_PER_S 1000000000ull
#define ANNOTATION_PREFIX "autoscaling.knative.dev/"
#define TARGET_MIN 0.01   /* Knative's autoscaling.TargetMin */
#define WINDOW_MIN_S 6.0  /* autoscaling.WindowMin */
#define WINDOW_MAX_S 3600 /* autoscaling.WindowMax */

void kp_kpa_config_defaults(kp_kpa_config_t *cfg)
{
    *cfg = (kp_kpa_config_t){
        .container_concurrency = 0,
        .target_default = 100,
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

#define KPA_CLASS "kpa.autoscaling.knative.dev"
#define ACTIVATOR_ALWAYS_IN_PATH "the activator stays in the request path at every scale"

/* Keys, ranges and older spellings are Knative's: pkg/autoscaler/config
 * (config-autoscaler), pkg/apis/autoscaling/register.go and
 * annotation_validation.go (annotations). */
static const key_spec_t keys[] = {
    {.annotation = "class",
     .config = "pod-autoscaler-class",
     .kind = KEY_CLASS,
     .off = NO_FIELD,
     .expect = "expected " KPA_CLASS ": this autoscaler is Knative's KPA, not HPA or another"},
    {.annotation = "metric",
     .kind = KEY_METRIC,
     .off = NO_FIELD,
     .expect = "expected concurrency: scaling on rps, cpu or memory is not supported"},
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
     .off = NO_FIELD,
     .lo = TARGET_MIN,
     .hi = HUGE_VAL,
     .expect = "expected a number of 0.01 or more",
     .unused = "only the concurrency metric is supported"},
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
        if (strcmp(value, "concurrency") != 0)
            return key_fail(err, err_len, key, value, "unsupported metric", k->expect);
        break;
    case KEY_CLASS:
        if (strcmp(value, KPA_CLASS) != 0)
            return key_fail(err, err_len, key, value, "unsupported autoscaler class", k->expect);
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

int kp_kpa_config_check(const kp_kpa_config_t *cfg, char *err, size_t err_len)
{
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

/* autoscaler.go: what the ready pods could take at once beyond the panic
 * window's load and the burst the revision should absorb; -1 when
 * target-burst-capacity is -1 (unlimited), 0 when it is 0. */
static double excess_burst_capacity(const kp_kpa_config_t *cfg, int ready_pods, double panic)
{
    if (cfg->target_burst_capacity == 0)
        return 0;
    if (cfg->target_burst_capacity < 0)
        return -1;
    return floor(ready_pods * kp_kpa_config_total(cfg) - cfg->target_burst_capacity - panic);
}

/* ---- windows ---------------------------------------------------------- */

static int64_t sec_of(uint64_t ns)
{
    return (int64_t)(ns / NS_PER_S);
}

static int bucket_value(const kp_kpa_t *kpa, int64_t sec, double *v)
{
    if (sec < 0)
        return 0;
    const kp_kpa_bucket_t *b = &kpa->buckets[(size_t)sec % kpa->n_buckets];
    if (b->sec != sec || b->n == 0)
        return 0;
    *v = b->sum / b->n;
    return 1;
}

/* Knative's TimedFloat64Buckets.WindowAverage over the w seconds ending at
 * now_s: seconds after the last record are unknown, not zero, and are left
 * out; missing seconds between records count as zero; a window with no
 * record at all averages to 0. Before a window's worth of data exists (or
 * after a silence longer than the window) the average is over the seconds
 * since the first record only. */
static double window_average(const kp_kpa_t *kpa, int64_t now_s, int64_t w)
{
    int64_t last = kpa->last_write_sec;
    if (last < 0 || now_s - last >= w)
        return 0;
    if (last > now_s)
        last = now_s;
    int64_t lo = now_s - w + 1, first = -1;
    double sum = 0, v;
    for (int64_t s = lo; s <= last; s++) {
        if (bucket_value(kpa, s, &v)) {
            sum += v;
            if (first < 0)
                first = s;
        }
    }
    if (first < 0)
        return 0;
    /* A record no more than w before the first one in the window means the
     * data runs on past the window's start: divide by the whole span. The
     * ring holds two stable windows, which bounds this look-back. */
    int64_t oldest = kpa->last_write_sec - (int64_t)kpa->n_buckets + 1;
    for (int64_t s = first - 1; s >= first - w && s >= oldest; s--) {
        if (bucket_value(kpa, s, &v)) {
            first = lo;
            break;
        }
    }
    return sum / (double)(last - first + 1);
}

/* Two stable windows and a second each side: window_average looks back up
 * to a window before the first second it sums. */
static size_t ring_size(const kp_kpa_config_t *cfg)
{
    double w = ceil(cfg->stable_window_s);
    return (size_t)(w > 1 ? w : 1) * 2 + 2;
}

static kp_kpa_bucket_t *ring_new(size_t n)
{
    kp_kpa_bucket_t *ring = malloc(n * sizeof *ring);
    for (size_t i = 0; ring && i < n; i++)
        ring[i] = (kp_kpa_bucket_t){.sec = -1};
    return ring;
}

int kp_kpa_init(kp_kpa_t *kpa, const kp_kpa_config_t *cfg, uint64_t now_ns)
{
    memset(kpa, 0, sizeof *kpa);
    kpa->cfg = *cfg;
    kpa->n_buckets = ring_size(cfg);
    kpa->buckets = ring_new(kpa->n_buckets);
    if (!kpa->buckets)
        return -ENOMEM;
    kpa->last_write_sec = -1;
    kpa->start_ns = now_ns;
    kpa->last_request_ns = now_ns;
    kpa->last_desired = -1;
    return 0;
}

void kp_kpa_free(kp_kpa_t *kpa)
{
    free(kpa->buckets);
    kpa->buckets = NULL;
    kpa->n_buckets = 0;
}

int kp_kpa_reconfigure(kp_kpa_t *kpa, const kp_kpa_config_t *cfg)
{
    kpa->cfg = *cfg;
    size_t n = ring_size(cfg);
    if (n == kpa->n_buckets)
        return 0;
    kp_kpa_bucket_t *ring = ring_new(n);
    if (!ring)
        return -ENOMEM;
    /* Seconds that still fit move to their slot in the new ring. */
    for (size_t i = 0; i < kpa->n_buckets; i++) {
        const kp_kpa_bucket_t *b = &kpa->buckets[i];
        if (b->sec >= 0 && b->sec > kpa->last_write_sec - (int64_t)n)
            ring[(size_t)b->sec % n] = *b;
    }
    free(kpa->buckets);
    kpa->buckets = ring;
    kpa->n_buckets = n;
    return 0;
}

void kp_kpa_record(kp_kpa_t *kpa, uint64_t now_ns, double concurrency)
{
    if (!(concurrency >= 0) || isinf(concurrency))
        concurrency = 0;
    int64_t s = sec_of(now_ns);
    if (kpa->last_write_sec >= 0 && s <= kpa->last_write_sec - (int64_t)kpa->n_buckets)
        return; /* older than the ring: its slot holds a newer second */
    kp_kpa_bucket_t *b = &kpa->buckets[(size_t)s % kpa->n_buckets];
    if (b->sec != s)
        *b = (kp_kpa_bucket_t){.sec = s};
    b->sum += concurrency;
    b->n++;
    if (s > kpa->last_write_sec)
        kpa->last_write_sec = s;
    if (concurrency > 0 && now_ns > kpa->last_request_ns)
        kpa->last_request_ns = now_ns;
}

void kp_kpa_poke(kp_kpa_t *kpa, uint64_t now_ns)
{
    kpa->poked = 1;
    kpa->poke_ns = now_ns;
    kpa->zero_wish = 0;
    if (now_ns > kpa->last_request_ns)
        kpa->last_request_ns = now_ns;
}

static int to_count(double v)
{
    if (!(v > 0))
        return 0;
    return v >= INT_MAX ? INT_MAX : (int)v;
}

void kp_kpa_burst(kp_kpa_t *kpa, uint64_t now_ns, double concurrency)
{
    int wish = to_count(ceil(concurrency / kp_kpa_config_target(&kpa->cfg)));
    if (wish <= 0)
        return;
    /* As a panic (Knative enters one at scale from zero): the pods asked
     * for now are not taken back before a stable window has passed. */
    kpa->panicking = 1;
    kpa->panic_time_ns = now_ns;
    if (wish > kpa->max_panic_pods)
        kpa->max_panic_pods = wish;
    if (now_ns > kpa->last_request_ns)
        kpa->last_request_ns = now_ns;
}

/* ---- decision --------------------------------------------------------- */

/* scale-down-delay as Knative's max.TimeWindow: the result is the max of
 * the wishes of the last delay seconds. Only a falling run of wishes can
 * each be that max later, so that is all that is kept. */
static int delay_apply(kp_kpa_t *kpa, uint64_t now_ns, int want)
{
    if (kpa->cfg.scale_down_delay_s <= 0)
        return want;
    uint64_t win = (uint64_t)(kpa->cfg.scale_down_delay_s * NS_PER_S);
    int drop = 0;
    while (drop < kpa->n_delay && now_ns - kpa->delay_wish_ns[drop] >= win)
        drop++;
    if (drop) {
        kpa->n_delay -= drop;
        memmove(kpa->delay_wish, kpa->delay_wish + drop, kpa->n_delay * sizeof(int));
        memmove(kpa->delay_wish_ns, kpa->delay_wish_ns + drop, kpa->n_delay * sizeof(uint64_t));
    }
    while (kpa->n_delay > 0 && kpa->delay_wish[kpa->n_delay - 1] <= want)
        kpa->n_delay--;
    if (kpa->n_delay == KP_KPA_MAX_DELAY) {
        /* Full: merge the two newest, keeping the larger wish for the later
         * time, which errs on holding pods a little longer. */
        kpa->delay_wish_ns[kpa->n_delay - 2] = kpa->delay_wish_ns[kpa->n_delay - 1];
        kpa->n_delay--;
    }
    kpa->delay_wish[kpa->n_delay] = want;
    kpa->delay_wish_ns[kpa->n_delay] = now_ns;
    kpa->n_delay++;
    return kpa->delay_wish[0];
}

static int initial_scale(const kp_kpa_config_t *cfg)
{
    /* Knative refuses initial-scale 0 unless allow-zero-initial-scale. */
    if (cfg->initial_scale == 0 && !cfg->allow_zero_initial_scale)
        return 1;
    return cfg->initial_scale;
}

int kp_kpa_decide(kp_kpa_t *kpa, uint64_t now_ns, int ready_pods, kp_kpa_decision_t *d)
{
    const kp_kpa_config_t *cfg = &kpa->cfg;
    if (ready_pods < 0)
        ready_pods = 0;
    int64_t sw = (int64_t)cfg->stable_window_s;
    if (sw < 1)
        sw = 1;
    int64_t pw = (int64_t)(cfg->stable_window_s * cfg->panic_window_pct / 100);
    if (pw < 1)
        pw = 1;
    uint64_t sw_ns = (uint64_t)sw * NS_PER_S;

    if (ready_pods > 0) {
        if (!kpa->active) {
            kpa->active = 1;
            kpa->active_since_ns = now_ns;
        }
        kpa->poked = 0; /* the waiting request has a pod */
    } else {
        kpa->active = 0;
    }
    /* A poke whose request never got a pod does not pin one forever; its
     * load is in the windows by now anyway. */
    if (kpa->poked && now_ns - kpa->poke_ns > sw_ns)
        kpa->poked = 0;

    int64_t now_s = sec_of(now_ns);
    double stable = window_average(kpa, now_s, sw);
    double panic = window_average(kpa, now_s, pw);
    double target = kp_kpa_config_target(cfg);

    /* autoscaler.go Scale(). */
    double ready = ready_pods > 1 ? ready_pods : 1;
    double max_up = ceil(cfg->max_scale_up_rate * ready);
    double max_down = floor(ready / cfg->max_scale_down_rate);
    double dspc = ceil(stable / target), dppc = ceil(panic / target);
    int stable_wish = to_count(fmin(fmax(dspc, max_down), max_up));
    int panic_wish = to_count(fmin(fmax(dppc, max_down), max_up));
    /* activation-scale: a revision with any demand runs at least that
     * many pods (autoscaler.go applies it after the rate limits). */
    if (cfg->activation_scale > 1) {
        if (dspc > 0 && stable_wish < cfg->activation_scale)
            stable_wish = cfg->activation_scale;
        if (dppc > 0 && panic_wish < cfg->activation_scale)
            panic_wish = cfg->activation_scale;
    }
    int over = dppc / ready >= cfg->panic_threshold_pct / 100;

    if (over) {
        kpa->panicking = 1;
        kpa->panic_time_ns = now_ns; /* still over: the panic runs on */
    } else if (kpa->panicking && now_ns - kpa->panic_time_ns > sw_ns) {
        /* The surge has made its way into the stable window. */
        kpa->panicking = 0;
        kpa->max_panic_pods = 0;
    }

    int want = stable_wish;
    const char *reason = "stable";
    if (kpa->panicking) {
        if (panic_wish > want)
            want = panic_wish;
        /* Never scale down while panicking. */
        if (want > kpa->max_panic_pods)
            kpa->max_panic_pods = want;
        else
            want = kpa->max_panic_pods;
        reason = "panic";
    }
    int delayed = delay_apply(kpa, now_ns, want);
    if (delayed > want) {
        want = delayed;
        reason = "scale-down delay";
    }

    /* The revision starts at initial scale and stays there until that many
     * pods were ready once (Knative's ScaleTargetInitialized). */
    int initial = initial_scale(cfg);
    if (!kpa->scaled_once && ready_pods >= initial)
        kpa->scaled_once = 1;
    if (!kpa->scaled_once && want < initial) {
        want = initial;
        reason = "initial scale";
    }

    /* scaler.go applyBounds: min-scale first, then max-scale (0 = none). */
    if (want < cfg->min_scale) {
        want = cfg->min_scale;
        reason = "min-scale";
    } else if (cfg->max_scale > 0 && want > cfg->max_scale) {
        want = cfg->max_scale;
        reason = "max-scale";
    }

    /* A request waiting at zero is demand the windows have not seen yet:
     * it wakes the revision to its activation scale (max-scale still
     * bounds it). */
    int wake = cfg->activation_scale > 1 ? cfg->activation_scale : 1;
    if (cfg->max_scale > 0 && wake > cfg->max_scale)
        wake = cfg->max_scale;
    if (kpa->poked && want < wake) {
        want = wake;
        reason = "poke: request waiting";
    }

    if (want > 0) {
        kpa->zero_wish = 0;
    } else {
        if (!kpa->zero_wish) {
            kpa->zero_wish = 1;
            kpa->zero_since_ns = now_ns;
        }
        if (!cfg->enable_scale_to_zero) {
            want = 1;
            reason = "scale to zero disabled";
        } else {
            /* scaler.go handleScaleToZero: a pod that became ready serves a
             * stable window before the revision may go inactive; then the
             * wish must stay 0 for the grace period, and the last request
             * be retention-period old. */
            uint64_t from = kpa->zero_since_ns;
            if (kpa->active && kpa->active_since_ns + sw_ns > from)
                from = kpa->active_since_ns + sw_ns;
            uint64_t grace = (uint64_t)(cfg->scale_to_zero_grace_s * NS_PER_S);
            uint64_t retention = (uint64_t)(cfg->scale_to_zero_retention_s * NS_PER_S);
            int over_grace = now_ns >= from + grace && now_ns - kpa->last_request_ns >= retention;
            if (over_grace) {
                reason = "scale to zero after grace period";
            } else if (ready_pods > 0 || kpa->last_desired > 0) {
                want = 1; /* keep the last pod; nothing to keep when none runs */
                reason = "scale-to-zero grace period";
            } else {
                reason = "at zero";
            }
        }
    }

    kpa->last_desired = want;
    *d = (kp_kpa_decision_t){
        .desired_scale = want,
        .observed_stable = stable,
        .observed_panic = panic,
        .target = target,
        .stable_pods = stable_wish,
        .panic_pods = panic_wish,
        .excess_burst_capacity = excess_burst_capacity(cfg, ready_pods, panic),
        .panicking = kpa->panicking,
        .reason = reason,
    };
    return 0;
}
