"""A small HTTP/2 client over a raw socket for the end-to-end tests: frames
are built and parsed here (hpack from Debian's python3-hpack, a dependency of
python3-h2, encodes and decodes header blocks), so a test can send exactly
what it wants (floods, resets, oversized frames) and see every frame the
server sends back, GOAWAY and RST_STREAM codes included."""
import socket
import struct
import time

import hpack

import kp

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)

SETTINGS_INITIAL_WINDOW_SIZE = 4
SETTINGS_MAX_CONCURRENT_STREAMS = 3
SETTINGS_MAX_HEADER_LIST_SIZE = 6


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.status = None
        self.headers = []
        self.trailers = []
        self.body = bytearray()
        self.ended = False
        self.reset = None  # RST_STREAM code

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def done(self):
        return self.ended or self.reset is not None


class H2:
    """One client connection. Flow control: the client's windows start at
    `window` (stream) and are topped up as data is read unless auto_window is
    False; the connection window is kept open."""

    def __init__(self, port, window=1 << 20, auto_window=True, settings=None, preface=True,
                 host="127.0.0.1", timeout=5.0, ack_settings=True):
        self.sock = socket.create_connection((host, port), timeout=timeout * kp.SLOW)
        self.port = port
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 65536
        self.streams = {}
        self.frames = []  # every frame received: (type, flags, sid, payload)
        self.goaways = []  # (last_stream_id, code)
        self.server_settings = {}
        self.pings = []
        self.closed = False
        self.auto_window = auto_window
        self.ack_settings = ack_settings
        self.next_sid = 1
        self.buf = b""
        self._hdr_block = None
        # what the server lets us send (RFC 9113 §6.9)
        self.conn_window = 65535
        self.stream_windows = {}
        if preface:
            s = {SETTINGS_INITIAL_WINDOW_SIZE: window}
            s.update(settings or {})
            self.send(PREFACE + self.settings_frame(s))
            if window > 65535:
                self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 24)))

    @staticmethod
    def settings_frame(values):
        return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in values.items()))

    def send(self, data):
        self.sock.sendall(data)

    def _reply(self, data):
        """An automatic answer (ACK, WINDOW_UPDATE): the server may have
        closed already."""
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def header_block(self, method="GET", path="/", headers=(), authority=None):
        hs = [(":method", method), (":scheme", "http"), (":path", path),
              (":authority", authority or "127.0.0.1:%d" % self.port)]
        if authority is False:
            hs = hs[:3]
        hs += [(k.lower() if isinstance(k, str) else k, v) for k, v in headers]
        return self.enc.encode(hs)

    def request(self, method="GET", path="/", headers=(), body=None, end=True, authority=None):
        """Opens a stream; returns its id. body None and end: HEADERS with
        END_STREAM; body given: DATA after it (END_STREAM if end)."""
        sid = self.next_sid
        self.next_sid += 2
        self.streams[sid] = Stream(sid)
        self.stream_windows[sid] = self.server_settings.get(SETTINGS_INITIAL_WINDOW_SIZE, 65535)
        block = self.header_block(method, path, headers, authority)
        self.send_header_block(sid, block, end and body is None)
        if body is not None:
            self.data(sid, body, end)
        return sid

    def send_header_block(self, sid, block, end_stream):
        """HEADERS, with CONTINUATIONs past 16 KiB (the server's frame size)."""
        pieces = [block[i:i + 16384] for i in range(0, max(len(block), 1), 16384)]
        flags = END_STREAM if end_stream else 0
        out = frame(HEADERS, flags | (END_HEADERS if len(pieces) == 1 else 0), sid, pieces[0])
        for i, piece in enumerate(pieces[1:], 1):
            out += frame(CONTINUATION, END_HEADERS if i == len(pieces) - 1 else 0, sid, piece)
        self.send(out)

    def data(self, sid, body, end=True):
        for i in range(0, max(len(body), 1), 16384):
            chunk = body[i:i + 16384]
            last = i + 16384 >= len(body)
            self.send(frame(DATA, END_STREAM if end and last else 0, sid, chunk))

    def send_body(self, sid, body, end=True, timeout=10.0):
        """DATA within the windows the server gave, waiting for its
        WINDOW_UPDATEs."""
        view = memoryview(body)
        while True:
            assert self.read_until(lambda: min(self.conn_window, self.stream_windows[sid]) > 0
                                   or not view, timeout), "no window from the server"
            n = min(len(view), 16384, self.conn_window, self.stream_windows[sid])
            last = n == len(view)
            self.send(frame(DATA, END_STREAM if end and last else 0, sid, bytes(view[:n])))
            self.conn_window -= n
            self.stream_windows[sid] -= n
            view = view[n:]
            if last:
                return

    def rst(self, sid, code=CANCEL):
        self.send(frame(RST_STREAM, 0, sid, struct.pack(">I", code)))

    def ping(self, data=b"12345678"):
        self.send(frame(PING, 0, 0, data))

    def window_update(self, sid, n):
        self.send(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", n)))

    # --- reading ---

    def _read_frame(self, deadline):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload = self.buf[9:9 + n]
        self.buf = self.buf[9 + n:]
        return ftype, flags, sid, payload

    def _handle(self, f):
        ftype, flags, sid, payload = f
        self.frames.append(f)
        st = self.streams.get(sid)
        if ftype == SETTINGS and not flags & ACK:
            for i in range(0, len(payload), 6):
                k, v = struct.unpack(">HI", payload[i:i + 6])
                if k == SETTINGS_INITIAL_WINDOW_SIZE:
                    old = self.server_settings.get(k, 65535)
                    for w in self.stream_windows:
                        self.stream_windows[w] += v - old
                self.server_settings[k] = v
            if self.ack_settings:
                self._reply(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self._reply(frame(PING, ACK, 0, payload))
        elif ftype == PING:
            self.pings.append(payload)
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaways.append((last & 0x7FFFFFFF, code))
        elif ftype == WINDOW_UPDATE:
            n = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
            if sid == 0:
                self.conn_window += n
            elif sid in self.stream_windows:
                self.stream_windows[sid] += n
        elif ftype == RST_STREAM and st:
            st.reset = struct.unpack(">I", payload)[0]
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                p = payload
                if flags & PADDED:
                    p = p[1:len(p) - p[0]]
                if flags & PRIORITY_FLAG:
                    p = p[5:]
                self._hdr_block = [sid, flags, p]
            else:
                self._hdr_block[2] += payload
                self._hdr_block[1] |= flags & END_HEADERS
            if self._hdr_block[1] & END_HEADERS:
                hsid, hflags, block = self._hdr_block
                self._hdr_block = None
                hs = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                      for k, v in self.dec.decode(bytes(block))]
                hst = self.streams.get(hsid)
                if hst:
                    status = dict(hs).get(":status")
                    if status and status.startswith("1"):
                        pass  # informational
                    elif hst.status is None:
                        hst.status = int(status)
                        hst.headers = [(k, v) for k, v in hs if not k.startswith(":")]
                    else:
                        hst.trailers = hs
                    if hflags & END_STREAM:
                        hst.ended = True
        elif ftype == DATA and st:
            p = payload
            if flags & PADDED:
                p = p[1:len(p) - p[0]]
            st.body += p
            if flags & END_STREAM:
                st.ended = True
            if payload and self.auto_window:
                self._reply(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload))))
                if not st.ended:
                    self._reply(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(payload))))
        elif ftype == DATA and payload:
            self._reply(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload))))

    def read_until(self, cond, timeout=5.0):
        """Reads frames until cond() holds (returns True) or the timeout
        passes or the connection ends (returns False)."""
        deadline = time.monotonic() + timeout * kp.SLOW
        while not cond():
            f = self._read_frame(deadline)
            if f is None:
                return cond()
            self._handle(f)
        return True

    def response(self, sid, timeout=5.0):
        st = self.streams[sid]
        assert self.read_until(lambda: st.done, timeout), \
            "stream %d not done: status %s, %d body bytes, goaways %s, closed %s" % (
                sid, st.status, len(st.body), self.goaways, self.closed)
        return st

    def wait_closed(self, timeout=5.0):
        return self.read_until(lambda: self.closed, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
