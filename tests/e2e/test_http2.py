"""HTTP/2 cleartext (h2c) on the queue-proxy's and the app's listeners: prior
knowledge and Upgrade: h2c next to HTTP/1.1 on the same port, each stream
carried like an HTTP/1 request (breaker, queue, timeouts, stats, probes),
flow control as backpressure, big bodies with bounded memory, and the drain's
GOAWAY."""
import signal
import socket
import subprocess
import time

import h2raw
import kp
from test_metrics import get_stat

GIB = 1 << 30
SIZE = (64 << 20) if kp.ASAN else GIB
RSS_LIMIT_KIB = 16 * 1024


def curl(*args, stdin=None, timeout=60):
    return subprocess.run(["curl", "-sS", "-y", "5", "-Y", "1", *args], stdin=stdin,
                          capture_output=True, timeout=timeout * kp.SLOW)


def curl_h2(url, *args):
    """(http_version, status, body) of one curl --http2-prior-knowledge request."""
    r = curl("--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", *args, url)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition(b"\n")
    version, code = tail.decode().split()
    return version, int(code), body


def ready(p):
    kp.wait_until(lambda: p.get("/", headers={"User-Agent": "kube-probe/1.30",
                                               "K-Network-Probe": "queue"}).status == 200, 10,
                  what="queue-proxy ready")


def test_prior_knowledge_and_http1_on_the_same_port(pod):
    p = pod()
    ready(p)
    assert curl_h2(p.url("/")) == ("2", 200, b"Hello World!\n")
    # the request log and the app see the request as usual; HTTP/1.1 still works
    r = p.get("/")
    assert (r.status, r.body) == (200, b"Hello World!\n")
    version, status, body = curl_h2(p.url("/?bytes=300000"))
    assert (version, status, len(body)) == ("2", 200, 300000)
    # the app itself speaks h2c on its own listener (same engine)
    assert curl_h2("http://127.0.0.1:%d/" % p.user_port) == ("2", 200, b"Hello World!\n")


def test_upgrade_h2c_then_plain_http1_with_a_body(pod):
    p = pod()
    ready(p)
    r = curl("-v", "--http2", p.url("/"))
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "HTTP/1.1 101 Switching Protocols" in err, err
    assert "< HTTP/2 200" in err, err
    assert r.stdout == b"Hello World!\n"
    # with a body the upgrade is not taken: a plain HTTP/1.1 answer, no tunnel
    s = socket.create_connection(("127.0.0.1", p.qp_port), timeout=5 * kp.SLOW)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
              b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
              b"Content-Length: 5\r\n\r\nhello")
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 200 OK\r\n"), got
    assert got.endswith(b"received 5 bytes\n"), got


def test_upgrade_with_bad_settings_is_served_as_http1(pod):
    p = pod()
    ready(p)
    s = socket.create_connection(("127.0.0.1", p.qp_port), timeout=5 * kp.SLOW)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
              b"Upgrade: h2c\r\nHTTP2-Settings: AAM\r\n\r\n")  # not whole entries
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"Hello World!\n"), got


def test_preface_split_across_reads_and_broken_preface(pod):
    p = pod()
    ready(p)
    c = h2raw.H2(p.qp_port, preface=False)
    for piece in (h2raw.PREFACE[:5], h2raw.PREFACE[5:17], h2raw.PREFACE[17:]):
        c.send(piece)
        time.sleep(0.05)
    c.send(c.settings_frame({}))
    sid = c.request(path="/")
    st = c.response(sid)
    assert (st.status, bytes(st.body)) == (200, b"Hello World!\n")
    c.close()
    # a preface that breaks off is not HTTP/1 either: the connection closes
    s = socket.create_connection(("127.0.0.1", p.qp_port), timeout=5 * kp.SLOW)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    assert s.recv(4096) == b""
    s.close()


def test_probes_over_http2(pod):
    p = pod()
    ready(p)
    c = h2raw.H2(p.qp_port)
    sid = c.request(headers=[("user-agent", "kube-probe/1.30"), ("k-network-probe", "queue")])
    st = c.response(sid)
    assert (st.status, bytes(st.body)) == (200, b"queue")
    sid = c.request(headers=[("k-network-probe", "probe"), ("k-network-hash", "abc")])
    st = c.response(sid)
    assert st.status == 200, st.__dict__
    assert st.header("k-network-hash") == "abc", st.headers
    c.close()


def test_cc1_second_stream_on_the_connection_waits(pod):
    p = pod(CONTAINER_CONCURRENCY="1")
    ready(p)
    p.app_reset()
    c = h2raw.H2(p.qp_port)
    a = c.request(path="/?sleep=400")
    b = c.request(path="/?sleep=400")
    done = {}

    def both():
        for sid in (a, b):
            st = c.streams[sid]
            if st.done and sid not in done:
                done[sid] = time.monotonic()
        return len(done) == 2
    assert c.read_until(both, 10)
    assert c.streams[a].status == 200 and c.streams[b].status == 200
    assert abs(done[b] - done[a]) >= 0.3, done  # one after the other
    assert p.app_stats()["max_in_flight"] == 1
    c.close()


def test_queue_full_503_on_one_stream_while_others_go_on(pod):
    # CC=1: one in flight, ten queued (Knative's 10 x CC); the rest are refused
    p = pod(CONTAINER_CONCURRENCY="1")
    ready(p)
    c = h2raw.H2(p.qp_port)
    sids = [c.request(path="/?sleep=150") for _ in range(14)]
    assert c.read_until(lambda: all(c.streams[s].done for s in sids), 15)
    statuses = [c.streams[s].status for s in sids]
    assert statuses.count(503) == 3, statuses
    assert statuses.count(200) == 11, statuses
    full = [c.streams[s] for s in sids if c.streams[s].status == 503]
    assert bytes(full[0].body).rstrip(b"\n") == b"pending request queue full"
    c.close()


def test_timeouts_504_before_headers_and_reset_after(pod):
    p = pod(REVISION_TIMEOUT_SECONDS="1")
    ready(p)
    c = h2raw.H2(p.qp_port)
    slow = c.request(path="/?sleep=3000")
    drip = c.request(path="/?drip=500")  # 500 bytes, one per 10 ms: 5 s
    st = c.response(slow, 10)
    assert st.status == 504, st.__dict__
    st = c.response(drip, 10)
    assert st.status == 200 and st.reset == h2raw.CANCEL, st.__dict__
    assert 0 < len(st.body) < 500
    # the connection survives both
    ok = c.request(path="/")
    assert c.response(ok).status == 200
    assert not c.goaways
    c.close()


def test_client_reset_frees_the_slot(pod):
    p = pod(CONTAINER_CONCURRENCY="1")
    ready(p)
    c = h2raw.H2(p.qp_port)
    hung = c.request(path="/?hang=1")
    kp.wait_until(lambda: kp.request(p.user_port, "/stats").body.count(b'"in_flight":1'), 5,
                  what="the app holding the request")
    c.rst(hung, h2raw.CANCEL)
    nxt = c.request(path="/")
    st = c.response(nxt, 5)
    assert (st.status, bytes(st.body)) == (200, b"Hello World!\n")
    kp.wait_until(lambda: p.app_stats()["in_flight"] == 0, 5, what="the app seeing the cancel")
    c.close()


def test_stream_stats_match_http1(pod):
    """test_metrics.test_stat_under_known_load's load, as streams: one
    connection with 3 streams and one with 2 activator-proxied streams, each
    request 200 ms, for 3 s: concurrency 5 (2 proxied), 25 requests/s (10
    proxied), the figures HTTP/1 gives."""
    p = pod()
    ready(p)

    def h2load(streams, *extra):
        return kp.run_in_thread(subprocess.run, ["h2load", "-c", "1", "-m", str(streams), "-D", "3",
                                                 *extra, p.url("/?sleep=200")],
                                capture_output=True, text=True, timeout=30 * kp.SLOW)
    plain = h2load(3)
    proxied = h2load(2, "-H", "K-Proxy-Request: activator")
    time.sleep(2.2)
    s = get_stat(p)
    for run in (plain, proxied):
        out = run(30).stdout
        assert "0 failed" in out and "0 errored" in out, out
    assert abs(s["average_concurrent_requests"] - 5) <= 1.5, s
    assert abs(s["average_proxied_concurrent_requests"] - 2) <= 1.5, s
    assert 15 <= s["request_count"] <= 35, s
    assert 5 <= s["proxied_request_count"] <= 15, s


def test_body_without_length_streams_chunked_to_http1_app(pod):
    """An HTTP/2 request body without content-length goes to the HTTP/1.1 app
    chunked, piece by piece."""
    p = pod()
    ready(p)
    c = h2raw.H2(p.qp_port)
    sid = c.request("POST", "/", headers=[("content-type", "application/octet-stream")],
                    body=b"", end=False)
    c.send_body(sid, b"y" * 1000000 + b"z")
    st = c.response(sid, 10)
    assert (st.status, bytes(st.body)) == (200, b"received 1000001 bytes\n"), st.__dict__
    c.close()


def test_stalled_reader_stalls_only_its_stream(pod):
    p = pod()
    ready(p)
    c = h2raw.H2(p.qp_port, window=65535, auto_window=False)
    big = c.request(path="/?bytes=%d" % (200 << 20))
    # the stream's window (64 KiB) fills; the connection's stays open
    assert c.read_until(lambda: len(c.streams[big].body) >= 65535, 10)
    c.window_update(0, 1 << 30)
    for _ in range(3):
        sid = c.request(path="/")
        st = c.response(sid, 5)
        assert (st.status, bytes(st.body)) == (200, b"Hello World!\n")
    time.sleep(0.5)
    assert len(c.streams[big].body) == 65535
    if not kp.ASAN:  # the sanitizers' own memory would swamp the figure
        assert p.qp.vm_hwm_kib() < RSS_LIMIT_KIB, p.qp.vm_hwm_kib()
    # reading again, the stream goes on where it stopped
    c.window_update(big, 1 << 20)
    assert c.read_until(lambda: len(c.streams[big].body) >= 65535 + (1 << 20), 10)
    c.close()


def test_big_upload_and_download_over_one_stream_with_bounded_memory(pod):
    p = pod()
    ready(p)
    gen = subprocess.Popen(["head", "-c", str(SIZE), "/dev/zero"], stdout=subprocess.PIPE)
    r = curl("--http2-prior-knowledge", "-X", "POST", "-T", "-", p.url("/"), stdin=gen.stdout,
             timeout=300)
    gen.wait()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"received %d bytes\n" % SIZE
    r = subprocess.run("curl -sS -y 5 -Y 1 --http2-prior-knowledge '%s' | wc -c"
                       % p.url("/?bytes=%d" % SIZE), shell=True, capture_output=True,
                       timeout=300 * kp.SLOW)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == SIZE
    if not kp.ASAN:
        hwm = p.qp.vm_hwm_kib()
        assert hwm < RSS_LIMIT_KIB, "queue-proxy peak RSS %d KiB" % hwm


def test_drain_sends_goaway_and_finishes_streams(pod):
    p = pod()
    ready(p)
    c = h2raw.H2(p.qp_port)
    warm = c.request(path="/")
    assert c.response(warm).status == 200
    slow = c.request(path="/?sleep=1500")
    time.sleep(0.2)
    p.qp.signal(signal.SIGTERM)
    assert c.read_until(lambda: len(c.goaways) >= 2, 10), c.goaways
    assert c.goaways[0] == ((1 << 31) - 1, h2raw.NO_ERROR), c.goaways
    assert c.goaways[1] == (slow, h2raw.NO_ERROR), c.goaways
    st = c.response(slow, 10)
    assert st.status == 200 and st.reset is None, st.__dict__
    assert c.wait_closed(5)
    assert p.qp.wait(10 * kp.SLOW) == 0


# --- the activator ---

def own_pods():
    """--pod-port-base of this test's own, so that pods of activators run
    elsewhere on the host are never reached by mistake."""
    from test_local_pods import port_base
    return ("--pod-port-base", str(port_base()))

def test_activator_cold_start_over_http2_on_both_ports(activator_factory):
    from activator_harness import HOST, free_port, helloworld_config
    h2c_port = free_port()
    act = activator_factory(helloworld_config(),
                            args=("--listen-h2c", "127.0.0.1:%d" % h2c_port) + own_pods())
    kp.wait_port(h2c_port)
    # from zero: the stream is held while the pod starts, then answered
    assert curl_h2(act.url("/"), "-H", "Host: " + HOST) == ("2", 200, b"Hello World!\n")
    assert act.revision_status("helloworld-go-00001")["cold_starts"] == 1
    h2c_url = "http://127.0.0.1:%d/" % h2c_port
    assert curl_h2(h2c_url, "-H", "Host: " + HOST) == ("2", 200, b"Hello World!\n")
    # HTTP/1.1 on the h2c port too, as Knative's 8013 serves it
    r = curl("-H", "Host: " + HOST, h2c_url)
    assert r.stdout == b"Hello World!\n", r.stderr
    # routing by :authority, and by Host when there is no :authority
    c = h2raw.H2(h2c_port)
    st = c.response(c.request(authority="candidate-" + HOST), 30)
    assert (st.status, bytes(st.body)) == (200, b"Hello Knative!\n")
    st = c.response(c.request(authority=False, headers=[("host", HOST)]))
    assert (st.status, bytes(st.body)) == (200, b"Hello World!\n")
    st = c.response(c.request(authority="nobody.example"))
    assert st.status == 404
    c.close()


def test_activator_held_streams_count_against_its_bounds(activator_factory):
    from activator_harness import HOST, helloworld_config
    act = activator_factory(helloworld_config(env={"STARTUP_DELAY_MS": "1500"}),
                            args=("--max-requests", "3") + own_pods())
    c = h2raw.H2(act.port)
    sids = [c.request(authority=HOST) for _ in range(5)]
    assert c.read_until(lambda: all(c.streams[s].done for s in sids), 30)
    statuses = sorted(c.streams[s].status for s in sids)
    assert statuses == [200, 200, 200, 503, 503], statuses
    refused = [c.streams[s] for s in sids if c.streams[s].status == 503]
    assert bytes(refused[0].body) == b"activator at capacity\n"
    c.close()


def test_activator_drain_sends_goaway_and_finishes_streams(activator_factory):
    from activator_harness import HOST, helloworld_config
    act = activator_factory(helloworld_config(), args=own_pods())
    c = h2raw.H2(act.port)
    st = c.response(c.request(authority=HOST), 30)
    assert st.status == 200
    slow = c.request(authority=HOST, path="/?sleep=1000")
    time.sleep(0.2)
    act.proc.send_signal(signal.SIGTERM)
    assert c.read_until(lambda: len(c.goaways) >= 2, 10), c.goaways
    assert c.goaways[0] == ((1 << 31) - 1, h2raw.NO_ERROR), c.goaways
    assert c.goaways[1] == (slow, h2raw.NO_ERROR), c.goaways
    st = c.response(slow, 10)
    assert (st.status, st.reset) == (200, None), st.__dict__
    assert act.proc.wait(15 * kp.SLOW) == 0


def test_http1_app_trailers_are_dropped_and_the_response_ends_cleanly(pod):
    """An HTTP/1.1 app's chunked trailers are not forwarded (HTTP/1 trailers
    are not carried); the body is, the response ends cleanly, and the app's
    kept-alive connection serves the next one. The client speaks HTTP/1.1:
    an HTTP/2 request goes to the app as h2c, as Knative's queue-proxy
    sends it (test_http2_upstream.py)."""
    import threading
    p = pod(app=False)
    served = []
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", p.user_port))
    lsock.listen(8)

    def app():
        conn, _ = lsock.accept()
        buf = b""
        while len(served) < 2:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            served.append(head)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n"
                         b"\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\nx-t: 1\r\n\r\n")
        conn.close()
    t = threading.Thread(target=app, daemon=True)
    t.start()
    try:
        c = socket.create_connection(("127.0.0.1", p.qp_port), timeout=10 * kp.SLOW)
        for _ in range(2):
            c.sendall(b"GET /t HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                chunk = c.recv(65536)
                assert chunk, data
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            assert body == b"5\r\nhello\r\n0\r\n\r\n", body  # no trailer fields
            assert b"\r\ntrailer:" not in head.lower()
        c.close()
    finally:
        lsock.close()
    t.join(5)
    assert len(served) == 2  # one connection, kept alive
    assert b"\r\nte:" not in served[0].lower() and b"host: x" in served[0].lower(), served[0]


def test_activator_held_upload_stalls_only_its_own_stream(activator_factory):
    """A stream held at a cold start is not read: its window runs out and the
    client waits, while another stream on the same connection is served."""
    from activator_harness import HOST, helloworld_config
    # long enough a cold start for the checks below to run inside it
    act = activator_factory(helloworld_config(env={"STARTUP_DELAY_MS": "%d" % (3000 * kp.SLOW)}),
                            args=own_pods())
    c = h2raw.H2(act.port)
    st = c.response(c.request(authority="candidate-" + HOST), 30)  # warms 00002 only
    assert bytes(st.body) == b"Hello Knative!\n"
    body = b"u" * (2 << 20)
    held = c.request("POST", "/", body=b"", end=False, authority=HOST)
    sent = 0
    while c.read_until(lambda: min(c.conn_window, c.stream_windows[held]) > 0, 0.3):
        n = min(16384, c.conn_window, c.stream_windows[held])
        c.send(h2raw.frame(h2raw.DATA, 0, held, body[sent:sent + n]))
        c.conn_window -= n
        c.stream_windows[held] -= n
        sent += n
    assert 0 < sent <= 256 * 1024, sent  # its stream window, no more
    st = c.response(c.request(authority="candidate-" + HOST), 5)
    assert (st.status, bytes(st.body)) == (200, b"Hello Knative!\n")
    assert c.streams[held].status is None  # still held
    c.send_body(held, body[sent:], end=True, timeout=30)
    st = c.response(held, 30)
    assert (st.status, bytes(st.body)) == (200, b"received %d bytes\n" % len(body))
    c.close()
