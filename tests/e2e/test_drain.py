"""Graceful drain: SIGTERM and the admin port's /wait-for-drain."""
import signal
import time

import kp

KUBE = {"User-Agent": "kube-probe/1.29", "K-Network-Probe": "queue"}


def test_sigterm_lets_in_flight_request_finish_and_exits_0(pod):
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS="1")
    slow = kp.run_in_thread(p.get, "/?sleep=1500", timeout=20)
    kp.wait_until(lambda: p.app_stats()["in_flight"] == 1, 5, what="request at the app")
    t0 = time.monotonic()
    p.qp.signal(signal.SIGTERM)
    time.sleep(0.1)
    # health checks fail at once, with the reason
    kp.assert_text(p.get("/", headers=KUBE), 503, "shutting down")
    kp.assert_text(p.get("/", headers={"User-Agent": "Knative-Activator-Probe",
                                       "K-Network-Probe": "queue"}), 503, "shutting down")
    kp.assert_text(p.get("/", headers={"K-Network-Probe": "probe", "K-Network-Hash": "h"}),
                   503, "shutting down")
    # traffic is still served during the quiet period
    r = p.get("/")
    assert (r.status, r.body) == (200, b"Hello World!\n")
    r = slow()
    assert (r.status, r.body) == (200, b"Hello World!\n")
    rc = p.qp.wait(6 * kp.SLOW)
    took = time.monotonic() - t0
    assert rc == 0, p.qp.describe()
    # quiet period (1 s after the last request) respected, and no long linger
    assert 1.0 <= took < 4 * kp.SLOW, took
    assert not kp.port_open(p.qp_port)


def test_sigterm_idle_exits_after_quiet_period(pod):
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS="1")
    t0 = time.monotonic()
    p.qp.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert p.qp.poll() is None, "exited before the quiet period passed"
    assert p.get("/").status == 200
    rc = p.qp.wait(6 * kp.SLOW)
    took = time.monotonic() - t0
    assert rc == 0, p.qp.describe()
    assert 1.2 <= took < 4 * kp.SLOW, took


def test_wait_for_drain_on_admin_port(pod):
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS="1")
    kp.assert_text(p.get("/", headers=KUBE), 200, "queue")
    t0 = time.monotonic()
    waiter = kp.run_in_thread(kp.request, p.admin_port, "/wait-for-drain", timeout=15)
    time.sleep(0.2)
    kp.assert_text(p.get("/", headers=KUBE), 503, "shutting down")
    assert waiter.thread.is_alive(), "/wait-for-drain answered before the quiet period"
    r = waiter()
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert 0.9 <= took < 4 * kp.SLOW, took
    # /wait-for-drain alone does not stop the process; SIGTERM then exits fast
    assert p.qp.poll() is None
    t1 = time.monotonic()
    assert p.stop() == 0, p.qp.describe()
    assert time.monotonic() - t1 < 3 * kp.SLOW


def test_sigterm_with_zero_quiet_period_exits_at_once(pod):
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS="0")
    t0 = time.monotonic()
    assert p.stop() == 0, p.qp.describe()
    assert time.monotonic() - t0 < 1.0 * kp.SLOW
