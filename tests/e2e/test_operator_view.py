"""What an operator sees of a running activator: the autoscaler's state in
/status and /metrics (Knative's names), the request-latency histogram, each
scale decision's inputs in the debug log as JSON numbers, the plain-text log
format, and `activator status` (once, and -w following a cold start)."""

import concurrent.futures
import json
import os
import re
import select
import signal
import subprocess
import time

import kp
from activator_harness import BUILD, Activator, free_port, helloworld_config
from test_metrics import promtool_check

REV = "helloworld-go-00001"
KNATIVE_LABELS = ('configuration_name="helloworld-go",namespace_name="default",'
                  f'revision_name="{REV}",service_name="helloworld-go"')


def samples(text):
    """{(name, labels-string): value} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = re.fullmatch(r"([a-z_]+)(\{.*\})? (\S+)", line)
            assert m, line
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def gauge(text, name):
    return samples(text)[(name, "{" + KNATIVE_LABELS + "}")]


def load(act, seconds, concurrency=12, path="/?sleep=300"):
    """Keeps `concurrency` requests going for `seconds`; returns their statuses."""
    deadline = time.monotonic() + seconds

    def worker():
        codes = []
        while time.monotonic() < deadline:
            codes.append(act.request(path)[0])
        return codes

    pool = concurrent.futures.ThreadPoolExecutor(concurrency)
    return [pool.submit(worker) for _ in range(concurrency)], pool


def status_cli(*args, timeout=10):
    return subprocess.run([os.path.join(BUILD, "activator"), "status", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_status_and_metrics_show_the_autoscaler_under_load(activator_factory):
    act = activator_factory(helloworld_config())
    futures, pool = load(act, 4 * kp.SLOW)
    try:
        def busy():
            a = act.revision_status(REV)["autoscaler"]
            return a if a["stable_concurrency"] > 0 and a["panic_concurrency"] > 0 else None
        seen = kp.wait_until(busy, 10, interval=0.1, what="stable and panic concurrency > 0")
        text = act.metrics()
    finally:
        codes = [c for f in futures for c in f.result()]
        pool.shutdown()
    assert codes and set(codes) == {200}, set(codes)
    rev = act.revision_status(REV)
    assert rev["desired_pods"] >= 1 and rev["ready_pods"] >= 1, rev
    assert isinstance(seen["panic_mode"], bool), seen
    assert seen["target_concurrency_per_pod"] == 7  # containerConcurrency 10 × 70 %
    assert seen["reason"] in ("stable", "panic", "initial scale", "poke: request waiting"), seen
    assert rev["last_scale"]["to"] == rev["desired_pods"], rev["last_scale"]  # the last change
    assert rev["last_failure"] is None, rev["last_failure"]
    assert rev["container_concurrency"] == 10 and rev["timeout_seconds"] == 300
    # Knative's autoscaler series, with Knative's revision labels.
    assert gauge(text, "autoscaler_stable_request_concurrency") > 0, text
    assert gauge(text, "autoscaler_panic_request_concurrency") > 0, text
    assert gauge(text, "autoscaler_desired_pods") >= 1
    assert gauge(text, "autoscaler_requested_pods") >= 1
    assert gauge(text, "autoscaler_actual_pods") >= 1
    assert gauge(text, "autoscaler_panic_mode") in (0, 1)
    assert gauge(text, "autoscaler_target_concurrency_per_pod") == 7
    # target-burst-capacity 211 is more than the pods hold: negative.
    assert gauge(text, "autoscaler_excess_burst_capacity") < 0
    for name in ("autoscaler_not_ready_pods", "autoscaler_terminating_pods"):
        assert gauge(text, name) >= 0
    promtool_check(text)  # Knative's activator counter name is the one lint allowed


def test_latency_histogram_counts_each_request_by_code(activator_factory):
    act = activator_factory(helloworld_config())
    for _ in range(5):
        assert act.request("/")[0] == 200
    assert act.request("/?status=404")[0] == 404
    m = samples(act.metrics())

    def labels(code):
        return ('{configuration_name="helloworld-go",container_name="activator",'
                'namespace_name="default",pod_name="",response_code="%d",'
                'response_code_class="%dxx",revision_name="%s",service_name="helloworld-go"}'
                % (code, code // 100, REV))
    for code, n in ((200, 5), (404, 1)):
        assert m[("activator_request_latencies_count", labels(code))] == n, m
        assert m[("activator_request_count", labels(code))] == n
        buckets = sorted((float(re.search(r'le="([^"]+)"', k[1]).group(1)), v) for k, v in m.items()
                         if k[0] == "activator_request_latencies_bucket"
                         and k[1].startswith(labels(code)[:-1] + ","))
        # Knative's activator buckets, in milliseconds: 5 .. 100000, then +Inf.
        assert [b for b, _ in buckets][:3] == [5, 10, 20] and buckets[-2][0] == 100000, buckets
        assert len(buckets) == 27 and buckets[-1] == (float("inf"), n), buckets
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), buckets  # cumulative
    # The first 200 waited for a cold start; its time is in the sum.
    assert m[("activator_request_latencies_sum", labels(200))] > 0


def test_debug_log_gives_each_decisions_inputs_as_numbers(activator_factory):
    act = activator_factory(helloworld_config(), args=["--log-level", "debug"])
    assert act.request("/")[0] == 200
    kp.wait_until(lambda: any(l.get("message") == "scale decision" and l.get("ready_pods") == 1
                              for l in act.log_lines()), 10, interval=0.1,
                  what="a decision with the pod ready")
    lines = act.log_lines()
    decisions = [l for l in lines if l.get("message") == "scale decision"
                 and l.get("revision") == "default/" + REV]
    assert decisions, lines[-20:]
    for d in decisions:
        for key in ("observed_stable", "observed_panic", "target", "stable_pods", "panic_pods",
                    "ready_pods", "held", "in_flight", "peer_load", "from", "desired"):
            assert type(d[key]) in (int, float), (key, d)
        assert type(d["panic_mode"]) is bool and isinstance(d["why"], str), d
    first = decisions[0]
    assert first["target"] == 7, first
    up = [d for d in decisions if d["from"] == 0 and d["desired"] == 1]
    assert up and up[0]["why"] == "poke: request waiting" and up[0]["held"] >= 1, decisions[:3]
    scale = [l for l in lines if l.get("message") == "scale"]
    assert scale[0]["from"] == 0 and scale[0]["to"] == 1 and scale[0]["held"] >= 1, scale
    cold = [l for l in lines if l.get("message") == "cold start"]
    assert cold and type(cold[0]["held_ms"]) is float and cold[0]["held_ms"] > 0, cold
    done = [l for l in lines if l.get("message") == "request done"]
    assert done and done[0]["status"] == 200 and type(done[0]["duration_ms"]) is float, done


def test_text_log_format_reads_as_lines_of_words(activator_factory):
    act = activator_factory(helloworld_config(), args=["--log-format", "text"])
    assert act.request("/")[0] == 200
    kp.wait_until(lambda: "cold start" in act.logs(), 5, what="the cold start logged")
    lines = act.logs().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    scale = [l for l in lines if " activator: scale  " in l]
    assert scale and re.fullmatch(
        stamp + r" INFO    activator: scale  revision=default/helloworld-go-00001 from=0 to=1 "
        r'why="poke: request waiting" ready=0 held=1', scale[0]), scale
    assert not [l for l in lines if l.startswith("{")], lines[:10]
    # The pods it starts log the same way: their lines share its stderr
    # (written by their own processes, so perhaps a little later).
    kp.wait_until(lambda: re.search("^" + stamp + r" INFO    queue-proxy: serving on ", act.logs(),
                                    re.M), 5, what="the queue-proxy's line, in text")
    assert not [l for l in act.logs().splitlines() if l.startswith("{")]


def test_bad_log_format_is_refused_naming_the_flag():
    # (A config that does not exist: were the flag taken, it would not serve.)
    r = subprocess.run([os.path.join(BUILD, "activator"), "--log-format", "xml", "--config",
                        "/nonexistent/config.json"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert r.stderr == ('activator: --log-format "xml" (or KP_LOG_FORMAT): '
                        'expected json or text\n'), r.stderr


def test_status_command_prints_tables(activator_factory):
    act = activator_factory(helloworld_config())
    assert act.request("/")[0] == 200
    r = status_cli("--admin", f"127.0.0.1:{act.admin_port}")
    assert r.returncode == 0 and r.stderr == "", r
    out = r.stdout.splitlines()
    assert re.fullmatch(r"SERVICE +NAMESPACE +URL +TRAFFIC", out[0]), out
    assert re.fullmatch(r"helloworld-go +default +helloworld-go\.default\.127\.0\.0\.1\.sslip\.io +"
                        r"helloworld-go-00001=100% candidate:helloworld-go-00002=0%", out[1]), out
    header = out.index(next(l for l in out if l.startswith("REVISION")))
    assert out[header].split() == ["REVISION", "SERVICE", "DESIRED", "READY", "HELD", "IN-FLIGHT",
                                   "STABLE", "PANIC", "TARGET", "MODE", "LAST", "SCALE", "REASON",
                                   "FAILURE"], out[header]
    row = out[header + 1].split()
    assert row[:6] == [REV, "helloworld-go", "1", "1", "0", "0"], out[header + 1]
    assert row[8:10] == ["7", "stable"] or row[8:10] == ["7", "panic"], row
    assert row[10] == "0->1" and row[12] == "ago", row  # the last scale and its age
    assert out[header + 2].split()[:3] == ["helloworld-go-00002", "helloworld-go", "0"]
    pods = out.index(next(l for l in out if l.startswith("POD ")))
    assert out[pods].split() == ["POD", "REVISION", "STATUS", "IN-FLIGHT", "AGE"]
    assert re.fullmatch(r"helloworld-go-00001-1 +helloworld-go-00001 +Ready +0 +\d+s",
                        out[pods + 1]), out
    # :PORT is the loopback address.
    short = status_cli("--admin", f":{act.admin_port}")
    assert short.returncode == 0 and short.stdout.splitlines()[:2] == out[:2], short


def test_status_command_says_when_nothing_answers():
    port = free_port()
    r = status_cli("--admin", f"127.0.0.1:{port}")
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr == (f"activator status: cannot reach the activator's admin port at "
                        f"127.0.0.1:{port}: Connection refused (is the activator running? --admin "
                        f"or KP_ACTIVATOR_ADMIN names another address)\n"), r.stderr
    r = status_cli("--admin", "localhost")
    assert r.returncode == 2 and "--admin \"localhost\": expected HOST:PORT" in r.stderr, r
    r = status_cli("-w", "--admin", f"127.0.0.1:{port}")  # -w too: the first fetch must work
    assert r.returncode == 1 and "cannot reach" in r.stderr, r


def read_until(proc, pattern, timeout):
    """Reads the watcher's output until `pattern` matches a line of it;
    returns all of it."""
    buf = ""
    deadline = time.monotonic() + timeout * kp.SLOW
    while not re.search(pattern, buf, re.M):
        left = deadline - time.monotonic()
        assert left > 0, f"no {pattern!r} in the watcher's output:\n{buf[-3000:]}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536).decode()
            assert chunk, f"the watcher exited ({proc.poll()}):\n{buf[-3000:]}"
            buf += chunk
    return buf


def test_status_watch_shows_the_pod_a_request_starts(activator_factory):
    act = activator_factory(helloworld_config())
    watcher = subprocess.Popen([os.path.join(BUILD, "activator"), "status", "-w", "--interval",
                                "0.2", "--admin", f"127.0.0.1:{act.admin_port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        before = read_until(watcher, r"^No pods\.$", 5)
        assert re.search(r"^Every 0\.2s: activator status --admin 127\.0\.0\.1:%d " %
                         act.admin_port, before, re.M), before
        assert re.search(r"^helloworld-go-00001 +helloworld-go +0 +0 ", before, re.M), before
        pod_row = r"^helloworld-go-00001-1 +helloworld-go-00001 +Ready +1 "
        assert not re.search(pod_row, before, re.M)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(act.request, "/?sleep=1000")
            # While the request runs: its pod is there and ready, the
            # revision wants it and has it, one request in flight.
            out = read_until(watcher, pod_row, 10)
            assert first.result(timeout=30)[0] == 200
        view = [v for v in re.split(r"^Every .*$", out, flags=re.M) if re.search(pod_row, v, re.M)]
        assert re.search(r"^helloworld-go-00001 +helloworld-go +1 +1 +0 +1 ", view[0], re.M), view
        assert re.search(r" 0->1 \d+s ago +poke: request waiting ", view[0]), view
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(5)
        watcher.stdout.close()


def test_admin_paths_are_matched_as_knatives_servemux_does(activator_factory):
    """"//status", "/./metrics", "/x/../load" and "/%68ealthz" name their page,
    as Go's ServeMux reads a path; a longer path or another page is a 404."""
    act = activator_factory(helloworld_config())
    base = f"http://127.0.0.1:{act.admin_port}"

    def get(path):
        r = subprocess.run(["curl", "-s", "--path-as-is", "-o", "-", "-w", "\n%{http_code}",
                            base + path], capture_output=True, text=True, timeout=10)
        body, _, code = r.stdout.rpartition("\n")
        return int(code), body

    code, body = get("//status")
    assert code == 200 and json.loads(body)["services"][0]["name"] == "helloworld-go"
    code, body = get("/./metrics?x=1")
    assert code == 200 and "autoscaler_desired_pods{" in body
    assert get("/x/../load")[0] == 200
    assert get("/%68ealthz") == (200, "ok\n")
    for path in ("/statusx", "/status/", "/metrics/extra", "/x/status"):
        assert get(path)[0] == 404, path
