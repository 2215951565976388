/* Tests for activator/capacity.c: the bound on requests and connections
 * derived from the memory limit, the open-files limit and --max-requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "activator/capacity.h"

#define MIB (UINT64_C(1) << 20)

static kp_memory_limit_t limit_of(uint64_t bytes)
{
    return (kp_memory_limit_t){bytes, "cgroup v2 memory.max"};
}

static void three_quarters_of_memory_go_to_connections(void **state)
{
    act_capacity_t c;
    act_capacity_init(&c, 0, limit_of(128 * MIB), 0);
    assert_int_equal(c.max_connections, 96 * MIB / ACT_COST_PER_CONNECTION);
    assert_int_equal(c.max_requests, c.max_connections / 5 * 4);
    assert_string_equal(c.max_requests_source, "memory limit");
    assert_true((uint64_t)c.max_connections * ACT_COST_PER_CONNECTION <= 128 * MIB / 4 * 3);
}

static void open_files_bound_the_connections(void **state)
{
    act_capacity_t c;
    act_capacity_init(&c, 0, limit_of(128 * MIB), 1024);
    assert_int_equal(c.max_connections, 1024 - 256);
    assert_int_equal(c.max_requests, (1024 - 256) / 5 * 4);
}

/* Pods' own descriptors come off the clients' share as pods arrive; a
 * request that would find none for its pod is refused. */
static void pods_leave_fewer_files_for_clients(void **state)
{
    act_capacity_t c;
    act_capacity_init(&c, 0, limit_of(128 * MIB), 3000);
    size_t alone = act_capacity_connections(&c);
    assert_int_equal(alone, c.max_connections);
    c.pods = 1000;
    size_t with_pods = act_capacity_connections(&c);
    assert_int_equal(with_pods, 3000 - 256 - 1000 * ACT_FILES_PER_POD);
    c.pods = 5000; /* more than the files: a floor, and requests refused */
    assert_int_equal(act_capacity_connections(&c), 16);
    assert_false(act_capacity_files_short(&c, 100, 2000));
    assert_true(act_capacity_files_short(&c, 744, 2000));
    act_capacity_init(&c, 0, limit_of(128 * MIB), 0); /* no limit: never short */
    c.pods = 100000;
    assert_int_equal(act_capacity_connections(&c), c.max_connections);
    assert_false(act_capacity_files_short(&c, 1000000, 1000000));
}

/* The clients' bound (shared by every traffic listener) follows the pods
 * as they come and go, unless it was set by hand. */
static void the_clients_bound_follows_the_pods(void **state)
{
    act_capacity_t c;
    act_capacity_init(&c, 0, limit_of(128 * MIB), 1000);
    c.bounds_server = 1;
    c.clients.max_connections = act_capacity_connections(&c);
    assert_int_equal(c.clients.max_connections, 1000 - 256);
    act_capacity_add_pods(&c, 3);
    assert_int_equal(c.pods, 3);
    assert_int_equal(c.clients.max_connections, 1000 - 256 - 3 * ACT_FILES_PER_POD);
    act_capacity_add_pods(&c, -2);
    assert_int_equal(c.clients.max_connections, 1000 - 256 - 1 * ACT_FILES_PER_POD);
    c.bounds_server = 0; /* KP_HTTP_MAX_CONNECTIONS set: kept as given */
    c.clients.max_connections = 50;
    act_capacity_add_pods(&c, 5);
    assert_int_equal(c.pods, 6);
    assert_int_equal(c.clients.max_connections, 50);
}

static void a_tiny_limit_still_serves(void **state)
{
    act_capacity_t c;
    act_capacity_init(&c, 0, limit_of(64 * 1024), 0);
    assert_int_equal(c.max_connections, 16);
    assert_true(c.max_requests > 0);
}

static void max_requests_flag_wins_and_leaves_connections_to_refuse_on(void **state)
{
    act_capacity_t c;
    act_capacity_init(&c, 50000, limit_of(128 * MIB), 0);
    assert_int_equal(c.max_requests, 50000);
    assert_string_equal(c.max_requests_source, "--max-requests");
    assert_int_equal(c.max_connections, 62500);
    act_capacity_init(&c, 20, limit_of(128 * MIB), 0);
    assert_int_equal(c.max_connections, 96 * MIB / ACT_COST_PER_CONNECTION);
    assert_int_equal(c.active_requests, 0);
    assert_int_equal(c.rejected, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_quarters_of_memory_go_to_connections),
        cmocka_unit_test(open_files_bound_the_connections),
        cmocka_unit_test(pods_leave_fewer_files_for_clients),
        cmocka_unit_test(the_clients_bound_follows_the_pods),
        cmocka_unit_test(a_tiny_limit_still_serves),
        cmocka_unit_test(max_requests_flag_wins_and_leaves_connections_to_refuse_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
