/* Knative's KPA (Pod Autoscaler) decision logic, without I/O: callers record
 * the observed total concurrency (about once a second) and ask for a
 * decision (every two seconds); times are monotonic nanoseconds. */
#ifndef KP_KPA_H
#define KP_KPA_H

#include <stddef.h>
#include <stdint.h>

#define KP_KPA_MAX_DELAY 256 /* scale-down-delay: distinct falling wishes kept */

#define KP_KPA_CLASS "kpa.autoscaling.knative.dev"
#define KP_HPA_CLASS "hpa.autoscaling.knative.dev"

/* autoscaling.knative.dev/metric. Concurrency and rps are the KPA's;
 * cpu and memory are Kubernetes' HPA's (class hpa.autoscaling.knative.dev),
 * which this autoscaler leaves alone. */
typedef enum kp_kpa_metric {
    KP_KPA_METRIC_DEFAULT, /* not given: the class's default, as Knative defaults it */
    KP_KPA_METRIC_CONCURRENCY,
    KP_KPA_METRIC_RPS,
    KP_KPA_METRIC_CPU,
    KP_KPA_METRIC_MEMORY,
} kp_kpa_metric_t;

typedef struct kp_kpa_config {
    int container_concurrency;        /* CC of the revision; 0 = unlimited */
    int hpa_class;                    /* class hpa.autoscaling.knative.dev: not ours to scale */
    kp_kpa_metric_t metric;           /* autoscaling.knative.dev/metric */
    double target_default;            /* container-concurrency-target-default, 100 */
    double rps_target_default;        /* requests-per-second-target-default, 200 */
    double target_percentage;         /* container-concurrency-target-percentage, 70; the
                                         annotation target-utilization-percentage too */
    double target;                    /* autoscaling.knative.dev/target; 0 = unset */
    double stable_window_s;           /* stable-window / window, 60 (whole seconds) */
    double panic_window_pct;          /* panic-window-percentage, 10 */
    double panic_threshold_pct;       /* panic-threshold-percentage, 200 */
    double max_scale_up_rate;         /* 1000 */
    double max_scale_down_rate;       /* 2 */
    double scale_to_zero_grace_s;     /* scale-to-zero-grace-period, 30 */
    double scale_to_zero_retention_s; /* scale-to-zero-pod-retention-period, 0 */
    double scale_down_delay_s;        /* scale-down-delay, 0 (whole seconds) */
    double target_burst_capacity;     /* target-burst-capacity, 211: reported, not acted on */
    int initial_scale;                /* initial-scale, 1 */
    int allow_zero_initial_scale;     /* false; initial-scale 0 without it means 1 */
    int min_scale;                    /* min-scale, 0 */
    int max_scale;                    /* max-scale, 0 = unbounded */
    int max_scale_limit;              /* max-scale-limit, 0 = none */
    int activation_scale;             /* activation-scale: pods when leaving zero, 1 */
    int enable_scale_to_zero;         /* true */
    int unreachable;                  /* no route reaches the revision (Knative's PA reachability
                                         Unreachable): min-scale does not hold it up */
    uint64_t annotated;               /* settings given by an annotation (one bit per key) */
} kp_kpa_config_t;

/* kp_kpa_config_set's "accepted, validated, not acted on": err says why. */
#define KP_KPA_IGNORED 1

void kp_kpa_config_defaults(kp_kpa_config_t *cfg);
/* key: a config-autoscaler key ("stable-window") or an annotation
 * ("autoscaling.knative.dev/window", "autoscaling.knative.dev/min-scale",
 * or its older camelCase spelling "autoscaling.knative.dev/minScale").
 * Durations accept Go forms ("60s", "1m30s", "500ms") and bare seconds.
 * Returns 0 when applied; KP_KPA_IGNORED when the key and value are valid
 * Knative but this autoscaler does not act on them (err says why); -1 for
 * an unknown key, a malformed value or a setting given twice through two
 * spellings of one annotation: cfg unchanged, err names the key, the
 * value and what is accepted. */
int kp_kpa_config_set(kp_kpa_config_t *cfg, const char *key, const char *value, char *err,
                      size_t err_len);
/* A revision annotation: keys outside autoscaling.knative.dev/ belong to
 * others and are left alone (0); the rest as kp_kpa_config_set. */
int kp_kpa_annotation_set(kp_kpa_config_t *cfg, const char *key, const char *value, char *err,
                          size_t err_len);
/* The rules across keys that Knative's webhook and config-autoscaler check
 * once all are in (they come in any order): min-scale <= max-scale,
 * initial-scale 0 only with allow-zero-initial-scale, max-scale within
 * max-scale-limit. 0, or -1 with err naming the keys. */
int kp_kpa_config_check(const kp_kpa_config_t *cfg, char *err, size_t err_len);
/* The metric in effect: the one given, or the class's default (KPA:
 * concurrency, HPA: cpu). */
kp_kpa_metric_t kp_kpa_config_metric(const kp_kpa_config_t *cfg);
/* "concurrency", "rps", "cpu", "memory". */
const char *kp_kpa_metric_name(kp_kpa_metric_t metric);
/* Knative's ResolveMetricTarget: concurrency: (annotation target, capped
 * at CC when CC > 0; else CC; else target_default); rps: (annotation
 * target; else rps_target_default); then × percentage / 100, at least
 * 0.01. In the metric's unit: requests at once, or requests per second. */
double kp_kpa_config_target(const kp_kpa_config_t *cfg);
/* The same before the percentage: what one pod is meant to take at once
 * (Knative's TotalValue). */
double kp_kpa_config_total(const kp_kpa_config_t *cfg);

/* One second of observed concurrency: the average of its observations. */
typedef struct kp_kpa_bucket {
    double sum;
    int n;
    int64_t sec; /* which second the slot holds; -1 none */
} kp_kpa_bucket_t;

/* One revision's autoscaler state; embedded by its owner (the activator's
 * autoscaler), no handles. Its ring of buckets is sized by the stable
 * window (two windows' worth), so an idle revision costs little. */
typedef struct kp_kpa {
    kp_kpa_config_t cfg;
    kp_kpa_bucket_t *buckets; /* ring indexed by second */
    size_t n_buckets;
    int64_t last_write_sec; /* -1 before the first record */
    uint64_t start_ns;
    int panicking;
    uint64_t panic_time_ns; /* last decision over the panic threshold */
    int max_panic_pods;
    int last_desired;
    int scaled_once; /* ready pods reached initial scale: it no longer applies */
    /* scale-down-delay: wishes with their time, values strictly falling, so
     * the first one in the window is the max (Knative's max.TimeWindow). */
    int delay_wish[KP_KPA_MAX_DELAY];
    uint64_t delay_wish_ns[KP_KPA_MAX_DELAY];
    int n_delay;
    /* Scale to zero. */
    int zero_wish;            /* the current run of decisions wishes 0 pods */
    uint64_t zero_since_ns;   /* first decision of that run */
    uint64_t last_request_ns; /* last observed load > 0, or poke (retention) */
    int active;               /* some pod is ready */
    uint64_t active_since_ns; /* ready pods went from 0 to > 0 */
    int poked;                /* a request is waiting at zero: at least one pod now */
    uint64_t poke_ns;
} kp_kpa_t;

typedef struct kp_kpa_decision {
    int desired_scale;
    double observed_stable; /* average total concurrency over the stable window */
    double observed_panic;  /* the same over the panic window */
    double target;          /* per-pod target concurrency used */
    int stable_pods;        /* pods the stable window asks for, within the rate limits */
    int panic_pods;         /* the same for the panic window */
    /* Knative's excess burst capacity: ready pods × per-pod capacity −
     * target-burst-capacity − panic concurrency (floored); -1 when
     * target-burst-capacity is -1. Reported only: the activator stays in
     * the path whatever it says. */
    double excess_burst_capacity;
    int panicking;
    const char *reason; /* short, static: "stable", "panic", "min-scale", ... */
} kp_kpa_decision_t;

/* 0, or -ENOMEM (nothing held). */
int kp_kpa_init(kp_kpa_t *kpa, const kp_kpa_config_t *cfg, uint64_t now_ns);
void kp_kpa_free(kp_kpa_t *kpa);
/* New settings; the observations are kept (as far as a smaller window's
 * ring holds them). -ENOMEM: the settings changed, the ring did not. */
int kp_kpa_reconfigure(kp_kpa_t *kpa, const kp_kpa_config_t *cfg);
/* One observation of the metric: total concurrency (pods + held + in
 * flight), or requests per second. */
void kp_kpa_record(kp_kpa_t *kpa, uint64_t now_ns, double concurrency);
/* A request is held for a revision with no pod: the next decision asks for
 * at least one pod whatever the windows say, until a pod is ready. */
void kp_kpa_poke(kp_kpa_t *kpa, uint64_t now_ns);
/* Requests are waiting for capacity right now: at least `concurrency`
 * requests' worth of pods is wanted at once, without waiting for the
 * windows to fill, and kept for a stable window as in a panic. */
void kp_kpa_burst(kp_kpa_t *kpa, uint64_t now_ns, double concurrency);
/* ready_pods: pods currently ready. Returns 0 and fills *d. */
int kp_kpa_decide(kp_kpa_t *kpa, uint64_t now_ns, int ready_pods, kp_kpa_decision_t *d);

#endif
