"""Malformed and oversized requests are refused with the right status, never
reach the app, and the queue-proxy keeps serving."""
import re
import time

import pytest

import kp

CASES = {
    "cl_and_te": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "two_content_lengths": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            b"Content-Length: 6\r\n\r\nhello!", 400),
    "bad_chunk_size": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "negative_content_length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    "url_9000_bytes": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "headers_70_kib": (b"GET / HTTP/1.1\r\nHost: x\r\n"
                       + b"".join(b"X-Pad-%02d: %s\r\n" % (i, b"p" * 1000) for i in range(70))
                       + b"\r\n", 431),
    "headers_101": (b"GET / HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-H-%03d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    "not_http": (b"HELLO WORLD\r\n\r\n", 400),
    "bad_header_line": (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
    "obs_fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    "obs_fold_after_empty_value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n", 400),
    "bad_version": (b"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400),
    # Well-formed, but a major version we do not speak (RFC 9110 §15.6.6).
    "unsupported_version": (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
}


@pytest.fixture
def shared_pod(procs):
    return kp.Pod(procs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_request_refused_and_process_stays_up(shared_pod, case):
    p = shared_pod
    data, status = CASES[case]
    before = p.app_stats()["requests"]
    t0 = time.monotonic()
    out = kp.raw(p.qp_port, data, timeout=5)
    assert kp.status_of(out) == status, out[:300]
    # the connection is closed after the refusal (no waiting for our timeout)
    assert time.monotonic() - t0 < 3 * kp.SLOW
    assert p.qp.poll() is None, p.qp.describe()
    if case != "bad_chunk_size":  # bodies stream: the app may see the head of that one
        assert p.app_stats()["requests"] == before, "a refused request reached the app"
    r = p.get("/")
    assert (r.status, r.body) == (200, b"Hello World!\n")


def test_within_limits_is_served(pod):
    p = pod()
    # 95 headers, 8000-byte URL, 60 KiB head: all below the limits
    r = p.get("/?q=" + "a" * 7990, headers={"X-H-%03d" % i: "v" for i in range(95)})
    assert r.status == 200, r
    r = p.get("/", headers={"X-Pad-%02d" % i: "p" * 1000 for i in range(58)})
    assert r.status == 200, r


def test_empty_header_values_are_served(pod):
    # RFC 9110 §5.5: a field value may be empty; Go clients send such fields
    # (Knative's probes send an empty HTTP2-Settings).
    p = pod()
    out = kp.raw(p.qp_port, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \r\nX-B:\r\n"
                 b"Connection: close\r\n\r\n")
    assert kp.status_of(out) == 200, out[:300]


def test_pipelined_requests_answered_in_order(pod):
    p = pod()
    out = kp.raw(p.qp_port, b"GET /?sleep=100 HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /?status=201 HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    statuses = [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
    assert statuses == [200, 201, 200], out


def test_tls_client_hello_on_plain_port_is_closed(pod):
    p = pod()
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n"
    t0 = time.monotonic()
    out = kp.raw(p.qp_port, hello, timeout=5)
    assert out == b"" or kp.status_of(out) == 400, out[:200]
    assert time.monotonic() - t0 < 3 * kp.SLOW
    assert p.get("/").status == 200
