"""A small blocking HTTP/2 (h2c, prior knowledge) client over a real socket, on
python3-h2, for the end-to-end tests: whole exchanges with trailers and resets
seen, or a stream left hanging to be reset or not read."""
import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.settings


class H2Result:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.body = b""
        self.trailers = {}
        self.reset = None  # RST_STREAM code from the server
        self.ended = False

    def __repr__(self):
        return "H2Result(status=%r reset=%r ended=%r headers=%r trailers=%r body=%r)" % (
            self.status, self.reset, self.ended, self.headers, self.trailers, self.body[:200])


class H2Client:
    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        # A large connection window: a stream held below stalls alone.
        self.conn.increment_flow_control_window(1 << 30)
        self.held = set()  # streams whose data is never acknowledged
        self.results = {}
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path, method="GET", headers=None, body=None, authority="example.com",
              hold=False):
        """hold: never give the stream's window back (a reader that stopped)."""
        sid = self.conn.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", "http"), (":path", path),
              (":authority", authority)] + list((headers or {}).items())
        self.conn.send_headers(sid, hs, end_stream=body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=True)
        self.results[sid] = H2Result()
        if hold:
            self.held.add(sid)
        self.flush()
        return sid

    def pump(self, timeout=None):
        """Reads once; False on EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            return False
        for ev in self.conn.receive_data(data):
            r = self.results.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                r.headers = dict(ev.headers)
                r.status = int(r.headers[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                r.body += ev.data
                if ev.stream_id not in self.held:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                r.trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                r.ended = True
            elif isinstance(ev, h2.events.StreamReset) and r is not None:
                r.reset = int(ev.error_code)
        self.flush()
        return True

    def wait_head(self, sid, timeout=10.0):
        deadline = time.monotonic() + timeout
        r = self.results[sid]
        while r.status is None and r.reset is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("stream %d: no head after %.1fs: %r" % (sid, timeout, r))
            if not self.pump(left):
                break
        return r

    def wait(self, sid, timeout=10.0):
        deadline = time.monotonic() + timeout
        r = self.results[sid]
        while not (r.ended or r.reset is not None):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("stream %d: no end after %.1fs: %r" % (sid, timeout, r))
            if not self.pump(left):
                break
        return r

    def reset(self, sid, code=8):
        self.conn.reset_stream(sid, code)
        self.flush()

    def close(self):
        self.sock.close()


def get(port, path, timeout=10.0, **kw):
    c = H2Client(port, timeout=timeout)
    try:
        return c.wait(c.start(path, **kw), timeout)
    finally:
        c.close()


def speaks_h2c(port):
    """Whether the server on port answers an h2c prior-knowledge preface."""
    try:
        c = H2Client(port, timeout=2.0)
        try:
            c.wait(c.start("/", headers={"user-agent": "kube-probe/1.0",
                                          "k-network-probe": "queue"}), 2.0)
            return True
        finally:
            c.close()
    except (OSError, AssertionError, h2.exceptions.ProtocolError):
        return False
