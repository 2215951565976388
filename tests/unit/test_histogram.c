/* Tests for common/base/histogram.c and its Prometheus rendering
 * (kp_prom_histogram in common/base/prometheus.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/histogram.h"
#include "base/prometheus.h"
#include "promtool_check.h"

static const double bounds[] = {0.1, 1, 10};

static void values_land_in_the_first_bucket_that_holds_them(void **state)
{
    kp_histogram_t h;
    kp_histogram_init(&h, bounds, 3);
    double values[] = {0.05, 0.1, 0.5, 1, 10, 11, 1e9};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        kp_histogram_observe(&h, values[i]);
    /* A bound is inclusive (Prometheus' le). */
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 2);
    assert_int_equal(h.counts[2], 1);
    assert_int_equal(h.counts[3], 2);
    assert_int_equal(h.count, 7);
    assert_true(h.sum > 1e9);
}

static void renders_cumulative_buckets_sum_and_count(void **state)
{
    kp_histogram_t h;
    kp_histogram_init(&h, bounds, 3);
    kp_histogram_observe(&h, 0.5);
    kp_histogram_observe(&h, 20);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_strbuf_puts(&sb, "# HELP x_seconds Test.\n# TYPE x_seconds histogram\n");
    kp_prom_histogram(&sb, "x_seconds", "a=\"1\",b=\"2\"", &h);
    assert_string_equal(sb.data, "# HELP x_seconds Test.\n# TYPE x_seconds histogram\n"
                                 "x_seconds_bucket{a=\"1\",b=\"2\",le=\"0.1\"} 0\n"
                                 "x_seconds_bucket{a=\"1\",b=\"2\",le=\"1\"} 1\n"
                                 "x_seconds_bucket{a=\"1\",b=\"2\",le=\"10\"} 1\n"
                                 "x_seconds_bucket{a=\"1\",b=\"2\",le=\"+Inf\"} 2\n"
                                 "x_seconds_sum{a=\"1\",b=\"2\"} 20.5\n"
                                 "x_seconds_count{a=\"1\",b=\"2\"} 2\n");
    assert_true(promtool_accepts(&sb, NULL, 0));
    kp_strbuf_free(&sb);
}

static void renders_without_labels(void **state)
{
    kp_histogram_t h;
    kp_histogram_init(&h, bounds, 1);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_prom_histogram(&sb, "y", "", &h);
    assert_string_equal(sb.data, "y_bucket{le=\"0.1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\n"
                                 "y_count 0\n");
    kp_strbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_land_in_the_first_bucket_that_holds_them),
        cmocka_unit_test(renders_cumulative_buckets_sum_and_count),
        cmocka_unit_test(renders_without_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
