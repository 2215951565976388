"""Knative's autoscaling classes and metrics with the local backend. A KPA
revision with autoscaling.knative.dev/metric: rps scales on the request
rate its pods report, where the same load on a concurrency revision keeps
one pod. A revision of class hpa.autoscaling.knative.dev is left to an HPA:
the activator never scales it on load and never to zero; locally, where no
HPA exists, it runs min-scale's pods and routes to them; on Kubernetes
(fake API server) it never writes the Deployment's scale, not even to wake
it, and still holds and routes the requests."""
import threading
import time

import pytest

import activator_harness as ah
import kp
from test_local_pods import port_base

RPS, CONC = "helloworld-go-00001", "helloworld-go-00002"


@pytest.fixture
def activators():
    started = []
    yield started
    ah.stop_all(started)


def test_an_rps_revision_scales_up_on_request_rate(activators):
    """50/50 split, the same closed-loop load (4 connections) on both: the
    rps revision (target 5 req/s × 70 %) goes to max-scale 3; the
    concurrency one (about 2 at once against 7) stays at one pod."""
    cfg = ah.helloworld_config(split=(50, 50))
    revs = cfg["services"][0]["revisions"]
    revs[0]["annotations"] = {"autoscaling.knative.dev/metric": "rps",
                              "autoscaling.knative.dev/target": "5",
                              "autoscaling.knative.dev/max-scale": "3"}
    revs[1]["annotations"] = {"autoscaling.knative.dev/max-scale": "3"}
    act = ah.Activator(cfg, args=["--pod-port-base", str(port_base())])
    activators.append(act)
    peak = {RPS: 0, CONC: 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for name in peak:
                peak[name] = max(peak[name], act.revision_status(name)["desired_pods"])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        codes = ah.hey(act.url("/"), ah.HOST, 4, duration="8s")
    finally:
        done.set()
        watcher.join()
    rps, conc = act.revision_status(RPS), act.revision_status(CONC)
    print(f"\nrps revision: peak {peak[RPS]} pods, {rps['autoscaler']}\n"
          f"concurrency revision: peak {peak[CONC]} pods, {conc['autoscaler']}")
    assert set(codes) == {200}, codes
    assert rps["autoscaler"]["metric"] == "rps"
    assert rps["autoscaler"]["class"] == "kpa.autoscaling.knative.dev"
    assert rps["autoscaler"]["target_rps_per_pod"] == 3.5
    assert rps["autoscaler"]["stable_rps"] > 3.5 * 3, rps["autoscaler"]
    assert peak[RPS] == 3, peak
    assert conc["autoscaler"]["metric"] == "concurrency"
    assert conc["autoscaler"]["stable_rps"] == 0
    assert peak[CONC] == 1, peak
    text = act.metrics()
    series = [l for l in text.splitlines()
              if l.startswith("autoscaler_target_requests_per_second{")]
    assert any(f'revision_name="{RPS}"' in l and l.endswith(" 3.5") for l in series), series


def test_an_hpa_class_revision_keeps_min_scale_and_is_never_scaled_on_load(activators):
    """Class hpa with metric cpu and min-scale 2: two pods from the start
    (no cold start, no scale to zero), routed to; load does not move them;
    /status names the class."""
    cfg = ah.helloworld_config()
    svc = cfg["services"][0]
    svc["revisions"] = svc["revisions"][:1]
    svc["traffic"] = [{"revisionName": RPS, "percent": 100}]
    svc["revisions"][0]["annotations"] = {
        "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "cpu",
        "autoscaling.knative.dev/target": "80",
        "autoscaling.knative.dev/min-scale": "2"}
    act = ah.Activator(cfg, args=["--pod-port-base", str(port_base())])
    activators.append(act)
    act.wait_for(lambda: act.revision_status(RPS)["ready_pods"] == 2, 15 * kp.SLOW,
                 "min-scale's two pods")
    codes = ah.hey(act.url("/?sleep=20"), ah.HOST, 40, duration="4s")
    assert set(codes) == {200}, codes
    rev = act.revision_status(RPS)
    print(f"\nhpa class: {rev['autoscaler']}, desired {rev['desired_pods']}")
    assert rev["autoscaler"]["class"] == "hpa.autoscaling.knative.dev"
    assert rev["autoscaler"]["metric"] == "cpu"
    assert rev["desired_pods"] == 2 and rev["ready_pods"] == 2, rev
    assert rev["cold_starts"] == 0
    scales = [l for l in act.log_lines() if l.get("message") == "scale"]
    assert [(l["from"], l["to"]) for l in scales] == [(0, 2)], scales


def test_a_metric_of_the_other_class_is_refused_at_start():
    """rps with class hpa is Knative's webhook error: the activator does not
    start, and says which annotation and what is accepted."""
    import json
    import os
    import subprocess
    import tempfile
    cfg = ah.helloworld_config()
    cfg["services"][0]["revisions"][0]["annotations"] = {
        "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "rps"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    try:
        r = subprocess.run([os.path.join(ah.BUILD, "activator"), "--config", f.name,
                            "--listen", f"127.0.0.1:{ah.free_port()}",
                            "--admin", f"127.0.0.1:{ah.free_port()}"],
                           capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert ("autoscaling.knative.dev/metric=rps does not go with class "
            "hpa.autoscaling.knative.dev (expected concurrency or rps with class "
            "kpa.autoscaling.knative.dev, cpu or memory with class "
            "hpa.autoscaling.knative.dev)") in out, out


def test_on_kubernetes_an_hpa_class_revision_is_the_hpas_alone(tmp_path):
    """Kubernetes backend, fake API server, the test as the HPA: a request
    at zero replicas is held, not woken by a scale write of ours; it is
    served once the HPA raises the Deployment; load never makes the
    activator write its scale."""
    import concurrent.futures
    from fake_kube import FakeKube, activator_rules
    from kubelet_sim import KubeletSim
    fake = FakeKube().start()
    sim = KubeletSim(fake)
    started = []
    try:
        fake.add_deployment("default", RPS + "-deployment", replicas=0)
        sim.configure(RPS, app_env={"TARGET": "World"}, container_concurrency=10)
        token_file = fake.write_token_file(fake.add_user("activator", activator_rules("default")),
                                           str(tmp_path / "token"))
        cfg = ah.helloworld_config()
        svc = cfg["services"][0]
        svc["revisions"] = svc["revisions"][:1]
        svc["traffic"] = [{"revisionName": RPS, "percent": 100}]
        svc["revisions"][0]["annotations"] = {
            "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
            "autoscaling.knative.dev/metric": "memory"}
        act = ah.Activator(cfg, ["--backend", "kubernetes", "--kube-api", fake.url,
                                 "--kube-token-file", token_file, "--kube-ca-file", fake.ca_file,
                                 "--lease-namespace", "default", "--lease-duration", "3"])
        started.append(act)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(act.request, "/", ah.HOST, None, 60 * kp.SLOW)
            act.wait_for(lambda: act.revision_status(RPS)["held"] == 1, 10 * kp.SLOW,
                         "the request held")
            time.sleep(1.5)  # a scale write or wake of ours would be there by now
            assert fake.replicas("default", RPS + "-deployment") == 0
            assert fake.patches("default", RPS + "-deployment") == []
            fake.set_replicas("default", RPS + "-deployment", 2)  # the HPA's minReplicas
            assert held.result() == (200, "Hello World!\n")
        act.wait_for(lambda: act.revision_status(RPS)["ready_pods"] == 2, 20 * kp.SLOW,
                     "the HPA's two pods")
        codes = ah.hey(act.url("/?sleep=20"), ah.HOST, 40, duration="4s")
        assert set(codes) == {200}, codes
        rev = act.revision_status(RPS)
        assert rev["autoscaler"]["class"] == "hpa.autoscaling.knative.dev"
        assert rev["autoscaler"]["metric"] == "memory"
        assert fake.patches("default", RPS + "-deployment", ok_only=False) == []
        assert fake.replicas("default", RPS + "-deployment") == 2
        assert not [l for l in act.log_lines() if l.get("message") == "scale"]
    finally:
        try:
            ah.stop_all(started)
        finally:
            sim.stop()
            fake.stop()
