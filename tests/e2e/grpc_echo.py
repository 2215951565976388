"""A gRPC app for the HTTP/2 client tests (python3-grpcio, no protoc: bytes in,
bytes out). It speaks h2c with prior knowledge only, as gRPC servers do.

    grpc_echo.py [--port P] --log FILE

/kp.Echo/Unary: b"echo:" + request; request b"fail" ends with INVALID_ARGUMENT
and a grpc-message (a Trailers-Only response). /kp.Echo/Bidi: b"re:" + each
message, as it comes. /kp.Echo/Wait: answers nothing until cancelled; the
cancel is logged. One JSON line per event in --log."""
import argparse
import json
import os
import threading
import time
from concurrent import futures

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log_file = open(args.log, "a", buffering=1)
    lock = threading.Lock()

    def log(**event):
        with lock:
            log_file.write(json.dumps(event) + "\n")

    def unary(req, ctx):
        log(ev="call", method="Unary", authority=dict(ctx.invocation_metadata()).get(":authority"))
        if req == b"fail":
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input: fail")
        return b"echo:" + req

    def bidi(requests, ctx):
        log(ev="call", method="Bidi")
        for m in requests:
            yield b"re:" + m

    def wait(req, ctx):
        log(ev="call", method="Wait")
        done = threading.Event()
        ctx.add_callback(lambda: (log(ev="cancelled", method="Wait"), done.set()))
        done.wait(30)
        return b"late"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("kp.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Wait": grpc.unary_unary_rpc_method_handler(wait),
    }),))
    server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
