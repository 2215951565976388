"""Upgrades and big bodies: WebSocket tunnelled, 1 GiB each way streamed with
bounded memory."""
import socket
import subprocess
import time

import kp

GIB = 1 << 30
SIZE = (64 << 20) if kp.ASAN else GIB
RSS_LIMIT_KIB = 16 * 1024


def test_websocket_echo_through_queue_proxy(pod):
    p = pod()
    ws = kp.WebSocket(p.qp_port, headers={"K-Original-Host": "hello.default.example.com"})
    try:
        assert ws.status == 101, ws.head
        assert ws.headers.get("upgrade", "").lower() == "websocket", ws.head
        assert ws.headers.get("sec-websocket-accept") == ws.expected_accept, ws.head
        for msg in ("hello", "x" * 200, "y" * 70000):
            ws.send(msg)
            assert ws.recv() == (1, msg.encode())
        ws.send(b"\x03\xe8", opcode=8)
        op, _ = ws.recv()
        assert op == 8
    finally:
        ws.close()
    # plain traffic still works after the tunnel
    assert p.get("/").status == 200


def test_websocket_not_cut_by_response_start_timeout(pod):
    p = pod(REVISION_TIMEOUT_SECONDS="30", REVISION_RESPONSE_START_TIMEOUT_SECONDS="1")
    ws = kp.WebSocket(p.qp_port)
    try:
        assert ws.status == 101
        time.sleep(1.3)
        ws.send("still there")
        assert ws.recv() == (1, b"still there")
    finally:
        ws.close()


def curl(*args, stdin=None, timeout=120):
    # -y/-Y: give up after 5 s without progress, so a stall fails fast
    return subprocess.run(["curl", "-sS", "-y", "5", "-Y", "1", *args], stdin=stdin, capture_output=True,
                          timeout=timeout * kp.SLOW)


def test_big_upload_and_download_with_bounded_memory(pod):
    p = pod()
    # upload, chunked, from a generator
    gen = subprocess.Popen(["head", "-c", str(SIZE), "/dev/zero"], stdout=subprocess.PIPE)
    r = curl("-X", "POST", "-T", "-", p.url("/"), stdin=gen.stdout)
    gen.wait()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"received %d bytes\n" % SIZE
    # upload with Content-Length
    gen = subprocess.Popen(["head", "-c", str(SIZE), "/dev/zero"], stdout=subprocess.PIPE)
    r = curl("-X", "POST", "-T", "-", "-H", "Content-Length: %d" % SIZE,
             "-H", "Transfer-Encoding:", p.url("/"), stdin=gen.stdout)
    gen.wait()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"received %d bytes\n" % SIZE
    # download
    r = curl("-o", "/dev/null", "-w", "%{http_code} %{size_download}",
             p.url("/?bytes=%d" % SIZE))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"200 %d" % SIZE
    if not kp.ASAN:
        hwm = p.qp.vm_hwm_kib()
        assert hwm < RSS_LIMIT_KIB, "queue-proxy peak RSS %d KiB" % hwm


def test_slow_reader_does_not_grow_memory(pod):
    # backpressure: the client stops reading; the queue-proxy must not buffer
    # the app's body.
    p = pod()
    size = (32 << 20) if kp.ASAN else (256 << 20)
    s = socket.create_connection(("127.0.0.1", p.qp_port), timeout=5 * kp.SLOW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    time.sleep(1.0)
    if not kp.ASAN:
        hwm = p.qp.vm_hwm_kib()
        assert hwm < RSS_LIMIT_KIB, "queue-proxy peak RSS %d KiB with a stalled reader" % hwm
    got = 0
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(65536)
    head, _, rest = head.partition(b"\r\n\r\n")
    got = len(rest)
    assert kp.status_of(head) == 200
    while got < size:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    s.close()
    assert got == size
