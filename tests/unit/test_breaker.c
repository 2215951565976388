/* Tests for queue-proxy/breaker.c: Knative's breaker semantics (capacity, FIFO
 * queue, queue-full refusal, cancel) on a single thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "queue-proxy/breaker.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Records the order in which waiters were handed a slot. */
struct grant_log {
    int ids[64];
    int n;
};

struct req {
    kp_breaker_waiter_t w;
    int id;
    struct grant_log *log;
    kp_breaker_t *release_on_ready; /* set: give the slot back at once */
};

static void on_ready(kp_breaker_waiter_t *w)
{
    struct req *r = container_of(w, struct req, w);
    r->log->ids[r->log->n++] = r->id;
    if (r->release_on_ready)
        kp_breaker_release(r->release_on_ready);
}

static void reqs_init(struct req *reqs, int n, struct grant_log *log)
{
    log->n = 0;
    for (int i = 0; i < n; i++)
        reqs[i] = (struct req){.id = i, .log = log};
}

static void acquires_up_to_capacity_then_queues(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[3];
    kp_breaker_init(&b, 2, 10);
    reqs_init(r, 3, &log);

    assert_int_equal(kp_breaker_acquire(&b, &r[0].w, on_ready), KP_BREAKER_ACQUIRED);
    assert_int_equal(kp_breaker_acquire(&b, &r[1].w, on_ready), KP_BREAKER_ACQUIRED);
    assert_int_equal(kp_breaker_acquire(&b, &r[2].w, on_ready), KP_BREAKER_QUEUED);
    assert_int_equal(b.in_flight, 2);
    assert_int_equal(b.queued, 1);
    assert_int_equal(log.n, 0);
}

static void fifo_order(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[5];
    kp_breaker_init(&b, 1, 10);
    reqs_init(r, 5, &log);

    assert_int_equal(kp_breaker_acquire(&b, &r[0].w, on_ready), KP_BREAKER_ACQUIRED);
    for (int i = 1; i < 5; i++)
        assert_int_equal(kp_breaker_acquire(&b, &r[i].w, on_ready), KP_BREAKER_QUEUED);
    for (int i = 1; i < 5; i++) {
        kp_breaker_release(&b);
        assert_int_equal(log.n, i);
        assert_int_equal(log.ids[i - 1], i);
    }
    kp_breaker_release(&b);
    assert_int_equal(b.in_flight, 0);
    assert_int_equal(b.queued, 0);
    assert_null(b.head);
    assert_null(b.tail);
}

static void queue_full_returns_full(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[5];
    kp_breaker_init(&b, 2, 2);
    reqs_init(r, 5, &log);

    for (int i = 0; i < 2; i++)
        assert_int_equal(kp_breaker_acquire(&b, &r[i].w, on_ready), KP_BREAKER_ACQUIRED);
    for (int i = 2; i < 4; i++)
        assert_int_equal(kp_breaker_acquire(&b, &r[i].w, on_ready), KP_BREAKER_QUEUED);
    assert_int_equal(kp_breaker_acquire(&b, &r[4].w, on_ready), KP_BREAKER_FULL);
    assert_int_equal(r[4].w.queued, 0);
    assert_int_equal(b.in_flight, 2);
    assert_int_equal(b.queued, 2);

    /* Once a waiter got its slot, there is room in the queue again. */
    kp_breaker_release(&b);
    assert_int_equal(kp_breaker_acquire(&b, &r[4].w, on_ready), KP_BREAKER_QUEUED);
}

static void zero_max_queue_refuses_when_busy(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[2];
    kp_breaker_init(&b, 1, 0);
    reqs_init(r, 2, &log);

    assert_int_equal(kp_breaker_acquire(&b, &r[0].w, on_ready), KP_BREAKER_ACQUIRED);
    assert_int_equal(kp_breaker_acquire(&b, &r[1].w, on_ready), KP_BREAKER_FULL);
}

static void cancel_removes_waiter(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[5];
    kp_breaker_init(&b, 1, 10);
    reqs_init(r, 5, &log);

    assert_int_equal(kp_breaker_acquire(&b, &r[0].w, on_ready), KP_BREAKER_ACQUIRED);
    for (int i = 1; i < 5; i++)
        assert_int_equal(kp_breaker_acquire(&b, &r[i].w, on_ready), KP_BREAKER_QUEUED);

    kp_breaker_cancel(&b, &r[2].w); /* middle */
    kp_breaker_cancel(&b, &r[1].w); /* head */
    kp_breaker_cancel(&b, &r[4].w); /* tail */
    assert_int_equal(b.queued, 1);
    assert_int_equal(r[1].w.queued, 0);
    assert_int_equal(r[2].w.queued, 0);
    assert_int_equal(r[4].w.queued, 0);
    assert_int_equal(b.in_flight, 1);

    kp_breaker_release(&b);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ids[0], 3);
    kp_breaker_release(&b);
    assert_int_equal(log.n, 1);
    assert_int_equal(b.in_flight, 0);
    assert_null(b.head);
    assert_null(b.tail);
}

static void cancel_of_unqueued_waiter_is_noop(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[3];
    kp_breaker_init(&b, 1, 10);
    reqs_init(r, 3, &log);

    assert_int_equal(kp_breaker_acquire(&b, &r[0].w, on_ready), KP_BREAKER_ACQUIRED);
    assert_int_equal(kp_breaker_acquire(&b, &r[1].w, on_ready), KP_BREAKER_QUEUED);
    kp_breaker_cancel(&b, &r[0].w); /* holds a slot, never queued */
    kp_breaker_cancel(&b, &r[2].w); /* never seen */
    kp_breaker_cancel(&b, &r[1].w);
    kp_breaker_cancel(&b, &r[1].w); /* twice */
    assert_int_equal(b.queued, 0);
    assert_int_equal(b.in_flight, 1);

    /* A waiter that already got its slot is no longer queued either. */
    assert_int_equal(kp_breaker_acquire(&b, &r[2].w, on_ready), KP_BREAKER_QUEUED);
    kp_breaker_release(&b);
    kp_breaker_cancel(&b, &r[2].w);
    assert_int_equal(b.in_flight, 1);
    assert_int_equal(b.queued, 0);
}

static void unlimited_always_acquires(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    static struct req r[1000];
    kp_breaker_init(&b, 0, 0);
    reqs_init(r, 1000, &log);

    for (int i = 0; i < 1000; i++)
        assert_int_equal(kp_breaker_acquire(&b, &r[i].w, on_ready), KP_BREAKER_ACQUIRED);
    assert_int_equal(b.in_flight, 1000);
    assert_int_equal(b.queued, 0);
    for (int i = 0; i < 1000; i++)
        kp_breaker_release(&b);
    assert_int_equal(b.in_flight, 0);
    assert_int_equal(log.n, 0);
}

static void release_hands_slot_to_waiter(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[2];
    kp_breaker_init(&b, 1, 10);
    reqs_init(r, 2, &log);

    assert_int_equal(kp_breaker_acquire(&b, &r[0].w, on_ready), KP_BREAKER_ACQUIRED);
    assert_int_equal(kp_breaker_acquire(&b, &r[1].w, on_ready), KP_BREAKER_QUEUED);
    kp_breaker_release(&b);
    /* on_ready ran inside release, and the slot never became free: a
     * newcomer cannot overtake the waiter. */
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ids[0], 1);
    assert_int_equal(r[1].w.queued, 0);
    assert_int_equal(b.in_flight, 1);
    assert_int_equal(b.queued, 0);

    struct req late = {.id = 9, .log = &log};
    assert_int_equal(kp_breaker_acquire(&b, &late.w, on_ready), KP_BREAKER_QUEUED);
    kp_breaker_cancel(&b, &late.w);
}

static void on_ready_may_release_at_once(void **state)
{
    kp_breaker_t b;
    struct grant_log log;
    struct req r[4];
    kp_breaker_init(&b, 1, 10);
    reqs_init(r, 4, &log);

    assert_int_equal(kp_breaker_acquire(&b, &r[0].w, on_ready), KP_BREAKER_ACQUIRED);
    for (int i = 1; i < 4; i++) {
        r[i].release_on_ready = i < 3 ? &b : NULL; /* 1 and 2 fail at once */
        assert_int_equal(kp_breaker_acquire(&b, &r[i].w, on_ready), KP_BREAKER_QUEUED);
    }
    kp_breaker_release(&b);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.ids[0], 1);
    assert_int_equal(log.ids[1], 2);
    assert_int_equal(log.ids[2], 3);
    assert_int_equal(b.in_flight, 1);
    assert_int_equal(b.queued, 0);
}

/* CC=1000 with 10 000 waiters, each giving its slot back from on_ready (a
 * request that fails at once): one release serves them all, in order,
 * without one on_ready running inside another. */
#define MANY_CAPACITY 1000
#define MANY_WAITERS 10000

struct many {
    kp_breaker_t b;
    struct many_req {
        kp_breaker_waiter_t w;
        int id;
        struct many *m;
    } reqs[MANY_WAITERS];
    int granted[MANY_WAITERS];
    int n_granted;
    int depth, max_depth; /* on_ready calls under way, now and at most */
};

static void many_on_ready(kp_breaker_waiter_t *w)
{
    struct many_req *r = container_of(w, struct many_req, w);
    struct many *m = r->m;
    m->granted[m->n_granted++] = r->id;
    if (++m->depth > m->max_depth)
        m->max_depth = m->depth;
    kp_breaker_release(&m->b);
    m->depth--; /* after the release: the call is no tail call */
}

static void *many_waiters_released(void *arg)
{
    struct many *m = arg;
    kp_breaker_init(&m->b, MANY_CAPACITY, MANY_WAITERS);
    for (int i = 0; i < MANY_CAPACITY; i++) {
        kp_breaker_waiter_t holder = {0};
        if (kp_breaker_acquire(&m->b, &holder, many_on_ready) != KP_BREAKER_ACQUIRED)
            return "a slot below capacity was not acquired";
    }
    for (int i = 0; i < MANY_WAITERS; i++) {
        m->reqs[i] = (struct many_req){.id = i, .m = m};
        if (kp_breaker_acquire(&m->b, &m->reqs[i].w, many_on_ready) != KP_BREAKER_QUEUED)
            return "a waiter was not queued";
    }
    kp_breaker_release(&m->b);
    return NULL;
}

static void ten_thousand_waiters_released_on_a_small_stack(void **state)
{
    static struct many m;
    /* 64 KiB of stack: a hand-over that recursed once per waiter needs
     * several hundred KiB here and dies of it. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    assert_int_equal(pthread_attr_setstacksize(&attr, 64 * 1024), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, &attr, many_waiters_released, &m), 0);
    void *failure = NULL;
    assert_int_equal(pthread_join(t, &failure), 0);
    pthread_attr_destroy(&attr);
    if (failure)
        fail_msg("%s", (const char *)failure);

    assert_int_equal(m.n_granted, MANY_WAITERS);
    for (int i = 0; i < MANY_WAITERS; i++)
        assert_int_equal(m.granted[i], i);
    assert_int_equal(m.max_depth, 1);
    assert_int_equal(m.b.in_flight, MANY_CAPACITY - 1);
    assert_int_equal(m.b.queued, 0);
    assert_null(m.b.head);
    assert_null(m.b.tail);
}

/* Random acquires, releases and cancels against a model of who holds a slot
 * and who waits in which order; the breaker must agree with the model and
 * never run more than capacity nor queue more than max_queue. */
enum { IDLE, HOLDING, WAITING };
struct sim;
struct sim_req {
    kp_breaker_waiter_t w;
    int state;
    long ticket; /* arrival order among waiters */
    struct sim *sim;
};
struct sim {
    kp_breaker_t b;
    struct sim_req reqs[40];
    long next_ticket, last_granted_ticket;
};

static void sim_on_ready(kp_breaker_waiter_t *w)
{
    struct sim_req *r = container_of(w, struct sim_req, w);
    assert_int_equal(r->state, WAITING);
    assert_true(r->ticket > r->sim->last_granted_ticket);
    r->sim->last_granted_ticket = r->ticket;
    r->state = HOLDING;
}

static void check_model(struct sim *s, int capacity, int max_queue)
{
    int holding = 0, waiting = 0;
    long oldest_waiting = -1;
    for (int i = 0; i < 40; i++) {
        holding += s->reqs[i].state == HOLDING;
        if (s->reqs[i].state == WAITING) {
            waiting++;
            if (oldest_waiting < 0 || s->reqs[i].ticket < oldest_waiting)
                oldest_waiting = s->reqs[i].ticket;
        }
    }
    assert_int_equal(s->b.in_flight, holding);
    assert_int_equal(s->b.queued, waiting);
    assert_true(s->b.in_flight <= capacity);
    assert_true(s->b.queued <= max_queue);
    if (waiting) {
        /* Nobody waits while a slot is free, and the head is the oldest. */
        assert_int_equal(s->b.in_flight, capacity);
        assert_int_equal(container_of(s->b.head, struct sim_req, w)->ticket, oldest_waiting);
    }
}

static void in_flight_never_exceeds_capacity_randomized(void **state)
{
    static struct sim s;
    const int capacity = 3, max_queue = 7;
    for (int i = 0; i < 40; i++)
        s.reqs[i].sim = &s;
    kp_breaker_init(&s.b, capacity, max_queue);
    srand(12345);
    int full = 0, granted = 0;

    for (int step = 0; step < 200000; step++) {
        struct sim_req *r = &s.reqs[rand() % 40];
        int op = rand() % 3;
        switch (r->state) {
        case IDLE: {
            int rc = kp_breaker_acquire(&s.b, &r->w, sim_on_ready);
            if (rc == KP_BREAKER_ACQUIRED) {
                r->state = HOLDING;
            } else if (rc == KP_BREAKER_QUEUED) {
                r->state = WAITING;
                r->ticket = ++s.next_ticket;
            } else {
                assert_int_equal(rc, KP_BREAKER_FULL);
                assert_int_equal(s.b.queued, max_queue);
                full++;
            }
            break;
        }
        case HOLDING:
            r->state = IDLE;
            kp_breaker_release(&s.b);
            granted++;
            break;
        case WAITING:
            if (op == 0) { /* deadline passed */
                kp_breaker_cancel(&s.b, &r->w);
                r->state = IDLE;
            }
            break;
        }
        check_model(&s, capacity, max_queue);
    }
    /* The run exercised every outcome. */
    assert_true(full > 0);
    assert_true(granted > 0);
    assert_true(s.last_granted_ticket > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(acquires_up_to_capacity_then_queues),
        cmocka_unit_test(fifo_order),
        cmocka_unit_test(queue_full_returns_full),
        cmocka_unit_test(zero_max_queue_refuses_when_busy),
        cmocka_unit_test(cancel_removes_waiter),
        cmocka_unit_test(cancel_of_unqueued_waiter_is_noop),
        cmocka_unit_test(unlimited_always_acquires),
        cmocka_unit_test(release_hands_slot_to_waiter),
        cmocka_unit_test(on_ready_may_release_at_once),
        cmocka_unit_test(ten_thousand_waiters_released_on_a_small_stack),
        cmocka_unit_test(in_flight_never_exceeds_capacity_randomized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
