"""Stand-in for build/helloworld, written to the same spec, used by the e2e
tests only while `make build/helloworld` does not exist yet (or when
KP_FAKE_APP=1). Stdlib only.

Spec: env PORT, TARGET (default World), HOST, STARTUP_DELAY_MS;
GET / -> "Hello $TARGET!\n"; query sleep=MS, status=N, bytes=N, hang=1,
drip=N (N bytes, one per 10 ms); a request body is consumed and answered
"received N bytes\n"; GET /headers -> "Name: value" lines; GET /stats ->
{"in_flight","max_in_flight","requests"}; POST /stats/reset; GET /ws
WebSocket echo; exits on SIGTERM.
"""
import base64
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0

    def enter(self):
        with self.lock:
            self.in_flight += 1
            self.requests += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def snapshot(self):
        with self.lock:
            return {"in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "requests": self.requests}

    def reset(self):
        with self.lock:
            self.max_in_flight = self.in_flight
            self.requests = 0


STATS = Stats()
TARGET = os.environ.get("TARGET", "World")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, body, ctype="text/plain; charset=utf-8"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self):
        n = 0
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return n
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        raise ConnectionError("eof in chunk")
                    left -= len(chunk)
                    n += len(chunk)
                self.rfile.readline()
        cl = int(self.headers.get("Content-Length") or 0)
        left = cl
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                raise ConnectionError("eof in body")
            left -= len(chunk)
            n += len(chunk)
        return n

    def handle_one(self):
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if u.path == "/stats" and self.command == "GET":
            return self._send(200, json.dumps(STATS.snapshot()), "application/json")
        if u.path == "/stats/reset" and self.command == "POST":
            self._read_body()
            STATS.reset()
            return self._send(200, json.dumps(STATS.snapshot()), "application/json")
        if u.path == "/ws":
            return self.websocket()
        STATS.enter()
        try:
            n = self._read_body()
            if "sleep" in q:
                time.sleep(int(q["sleep"]) / 1000.0)
            if q.get("hang") == "1":
                while True:
                    time.sleep(3600)
            status = int(q.get("status", 200))
            if "drip" in q:
                total = int(q["drip"])
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(total))
                self.end_headers()
                self.wfile.flush()
                for _ in range(total):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.01)
                return
            if "bytes" in q:
                total = int(q["bytes"])
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(total))
                self.end_headers()
                block = b"x" * (1 << 16)
                while total:
                    k = min(total, len(block))
                    self.wfile.write(block[:k])
                    total -= k
                return
            if u.path == "/headers":
                lines = "".join("%s: %s\n" % (k, v) for k, v in self.headers.items())
                return self._send(status, lines)
            if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
                return self._send(status, "received %d bytes\n" % n)
            return self._send(status, "Hello %s!\n" % TARGET)
        finally:
            STATS.leave()

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        r = self.rfile
        while True:
            h = r.read(2)
            if len(h) < 2:
                return
            op = h[0] & 0x0F
            ln = h[1] & 0x7F
            if ln == 126:
                ln = int.from_bytes(r.read(2), "big")
            elif ln == 127:
                ln = int.from_bytes(r.read(8), "big")
            mask = r.read(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytearray(r.read(ln))
            for i in range(len(data)):
                data[i] ^= mask[i % 4]
            if op == 8:
                self.wfile.write(bytes([0x88, 0]))
                self.wfile.flush()
                self.close_connection = True
                return
            hdr = bytes([0x80 | op])
            if len(data) < 126:
                hdr += bytes([len(data)])
            elif len(data) < 65536:
                hdr += bytes([126]) + len(data).to_bytes(2, "big")
            else:
                hdr += bytes([127]) + len(data).to_bytes(8, "big")
            self.wfile.write(hdr + bytes(data))
            self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one


def main():
    delay = int(os.environ.get("STARTUP_DELAY_MS", "0") or 0)
    if delay:
        time.sleep(delay / 1000.0)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer((host, port), Handler)
    srv.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    sys.stderr.write("fakeapp listening on %s:%d\n" % (host, port))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
