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


DRAIN_STARTED = "draining: health checks now fail"


def test_wait_for_drain_on_admin_port(pod):
    """/wait-for-drain starts the drain and is held until the quiet period
    (1 s without a request) has passed. Its timing is measured from when the
    queue-proxy is seen to have received it, not from when the client thread
    was started: a thread slow to connect must not pass for a held request."""
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS="1")
    kp.assert_text(p.get("/", headers=KUBE), 200, "queue")
    assert DRAIN_STARTED not in p.qp.stderr()
    t0 = time.monotonic()
    waiter = kp.run_in_thread(kp.request, p.admin_port, "/wait-for-drain", timeout=15)
    # Only the waiter's request starts a drain here (no SIGTERM is sent): the
    # log line is proof that it reached the queue-proxy, at or before `arrived`.
    kp.wait_until(lambda: DRAIN_STARTED in p.qp.stderr(), 5, interval=0.01,
                  what="the queue-proxy to receive /wait-for-drain")
    arrived = time.monotonic()
    kp.assert_text(p.get("/", headers=KUBE), 503, "shutting down")
    # Still held 0.8 s after it arrived (arrived is no earlier than its
    # arrival, so this bounds the hold from below).
    time.sleep(max(0.0, arrived + 0.8 - time.monotonic()))
    assert waiter.thread.is_alive(), "/wait-for-drain answered before the quiet period"
    r = waiter()
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert took < 4 * kp.SLOW, took
    print("/wait-for-drain seen at the queue-proxy %.3f s after the client started; "
          "answered %.3f s after that" % (arrived - t0, took - (arrived - t0)))
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
