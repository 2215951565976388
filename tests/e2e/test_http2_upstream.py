"""The h2c client half: requests carried to an HTTP/2 upstream over h2c
(common/http/h2_upstream.c through proxy.c), with tests/e2e/h2app.py (python3-h2)
as the app. Through build/tools/h2c_proxy (the proxy path alone, HTTP/1.1 in,
h2c out), through the queue-proxy (Knative: HTTP/2 in -> h2c to the app,
HTTP/1.1 in -> HTTP/1.1) and through activator -> queue-proxy; and the
queue-proxy's readiness probe of an h2c app (ENABLE_HTTP2_AUTO_DETECTION)."""
import json
import os
import signal
import socket
import threading
import time

import pytest

import h2client
import kp

H2APP = os.path.join(kp.HERE, "h2app.py")
PYTHON = "/usr/bin/python3"


class App:
    def __init__(self, procs, port=None, **opts):
        self.port = port or kp.free_port()
        self.log_path = os.path.join(procs.tmpdir, "h2app.%d.log" % self.port)
        argv = [PYTHON, H2APP, "--port", str(self.port), "--log", self.log_path]
        for k, v in opts.items():
            argv += ["--" + k.replace("_", "-"), str(v)]
        self.proc = procs.start("h2app", argv, {})
        kp.wait_port(self.port, self.proc)

    def events(self, ev=None):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            out = [json.loads(line) for line in f if line.strip()]
        return [e for e in out if ev is None or e["ev"] == ev]


def start_proxy(procs, app, max_conns=100, idle_ms=None):
    port = kp.free_port()
    argv = [os.path.join(kp.BUILD, "tools", "h2c_proxy"), str(port), "127.0.0.1", str(app.port),
            str(max_conns)]
    if idle_ms:
        argv += ["30", str(idle_ms)]
    p = procs.start("h2c_proxy", argv, {})
    kp.wait_port(port, p)
    return port


@pytest.fixture(autouse=True)
def proxies_end_clean(procs):
    """The h2c_proxy tools exit on SIGTERM with no sanitizer report (leaks
    included) when the test is over."""
    yield
    tools = [p for p in procs.procs if p.name == "h2c_proxy"]
    for p in tools:
        p.signal(signal.SIGTERM)
    for p in tools:
        assert p.wait(10 * kp.SLOW) == 0, p.describe()
        assert not p.sanitizer_errors(), p.describe()


def read_all(sock, timeout=10.0):
    sock.settimeout(timeout * kp.SLOW)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def concurrently(n, fn):
    results = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, fn(i))) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * kp.SLOW)
    return results


# --- the proxy path alone (HTTP/1.1 in, h2c out) ---

def test_streams_per_connection_stay_within_the_apps_limit(procs):
    app = App(procs, max_streams=2)
    port = start_proxy(procs, app)
    statuses = concurrently(10, lambda i: kp.request(port, "/slow/300").status)
    assert statuses == [200] * 10
    reqs = app.events("req")
    assert len(reqs) == 10
    per_conn = {}
    for e in reqs:
        per_conn[e["conn"]] = max(per_conn.get(e["conn"], 0), e["open"])
    assert max(per_conn.values()) <= 2, per_conn
    # beyond the limit, more connections rather than one long queue
    assert len(per_conn) >= 3, per_conn


def test_streams_wait_for_room_when_the_pool_is_at_its_connection_cap(procs):
    app = App(procs, max_streams=2)
    port = start_proxy(procs, app, max_conns=1)
    statuses = concurrently(6, lambda i: kp.request(port, "/slow/200").status)
    assert statuses == [200] * 6
    reqs = app.events("req")
    assert len({e["conn"] for e in reqs}) == 1, reqs
    assert max(e["open"] for e in reqs) <= 2


def test_goaway_mid_load_costs_the_client_nothing(procs):
    app = App(procs, goaway_after=3)
    port = start_proxy(procs, app)
    statuses = concurrently(12, lambda i: kp.request(port, "/slow/150").status)
    statuses += concurrently(6, lambda i: kp.request(port, "/hello").status)
    assert statuses == [200] * 18
    # the app did drain connections and left streams unanswered, which the
    # proxy sent again on new connections
    assert app.events("goaway")
    assert app.events("ignored")
    assert len({e["conn"] for e in app.events("req")}) >= 4


def test_unreachable_upstream_is_502_for_every_waiting_request(procs, pod):
    class Nobody:
        port = kp.free_port()
    port = start_proxy(procs, Nobody)
    statuses = concurrently(5, lambda i: kp.request(port, "/hello").status)
    assert statuses == [502] * 5
    # HTTP/2 into the queue-proxy, no app behind it
    p = pod(app=False)
    r = h2client.get(p.qp_port, "/hello")
    assert r.status == 502, r


def test_idle_connections_close_after_the_idle_timeout(procs):
    app = App(procs)
    port = start_proxy(procs, app, idle_ms=int(700 * kp.SLOW))
    assert kp.request(port, "/hello").status == 200
    assert kp.request(port, "/slow/300").status == 200  # in use: the idle time starts after
    t0 = time.monotonic()
    kp.wait_until(lambda: app.events("closed"), 10, what="the idle connection closed")
    assert time.monotonic() - t0 >= 0.5 * kp.SLOW
    assert len(app.events("conn")) == 1
    # a new request opens a new connection
    assert kp.request(port, "/hello").status == 200
    assert len(app.events("conn")) == 2


def test_trailers_reach_an_http1_client_that_accepts_them(procs):
    app = App(procs)
    port = start_proxy(procs, app)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    data = read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b"\r\n0\r\ngrpc-status: 0\r\ngrpc-message: all good\r\nx-trailer: yes\r\n\r\n" in data, data
    # RFC 9113 §8.2.2: te passes to an HTTP/2 hop only as "trailers" (gRPC's)
    assert app.events("req")[0]["headers"].get("te") == "trailers"


def test_client_that_leaves_cancels_the_upstream_stream(procs):
    app = App(procs)
    port = start_proxy(procs, app)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    kp.wait_until(lambda: app.events("req"), 5, what="request at the app")
    s.close()
    kp.wait_until(lambda: app.events("reset"), 5, what="reset at the app")
    assert app.events("reset")[0]["code"] == 8  # CANCEL
    # the connection goes on serving
    assert kp.request(port, "/hello").status == 200
    assert len({e["conn"] for e in app.events("req")}) == 1


def test_upstream_reset_before_the_head_is_502_after_it_a_cut(procs):
    app = App(procs)
    port = start_proxy(procs, app)
    r = kp.request(port, "/rst-before")
    assert r.status == 502
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /rst-after HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b"partial body" in data
    assert not data.endswith(b"0\r\n\r\n"), data  # cut, not ended
    assert kp.request(port, "/hello").status == 200


def test_request_bodies_flow_up_whole(procs):
    app = App(procs)
    port = start_proxy(procs, app)
    body = os.urandom(1 << 20)
    r = kp.request(port, "/echo", "POST", body=body)
    assert r.status == 200 and r.body == body
    # a chunked upload (length not known ahead): the app gets it whole
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n")
    for i in range(0, len(body), 100000):
        piece = body[i:i + 100000]
        s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    data = read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert data.endswith(body)


def test_a_client_that_stops_reading_stalls_only_its_stream(procs):
    app = App(procs)
    port = start_proxy(procs, app)
    big = 64 << 20
    slow = socket.create_connection(("127.0.0.1", port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"GET /big/%d HTTP/1.1\r\nHost: x\r\n\r\n" % big)
    kp.wait_until(lambda: app.events("req"), 5, what="big request at the app")
    time.sleep(0.5 * kp.SLOW)
    # others on the same upstream connection are served meanwhile
    for _ in range(5):
        r = kp.request(port, "/hello")
        assert r.status == 200 and r.body == b"proto=HTTP/2 path=/hello\n"
    reqs = app.events("req")
    assert len({e["conn"] for e in reqs}) == 1, reqs
    # the stalled stream is held by flow control, not buffered whole
    assert not app.events("big_done")
    slow.close()
    kp.wait_until(lambda: app.events("reset"), 5, what="the stalled stream cancelled")


# --- the queue-proxy ---

def qp_with_app(pod, procs, **env):
    p = pod(app=False, **env)
    return p, App(procs, port=p.user_port)


def test_queue_proxy_sends_http1_as_http1(pod, procs):
    p, app = qp_with_app(pod, procs)
    r = p.get("/hello")
    assert r.status == 200 and r.body == b"proto=HTTP/1.1 path=/hello\n"
    assert [e["proto"] for e in app.events("req")] == ["HTTP/1.1"]


def probe(p):
    return p.get("/", headers={"User-Agent": "kube-probe/1.27", "K-Network-Probe": "queue"})


def test_readiness_detects_an_h2c_app(pod, procs):
    p, app = qp_with_app(
        pod, procs, ENABLE_HTTP2_AUTO_DETECTION="true",
        SERVING_READINESS_PROBE='{"httpGet":{"port":$USER_PORT,"path":"/healthz",'
                                '"httpHeaders":[{"name":"X-Probe","value":"yes"}]}}')
    r = probe(p)
    assert r.status == 200 and r.body == b"queue"
    reqs = app.events("req")
    upgrade = [e for e in reqs if e["method"] == "OPTIONS"]
    assert upgrade and upgrade[0]["proto"] == "HTTP/1.1"
    assert upgrade[0]["headers"]["upgrade"] == "h2c"
    gets = [e for e in reqs if e["method"] == "GET"]
    assert gets, reqs
    assert all(e["proto"] == "HTTP/2" and e["path"] == "/healthz" for e in gets), gets
    assert gets[0]["headers"]["user-agent"] == "Knative-Queue-Proxy-Probe"
    assert gets[0]["headers"]["x-probe"] == "yes"


def test_readiness_without_detection_probes_over_http1(pod, procs):
    p, app = qp_with_app(
        pod, procs, ENABLE_HTTP2_AUTO_DETECTION="false",
        SERVING_READINESS_PROBE='{"httpGet":{"port":$USER_PORT,"path":"/healthz"}}')
    r = probe(p)
    assert r.status == 200 and r.body == b"queue"
    reqs = app.events("req")
    assert reqs and all(e["proto"] == "HTTP/1.1" and e["method"] == "GET" for e in reqs), reqs


def test_readiness_detection_with_an_http1_app(pod, procs):
    # helloworld-like answers: OPTIONS 200 means ready at once (HTTP/1)
    p = pod(ENABLE_HTTP2_AUTO_DETECTION="true",
            SERVING_READINESS_PROBE='{"httpGet":{"port":$USER_PORT,"path":"/"}}')
    r = probe(p)
    assert r.status == 200 and r.body == b"queue"


def test_bad_auto_detection_value_stops_the_queue_proxy(procs):
    env = kp.knative_env(ENABLE_HTTP2_AUTO_DETECTION="maybe")
    qp = procs.start("queue-proxy", [kp.binary("queue-proxy")], env)
    assert qp.wait(10 * kp.SLOW) != 0
    assert "ENABLE_HTTP2_AUTO_DETECTION" in qp.stderr()


# --- HTTP/2 in: the queue-proxy sends it on as h2c ---

def test_queue_proxy_sends_http2_as_h2c(pod, procs):
    p, app = qp_with_app(pod, procs)
    r = h2client.get(p.qp_port, "/hello", authority="hello.default.example.com",
                     headers={"k-original-host": "orig.example.com", "x-thing": "1"})
    assert r.status == 200 and r.body == b"proto=HTTP/2 path=/hello\n", r
    r1 = p.get("/hello")
    assert r1.body == b"proto=HTTP/1.1 path=/hello\n"
    reqs = app.events("req")
    assert [e["proto"] for e in reqs] == ["HTTP/2", "HTTP/1.1"]
    h = reqs[0]["headers"]
    # K-Original-Host becomes the authority the app sees, and is removed
    assert h[":authority"] == "orig.example.com" and "k-original-host" not in h
    assert h["x-thing"] == "1" and h["x-forwarded-for"] == "127.0.0.1"


def test_trailers_reach_an_http2_client_through_the_queue_proxy(pod, procs):
    p, app = qp_with_app(pod, procs)
    r = h2client.get(p.qp_port, "/trailers", headers={"te": "trailers",
                                                        "content-type": "application/grpc"})
    assert r.status == 200 and r.body == b"\x00\x00\x00\x00\x02hi", r
    assert r.trailers == {"grpc-status": "0", "grpc-message": "all good", "x-trailer": "yes"}, r
    assert app.events("req")[0]["headers"]["te"] == "trailers"


def test_client_reset_cancels_the_app_stream_and_frees_the_slot(pod, procs):
    p, app = qp_with_app(pod, procs, CONTAINER_CONCURRENCY="1")
    c = h2client.H2Client(p.qp_port)
    try:
        sid = c.start("/hang")
        kp.wait_until(lambda: app.events("req"), 5, what="request at the app")
        c.reset(sid, 8)
        kp.wait_until(lambda: app.events("reset"), 5, what="the cancel at the app")
        assert app.events("reset")[0]["code"] == 8
        # the CC=1 slot is free again: the next stream is served
        r = c.wait(c.start("/hello"), 10 * kp.SLOW)
        assert r.status == 200 and r.body == b"proto=HTTP/2 path=/hello\n"
    finally:
        c.close()


def test_app_reset_reaches_the_http2_client(pod, procs):
    p, app = qp_with_app(pod, procs)
    r = h2client.get(p.qp_port, "/rst-before")
    assert r.status == 502, r
    c = h2client.H2Client(p.qp_port)
    try:
        r = c.wait(c.start("/rst-after"), 10 * kp.SLOW)
        assert r.status == 200 and r.body.startswith(b"partial body"), r
        assert r.reset is not None and not r.ended, r
        # the client's connection goes on
        r = c.wait(c.start("/hello"))
        assert r.status == 200
    finally:
        c.close()


def test_a_stalled_http2_reader_stalls_only_its_stream(pod, procs):
    p, app = qp_with_app(pod, procs)
    c = h2client.H2Client(p.qp_port)
    try:
        big = c.start("/big/%d" % (256 << 20), hold=True)
        c.wait_head(big)
        time.sleep(0.5 * kp.SLOW)
        for _ in range(3):
            r = c.wait(c.start("/hello"))
            assert r.status == 200 and r.body == b"proto=HTTP/2 path=/hello\n"
        reqs = app.events("req")
        assert len({e["conn"] for e in reqs}) == 1, reqs  # one app connection for all
        assert not app.events("big_done")
        held = len(c.results[big].body)
        assert held < (8 << 20), held
    finally:
        c.close()
    kp.wait_until(lambda: app.events("reset"), 5 * kp.SLOW, what="the held stream cancelled")


# --- through the activator ---

def h2app_config(log, h2c=False):
    rev = {"name": "h2-00001", "containerConcurrency": 0,
           "command": [PYTHON, H2APP, "--log", log]}
    if h2c:
        rev["ports"] = [{"name": "h2c", "containerPort": 8080}]
    return {
        "domain": "127.0.0.1.sslip.io",
        "autoscaler": {"initial-scale": "0", "allow-zero-initial-scale": "true"},
        "services": [{"name": "h2", "namespace": "default", "revisions": [rev],
                      "traffic": [{"revisionName": "h2-00001", "percent": 100}]}],
    }


H2HOST = "h2.default.127.0.0.1.sslip.io"


def pod_ports():
    """Activator args for local pods on ports of their own: other activators
    on this machine start pods from the default base too."""
    import random
    return ("--pod-port-base", str(random.randrange(21000, 32000, 10)))


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_activator_then_queue_proxy_keep_http2_to_the_app(activator_factory, procs):
    log = os.path.join(procs.tmpdir, "h2app-act.log")
    act = activator_factory(h2app_config(log), args=pod_ports())
    r = h2client.get(act.port, "/trailers", authority=H2HOST, timeout=30 * kp.SLOW,
                     headers={"te": "trailers"})
    assert r.status == 200 and r.body == b"\x00\x00\x00\x00\x02hi", r
    assert r.trailers.get("grpc-status") == "0" and r.trailers.get("grpc-message") == "all good"
    r = kp.request(act.port, "/hello", headers={"Host": H2HOST})
    assert r.status == 200 and r.body == b"proto=HTTP/1.1 path=/hello\n"
    reqs = [e for e in read_log(log) if e["ev"] == "req"]
    assert [(e["proto"], e["path"]) for e in reqs] == [("HTTP/2", "/trailers"),
                                                       ("HTTP/1.1", "/hello")]
    assert reqs[0]["headers"]["k-proxy-request"] == "activator"


def test_a_revision_port_named_h2c_gets_http2_to_the_app(activator_factory, procs):
    log = os.path.join(procs.tmpdir, "h2app-h2c.log")
    act = activator_factory(h2app_config(log, h2c=True), args=pod_ports())
    r = kp.request(act.port, "/hello", headers={"Host": H2HOST}, timeout=30)
    assert r.status == 200 and r.body == b"proto=HTTP/2 path=/hello\n", r
    s = socket.create_connection(("127.0.0.1", act.port))
    s.sendall(b"GET /trailers HTTP/1.1\r\nHost: " + H2HOST.encode() +
              b"\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    data = read_all(s)
    s.close()
    assert b"\r\n0\r\ngrpc-status: 0\r\n" in data, data
    reqs = [e for e in read_log(log) if e["ev"] == "req"]
    assert [e["proto"] for e in reqs] == ["HTTP/2", "HTTP/2"], reqs


# --- gRPC (python3-grpcio) ---

GRPC_ECHO = os.path.join(kp.HERE, "grpc_echo.py")


def grpc_calls(port, authority=None):
    """Unary, an error status, and a bidi stream whose replies come one by
    one before the next request is sent."""
    import queue
    import grpc
    opts = [("grpc.default_authority", authority)] if authority else []
    ch = grpc.insecure_channel("127.0.0.1:%d" % port, options=opts)
    try:
        assert ch.unary_unary("/kp.Echo/Unary")(b"hi", timeout=30 * kp.SLOW) == b"echo:hi"
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary("/kp.Echo/Unary")(b"fail", timeout=10 * kp.SLOW)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == "bad input: fail"
        q = queue.Queue()

        def requests():
            while True:
                m = q.get()
                if m is None:
                    return
                yield m
        replies = ch.stream_stream("/kp.Echo/Bidi")(requests(), timeout=10 * kp.SLOW)
        for i in range(3):
            q.put(b"m%d" % i)
            assert next(replies) == b"re:m%d" % i
        q.put(None)
        assert list(replies) == []
    finally:
        ch.close()


def test_grpc_through_the_queue_proxy(pod, procs):
    import grpc
    p = pod(app=False)
    log = os.path.join(procs.tmpdir, "grpc.log")
    app = procs.start("grpc_echo", [PYTHON, GRPC_ECHO, "--port", str(p.user_port), "--log", log], {})
    kp.wait_port(p.user_port, app)
    grpc_calls(p.qp_port)
    # a deadline cancels the call at the app too (RST_STREAM through the proxy)
    ch = grpc.insecure_channel("127.0.0.1:%d" % p.qp_port)
    with pytest.raises(grpc.RpcError) as err:
        ch.unary_unary("/kp.Echo/Wait")(b"", timeout=1.0 * kp.SLOW)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    ch.close()
    kp.wait_until(lambda: any(e["ev"] == "cancelled" for e in read_log(log)), 10,
                  what="the cancel at the app")


def test_grpc_through_the_activator_to_an_h2c_revision(activator_factory, procs):
    log = os.path.join(procs.tmpdir, "grpc-act.log")
    config = h2app_config(log, h2c=True)
    config["services"][0]["revisions"][0]["command"] = [PYTHON, GRPC_ECHO, "--log", log]
    act = activator_factory(config, args=pod_ports())
    grpc_calls(act.port, authority=H2HOST)
    calls = [e for e in read_log(log) if e["ev"] == "call"]
    assert [e["method"] for e in calls] == ["Unary", "Unary", "Bidi"]
