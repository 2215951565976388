"""A small app for the HTTP/2 client tests: h2c with prior knowledge (python3-h2)
and plain HTTP/1.1 on the same port, as Go apps behind Knative do. It writes one
JSON line per event to --log, so tests can see what reached it and how.

    h2app.py [--port P] --log FILE [--max-streams N] [--goaway-after K]

Paths (both protocols unless noted): /hello; /slow/MS (answer after MS ms);
/echo (the request body back); /big/N (N body bytes, as flow control allows);
HTTP/2 only: /trailers (body, then grpc-status/grpc-message/x-trailer trailers);
/rst-before (RST_STREAM before any head); /rst-after (head and some body, then
RST_STREAM); /hang (never answers; the reset is logged).
An HTTP/1.1 OPTIONS with Upgrade: h2c gets 101 (Knative's probe detection).
--goaway-after K: after a connection's K-th stream, GOAWAY naming it; later
streams are left unanswered (the client must retry them), the others finish."""
import argparse
import asyncio
import json
import os
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class App:
    def __init__(self, args):
        self.args = args
        self.log_file = open(args.log, "a", buffering=1)
        self.conns = 0

    def log(self, **event):
        event["t"] = time.time()
        self.log_file.write(json.dumps(event) + "\n")


class H2Conn:
    def __init__(self, app, reader, writer, first):
        self.app = app
        self.reader = reader
        self.writer = writer
        self.first = first
        app.conns += 1
        self.id = app.conns
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: app.args.max_streams})
        self.open = set()
        self.bodies = {}
        self.windows = {}
        self.seen = 0
        self.goaway_id = None
        self.tasks = set()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    def window_event(self, sid):
        ev = self.windows.get(sid)
        if ev is None:
            ev = self.windows[sid] = asyncio.Event()
        return ev

    async def run(self):
        self.conn.initiate_connection()
        self.flush()
        data = self.first
        while True:
            if data:
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for ev in events:
                    self.handle(ev)
                self.flush()
                await self.writer.drain()
            # After a GOAWAY, as Go's server: the client is given a while
            # (goAwayTimeout, 1 s) to close once the streams it may expect
            # are answered; closing at once could reset what it sends.
            drained = self.goaway_id is not None and not self.answerable()
            try:
                data = await asyncio.wait_for(self.reader.read(65536), 1.0 if drained else None)
            except asyncio.TimeoutError:
                if drained:
                    break
                continue
            if not data:
                break
        self.app.log(ev="closed", conn=self.id)
        self.writer.close()

    def answerable(self):
        return {s for s in self.open if self.goaway_id is None or s <= self.goaway_id}

    def handle(self, ev):
        app = self.app
        if isinstance(ev, h2.events.RequestReceived):
            sid = ev.stream_id
            self.seen += 1
            if self.goaway_id is not None and sid > self.goaway_id:
                app.log(ev="ignored", conn=self.id, stream=sid)
                return
            self.open.add(sid)
            headers = dict(ev.headers)
            self.bodies[sid] = [headers, b""]
            app.log(ev="req", proto="HTTP/2", conn=self.id, stream=sid, open=len(self.open),
                    method=headers.get(":method"), path=headers.get(":path"), headers=headers)
            if app.args.goaway_after and self.seen == app.args.goaway_after:
                self.goaway_id = sid
                self.flush()
                frame = GoAwayFrame(0)
                frame.last_stream_id = sid
                frame.error_code = 0
                self.writer.write(frame.serialize())
                app.log(ev="goaway", conn=self.id, last=sid)
            path = headers.get(":path", "")
            if path == "/hang" or path.startswith("/rst-") or path in ("/trailers",):
                self.start(sid)
        elif isinstance(ev, h2.events.DataReceived):
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_id in self.bodies:
                self.bodies[ev.stream_id][1] += ev.data
        elif isinstance(ev, h2.events.StreamEnded):
            sid = ev.stream_id
            if sid in self.open and self.bodies[sid][0].get(":path") not in (
                    "/hang", "/trailers") and not self.bodies[sid][0].get(":path", "").startswith("/rst-"):
                self.start(sid)
        elif isinstance(ev, h2.events.StreamReset):
            app.log(ev="reset", conn=self.id, stream=ev.stream_id, code=int(ev.error_code))
            self.open.discard(ev.stream_id)
            self.window_event(ev.stream_id).set()
        elif isinstance(ev, h2.events.WindowUpdated):
            if ev.stream_id == 0:
                for e in self.windows.values():
                    e.set()
            else:
                self.window_event(ev.stream_id).set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            app.log(ev="terminated", conn=self.id, code=int(ev.error_code))

    def start(self, sid):
        task = asyncio.ensure_future(self.answer(sid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send_body(self, sid, body, end=True):
        off = 0
        while off < len(body):
            if sid not in self.open:
                return False
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                ev = self.window_event(sid)
                ev.clear()
                await ev.wait()
                continue
            chunk = body[off:off + window]
            off += len(chunk)
            self.conn.send_data(sid, chunk, end_stream=end and off == len(body))
            self.flush()
            await self.writer.drain()
        if end and not body:
            self.conn.end_stream(sid)
            self.flush()
        return True

    async def answer(self, sid):
        headers, body = self.bodies[sid]
        path = headers.get(":path", "")
        app = self.app
        try:
            if path.startswith("/slow/"):
                await asyncio.sleep(int(path[6:]) / 1000)
            if sid not in self.open:
                return
            if path == "/hang":
                return
            if path == "/rst-before":
                self.conn.reset_stream(sid, ErrorCodes.INTERNAL_ERROR)
                self.open.discard(sid)
                self.flush()
                return
            if path == "/rst-after":
                self.conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
                self.conn.send_data(sid, b"partial body\n")
                self.flush()
                await self.writer.drain()
                await asyncio.sleep(0.2)
                self.conn.reset_stream(sid, ErrorCodes.INTERNAL_ERROR)
                self.open.discard(sid)
                self.flush()
                return
            if path == "/trailers":
                self.conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                await self.send_body(sid, b"\x00\x00\x00\x00\x02hi", end=False)
                self.conn.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "all good"),
                                             ("x-trailer", "yes")], end_stream=True)
                self.flush()
            elif path.startswith("/big/"):
                n = int(path[5:])
                self.conn.send_headers(sid, [(":status", "200"), ("content-length", str(n))])
                self.flush()
                if await self.send_body(sid, b"x" * n):
                    app.log(ev="big_done", conn=self.id, stream=sid)
            else:
                out = body if path == "/echo" else ("proto=HTTP/2 path=%s\n" % path).encode()
                self.conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(out))),
                                             ("x-app-proto", "HTTP/2")])
                await self.send_body(sid, out)
            self.open.discard(sid)
            self.flush()
            await self.writer.drain()
        except (ConnectionError, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            self.open.discard(sid)


async def serve_h1(app, reader, writer, data):
    while True:
        while b"\r\n\r\n" not in data:
            more = await reader.read(65536)
            if not more:
                writer.close()
                return
            data += more
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(data) < length:
            more = await reader.read(65536)
            if not more:
                break
            data += more
        body, data = data[:length], data[length:]
        app.log(ev="req", proto="HTTP/1.1", method=method, path=path, headers=headers)
        if method == "OPTIONS" and headers.get("upgrade", "").lower() == "h2c":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if path.startswith("/slow/"):
            await asyncio.sleep(int(path[6:]) / 1000)
        if path.startswith("/big/"):
            out = b"x" * int(path[5:])
        else:
            out = body if path == "/echo" else ("proto=HTTP/1.1 path=%s\n" % path).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-App-Proto: HTTP/1.1\r\n\r\n" % len(out)
                     + out)
        await writer.drain()


async def on_client(app, reader, writer):
    data = b""
    try:
        while len(data) < len(PREFACE) and PREFACE.startswith(data):
            more = await reader.read(65536)
            if not more:
                writer.close()
                return
            data += more
        if data.startswith(PREFACE):
            app.log(ev="conn", proto="HTTP/2", conn=app.conns + 1)
            await H2Conn(app, reader, writer, data).run()
        else:
            await serve_h1(app, reader, writer, data)
    except (ConnectionError, asyncio.IncompleteReadError):
        writer.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")),
                    help="default: $PORT (as a Knative app)")
    ap.add_argument("--log", required=True)
    ap.add_argument("--max-streams", type=int, default=100)
    ap.add_argument("--goaway-after", type=int, default=0)
    args = ap.parse_args()
    app = App(args)

    async def run():
        server = await asyncio.start_server(lambda r, w: on_client(app, r, w), "127.0.0.1", args.port)
        print("listening", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
