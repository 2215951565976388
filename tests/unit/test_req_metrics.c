/* Tests for queue-proxy/req_metrics.c: Knative's request count and latency
 * histogram, checked line by line and by Prometheus' own promtool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "queue-proxy/req_metrics.h"
#include "promtool_check.h"

static const kp_req_metrics_labels_t labels = {
    .service = "hello",
    .configuration = "hello",
    .revision = "hello-00001",
    .namespace_ = "default",
    .pod = "hello-00001-deployment-abc",
};

#define LABELS(code, class)                                                                        \
    "configuration_name=\"hello\",container_name=\"queue-proxy\",namespace_name=\"default\","      \
    "pod_name=\"hello-00001-deployment-abc\",response_code=\"" code                                \
    "\",response_code_class=\"" class "\",revision_name=\"hello-00001\",service_name=\"hello\""

/* Knative's counter name breaks two of promtool's naming lints; both follow
 * from the name its dashboards query, so both are allowed, exactly as
 * promtool words them and for that metric only. Anything else fails. */
static const char *const knative_name_lints[] = {
    "revision_app_request_count counter metrics should have \"_total\" suffix",
    "revision_app_request_count non-histogram and non-summary metrics should not have \"_count\" "
    "suffix",
};
#define N_KNATIVE_NAME_LINTS (sizeof knative_name_lints / sizeof knative_name_lints[0])

static void assert_has_line(const kp_strbuf_t *sb, const char *line)
{
    char want[1024];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(sb->data, want))
        fail_msg("missing line: %s\nin:\n%s", line, sb->data);
}

static int count_of(const kp_strbuf_t *sb, const char *needle)
{
    int n = 0;
    for (const char *p = sb->data; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void nothing_rendered_before_first_request(void **state)
{
    kp_req_metrics_t *m = kp_req_metrics_new(&labels);
    assert_non_null(m);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_req_metrics_render(m, &sb);
    assert_int_equal(sb.len, 0);
    kp_strbuf_free(&sb);
    kp_req_metrics_free(m);
}

static void buckets_are_cumulative_with_inclusive_bounds(void **state)
{
    kp_req_metrics_t *m = kp_req_metrics_new(&labels);
    const double latencies[] = {3, 5, 7.5, 150, 60000};
    for (size_t i = 0; i < sizeof latencies / sizeof latencies[0]; i++)
        kp_req_metrics_observe(m, 200, latencies[i]);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_req_metrics_render(m, &sb);

#define B(le, n) "revision_app_request_latencies_bucket{" LABELS("200", "2xx") ",le=\"" le "\"} " n
    static const char *const lines[] = {
        "# TYPE revision_app_request_count counter",
        "revision_app_request_count{" LABELS("200", "2xx") "} 5",
        "# TYPE revision_app_request_latencies histogram",
        B("5", "2"),
        B("10", "3"),
        B("20", "3"),
        B("100", "3"),
        B("150", "4"),
        B("200", "4"),
        B("1000", "4"),
        B("10000", "4"),
        B("50000", "4"),
        B("+Inf", "5"),
        "revision_app_request_latencies_sum{" LABELS("200", "2xx") "} 60165.5",
        "revision_app_request_latencies_count{" LABELS("200", "2xx") "} 5",
    };
#undef B
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        assert_has_line(&sb, lines[i]);

    /* 25 bounds + Inf, in order, each once. */
    assert_int_equal(count_of(&sb, "revision_app_request_latencies_bucket{"), 26);
    assert_true(strstr(sb.data, "le=\"5\"") < strstr(sb.data, "le=\"10\""));
    assert_true(strstr(sb.data, "le=\"50000\"") < strstr(sb.data, "le=\"+Inf\""));
    kp_strbuf_free(&sb);
    kp_req_metrics_free(m);
}

static void series_per_status_code_in_order(void **state)
{
    kp_req_metrics_t *m = kp_req_metrics_new(&labels);
    kp_req_metrics_observe(m, 503, 1);
    kp_req_metrics_observe(m, 200, 2);
    kp_req_metrics_observe(m, 200, 4);
    kp_req_metrics_observe(m, 404, 8);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_req_metrics_render(m, &sb);

    assert_has_line(&sb, "revision_app_request_count{" LABELS("200", "2xx") "} 2");
    assert_has_line(&sb, "revision_app_request_count{" LABELS("404", "4xx") "} 1");
    assert_has_line(&sb, "revision_app_request_count{" LABELS("503", "5xx") "} 1");
    assert_has_line(&sb, "revision_app_request_latencies_sum{" LABELS("200", "2xx") "} 6");
    assert_has_line(&sb, "revision_app_request_latencies_count{" LABELS("404", "4xx") "} 1");
    assert_has_line(&sb,
                    "revision_app_request_latencies_bucket{" LABELS("503", "5xx") ",le=\"5\"} 1");
    assert_true(strstr(sb.data, "response_code=\"200\"") <
                strstr(sb.data, "response_code=\"404\""));
    assert_true(strstr(sb.data, "response_code=\"404\"") <
                strstr(sb.data, "response_code=\"503\""));
    /* Each family is declared once (a repeated TYPE is a parse error). */
    assert_int_equal(count_of(&sb, "# TYPE revision_app_request_count counter\n"), 1);
    assert_int_equal(count_of(&sb, "# TYPE revision_app_request_latencies histogram\n"), 1);
    assert_int_equal(count_of(&sb, "revision_app_request_latencies_bucket{"), 3 * 26);
    kp_strbuf_free(&sb);
    kp_req_metrics_free(m);
}

static void odd_inputs_are_clamped(void **state)
{
    kp_req_metrics_t *m = kp_req_metrics_new(&labels);
    kp_req_metrics_observe(m, 1000, 1);
    kp_req_metrics_observe(m, -1, -3);
    kp_req_metrics_observe(m, 204, __builtin_nan(""));
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_req_metrics_render(m, &sb);
    assert_has_line(&sb, "revision_app_request_count{" LABELS("0", "0xx") "} 2");
    assert_has_line(&sb, "revision_app_request_latencies_sum{" LABELS("0", "0xx") "} 1");
    assert_has_line(&sb, "revision_app_request_latencies_sum{" LABELS("204", "2xx") "} 0");
    kp_strbuf_free(&sb);
    kp_req_metrics_free(m);
}

static void label_values_are_escaped(void **state)
{
    kp_req_metrics_labels_t odd = labels;
    odd.pod = "p\"o\\d\n";
    odd.service = NULL;
    kp_req_metrics_t *m = kp_req_metrics_new(&odd);
    kp_req_metrics_observe(m, 200, 1);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_req_metrics_render(m, &sb);
    assert_non_null(strstr(sb.data, ",pod_name=\"p\\\"o\\\\d\\n\","));
    assert_non_null(strstr(sb.data, ",service_name=\"\"}"));
    assert_true(promtool_accepts(&sb, knative_name_lints, N_KNATIVE_NAME_LINTS));
    kp_strbuf_free(&sb);
    kp_req_metrics_free(m);
}

static void promtool_parses_with_only_knative_name_lints(void **state)
{
    kp_req_metrics_t *m = kp_req_metrics_new(&labels);
    for (int i = 0; i < 1000; i++)
        kp_req_metrics_observe(m, i % 7 ? 200 : 503, (double)(i * 37 % 70000) / 3);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_req_metrics_render(m, &sb);

    kp_strbuf_t output;
    kp_strbuf_init(&output);
    int rc = promtool_check_metrics(sb.data, sb.len, &output);
    if (rc != PROMTOOL_LINT_PROBLEMS)
        print_error("promtool exit %d:\n%s", rc, output.data ? output.data : "");
    /* Debian 12's promtool reports exactly the two name lints, in sorted
     * order; a newer one may drop some, which promtool_accepts allows. */
    assert_int_equal(rc, PROMTOOL_LINT_PROBLEMS);
    assert_string_equal(output.data, "revision_app_request_count counter metrics should have "
                                     "\"_total\" suffix\n"
                                     "revision_app_request_count non-histogram and non-summary "
                                     "metrics should not have \"_count\" suffix\n");
    assert_true(promtool_accepts(&sb, knative_name_lints, N_KNATIVE_NAME_LINTS));
    kp_strbuf_free(&output);
    kp_strbuf_free(&sb);
    kp_req_metrics_free(m);
}

/* The check itself must catch what it is there for: a parse error, and any
 * lint problem that is not one of the allowed ones. */
static int verdict_with(const kp_strbuf_t *good, const char *extra, int *rc)
{
    kp_strbuf_t text, output;
    kp_strbuf_init(&text);
    kp_strbuf_init(&output);
    kp_strbuf_append(&text, good->data, good->len);
    kp_strbuf_puts(&text, extra);
    *rc = promtool_check_metrics(text.data, text.len, &output);
    int ok = promtool_verdict(*rc, &output, knative_name_lints, N_KNATIVE_NAME_LINTS);
    if (*rc == PROMTOOL_PARSE_ERROR)
        assert_non_null(strstr(output.data, "error while linting: text format parsing error"));
    kp_strbuf_free(&output);
    kp_strbuf_free(&text);
    return ok;
}

static void promtool_check_rejects_other_problems(void **state)
{
    kp_req_metrics_t *m = kp_req_metrics_new(&labels);
    kp_req_metrics_observe(m, 200, 1);
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_req_metrics_render(m, &sb);
    int rc;

    assert_true(verdict_with(&sb, "", &rc));
    /* The same lints as allowed, but for another metric. */
    assert_false(verdict_with(&sb,
                              "# HELP other_count x\n# TYPE other_count counter\n"
                              "other_count 1\n",
                              &rc));
    assert_int_equal(rc, PROMTOOL_LINT_PROBLEMS);
    assert_false(verdict_with(&sb, "# TYPE undocumented gauge\nundocumented 1\n", &rc));
    assert_int_equal(rc, PROMTOOL_LINT_PROBLEMS);
    assert_false(verdict_with(&sb, "broken{a=\"b} 1\n", &rc));
    assert_int_equal(rc, PROMTOOL_PARSE_ERROR);

    kp_strbuf_free(&sb);
    kp_req_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nothing_rendered_before_first_request),
        cmocka_unit_test(buckets_are_cumulative_with_inclusive_bounds),
        cmocka_unit_test(series_per_status_code_in_order),
        cmocka_unit_test(odd_inputs_are_clamped),
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(promtool_parses_with_only_knative_name_lints),
        cmocka_unit_test(promtool_check_rejects_other_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
