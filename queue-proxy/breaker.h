/* Knative's queue-proxy breaker: at most `capacity` requests reach the app at
 * once, up to `max_queue` more wait in arrival order, the rest are refused.
 * Built for one event-loop thread: no locks, no allocation, no libuv. */
#ifndef KP_BREAKER_H
#define KP_BREAKER_H

typedef struct kp_breaker_waiter kp_breaker_waiter_t;
typedef void (*kp_breaker_ready_cb)(kp_breaker_waiter_t *w);

/* Embedded in the caller's request struct; the caller recovers its request
 * from `w` with container_of in on_ready. Must stay alive while queued: a
 * request that ends early calls kp_breaker_cancel first. */
struct kp_breaker_waiter {
    kp_breaker_waiter_t *next, *prev;
    kp_breaker_ready_cb on_ready;
    int queued; /* 1 while linked into a breaker's queue */
};

typedef struct kp_breaker {
    int capacity; /* 0 = unlimited: never queues, only counts in_flight */
    int max_queue;
    int in_flight; /* slots held, including those just handed to a waiter */
    int queued;
    kp_breaker_waiter_t *head, *tail;
    /* Releases made from inside an on_ready, not yet handed over: the
     * outermost release hands them over one after another, so the stack
     * stays flat however many waiters give their slot back at once. */
    int handovers_pending;
    int handing_over;
} kp_breaker_t;

enum { KP_BREAKER_ACQUIRED = 0, KP_BREAKER_QUEUED = 1, KP_BREAKER_FULL = -1 };

void kp_breaker_init(kp_breaker_t *b, int capacity, int max_queue);

/* ACQUIRED: the caller holds a slot now and must kp_breaker_release it.
 * QUEUED: on_ready(w) runs later, from inside a kp_breaker_release, once the
 * slot is the caller's (FIFO); from then on the caller holds it as above.
 * FULL: max_queue waiters already; nothing is held (Knative answers 503
 * "pending request queue full"). */
int kp_breaker_acquire(kp_breaker_t *b, kp_breaker_waiter_t *w, kp_breaker_ready_cb on_ready);

/* Takes a queued waiter out (deadline passed, client left). No-op when w is
 * not queued, so it is safe to call from any request teardown path. */
void kp_breaker_cancel(kp_breaker_t *b, kp_breaker_waiter_t *w);

/* Gives back a held slot. If someone waits, the slot passes straight to the
 * first waiter and its on_ready runs before this returns. on_ready may call
 * back into the breaker (acquire, cancel, or release when the request fails
 * at once). A release from inside an on_ready returns at once: its slot
 * stays taken and goes to the then-first waiter as soon as that on_ready
 * returns, still before the outermost release returns. One on_ready never
 * runs inside another. */
void kp_breaker_release(kp_breaker_t *b);

#endif
