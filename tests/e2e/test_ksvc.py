"""Knative Services served by the activator, against the fake API server:
a Service applied becomes a Configuration, a Route, Revisions, their
Deployments (our queue-proxy beside the app) and Services, all owned, with
Knative's names, labels and status; requests to its host start pods from
zero through the activator; a template change makes a new revision that
takes the traffic; traffic blocks and tags route; a steady state writes
nothing."""

import json
import os
import re
import threading
import time

import pytest

from activator_harness import ASAN, Activator, hey, stop_all
from fake_kube import ALL_RULES, FakeKube
from kubelet_sim import KubeletSim
import kp

NS = "default"
SLOW = 3 if ASAN else 1
DOMAIN = "example.com"


def seed_service(name="helloworld-go", target="World", cc=10, traffic=None, template_name=None,
                 annotations=None):
    """The Service a user writes (config/kubernetes/examples/helloworld-go.yaml)."""
    tmeta = {"annotations": {"autoscaling.knative.dev/target": "10", **(annotations or {})}}
    if template_name:
        tmeta["name"] = template_name
    svc = {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"template": {"metadata": tmeta, "spec": {
            "containerConcurrency": cc, "timeoutSeconds": 300,
            "containers": [{"image": "kp:dev",
                            "env": [{"name": "TARGET", "value": target}],
                            "ports": [{"containerPort": 8080}]}]}}},
    }
    if traffic is not None:
        svc["spec"]["traffic"] = traffic
    return svc


def file_config():
    """One service of the file's own (it keeps working beside the Knative
    ones); new revisions start at zero, as the demo does."""
    return {"domain": "127.0.0.1.sslip.io",
            "autoscaler": {"initial-scale": "0", "allow-zero-initial-scale": "true"},
            "services": [{"name": "static", "namespace": NS,
                          "revisions": [{"name": "static-00001", "containerConcurrency": 10}]}]}


def cond(obj, ctype="Ready"):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return c
    return None


def is_ready(obj):
    c = cond(obj)
    return bool(obj) and c is not None and c["status"] == "True" and \
        obj["status"].get("observedGeneration") == obj["metadata"].get("generation")


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.fixture
def cluster(tmp_path):
    fake = FakeKube().start()
    fake.install_crds()
    sim = KubeletSim(fake)
    token = fake.add_user("activator", ALL_RULES)
    token_file = fake.write_token_file(token, str(tmp_path / "token"))
    started = []

    def activator(identity=None, extra=(), config=None, user=None):
        tf = token_file if user is None else fake.write_token_file(
            fake.add_user(user, ALL_RULES), str(tmp_path / ("token-" + user)))
        args = ["--backend", "kubernetes", "--kube-api", fake.url, "--kube-token-file",
                tf, "--kube-ca-file", fake.ca_file, "--lease-namespace", NS,
                "--lease-duration", "3", "--queue-sidecar-image", "registry.test/kp:1", *extra]
        if identity:
            args += ["--identity", identity]
        act = Activator(config or file_config(), args,
                        env={"KP_KNATIVE_DOMAIN": DOMAIN})
        started.append(act)
        return act

    class Cluster:
        pass

    c = Cluster()
    c.fake, c.sim, c.activator, c.started = fake, sim, activator, started
    yield c
    try:
        stop_all(started)
    finally:
        sim.stop()
        fake.stop()


def wait_ready(fake, kind, name, timeout=15):
    return fake.wait_for(kind, NS, name, is_ready, timeout * SLOW)


def test_service_becomes_knative_objects_and_serves(cluster):
    fake, sim = cluster.fake, cluster.sim
    sim.configure("helloworld-go-00001", app_env={"TARGET": "World"}, container_concurrency=10)
    act = cluster.activator()
    fake.create(seed_service())
    svc = wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    st = svc["status"]
    assert st["url"] == "http://helloworld-go.default.example.com"
    assert st["address"]["url"] == "http://helloworld-go.default.svc.cluster.local"
    assert st["latestCreatedRevisionName"] == "helloworld-go-00001"
    assert st["latestReadyRevisionName"] == "helloworld-go-00001"
    assert st["traffic"] == [{"revisionName": "helloworld-go-00001", "latestRevision": True,
                              "percent": 100}]
    assert {c["type"] for c in st["conditions"]} == {"Ready", "ConfigurationsReady",
                                                     "RoutesReady"}

    cfg = fake.get("configurations.serving.knative.dev", NS, "helloworld-go")
    route = fake.get("routes.serving.knative.dev", NS, "helloworld-go")
    rev = fake.get("revisions.serving.knative.dev", NS, "helloworld-go-00001")
    for child, owner, kind in ((cfg, svc, "Service"), (route, svc, "Service"),
                               (rev, cfg, "Configuration")):
        [ref] = child["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "serving.knative.dev/v1", "kind": kind,
                       "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                       "controller": True, "blockOwnerDeletion": True}
    labels = rev["metadata"]["labels"]
    assert labels["serving.knative.dev/service"] == "helloworld-go"
    assert labels["serving.knative.dev/configuration"] == "helloworld-go"
    assert labels["serving.knative.dev/configurationGeneration"] == "1"
    assert labels["serving.knative.dev/configurationUID"] == cfg["metadata"]["uid"]
    assert labels["serving.knative.dev/routingState"] == "active"
    assert is_ready(rev) and cond(rev, "Active")["reason"] == "NoTraffic"

    dep = fake.get("deployments", NS, "helloworld-go-00001-deployment")
    assert dep["metadata"]["ownerReferences"][0]["uid"] == rev["metadata"]["uid"]
    assert dep["spec"]["selector"]["matchLabels"] == {
        "serving.knative.dev/revisionUID": rev["metadata"]["uid"]}
    assert dep["spec"]["replicas"] == 0
    pod = dep["spec"]["template"]["spec"]
    user, queue = pod["containers"]
    assert user["name"] == "user-container" and queue["name"] == "queue-proxy"
    assert queue["image"] == "registry.test/kp:1"
    assert user["lifecycle"]["preStop"]["httpGet"] == {"path": "/wait-for-drain", "port": 8022}
    qenv = env_of(queue)
    assert qenv["SERVING_REVISION"] == "helloworld-go-00001"
    assert qenv["SERVING_CONFIGURATION"] == "helloworld-go"
    assert qenv["CONTAINER_CONCURRENCY"] == "10"
    assert qenv["USER_PORT"] == "8080"
    assert json.loads(qenv["SERVING_READINESS_PROBE"]) == {
        "tcpSocket": {"port": 8080, "host": "127.0.0.1"}, "successThreshold": 1}
    assert env_of(user)["TARGET"] == "World" and env_of(user)["K_REVISION"] == "helloworld-go-00001"
    for name in ("helloworld-go-00001-private", "helloworld-go-00001"):
        s = fake.get("services", NS, name)
        assert s["metadata"]["ownerReferences"][0]["uid"] == rev["metadata"]["uid"]
        assert s["spec"]["selector"] == {"serving.knative.dev/revisionUID": rev["metadata"]["uid"]}

    # The Route's placeholder Service makes status.address.url resolve: an
    # ExternalName to the activator's Service (POD_NAMESPACE is the lease
    # namespace here), as Knative points it at its ingress.
    placeholder = fake.wait_for("services", NS, "helloworld-go", None, 10 * SLOW)
    [ref] = placeholder["metadata"]["ownerReferences"]
    assert ref == {"apiVersion": "serving.knative.dev/v1", "kind": "Route",
                   "name": "helloworld-go", "uid": route["metadata"]["uid"],
                   "controller": True, "blockOwnerDeletion": True}
    plabels = placeholder["metadata"]["labels"]
    assert plabels["serving.knative.dev/route"] == "helloworld-go"
    assert plabels["serving.knative.dev/service"] == "helloworld-go"
    assert "selector" not in placeholder["spec"]
    assert placeholder["spec"]["type"] == "ExternalName"
    assert placeholder["spec"]["externalName"] == "kp-activator.%s.svc.cluster.local" % NS
    assert [(p["name"], p["port"], p["targetPort"]) for p in placeholder["spec"]["ports"]] == \
        [("http2", 80, 80)]

    # The first request starts a pod from zero through the activator.
    host = "helloworld-go.default." + DOMAIN
    assert act.request("/", host=host) == (200, "Hello World!\n")
    assert fake.replicas(NS, "helloworld-go-00001-deployment") >= 1
    # The cluster-local names of the route, as Knative's ingress takes them.
    for local in ("helloworld-go.default.svc.cluster.local", "helloworld-go.default.svc",
                  "helloworld-go.default", "helloworld-go.default.svc.cluster.local:80"):
        assert act.request("/", host=local) == (200, "Hello World!\n"), local

    # Steady state: events that change nothing the reconcilers copy (a
    # touch adds an annotation) make every reconciler run and write nothing.
    time.sleep(0.5 * SLOW)
    mark = fake.mark()
    for kind, name in (("configurations.serving.knative.dev", "helloworld-go"),
                       ("deployments", "helloworld-go-00001-deployment"),
                       ("services", "helloworld-go-00001-private"),
                       ("services", "helloworld-go")):
        fake.touch(kind, NS, name)
    time.sleep(1.0 * SLOW)
    writes = [(w["method"], w.get("resource"), w.get("subresource"), w.get("name"))
              for w in fake.writes(since=mark, user="activator")
              if w.get("subresource") != "scale"]
    assert writes == []
    # The Route's annotations are its Service's too (as in Knative): a
    # touched Route rewrites that Service once, and nothing else.
    mark = fake.mark()
    touched = fake.touch("routes.serving.knative.dev", NS, "helloworld-go")
    time.sleep(1.0 * SLOW)
    writes = [(w["method"], w.get("resource"), w.get("subresource"), w.get("name"))
              for w in fake.writes(since=mark, user="activator")
              if w.get("subresource") != "scale"]
    assert writes == [("PUT", "services", None, "helloworld-go")]
    assert fake.get("services", NS, "helloworld-go")["metadata"]["annotations"][
        "fake-kube/touched"] == touched["metadata"]["annotations"]["fake-kube/touched"]

    # Changed by hand, it is put back; deleted, it comes back.
    placeholder = fake.get("services", NS, "helloworld-go")
    placeholder["spec"]["externalName"] = "elsewhere.example.org"
    fake.update(placeholder)
    fake.wait_for("services", NS, "helloworld-go",
                  lambda o: o["spec"].get("externalName") ==
                  "kp-activator.%s.svc.cluster.local" % NS, 10 * SLOW)
    fake.delete("services", NS, "helloworld-go")
    fake.wait_for("services", NS, "helloworld-go",
                  lambda o: o is not None and
                  o["metadata"]["ownerReferences"][0]["uid"] == route["metadata"]["uid"],
                  10 * SLOW)

    # The ksvc goes: the garbage collector takes the Route and its Service.
    fake.delete("services.serving.knative.dev", NS, "helloworld-go")
    fake.wait_gone("routes.serving.knative.dev", NS, "helloworld-go", 10 * SLOW)
    fake.wait_gone("services", NS, "helloworld-go", 10 * SLOW)


def test_template_change_and_traffic_split_and_tag(cluster):
    fake, sim = cluster.fake, cluster.sim
    sim.configure("helloworld-go-00001", app_env={"TARGET": "World"}, container_concurrency=10)
    sim.configure("helloworld-go-00002", app_env={"TARGET": "Knative"}, container_concurrency=10)
    act = cluster.activator()
    host = "helloworld-go.default." + DOMAIN
    fake.create(seed_service())
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    assert act.request("/", host=host) == (200, "Hello World!\n")

    svc = fake.get("services.serving.knative.dev", NS, "helloworld-go")
    svc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "TARGET",
                                                                "value": "Knative"}]
    fake.update(svc)
    fake.wait_for("services.serving.knative.dev", NS, "helloworld-go",
                  lambda o: is_ready(o) and
                  o["status"].get("latestReadyRevisionName") == "helloworld-go-00002",
                  15 * SLOW)
    assert act.request("/", host=host) == (200, "Hello Knative!\n")
    old = fake.get("revisions.serving.knative.dev", NS, "helloworld-go-00001")
    assert old["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"

    # 50/50 and a tag on the old revision.
    svc = fake.get("services.serving.knative.dev", NS, "helloworld-go")
    svc["spec"]["traffic"] = [{"latestRevision": True, "percent": 50},
                              {"revisionName": "helloworld-go-00001", "percent": 50,
                               "tag": "old"}]
    fake.update(svc)
    got = fake.wait_for("services.serving.knative.dev", NS, "helloworld-go",
                        lambda o: is_ready(o) and len(o["status"].get("traffic", [])) == 2,
                        15 * SLOW)
    tagged = [t for t in got["status"]["traffic"] if t.get("tag") == "old"][0]
    assert tagged["url"] == "http://old-helloworld-go.default.example.com"
    assert act.request("/", host="old-helloworld-go.default." + DOMAIN) == \
        (200, "Hello World!\n")
    seen = set()
    kp.wait_until(lambda: seen.add(act.request("/", host=host)[1]) or len(seen) == 2, 10,
                  what="both revisions answering (%r)" % seen)
    assert seen == {"Hello World!\n", "Hello Knative!\n"}


def failing_pod(rev, exit_code, message):
    """A Pod as the kubelet reports a user container that keeps exiting."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": rev + "-deployment-7d9f-x2x4q", "namespace": NS,
                         "labels": {"serving.knative.dev/revision": rev, "app": rev}},
            "spec": {"containers": [{"name": "user-container", "image": "kp:dev"},
                                    {"name": "queue-proxy", "image": "kp:dev"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "user-container", "ready": False, "restartCount": 2,
                 "state": {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": "back-off 20s restarting failed container"}},
                 "lastState": {"terminated": {"exitCode": exit_code, "reason": "Error",
                                              "message": message}}},
                {"name": "queue-proxy", "ready": False, "restartCount": 0,
                 "state": {"running": {}}}]}}


def test_container_that_exits_fails_revision_and_service(cluster):
    fake, sim = cluster.fake, cluster.sim
    rev = "helloworld-go-00001"
    sim.configure(rev, app_argv=["/bin/sh", "-c", "echo 'panic: no TARGET' >&2; exit 3"])
    act = cluster.activator()
    fake.create(seed_service())
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    # A request wakes it; the app exits and the kubelet says so.
    def wake():
        try:
            act.request("/", host="helloworld-go.default." + DOMAIN, timeout=5)
        except OSError:
            pass  # held while the app keeps failing

    threading.Thread(target=wake, daemon=True).start()
    kp.wait_until(lambda: (fake.replicas(NS, rev + "-deployment") or 0) >= 1, 10,
                  what="scale from zero")
    pod = failing_pod(rev, 3, "panic: no TARGET")
    fake.create(pod)  # the API keeps no status from a create: the kubelet writes it
    fake.set_status("pods", NS, pod["metadata"]["name"], pod["status"])
    r = fake.wait_for("revisions.serving.knative.dev", NS, rev,
                      lambda o: (cond(o) or {}).get("status") == "False", 10 * SLOW)
    ready = cond(r)
    assert ready["reason"] == "ExitCode3"
    assert ready["message"] == "Container failed with: panic: no TARGET"
    assert cond(r, "ContainerHealthy")["reason"] == "ExitCode3"
    svc = fake.wait_for("services.serving.knative.dev", NS, "helloworld-go",
                        lambda o: (cond(o) or {}).get("status") == "False", 10 * SLOW)
    assert cond(svc)["reason"] == "RevisionFailed"
    assert "ExitCode3" in cond(svc)["message"] or "panic: no TARGET" in cond(svc)["message"]
    cfg = fake.get("configurations.serving.knative.dev", NS, "helloworld-go")
    assert cond(cfg)["reason"] == "RevisionFailed"


def test_bring_your_own_revision_name(cluster):
    fake = cluster.fake
    cluster.activator()
    fake.create(seed_service(template_name="helloworld-go-blue"))
    svc = wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    assert svc["status"]["latestReadyRevisionName"] == "helloworld-go-blue"
    assert fake.get("deployments", NS, "helloworld-go-blue-deployment") is not None
    # A name outside the Service's prefix is refused in its status.
    fake.create(seed_service(name="other", template_name="wrong-name"))
    bad = fake.wait_for("services.serving.knative.dev", NS, "other",
                        lambda o: (cond(o) or {}).get("status") == "False", 10 * SLOW)
    assert cond(bad)["reason"] == "InvalidSpec"
    assert "must start with \"other-\"" in cond(bad)["message"]
    assert fake.get("configurations.serving.knative.dev", NS, "other") is None


def test_leader_change_mid_reconcile_makes_no_duplicate(cluster):
    fake = cluster.fake
    a = cluster.activator(identity="act-a")
    kp.wait_until(lambda: (fake.get_lease(NS, "kp-activator") or {}).get("spec", {}).get(
        "holderIdentity") == "act-a", 10, what="act-a leads")
    b = cluster.activator(identity="act-b")
    fake.create(seed_service())
    # The leader goes while it works; the other takes over and finishes.
    time.sleep(0.05)
    a.proc.kill()
    a.proc.wait()
    cluster.started.remove(a)
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go", timeout=30)
    revs = fake.list("revisions.serving.knative.dev", NS)
    assert [r["metadata"]["name"] for r in revs] == ["helloworld-go-00001"]
    assert len(fake.list("deployments", NS)) == 1
    assert b.request("/", host="helloworld-go.default." + DOMAIN)[0] == 200


def test_many_services_one_watch_per_kind(cluster):
    fake = cluster.fake
    n = 150 if ASAN else 500
    mark = fake.mark()
    act = cluster.activator()
    for i in range(n):
        fake.create(seed_service(name="svc-%03d" % i))
    start = time.monotonic()
    for i in range(n):
        wait_ready(fake, "services.serving.knative.dev", "svc-%03d" % i, timeout=60)
    took = time.monotonic() - start
    watches = fake.request_log("watch", since=mark, user="activator")
    per_kind = {}
    for w in watches:
        k = w.get("resource")
        per_kind[k] = per_kind.get(k, 0) + 1
    # One list+watch per kind (endpoint slices: one per revision's Service).
    for kind in ("services.serving.knative.dev", "configurations.serving.knative.dev",
                 "revisions.serving.knative.dev", "routes.serving.knative.dev",
                 "deployments.apps", "services", "pods",
                 "horizontalpodautoscalers.autoscaling"):
        assert per_kind.get(kind, 0) == 1, (kind, per_kind)
    with open("/proc/%d/status" % act.proc.pid) as f:
        rss = [l for l in f if l.startswith("VmRSS")][0]
    print("%d services ready in %.1fs, activator %s" % (n, took, rss.strip()))


def queued_at(pod):
    """Requests that had to wait in a pod's queue-proxy: 0 while the
    activator never sends a pod more than containerConcurrency."""
    r = kp.request(pod.ports["http-usermetric"], "/metrics", host=pod.ip)
    m = re.search(r"^kp_queue_proxy_queued_requests_total (\d+)$", r.text, re.M)
    assert m, r.text
    return int(m.group(1))


FAST_SCALE = {"initial-scale": "0", "allow-zero-initial-scale": "true",
              "stable-window": "6s", "scale-to-zero-grace-period": "6s"}


def test_load_scales_within_concurrency_then_back_to_zero(cluster):
    fake, sim = cluster.fake, cluster.sim
    rev = "helloworld-go-00001"
    sim.configure(rev, app_env={"TARGET": "World"}, container_concurrency=2,
                  qp_env={"SERVING_REQUEST_METRICS_BACKEND": "prometheus"})
    cfg = file_config()
    cfg["autoscaler"] = dict(FAST_SCALE)
    act = cluster.activator(config=cfg)
    fake.create(seed_service(cc=2))
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    codes = {}
    load = threading.Thread(target=lambda: codes.update(
        hey(act.url("/?sleep=100"), "helloworld-go.default." + DOMAIN, 12, duration="5s")))
    load.start()
    time.sleep(3.5)
    pods = [p for p in sim.pods(rev) if p.ready]
    assert len(pods) >= 2, pods
    assert sum(queued_at(p) for p in pods) == 0
    load.join()
    assert set(codes) == {200}, codes
    # Idle: back to zero, and the Revision says so.
    kp.wait_until(lambda: fake.replicas(NS, rev + "-deployment") == 0, 40,
                  what="scale to zero")
    r = fake.wait_for("revisions.serving.knative.dev", NS, rev,
                      lambda o: (cond(o, "Active") or {}).get("reason") == "NoTraffic",
                      10 * SLOW)
    assert is_ready(r)


def test_template_change_under_load_drops_nothing(cluster):
    fake, sim = cluster.fake, cluster.sim
    sim.configure("helloworld-go-00001", app_env={"TARGET": "World"}, container_concurrency=10)
    sim.configure("helloworld-go-00002", app_env={"TARGET": "Knative"}, container_concurrency=10)
    act = cluster.activator()
    host = "helloworld-go.default." + DOMAIN
    fake.create(seed_service())
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    assert act.request("/", host=host)[0] == 200
    result = {}
    load = threading.Thread(target=lambda: result.update(
        hey(act.url("/?sleep=20"), host, 8, duration="5s")))
    load.start()
    time.sleep(1)
    svc = fake.get("services.serving.knative.dev", NS, "helloworld-go")
    svc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "TARGET",
                                                                "value": "Knative"}]
    fake.update(svc)
    fake.wait_for("services.serving.knative.dev", NS, "helloworld-go",
                  lambda o: is_ready(o) and
                  o["status"].get("latestReadyRevisionName") == "helloworld-go-00002", 15 * SLOW)
    load.join()
    assert set(result) == {200}, result
    assert act.request("/", host=host) == (200, "Hello Knative!\n")


def test_without_the_crds_the_file_services_work_and_knative_starts_later(cluster, tmp_path):
    fake = FakeKube().start()
    try:
        token = fake.add_user("activator", ALL_RULES)
        token_file = fake.write_token_file(token, str(tmp_path / "token2"))
        fake.add_deployment(NS, "static-00001-deployment", replicas=0)
        act = Activator(file_config(), ["--backend", "kubernetes", "--kube-api", fake.url,
                                        "--kube-token-file", token_file, "--kube-ca-file",
                                        fake.ca_file, "--queue-sidecar-image", "kp:dev"])
        cluster.started.append(act)
        kp.wait_until(lambda: "does not serve" in act.logs(), 10, what="the 404 logged")
        # The file's own service still routes (its request is held: no pod).
        assert act.status() is not None
        lines = [l for l in act.logs().splitlines() if "does not serve" in l]
        assert len(lines) == 1, lines
        assert "services.serving.knative.dev" in lines[0] or "serving.knative.dev" in lines[0]
        # Only the Services informer asked: nothing else of Knative's kinds.
        assert not fake.request_log(resource="deployments", verb=("list", "watch"))
        fake.install_crds()
        fake.create(seed_service())
        fake.wait_for("services.serving.knative.dev", NS, "helloworld-go", is_ready, 30 * SLOW)
    finally:
        fake.stop()


def test_gc_removes_old_revisions_but_keeps_tagged_ones(cluster):
    fake = cluster.fake
    act = Activator(file_config(), ["--backend", "kubernetes", "--kube-api", fake.url,
                                    "--kube-token-file", fake.write_token_file(
                                        fake.add_user("gc", ALL_RULES)),
                                    "--kube-ca-file", fake.ca_file,
                                    "--queue-sidecar-image", "kp:dev"],
                    env={"KP_KNATIVE_GC": "min-non-active-revisions=0,"
                         "max-non-active-revisions=0,retain-since-create-time=disabled,"
                         "retain-since-last-active-time=disabled"})
    cluster.started.append(act)
    fake.create(seed_service(traffic=[{"latestRevision": True, "percent": 100},
                                      {"revisionName": "helloworld-go-00001", "percent": 0,
                                       "tag": "pinned"}]))
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    for target in ("Two", "Three"):
        svc = fake.get("services.serving.knative.dev", NS, "helloworld-go")
        svc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "TARGET",
                                                                    "value": target}]
        fake.update(svc)
        gen = svc["metadata"]["generation"] + 1
        fake.wait_for("services.serving.knative.dev", NS, "helloworld-go",
                      lambda o: is_ready(o) and o["status"].get("latestReadyRevisionName") ==
                      "helloworld-go-%05d" % gen, 15 * SLOW)
    # -00002 lost its traffic: collected with what it owned; -00001 has a tag.
    fake.wait_gone("revisions.serving.knative.dev", NS, "helloworld-go-00002", 15 * SLOW)
    fake.wait_gone("deployments", NS, "helloworld-go-00002-deployment", 10 * SLOW)
    assert fake.get("revisions.serving.knative.dev", NS, "helloworld-go-00001") is not None
    assert fake.get("revisions.serving.knative.dev", NS, "helloworld-go-00003") is not None


def test_hpa_class_gets_an_hpa(cluster):
    fake = cluster.fake
    cluster.activator()
    fake.create(seed_service(annotations={
        "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "cpu", "autoscaling.knative.dev/target": "70",
        "autoscaling.knative.dev/max-scale": "5"}))
    rev = fake.wait_for("revisions.serving.knative.dev", NS, "helloworld-go-00001")
    hpa = fake.wait_for("horizontalpodautoscalers.autoscaling", NS, "helloworld-go-00001",
                        timeout=10 * SLOW)
    assert hpa["metadata"]["ownerReferences"][0]["uid"] == rev["metadata"]["uid"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "helloworld-go-00001-deployment"}
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]


def test_config_domain_and_config_deployment_from_configmaps(cluster):
    fake = cluster.fake
    fake.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "config-domain", "namespace": NS},
                 "data": {"kp.test": ""}})
    act = Activator(file_config(), ["--backend", "kubernetes", "--kube-api", fake.url,
                                    "--kube-token-file", fake.write_token_file(
                                        fake.add_user("cm", ALL_RULES)),
                                    "--kube-ca-file", fake.ca_file])
    cluster.started.append(act)
    fake.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "config-deployment", "namespace": NS},
                 "data": {"queue-sidecar-image": "registry.test/queue:2",
                          "progress-deadline": "120s"}})
    fake.create(seed_service())
    svc = wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    assert svc["status"]["url"] == "http://helloworld-go.default.kp.test"
    dep = fake.get("deployments", NS, "helloworld-go-00001-deployment")
    assert dep["spec"]["progressDeadlineSeconds"] == 120
    assert dep["spec"]["template"]["spec"]["containers"][1]["image"] == "registry.test/queue:2"
    # A new domain rewrites the URLs; the host answers by any domain.
    cm = fake.get("configmaps", NS, "config-domain")
    cm["data"] = {"other.test": ""}
    fake.update(cm)
    fake.wait_for("services.serving.knative.dev", NS, "helloworld-go",
                  lambda o: o["status"].get("url") == "http://helloworld-go.default.other.test",
                  10 * SLOW)


def routed(act, name):
    for s in act.status().get("services", []):
        if s["name"] == name and s["namespace"] == NS:
            return s
    return None


def test_routing_table_follows_objects_and_survives_a_file_reload(cluster):
    fake = cluster.fake
    act = cluster.activator()
    fake.create(seed_service(cc=7, traffic=[
        {"latestRevision": True, "percent": 100},
        {"revisionName": "helloworld-go-00001", "percent": 0, "tag": "first"}]))
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    s = kp.wait_until(lambda: routed(act, "helloworld-go"), 10, what="routed")
    assert [(t["revision_name"], t["percent"], t.get("tag")) for t in s["traffic"]] == [
        ("helloworld-go-00001", 100, None), ("helloworld-go-00001", 0, "first")]
    assert [(r["name"], r["container_concurrency"], r["timeout_seconds"])
            for r in s["revisions"]] == [("helloworld-go-00001", 7, 300)]
    assert routed(act, "static") is not None
    # The file changes: its services change, the Knative ones stay.
    cfg = file_config()
    cfg["services"][0]["revisions"].append({"name": "static-00002"})
    cfg["services"][0]["traffic"] = [{"revisionName": "static-00002", "percent": 100}]
    with open(act.config_path, "w") as f:
        json.dump(cfg, f)
    kp.wait_until(lambda: len((routed(act, "static") or {}).get("revisions", [])) == 2, 10,
                  what="file reloaded")
    assert routed(act, "helloworld-go") is not None
    # The Service goes: its route goes from the table.
    fake.delete("services.serving.knative.dev", NS, "helloworld-go")
    kp.wait_until(lambda: routed(act, "helloworld-go") is None, 10, what="route removed")
    assert routed(act, "static") is not None


def test_only_the_lease_holder_writes_and_every_replica_routes(cluster):
    fake = cluster.fake
    a = cluster.activator(identity="act-a", user="replica-a")
    kp.wait_until(lambda: (fake.get_lease(NS, "kp-activator") or {}).get("spec", {}).get(
        "holderIdentity") == "act-a", 10, what="act-a leads")
    b = cluster.activator(identity="act-b", user="replica-b")
    fake.create(seed_service())
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    kp.wait_until(lambda: routed(b, "helloworld-go"), 10, what="the follower routes it")
    assert routed(a, "helloworld-go") is not None
    time.sleep(0.5 * SLOW)
    follower = [(w["verb"], w.get("resource")) for w in fake.writes(user="replica-b")
                if "leases" not in (w.get("resource") or "")]
    assert follower == []
    assert [w for w in fake.writes(user="replica-a") if "serving.knative.dev" in
            (w.get("resource") or "")]


def test_conflicts_and_failed_writes_are_retried(cluster):
    fake = cluster.fake
    # Another writer moves first on the first status writes, and the API
    # fails a create: the reconciler reads again and converges.
    fake.fail_next(3, status=409, method="PUT", path_contains="/status",
                   message="the object has been modified; please apply your changes to the "
                   "latest version and try again")
    fake.fail_next(1, status=503, method="POST", path_contains="/deployments")
    cluster.activator()
    fake.create(seed_service())
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go", timeout=20)
    assert len(fake.list("revisions.serving.knative.dev", NS)) == 1
    assert fake.get("deployments", NS, "helloworld-go-00001-deployment") is not None


def test_queue_image_is_the_activators_own(cluster):
    fake = cluster.fake
    # The activator's own Pod, as the downward API names it (POD_NAME).
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "kp-activator-7c9d-abcde", "namespace": NS},
           "spec": {"containers": [{"name": "activator", "image": "registry.test/kp:7"}]}}
    fake.create(pod)
    act = Activator(file_config(), ["--backend", "kubernetes", "--kube-api", fake.url,
                                    "--kube-token-file", fake.write_token_file(
                                        fake.add_user("own", ALL_RULES)),
                                    "--kube-ca-file", fake.ca_file, "--lease-namespace", NS,
                                    "--identity", "kp-activator-7c9d-abcde"])
    cluster.started.append(act)
    fake.create(seed_service())
    dep = fake.wait_for("deployments", NS, "helloworld-go-00001-deployment", timeout=15 * SLOW)
    queue = dep["spec"]["template"]["spec"]["containers"][1]
    assert queue["name"] == "queue-proxy" and queue["image"] == "registry.test/kp:7"


def shipped(*path):
    """A file of config/kubernetes/, as `kubectl apply` reads it."""
    yaml = pytest.importorskip("yaml", reason="PyYAML missing: apt-get install python3-yaml")
    with open(os.path.join(kp.REPO, "config", "kubernetes", *path)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def shipped_config():
    """config.json of the ConfigMap `kubectl apply -k config/kubernetes` installs."""
    [cm] = [d for d in shipped("20-config.yaml") if d["kind"] == "ConfigMap"]
    return json.loads(cm["data"]["config.json"])


def hidden_warnings(act):
    return [(line.get("namespace"), line.get("service")) for line in act.log_lines()
            if line.get("message", "").startswith("knative: Service not routed")]


def change_target(fake, target, revision):
    svc = fake.get("services.serving.knative.dev", NS, "helloworld-go")
    svc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "TARGET",
                                                                "value": target}]
    fake.update(svc)
    fake.wait_for("services.serving.knative.dev", NS, "helloworld-go",
                  lambda o: o.get("status", {}).get("latestReadyRevisionName") == revision,
                  15 * SLOW)


def test_the_shipped_config_routes_the_seed_service(cluster):
    """`kubectl apply -k config/kubernetes`, then the seed Service: its
    config.json lists no service, so the user's Service alone makes the
    route, and a template change moves the traffic."""
    fake, sim = cluster.fake, cluster.sim
    config = shipped_config()
    assert config.get("services", []) == []
    [seed] = shipped("examples", "helloworld-go.yaml")
    sim.configure("helloworld-go-00001", app_env={"TARGET": "World"}, container_concurrency=0)
    sim.configure("helloworld-go-00002", app_env={"TARGET": "Knative"}, container_concurrency=0)
    act = cluster.activator(config=config)
    fake.create(seed)
    wait_ready(fake, "services.serving.knative.dev", "helloworld-go")
    host = "helloworld-go.default." + DOMAIN
    assert act.request("/", host=host) == (200, "Hello World!\n")
    change_target(fake, "Knative", "helloworld-go-00002")
    act.wait_for(lambda: act.request("/", host=host)[1] == "Hello Knative!\n", 10 * SLOW,
                 "the traffic on helloworld-go-00002")
    assert hidden_warnings(act) == []


def test_a_file_service_of_the_same_name_hides_the_knative_one(cluster, tmp_path):
    """File services win a name clash (config/kubernetes/README.md): the
    Knative Service is not routed, a warning names it, and removing the
    file's entry hands the host to the Knative Service without a restart."""
    fake, sim = cluster.fake, cluster.sim
    with open(os.path.join(kp.REPO, "config", "kubernetes", "examples", "without-crds",
                           "config.json")) as f:
        config = json.load(f)
    assert [(s["name"], s["namespace"]) for s in config["services"]] == [("helloworld-go", NS)]
    sim.configure("helloworld-go-00001", app_env={"TARGET": "World"}, container_concurrency=10)
    sim.configure("helloworld-go-00002", app_env={"TARGET": "Knative"}, container_concurrency=10)
    act = cluster.activator(config=config)
    fake.create(seed_service())
    act.wait_for(lambda: hidden_warnings(act) == [(NS, "helloworld-go")], 10 * SLOW,
                 "a warning naming the hidden Service")
    host = "helloworld-go.default." + DOMAIN
    # The file's revision (the Service's first one has its name) answers,
    # and keeps the traffic when the template changes.
    change_target(fake, "Knative", "helloworld-go-00002")
    time.sleep(1.0 * SLOW)
    assert act.request("/", host=host) == (200, "Hello World!\n")
    assert [s["revisions"][0]["name"] for s in act.status()["services"]
            if s["name"] == "helloworld-go"] == ["helloworld-go-00001"]

    config["services"] = []
    tmp = act.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f)
    os.replace(tmp, act.config_path)
    act.wait_for(lambda: act.request("/", host=host)[1] == "Hello Knative!\n", 10 * SLOW,
                 "the Knative Service routed once the file's entry is gone")
