"""Traffic through the queue-proxy: proxying, header rewriting, and
containerConcurrency (the breaker and its bounded queue)."""
import time

import kp


def test_hello_through_queue_proxy(pod):
    p = pod()
    r = p.get("/")
    assert r.status == 200
    assert r.body == b"Hello World!\n"
    r = p.get("/?status=418")
    assert r.status == 418
    r = p.request("POST", "/", body=b"x" * 1234)
    assert (r.status, r.body) == (200, b"received 1234 bytes\n")


def test_headers_rewritten_for_the_app(pod):
    p = pod()
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = p.get("/headers", headers={
        "Host": "127.0.0.1",
        "K-Original-Host": "hello.default.example.com",
        "Knative-Serving-Revision": "hello-00001",
        "Knative-Serving-Namespace": "default",
        "X-Forwarded-For": "10.1.2.3",
        "traceparent": tp,
        "tracestate": "congo=t61rcWkgMzE",
        "X-Custom": "kept",
    })
    assert r.status == 200, r
    lines = r.text.splitlines()
    got = {}
    for line in lines:
        k, _, v = line.partition(": ")
        got.setdefault(k.lower(), []).append(v)
    assert got.get("host") == ["hello.default.example.com"], lines
    assert "k-original-host" not in got, lines
    assert "knative-serving-revision" not in got, lines
    assert "knative-serving-namespace" not in got, lines
    assert got.get("x-forwarded-for") == ["10.1.2.3, 127.0.0.1"], lines
    assert got.get("traceparent") == [tp], lines
    assert got.get("tracestate") == ["congo=t61rcWkgMzE"], lines
    assert got.get("x-custom") == ["kept"], lines


def test_x_forwarded_for_added_when_absent(pod):
    p = pod()
    r = p.get("/headers")
    got = [l for l in r.text.splitlines() if l.lower().startswith("x-forwarded-for:")]
    assert got == ["X-Forwarded-For: 127.0.0.1"] or [g.lower() for g in got] == \
        ["x-forwarded-for: 127.0.0.1"], r.text


def test_container_concurrency_never_exceeded(pod):
    p = pod(CONTAINER_CONCURRENCY="10")
    p.app_reset()
    n = 200 if kp.ASAN else 500
    codes, out = kp.hey(p.url("/?sleep=50"), c=50, n=n)
    assert codes == {200: n}, out
    st = p.app_stats()
    assert st["max_in_flight"] == 10, st
    assert st["requests"] == n, st


def test_no_limit_when_concurrency_zero(pod):
    p = pod(CONTAINER_CONCURRENCY="0")
    p.app_reset()
    codes, out = kp.hey(p.url("/?sleep=100"), c=30, n=90)
    assert codes == {200: 90}, out
    st = p.app_stats()
    # hey's 30 workers all reach the app at once (allow a little start skew)
    assert 25 <= st["max_in_flight"] <= 30, st


def test_waiting_requests_served_in_arrival_order(pod):
    p = pod(CONTAINER_CONCURRENCY="1")
    done = []

    def one(i, sleep):
        r = p.get("/?sleep=%d" % sleep, timeout=20)
        done.append(i)
        return r.status

    getters = [kp.run_in_thread(one, 0, 400)]
    kp.wait_until(lambda: p.app_stats()["in_flight"] == 1, 5, what="first request at the app")
    for i in range(1, 8):
        time.sleep(0.03)
        getters.append(kp.run_in_thread(one, i, 30))
    assert [g() for g in getters] == [200] * 8
    assert done == list(range(8))


def test_queue_beyond_ten_times_cc_is_503(pod):
    p = pod(CONTAINER_CONCURRENCY="1")
    hold = kp.run_in_thread(p.get, "/?sleep=%d" % int(1500 * kp.SLOW), timeout=30)
    kp.wait_until(lambda: p.app_stats()["in_flight"] == 1, 5, what="first request at the app")
    waiting = [kp.run_in_thread(p.get, "/?sleep=1", timeout=30) for _ in range(10)]
    time.sleep(0.3 * kp.SLOW)  # let all ten reach the queue
    assert hold.thread.is_alive(), "the first request ended too early for this test"
    r = p.get("/")
    kp.assert_text(r, 503, "pending request queue full")
    assert hold().status == 200
    assert [w().status for w in waiting] == [200] * 10
    # the queue is free again
    assert p.get("/").status == 200


def test_forwarded_kept_in_step(pod):
    p = pod()
    r = p.get("/headers", headers={"Forwarded": "for=10.1.2.3;proto=https",
                                   "X-Forwarded-For": "10.1.2.3"})
    got = {l.partition(": ")[0].lower(): l.partition(": ")[2] for l in r.text.splitlines()}
    assert got.get("forwarded") == "for=10.1.2.3;proto=https, for=127.0.0.1", r.text
    assert got.get("x-forwarded-for") == "10.1.2.3, 127.0.0.1", r.text


def test_host_passes_through_without_original_host(pod):
    p = pod()
    r = p.get("/headers", headers={"Host": "abc.example.com:8080"})
    hosts = [l for l in r.text.splitlines() if l.lower().startswith("host:")]
    assert [h.split(": ", 1)[1] for h in hosts] == ["abc.example.com:8080"], r.text


def test_keep_alive_client_connection_serves_many(pod):
    import http.client
    p = pod(CONTAINER_CONCURRENCY="1")
    c = http.client.HTTPConnection("127.0.0.1", p.qp_port, timeout=10)
    try:
        for i in range(50):
            c.request("GET", "/?status=%d" % (200 + i % 3))
            r = c.getresponse()
            assert (r.status, r.read()) == (200 + i % 3, b"Hello World!\n")
    finally:
        c.close()
