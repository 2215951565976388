"""gRPC end to end (python3-grpcio against tests/e2e/grpcapp.py, an h2c app):
through the queue-proxy (client -> queue-proxy -> app, HTTP/2 both hops) and
through the activator (client -> activator -> queue-proxy -> app, the local
backend, the revision's port named h2c, from zero pods). Every method kind,
statuses and trailers passed through, deadlines and cancellation freeing the
breaker slot, containerConcurrency held over 100 streams of one connection,
and the queue's 503 seen as UNAVAILABLE.

The app is asked for its own counts (kp.Echo/Stats, straight to its port),
so "the app never saw more than CC at once" and "the cancel reached the app"
are what the app saw, not what a proxy says.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest

import activator_harness as ah
import kp

GRPCAPP = os.path.join(kp.HERE, "grpcapp.py")
SERVICE = "grpc-echo"
REVISION = "grpc-echo-00001"
AUTHORITY = "grpc-echo.default.127.0.0.1.sslip.io"
MAX_MESSAGE = 64 << 20
WINDOW = 65535  # HTTP/2's initial flow-control window (RFC 9113 §6.9.2)
# The revision field that names the app's port h2c, Knative's
# containers[0].ports[0].name (Revision.GetProtocol()).
H2C_REVISION = {"ports": [{"name": "h2c"}]}


# ---- processes ------------------------------------------------------------

def grpcapp_command():
    return [sys.executable, GRPCAPP]


def start_grpcapp(procs, port):
    app = procs.start("grpcapp", grpcapp_command(), {"PORT": port, "HOST": "127.0.0.1"})
    kp.wait_port(port, app)
    return app


def channel(port, authority=None):
    opts = [("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            # What the proxies answer, not what a retry made of it.
            ("grpc.enable_retries", 0)]
    if authority:
        opts.append(("grpc.default_authority", authority))
    return grpc.insecure_channel("127.0.0.1:%d" % port, options=opts)


def method(ch, name, kind="unary_unary"):
    return getattr(ch, kind)("/kp.Echo/" + name)


def app_stats(app_port):
    with channel(app_port) as ch:
        return json.loads(method(ch, "Stats")(b"", timeout=5 * kp.SLOW))


def app_reset(app_port):
    with channel(app_port) as ch:
        method(ch, "ResetStats")(b"", timeout=5 * kp.SLOW)


def wait_app_idle(app_port, timeout=5):
    return kp.wait_until(lambda: (lambda s: s if s["in_flight"] == 0 else None)(
        app_stats(app_port)), timeout, what="the app to have no call in flight")


def curl_h2c(port, path="/"):
    """'<http version> <status>' of one GET with HTTP/2 prior knowledge, or
    curl's error."""
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                        "-m", str(5 * kp.SLOW), "-w", "%{http_version} %{http_code}",
                        "http://127.0.0.1:%d%s" % (port, path)],
                       capture_output=True, text=True, timeout=30 * kp.SLOW)
    return r.stdout.strip() if r.returncode == 0 else "curl exit %d: %s" % (
        r.returncode, r.stderr.strip()[-200:])


# ---- the two ways in ------------------------------------------------------

def tcp_probe():
    # grpcapp answers only h2c with prior knowledge: an HTTP/1.1 GET probe
    # would never see it ready, a TCP connect does.
    return '{"tcpSocket":{"port":$USER_PORT,"host":"127.0.0.1"}}'


def activator_config(cc):
    rev = ah.revision(REVISION, "grpc", cc=cc)
    rev["command"] = grpcapp_command()
    rev.update(H2C_REVISION)
    return {"domain": "127.0.0.1.sslip.io",
            # One pod at most: the app counts it reports are the whole story.
            "autoscaler": {"initial-scale": "0", "allow-zero-initial-scale": "true",
                           "max-scale": "1"},
            "services": [{"name": SERVICE, "namespace": "default", "revisions": [rev],
                          "traffic": [{"revisionName": REVISION, "percent": 100}]}]}


def pod_port_base():
    """A free range of pod ports of this test's own: activators run by
    other tests at the same time start at the default 20000, and a pod
    port one of them takes between our check and our app's bind would
    send our calls to their app."""
    for _ in range(100):
        base = random.randrange(22000, 32000, 50)
        if all(bindable(p) for p in range(base, base + 25)):
            return base
    raise AssertionError("no free range of pod ports")


def bindable(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


class ViaQueueProxy:
    def __init__(self, procs, cc):
        self.pod = kp.Pod(procs, app=False, CONTAINER_CONCURRENCY=str(cc),
                          SERVING_READINESS_PROBE=tcp_probe())
        self.app = start_grpcapp(procs, self.pod.user_port)
        self.port = self.pod.qp_port

    def channel(self):
        return channel(self.port)

    def app_port(self):
        return self.pod.user_port


class ViaActivator:
    def __init__(self, activator_factory, cc, h2c_port=False):
        """h2c_port: call on the activator's second traffic port
        (--listen-h2c, Knative's 8013) instead of --listen."""
        args = ("--pod-port-base", str(pod_port_base()))
        if h2c_port:
            self.port = kp.free_port()
            args += ("--listen-h2c", "127.0.0.1:%d" % self.port)
        self.act = activator_factory(activator_config(cc), args)
        if not h2c_port:
            self.port = self.act.port

    def channel(self):
        return channel(self.port, AUTHORITY)

    def pods(self):
        return [l for l in self.act.log_lines() if l.get("message") == "pod started"]

    def app_port(self):
        """The app of the one pod (started by the first call)."""
        pods = self.pods()
        assert len(pods) == 1, pods
        return int(pods[0]["app_port"])


@pytest.fixture(params=["queue-proxy", "activator"])
def via(request, procs, activator_factory):
    """via(cc) -> a way in (ViaQueueProxy or ViaActivator) at that
    containerConcurrency."""
    def make(cc=10):
        if request.param == "queue-proxy":
            return ViaQueueProxy(procs, cc)
        return ViaActivator(activator_factory, cc)
    return make


# ---- the app itself (no proxy): the ground the other tests stand on --------

def test_grpcapp_serves_every_method_kind_over_h2c(procs):
    port = kp.free_port()
    start_grpcapp(procs, port)
    assert curl_h2c(port, "/kp.Echo/Unary").startswith("2 ")
    with channel(port) as ch:
        check_method_kinds(ch)
        check_status_passes(ch)
    assert app_stats(port)["in_flight"] == 0


def test_grpcapp_counts_calls_in_flight_and_cancellations(procs):
    port = kp.free_port()
    start_grpcapp(procs, port)
    with channel(port) as ch:
        futs = [method(ch, "Slow").future(b'{"ms": 600}') for _ in range(5)]
        kp.wait_until(lambda: app_stats(port)["in_flight"] == 5, 5, what="5 calls in flight")
        assert [f.result(10 * kp.SLOW) for f in futs] == [b"slept"] * 5
        stream = method(ch, "ServerStream", "unary_stream")(b'{"n": 1000, "delay_ms": 50}')
        assert next(stream) == b"0"
        stream.cancel()
    s = wait_app_idle(port)
    assert s["max_in_flight"] == 5 and s["cancelled"] == 1 and s["calls"] == 6, s


# ---- through the queue-proxy and through the activator ----------------------

def check_method_kinds(ch):
    # unary, with -bin metadata both ways and trailers past grpc-status
    blob = bytes(range(256))
    reply, call = method(ch, "Unary").with_call(
        b"ping", metadata=(("x-kp-blob-bin", blob), ("x-kp-text", "v1")), timeout=30 * kp.SLOW)
    assert reply == b"ping"
    initial = dict(call.initial_metadata())
    assert initial.get("x-kp-blob-bin") == blob and initial.get("x-kp-text") == "v1", initial
    trailing = dict(call.trailing_metadata())
    assert trailing.get("x-kp-trailer") == "done", trailing
    assert trailing.get("x-kp-trailer-bin") == b"\x00\x01\xfe\xff", trailing
    assert call.code() == grpc.StatusCode.OK

    # server streaming: 5 messages of 40 KiB, 200 KiB in all (> the window)
    msgs = list(method(ch, "ServerStream", "unary_stream")(
        json.dumps({"n": 5, "size": 40 << 10}).encode(), timeout=30 * kp.SLOW))
    assert msgs == [str(i).encode() * (40 << 10) for i in range(5)]

    # client streaming: 20 messages concatenated, 400 KiB up
    parts = [bytes([65 + i]) * (20 << 10) for i in range(20)]
    assert method(ch, "ClientStream", "stream_unary")(iter(parts), timeout=30 * kp.SLOW) == \
        b"".join(parts)

    # bidirectional, interleaved: each answer arrives before the next request is sent
    outbox = []
    ready = threading.Semaphore(0)

    def requests():
        for i in range(10):
            ready.acquire()
            msg = b"m%d" % i
            outbox.append(msg)
            yield msg

    ready.release()
    got = []
    for reply in method(ch, "Bidi", "stream_stream")(requests(), timeout=30 * kp.SLOW):
        got.append(reply)
        assert reply == b"echo:" + outbox[-1], (got, outbox)
        ready.release()
    assert got == [b"echo:m%d" % i for i in range(10)]

    # large unary messages, both ways (16 windows)
    big = os.urandom(16 * WINDOW)
    assert method(ch, "Unary")(big, timeout=30 * kp.SLOW) == big
    n = 3 << 20
    reply = method(ch, "Large")(json.dumps({"bytes": n}).encode(), timeout=30 * kp.SLOW)
    assert len(reply) == n and reply[:26] == b"abcdefghijklmnopqrstuvwxyz"


def check_status_passes(ch):
    # a Trailers-Only answer: no message, the status in the only HEADERS
    message = "precondition failed: caf\u00e9 100% sure"
    with pytest.raises(grpc.RpcError) as e:
        method(ch, "Fail")(json.dumps({"code": 9, "message": message}).encode(),
                           timeout=30 * kp.SLOW)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value
    assert e.value.details() == message
    # a status in trailers after messages
    got = []
    with pytest.raises(grpc.RpcError) as e:
        for m in method(ch, "ServerStream", "unary_stream")(
                b'{"n": 2, "code": 8, "message": "out of tokens"}', timeout=30 * kp.SLOW):
            got.append(m)
    assert got == [b"0", b"1"]
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
    assert e.value.details() == "out of tokens"


def test_every_method_kind_passes(via):
    w = via()
    with w.channel() as ch:
        check_method_kinds(ch)
    assert app_stats(w.app_port())["in_flight"] == 0


def test_non_zero_status_and_message_pass_through(via):
    w = via()
    with w.channel() as ch:
        check_status_passes(ch)


def test_deadline_exceeded_reaches_the_app_and_frees_the_slot(via):
    w = via(cc=1)
    with w.channel() as ch:
        method(ch, "Unary")(b"warm", timeout=30 * kp.SLOW)  # a pod, when from zero
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            method(ch, "Slow")(b'{"ms": 20000}', timeout=1.0 * kp.SLOW)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
        assert time.monotonic() - t0 < 10 * kp.SLOW
        s = wait_app_idle(w.app_port())
        assert s["cancelled"] >= 1, s
        # the one slot at CC=1 is free again
        assert method(ch, "Slow")(b'{"ms": 10}', timeout=5 * kp.SLOW) == b"slept"


def test_client_cancel_mid_stream_frees_the_slot(via):
    w = via(cc=1)
    with w.channel() as ch:
        stream = method(ch, "ServerStream", "unary_stream")(
            b'{"n": 100000, "delay_ms": 20}', timeout=60 * kp.SLOW)
        assert [next(stream), next(stream), next(stream)] == [b"0", b"1", b"2"]
        app_port = w.app_port()
        assert app_stats(app_port)["in_flight"] == 1
        stream.cancel()
        with pytest.raises(grpc.RpcError) as e:
            for _ in stream:
                pass
        assert e.value.code() == grpc.StatusCode.CANCELLED
        s = wait_app_idle(app_port)
        assert s["cancelled"] == 1, s
        # at CC=1 a leaked slot would hold this call in the queue past its deadline
        assert method(ch, "Unary")(b"next", timeout=5 * kp.SLOW) == b"next"
        assert list(method(ch, "ServerStream", "unary_stream")(b'{"n": 2}', timeout=5 * kp.SLOW)) \
            == [b"0", b"1"]


def test_100_streams_on_one_connection_at_cc10(via):
    """100 calls at once on one channel (one HTTP/2 connection), CC=10: they
    fit in the queue (10 x CC), so each completes, and the app never runs
    more than 10 at once."""
    w = via(cc=10)
    with w.channel() as ch:
        method(ch, "Unary")(b"warm", timeout=30 * kp.SLOW)
        app_port = w.app_port()
        app_reset(app_port)
        slow = method(ch, "Slow")
        futs = [slow.future(b'{"ms": 200}', timeout=60 * kp.SLOW) for _ in range(100)]
        results = []
        for f in futs:
            try:
                results.append(f.result())
            except grpc.RpcError as e:
                results.append((e.code(), e.details()))
    assert results == [b"slept"] * 100, [r for r in results if r != b"slept"][:5]
    s = app_stats(app_port)
    assert s["calls"] == 100 and s["cancelled"] == 0, s
    assert s["max_in_flight"] == 10, s


@pytest.mark.parametrize("way", ["queue-proxy", "activator"])
def test_a_busy_channel_loses_no_call(way, procs, activator_factory):
    """1 000 short calls, 20 at a time, on one channel: every one succeeds.
    A hop that takes the next one's stream ends (or its resets of finished
    streams) for an attack and cuts the connection fails calls here."""
    if way == "queue-proxy":
        w = ViaQueueProxy(procs, 0)
    else:
        w = ViaActivator(activator_factory, 0)
    n = 1000  # not scaled down under the sanitizers: the pace is the point
    with w.channel() as ch:
        method(ch, "Unary")(b"warm", timeout=30 * kp.SLOW)
        unary = method(ch, "Unary")
        failed = []
        for start in range(0, n, 20):
            futs = [unary.future(b"%d" % i, timeout=30 * kp.SLOW)
                    for i in range(start, min(start + 20, n))]
            for i, f in zip(range(start, n), futs):
                try:
                    assert f.result() == b"%d" % i
                except grpc.RpcError as e:
                    failed.append((i, e.code(), e.details()))
    assert not failed, "%d of %d calls failed, first: %s" % (len(failed), n, failed[:3])


def test_cold_start_from_zero_through_the_activator(activator_factory):
    w = ViaActivator(activator_factory, 10)
    assert w.act.revision_status(REVISION)["ready_pods"] == 0
    assert not w.pods()
    with w.channel() as ch:
        # the first call waits for the pod, then each kind works on it
        reply, call = method(ch, "Unary").with_call(b"first", timeout=60 * kp.SLOW)
        assert reply == b"first" and call.code() == grpc.StatusCode.OK
        assert len(w.pods()) == 1
        check_method_kinds(ch)


def test_cold_start_on_the_activator_h2c_port(activator_factory):
    w = ViaActivator(activator_factory, 10, h2c_port=True)
    assert w.act.revision_status(REVISION)["ready_pods"] == 0
    with w.channel() as ch:
        assert method(ch, "Unary")(b"first", timeout=60 * kp.SLOW) == b"first"
        check_status_passes(ch)


def test_drain_lets_a_grpc_stream_finish(procs):
    """SIGTERM to the queue-proxy with a server-streaming call half way:
    the call gets every message and OK, then the queue-proxy exits 0."""
    w = ViaQueueProxy(procs, 10)
    n = 20
    with w.channel() as ch:
        stream = method(ch, "ServerStream", "unary_stream")(
            json.dumps({"n": n, "delay_ms": 50}).encode(), timeout=30 * kp.SLOW)
        assert next(stream) == b"0"
        w.pod.qp.signal(signal.SIGTERM)
        assert list(stream) == [b"%d" % i for i in range(1, n)]
        assert stream.code() == grpc.StatusCode.OK
    assert w.pod.qp.wait(15 * kp.SLOW) == 0
    assert app_stats(w.app_port())["cancelled"] == 0


def test_past_the_queue_streams_get_unavailable(procs):
    """CC=1 takes 1 call and queues 10 more (10 x CC); the calls past that,
    on the same connection, end UNAVAILABLE, the gRPC face of the 503 an
    HTTP/1 request gets, while the others complete."""
    w = ViaQueueProxy(procs, 1)
    n = 16
    with w.channel() as ch:
        method(ch, "Unary")(b"warm", timeout=30 * kp.SLOW)
        app_reset(w.app_port())
        slow = method(ch, "Slow")
        ms = int(400 * kp.SLOW)
        futs = [slow.future(json.dumps({"ms": ms}).encode(), timeout=60 * kp.SLOW)
                for _ in range(n)]
        ok, unavailable, other = 0, [], []
        for f in futs:
            try:
                assert f.result() == b"slept"
                ok += 1
            except grpc.RpcError as e:
                (unavailable if e.code() == grpc.StatusCode.UNAVAILABLE else other).append(
                    (e.code(), e.details()))
    assert not other, other
    assert ok >= 11 and unavailable and ok + len(unavailable) == n, (ok, unavailable)
    assert all("503" in d for _, d in unavailable), unavailable
    s = app_stats(w.app_port())
    assert s["max_in_flight"] == 1 and s["calls"] == ok, s


def test_h2c_and_http1_share_the_queue_proxy_port(procs):
    """The queue-proxy's one serving port takes h2c (gRPC) and HTTP/1.1
    health checks side by side, as Knative's does."""
    w = ViaQueueProxy(procs, 10)
    with w.channel() as ch:
        assert method(ch, "Unary")(b"x", timeout=30 * kp.SLOW) == b"x"
        r = w.pod.get("/", headers={"User-Agent": "kube-probe/1.30", "K-Network-Probe": "queue"})
        kp.assert_text(r, 200, "queue")
        assert method(ch, "Unary")(b"y", timeout=30 * kp.SLOW) == b"y"
