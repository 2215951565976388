/* Tests for queue-proxy/probe_spec.c: SERVING_READINESS_PROBE as Knative's
 * reconciler writes it, Kubernetes defaults, and clear refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue-proxy/probe_spec.h"

static kp_probe_spec_t parse_ok(const char *json)
{
    kp_probe_spec_t s;
    char err[256] = "";
    if (kp_probe_spec_parse(json, 8080, &s, err, sizeof err) != 0)
        fail_msg("parse failed: %s", err);
    return s;
}

static void expect_error(const char *json, const char *needle)
{
    kp_probe_spec_t s;
    char err[256] = "";
    assert_int_equal(kp_probe_spec_parse(json, 8080, &s, err, sizeof err), -1);
    assert_int_equal(s.kind, KP_PROBE_NONE);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void absent_or_empty_means_no_probe(void **state)
{
    kp_probe_spec_t s = parse_ok("");
    assert_int_equal(s.kind, KP_PROBE_NONE);
    char err[8];
    assert_int_equal(kp_probe_spec_parse(NULL, 8080, &s, err, sizeof err), 0);
    assert_int_equal(s.kind, KP_PROBE_NONE);
    kp_probe_spec_free(&s);
}

static void tcp_probe_as_knative_sends_it(void **state)
{
    kp_probe_spec_t s =
        parse_ok("{\"tcpSocket\":{\"port\":8081,\"host\":\"127.0.0.1\"},\"successThreshold\":1}");
    assert_int_equal(s.kind, KP_PROBE_TCP);
    assert_int_equal(s.port, 8081);
    assert_string_equal(s.host, "127.0.0.1");
    assert_int_equal(s.period_seconds, 0);
    assert_int_equal(s.timeout_seconds, 1);
    assert_int_equal(s.success_threshold, 1);
    assert_int_equal(s.failure_threshold, 3);
    kp_probe_spec_free(&s);
}

static void http_probe_with_headers_and_thresholds(void **state)
{
    kp_probe_spec_t s = parse_ok(
        "{\"httpGet\":{\"path\":\"healthz\",\"port\":\"9000\",\"host\":\"::1\",\"scheme\":\"HTTP\","
        "\"httpHeaders\":[{\"name\":\"X-A\",\"value\":\"b c\"},{\"name\":\"K-Kubelet-Probe\","
        "\"value\":\"queue\"}]},\"periodSeconds\":5,\"timeoutSeconds\":2,\"successThreshold\":2,"
        "\"failureThreshold\":4,\"initialDelaySeconds\":3}");
    assert_int_equal(s.kind, KP_PROBE_HTTP);
    assert_int_equal(s.port, 9000);
    assert_string_equal(s.host, "::1");
    assert_string_equal(s.path, "/healthz");
    assert_int_equal(s.n_headers, 2);
    assert_string_equal(s.headers[0].name, "X-A");
    assert_string_equal(s.headers[0].value, "b c");
    assert_string_equal(s.headers[1].name, "K-Kubelet-Probe");
    assert_int_equal(s.period_seconds, 5);
    assert_int_equal(s.timeout_seconds, 2);
    assert_int_equal(s.success_threshold, 2);
    assert_int_equal(s.failure_threshold, 4);
    kp_probe_spec_free(&s);
    assert_int_equal(s.kind, KP_PROBE_NONE);
    assert_null(s.path);
}

static void defaults_host_port_and_path(void **state)
{
    kp_probe_spec_t s = parse_ok("{\"httpGet\":{},\"periodSeconds\":null}");
    assert_string_equal(s.host, "127.0.0.1");
    assert_int_equal(s.port, 8080); /* the user port */
    assert_string_equal(s.path, "/");
    kp_probe_spec_free(&s);
    s = parse_ok("{\"tcpSocket\":{\"port\":0,\"host\":\"localhost\"}}");
    assert_int_equal(s.port, 8080);
    assert_string_equal(s.host, "127.0.0.1");
    kp_probe_spec_free(&s);
    /* Newer Knative: a list with one probe per container. */
    s = parse_ok("[{\"tcpSocket\":{\"port\":8082}}]");
    assert_int_equal(s.kind, KP_PROBE_TCP);
    assert_int_equal(s.port, 8082);
    kp_probe_spec_free(&s);
}

/* core/v1 GRPCAction, as Knative passes it on (port 0: the user port). */
static void grpc_probe_with_and_without_a_service(void **state)
{
    kp_probe_spec_t s = parse_ok("{\"grpc\":{\"port\":9000,\"service\":\"kp.Echo\"},"
                                 "\"periodSeconds\":2,\"failureThreshold\":4}");
    assert_int_equal(s.kind, KP_PROBE_GRPC);
    assert_int_equal(s.port, 9000);
    assert_string_equal(s.host, "127.0.0.1");
    assert_string_equal(s.grpc_service, "kp.Echo");
    assert_int_equal(s.period_seconds, 2);
    assert_int_equal(s.timeout_seconds, 1);
    assert_int_equal(s.failure_threshold, 4);
    kp_probe_spec_free(&s);
    s = parse_ok("{\"grpc\":{\"port\":0,\"service\":null}}");
    assert_int_equal(s.port, 8080);
    assert_string_equal(s.grpc_service, "");
    kp_probe_spec_free(&s);
    expect_error("{\"grpc\":{\"port\":9000},\"httpGet\":{\"port\":9000}}",
                 "grpc and httpGet are both set");
    expect_error("{\"grpc\":{\"port\":9000,\"service\":1}}", "grpc.service: expected a string");
    expect_error("{\"grpc\":{\"port\":\"grpc\"}}", "named port");
    expect_error("{\"grpc\":7}", "grpc: expected an object");
}

static void exec_and_https_are_refused(void **state)
{
    expect_error("{\"exec\":{\"command\":[\"true\"]}}",
                 "exec probes are not run by the queue-proxy");
    expect_error("{\"httpGet\":{\"port\":8080,\"scheme\":\"HTTPS\"}}",
                 "HTTPS probes are not supported");
    expect_error("{\"httpGet\":{\"port\":8080,\"scheme\":\"FTP\"}}", "unknown scheme");
}

static void malformed_probes_are_refused(void **state)
{
    expect_error("{", "invalid JSON");
    expect_error("{\"tcpSocket\":{}} x", "invalid JSON");
    expect_error("42", "expected a JSON object");
    expect_error("{}", "no handler");
    expect_error("{\"tcpSocket\":{},\"httpGet\":{}}", "both httpGet and tcpSocket");
    expect_error("{\"tcpSocket\":{\"port\":\"http\"}}", "named port \"http\" is not supported");
    expect_error("{\"tcpSocket\":{\"port\":70000}}", "not a port number");
    expect_error("{\"tcpSocket\":{\"port\":\"70000\"}}", "not a port number");
    expect_error("{\"tcpSocket\":{\"port\":80.5}}", "not a port number");
    expect_error("{\"tcpSocket\":{\"host\":\"app.local\"}}", "not an IP address");
    expect_error("{\"tcpSocket\":{},\"periodSeconds\":-1}",
                 "periodSeconds: expected a non-negative integer");
    expect_error("{\"tcpSocket\":{},\"timeoutSeconds\":\"1\"}", "timeoutSeconds");
    expect_error("{\"httpGet\":{\"path\":\"/a b\"}}", "httpGet.path");
    expect_error("{\"httpGet\":{\"httpHeaders\":[{\"name\":\"Bad Name\",\"value\":\"x\"}]}}",
                 "httpHeaders[0].name");
    expect_error("{\"httpGet\":{\"httpHeaders\":[{\"name\":\"A\",\"value\":\"x\\r\\ny\"}]}}",
                 "httpHeaders[0].value");
    expect_error("[{\"tcpSocket\":{}},{\"tcpSocket\":{}}]", "list of 2 probes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(absent_or_empty_means_no_probe),
        cmocka_unit_test(tcp_probe_as_knative_sends_it),
        cmocka_unit_test(http_probe_with_headers_and_thresholds),
        cmocka_unit_test(defaults_host_port_and_path),
        cmocka_unit_test(grpc_probe_with_and_without_a_service),
        cmocka_unit_test(exec_and_https_are_refused),
        cmocka_unit_test(malformed_probes_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
