"""The activator's kubernetes backend against a fake API server (TLS, tokens,
RBAC, watches) with the tests playing the kubelet: pods are queue-proxy +
helloworld processes on their own loopback addresses, published in the
revision's EndpointSlices. Same checks as the local backend, plus API
faults and two activator replicas."""

import concurrent.futures
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time

import pytest

from activator_harness import (ASAN, BUILD, HOST, Activator, free_port, hey, helloworld_config,
                               stop_all)
from fake_kube import FakeKube, activator_rules
from kubelet_sim import KubeletSim

REVISIONS = ("helloworld-go-00001", "helloworld-go-00002")
TARGETS = {"helloworld-go-00001": "World", "helloworld-go-00002": "Knative"}
SLOW = 3 if ASAN else 1


@pytest.fixture
def cluster(tmp_path):
    fake = FakeKube().start()
    sim = KubeletSim(fake)
    for rev in REVISIONS:
        fake.add_deployment("default", rev + "-deployment", replicas=0)
        sim.configure(rev, app_env={"TARGET": TARGETS[rev]}, container_concurrency=10)
    token = fake.add_user("activator", activator_rules("default"))
    token_file = fake.write_token_file(token, str(tmp_path / "token"))
    started = []

    def activator(config=None, identity=None, extra=(), token_path=token_file, **where):
        args = ["--backend", "kubernetes", "--kube-api", fake.url, "--kube-token-file",
                token_path, "--kube-ca-file", fake.ca_file, "--lease-namespace", "default",
                "--lease-duration", "3", *extra]
        if identity:
            args += ["--identity", identity]
        act = Activator(config or helloworld_config(), args, **where)
        started.append(act)
        return act

    class Cluster:
        pass

    c = Cluster()
    c.fake, c.sim, c.activator, c.token_file = fake, sim, activator, token_file
    yield c
    try:
        stop_all(started)
    finally:
        sim.stop()
        fake.stop()


def replicas(fake, rev="helloworld-go-00001"):
    return fake.replicas("default", rev + "-deployment")


def test_cold_start_from_zero(cluster):
    act = cluster.activator()
    assert replicas(cluster.fake) == 0
    start = time.time()
    assert act.request("/") == (200, "Hello World!\n")
    assert time.time() - start < 10 * SLOW
    assert replicas(cluster.fake) >= 1
    patches = cluster.fake.patches("default", "helloworld-go-00001-deployment")
    assert patches and patches[0]["user"] == "activator" and patches[0]["replicas"] == 1
    with open(f"/proc/{act.proc.pid}/maps") as f:
        assert "libcurl" in f.read()  # loaded for this backend (curl_loader.c)
    assert act.request("/", host="candidate-" + HOST) == (200, "Hello Knative!\n")


def test_scale_out_under_load_and_back_to_zero(cluster):
    act = cluster.activator(helloworld_config(autoscaler={
        "stable-window": "6s", "scale-to-zero-grace-period": "6s", "max-scale": "8"}))
    codes = hey(act.url("/?sleep=100"), HOST, concurrency=40, duration="8s")
    assert set(codes) == {200}, codes
    assert max(p["replicas"] for p in cluster.fake.patches("default",
               "helloworld-go-00001-deployment")) >= 4
    maxima = [json.loads(p.get("/stats").body)["max_in_flight"]
              for p in cluster.sim.pods("helloworld-go-00001")]
    assert maxima and max(maxima) <= 10, maxima
    act.wait_for(lambda: replicas(cluster.fake) == 0
                 and not cluster.sim.pods("helloworld-go-00001"), 40, "scale to zero")


def test_a_pod_gone_before_its_endpoint_says_so_costs_no_request(cluster):
    """A queue-proxy killed (SIGKILL) while its endpoint still says ready:
    the kubelet's next probe is a minute away. A request the activator
    sends there is refused before any byte of it arrives, so it goes to
    the other pod instead of ending in 502."""
    cluster.sim.probe_period = 60
    act = cluster.activator(helloworld_config(autoscaler={"min-scale": "2", "max-scale": "2"}))
    cluster.sim.wait_ready("helloworld-go-00001", 2, timeout=20 * SLOW)
    act.wait_for(lambda: act.revision_status("helloworld-go-00001")["ready_pods"] == 2,
                 10 * SLOW, "two ready pods")
    assert hey(act.url("/"), HOST, 4, requests=40) == {200: 40}  # connections to both
    victim = cluster.sim.pods("helloworld-go-00001")[0]
    victim.qp.kill()
    assert cluster.sim.ready_pods("helloworld-go-00001").count(victim) == 1  # still "ready"
    assert hey(act.url("/?sleep=20"), HOST, 10, requests=200) == {200: 200}
    ready = act.revision_status("helloworld-go-00001")["ready_pods"]
    assert ready == 1, act.status()  # the activator stopped using it


def test_api_faults_lose_no_held_request(cluster):
    """A cut watch, a 410 Gone and an API server down for a while: held
    requests still end 200 once the pod is there."""
    act = cluster.activator()
    assert act.request("/") == (200, "Hello World!\n")
    cluster.fake.cut_watches()
    cluster.fake.compact()
    cluster.fake.cut_watches()
    # Down while a request for the other revision arrives at zero.
    cluster.fake.set_down(True)
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(act.request, "/", "candidate-" + HOST, None, 60)
                   for _ in range(5)]
        time.sleep(10)
        cluster.fake.set_down(False)
        results = [f.result() for f in futures]
    assert results == [(200, "Hello Knative!\n")] * 5
    # The watch came back: a new pod of 00001 is learnt.
    cluster.fake.set_replicas("default", "helloworld-go-00001-deployment", 2)
    act.wait_for(lambda: act.revision_status("helloworld-go-00001")["ready_pods"] == 2,
                 20 * SLOW, "the second pod through the re-established watch")


def test_forbidden_scale_ends_held_requests_with_503_and_names_the_permission(cluster):
    token = cluster.fake.add_user("scaler", [
        r for r in activator_rules("default") if r[2] != "deployments/scale"])
    path = cluster.fake.write_token_file(token, os.path.join(os.path.dirname(cluster.token_file),
                                                             "scaler"))
    act = cluster.activator(helloworld_config(timeout=2), token_path=path)
    status, body = act.request("/")
    assert status == 503 and "timed out" in body
    logs = act.logs()
    assert 'cannot patch resource \\"deployments/scale\\"' in logs or \
        'cannot patch resource "deployments/scale"' in logs, logs[-2000:]
    # /status names the cause next to its consequence, and so does the table.
    failures = [f["reason"] for f in act.revision_status("helloworld-go-00001")["recent_failures"]]
    assert failures[0].startswith("a request timed out after 2s waiting for a ready pod"), failures
    assert any(f.startswith("cannot scale deployment helloworld-go-00001-deployment to 1: 403 ")
               for f in failures), failures
    table = subprocess.run([os.path.join(BUILD, "activator"), "status", "--admin",
                            f"127.0.0.1:{act.admin_port}"], capture_output=True, text=True,
                           timeout=10)
    assert table.returncode == 0, table
    assert re.search(r"^helloworld-go-00001 +helloworld-go +1 +0 +0 +0 .* a request timed out "
                     r"after 2s waiting for a ready pod", table.stdout, re.M), table.stdout


def token_for(cluster, user):
    token = cluster.fake.add_user(user, activator_rules("default"))
    return cluster.fake.write_token_file(
        token, os.path.join(os.path.dirname(cluster.token_file), user))


def test_two_activators_one_leader_and_failover(cluster):
    # Each replica with its own identity in the API, to tell their writes apart.
    a = cluster.activator(identity="activator-a", token_path=token_for(cluster, "activator-a"))
    time.sleep(1)
    b = cluster.activator(identity="activator-b", token_path=token_for(cluster, "activator-b"))
    assert a.request("/") == (200, "Hello World!\n")
    assert b.request("/") == (200, "Hello World!\n")
    holder = cluster.fake.get_lease("default", "kp-activator")["spec"]["holderIdentity"]
    assert holder in ("activator-a", "activator-b")
    writers = {p["user"] for p in cluster.fake.patches()}
    assert writers == {holder}, cluster.fake.patches()
    leader, follower = (a, b) if holder == "activator-a" else (b, a)
    # Both decided; only the replica whose decision is written logs it as a
    # scale, the other says whose it is.
    said = [line.get("message") for line in follower.log_lines()]
    assert "scale" not in said, said
    assert "scale decided here, written by another replica" in said, said
    # A leader that dies without handing the lease back: it runs out.
    leader.crash()
    stopped = time.monotonic()
    start = time.time()
    deadline = start + 10
    while time.time() < deadline:
        lease = cluster.fake.get_lease("default", "kp-activator")
        if lease["spec"]["holderIdentity"] != holder:
            break
        time.sleep(0.2)
    assert lease["spec"]["holderIdentity"] != holder, lease
    assert time.time() - start <= 3 + 1.5, "takeover slower than the 3 s lease"
    # The new leader writes scale: a cold start of 00002 works through it.
    assert follower.request("/", host="candidate-" + HOST) == (200, "Hello Knative!\n")
    new_writes = [p for p in cluster.fake.patches("default", "helloworld-go-00002-deployment")
                  if p["monotonic"] > stopped]
    assert new_writes and {p["user"] for p in new_writes} == {
        lease["spec"]["holderIdentity"]}, new_writes


def wait_for_holder(fake, identity, timeout):
    deadline = time.time() + timeout
    while True:
        lease = fake.get_lease("default", "kp-activator")
        if lease and lease["spec"]["holderIdentity"] == identity:
            return
        assert time.time() < deadline, "holder not %s: %s" % (identity, lease)
        time.sleep(0.1)


def test_leader_hands_the_lease_back_when_it_stops(cluster):
    """With a 30 s lease (renewals every 10 s), the follower can lead within
    15 s of the leader's SIGTERM only if the leader handed the lease back
    (client-go's ReleaseOnCancel) instead of letting it run out."""
    long_lease = ("--lease-duration", "30")
    a = cluster.activator(identity="activator-a", token_path=token_for(cluster, "activator-a"),
                          extra=long_lease)
    wait_for_holder(cluster.fake, "activator-a", 10)
    b = cluster.activator(identity="activator-b", token_path=token_for(cluster, "activator-b"),
                          extra=long_lease)
    assert b.request("/") == (200, "Hello World!\n")
    assert cluster.fake.get_lease("default", "kp-activator")["spec"]["holderIdentity"] == \
        "activator-a"
    assert a.stop() == 0
    stopped = time.monotonic()
    # The release was written before the process exited.
    releases = [w for w in cluster.fake.lease_writes
                if w["user"] == "activator-a" and w["method"] == "PUT" and w["holder"] == ""]
    assert releases and releases[-1]["status"] == 200, cluster.fake.lease_writes[-5:]
    assert cluster.fake.get_lease("default", "kp-activator")["spec"]["holderIdentity"] in (
        "", "activator-b")
    wait_for_holder(cluster.fake, "activator-b", 15)
    # The new leader writes scale: a cold start of 00002 works through it.
    assert b.request("/", host="candidate-" + HOST) == (200, "Hello Knative!\n")
    new_writes = [p for p in cluster.fake.patches("default", "helloworld-go-00002-deployment")
                  if p["monotonic"] > stopped]
    assert new_writes and {p["user"] for p in new_writes} == {"activator-b"}, new_writes


class SkewedHolder:
    """Another replica holding the Lease, whose clock is `skew_s` seconds
    off ours: every second it reads the Lease and writes it back (with the
    read resourceVersion, through the API with its own token) as holder,
    renewTime its own wall clock. The fake stores the times it is given,
    as a real API server does."""
    IDENTITY = "other-replica"
    PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases/kp-activator"

    def __init__(self, fake, skew_s, duration_s=3):
        self.fake, self.skew_s, self.duration_s = fake, skew_s, duration_s
        self.token = fake.add_user(self.IDENTITY, activator_rules("default"))
        self.stop_event = threading.Event()
        self.thread = None

    def _call(self, method, path, body=None):
        ctx = ssl.create_default_context(cafile=self.fake.ca_file)
        conn = http.client.HTTPSConnection("127.0.0.1", self.fake.port, timeout=5, context=ctx)
        try:
            headers = {"Authorization": "Bearer " + self.token}
            if body is not None:
                headers["Content-Type"] = "application/json"
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            conn.close()

    def renew(self):
        t = time.time() + self.skew_s
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % (
            int(t * 1e6) % 1000000)
        status, lease = self._call("GET", self.PATH)
        meta = {"name": "kp-activator", "namespace": "default"}
        if status == 200:
            meta["resourceVersion"] = lease["metadata"]["resourceVersion"]
        spec = {"holderIdentity": self.IDENTITY, "leaseDurationSeconds": self.duration_s,
                "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}
        obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
               "spec": spec}
        if status == 200:
            status, _ = self._call("PUT", self.PATH, obj)
        else:
            status, _ = self._call("POST", self.PATH.rsplit("/", 1)[0], obj)
        assert status in (200, 201, 409), status

    def start(self):
        self.renew()

        def loop():
            while not self.stop_event.wait(1.0):
                self.renew()
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join()

    def last_write(self):
        writes = [w for w in self.fake.lease_writes
                  if w["user"] == self.IDENTITY and w["status"] in (200, 201)]
        return writes[-1]


@pytest.mark.parametrize("skew_s", [-300, 300], ids=["holder-5min-behind", "holder-5min-ahead"])
def test_lease_expiry_ignores_the_holders_clock(cluster, skew_s):
    """client-go's rule: a Lease expires leaseDuration after its record last
    changed, by our own clock. A holder whose renewTime is five minutes in
    our past is not taken over while it keeps renewing; one five minutes in
    our future is taken over a lease duration after it stops, not five
    minutes later."""
    holder = SkewedHolder(cluster.fake, skew_s).start()
    try:
        act = cluster.activator(identity="activator-a",
                                token_path=token_for(cluster, "activator-a"))
        time.sleep(8)  # more than two lease durations of renewals
        ours = [w for w in cluster.fake.lease_writes if w["user"] == "activator-a"]
        assert ours == [], "wrote the lease of a holder that keeps renewing: %s" % ours
        lease = cluster.fake.get_lease("default", "kp-activator")
        assert lease["spec"]["holderIdentity"] == SkewedHolder.IDENTITY, lease
        assert "acquired leadership" not in act.logs()
    finally:
        holder.stop()
    last = holder.last_write()
    wait_for_holder(cluster.fake, "activator-a", 15 * SLOW)
    taken = [w for w in cluster.fake.lease_writes
             if w["user"] == "activator-a" and w["status"] == 200]
    waited = taken[0]["monotonic"] - last["monotonic"]
    # Its last change reached us within a renewal period (1 s) of being
    # written; the takeover comes one lease duration (3 s) after that.
    assert waited >= 3 - 0.2, "took over %.2f s after the last renewal" % waited
    assert waited <= 3 + 1 + 1.5 * SLOW, "took over %.2f s after the last renewal" % waited


def two_replicas(cluster, cfg=None):
    """Two activators as the activator Service's endpoints, on their own
    loopback addresses and the same admin port (as replicas of one
    Deployment are), activator-a the leader."""
    cluster.fake.set_endpoints("default", "kp-activator", [
        ("127.0.1.11", True, "activator-a"), ("127.0.1.12", True, "activator-b")], port=8080)
    admin_port = free_port()
    extra = ["--activator-service", "kp-activator"]
    a = cluster.activator(cfg, identity="activator-a", extra=extra,
                          token_path=token_for(cluster, "activator-a"),
                          admin_host="127.0.1.11", admin_port=admin_port)
    wait_for_holder(cluster.fake, "activator-a", 10)
    b = cluster.activator(cfg, identity="activator-b", extra=extra,
                          token_path=token_for(cluster, "activator-b"),
                          admin_host="127.0.1.12", admin_port=admin_port)
    assert cluster.fake.get_lease("default", "kp-activator")["spec"]["holderIdentity"] == \
        "activator-a"
    return a, b


def test_cold_start_through_a_follower(cluster):
    """The first request at zero reaches the replica that does not write
    scale: it raises the revision from zero itself (a write conditional on
    a read of 0), and the leader, which reads its /load, keeps the pod."""
    a, b = two_replicas(cluster)
    assert replicas(cluster.fake) == 0
    assert b.request("/", timeout=20 * SLOW) == (200, "Hello World!\n")
    raises = [p for p in cluster.fake.patches("default", "helloworld-go-00001-deployment")
              if p["user"] == "activator-b"]
    assert raises and raises[0]["replicas"] == 1, cluster.fake.patches()
    # The leader counts b's load as its own, or adopts the pod once its own
    # probe finds it ready (which may come after b's answer): it asks for
    # the pod too.
    a.wait_for(lambda: any(p["user"] == "activator-a" and p["replicas"] >= 1
                           for p in cluster.fake.patches("default",
                                                         "helloworld-go-00001-deployment")),
               10 * SLOW, "the leader's own scale to 1")
    assert "activator peer" in a.logs()


def test_leader_scales_for_the_load_of_every_replica(cluster):
    """20 concurrent requests at each replica: 40 in all, so 6 pods at a
    target of 7 per pod (CC 10, 70 %). The leader alone carries 20 (3
    pods): it must count what the follower holds and proxies."""
    cfg = helloworld_config(autoscaler={"stable-window": "6s",
                                        "scale-to-zero-grace-period": "6s"})
    a, b = two_replicas(cluster, cfg)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(hey, act.url("/?sleep=200"), HOST, 20, "8s") for act in (a, b)]
        codes = [r.result() for r in runs]
    assert all(set(c) == {200} for c in codes), codes
    asked = max(p["replicas"] for p in cluster.fake.patches("default",
                                                            "helloworld-go-00001-deployment")
                if p["user"] == "activator-a" and p["status"] == 200)
    assert asked >= 5, cluster.fake.patches()
    maxima = [json.loads(p.get("/stats").body)["max_in_flight"]
              for p in cluster.sim.pods("helloworld-go-00001")]
    assert max(maxima) <= 10, maxima


def test_in_cluster_configuration(cluster):
    """No --kube-api: the service account's token, CA and namespace files."""
    token = cluster.fake.add_user("in-cluster", activator_rules("default"))
    env = cluster.fake.in_cluster_env(token)
    act = Activator(helloworld_config(), ["--backend", "kubernetes"], env=env)
    try:
        assert act.request("/") == (200, "Hello World!\n")
        assert {p["user"] for p in cluster.fake.patches()} == {"in-cluster"}
    finally:
        assert act.stop() == 0


def test_two_activators_share_each_pods_concurrency(cluster):
    # Both replicas are ready endpoints of the activator Service: each may
    # give a pod half of its containerConcurrency.
    cluster.fake.set_endpoints("default", "kp-activator", [
        ("127.0.0.1", True, "activator-a"), ("127.0.0.254", True, "activator-b")], port=8080)
    cfg = helloworld_config(autoscaler={"min-scale": "2", "max-scale": "2"})
    extra = ["--activator-service", "kp-activator"]
    a = cluster.activator(cfg, identity="activator-a", extra=extra)
    b = cluster.activator(cfg, identity="activator-b", extra=extra)
    cluster.sim.wait_ready("helloworld-go-00001", 2, timeout=20 * SLOW)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(hey, act.url("/?sleep=100"), HOST, 25, "6s") for act in (a, b)]
        codes = [r.result() for r in runs]
    assert all(set(c) == {200} for c in codes), codes
    maxima = [json.loads(p.get("/stats").body)["max_in_flight"]
              for p in cluster.sim.pods("helloworld-go-00001")]
    assert len(maxima) == 2 and max(maxima) <= 10, maxima
    assert min(maxima) >= 5, maxima  # the load did reach the limit
    assert "activator replicas changed" in a.logs()


def test_a_revision_removed_from_the_config_is_freed_with_its_watch(cluster):
    """Reloaded without 00002, the activator scales it to zero, then frees
    it with everything it had: its EndpointSlice watcher included. Both
    revisions share the namespace's one watch stream, which stays open
    for 00001."""
    windows = {"stable-window": "6s", "scale-to-zero-grace-period": "6s"}
    act = cluster.activator(helloworld_config(autoscaler=windows))
    assert act.request("/", host="candidate-" + HOST, timeout=20 * SLOW) == (200, "Hello Knative!\n")
    assert act.request("/") == (200, "Hello World!\n")
    act.wait_for(lambda: cluster.fake.watch_count() == 1, 10, "one watch for the namespace")

    cfg = helloworld_config(autoscaler=windows)
    svc = cfg["services"][0]
    svc["revisions"] = svc["revisions"][:1]
    svc["traffic"] = [{"revisionName": "helloworld-go-00001", "percent": 100}]
    tmp = act.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.replace(tmp, act.config_path)
    act.proc.send_signal(signal.SIGHUP)

    def freed():
        return any(line.get("message") == "revision freed" and
                   line.get("revision") == "default/helloworld-go-00002"
                   for line in act.log_lines())

    act.wait_for(freed, 60 * SLOW, "00002 freed")
    assert replicas(cluster.fake, "helloworld-go-00002") == 0
    assert cluster.fake.watch_count() == 1, "the namespace's watch serves 00001 still"
    assert 'revision="helloworld-go-00002"' not in act.metrics()
    assert act.request("/") == (200, "Hello World!\n")
