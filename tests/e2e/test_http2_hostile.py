"""Hostile HTTP/2 clients against the queue-proxy: each defence answers with
the expected GOAWAY or RST_STREAM code (or status), only the offending
connection or stream pays, and the process stays up and serving."""
import signal
import socket
import struct
import time

import h2raw
import kp
from h2raw import frame

MAX_STREAMS = 100  # common/http/h2.h, KP_H2_MAX_STREAMS


def ready(p):
    kp.wait_until(lambda: p.get("/", headers={"User-Agent": "kube-probe/1.30",
                                               "K-Network-Probe": "queue"}).status == 200, 10,
                  what="queue-proxy ready")


def still_serving(p):
    """The process is up and a new HTTP/2 connection gets its answer."""
    assert p.qp.poll() is None, p.qp.describe()
    c = h2raw.H2(p.qp_port)
    st = c.response(c.request(path="/"))
    c.close()
    assert (st.status, bytes(st.body)) == (200, b"Hello World!\n")


def connected(p, **kw):
    """A connection whose SETTINGS exchange is done (ours acknowledged)."""
    c = h2raw.H2(p.qp_port, **kw)
    assert c.read_until(lambda: h2raw.SETTINGS_MAX_CONCURRENT_STREAMS in c.server_settings, 5)
    c.ping(b"settled!")
    assert c.read_until(lambda: b"settled!" in c.pings, 5)  # our ACK went before it
    return c


def test_settings_advertised(pod):
    p = pod()
    ready(p)
    c = connected(p)
    assert c.server_settings[h2raw.SETTINGS_MAX_CONCURRENT_STREAMS] == MAX_STREAMS
    assert c.server_settings[h2raw.SETTINGS_INITIAL_WINDOW_SIZE] == 256 * 1024
    assert c.server_settings[h2raw.SETTINGS_MAX_HEADER_LIST_SIZE] == 64 * 1024
    c.close()


def test_streams_over_the_limit_are_refused(pod):
    p = pod()
    ready(p)
    c = connected(p)
    sids = [c.request(path="/?hang=1") for _ in range(MAX_STREAMS + 1)]
    extra = c.streams[sids[-1]]
    assert c.read_until(lambda: extra.reset is not None or c.goaways, 5)
    assert extra.reset == h2raw.REFUSED_STREAM or \
        (c.goaways and c.goaways[0][1] == h2raw.PROTOCOL_ERROR), (extra.reset, c.goaways)
    c.close()
    still_serving(p)


def test_header_list_too_large_gets_431_and_the_connection_stays(pod):
    p = pod()
    ready(p)
    c = connected(p)
    big = [("x-big-%d" % i, "v" * 4000) for i in range(20)]  # 80 KB > 64 KiB
    st = c.response(c.request(path="/", headers=big))
    assert st.status == 431, st.__dict__
    many = [("x-many-%d" % i, "v") for i in range(150)]  # over 100 fields
    st = c.response(c.request(path="/", headers=many))
    assert st.status == 431, st.__dict__
    st = c.response(c.request(path="/"))
    assert st.status == 200
    assert not c.goaways
    c.close()


def test_one_field_over_the_hpack_limit_is_a_compression_error(pod):
    p = pod()
    ready(p)
    c = connected(p)
    sid = c.request(path="/", headers=[("x-huge", "v" * 70000)])
    assert c.read_until(lambda: c.goaways or c.streams[sid].done, 5)
    assert c.goaways and c.goaways[0][1] == h2raw.COMPRESSION_ERROR or \
        c.streams[sid].status == 431, (c.goaways, c.streams[sid].__dict__)
    c.close()
    still_serving(p)


def test_continuation_flood_closes_the_connection(pod):
    p = pod()
    ready(p)
    c = connected(p)
    block = c.header_block("GET", "/", [("x-a", "b")])
    out = frame(h2raw.HEADERS, h2raw.END_STREAM, 1, block)
    out += b"".join(frame(h2raw.CONTINUATION, 0, 1, b"") for _ in range(50))
    c.send(out)
    assert c.wait_closed(5)
    c.close()
    still_serving(p)


def test_rapid_reset_gets_enhance_your_calm(pod):
    p = pod()
    ready(p)
    p.app_reset()
    c = connected(p)
    burst = b""
    for i in range(1000):
        sid = 1 + 2 * i
        burst += frame(h2raw.HEADERS, h2raw.END_HEADERS | h2raw.END_STREAM, sid,
                       c.header_block("GET", "/?sleep=100"))
        burst += frame(h2raw.RST_STREAM, 0, sid, struct.pack(">I", h2raw.CANCEL))
    try:
        c.send(burst)
    except OSError:
        pass  # closed on us midway: fine
    assert c.read_until(lambda: c.goaways, 5), "no GOAWAY"
    assert c.goaways[-1][1] == h2raw.ENHANCE_YOUR_CALM, c.goaways
    assert c.wait_closed(5)
    c.close()
    time.sleep(0.3)
    assert p.app_stats()["requests"] <= 250, p.app_stats()
    still_serving(p)


def test_resets_of_answered_streams_spend_no_reset_budget(pod):
    """Some clients send RST_STREAM after every complete response. Those
    resets cost the server nothing, so a busy, well-behaved client doing so
    well past the reset budget (200 at once, 100 per second) is served."""
    p = pod()
    ready(p)
    c = connected(p)
    for _ in range(20):
        sids = [c.request("GET", "/") for _ in range(20)]
        for sid in sids:
            assert c.response(sid).status == 200
        c.send(b"".join(frame(h2raw.RST_STREAM, 0, sid, struct.pack(">I", h2raw.CANCEL))
                        for sid in sids))
    sid = c.request("GET", "/")
    assert c.response(sid).status == 200
    assert not c.goaways and not c.closed, c.goaways
    c.close()


def test_settings_flood_gets_enhance_your_calm(pod):
    p = pod()
    ready(p)
    c = connected(p)
    c.send(b"".join(c.settings_frame({}) for _ in range(300)))
    assert c.read_until(lambda: c.goaways, 5)
    assert c.goaways[-1][1] == h2raw.ENHANCE_YOUR_CALM, c.goaways
    assert c.wait_closed(5)
    still_serving(p)


def test_ping_flood_gets_enhance_your_calm_even_unread(pod):
    p = pod()
    ready(p)
    c = connected(p)
    try:
        c.send(b"".join(frame(h2raw.PING, 0, 0, b"%08d" % i) for i in range(5000)))
    except OSError:
        pass
    assert c.read_until(lambda: c.goaways or c.closed, 5)
    assert not c.goaways or c.goaways[-1][1] == h2raw.ENHANCE_YOUR_CALM, c.goaways
    assert c.wait_closed(5)
    still_serving(p)


def test_oversized_frame_is_a_frame_size_error(pod):
    p = pod()
    ready(p)
    c = connected(p)
    sid = c.request("POST", "/", body=b"", end=False)
    c.send(frame(h2raw.DATA, 0, sid, b"x" * 20000))
    assert c.read_until(lambda: c.goaways, 5)
    assert c.goaways[-1][1] == h2raw.FRAME_SIZE_ERROR, c.goaways
    assert c.wait_closed(5)
    still_serving(p)


def test_zero_window_stall_resets_the_stream(pod):
    p = pod(KP_HTTP_STALL_TIMEOUT_MS="500")
    ready(p)
    c = connected(p, window=65535, auto_window=False)
    c.window_update(0, 1 << 30)
    sid = c.request(path="/?bytes=%d" % (4 << 20))
    st = c.streams[sid]
    assert c.read_until(lambda: st.reset is not None, 5), st.__dict__
    assert st.reset == h2raw.CANCEL
    assert len(st.body) == 65535
    kp.wait_until(lambda: p.app_stats()["in_flight"] == 0, 5, what="the app's request ended")
    # the connection itself goes on
    ok = c.streams[c.request(path="/")]
    c.auto_window = True
    c.window_update(ok.sid, 1 << 20)
    assert c.response(ok.sid).status == 200
    c.close()


def test_connection_specific_and_malformed_fields_are_stream_errors(pod):
    p = pod()
    ready(p)
    c = connected(p)
    for hs in ([("connection", "keep-alive")], [("te", "gzip")], [("transfer-encoding", "chunked")],
               [("upgrade", "websocket")]):
        st = c.response(c.request(path="/", headers=hs))
        assert st.reset == h2raw.PROTOCOL_ERROR or st.status == 400, (hs, st.__dict__)
    # uppercase names are malformed in HTTP/2 (RFC 9113 §8.2.1)
    sid = c.next_sid
    c.next_sid += 2
    c.streams[sid] = h2raw.Stream(sid)
    block = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                          (":authority", "x"), ("X-Upper", "1")])
    c.send(frame(h2raw.HEADERS, h2raw.END_HEADERS | h2raw.END_STREAM, sid, block))
    st = c.response(sid)
    assert st.reset == h2raw.PROTOCOL_ERROR or st.status == 400, st.__dict__
    # te: trailers is fine, and so is the connection
    st = c.response(c.request(path="/", headers=[("te", "trailers")]))
    assert st.status == 200
    # no refused stream is left counted as in flight: the drain ends at once
    p.qp.signal(signal.SIGTERM)
    assert p.qp.wait(5 * kp.SLOW) == 0
    c.close()


def test_host_differing_from_authority_and_connect_are_refused(pod):
    p = pod()
    ready(p)
    c = connected(p)
    st = c.response(c.request(path="/", authority="a.example", headers=[("host", "b.example")]))
    assert st.status == 400, st.__dict__
    assert b"Host differs from :authority" in bytes(st.body)
    sid = c.next_sid
    c.next_sid += 2
    c.streams[sid] = h2raw.Stream(sid)
    c.send(frame(h2raw.HEADERS, h2raw.END_HEADERS, sid,
                 c.enc.encode([(":method", "CONNECT"), (":authority", "x.example:443")])))
    st = c.response(sid)
    assert st.status == 501 or st.reset is not None, st.__dict__
    st = c.response(c.request(path="/"))
    assert st.status == 200
    c.close()


def test_header_block_left_open_and_silent_connection_time_out(pod):
    p = pod(KP_HTTP_HEADER_TIMEOUT_MS="500")
    ready(p)
    c = connected(p)
    c.send(frame(h2raw.HEADERS, h2raw.END_STREAM, 1, c.header_block("GET", "/")))
    assert c.wait_closed(5)
    assert c.goaways and c.goaways[-1][1] == h2raw.ENHANCE_YOUR_CALM, c.goaways
    # a connection that sends its preface and then nothing is closed too
    s = socket.create_connection(("127.0.0.1", p.qp_port), timeout=5 * kp.SLOW)
    s.sendall(h2raw.PREFACE + h2raw.H2.settings_frame({}))
    start = time.monotonic()
    while s.recv(4096):
        pass
    assert time.monotonic() - start < 4 * kp.SLOW
    s.close()
    still_serving(p)


def test_settings_never_acknowledged_is_a_settings_timeout(pod):
    p = pod(KP_HTTP_HEADER_TIMEOUT_MS="500")
    ready(p)
    c = h2raw.H2(p.qp_port, ack_settings=False)
    assert c.wait_closed(5)
    assert c.goaways and c.goaways[-1][1] == h2raw.SETTINGS_TIMEOUT, c.goaways
    still_serving(p)
