"""Pods drained the way kubelets really drain them. A kubelet before 1.26
sends the app's preStop hook as `GET //wait-for-drain` (it joins
"http://host:port/" and the path), later ones as `GET /wait-for-drain`; it
waits for the hook, then sends the app SIGTERM, while the queue-proxy got
its SIGTERM at once. The queue-proxy must answer both spellings by draining
(Knative's Go mux routes them to the same handler), or the app stops under
requests still in flight.

First the queue-proxy alone, then the simulator's hook client against a
stand-in for Knative's mux, then rollouts and scale-downs under hey through
the activator's kubernetes backend, with both kubelet styles."""

import http.server
import json
import os
import re
import subprocess
import threading
import time

import pytest

import kp
from activator_harness import ASAN, HOST, Activator, helloworld_config, stop_all
from fake_kube import FakeKube, activator_rules
from kubelet_sim import KUBELET_STYLES, KubeletSim, run_http_get_hook

KUBE_PROBE = {"User-Agent": "kube-probe/1.23", "K-Network-Probe": "queue"}
REV1, REV2 = "helloworld-go-00001", "helloworld-go-00002"
TARGETS = {REV1: "World", REV2: "Knative"}
# hey's concurrency; the sanitizer build is several times slower.
C = 25 if ASAN else 50
QUIET_PERIOD_S = "1"
FAST_SCALE = {"stable-window": "6s", "scale-to-zero-grace-period": "6s"}


# --- the queue-proxy's admin port ---------------------------------------------


def draining(p):
    return p.get("/", headers=KUBE_PROBE).status == 503


@pytest.mark.parametrize("target", [
    "//wait-for-drain",                    # kubelet < 1.26
    "/wait-for-drain",                     # kubelet >= 1.26
    "/./wait-for-drain",
    "/x/../wait-for-drain",
    "/wait%2Dfor%2Ddrain",
    "http://127.0.0.1:8022//wait-for-drain",  # absolute-form
])
def test_wait_for_drain_in_each_spelling_knative_accepts_blocks_until_drained(pod, target):
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS=QUIET_PERIOD_S)
    kp.assert_text(p.get("/", headers=KUBE_PROBE), 200, "queue")
    t0 = time.monotonic()
    waiter = kp.run_in_thread(kp.request, p.admin_port, target, timeout=15)
    kp.wait_until(lambda: draining(p), 3, what="health checks failing once the hook arrived")
    assert waiter.thread.is_alive(), "the hook answered before the quiet period passed"
    r = waiter()
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert took >= 0.9, took
    assert p.get("/").status == 200  # still serving: only SIGTERM closes the port


@pytest.mark.parametrize("target", ["/WAIT-FOR-DRAIN", "/wait-for-drain/", "/wait-for-drainx",
                                    "/wait-for-drain%", "/"])
def test_other_admin_paths_are_404_and_start_no_drain(pod, target):
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS=QUIET_PERIOD_S)
    r = kp.request(p.admin_port, target)
    assert r.status == 404, r
    kp.assert_text(p.get("/", headers=KUBE_PROBE), 200, "queue")


def test_wait_for_drain_answers_only_once_no_request_is_in_flight(pod):
    """The kubelet stops the app as soon as the hook returns: a request
    still at the app then would end in a 502. A quiet period shorter than
    the request must not end the hook."""
    p = pod(KP_DRAIN_QUIET_PERIOD_SECONDS="0.2")
    slow = kp.run_in_thread(p.get, "/?sleep=2000", timeout=20)
    kp.wait_until(lambda: p.app_stats()["in_flight"] == 1, 5, what="request at the app")
    t0 = time.monotonic()
    waiter = kp.run_in_thread(kp.request, p.admin_port, "//wait-for-drain", timeout=15)
    time.sleep(1.0)
    assert waiter.thread.is_alive(), "the hook answered with a request in flight"
    r = slow()
    assert (r.status, r.body) == (200, b"Hello World!\n")
    r = waiter()
    assert r.status == 200, r
    assert 1.5 <= time.monotonic() - t0 < 5 * kp.SLOW


def test_metrics_ports_route_unclean_paths_as_knative_does(pod):
    p = pod()
    r = kp.request(p.metrics_port, "//metrics")
    assert r.status == 200 and b"queue_requests_per_second" in r.body, r
    assert kp.request(p.metrics_port, "/metrics/").status == 404


# --- the simulator's hook client -----------------------------------------------


class GoMuxStandIn(http.server.BaseHTTPRequestHandler):
    """Answers as Knative's admin server does: Go's ServeMux redirects an
    unclean path (301, Location the cleaned path), serves
    /wait-for-drain, 404 otherwise; or redirects to redirect_to."""
    redirect_to = None
    seen = None

    def do_GET(self):
        target = self.requestline.split()[1]  # self.path has "//" folded into "/"
        self.seen.append((target, self.headers.get("User-Agent")))
        path = target.split("?")[0]
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
        elif path != "/" + "/".join(s for s in path.split("/") if s not in ("", ".")):
            self.send_response(301)
            self.send_header("Location", "/" + "/".join(
                s for s in path.split("/") if s not in ("", ".")))
        elif path == "/wait-for-drain":
            self.send_response(200)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def stand_in(ip, redirect_to=None):
    seen = []
    handler = type("Handler", (GoMuxStandIn,), {"redirect_to": redirect_to, "seen": seen})
    srv = http.server.ThreadingHTTPServer((ip, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, seen


def test_hook_client_sends_and_follows_as_each_kubelet_does():
    srv, seen = stand_in("127.0.0.1")
    far, far_seen = stand_in("127.0.0.3")
    hop, _ = stand_in("127.0.0.1", "http://127.0.0.3:%d/wait-for-drain" % far.server_port)
    try:
        port = srv.server_port
        old = run_http_get_hook("1.23", "127.0.0.1", port, "/wait-for-drain", 5)
        assert old == {"hops": [("//wait-for-drain", 301), ("/wait-for-drain", 200)],
                       "error": None}
        assert seen[0] == ("//wait-for-drain", "Go-http-client/1.1")
        new = run_http_get_hook("1.26", "127.0.0.1", port, "/wait-for-drain", 5)
        assert new == {"hops": [("/wait-for-drain", 200)], "error": None}
        assert seen[-1] == ("/wait-for-drain", "kube-lifecycle/1.26")
        # A redirect to another host: Go's default client follows it, the
        # lifecycle client of 1.26 keeps the redirect as the answer.
        assert run_http_get_hook("1.23", "127.0.0.1", hop.server_port, "/wait-for-drain",
                                 5)["hops"] == [("//wait-for-drain", 302), ("/wait-for-drain", 200)]
        assert run_http_get_hook("1.26", "127.0.0.1", hop.server_port, "/wait-for-drain",
                                 5)["hops"] == [("/wait-for-drain", 302)]
        assert len(far_seen) == 1
        # No server: the error is recorded; the kubelet goes on regardless.
        assert run_http_get_hook("1.26", "127.0.0.1", kp.free_port(), "/wait-for-drain",
                                 5)["error"].startswith("ConnectionRefusedError")
        with pytest.raises(ValueError, match="expected one of 1.23, 1.26"):
            run_http_get_hook("1.24", "127.0.0.1", port, "/wait-for-drain", 5)
    finally:
        for s in (srv, far, hop):
            s.shutdown()
            s.server_close()


def test_kubelet_sim_stops_a_pod_as_the_kubelet_and_endpointslice_controller_do(tmp_path):
    """Scale 1 -> 0 with a 1.23 kubelet: the endpoint turns ready false,
    serving true, terminating true; serving false once the readiness probe
    sees the drain; gone when both containers exited. The queue-proxy gets
    SIGTERM at once, the app only after its preStop hook returned."""
    fake = FakeKube().start()
    rev = "hello-00001"
    try:
        fake.add_deployment("default", rev + "-deployment", 0)
        with KubeletSim(fake, kubelet="1.23", termination_grace_period=10) as sim:
            sim.configure(rev, qp_env={"KP_DRAIN_QUIET_PERIOD_SECONDS": QUIET_PERIOD_S})
            fake.set_replicas("default", rev + "-deployment", 1)
            pod = sim.wait_ready(rev, 1)[0]
            seen = []
            publish = fake.set_endpoints

            def record_what_the_api_serves(ns, svc, eps, **kw):
                publish(ns, svc, eps, **kw)
                served = [e["conditions"] for s in fake.slices(ns, svc) for e in s["endpoints"]]
                state = served[0] if served else None
                if not seen or seen[-1] != state:
                    seen.append(state)

            fake.set_endpoints = record_what_the_api_serves
            fake.set_replicas("default", rev + "-deployment", 0)
            sim.wait_pods(rev, 0, timeout=15)
            fake.set_endpoints = publish
        assert seen == [
            {"ready": False, "serving": True, "terminating": True},
            {"ready": False, "serving": False, "terminating": True},
            None], seen
        hook = pod.hook
        assert hook["hops"] == [("//wait-for-drain", 200)] and hook["completed"], hook
        assert pod.sigterm_at["queue-proxy"] < hook["started_at"] + 0.5
        assert pod.sigterm_at["user-container"] >= hook["ended_at"] >= \
            hook["started_at"] + float(QUIET_PERIOD_S) - 0.1
        assert pod.exit_codes == {"queue-proxy": 0, "user-container": 0} and not pod.killed
    finally:
        fake.stop()


# --- rollouts and scale-downs through the kubernetes backend -------------------


@pytest.fixture(params=KUBELET_STYLES)
def cluster(request, tmp_path):
    """A fake API server, a kubelet of the style the test is run with (quiet
    period 1 s, Knative's preStop hook, a 30 s grace period) and a factory
    for activators on the kubernetes backend."""
    fake = FakeKube().start()
    sim = KubeletSim(fake, kubelet=request.param, termination_grace_period=30)
    for rev in (REV1, REV2):
        fake.add_deployment("default", rev + "-deployment", replicas=0)
        sim.configure(rev, app_env={"TARGET": TARGETS[rev]}, container_concurrency=10,
                      qp_env={"KP_DRAIN_QUIET_PERIOD_SECONDS": QUIET_PERIOD_S})
    token = fake.add_user("activator", activator_rules("default"))
    token_file = fake.write_token_file(token, str(tmp_path / "token"))
    started, loads = [], []

    def hey(act, duration):
        load = Hey(act, duration)
        loads.append(load)
        return load

    def activator(config):
        act = Activator(config, ["--backend", "kubernetes", "--kube-api", fake.url,
                                 "--kube-token-file", token_file, "--kube-ca-file", fake.ca_file,
                                 "--lease-namespace", "default", "--lease-duration", "3"])
        started.append(act)
        return act

    class Cluster:
        pass

    c = Cluster()
    c.fake, c.sim, c.activator, c.hey, c.kubelet = fake, sim, activator, hey, request.param
    yield c
    try:
        for load in loads:
            load.kill()
        stop_all(started)
        # The queue-proxies stopped during the test exited on their own: the
        # sanitizers reported at exit, if at all.
        reports = [p.describe() for p in sim.procs.procs
                   if p.name == "queue-proxy" and p.sanitizer_errors()]
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)
    finally:
        sim.stop()
        fake.stop()


class Hey:
    """hey -c C -z duration in the background; result() gives every
    request's status and every error (hey's CSV output leaves errors out)."""

    def __init__(self, act, duration, path="/?sleep=100"):
        self.proc = subprocess.Popen(
            ["hey", "-c", str(C), "-z", duration, "-t", "60", "-host", HOST, act.url(path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def result(self, timeout=120):
        out = self.proc.communicate(timeout=timeout)[0]
        codes, errors, section = {}, {}, None
        for line in out.splitlines():
            if line.startswith("Status code distribution"):
                section = codes
            elif line.startswith("Error distribution"):
                section = errors
            elif section is not None:
                m = re.match(r"\s+\[(\d+)\]\s+(.*)$", line)
                if not m:
                    section = None if line.strip() else section
                    continue
                if section is codes:
                    codes[int(m.group(1))] = int(m.group(2).split()[0])
                else:
                    errors[m.group(2)] = int(m.group(1))
        assert codes or errors, out
        return codes, errors


def rewrite_config(act, cfg):
    tmp = act.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.replace(tmp, act.config_path)  # a new file, as a ConfigMap update


def wait_for(what, predicate, timeout, cluster, act):
    try:
        kp.wait_until(predicate, timeout, interval=0.1, what=what)
    except AssertionError as e:
        raise AssertionError("%s\npods: %r\nactivator: %s" % (
            e, cluster.sim.pods(None, "default", True), json.dumps(act.status()))) from None


def assert_every_pod_drained(cluster, at_least):
    """Each stopped pod's hook reached the drain handler in the spelling its
    kubelet sends and returned only once drained; both containers exited 0
    on SIGTERM, none needed SIGKILL."""
    hooks = cluster.sim.hooks
    assert len(hooks) >= at_least, hooks
    first = {"1.23": "//wait-for-drain", "1.26": "/wait-for-drain"}[cluster.kubelet]
    for h in hooks:
        assert h["completed"] and h["error"] is None, h
        assert h["hops"] == [(first, 200)], h
        assert h["waited"] >= float(QUIET_PERIOD_S) - 0.1, h
    for pod in cluster.sim.stopped:
        assert pod.killed == [] and pod.exit_codes == {"queue-proxy": 0, "user-container": 0}, (
            pod, pod.exit_codes, pod.killed, cluster.sim.logs(pod))


def test_scale_down_under_load_loses_nothing(cluster):
    """hey -c 50 scales 00001 out; max-scale 2 then takes pods away while
    every one of them is busy."""
    act = cluster.activator(helloworld_config(autoscaler=FAST_SCALE))
    load = cluster.hey(act, "25s")
    wait_for("pods scaled out for the load",
             lambda: len(cluster.sim.ready_pods(REV1)) >= (5 if not ASAN else 3), 20, cluster, act)
    peak = len(cluster.sim.ready_pods(REV1))
    cfg = helloworld_config(autoscaler=FAST_SCALE)
    cfg["services"][0]["revisions"][0]["annotations"] = {"autoscaling.knative.dev/max-scale": "2"}
    rewrite_config(act, cfg)
    wait_for("scaled down to 2 under load, the others gone",
             lambda: len(cluster.sim.pods(REV1, include_terminating=True)) == 2, 20, cluster, act)
    codes, errors = load.result()
    stopped = len(cluster.sim.stopped)
    print(f"\nkubelet {cluster.kubelet} scale-down {peak} -> 2 under c={C}: "
          f"{sum(codes.values())} requests {codes}, errors {errors}, pods stopped {stopped}, "
          f"hooks {[(h['hops'], h['waited']) for h in cluster.sim.hooks]}")
    assert set(codes) == {200} and not errors, (codes, errors)
    assert stopped >= peak - 2, cluster.sim.events
    assert_every_pod_drained(cluster, peak - 2)
    for p in cluster.sim.pods(REV1):
        assert p.alive()


def test_rollout_under_load_loses_nothing(cluster):
    """hey -c 50 on the service while traffic goes 100/0 -> 50/50 -> 0/100:
    00001 scales down under half the load, then to zero, 00002 starts from
    zero."""
    act = cluster.activator(helloworld_config(autoscaler=FAST_SCALE))
    load = cluster.hey(act, "30s")
    wait_for("00001 scaled out for the load",
             lambda: len(cluster.sim.ready_pods(REV1)) >= (5 if not ASAN else 3), 20, cluster, act)
    peak = len(cluster.sim.ready_pods(REV1))
    rewrite_config(act, helloworld_config(autoscaler=FAST_SCALE, split=(50, 50)))
    wait_for("00001 scaled down under half the load",
             lambda: cluster.sim.stopped and cluster.sim.ready_pods(REV2), 20, cluster, act)
    rewrite_config(act, helloworld_config(autoscaler=FAST_SCALE, split=(0, 100)))
    wait_for("00001 at zero", lambda: not cluster.sim.pods(REV1, include_terminating=True), 25,
             cluster, act)
    codes, errors = load.result()
    stopped = len(cluster.sim.stopped)
    print(f"\nkubelet {cluster.kubelet} rollout under c={C}: {sum(codes.values())} requests "
          f"{codes}, errors {errors}, 00001 peak {peak} pods, pods stopped {stopped}, "
          f"hooks {[(h['hops'], h['waited']) for h in cluster.sim.hooks]}")
    assert set(codes) == {200} and not errors, (codes, errors)
    assert stopped >= peak, cluster.sim.events
    assert_every_pod_drained(cluster, peak)
