"""A gRPC sample app (python3-grpcio, no generated code: every method takes
and returns raw bytes) for the end-to-end tests, the HTTP/2 benchmark and
users who want a gRPC revision behind the queue-proxy. It speaks h2c with
prior knowledge on $PORT (HOST, default 0.0.0.0), as a Knative container
port named h2c expects, and exits on SIGTERM.

Methods of service kp.Echo (parameters are a JSON object in the request
message, {} or empty for the defaults):
  Unary         echoes the request; echoes every x-* metadata (-bin ones
                included) as initial metadata; trailers x-kp-trailer: done
                and x-kp-trailer-bin: 00 01 fe ff
  ServerStream  {"n": 3, "delay_ms": 0, "size": 0}: n messages b"0", b"1"...
                (or each `size` bytes of that digit), delay_ms before each;
                with "code" (and "message"), then ends with that status
  ClientStream  concatenates the request messages
  Bidi          answers each request message as it arrives (b"echo:" + it)
  Fail          {"code": 9, "message": "..."}: ends with that status and
                grpc-message (default FAILED_PRECONDITION, "requested failure")
  Slow          {"ms": 1000}: answers b"slept" after ms, or stops early when
                the call is cancelled or its deadline passes
  Large         {"bytes": 1048576}: answers that many bytes (b"abc..." cycled)
  Metadata      JSON {name: value} of the request metadata it saw (-bin
                values hex)
  Stats         JSON {"in_flight", "max_in_flight", "calls", "cancelled"}:
                calls of the other methods under way now, the most at once
                since start or reset, calls begun, calls seen cancelled
  ResetStats    max_in_flight back to in_flight; calls and cancelled to 0
and grpc.health.v1.Health/Check (SERVING), for gRPC readiness probes.
Stats and ResetStats do not count themselves.
"""
import json
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "kp.Echo"
MAX_MESSAGE = 64 << 20
TRAILER_BIN = b"\x00\x01\xfe\xff"
# Enough threads that the app is never what limits concurrency: a test
# must see the queue-proxy's limit, not ours.
WORKERS = int(os.environ.get("GRPCAPP_WORKERS", "256"))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        self.cancelled = 0

    def enter(self):
        with self.lock:
            self.in_flight += 1
            self.calls += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def saw_cancel(self):
        with self.lock:
            self.cancelled += 1

    def snapshot(self):
        with self.lock:
            return {"in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "calls": self.calls, "cancelled": self.cancelled}

    def reset(self):
        with self.lock:
            self.max_in_flight = self.in_flight
            self.calls = 0
            self.cancelled = 0


STATS = Stats()


def params(request):
    if not request:
        return {}
    try:
        p = json.loads(request)
    except ValueError:
        return {}
    return p if isinstance(p, dict) else {}


class Call:
    """One call of a counted method: in flight from start to the handler's
    end; `ended` is set as soon as the call is over for the client
    (cancelled, deadline passed, reset), so a handler waiting on it stops
    at once, and such an early end is counted as a cancellation."""

    def __init__(self, context):
        self.ended = threading.Event()
        self.finished = False
        STATS.enter()
        # The callback runs when the RPC terminates, however it ends; only
        # an end while the handler still runs is a cancellation.
        if not context.add_callback(self._on_end):
            self._on_end()

    def _on_end(self):
        if not self.finished:
            STATS.saw_cancel()
        self.ended.set()

    def finish(self):
        self.finished = True
        STATS.leave()


def counted(fn):
    """A unary-response handler fn(request, context, call), counted."""
    def handler(request, context):
        call = Call(context)
        try:
            return fn(request, context, call)
        finally:
            call.finish()
    return handler


def counted_stream(fn):
    """A stream-response handler (a generator) fn(request, context, call),
    counted the same way."""
    def handler(request, context):
        call = Call(context)
        try:
            yield from fn(request, context, call)
        finally:
            call.finish()
    return handler


def unary(request, context, call):
    echoed = tuple((k, v) for k, v in context.invocation_metadata() if k.startswith("x-"))
    context.send_initial_metadata(echoed)
    context.set_trailing_metadata((("x-kp-trailer", "done"), ("x-kp-trailer-bin", TRAILER_BIN)))
    return request


def server_stream(request, context, call):
    p = params(request)
    n, delay, size = int(p.get("n", 3)), int(p.get("delay_ms", 0)), int(p.get("size", 0))
    for i in range(n):
        if delay and call.ended.wait(delay / 1000.0):
            return
        if call.ended.is_set():
            return
        digit = str(i).encode()
        yield digit * max(1, size // len(digit)) if size else digit
    if "code" in p:
        abort(context, p)


def client_stream(request_iterator, context, call):
    return b"".join(request_iterator)


def bidi(request_iterator, context, call):
    for msg in request_iterator:
        yield b"echo:" + msg


def abort(context, p):
    code = int(p.get("code", grpc.StatusCode.FAILED_PRECONDITION.value[0]))
    status = next((s for s in grpc.StatusCode if s.value[0] == code), grpc.StatusCode.UNKNOWN)
    context.abort(status, str(p.get("message", "requested failure")))


def fail(request, context, call):
    abort(context, params(request))


def slow(request, context, call):
    ms = int(params(request).get("ms", 1000))
    if call.ended.wait(ms / 1000.0):
        return b"cancelled"
    return b"slept"


def large(request, context, call):
    n = int(params(request).get("bytes", 1 << 20))
    pattern = bytes(range(ord("a"), ord("z") + 1))
    return (pattern * (n // len(pattern) + 1))[:n]


def metadata(request, context, call):
    seen = {}
    for k, v in context.invocation_metadata():
        seen[k] = v.hex() if isinstance(v, bytes) else v
    return json.dumps(seen, sort_keys=True).encode()


def stats(request, context):
    return json.dumps(STATS.snapshot()).encode()


def reset_stats(request, context):
    STATS.reset()
    return json.dumps(STATS.snapshot()).encode()


def health_check(request, context):
    # grpc.health.v1.HealthCheckResponse{status: SERVING}: field 1, varint 1.
    return b"\x08\x01"


def handlers():
    same = {"request_deserializer": None, "response_serializer": None}
    uu = grpc.unary_unary_rpc_method_handler
    echo = {
        "Unary": uu(counted(unary), **same),
        "ServerStream": grpc.unary_stream_rpc_method_handler(counted_stream(server_stream), **same),
        "ClientStream": grpc.stream_unary_rpc_method_handler(counted(client_stream), **same),
        "Bidi": grpc.stream_stream_rpc_method_handler(counted_stream(bidi), **same),
        "Fail": uu(counted(fail), **same),
        "Slow": uu(counted(slow), **same),
        "Large": uu(counted(large), **same),
        "Metadata": uu(counted(metadata), **same),
        "Stats": uu(stats, **same),
        "ResetStats": uu(reset_stats, **same),
    }
    health = {"Check": uu(health_check, **same)}
    return (grpc.method_handlers_generic_handler(SERVICE, echo),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", health))


def main():
    host = os.environ.get("HOST") or "0.0.0.0"
    port = int(os.environ.get("PORT", "8080"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS), handlers=handlers(),
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                  ("grpc.max_send_message_length", MAX_MESSAGE),
                                  ("grpc.so_reuseport", 0)])
    addr = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    if server.add_insecure_port(addr) == 0:
        sys.stderr.write("grpcapp: cannot listen on %s\n" % addr)
        sys.exit(1)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    sys.stderr.write("grpcapp listening on %s (h2c)\n" % addr)
    sys.stderr.flush()
    while not stop.wait(1):
        pass
    server.stop(2).wait()


if __name__ == "__main__":
    main()
