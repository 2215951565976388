/* Tests for common/autoscaling/stat_report.c: the protobuf Stat Knative's autoscaler
 * decodes, and the Prometheus text Prometheus' own tool must accept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stat.pb-c.h"
#include "autoscaling/stat_report.h"
#include "base/prometheus.h"
#include "promtool_check.h"

static const kp_stat_report_t sample = {
    .average_concurrency = 2.5,
    .average_proxied_concurrency = 0.125,
    .request_count = 41.75,
    .proxied_request_count = 3.0,
};

static void protobuf_decodes_to_every_field(void **state)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(
        kp_stat_report_protobuf(&sample, "hello-00001-deployment-abc", 1234.5, &buf, &len), 0);
    assert_non_null(buf);
    Metrics__Stat *m = metrics__stat__unpack(NULL, len, buf);
    assert_non_null(m);
    assert_string_equal(m->pod_name, "hello-00001-deployment-abc");
    assert_true(m->average_concurrent_requests == 2.5);
    assert_true(m->average_proxied_concurrent_requests == 0.125);
    assert_true(m->request_count == 41.75);
    assert_true(m->proxied_request_count == 3.0);
    assert_true(m->process_uptime == 1234.5);
    assert_int_equal(m->timestamp, 0);
    metrics__stat__free_unpacked(m, NULL);
    free(buf);
}

static void protobuf_of_empty_report_is_freeable(void **state)
{
    kp_stat_report_t zero = {0};
    uint8_t *buf = NULL;
    size_t len = 99;
    assert_int_equal(kp_stat_report_protobuf(&zero, NULL, 0.0, &buf, &len), 0);
    assert_non_null(buf);
    assert_int_equal(len, 0); /* proto3 omits default values */
    Metrics__Stat *m = metrics__stat__unpack(NULL, len, buf);
    assert_non_null(m);
    assert_string_equal(m->pod_name, "");
    assert_true(m->request_count == 0.0);
    metrics__stat__free_unpacked(m, NULL);
    free(buf);
}

static const kp_stat_labels_t labels = {
    .namespace_ = "default",
    .configuration = "hello",
    .revision = "hello-00001",
    .pod = "hello-00001-deployment-abc",
};

#define L                                                                                          \
    "{destination_configuration=\"hello\",destination_namespace=\"default\","                      \
    "destination_pod=\"hello-00001-deployment-abc\",destination_revision=\"hello-00001\"}"

static void prometheus_text_has_every_gauge(void **state)
{
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_stat_report_prometheus(&sample, &labels, 1234.5, &sb);
    assert_string_equal(
        sb.data,
        "# HELP process_uptime The number of seconds that the process has been up\n"
        "# TYPE process_uptime gauge\n"
        "process_uptime" L " 1234.5\n"
        "# HELP queue_average_concurrent_requests Number of requests currently being handled by "
        "this pod\n"
        "# TYPE queue_average_concurrent_requests gauge\n"
        "queue_average_concurrent_requests" L " 2.5\n"
        "# HELP queue_average_proxied_concurrent_requests Number of proxied requests currently "
        "being handled by this pod\n"
        "# TYPE queue_average_proxied_concurrent_requests gauge\n"
        "queue_average_proxied_concurrent_requests" L " 0.125\n"
        "# HELP queue_proxied_operations_per_second Number of proxied requests per second\n"
        "# TYPE queue_proxied_operations_per_second gauge\n"
        "queue_proxied_operations_per_second" L " 3\n"
        "# HELP queue_requests_per_second Number of requests per second\n"
        "# TYPE queue_requests_per_second gauge\n"
        "queue_requests_per_second" L " 41.75\n");
    kp_strbuf_free(&sb);
}

static void prometheus_escapes_label_values(void **state)
{
    kp_stat_labels_t odd = labels;
    odd.pod = "a\"b\\c\nd";
    odd.revision = NULL;
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_stat_report_prometheus(&sample, &odd, 1, &sb);
    assert_non_null(strstr(sb.data, "process_uptime{destination_configuration=\"hello\","
                                    "destination_namespace=\"default\","
                                    "destination_pod=\"a\\\"b\\\\c\\nd\","
                                    "destination_revision=\"\"} 1\n"));
    assert_true(promtool_accepts(&sb, NULL, 0));
    kp_strbuf_free(&sb);
}

static void values_print_shortest_exact(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3, "0.3333333333333333"},
        {50000, "50000"},
        {1e20, "1e+20"},
        {-2.5, "-2.5"},
        {__builtin_nan(""), "NaN"},
        {__builtin_inf(), "+Inf"},
        {-__builtin_inf(), "-Inf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kp_strbuf_t sb;
        kp_strbuf_init(&sb);
        kp_prom_value(&sb, cases[i].v);
        assert_string_equal(sb.data, cases[i].text);
        kp_strbuf_free(&sb);
    }
}

/* These gauge names are lint-clean, so nothing at all may be reported. */
static void promtool_accepts_text(void **state)
{
    kp_strbuf_t sb;
    kp_strbuf_init(&sb);
    kp_stat_report_prometheus(&sample, &labels, 1234.5, &sb);
    kp_strbuf_t output;
    kp_strbuf_init(&output);
    int rc = promtool_check_metrics(sb.data, sb.len, &output);
    if (rc != PROMTOOL_OK)
        print_error("promtool exit %d:\n%s", rc, output.data ? output.data : "");
    assert_int_equal(rc, PROMTOOL_OK);
    assert_int_equal(output.len, 0);
    kp_strbuf_free(&output);
    kp_strbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(protobuf_decodes_to_every_field),
        cmocka_unit_test(protobuf_of_empty_report_is_freeable),
        cmocka_unit_test(prometheus_text_has_every_gauge),
        cmocka_unit_test(prometheus_escapes_label_values),
        cmocka_unit_test(values_print_shortest_exact),
        cmocka_unit_test(promtool_accepts_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
