"""Request timeouts and an unreachable app."""
import socket
import time

import kp


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0


def read_raw_response(port, path, timeout=10):
    """GET over a raw socket; returns (status, declared length, body bytes
    read before the peer closed, seconds)."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * kp.SLOW)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    return kp.status_of(head), length, body, time.monotonic() - t0


def test_revision_timeout_before_response_is_504(pod):
    p = pod(REVISION_TIMEOUT_SECONDS="1")
    r, took = timed(p.get, "/?hang=1", timeout=10)
    kp.assert_text(r, 504, "request timeout")
    assert 0.9 <= took < 2.5 * kp.SLOW, took
    # the pod still serves
    assert p.get("/").body == b"Hello World!\n"


def test_revision_timeout_after_response_started_cuts_connection(pod):
    p = pod(REVISION_TIMEOUT_SECONDS="1")
    status, length, body, took = read_raw_response(p.qp_port, "/?drip=300")
    assert status == 200
    assert length == 300
    assert 10 < len(body) < 300, len(body)  # cut mid-body, not a fake complete answer
    assert 0.9 <= took < 2.5 * kp.SLOW, took


def test_response_start_timeout(pod):
    p = pod(REVISION_TIMEOUT_SECONDS="30", REVISION_RESPONSE_START_TIMEOUT_SECONDS="1")
    r, took = timed(p.get, "/?sleep=3000", timeout=10)
    kp.assert_text(r, 504, "request timeout")
    assert 0.9 <= took < 2.5 * kp.SLOW, took
    # once the first byte is out, the start timeout no longer applies
    r, took = timed(p.get, "/?drip=150", timeout=10)
    assert (r.status, len(r.body)) == (200, 150)
    assert took >= 1.4


def test_idle_timeout(pod):
    p = pod(REVISION_TIMEOUT_SECONDS="30", REVISION_IDLE_TIMEOUT_SECONDS="1")
    r, took = timed(p.get, "/?sleep=3000", timeout=10)
    kp.assert_text(r, 504, "request timeout")
    assert 0.9 <= took < 2.5 * kp.SLOW, took
    # a byte every 10 ms keeps the request alive past the idle timeout
    r = p.get("/?drip=150", timeout=10)
    assert (r.status, len(r.body)) == (200, 150)


def test_app_down_is_502(pod):
    p = pod(app=False)
    r, took = timed(p.get, "/")
    assert r.status == 502, r
    assert took < 2 * kp.SLOW
    assert p.qp.poll() is None
    r = p.request("POST", "/", body=b"x" * 100000)
    assert r.status == 502, r


def test_queued_request_past_its_deadline_is_answered_at_its_deadline(pod):
    # CC=1: A holds the slot past the timeout; B waits behind it. With one
    # timeout for all, A always expires first and hands B the slot, so B is
    # answered at B's own deadline: 503 (deadline in the queue) or 504
    # (deadline at the app), never later, never 200.
    p = pod(CONTAINER_CONCURRENCY="1", REVISION_TIMEOUT_SECONDS="1")
    a = kp.run_in_thread(timed, p.get, "/?hang=1", timeout=10)
    kp.wait_until(lambda: p.app_stats()["in_flight"] == 1, 5, what="A at the app")
    time.sleep(0.3)
    rb, took_b = timed(p.get, "/?hang=1", timeout=10)
    ra, took_a = a()
    kp.assert_text(ra, 504, "request timeout")
    assert (rb.status, rb.body.strip()) in ((503, b"context deadline exceeded"),
                                           (504, b"request timeout")), rb
    assert 0.9 <= took_b < 1.8 * kp.SLOW, took_b
    assert p.get("/").status == 200
