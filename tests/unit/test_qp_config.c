/* Tests for queue-proxy/qp_config.c: the environment Knative's reconciler
 * sets loads as expected; each bad value stops the start with a message
 * naming the variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "queue-proxy/qp_config.h"

/* A variable table: the base environment plus per-test overrides (a NULL
 * value unsets). */
typedef struct env_table {
    const char *const *base;
    const char *const *over;
} env_table_t;

static const char *const knative_env[] = {
    "SERVING_NAMESPACE",
    "default",
    "SERVING_SERVICE",
    "hello",
    "SERVING_CONFIGURATION",
    "hello",
    "SERVING_REVISION",
    "hello-00001",
    "QUEUE_SERVING_PORT",
    "8012",
    "QUEUE_SERVING_TLS_PORT",
    "8112",
    "CONTAINER_CONCURRENCY",
    "0",
    "REVISION_TIMEOUT_SECONDS",
    "300",
    "REVISION_RESPONSE_START_TIMEOUT_SECONDS",
    "0",
    "REVISION_IDLE_TIMEOUT_SECONDS",
    "0",
    "SERVING_POD",
    "hello-00001-deployment-6b7c9d-abcde",
    "SERVING_POD_IP",
    "10.244.0.12",
    "SERVING_LOGGING_CONFIG",
    "",
    "SERVING_LOGGING_LEVEL",
    "",
    "SERVING_REQUEST_LOG_TEMPLATE",
    KP_REQLOG_DEFAULT_TEMPLATE,
    "SERVING_ENABLE_REQUEST_LOG",
    "false",
    "SERVING_REQUEST_METRICS_BACKEND",
    "prometheus",
    "SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS",
    "5",
    "TRACING_CONFIG_BACKEND",
    "none",
    "TRACING_CONFIG_ZIPKIN_ENDPOINT",
    "",
    "TRACING_CONFIG_DEBUG",
    "false",
    "TRACING_CONFIG_SAMPLE_RATE",
    "0.100000",
    "USER_PORT",
    "8080",
    "SYSTEM_NAMESPACE",
    "knative-serving",
    "METRICS_DOMAIN",
    "knative.dev/internal/serving",
    "SERVING_READINESS_PROBE",
    "{\"tcpSocket\":{\"port\":8080,\"host\":\"127.0.0.1\"},\"successThreshold\":1}",
    "ENABLE_PROFILING",
    "false",
    "SERVING_ENABLE_PROBE_REQUEST_LOG",
    "false",
    "METRICS_COLLECTOR_ADDRESS",
    "",
    "ENABLE_HTTP2_AUTO_DETECTION",
    "false",
    NULL,
};

static const char *lookup(const char *const *kv, const char *name, int *found)
{
    for (; kv && kv[0]; kv += 2) {
        if (strcmp(kv[0], name) == 0) {
            *found = 1;
            return kv[1];
        }
    }
    *found = 0;
    return NULL;
}

static const char *table_get(const char *name, void *ctx)
{
    const env_table_t *t = ctx;
    int found;
    const char *v = lookup(t->over, name, &found);
    if (found)
        return v;
    return lookup(t->base, name, &found);
}

static int load(kp_qp_config_t *cfg, const char *const *over, char *err, size_t errlen)
{
    env_table_t t = {knative_env, over};
    return kp_qp_config_load_from(cfg, table_get, &t, err, errlen);
}

#define OVER(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_error(const char *const *over, const char *want)
{
    kp_qp_config_t cfg;
    char err[512] = "";
    assert_int_equal(load(&cfg, over, err, sizeof err), -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    kp_qp_config_free(&cfg); /* harmless after a failure */
}

static void loads_what_knative_sets(void **state)
{
    kp_qp_config_t cfg;
    char err[512] = "";
    if (load(&cfg, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.namespace_, "default");
    assert_string_equal(cfg.service, "hello");
    assert_string_equal(cfg.configuration, "hello");
    assert_string_equal(cfg.revision, "hello-00001");
    assert_string_equal(cfg.pod, "hello-00001-deployment-6b7c9d-abcde");
    assert_string_equal(cfg.pod_ip, "10.244.0.12");
    assert_int_equal(cfg.serving_port, 8012);
    assert_int_equal(cfg.serving_tls_port, 8112);
    assert_int_equal(cfg.user_port, 8080);
    assert_string_equal(cfg.user_host, "127.0.0.1");
    assert_int_equal(cfg.admin_port, 8022);
    assert_int_equal(cfg.metrics_port, 9090);
    assert_int_equal(cfg.user_metrics_port, 9091);
    assert_int_equal(cfg.container_concurrency, 0);
    assert_true(cfg.revision_timeout_s == 300);
    assert_true(cfg.response_start_timeout_s == 0);
    assert_true(cfg.idle_timeout_s == 0);
    assert_true(cfg.drain_quiet_period_s == 30);
    assert_int_equal(cfg.has_readiness_probe, 1);
    assert_int_equal(cfg.readiness_probe.kind, KP_PROBE_TCP);
    assert_int_equal(cfg.readiness_probe.port, 8080);
    assert_int_equal(cfg.log_level, KP_LOG_INFO);
    assert_int_equal(cfg.enable_request_log, 0);
    assert_null(cfg.request_log);
    assert_int_equal(cfg.request_metrics_backend, KP_QP_METRICS_PROMETHEUS);
    assert_int_equal(cfg.user_metrics_prometheus, 1);
    assert_int_equal(cfg.request_metrics_reporting_period_s, 5);
    assert_string_equal(cfg.tracing_backend, "none");
    assert_true(cfg.tracing_sample_rate == 0.1);
    kp_qp_config_free(&cfg);
    assert_null(cfg.namespace_);
}

static void optional_ones_may_be_absent(void **state)
{
    kp_qp_config_t cfg;
    char err[512] = "";
    const char *const *over =
        OVER("SERVING_SERVICE", NULL, "REVISION_RESPONSE_START_TIMEOUT_SECONDS", NULL,
             "REVISION_IDLE_TIMEOUT_SECONDS", NULL, "SERVING_READINESS_PROBE", NULL,
             "SERVING_REQUEST_LOG_TEMPLATE", NULL, "SERVING_ENABLE_REQUEST_LOG", NULL,
             "SERVING_REQUEST_METRICS_BACKEND", NULL, "TRACING_CONFIG_SAMPLE_RATE", NULL,
             "ENABLE_PROFILING", NULL, "SERVING_CONFIGURATION", "");
    if (load(&cfg, over, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.service, "");
    assert_string_equal(cfg.configuration, "");
    assert_int_equal(cfg.has_readiness_probe, 0);
    assert_int_equal(cfg.request_metrics_backend, KP_QP_METRICS_NONE);
    assert_int_equal(cfg.user_metrics_prometheus, 0);
    kp_qp_config_free(&cfg);
}

static void our_overrides(void **state)
{
    kp_qp_config_t cfg;
    char err[512] = "";
    const char *const *over =
        OVER("KP_ADMIN_PORT", "18022", "KP_METRICS_PORT", "19090", "KP_USER_METRICS_PORT", "19091",
             "KP_DRAIN_QUIET_PERIOD_SECONDS", "0.5", "KP_USER_HOST", "::1",
             "REVISION_TIMEOUT_SECONDS", "2.5", "CONTAINER_CONCURRENCY", "10");
    if (load(&cfg, over, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(cfg.admin_port, 18022);
    assert_int_equal(cfg.metrics_port, 19090);
    assert_int_equal(cfg.user_metrics_port, 19091);
    assert_true(cfg.drain_quiet_period_s == 0.5);
    assert_string_equal(cfg.user_host, "::1");
    assert_true(cfg.revision_timeout_s == 2.5);
    assert_int_equal(cfg.container_concurrency, 10);
    kp_qp_config_free(&cfg);
}

static void required_ones_must_be_set(void **state)
{
    static const char *required[] = {
        "SERVING_NAMESPACE",      "SERVING_CONFIGURATION",
        "SERVING_REVISION",       "SERVING_POD",
        "SERVING_POD_IP",         "QUEUE_SERVING_PORT",
        "QUEUE_SERVING_TLS_PORT", "USER_PORT",
        "CONTAINER_CONCURRENCY",  "REVISION_TIMEOUT_SECONDS",
        "SERVING_LOGGING_CONFIG", "SERVING_LOGGING_LEVEL",
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s: required but not set", required[i]);
        expect_error(OVER(required[i], NULL), want);
    }
    expect_error(OVER("SERVING_REVISION", ""), "SERVING_REVISION: must not be empty");
}

/* A pod spec with several mistakes is fixed in one edit: every problem is
 * named in one message, one per line, in --help's order. */
static void every_problem_is_named_at_once(void **state)
{
    static const char *required[] = {
        "SERVING_NAMESPACE",      "SERVING_CONFIGURATION",
        "SERVING_REVISION",       "SERVING_POD",
        "SERVING_POD_IP",         "QUEUE_SERVING_PORT",
        "QUEUE_SERVING_TLS_PORT", "USER_PORT",
        "CONTAINER_CONCURRENCY",  "REVISION_TIMEOUT_SECONDS",
        "SERVING_LOGGING_CONFIG", "SERVING_LOGGING_LEVEL",
    };
    static const char *const nothing[] = {NULL};
    env_table_t empty = {nothing, NULL};
    kp_qp_config_t cfg;
    char err[4096] = "";
    assert_int_equal(kp_qp_config_load_from(&cfg, table_get, &empty, err, sizeof err), -1);
    const char *head = "12 environment variables are missing or invalid (see --help):\n";
    if (strncmp(err, head, strlen(head)) != 0)
        fail_msg("error does not start with the count: \"%s\"", err);
    const char *at = err;
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "\n  %s: required but not set", required[i]);
        const char *hit = strstr(at, want);
        if (!hit)
            fail_msg("\"%s\" missing or out of order in \"%s\"", want + 3, err);
        at = hit + 1;
    }
    kp_qp_config_free(&cfg);

    /* Bad values and missing ones together, each once. */
    err[0] = '\0';
    assert_int_equal(
        load(&cfg,
             OVER("CONTAINER_CONCURRENCY", "ten", "USER_PORT", NULL, "SERVING_LOGGING_LEVEL",
                  "loud", "ENABLE_PROFILING", "yes", "SERVING_READINESS_PROBE", "{\"exec\":{}}"),
             err, sizeof err),
        -1);
    const char *want[] = {
        "5 environment variables are missing or invalid (see --help):\n",
        "\n  USER_PORT: required but not set\n",
        "\n  CONTAINER_CONCURRENCY=\"ten\": not an integer",
        "\n  SERVING_LOGGING_LEVEL=\"loud\": unknown level",
        "\n  SERVING_READINESS_PROBE: exec probes are not run by the queue-proxy",
        "\n  ENABLE_PROFILING=\"yes\": not a boolean",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(err, want[i]))
            fail_msg("\"%s\" not in \"%s\"", want[i], err);
    kp_qp_config_free(&cfg);
}

/* A buffer too small for the list still ends in a NUL. */
static void a_short_buffer_truncates(void **state)
{
    static const char *const nothing[] = {NULL};
    env_table_t empty = {nothing, NULL};
    kp_qp_config_t cfg;
    char err[40];
    memset(err, 'x', sizeof err);
    assert_int_equal(kp_qp_config_load_from(&cfg, table_get, &empty, err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
    kp_qp_config_free(&cfg);
}

static void bad_values_name_the_variable(void **state)
{
    expect_error(OVER("CONTAINER_CONCURRENCY", "ten"),
                 "CONTAINER_CONCURRENCY=\"ten\": not an integer (expected an integer from 0 to");
    expect_error(OVER("CONTAINER_CONCURRENCY", "-1"), "CONTAINER_CONCURRENCY=\"-1\": out of range");
    expect_error(OVER("USER_PORT", "80a"), "USER_PORT=\"80a\": not an integer");
    expect_error(OVER("QUEUE_SERVING_PORT", "0"), "QUEUE_SERVING_PORT=\"0\": out of range");
    expect_error(OVER("KP_ADMIN_PORT", "65536"), "KP_ADMIN_PORT=\"65536\": out of range");
    expect_error(OVER("REVISION_TIMEOUT_SECONDS", "5m"),
                 "REVISION_TIMEOUT_SECONDS=\"5m\": not a number of seconds");
    expect_error(OVER("KP_DRAIN_QUIET_PERIOD_SECONDS", "-1"),
                 "KP_DRAIN_QUIET_PERIOD_SECONDS=\"-1\"");
    expect_error(OVER("ENABLE_PROFILING", "yes"), "ENABLE_PROFILING=\"yes\": not a boolean");
    expect_error(OVER("SERVING_ENABLE_REQUEST_LOG", "on"), "SERVING_ENABLE_REQUEST_LOG=\"on\"");
    expect_error(OVER("TRACING_CONFIG_SAMPLE_RATE", "2"),
                 "TRACING_CONFIG_SAMPLE_RATE=\"2\": out of range");
    expect_error(
        OVER("SERVING_LOGGING_LEVEL", "verbose"),
        "SERVING_LOGGING_LEVEL=\"verbose\": unknown level (expected debug, info, warn, error");
    expect_error(OVER("SERVING_LOGGING_CONFIG", "{level"), "SERVING_LOGGING_CONFIG: invalid JSON");
    expect_error(
        OVER("SERVING_REQUEST_METRICS_BACKEND", "statsd"),
        "SERVING_REQUEST_METRICS_BACKEND=\"statsd\": unknown backend (expected prometheus, "
        "opencensus or empty)");
    expect_error(OVER("SERVING_READINESS_PROBE", "{\"exec\":{\"command\":[\"ls\"]}}"),
                 "SERVING_READINESS_PROBE: exec probes are not run by the queue-proxy");
    expect_error(OVER("KP_USER_HOST", "app"), "KP_USER_HOST=\"app\": not an IP address");
    expect_error(OVER("USER_PORT", "8012"), "USER_PORT=8012: same port as QUEUE_SERVING_PORT");
    expect_error(OVER("KP_METRICS_PORT", "8022"),
                 "KP_METRICS_PORT=8022: same port as KP_ADMIN_PORT");
}

static void logging_level_sources(void **state)
{
    kp_qp_config_t cfg;
    char err[512] = "";
    assert_int_equal(load(&cfg, OVER("SERVING_LOGGING_LEVEL", "DEBUG"), err, sizeof err), 0);
    assert_int_equal(cfg.log_level, KP_LOG_DEBUG);
    kp_qp_config_free(&cfg);
    /* Level from the zap config when the override is empty, as Knative's
     * NewLogger does. */
    assert_int_equal(
        load(&cfg, OVER("SERVING_LOGGING_CONFIG", "{\"level\":\"warn\",\"encoding\":\"json\"}"),
             err, sizeof err),
        0);
    assert_int_equal(cfg.log_level, KP_LOG_WARN);
    kp_qp_config_free(&cfg);
    assert_int_equal(load(&cfg,
                          OVER("SERVING_LOGGING_CONFIG", "{\"level\":\"warn\"}",
                               "SERVING_LOGGING_LEVEL", "error"),
                          err, sizeof err),
                     0);
    assert_int_equal(cfg.log_level, KP_LOG_ERROR);
    kp_qp_config_free(&cfg);
}

static void request_log_template(void **state)
{
    kp_qp_config_t cfg;
    char err[512] = "";
    /* Enabled: Knative's default template compiles. */
    assert_int_equal(load(&cfg, OVER("SERVING_ENABLE_REQUEST_LOG", "true"), err, sizeof err), 0);
    assert_non_null(cfg.request_log);
    kp_qp_config_free(&cfg);
    /* Enabled with no template: the default one. */
    assert_int_equal(
        load(&cfg, OVER("SERVING_ENABLE_REQUEST_LOG", "true", "SERVING_REQUEST_LOG_TEMPLATE", ""),
             err, sizeof err),
        0);
    assert_non_null(cfg.request_log);
    kp_qp_config_free(&cfg);
    /* A bad template is an error only when request logging is on (Knative
     * does not parse it otherwise). */
    assert_int_equal(
        load(&cfg, OVER("SERVING_REQUEST_LOG_TEMPLATE", "{{.Bogus}}"), err, sizeof err), 0);
    assert_null(cfg.request_log);
    kp_qp_config_free(&cfg);
    expect_error(
        OVER("SERVING_ENABLE_REQUEST_LOG", "1", "SERVING_REQUEST_LOG_TEMPLATE", "{{.Bogus}}"),
        "SERVING_REQUEST_LOG_TEMPLATE: unknown field .Bogus in action {{.Bogus}}");
    expect_error(OVER("SERVING_ENABLE_REQUEST_LOG", "1", "SERVING_REQUEST_LOG_TEMPLATE",
                      "{{if .Request}}x{{end}}"),
                 "SERVING_REQUEST_LOG_TEMPLATE: unsupported action \"if\"");
}

static void ports_do_not_clash_when_unused(void **state)
{
    kp_qp_config_t cfg;
    char err[512] = "";
    /* 9091 is only ours when the prometheus backend is on. */
    assert_int_equal(load(&cfg, OVER("SERVING_REQUEST_METRICS_BACKEND", "", "USER_PORT", "9091"),
                          err, sizeof err),
                     0);
    kp_qp_config_free(&cfg);
    /* An app on another host may use our port number. */
    assert_int_equal(
        load(&cfg, OVER("KP_USER_HOST", "10.0.0.9", "USER_PORT", "8012"), err, sizeof err), 0);
    kp_qp_config_free(&cfg);
}

static void reads_getenv(void **state)
{
    for (const char *const *kv = knative_env; kv[0]; kv += 2)
        setenv(kv[0], kv[1], 1);
    kp_qp_config_t cfg;
    char err[512] = "";
    if (kp_qp_config_load(&cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.revision, "hello-00001");
    kp_qp_config_free(&cfg);
    unsetenv("USER_PORT");
    assert_int_equal(kp_qp_config_load(&cfg, err, sizeof err), -1);
    assert_string_equal(err, "USER_PORT: required but not set");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_what_knative_sets),
        cmocka_unit_test(optional_ones_may_be_absent),
        cmocka_unit_test(our_overrides),
        cmocka_unit_test(required_ones_must_be_set),
        cmocka_unit_test(every_problem_is_named_at_once),
        cmocka_unit_test(a_short_buffer_truncates),
        cmocka_unit_test(bad_values_name_the_variable),
        cmocka_unit_test(logging_level_sources),
        cmocka_unit_test(request_log_template),
        cmocka_unit_test(ports_do_not_clash_when_unused),
        cmocka_unit_test(reads_getenv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
