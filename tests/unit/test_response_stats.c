/* Tests for activator/response_stats.c: responses counted by class, and a
 * latency histogram per status code over Knative's activator buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activator/response_stats.h"

static void codes_are_kept_in_order_with_their_latencies(void **state)
{
    act_response_stats_t s;
    memset(&s, 0, sizeof s);
    act_response_stats_record(&s, 503, 30000);
    act_response_stats_record(&s, 200, 4);
    act_response_stats_record(&s, 200, 5);   /* bounds are inclusive */
    act_response_stats_record(&s, 200, 120); /* 150 bucket */
    act_response_stats_record(&s, 404, -1);  /* a negative latency counts as 0 */
    act_response_stats_record(&s, 200, 2e5); /* above every bound */
    assert_int_equal(s.n_codes, 3);
    assert_int_equal(s.by_code[0].code, 200);
    assert_int_equal(s.by_code[1].code, 404);
    assert_int_equal(s.by_code[2].code, 503);
    const kp_histogram_t *ok = &s.by_code[0].ms;
    assert_int_equal(ok->n_bounds, 26); /* Knative's 5 ms .. 100 s */
    assert_true(ok->bounds[0] == 5 && ok->bounds[25] == 100000);
    assert_int_equal(ok->count, 4);
    assert_int_equal(ok->counts[0], 2);  /* <= 5 */
    assert_int_equal(ok->counts[7], 1);  /* <= 150 */
    assert_int_equal(ok->counts[26], 1); /* +Inf */
    assert_float_equal(ok->sum, 4 + 5 + 120 + 2e5, 1e-9);
    assert_float_equal(s.by_code[1].ms.sum, 0, 1e-9);
    assert_int_equal(s.by_class[2], 4);
    assert_int_equal(s.by_class[4], 1);
    assert_int_equal(s.by_class[5], 1);
    act_response_stats_free(&s);
    assert_int_equal(s.n_codes, 0);
}

static void a_status_outside_http_is_counted_without_latency(void **state)
{
    act_response_stats_t s;
    memset(&s, 0, sizeof s);
    act_response_stats_record(&s, 0, 10);
    act_response_stats_record(&s, 600, 10);
    assert_int_equal(s.by_class[0], 2);
    assert_int_equal(s.n_codes, 0);
    act_response_stats_free(&s);
}

static void many_codes_grow_the_list(void **state)
{
    act_response_stats_t s;
    memset(&s, 0, sizeof s);
    for (int code = 599; code >= 100; code -= 7)
        act_response_stats_record(&s, code, 1);
    assert_int_equal(s.n_codes, 72);
    for (size_t i = 1; i < s.n_codes; i++)
        assert_true(s.by_code[i - 1].code < s.by_code[i].code);
    act_response_stats_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codes_are_kept_in_order_with_their_latencies),
        cmocka_unit_test(a_status_outside_http_is_counted_without_latency),
        cmocka_unit_test(many_codes_grow_the_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
