/* Knative's KPA decision logic (pkg/autoscaler/scaling/autoscaler.go, the
 * 1 s bucket averaging of pkg/autoscaler/aggregation and the scale-to-zero
 * rules of pkg/reconciler/autoscaling/kpa/scaler.go), with no I/O. Its
 * settings are kpa_config.c's. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kpa.h"

#define NS_PER_S 1000000000ull

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
