"""A gRPC app that serves grpc.health.v1.Health/Check (python3-grpcio, no
grpc_health module: the two messages are encoded by hand).

    grpc_health_app.py --port P --log FILE --status-file FILE

Each Check answers HealthCheckResponse{status}, status read from
--status-file at the call (SERVING, NOT_SERVING, or a number; SERVING when
the file is absent); a service named "missing" gets NOT_FOUND, as
grpc's own health servicer answers for a service it does not know. One JSON
line per call in --log: the service asked about and the call's metadata."""
import argparse
import json
import os
import threading
import time
from concurrent import futures

import grpc

STATUS = {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2}


def decode_service(msg):
    """HealthCheckRequest.service (field 1, length-delimited), "" if absent."""
    i, service = 0, ""
    while i < len(msg):
        key = msg[i]
        i += 1
        if key != 0x0A:
            raise ValueError("unexpected field key %r" % key)
        n, shift = 0, 0
        while True:
            b = msg[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        service = msg[i:i + n].decode()
        i += n
    return service


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--status-file", required=True)
    args = ap.parse_args()
    log_file = open(args.log, "a", buffering=1)
    lock = threading.Lock()

    def check(req, ctx):
        service = decode_service(req)
        md = {k: v for k, v in ctx.invocation_metadata()}
        with lock:
            log_file.write(json.dumps({"service": service, "metadata": md}) + "\n")
        if service == "missing":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        try:
            with open(args.status_file) as f:
                text = f.read().strip()
        except FileNotFoundError:
            text = "SERVING"
        status = STATUS[text] if text in STATUS else int(text)
        return bytes([0x08, status]) if status else b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}),))
    server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
