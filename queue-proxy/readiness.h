/* The app's readiness, as the queue-proxy's health checks see it: probes
 * the user container (TCP connect or HTTP GET, per SERVING_READINESS_PROBE)
 * on the libuv loop, following Knative's pkg/queue/readiness semantics, plus
 * (ours) background probing from start so readiness is known within
 * milliseconds of the app listening. */
#ifndef KP_READINESS_H
#define KP_READINESS_H

#include <stdint.h>
#include <uv.h>

#include "probe_spec.h"

typedef struct kp_readiness kp_readiness_t;
typedef struct kp_readiness_waiter kp_readiness_waiter_t;
typedef void (*kp_readiness_cb)(kp_readiness_waiter_t *w, int ready);

/* Embedded in the caller's request; recover it with container_of in cb.
 * Must stay alive until cb runs or kp_readiness_cancel returns. Zero it
 * (or pass it to kp_readiness_check) before any cancel. */
struct kp_readiness_waiter {
    kp_readiness_waiter_t *next, *prev;
    kp_readiness_cb cb;
};

/* spec NULL or kind NONE: no probe, always ready. The spec is copied. */
kp_readiness_t *kp_readiness_new(uv_loop_t *loop, const kp_probe_spec_t *spec);

/* (ours) Probes every 25 ms from now until the app is first ready, so that
 * the state is known a few ms after the app starts listening. */
void kp_readiness_start(kp_readiness_t *r);

/* Last known state (1 ready, 0 not). */
int kp_readiness_is_ready(const kp_readiness_t *r);

/* A health check: cb(w, ready) runs once with the answer.
 * - periodSeconds 0 ("aggressive"): probes every 50 ms (100 ms per-attempt
 *   timeout) until successThreshold consecutive successes or 10 s pass.
 *   Like Knative, every check probes again even when the app was ready
 *   before (no cached answer); checks arriving while a run is in progress
 *   join it and share its answer and deadline.
 * - periodSeconds > 0: the answer follows one probe (timeoutSeconds), the
 *   thresholds counted across checks as the kubelet counts them: ready
 *   after successThreshold consecutive successes, unready after
 *   failureThreshold consecutive failures. Checks arriving while a probe
 *   is in flight share its result.
 * cb runs from a libuv callback, never from inside this call, except with
 * no probe (always ready), where it runs at once. */
void kp_readiness_check(kp_readiness_t *r, kp_readiness_waiter_t *w, kp_readiness_cb cb);

/* The waiter went away: its cb will not run. No-op if it is not waiting. */
void kp_readiness_cancel(kp_readiness_t *r, kp_readiness_waiter_t *w);

/* Stops probing and closes the handles; r is freed once they are closed.
 * Waiters still queued are dropped without their cb (the servers that own
 * them are closing too). r must not be used after this call. */
void kp_readiness_close(kp_readiness_t *r);

/* ENABLE_HTTP2_AUTO_DETECTION (Knative's NewProbeWithHTTP2AutoDetection),
 * for an httpGet probe (others are left as they are): every attempt first
 * sends OPTIONS with Upgrade: h2c over HTTP/1.1; an answer 101 with
 * Upgrade: h2c means the app speaks h2c, and the probe's GET then goes
 * over h2c (success: 200-399); a 200-399 answer is success at once; any
 * other is a failure. spec: the one given to kp_readiness_new. Call before
 * kp_readiness_start; 0 or UV_ENOMEM. */
int kp_readiness_detect_http2(kp_readiness_t *r, const kp_probe_spec_t *spec);

/* For tests: the aggressive run's overall limit (default 10000 ms). */
void kp_readiness_set_poll_timeout(kp_readiness_t *r, uint64_t ms);

#endif
