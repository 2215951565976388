/* Tests for activator/knative/workqueue.c (a key queued once however often
 * added, held keys wait for their work to end, failures back off) and
 * table.c's copies of file services (traffic pointing into their own
 * revisions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/config/config.h"
#include "activator/knative/table.h"
#include "activator/knative/workqueue.h"

typedef struct seen {
    char keys[16][64];
    int n;
    kn_workqueue_t *q;
    int hold_first;
} seen_t;

static void record(void *ctx, const char *key)
{
    seen_t *s = ctx;
    if (s->n < 16)
        snprintf(s->keys[s->n++], 64, "%s", key);
    if (s->hold_first && s->n == 1)
        kn_wq_hold(s->q, key);
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(loop);
    }
}

static void keys_are_deduplicated_and_handed_out_in_order(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    seen_t s = {0};
    kn_workqueue_t *q = kn_wq_new(&loop, record, &s);
    s.q = q;
    kn_wq_add(q, "Service/default/a");
    kn_wq_add(q, "Service/default/b");
    kn_wq_add(q, "Service/default/a");
    assert_int_equal(kn_wq_len(q), 2);
    run_for(&loop, 5);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[0], "Service/default/a");
    assert_string_equal(s.keys[1], "Service/default/b");
    kn_wq_free(q);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void a_held_key_waits_for_its_release(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    seen_t s = {0};
    kn_workqueue_t *q = kn_wq_new(&loop, record, &s);
    s.q = q;
    s.hold_first = 1;
    kn_wq_add(q, "Revision/default/r");
    run_for(&loop, 5);
    assert_int_equal(s.n, 1); /* handed out, now held (writes under way) */
    kn_wq_add(q, "Revision/default/r");
    kn_wq_add(q, "Revision/default/r");
    run_for(&loop, 5);
    assert_int_equal(s.n, 1);
    kn_wq_release(q, "Revision/default/r");
    run_for(&loop, 5);
    assert_int_equal(s.n, 2); /* once more, not twice */
    kn_wq_free(q);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void failures_come_back_later_not_at_once(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    seen_t s = {0};
    kn_workqueue_t *q = kn_wq_new(&loop, record, &s);
    s.q = q;
    kn_wq_retry(q, "Route/default/x");
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.n, 0); /* not before its delay */
    run_for(&loop, 300);
    assert_int_equal(s.n, 1);
    kn_wq_retry(q, "Route/default/x");
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.n, 1);
    run_for(&loop, 400);
    assert_int_equal(s.n, 2);
    kn_wq_forget(q, "Route/default/x");
    kn_wq_add_after(q, "Route/default/x", 10000);
    kn_wq_free(q); /* closes the pending timer */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void file_services_copy_with_their_own_targets(void **state)
{
    static const char json[] =
        "{\"services\": [{\"name\": \"web\", \"namespace\": \"prod\", \"revisions\": ["
        "{\"name\": \"web-1\", \"containerConcurrency\": 3}, {\"name\": \"web-2\"}],"
        "\"traffic\": [{\"revisionName\": \"web-1\", \"percent\": 80},"
        "{\"revisionName\": \"web-2\", \"percent\": 20, \"tag\": \"next\"}]}]}";
    kp_activator_config_t cfg;
    char err[256];
    assert_int_equal(kp_activator_config_parse(json, strlen(json), &cfg, err, sizeof err), 0);
    kp_service_spec_t copy;
    assert_int_equal(kn_service_spec_copy(&copy, &cfg.services[0]), 0);
    kp_activator_config_free(&cfg);
    assert_string_equal(copy.name, "web");
    assert_int_equal(copy.n_traffic, 2);
    assert_ptr_equal(copy.traffic[0].revision, &copy.revisions[0]);
    assert_ptr_equal(copy.traffic[1].revision, &copy.revisions[1]);
    assert_string_equal(copy.traffic[1].tag, "next");
    assert_int_equal(copy.revisions[0].container_concurrency, 3);
    /* Freed the way a config frees its services. */
    kp_activator_config_t holder = {0};
    holder.services = malloc(sizeof copy);
    holder.services[0] = copy;
    holder.n_services = 1;
    kp_activator_config_free(&holder);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_are_deduplicated_and_handed_out_in_order),
        cmocka_unit_test(a_held_key_waits_for_its_release),
        cmocka_unit_test(failures_come_back_later_not_at_once),
        cmocka_unit_test(file_services_copy_with_their_own_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
