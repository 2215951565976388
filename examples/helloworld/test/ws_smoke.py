"""Smoke test for helloworld's /ws echo with raw sockets (stdlib only):
handshake accept value, text/binary echo of small, 16-bit and 64-bit length
frames sent in dribbles, ping -> pong, close echoed, connection ended, and
in_flight back to 0. Usage: python3 ws_smoke.py PORT"""
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    h = recv_exact(s, 2)
    assert not (h[1] & 0x80), "server frames must not be masked"
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(s, 8))[0]
    return h[0], recv_exact(s, n)


def http_get(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    return data.split(b"\r\n\r\n", 1)[1]


def main():
    port = int(sys.argv[1])
    base = json.loads(http_get(port, "/stats"))["in_flight"]  # other traffic
    key = base64.b64encode(os.urandom(16))
    s = socket.create_connection(("127.0.0.1", port))
    first = frame(1, b"early")  # sent with the handshake: must not be lost
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n" + first)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101"), lines[0]
    want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    assert "Sec-WebSocket-Accept: " + want in lines, lines
    assert read_frame(s) == (0x81, b"early")
    stats = json.loads(http_get(port, "/stats"))
    assert stats["in_flight"] == base + 1, stats

    for size in (0, 1, 125, 126, 1000, 65535, 65536, 300000):
        payload = os.urandom(size)
        data = frame(2, payload)
        for i in range(0, len(data), 7777):  # dribble: headers and payloads split
            s.sendall(data[i:i + 7777])
        op, got = read_frame(s)
        assert op == 0x82 and got == payload, (size, op, len(got))
    s.sendall(frame(1, "héllo".encode()))
    assert read_frame(s) == (0x81, "héllo".encode())
    s.sendall(frame(9, b"ping!"))
    assert read_frame(s) == (0x8A, b"ping!")
    s.sendall(frame(8, struct.pack(">H", 1000) + b"bye"))
    assert read_frame(s) == (0x88, struct.pack(">H", 1000) + b"bye")
    s.settimeout(3)
    assert s.recv(1) == b"", "server should end the connection after close"
    s.close()
    time.sleep(0.1)
    stats = json.loads(http_get(port, "/stats"))
    assert stats["in_flight"] == base, stats

    # an unmasked client frame is a protocol error: close 1002
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    s.sendall(b"\x81\x02hi")
    assert read_frame(s) == (0x88, struct.pack(">H", 1002))
    s.close()

    # client vanishes mid-frame: in_flight must come back to 0
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n" +
              frame(2, b"x" * 1000)[:500])
    time.sleep(0.1)
    s.close()
    time.sleep(0.2)
    stats = json.loads(http_get(port, "/stats"))
    assert stats["in_flight"] == base, stats
    print("websocket ok")


if __name__ == "__main__":
    main()
