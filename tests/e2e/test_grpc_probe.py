"""A "grpc" readiness probe (SERVING_READINESS_PROBE {"grpc": {"port",
"service"}}), as Knative's queue-proxy runs it: a grpc.health.v1.Health/Check
call over h2c to the app; the app is ready when the call succeeds with
SERVING. The app here is python3-grpcio serving the health service by hand
(grpc_health_app.py)."""
import json
import os
import threading
import time

import kp

PYTHON = "/usr/bin/python3"
APP = os.path.join(kp.HERE, "grpc_health_app.py")
GRPC_ECHO = os.path.join(kp.HERE, "grpc_echo.py")
KUBE = {"User-Agent": "kube-probe/1.27", "K-Network-Probe": "queue"}


def grpc_probe(service=None, **timing):
    g = {"port": 0}
    if service is not None:
        g["service"] = service
    spec = {"grpc": g, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1,
            "successThreshold": 1, **timing}
    return json.dumps(spec).replace('"port": 0', '"port": $USER_PORT')


def health_app(procs, port, tmp):
    log = os.path.join(tmp, "health-%d.log" % port)
    status = os.path.join(tmp, "status-%d" % port)
    app = procs.start("grpc_health", [PYTHON, APP, "--port", str(port), "--log", log,
                                      "--status-file", status], {})
    kp.wait_port(port, app)
    return log, status


def calls(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [json.loads(line) for line in f if line.strip()]


def kube_probe(p):
    r = p.get("/", headers=KUBE)
    return r.status, r.body


def test_serving_is_ready_and_not_serving_is_not(pod, procs):
    p = pod(app=False, SERVING_READINESS_PROBE=grpc_probe())
    log, status = health_app(procs, p.user_port, procs.tmpdir)
    kp.wait_until(lambda: kube_probe(p) == (200, b"queue"), 10, what="ready")
    seen = calls(log)
    assert seen and seen[0]["service"] == "", seen
    assert seen[0]["metadata"]["user-agent"].startswith("Knative-Queue-Proxy-Probe"), seen[0]
    with open(status, "w") as f:
        f.write("NOT_SERVING")
    assert kube_probe(p) == (503, b"")
    assert "service not serving (status 2)" in p.qp.stderr()
    with open(status, "w") as f:
        f.write("UNKNOWN")  # an empty HealthCheckResponse: status 0
    assert kube_probe(p) == (503, b"")
    with open(status, "w") as f:
        f.write("SERVING")
    assert kube_probe(p) == (200, b"queue")


def test_the_service_named_is_asked_about(pod, procs):
    p = pod(app=False, SERVING_READINESS_PROBE=grpc_probe(service="kp.Echo"))
    log, _ = health_app(procs, p.user_port, procs.tmpdir)
    kp.wait_until(lambda: kube_probe(p) == (200, b"queue"), 10, what="ready")
    assert {c["service"] for c in calls(log)} == {"kp.Echo"}
    # a service the app does not know: NOT_FOUND, never ready
    q = pod(app=False, SERVING_READINESS_PROBE=grpc_probe(service="missing"))
    log, _ = health_app(procs, q.user_port, procs.tmpdir)
    kp.wait_until(lambda: calls(log), 10, what="a check")
    assert kube_probe(q) == (503, b"")
    assert kube_probe(q) == (503, b"")


def test_an_app_without_the_health_service_is_not_ready(pod, procs):
    p = pod(app=False, SERVING_READINESS_PROBE=grpc_probe())
    log = os.path.join(procs.tmpdir, "echo.log")
    app = procs.start("grpc_echo", [PYTHON, GRPC_ECHO, "--port", str(p.user_port),
                                    "--log", log], {})
    kp.wait_port(p.user_port, app)
    for _ in range(3):
        assert kube_probe(p) == (503, b"")
    assert p.qp.poll() is None


def test_aggressive_grpc_probe_waits_for_the_app(pod, procs):
    """periodSeconds 0: a check made before the app listens polls until
    the app answers SERVING."""
    p = pod(app=False, SERVING_READINESS_PROBE=grpc_probe(periodSeconds=0))
    answer = []
    t = threading.Thread(target=lambda: answer.append(kube_probe(p)))
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), answer
    log, _ = health_app(procs, p.user_port, procs.tmpdir)
    t.join(15)
    assert answer == [(200, b"queue")]
    assert calls(log)


def test_a_malformed_grpc_probe_stops_the_queue_proxy(procs):
    for spec, words in (('{"grpc":{"port":"grpc"}}', "named port"),
                        ('{"grpc":{"port":9000,"service":7}}', "grpc.service"),
                        ('{"grpc":{"port":9000},"tcpSocket":{"port":9000}}',
                         "expected exactly one")):
        env = kp.knative_env(SERVING_READINESS_PROBE=spec)
        qp = procs.start("queue-proxy", [kp.binary("queue-proxy")], env)
        assert qp.wait(10 * kp.SLOW) != 0
        assert "SERVING_READINESS_PROBE" in qp.stderr() and words in qp.stderr(), qp.stderr()
