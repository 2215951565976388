/* Knative's queue-proxy breaker (pkg/queue/breaker.go) for a single-threaded
 * event loop: a slot counter plus an intrusive FIFO of waiters. See
 * breaker.h for the contract. */
#include "breaker.h"

#include <assert.h>
#include <stddef.h>

void kp_breaker_init(kp_breaker_t *b, int capacity, int max_queue)
{
    b->capacity = capacity > 0 ? capacity : 0;
    b->max_queue = max_queue > 0 ? max_queue : 0;
    b->in_flight = 0;
    b->queued = 0;
    b->head = NULL;
    b->tail = NULL;
    b->handovers_pending = 0;
    b->handing_over = 0;
}

static void queue_unlink(kp_breaker_t *b, kp_breaker_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        b->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = 0;
    b->queued--;
}

int kp_breaker_acquire(kp_breaker_t *b, kp_breaker_waiter_t *w, kp_breaker_ready_cb on_ready)
{
    assert(!w->queued);
    /* A free slot with waiters present cannot happen (release hands slots
     * over directly), so taking it here never jumps the queue. */
    if (b->capacity == 0 || b->in_flight < b->capacity) {
        b->in_flight++;
        return KP_BREAKER_ACQUIRED;
    }
    if (b->queued >= b->max_queue)
        return KP_BREAKER_FULL;

    w->on_ready = on_ready;
    w->next = NULL;
    w->prev = b->tail;
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
    w->queued = 1;
    b->queued++;
    return KP_BREAKER_QUEUED;
}

void kp_breaker_cancel(kp_breaker_t *b, kp_breaker_waiter_t *w)
{
    if (w->queued)
        queue_unlink(b, w);
}

void kp_breaker_release(kp_breaker_t *b)
{
    assert(b->in_flight > 0);
    if (!b->head) {
        b->in_flight--;
        return;
    }
    /* in_flight stays: the slot changes hands without ever being free, so
     * an acquire meanwhile queues behind the waiters instead of overtaking
     * them. */
    b->handovers_pending++;
    if (b->handing_over)
        return; /* inside an on_ready: the loop below, further up, hands it on */
    b->handing_over = 1;
    while (b->handovers_pending > 0) {
        b->handovers_pending--;
        kp_breaker_waiter_t *w = b->head;
        if (!w) { /* the waiters left (cancelled) before their turn */
            b->in_flight--;
            continue;
        }
        /* The breaker is consistent before on_ready runs, so it may
         * re-enter. */
        queue_unlink(b, w);
        w->on_ready(w);
    }
    b->handing_over = 0;
}
