/* Tests for common/autoscaling/stats.c: time-weighted concurrency and per-second
 * arrival rates per window, as Knative's autoscaler expects them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "autoscaling/stats.h"

#define MS 1000000ull /* ns */
#define SEC 1000000000ull

/* Values here are exact in binary, so exact comparison is the right test. */
static void assert_report(const kp_stat_report_t *r, double avg, double avg_proxied, double rps,
                          double proxied_rps)
{
    assert_true(r->average_concurrency == avg);
    assert_true(r->average_proxied_concurrency == avg_proxied);
    assert_true(r->request_count == rps);
    assert_true(r->proxied_request_count == proxied_rps);
}

static void two_in_flight_for_half_window_average_one(void **state)
{
    kp_stats_t s;
    kp_stat_report_t r;
    kp_stats_init(&s, 10 * SEC);
    kp_stats_request_in(&s, 10 * SEC, 0);
    kp_stats_request_in(&s, 10 * SEC, 0);
    kp_stats_request_out(&s, 10 * SEC + 500 * MS, 0);
    kp_stats_request_out(&s, 10 * SEC + 500 * MS, 0);
    kp_stats_report(&s, 11 * SEC, &r);
    assert_report(&r, 1.0, 0.0, 2.0, 0.0);
}

static void short_request_inside_window(void **state)
{
    kp_stats_t s;
    kp_stat_report_t r;
    kp_stats_init(&s, 0);
    kp_stats_request_in(&s, 100 * MS, 0);
    kp_stats_request_out(&s, 350 * MS, 0);
    kp_stats_report(&s, SEC, &r);
    assert_report(&r, 0.25, 0.0, 1.0, 0.0);
}

static void proxied_requests_count_in_both(void **state)
{
    kp_stats_t s;
    kp_stat_report_t r;
    kp_stats_init(&s, 0);
    kp_stats_request_in(&s, 0, 1);
    kp_stats_request_in(&s, 0, 0);
    kp_stats_request_out(&s, 250 * MS, 0);
    kp_stats_request_out(&s, SEC, 1);
    kp_stats_report(&s, SEC, &r);
    assert_report(&r, 1.25, 1.0, 2.0, 1.0);
}

static void concurrency_carries_into_next_window(void **state)
{
    kp_stats_t s;
    kp_stat_report_t r;
    kp_stats_init(&s, 0);
    kp_stats_request_in(&s, 500 * MS, 1);
    kp_stats_report(&s, SEC, &r);
    assert_report(&r, 0.5, 0.5, 1.0, 1.0);
    /* Still in flight for the whole second window, but it arrived before. */
    kp_stats_report(&s, 2 * SEC, &r);
    assert_report(&r, 1.0, 1.0, 0.0, 0.0);
    kp_stats_request_out(&s, 2 * SEC + 250 * MS, 1);
    kp_stats_report(&s, 3 * SEC, &r);
    assert_report(&r, 0.25, 0.25, 0.0, 0.0);
    kp_stats_report(&s, 4 * SEC, &r);
    assert_report(&r, 0.0, 0.0, 0.0, 0.0);
}

static void rate_divides_by_window_length(void **state)
{
    kp_stats_t s;
    kp_stat_report_t r;
    kp_stats_init(&s, 0);
    for (int i = 0; i < 3; i++)
        kp_stats_request_in(&s, 100 * MS, i == 0);
    for (int i = 0; i < 3; i++)
        kp_stats_request_out(&s, 200 * MS, i == 0);
    kp_stats_report(&s, 500 * MS, &r);
    /* 3 requests each in flight for 100 ms of a 500 ms window. */
    assert_report(&r, 0.6, 0.2, 6.0, 2.0);
    kp_stats_request_in(&s, 600 * MS, 0);
    kp_stats_report(&s, 2500 * MS, &r);
    assert_report(&r, 0.95, 0.0, 0.5, 0.0);
}

static void zero_length_window_reports_zero_and_keeps_arrivals(void **state)
{
    kp_stats_t s;
    kp_stat_report_t r;
    kp_stats_init(&s, 5 * SEC);
    kp_stats_request_in(&s, 5 * SEC, 0);
    kp_stats_report(&s, 5 * SEC, &r);
    assert_report(&r, 0.0, 0.0, 0.0, 0.0);
    kp_stats_report(&s, 6 * SEC, &r);
    assert_report(&r, 1.0, 0.0, 1.0, 0.0);
}

static void stale_timestamps_add_no_time(void **state)
{
    kp_stats_t s;
    kp_stat_report_t r;
    kp_stats_init(&s, 0);
    kp_stats_request_in(&s, 500 * MS, 0);
    /* An event stamped before the last change: counted, but no negative
     * span is integrated (Knative ignores such spans too). */
    kp_stats_request_in(&s, 400 * MS, 0);
    kp_stats_request_out(&s, 750 * MS, 0);
    kp_stats_request_out(&s, 750 * MS, 0);
    kp_stats_report(&s, SEC, &r);
    assert_report(&r, 0.5, 0.0, 2.0, 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_in_flight_for_half_window_average_one),
        cmocka_unit_test(short_request_inside_window),
        cmocka_unit_test(proxied_requests_count_in_both),
        cmocka_unit_test(concurrency_carries_into_next_window),
        cmocka_unit_test(rate_divides_by_window_length),
        cmocka_unit_test(zero_length_window_reports_zero_and_keeps_arrivals),
        cmocka_unit_test(stale_timestamps_add_no_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
