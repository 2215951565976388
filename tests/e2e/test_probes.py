"""Health checks (kubelet, activator, autoscaler) and network probes,
answered by the queue-proxy from the app's readiness."""
import json
import time

import kp

KUBE = {"User-Agent": "kube-probe/1.29", "K-Network-Probe": "queue"}
ACTIVATOR = {"User-Agent": "Knative-Activator-Probe", "K-Network-Probe": "queue"}


def tcp_probe(**extra):
    spec = {"tcpSocket": {"port": 0, "host": "127.0.0.1"}, "successThreshold": 1}
    spec.update(extra)
    return json.dumps(spec).replace('"port": 0', '"port": $USER_PORT')


def test_kubelet_probe_503_before_app_listens_then_200(pod):
    p = pod(app_env={"STARTUP_DELAY_MS": "1500"}, wait_ready=False,
            SERVING_READINESS_PROBE=tcp_probe(periodSeconds=1, timeoutSeconds=1,
                                              failureThreshold=1))
    r = p.get("/", headers=KUBE)
    assert (r.status, r.body) == (503, b""), r
    assert not kp.port_open(p.user_port), "app listened too early for this test"
    kp.wait_port(p.user_port, p.app)
    r = p.get("/", headers=KUBE)
    kp.assert_text(r, 200, "queue")


def test_aggressive_probe_waits_for_the_app(pod):
    # periodSeconds 0: the health check keeps probing (every 50 ms) until the
    # app listens, and answers 200 right after.
    p = pod(app_env={"STARTUP_DELAY_MS": "1000"}, wait_ready=False,
            SERVING_READINESS_PROBE=tcp_probe())
    t0 = time.monotonic()
    r = p.get("/", headers=KUBE, timeout=15)
    took = time.monotonic() - t0
    kp.assert_text(r, 200, "queue")
    assert kp.port_open(p.user_port)
    assert 0.3 < took < 5 * kp.SLOW, took


def test_activator_probe_answers_queue(pod):
    p = pod(SERVING_READINESS_PROBE=tcp_probe())
    before = p.app_stats()["requests"]
    r = p.get("/", headers=ACTIVATOR)
    kp.assert_text(r, 200, "queue")
    r = p.get("/", headers={"User-Agent": "Knative-Autoscaling-Probe", "K-Network-Probe": "queue"})
    kp.assert_text(r, 200, "queue")
    r = p.get("/", headers={"K-Kubelet-Probe": "1", "K-Network-Probe": "queue"})
    kp.assert_text(r, 200, "queue")
    # probes never reach the app as traffic
    assert p.app_stats()["requests"] == before


def test_probe_without_readiness_spec_is_ready(pod):
    p = pod()
    kp.assert_text(p.get("/", headers=KUBE), 200, "queue")


def test_wrong_probe_header_value_is_400(pod):
    p = pod()
    r = p.get("/", headers={"User-Agent": "kube-probe/1.29", "K-Network-Probe": "x"})
    kp.assert_text(r, 400, "unexpected probe header value: x")
    r = p.get("/", headers={"User-Agent": "kube-probe/1.29"})
    kp.assert_text(r, 400, "unexpected probe header value: ")


def test_network_probe_needs_hash_and_echoes_it(pod):
    p = pod()
    r = p.get("/", headers={"K-Network-Probe": "probe"})
    assert r.status == 400, r
    assert b"K-Network-Hash" in r.body, r
    r = p.get("/", headers={"K-Network-Probe": "probe", "K-Network-Hash": "abc"})
    assert r.status == 200, r
    assert r.header("K-Network-Hash") == "abc", r.headers


def test_http_get_readiness_uses_app_status(pod):
    spec = json.dumps({"httpGet": {"port": 0, "path": "/?status=503", "scheme": "HTTP"},
                       "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1,
                       "successThreshold": 1}).replace('"port": 0', '"port": $USER_PORT')
    p = pod(SERVING_READINESS_PROBE=spec)
    r = p.get("/", headers=KUBE)
    assert (r.status, r.body) == (503, b""), r
    p2 = pod(SERVING_READINESS_PROBE=spec.replace("/?status=503", "/?status=302"))
    kp.assert_text(p2.get("/", headers=KUBE), 200, "queue")
