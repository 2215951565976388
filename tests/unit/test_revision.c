/* Tests for activator/revision.c, the throttler, on its own: requests are
 * claims with recording ops, the backend a recording stub, pods added by
 * hand. Proves the throttler hands requests on only through the claim's
 * ops and keeps every pod within its slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/revision.h"
#include "activator/slot_share.h"
#include "base/log.h"

typedef struct stub_backend {
    act_backend_t base;
    int scale_calls;
    int last_scale;
    int wakes;
} stub_backend_t;

static act_backend_revision_t *stub_add_revision(act_backend_t *b, const kp_revision_spec_t *spec,
                                                 void *rev_ctx)
{
    return (act_backend_revision_t *)rev_ctx; /* any non-NULL handle */
}

static void stub_set_scale(act_backend_t *b, act_backend_revision_t *r, int pods)
{
    stub_backend_t *s = (stub_backend_t *)b;
    s->scale_calls++;
    s->last_scale = pods;
}

static void stub_wake(act_backend_t *b, act_backend_revision_t *r)
{
    ((stub_backend_t *)b)->wakes++;
}

/* A request as the handler would embed it, recording what it was told. */
typedef struct test_request {
    act_claim_t claim;
    int granted;
    int refused_status;
    char refused_body[256];
    int order; /* when it was granted, 1-based */
} test_request_t;

static int grants_so_far;

static void on_granted(act_claim_t *c)
{
    test_request_t *r = (test_request_t *)((char *)c - offsetof(test_request_t, claim));
    r->granted = 1;
    r->order = ++grants_so_far;
}

static void on_refused(act_claim_t *c, int status, const char *body)
{
    test_request_t *r = (test_request_t *)((char *)c - offsetof(test_request_t, claim));
    r->refused_status = status;
    strncpy(r->refused_body, body, sizeof r->refused_body - 1);
}

static const act_claim_ops_t ops = {.granted = on_granted, .refused = on_refused};

typedef struct fixture {
    uv_loop_t loop;
    stub_backend_t backend;
    kp_activator_config_t cfg;
    kp_revision_spec_t spec;
    act_t act;
    act_revision_t *rev;
    int next_port;
} fixture_t;

static fixture_t *setup(int container_concurrency, int max_held)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->backend.base = (act_backend_t){.name = "stub",
                                      .add_revision = stub_add_revision,
                                      .set_scale = stub_set_scale,
                                      .wake = stub_wake};
    f->spec.name = "hello-00001";
    f->spec.namespace_ = "default";
    f->spec.service = "hello";
    f->spec.container_concurrency = container_concurrency;
    f->spec.timeout_s = 300;
    f->act.loop = &f->loop;
    f->act.cfg = &f->cfg;
    f->act.backend = &f->backend.base;
    f->act.max_held = max_held;
    f->act.n_activators = 1;
    f->act.activator_index = -1;
    kp_rng_seed(&f->act.rng, 12345);
    f->rev = act_revision_new(&f->act, &f->spec);
    assert_non_null(f->rev);
    f->next_port = 20000;
    grants_so_far = 0;
    return f;
}

static act_pod_t *add_ready_pod(fixture_t *f, const char *id)
{
    act_pod_info_t info = {.serving_port = f->next_port++, .metrics_port = 9090};
    strcpy(info.id, id);
    strcpy(info.ip, "127.0.0.1");
    act_pod_t *pod = act_revision_pod_add(f->rev, &info);
    assert_non_null(pod);
    act_revision_pod_ready(pod);
    return pod;
}

static void admit(fixture_t *f, test_request_t *r)
{
    memset(r, 0, sizeof *r);
    r->claim.ops = &ops;
    r->claim.start_ns = kp_now_ns();
    act_revision_admit(f->rev, &r->claim);
}

/* Closes the revision and its pods and runs the loop until every handle is
 * closed, so the sanitizer build sees nothing leak. */
static void teardown(fixture_t *f)
{
    act_revision_close(f->rev, NULL);
    for (act_pod_t *pod = f->rev->pods, *next; pod; pod = next) {
        next = pod->next;
        if (!pod->removed)
            act_revision_pod_remove(pod);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    act_revision_free(f->rev);
    free(f);
}

static void held_until_a_pod_is_ready_then_granted_in_arrival_order(void **state)
{
    fixture_t *f = setup(2, 100);
    test_request_t r[3];
    for (int i = 0; i < 3; i++)
        admit(f, &r[i]);
    assert_int_equal(f->rev->n_held, 3);
    assert_false(r[0].granted);

    act_pod_t *pod = add_ready_pod(f, "pod-1");
    /* containerConcurrency 2: the two oldest go, the third waits. */
    assert_true(r[0].granted && r[1].granted);
    assert_int_equal(r[0].order, 1);
    assert_int_equal(r[1].order, 2);
    assert_false(r[2].granted);
    assert_ptr_equal(r[0].claim.pod, pod);
    assert_int_equal(pod->in_flight, 2);
    assert_int_equal(f->rev->n_held, 1);

    act_revision_release(&r[0].claim);
    assert_true(r[2].granted);
    assert_int_equal(pod->in_flight, 2);
    act_revision_release(&r[1].claim);
    act_revision_release(&r[2].claim);
    assert_int_equal(pod->in_flight, 0);
    assert_int_equal(f->rev->in_flight, 0);
    teardown(f);
}

static void no_pod_gets_more_than_its_slots(void **state)
{
    fixture_t *f = setup(3, 1000);
    act_pod_t *pods[4];
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "pod-%d", i);
        pods[i] = add_ready_pod(f, id);
    }
    test_request_t r[20];
    for (int i = 0; i < 20; i++)
        admit(f, &r[i]);
    int granted = 0;
    for (int i = 0; i < 20; i++)
        granted += r[i].granted;
    assert_int_equal(granted, 12);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pods[i]->in_flight, 3);
    assert_int_equal(f->rev->n_held, 8);
    /* Each release lets exactly one held request in, to the freed pod. */
    for (int i = 0; i < 20; i++)
        if (r[i].granted && r[i].claim.pod)
            act_revision_release(&r[i].claim);
    for (int i = 0; i < 20; i++)
        if (r[i].claim.pod)
            act_revision_release(&r[i].claim);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pods[i]->in_flight, 0);
    assert_int_equal(f->rev->n_held, 0);
    teardown(f);
}

static void first_request_at_zero_asks_the_backend_for_a_pod(void **state)
{
    fixture_t *f = setup(10, 100);
    test_request_t r;
    admit(f, &r);
    assert_int_equal(f->backend.last_scale, 1);
    assert_int_equal(f->backend.wakes, 1);
    assert_int_equal(act_revision_desired(f->rev), 1);
    assert_int_equal(f->rev->cold_start_pending, 1);
    add_ready_pod(f, "pod-1");
    assert_true(r.granted);
    assert_int_equal(f->rev->cold_starts, 1);
    assert_int_equal(f->rev->cold_start_seconds.count, 1);
    act_revision_release(&r.claim);
    teardown(f);
}

static void a_full_queue_refuses_with_503(void **state)
{
    fixture_t *f = setup(1, 2);
    test_request_t r[3];
    for (int i = 0; i < 3; i++)
        admit(f, &r[i]);
    assert_int_equal(r[0].refused_status, 0);
    assert_int_equal(r[2].refused_status, 503);
    assert_string_equal(r[2].refused_body, "pending request queue full\n");
    assert_int_equal(f->rev->n_held, 2);
    teardown(f);
    /* teardown refused the two held ones as the activator stops */
    assert_int_equal(r[0].refused_status, 503);
    assert_string_equal(r[1].refused_body, "activator shutting down\n");
}

static void a_removed_or_unready_pod_gets_nothing_new(void **state)
{
    fixture_t *f = setup(0, 100);
    act_pod_t *a = add_ready_pod(f, "pod-a");
    act_pod_t *b = add_ready_pod(f, "pod-b");
    act_revision_pod_remove(a);
    act_revision_pod_unready(b);
    test_request_t r;
    admit(f, &r);
    assert_false(r.granted);
    assert_int_equal(f->rev->n_held, 1);
    act_revision_pod_ready(b);
    assert_true(r.granted);
    assert_ptr_equal(r.claim.pod, b);
    act_revision_release(&r.claim);
    teardown(f);
}

static void a_cancelled_claim_leaves_the_queue(void **state)
{
    fixture_t *f = setup(1, 100);
    test_request_t r[2];
    admit(f, &r[0]);
    admit(f, &r[1]);
    act_revision_cancel(&r[0].claim);
    assert_int_equal(f->rev->n_held, 1);
    add_ready_pod(f, "pod-1");
    assert_false(r[0].granted);
    assert_true(r[1].granted);
    act_revision_release(&r[1].claim);
    teardown(f);
}

/* Every slot of every pod goes to exactly one replica, and the replicas'
 * totals differ by at most one, CC below the number of replicas too. */
static void slots_are_dealt_once_and_evenly(void **state)
{
    for (int cc = 1; cc <= 12; cc++) {
        for (int replicas = 1; replicas <= 7; replicas++) {
            int total[7] = {0};
            for (size_t ordinal = 0; ordinal < 20; ordinal++) {
                int sum = 0;
                for (int self = 0; self < replicas; self++) {
                    int share = act_slot_share(cc, replicas, self, ordinal);
                    assert_true(share >= 0);
                    sum += share;
                    total[self] += share;
                }
                assert_int_equal(sum, cc);
            }
            for (int self = 1; self < replicas; self++)
                assert_true(abs(total[self] - total[0]) <= 1);
        }
    }
    assert_int_equal(act_slot_share(0, 3, 1, 5), 0);
    assert_int_equal(act_slot_share(4, 3, -1, 5), 4);
}

static int slots_of(const act_revision_t *rev, const char *id)
{
    for (const act_pod_t *p = rev->pods; p; p = p->next)
        if (strcmp(p->info.id, id) == 0)
            return p->slots;
    fail_msg("no pod %s", id);
    return -1;
}

static void as_replica(fixture_t *f, int replicas, int self)
{
    f->act.n_activators = replicas;
    f->act.activator_index = self;
    act_revision_capacity_changed(f->rev);
}

/* Three replicas, CC 1: each owns one pod of three (by name, whatever
 * order they came in), so together they send none more than one. */
static void replicas_share_each_pods_slots(void **state)
{
    fixture_t *f = setup(1, 100);
    const char *ids[] = {"pod-c", "pod-a", "pod-b"};
    for (int i = 0; i < 3; i++)
        add_ready_pod(f, ids[i]);
    const char *sorted[] = {"pod-a", "pod-b", "pod-c"};
    for (int self = 0; self < 3; self++) {
        as_replica(f, 3, self);
        for (int i = 0; i < 3; i++)
            assert_int_equal(slots_of(f->rev, sorted[i]), i == self);
        assert_int_equal(f->rev->n_free, 1);
    }
    /* CC 10 among 3: 4 + 3 + 3 of each pod's 10, the extra one moving on. */
    f->rev->spec_storage.container_concurrency = 10;
    for (int i = 0; i < 3; i++) {
        int sum = 0;
        for (int self = 0; self < 3; self++) {
            as_replica(f, 3, self);
            sum += slots_of(f->rev, sorted[i]);
        }
        assert_int_equal(sum, 10);
    }
    /* Our place unknown (not yet a ready endpoint): an even share. */
    as_replica(f, 3, -1);
    assert_int_equal(slots_of(f->rev, "pod-a"), 3);
    as_replica(f, 20, -1);
    assert_int_equal(slots_of(f->rev, "pod-a"), 1);
    as_replica(f, 1, -1);
    assert_int_equal(slots_of(f->rev, "pod-a"), 10);
    teardown(f);
}

/* One pod of CC 1, three replicas: the two that own no slot borrow one
 * rather than hold their requests for good. A pod leaving deals the rest
 * again at once. */
static void a_replica_without_a_slot_borrows_one(void **state)
{
    fixture_t *f = setup(1, 100);
    add_ready_pod(f, "pod-a");
    act_pod_t *b = add_ready_pod(f, "pod-b");
    as_replica(f, 3, 2);
    assert_int_equal(slots_of(f->rev, "pod-a"), 1); /* 2 slots, none ours: borrowed */
    assert_int_equal(slots_of(f->rev, "pod-b"), 0);
    as_replica(f, 3, 1);
    assert_int_equal(slots_of(f->rev, "pod-b"), 1);
    test_request_t r;
    admit(f, &r);
    assert_true(r.granted);
    assert_string_equal(r.claim.pod->info.id, "pod-b");
    act_revision_release(&r.claim);
    act_revision_pod_remove(b);
    assert_int_equal(slots_of(f->rev, "pod-a"), 1); /* pod-a is now the only one: borrowed */
    as_replica(f, 3, 0);
    assert_int_equal(slots_of(f->rev, "pod-a"), 1); /* owned */
    teardown(f);
}

/* The pods the revision would choose from are exactly the ready, kept
 * pods below their slots, in a heap on arrival order. */
static void assert_free_pods_consistent(const act_revision_t *rev)
{
    int cc = rev->spec->container_concurrency, with_slot = 0;
    for (const act_pod_t *p = rev->pods; p; p = p->next) {
        int has_slot = p->ready && !p->removed && (cc == 0 || p->in_flight < p->slots);
        with_slot += has_slot;
        assert_int_equal(p->free_index >= 0, has_slot);
        if (has_slot)
            assert_ptr_equal(rev->free_pods[p->free_index], p);
    }
    assert_int_equal(rev->n_free, with_slot);
    for (int i = 1; i < rev->n_free; i++)
        assert_true(rev->free_pods[(i - 1) / 2]->seq < rev->free_pods[i]->seq);
}

/* containerConcurrency <= 3: the first pod with a free slot, oldest first,
 * so load packs onto the fewest pods (Knative's first-available policy). */
static void small_concurrency_fills_the_oldest_pod_first(void **state)
{
    fixture_t *f = setup(2, 100);
    act_pod_t *a = add_ready_pod(f, "pod-a"), *b = add_ready_pod(f, "pod-b");
    test_request_t r[4];
    for (int i = 0; i < 4; i++)
        admit(f, &r[i]);
    assert_ptr_equal(r[0].claim.pod, a);
    assert_ptr_equal(r[1].claim.pod, a);
    assert_ptr_equal(r[2].claim.pod, b);
    assert_ptr_equal(r[3].claim.pod, b);
    act_revision_release(&r[0].claim);
    test_request_t again;
    admit(f, &again);
    assert_ptr_equal(again.claim.pod, a);
    act_revision_release(&again.claim);
    for (int i = 1; i < 4; i++)
        act_revision_release(&r[i].claim);
    assert_free_pods_consistent(f->rev);
    teardown(f);
}

/* containerConcurrency > 3: round robin over the pods with a free slot. */
static void larger_concurrency_goes_round_robin(void **state)
{
    fixture_t *f = setup(10, 100);
    act_pod_t *pods[3] = {add_ready_pod(f, "pod-a"), add_ready_pod(f, "pod-b"),
                          add_ready_pod(f, "pod-c")};
    test_request_t r[6];
    for (int i = 0; i < 6; i++)
        admit(f, &r[i]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pods[i]->in_flight, 2);
    for (int i = 0; i < 6; i++)
        act_revision_release(&r[i].claim);
    teardown(f);
}

/* Unlimited: the less loaded of two pods drawn at random, never a pod that
 * is not ready or was removed. */
static void unlimited_concurrency_picks_among_ready_pods_only(void **state)
{
    fixture_t *f = setup(0, 100);
    act_pod_t *a = add_ready_pod(f, "pod-a"), *b = add_ready_pod(f, "pod-b");
    act_pod_t *c = add_ready_pod(f, "pod-c");
    act_revision_pod_unready(b);
    act_revision_pod_remove(c);
    test_request_t r[50];
    for (int i = 0; i < 50; i++)
        admit(f, &r[i]);
    assert_int_equal(a->in_flight, 50);
    for (int i = 0; i < 50; i++)
        act_revision_release(&r[i].claim);
    teardown(f);
}

/* Ten thousand random steps (pods arrive, turn ready or not, leave;
 * requests come and go; the slots per pod change): after each, the
 * pods to choose from are exactly those with a free slot, and no pod is
 * over its slots. */
static void free_pods_follow_every_change(void **state)
{
    fixture_t *f = setup(3, 100000);
    enum { MAX_PODS = 12, MAX_REQS = 64 };
    act_pod_t *pods[MAX_PODS] = {0};
    test_request_t *r = calloc(MAX_REQS, sizeof *r);
    assert_non_null(r);
    int in_use[MAX_REQS] = {0}, n_added = 0;
    kp_rng_t rng;
    kp_rng_seed(&rng, 7);
    for (int step = 0; step < 10000; step++) {
        /* In flight per pod before the step: a grant may only go to a pod
         * below its slots, so none may rise above them. */
        const act_pod_t *seen[256];
        int seen_in_flight[256], n_seen = 0;
        for (const act_pod_t *p = f->rev->pods; p && n_seen < 256; p = p->next) {
            seen[n_seen] = p;
            seen_in_flight[n_seen++] = p->in_flight;
        }
        uint64_t x = kp_rng_next(&rng);
        int k = (int)((x >> 8) % MAX_PODS), q = (int)((x >> 16) % MAX_REQS);
        switch (x % 7) {
        case 0:
            if (!pods[k] && n_added < 1000) {
                act_pod_info_t info = {.serving_port = f->next_port++, .metrics_port = 9090};
                snprintf(info.id, sizeof info.id, "pod-%d", n_added++);
                strcpy(info.ip, "127.0.0.1");
                pods[k] = act_revision_pod_add(f->rev, &info);
            }
            break;
        case 1:
            if (pods[k])
                act_revision_pod_ready(pods[k]);
            break;
        case 2:
            if (pods[k])
                act_revision_pod_unready(pods[k]);
            break;
        case 3:
            if (pods[k] && (x >> 32) % 4 == 0) {
                act_revision_pod_remove(pods[k]);
                pods[k] = NULL;
            }
            break;
        case 4:
        case 5:
            if (!in_use[q]) {
                admit(f, &r[q]);
                in_use[q] = 1;
            } else if (r[q].claim.pod) {
                act_revision_release(&r[q].claim);
                in_use[q] = 0;
            } else {
                act_revision_cancel(&r[q].claim);
                in_use[q] = 0;
            }
            break;
        case 6:
            f->spec.container_concurrency = (int)((x >> 24) % 5);
            f->rev->spec_storage.container_concurrency = f->spec.container_concurrency;
            /* and the replicas sharing the pods, our place among them */
            as_replica(f, 1 + (int)((x >> 32) % 4), (int)((x >> 40) % 5) - 1);
            break;
        }
        assert_free_pods_consistent(f->rev);
        int cc = f->rev->spec->container_concurrency;
        for (const act_pod_t *p = f->rev->pods; p; p = p->next) {
            int before = 0;
            for (int i = 0; i < n_seen; i++)
                if (seen[i] == p)
                    before = seen_in_flight[i];
            assert_true(cc == 0 || p->in_flight <= p->slots || p->in_flight <= before);
        }
    }
    for (int q = 0; q < MAX_REQS; q++)
        if (in_use[q] && r[q].claim.pod)
            act_revision_release(&r[q].claim);
        else if (in_use[q])
            act_revision_cancel(&r[q].claim);
    free(r);
    teardown(f);
}

/* /status keeps a few recent failures, newest first, each reason once. */
static void recent_failures_are_kept_newest_first_once_each(void **state)
{
    fixture_t *f = setup(10, 100);
    act_revision_note_failure(f->rev, "pod %s failed to start", "a");
    act_revision_note_failure(f->rev, "scrape timed out");
    act_revision_note_failure(f->rev, "pod %s failed to start", "a");
    assert_string_equal(f->rev->failures[0].reason, "pod a failed to start");
    assert_int_equal(f->rev->failures[0].count, 2);
    assert_string_equal(f->rev->failures[1].reason, "scrape timed out");
    assert_int_equal(f->rev->failures[1].count, 1);
    assert_int_equal(f->rev->failures[2].at_ns, 0);
    for (int i = 0; i < 4; i++)
        act_revision_note_failure(f->rev, "failure %d", i);
    assert_string_equal(f->rev->failures[0].reason, "failure 3");
    assert_string_equal(f->rev->failures[3].reason, "failure 0"); /* the older ones went */
    for (int i = 0; i < ACT_REVISION_FAILURES; i++)
        assert_int_equal(f->rev->failures[i].count, 1);
    teardown(f);
}

/* The spec says the revision cannot run (the reconciler copies its Ready
 * condition there): what is held ends at once with 503 and the reason, and
 * so does what comes next, until a pod is ready or the reason is gone. */
static void a_revision_that_cannot_run_fails_its_requests_at_once(void **state)
{
    fixture_t *f = setup(10, 100);
    test_request_t held[2], next, later;
    admit(f, &held[0]);
    admit(f, &held[1]);
    assert_int_equal(f->rev->n_held, 2);
    assert_null(act_revision_failure(f->rev));

    kp_revision_spec_t failing = f->spec;
    failing.failure = "ExitCode1: panic: no PORT";
    assert_int_equal(act_revision_reconfigure(f->rev, &failing), 0);
    const char *body = "revision hello-00001 cannot start: ExitCode1: panic: no PORT\n";
    for (int i = 0; i < 2; i++) {
        assert_int_equal(held[i].refused_status, 503);
        assert_string_equal(held[i].refused_body, body);
    }
    assert_int_equal(f->rev->n_held, 0);
    admit(f, &next);
    assert_int_equal(next.refused_status, 503);
    assert_string_equal(next.refused_body, body);
    assert_int_equal(f->rev->failed_fast, 3);
    /* Still asked for: the backend keeps trying to start it. */
    assert_true(act_revision_desired(f->rev) >= 1);

    /* A ready pod: it can run after all, whatever the spec said. */
    add_ready_pod(f, "p1");
    assert_null(act_revision_failure(f->rev));
    admit(f, &later);
    assert_true(later.granted);
    act_revision_release(&later.claim);
    teardown(f);
}

/* The backend's start failure: a pod that never became ready makes the
 * revision fail; one that served and died does not; the next ready pod
 * clears it, and so does a change of command. */
static void a_start_failure_holds_until_a_pod_is_ready_or_the_command_changes(void **state)
{
    fixture_t *f = setup(10, 100);
    act_pod_t *served = add_ready_pod(f, "p1");
    act_revision_pod_unready(served);
    act_revision_start_failed(f->rev, served, "ExitCode2: killed");
    assert_null(act_revision_failure(f->rev));

    test_request_t held, next;
    admit(f, &held);
    act_revision_start_failed(f->rev, NULL, "ExitCode127: exec \"/x\": No such file or directory");
    assert_int_equal(held.refused_status, 503);
    assert_string_equal(held.refused_body, "revision hello-00001 cannot start: ExitCode127: exec "
                                           "\"/x\": No such file or directory\n");
    /* Same command and env: the failure stays. */
    assert_int_equal(act_revision_reconfigure(f->rev, &f->spec), 0);
    assert_non_null(act_revision_failure(f->rev));
    /* Another command: forgotten, the next request waits for a pod. */
    char *cmd[] = {"/bin/true"};
    kp_revision_spec_t fixed = f->spec;
    fixed.command = cmd;
    fixed.n_command = 1;
    assert_int_equal(act_revision_reconfigure(f->rev, &fixed), 0);
    assert_null(act_revision_failure(f->rev));
    admit(f, &next);
    assert_int_equal(next.refused_status, 0);
    assert_true(next.claim.held);
    act_revision_start_failed(f->rev, NULL, "ExitCode1: boom");
    assert_int_equal(next.refused_status, 503);
    add_ready_pod(f, "p2");
    assert_null(act_revision_failure(f->rev));
    assert_string_equal(f->rev->start_failure, "");
    teardown(f);
}

int main(void)
{
    kp_log_init("test", KP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(held_until_a_pod_is_ready_then_granted_in_arrival_order),
        cmocka_unit_test(no_pod_gets_more_than_its_slots),
        cmocka_unit_test(first_request_at_zero_asks_the_backend_for_a_pod),
        cmocka_unit_test(a_full_queue_refuses_with_503),
        cmocka_unit_test(a_removed_or_unready_pod_gets_nothing_new),
        cmocka_unit_test(a_cancelled_claim_leaves_the_queue),
        cmocka_unit_test(slots_are_dealt_once_and_evenly),
        cmocka_unit_test(replicas_share_each_pods_slots),
        cmocka_unit_test(a_replica_without_a_slot_borrows_one),
        cmocka_unit_test(recent_failures_are_kept_newest_first_once_each),
        cmocka_unit_test(small_concurrency_fills_the_oldest_pod_first),
        cmocka_unit_test(larger_concurrency_goes_round_robin),
        cmocka_unit_test(unlimited_concurrency_picks_among_ready_pods_only),
        cmocka_unit_test(free_pods_follow_every_change),
        cmocka_unit_test(a_revision_that_cannot_run_fails_its_requests_at_once),
        cmocka_unit_test(a_start_failure_holds_until_a_pod_is_ready_or_the_command_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
