"""Memory at scale: 10 000 requests held while their pod starts, and 10 000
idle keep-alive connections, each cost the activator at most 2 KiB of
resident memory (VmRSS delta / N), and the memory goes back when the crowd
leaves.

A connection owns a read buffer only while bytes wait in it, and a request
head's storage grows with what arrives (common/http/server.c, head.c)."""
import time

import pytest

import kp
from activator_harness import ASAN
from crowd import (NEVER_READY_CONFIG, NEVER_READY_REVISION, REQUEST, close_crowd, open_crowd,
                   raise_nofile, status_kib)
from loadclient import wait_until

N = 10_000
BUDGET_BYTES = 2048
# ASan gives every allocation redzones and keeps shadow memory (1/8 of what
# is mapped); its budget is scaled by what it measured on the same code.
ASAN_FACTOR = 2.5
UNKNOWN_HOST_REQUEST = b"GET / HTTP/1.1\r\nHost: nosuch.default.example.com\r\n\r\n"


def settled_rss_kib(pid):
    """The lowest of a few samples: the harness's own status calls come and go."""
    samples = []
    for _ in range(5):
        samples.append(status_kib(pid, "VmRSS"))
        time.sleep(0.1)
    return min(samples)


def budget():
    return BUDGET_BYTES * (ASAN_FACTOR if ASAN else 1)


def test_ten_thousand_held_requests_cost_at_most_2_kib_each(activator_factory):
    assert raise_nofile(N + 500), "ulimit -n below %d" % (N + 500)
    act = activator_factory(NEVER_READY_CONFIG, ["--max-held", str(N + 1)])
    # A first request starts the pod that never gets ready; its answer
    # (504 at the revision timeout) is never waited for.
    first = open_crowd(act.port, 1, REQUEST)
    act.wait_for(lambda: act.revision_status(NEVER_READY_REVISION)["held"] == 1, 10, "held 1")
    time.sleep(1)
    rss0 = settled_rss_kib(act.proc.pid)
    crowd = []
    try:
        crowd = open_crowd(act.port, N, REQUEST)
        act.wait_for(lambda: act.revision_status(NEVER_READY_REVISION)["held"] == N + 1, 60,
                     f"{N + 1} held")
        rss_held = settled_rss_kib(act.proc.pid)
        st = act.revision_status(NEVER_READY_REVISION)
        assert st["ready_pods"] == 0 and st["in_flight"] == 0, st
        # None was answered: each is still held, not refused.
        for s in crowd[::500]:
            s.setblocking(False)
            try:
                assert s.recv(1) == b"", "a held request was answered"
            except BlockingIOError:
                pass
    finally:
        close_crowd(crowd)
    act.wait_for(lambda: act.revision_status(NEVER_READY_REVISION)["held"] == 1, 30,
                 "the crowd's requests let go")
    time.sleep(6)  # the periodic trim (every 5 s) hands freed pages back
    rss_after = settled_rss_kib(act.proc.pid)
    close_crowd(first)
    per_request = (rss_held - rss0) * 1024 / N
    print(f"\n{N} held: VmRSS {rss0} -> {rss_held} KiB ({per_request:.0f} bytes each, "
          f"budget {budget():.0f}); after they left {rss_after} KiB")
    assert per_request <= budget(), (rss0, rss_held, per_request)
    # Memory returns: what stays is a fraction of what the crowd took (not
    # under ASan, whose quarantine keeps freed memory resident on purpose).
    if not ASAN:
        assert rss_after - rss0 <= 0.25 * (rss_held - rss0), (rss0, rss_held, rss_after)


def test_ten_thousand_idle_keep_alive_connections_cost_at_most_2_kib_each(activator_factory):
    """Each connection has had a request answered (404: no such service) and
    stays open, idle: what it keeps is the connection's state, not its last
    request's head or a read buffer."""
    assert raise_nofile(N + 500), "ulimit -n below %d" % (N + 500)
    act = activator_factory(NEVER_READY_CONFIG)
    rss0 = settled_rss_kib(act.proc.pid)
    crowd = []
    try:
        crowd = open_crowd(act.port, N, UNKNOWN_HOST_REQUEST)
        for s in crowd:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                assert chunk, "connection closed before the answer"
                head += chunk
            assert head.startswith(b"HTTP/1.1 404"), head[:100]
            assert b"connection: close" not in head.lower(), head
        time.sleep(1.5)  # idle past the 1 s after which a connection trims
        rss_idle = settled_rss_kib(act.proc.pid)
        # Still open and usable: a second request on a few of them.
        for s in crowd[::1000]:
            s.sendall(UNKNOWN_HOST_REQUEST)
            assert s.recv(4096).startswith(b"HTTP/1.1 404")
    finally:
        close_crowd(crowd)
    per_conn = (rss_idle - rss0) * 1024 / N
    if not ASAN:  # ASan's quarantine keeps freed memory resident on purpose
        wait_until(lambda: settled_rss_kib(act.proc.pid) - rss0 <= 0.25 * (rss_idle - rss0), 15)
    rss_after = settled_rss_kib(act.proc.pid)
    print(f"\n{N} idle keep-alive: VmRSS {rss0} -> {rss_idle} KiB ({per_conn:.0f} bytes each, "
          f"budget {budget():.0f}); after they left {rss_after} KiB")
    assert per_conn <= budget(), (rss0, rss_idle, per_conn)
    if not ASAN:
        assert rss_after - rss0 <= 0.25 * (rss_idle - rss0), (rss0, rss_idle, rss_after)


def established_to(port):
    """Established TCP connections whose far end is `port` on this host."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n


@pytest.mark.skipif(ASAN, reason="ASan's quarantine keeps freed buffers resident")
def test_idle_connections_to_the_app_hold_no_read_buffer(pod):
    """The queue-proxy keeps up to 1 000 connections to its app alive (CC 0),
    as the activator keeps connections to every pod: an idle one owns no
    32 KiB read buffer and no response head. 800 of them after a burst cost
    under 8 KiB each once freed memory is trimmed (12.6 KiB when each kept
    its buffer; about 5 KiB now, mostly the heap pages their structures pin)."""
    p = pod(CONTAINER_CONCURRENCY="0")
    assert p.get("/").status == 200
    pid = p.qp.p.pid
    before = settled_rss_kib(pid)
    codes, _ = kp.hey(p.url("/?sleep=300"), 800, n=800)
    assert codes == {200: 800}, codes
    idle = established_to(p.user_port)
    assert idle >= 700, idle  # kept alive, idle

    def per_connection():
        return (settled_rss_kib(pid) - before) * 1024 / idle

    assert wait_until(lambda: per_connection() < 8 * 1024, 20), \
        "%d idle app connections at %.0f bytes each" % (idle, per_connection())
