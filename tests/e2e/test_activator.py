"""The activator end to end on the local backend: scale from zero, scale with
load under the per-pod concurrency limit, scale to zero, routing and traffic
split, and its 404/503 answers."""

import concurrent.futures
import json
import os
import time

from activator_harness import ASAN, HOST, hey, helloworld_config

FAST_SCALE = {"stable-window": "6s", "scale-to-zero-grace-period": "6s"}



def test_first_request_from_zero_starts_a_pod(activator_factory):
    act = activator_factory(helloworld_config())
    assert act.pod_processes() == []
    assert act.revision_status("helloworld-go-00001")["ready_pods"] == 0

    assert act.request("/") == (200, "Hello World!\n")
    rev = act.revision_status("helloworld-go-00001")
    assert rev["ready_pods"] == 1 and len(rev["pods"]) == 1
    assert len(act.pod_processes()) == 2  # queue-proxy + app
    assert rev["cold_starts"] == 1
    cold = [l for l in act.log_lines() if l.get("message") == "cold start"]
    assert cold and cold[0]["revision"] == "default/helloworld-go-00001"

    status, body = act.request("/", host="candidate-" + HOST)
    assert (status, body) == (200, "Hello Knative!\n")


def loaded_libraries(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in f if "/" in line}


def test_local_backend_loads_no_libcurl(activator_factory):
    """libcurl (and GnuTLS, Kerberos... with it) is loaded only by the
    kubernetes backend: the local activator stays small."""
    act = activator_factory(helloworld_config())
    assert act.request("/") == (200, "Hello World!\n")
    libs = loaded_libraries(act.proc.pid)
    assert not [l for l in libs if l.startswith(("libcurl", "libgnutls"))], sorted(libs)


def test_burst_of_300_at_zero_loses_nothing(activator_factory):
    act = activator_factory(helloworld_config())
    codes = hey(act.url("/"), HOST, concurrency=100, requests=300)
    assert codes == {200: 300}


def test_unknown_host_is_404_naming_it(activator_factory):
    act = activator_factory(helloworld_config())
    status, body = act.request("/", host="nope.default.127.0.0.1.sslip.io")
    assert status == 404
    assert 'nope.default.127.0.0.1.sslip.io' in body


def test_routing_by_domain_suffix_and_knative_headers(activator_factory):
    act = activator_factory(helloworld_config())
    for host in ("helloworld-go.default.1.2.3.4.xip.io", "helloworld-go.default.example.com:8080",
                 "HelloWorld-Go.Default.127.0.0.1.sslip.io"):
        assert act.request("/", host=host) == (200, "Hello World!\n"), host
    status, body = act.request("/", host="anything", headers={
        "Knative-Serving-Revision": "helloworld-go-00002",
        "Knative-Serving-Namespace": "default"})
    assert (status, body) == (200, "Hello Knative!\n")


def test_forwarded_request_carries_original_host(activator_factory):
    act = activator_factory(helloworld_config())
    status, body = act.request("/headers", headers={"Knative-Serving-Namespace": "x"})
    assert status == 200
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip()
               for l in body.splitlines() if ":" in l}
    # The queue-proxy turns K-Original-Host back into Host for the app.
    assert headers["host"] == HOST
    assert "k-original-host" not in headers
    assert "knative-serving-namespace" not in headers
    assert headers["x-forwarded-for"].startswith("127.0.0.1")


def test_traffic_split_80_20(activator_factory):
    act = activator_factory(helloworld_config(split=(80, 20), autoscaler={"min-scale": "1"}))
    counts = {}
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        for status, body in pool.map(lambda _: act.request("/"), range(1000)):
            assert status == 200
            counts[body] = counts.get(body, 0) + 1
    # Binomial(1000, 0.2): sd 12.6; allow 4 sd.
    assert 150 <= counts.get("Hello Knative!\n", 0) <= 250, counts
    assert counts.get("Hello World!\n", 0) + counts.get("Hello Knative!\n", 0) == 1000


def test_queue_overflow_is_503(activator_factory):
    act = activator_factory(helloworld_config(env={"STARTUP_DELAY_MS": "3000"}),
                            args=["--max-held", "5"])
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: act.request("/"), range(12)))
    full = [b for s, b in results if s == 503]
    ok = [b for s, b in results if s == 200]
    assert len(full) == 7 and all(b == "pending request queue full\n" for b in full), results
    assert len(ok) == 5


def test_hold_timeout_is_503_with_reason(activator_factory):
    act = activator_factory(helloworld_config(timeout=1, env={"STARTUP_DELAY_MS": "5000"}))
    start = time.time()
    status, body = act.request("/")
    assert status == 503
    assert "helloworld-go-00001" in body and "timed out" in body
    assert 0.9 <= time.time() - start < 4


def test_scale_with_load_never_exceeds_concurrency(activator_factory):
    act = activator_factory(helloworld_config(autoscaler={"max-scale": "8"}))
    duration = "20s" if not ASAN else "12s"
    peak = {"pods": 0}

    def watch():
        end = time.time() + int(duration[:-1])
        while time.time() < end:
            peak["pods"] = max(peak["pods"], act.revision_status("helloworld-go-00001")["ready_pods"])
            time.sleep(0.5)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(watch)
        codes = hey(act.url("/?sleep=100"), HOST, concurrency=50, duration=duration)
        watcher.result()
    assert set(codes) == {200}, codes
    assert peak["pods"] >= 5, peak
    # Each app reports the most requests it ever had at once.
    rev = act.revision_status("helloworld-go-00001")
    maxima = []
    for pod in rev["pods"]:
        if not pod["ready"]:
            continue
        import http.client
        conn = http.client.HTTPConnection(pod["ip"], pod["port"], timeout=10)
        conn.request("GET", "/stats")
        maxima.append(json.loads(conn.getresponse().read())["max_in_flight"])
        conn.close()
    assert maxima and max(maxima) <= 10, maxima
    assert max(maxima) >= 5, maxima  # load did reach the pods


def test_scale_to_zero_after_grace_period_then_cold_start_again(activator_factory):
    act = activator_factory(helloworld_config(autoscaler=FAST_SCALE))
    assert act.request("/") == (200, "Hello World!\n")
    assert act.pod_processes()
    act.wait_for(lambda: act.revision_status("helloworld-go-00001")["desired_pods"] == 0
                 and not act.pod_processes(), 30, "scale to zero")
    scale_logs = [l for l in act.log_lines() if l.get("message") == "scale"]
    assert any(l["to"] == 0 for l in scale_logs), scale_logs
    assert act.request("/") == (200, "Hello World!\n")
    assert act.revision_status("helloworld-go-00001")["cold_starts"] == 2


def test_metrics_and_status(activator_factory):
    act = activator_factory(helloworld_config())
    act.request("/")
    text = act.metrics()
    assert 'activator_ready_pods{namespace="default",service="helloworld-go",' \
           'revision="helloworld-go-00001"} 1' in text
    assert 'activator_requests_total{namespace="default",service="helloworld-go",' \
           'revision="helloworld-go-00001",code_class="2xx"} 1' in text
    assert "activator_cold_start_seconds_count" in text
    st = act.status()
    svc = st["services"][0]
    assert svc["name"] == "helloworld-go"
    assert svc["traffic"][1] == {"revision_name": "helloworld-go-00002", "percent": 0,
                                 "tag": "candidate"}


def test_sigterm_stops_every_pod(activator_factory):
    act = activator_factory(helloworld_config())
    act.request("/")
    pids = act.pod_processes()
    assert len(pids) == 2
    assert act.stop() == 0
    import os
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, f"pod process {pid} outlived the activator"


def test_bad_config_names_the_field(tmp_path):
    import subprocess
    from activator_harness import BUILD
    cfg = helloworld_config(split=(80, 10))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([f"{BUILD}/activator", "--config", str(path)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0
    assert "traffic" in r.stderr and "100" in r.stderr, r.stderr


def test_config_reload_moves_traffic_and_rejects_a_bad_file(activator_factory):
    act = activator_factory(helloworld_config())
    assert act.request("/") == (200, "Hello World!\n")

    def rewrite(cfg):
        tmp = act.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
        import os
        os.replace(tmp, act.config_path)  # as a ConfigMap update: a new file

    rewrite(helloworld_config(split=(0, 100)))
    act.wait_for(lambda: act.request("/")[1] == "Hello Knative!\n", 10, "traffic moved to 00002")

    rewrite('{"services": [')  # broken: the running config stays
    act.wait_for(lambda: any(l.get("message", "").startswith("config reload rejected")
                             for l in act.log_lines()), 10, "the rejection logged")
    assert act.request("/") == (200, "Hello Knative!\n")

    # A new revision appears and takes the traffic; the old ones stay reachable by tag.
    cfg = helloworld_config()
    svc = cfg["services"][0]
    svc["revisions"].append({"name": "helloworld-go-00003", "containerConcurrency": 10,
                             "env": {"TARGET": "Three"}})
    svc["traffic"] = [{"revisionName": "helloworld-go-00003", "percent": 100},
                      {"revisionName": "helloworld-go-00002", "percent": 0, "tag": "candidate"}]
    rewrite(cfg)
    act.wait_for(lambda: act.request("/")[1] == "Hello Three!\n", 10, "the new revision")
    assert act.request("/", host="candidate-" + HOST) == (200, "Hello Knative!\n")
    names = [r["name"] for r in act.status()["services"][0]["revisions"]]
    assert names == ["helloworld-go-00001", "helloworld-go-00002", "helloworld-go-00003"]


def test_reload_refuses_bad_autoscaling_annotations_and_keeps_running(activator_factory):
    """Knative's webhook rules on reload: an unknown autoscaling.knative.dev/
    key or a bad value is refused with a log line naming the key and what
    is accepted, and the running config stays; a valid Knative setting this
    autoscaler does not act on is applied with a note saying why."""
    act = activator_factory(helloworld_config())
    assert act.request("/") == (200, "Hello World!\n")

    def rewrite(annotations):
        cfg = helloworld_config(split=(0, 100))  # would move the traffic
        cfg["services"][0]["revisions"][1]["annotations"] = annotations
        tmp = act.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.replace(tmp, act.config_path)

    def rejections():
        return [line["error"] for line in act.log_lines()
                if line.get("message", "").startswith("config reload rejected")]

    rewrite({"autoscaling.knative.dev/min-scael": "1"})
    act.wait_for(lambda: len(rejections()) == 1, 10, "the unknown key refused")
    err = rejections()[0]
    assert "services[0].revisions[1].annotations: autoscaling.knative.dev/min-scael: unknown " \
        "autoscaling annotation" in err, err
    assert "min-scale, max-scale" in err and "activation-scale" in err, err
    assert act.request("/") == (200, "Hello World!\n")  # the running config stays

    rewrite({"autoscaling.knative.dev/max-scale": "many"})
    act.wait_for(lambda: len(rejections()) == 2, 10, "the bad value refused")
    err = rejections()[1]
    assert 'autoscaling.knative.dev/max-scale="many": not an integer (expected 0 or more' in err, \
        err
    assert act.request("/") == (200, "Hello World!\n")

    rewrite({"autoscaling.knative.dev/maxScale": "3", "autoscaling.knative.dev/max-scale": "3"})
    act.wait_for(lambda: len(rejections()) == 3, 10, "two spellings of one setting refused")
    assert "sets max-scale a second time" in rejections()[2], rejections()[2]

    rewrite({"autoscaling.knative.dev/max-scale": "3",
             "autoscaling.knative.dev/target-burst-capacity": "200"})
    act.wait_for(lambda: act.request("/")[1] == "Hello Knative!\n", 10, "the valid one applied")
    notes = [line.get("note", "") for line in act.log_lines()
             if line.get("message") == "autoscaling annotation"
             and line.get("revision") == "helloworld-go-00002"]
    assert any('autoscaling.knative.dev/target-burst-capacity="200": accepted, not acted on '
               "(the activator stays in the request path" in n for n in notes), notes
    assert len(rejections()) == 3
