"""Configuration errors at start, and the request log."""
import json
import socket
import subprocess

import pytest

import kp


def run_qp(procs, **env):
    full = kp.knative_env(**env)
    p = procs.start("queue-proxy", [kp.binary("queue-proxy")], full)
    try:
        rc = p.wait(5 * kp.SLOW)
    except subprocess.TimeoutExpired:
        raise AssertionError("queue-proxy kept running with a bad configuration:\n" + p.describe())
    return rc, p.stderr() + p.stdout()


@pytest.mark.parametrize("env,must_name", [
    ({"USER_PORT": None}, "USER_PORT"),
    ({"SERVING_NAMESPACE": None}, "SERVING_NAMESPACE"),
    ({"QUEUE_SERVING_PORT": None}, "QUEUE_SERVING_PORT"),
    ({"CONTAINER_CONCURRENCY": "ten"}, 'CONTAINER_CONCURRENCY="ten"'),
    ({"CONTAINER_CONCURRENCY": "-1"}, "CONTAINER_CONCURRENCY"),
    ({"REVISION_TIMEOUT_SECONDS": "5s"}, "REVISION_TIMEOUT_SECONDS"),
    ({"USER_PORT": "70000"}, "USER_PORT"),
    ({"SERVING_READINESS_PROBE": "{not json"}, "SERVING_READINESS_PROBE"),
], ids=["no-USER_PORT", "no-SERVING_NAMESPACE", "no-QUEUE_SERVING_PORT", "CC-ten", "CC-negative",
        "timeout-5s", "USER_PORT-70000", "probe-not-json"])
def test_bad_config_exits_naming_the_variable(procs, env, must_name):
    rc, out = run_qp(procs, **env)
    assert rc != 0, out
    assert must_name in out, out


def test_container_concurrency_ten_message(procs):
    rc, out = run_qp(procs, CONTAINER_CONCURRENCY="ten")
    assert rc != 0
    assert 'CONTAINER_CONCURRENCY="ten": not an integer' in out, out


def test_help_lists_variables():
    r = subprocess.run([kp.binary("queue-proxy"), "--help"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0
    for v in ("USER_PORT", "CONTAINER_CONCURRENCY", "KP_DRAIN_QUIET_PERIOD_SECONDS"):
        assert v in r.stdout + r.stderr


def test_unknown_and_optional_variables_accepted(pod):
    p = pod(ENABLE_HTTP2_AUTO_DETECTION="true", ENABLE_PROFILING="1",
            SOME_UNRELATED_VAR="x", TRACING_CONFIG_SAMPLE_RATE="0.5")
    assert p.get("/").status == 200


TEMPLATE = '{"method":"{{.Request.Method}}","status":{{.Response.Code}}}'


def test_request_log_line_on_stdout(pod):
    p = pod(SERVING_ENABLE_REQUEST_LOG="true", SERVING_REQUEST_LOG_TEMPLATE=TEMPLATE)
    assert p.get("/").status == 200
    assert p.request("POST", "/?status=404", body=b"abc").status == 404
    # probes are not logged unless SERVING_ENABLE_PROBE_REQUEST_LOG is true
    p.get("/", headers={"User-Agent": "kube-probe/1.29", "K-Network-Probe": "queue"})

    def lines():
        ls = [l for l in p.qp.stdout().splitlines() if l.startswith('{"method"')]
        return ls if len(ls) >= 2 else None

    got = kp.wait_until(lines, 5, what="request log lines")
    assert got == ['{"method":"GET","status":200}', '{"method":"POST","status":404}'], got
    for l in got:
        json.loads(l)


def test_request_log_of_an_absolute_form_request(pod):
    """As Go's net/http reads it for Knative's queue-proxy: RequestURI is the
    target as received, Host the target's authority (RFC 9112 §3.2.2: it
    replaces the Host header), URL.Path the path."""
    p = pod(SERVING_ENABLE_REQUEST_LOG="true", SERVING_REQUEST_LOG_TEMPLATE=(
        '{"uri":"{{.Request.RequestURI}}","host":"{{.Request.Host}}",'
        '"path":"{{.Request.URL.Path}}"}'))
    with socket.create_connection(("127.0.0.1", p.qp_port), timeout=5 * kp.SLOW) as c:
        c.sendall(b"GET http://a.example:8080/headers?x=1 HTTP/1.1\r\nHost: other.example\r\n"
                  b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := c.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK"), reply
    assert b"\nHost: a.example:8080\n" in reply, reply  # what the app got
    got = kp.wait_until(lambda: [l for l in p.qp.stdout().splitlines()
                                 if l.startswith('{"uri"')], 5, what="request log line")
    assert [json.loads(l) for l in got] == [{"uri": "http://a.example:8080/headers?x=1",
                                             "host": "a.example:8080", "path": "/headers"}], got


def test_probe_request_log_when_enabled(pod):
    p = pod(SERVING_ENABLE_REQUEST_LOG="true", SERVING_ENABLE_PROBE_REQUEST_LOG="true",
            SERVING_REQUEST_LOG_TEMPLATE=TEMPLATE)
    p.get("/", headers={"User-Agent": "kube-probe/1.29", "K-Network-Probe": "queue"})
    got = kp.wait_until(lambda: [l for l in p.qp.stdout().splitlines()
                                 if l.startswith('{"method"')], 5, what="probe log line")
    assert got == ['{"method":"GET","status":200}'], got
