"""The autoscaler's stats on the metrics port (Prometheus text and Knative's
Stat protobuf) and the user-facing request metrics."""
import re
import struct
import subprocess
import time

import kp

# promtool lints Knative's counter names (the queue-proxy's and the
# activator's); both lines follow from the names Knative's dashboards query
# (as tests/unit/promtool_check.h allows).
ALLOWED_LINTS = {
    f'{name} {problem}'
    for name in ("revision_app_request_count", "activator_request_count")
    for problem in ('counter metrics should have "_total" suffix',
                    'non-histogram and non-summary metrics should not have "_count" suffix')
}

LABELS = ('{destination_configuration="",destination_namespace="default",'
          'destination_pod="hello-pod",destination_revision="hello-00001"}')


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode()
    lines = [l for l in out.splitlines() if l.strip()]
    if r.returncode == 0:
        assert lines == [], out
    else:
        assert r.returncode == 3, "promtool exit %d:\n%s\n--- text ---\n%s" % (
            r.returncode, out, text[:3000])
        bad = [l for l in lines if l not in ALLOWED_LINTS]
        assert not bad, "promtool lint problems:\n" + out


def parse_prom(text):
    """{(name, labels-string): float}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$", line)
        assert m, "unparseable line %r" % line
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def decode_stat(buf):
    """Knative's metrics.Stat (common/autoscaling/stat.proto) from protobuf wire bytes."""
    names = {1: "pod_name", 2: "average_concurrent_requests",
             3: "average_proxied_concurrent_requests", 4: "request_count",
             5: "proxied_request_count", 6: "process_uptime", 7: "timestamp"}
    stat = {"pod_name": "", "average_concurrent_requests": 0.0,
            "average_proxied_concurrent_requests": 0.0, "request_count": 0.0,
            "proxied_request_count": 0.0, "process_uptime": 0.0, "timestamp": 0}
    i = 0

    def varint():
        nonlocal i
        shift = v = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < len(buf):
        key = varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            v = varint()
            if v >= 1 << 63:
                v -= 1 << 64
        elif wt == 1:
            v = struct.unpack("<d", buf[i:i + 8])[0]
            i += 8
        elif wt == 2:
            n = varint()
            v = buf[i:i + n].decode()
            i += n
        elif wt == 5:
            v = struct.unpack("<f", buf[i:i + 4])[0]
            i += 4
        else:
            raise AssertionError("bad wire type %d at %d in %r" % (wt, i, buf))
        assert field in names, "unknown field %d" % field
        expected_wt = {1: 2, 7: 0}.get(field, 1)
        assert wt == expected_wt, "field %d wire type %d" % (field, wt)
        stat[names[field]] = v
    assert i == len(buf)
    return stat


def get_stat(p):
    r = kp.request(p.metrics_port, "/metrics", headers={"Accept": "application/protobuf"})
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/protobuf", r.headers
    return decode_stat(r.body)


def test_prometheus_text_passes_promtool(pod):
    p = pod()
    assert p.get("/").status == 200
    r = kp.request(p.metrics_port, "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain"), r.headers
    promtool_check(r.text)
    m = parse_prom(r.text)
    for name in ("queue_average_concurrent_requests", "queue_average_proxied_concurrent_requests",
                 "queue_requests_per_second", "queue_proxied_operations_per_second",
                 "process_uptime"):
        assert (name, LABELS) in m, (name, sorted(m))
    assert m[("process_uptime", LABELS)] > 0


def test_idle_stat_protobuf(pod):
    p = pod()
    s1 = get_stat(p)
    assert s1["pod_name"] == "hello-pod"
    assert s1["average_concurrent_requests"] == 0
    assert s1["request_count"] == 0
    assert s1["timestamp"] == 0
    time.sleep(0.3)
    s2 = get_stat(p)
    assert 0 < s1["process_uptime"] <= s2["process_uptime"] < 30


def test_stat_under_known_load(pod):
    # 3 plain + 2 activator-proxied clients, each 200 ms per request, for 3 s:
    # concurrency 5 (2 proxied), 25 requests/s (10 proxied).
    p = pod()
    url = p.url("/?sleep=200")
    plain = kp.run_in_thread(kp.hey, url, c=3, z="3s")
    proxied = kp.run_in_thread(kp.hey, url, c=2, z="3s", headers=["K-Proxy-Request: activator"])
    time.sleep(2.2)
    s = get_stat(p)
    text = kp.request(p.metrics_port, "/metrics").text
    codes1, out1 = plain(20)
    codes2, out2 = proxied(20)
    assert set(codes1) == {200} and set(codes2) == {200}, (out1, out2)
    tol = 1.5
    assert abs(s["average_concurrent_requests"] - 5) <= tol, s
    assert abs(s["average_proxied_concurrent_requests"] - 2) <= tol, s
    assert 15 <= s["request_count"] <= 35, s
    assert 5 <= s["proxied_request_count"] <= 15, s
    assert s["pod_name"] == "hello-pod"
    m = parse_prom(text)
    assert abs(m[("queue_average_concurrent_requests", LABELS)] - 5) <= tol, text
    assert 15 <= m[("queue_requests_per_second", LABELS)] <= 35, text
    assert 5 <= m[("queue_proxied_operations_per_second", LABELS)] <= 15, text
    promtool_check(text)


PROBES = [  # the probes a revision pod is sent, all answered 200 by the queue-proxy
    {"User-Agent": "kube-probe/1.29", "K-Network-Probe": "queue"},
    {"User-Agent": "Knative-Activator-Probe", "K-Network-Probe": "queue"},
    {"User-Agent": "Knative-Autoscaling-Probe", "K-Network-Probe": "queue"},
    {"K-Network-Probe": "probe", "K-Network-Hash": "h"},
]


def next_report(p, after, floor):
    """Polls the stats port until its report's request_count differs from
    `after`; returns (report, floor), where floor is a time before which that
    report's window cannot have closed: the send time of the last poll that
    still saw the old report (or the floor given)."""
    give_up = time.monotonic() + 3 * kp.SLOW
    while True:
        sent = time.monotonic()
        s = get_stat(p)
        if s["request_count"] != after:
            return s, floor
        floor = sent
        assert sent < give_up, "request_count stayed %r for 3 s: %r" % (after, s)
        time.sleep(0.02)


def test_probes_are_not_counted_as_traffic(pod):
    """In one reporting window, 5 real requests (2 through the activator) and
    20 probes of four kinds: that window's report counts the real ones (so
    counting works in that very window) and none of the probes, as Knative's
    ProxyHandler skips kubelet probes and its probe handlers answer the
    others before anything is counted."""
    p = pod()
    for _ in range(3):
        kp.wait_until(lambda: get_stat(p)["request_count"] == 0, 5, what="an idle report")
        # A marker request, then the first report that counts it: that
        # report's window closed after `floor`, so the next window stays open
        # until at least floor + 1 s; the burst must end before then.
        floor = time.monotonic()
        assert p.get("/").status == 200
        marker, floor = next_report(p, 0, floor)
        app_before = p.app_stats()["requests"]
        for i in range(5):
            headers = {"K-Proxy-Request": "activator"} if i % 2 else None
            assert p.get("/", headers=headers).status == 200
            for probe in PROBES:
                r = p.get("/", headers=probe)
                assert r.status == 200, (probe, r)
        if time.monotonic() < floor + 0.9:
            break  # the whole burst fell in the window after the marker's
    else:
        raise AssertionError("the burst never fit in one 1 s reporting window")
    assert p.app_stats()["requests"] - app_before == 5
    s, _ = next_report(p, marker["request_count"], floor)
    # request_count and proxied_request_count are rates over the ~1 s window
    assert abs(s["request_count"] - 5) < 0.5, ("5 real requests, 20 probes", s)
    assert abs(s["proxied_request_count"] - 2) < 0.5, ("2 of them proxied", s)
    print("requests/s: marker's window %.3f; burst's window %.3f (%.3f proxied)"
          % (marker["request_count"], s["request_count"], s["proxied_request_count"]))


def test_user_request_metrics_by_code_class(pod):
    p = pod(SERVING_REQUEST_METRICS_BACKEND="prometheus")
    for path, n in (("/", 3), ("/?status=404", 2), ("/?status=503", 1)):
        for _ in range(n):
            p.get(path)
    lab = ('{configuration_name="",container_name="queue-proxy",namespace_name="default",'
           'pod_name="hello-pod",response_code="%s",response_code_class="%s",'
           'revision_name="hello-00001",service_name="hello"}')
    want = {lab % ("200", "2xx"): 3, lab % ("404", "4xx"): 2, lab % ("503", "5xx"): 1}

    def counts():
        r = kp.request(p.user_metrics_port, "/metrics")
        assert r.status == 200, r
        m = parse_prom(r.text)
        got = {k[1]: v for k, v in m.items() if k[0] == "revision_app_request_count"}
        return r.text if got == want else None

    text = kp.wait_until(counts, 5, interval=0.1, what="revision_app_request_count %r" % want)
    promtool_check(text)
    m = parse_prom(text)
    # latency histogram: 26 buckets per series (25 bounds + +Inf), counts agree
    for (code, cls), n in ((("200", "2xx"), 3), (("404", "4xx"), 2), (("503", "5xx"), 1)):
        base = lab % (code, cls)
        assert m[("revision_app_request_latencies_count", base)] == n
        buckets = [k for k in m if k[0] == "revision_app_request_latencies_bucket"
                   and k[1].startswith(base[:-1] + ",")]
        assert len(buckets) == 26, buckets
        assert m[("revision_app_request_latencies_bucket", base[:-1] + ',le="+Inf"}')] == n


def test_user_metrics_port_closed_without_backend(pod):
    p = pod()
    assert not kp.port_open(p.user_metrics_port)
