"""Knative Services with pods run from the Deployments the activator writes
(kubelet_deploy.py: each container of the template runs as a local process
with the template's environment, so our queue-proxy runs with exactly the
environment the reconciler gave it): the first pod makes the Revision
Ready; a container that exits, an image that cannot be pulled and a
Deployment past its progress deadline make it Ready False with Knative's
reasons, and the Service follows."""

import time

import pytest

from activator_harness import ASAN, Activator, stop_all
from fake_kube import ALL_RULES, FakeKube
from kubelet_deploy import DeploymentKubelet
import kp
from test_ksvc import DOMAIN, NS, cond, is_ready, seed_service

SLOW = 3 if ASAN else 1
IMAGES = {
    "kp.dev/helloworld": [kp.binary("helloworld")],
    "kp.dev/crash": ["/bin/sh", "-c", "echo 'panic: no TARGET' >&2; exit 3"],
    "kp.dev/never-ready": ["/bin/sleep", "600"],
}


def service(image, **kw):
    svc = seed_service(**kw)
    svc["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return svc


@pytest.fixture
def cluster(tmp_path):
    fake = FakeKube().start()
    fake.install_crds()
    kubelet = DeploymentKubelet(fake, IMAGES)
    token = fake.add_user("activator", ALL_RULES)
    token_file = fake.write_token_file(token, str(tmp_path / "token"))
    started = []

    def activator(config=None):
        cfg = config or {"domain": DOMAIN, "services": [{
            "name": "static", "namespace": NS, "revisions": [{"name": "static-00001"}]}]}
        act = Activator(cfg, ["--backend", "kubernetes", "--kube-api", fake.url,
                              "--kube-token-file", token_file, "--kube-ca-file", fake.ca_file,
                              "--queue-sidecar-image", "kp.dev/queue-proxy"],
                        env={"KP_KNATIVE_DOMAIN": DOMAIN})
        started.append(act)
        return act

    class Cluster:
        pass

    c = Cluster()
    c.fake, c.kubelet, c.activator = fake, kubelet, activator
    yield c
    try:
        stop_all(started)
    finally:
        kubelet.stop()
        fake.stop()


def failed(o):
    return (cond(o) or {}).get("status") == "False"


def test_first_pod_makes_it_ready_and_it_serves(cluster):
    fake = cluster.fake
    act = cluster.activator()
    fake.create(service("kp.dev/helloworld"))
    svc = fake.wait_for("services.serving.knative.dev", NS, "helloworld-go", is_ready,
                        20 * SLOW)
    assert svc["status"]["latestReadyRevisionName"] == "helloworld-go-00001"
    rev = fake.get("revisions.serving.knative.dev", NS, "helloworld-go-00001")
    assert cond(rev, "ResourcesAvailable")["status"] == "True"
    assert cond(rev, "ContainerHealthy")["status"] == "True"
    # The queue-proxy started from the template's environment and the
    # activator reaches it through the -private Service's EndpointSlices.
    assert act.request("/", host="helloworld-go.default." + DOMAIN) == (200, "Hello World!\n")
    rev = fake.wait_for("revisions.serving.knative.dev", NS, "helloworld-go-00001",
                        lambda o: (cond(o, "Active") or {}).get("status") == "True", 10 * SLOW)
    assert rev["status"]["actualReplicas"] >= 1


def test_container_exit_fails_revision_with_exit_code_and_log(cluster):
    fake = cluster.fake
    cluster.activator()
    start = time.monotonic()
    fake.create(service("kp.dev/crash"))
    rev = fake.wait_for("revisions.serving.knative.dev", NS, "helloworld-go-00001", failed,
                        20 * SLOW)
    took = time.monotonic() - start
    assert cond(rev)["reason"] == "ExitCode3"
    assert "panic: no TARGET" in cond(rev)["message"]
    assert cond(rev)["message"].startswith("Container failed with: ")
    svc = fake.wait_for("services.serving.knative.dev", NS, "helloworld-go", failed, 10 * SLOW)
    assert cond(svc)["reason"] == "RevisionFailed"
    assert "panic: no TARGET" in cond(svc)["message"]
    assert took < 15 * SLOW


def test_held_request_for_a_revision_that_exits_ends_with_its_reason(cluster):
    """A request held for a revision whose container exits ends with a 503
    naming the exit, once the Revision says so: long before the revision's
    timeout (300 s), not at it."""
    fake = cluster.fake
    act = cluster.activator()
    fake.create(service("kp.dev/crash"))
    host = "helloworld-go.default." + DOMAIN
    start = time.monotonic()
    while True:  # 404 until this replica's routing table has the route
        status, body = act.request("/", host=host, timeout=120)
        if status != 404 or time.monotonic() - start > 30 * SLOW:
            break
        time.sleep(0.1)
    took = time.monotonic() - start
    assert status == 503, (status, body)
    assert "helloworld-go-00001 cannot start" in body and "ExitCode3" in body, body
    assert took < 30 * SLOW, took
    # New requests end at once while it stays failed.
    t0 = time.monotonic()
    status, body = act.request("/", host=host, timeout=60)
    assert status == 503 and "ExitCode3" in body, (status, body)
    assert time.monotonic() - t0 < 5 * SLOW


def test_image_that_cannot_be_pulled(cluster):
    fake = cluster.fake
    cluster.activator()
    fake.create(service("registry.invalid/nothing:1"))
    rev = fake.wait_for("revisions.serving.knative.dev", NS, "helloworld-go-00001", failed,
                        20 * SLOW)
    assert cond(rev)["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert cond(rev, "ResourcesAvailable")["status"] == "False"
    fake.wait_for("services.serving.knative.dev", NS, "helloworld-go", failed, 10 * SLOW)


def test_progress_deadline(cluster):
    fake = cluster.fake
    fake.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "config-deployment", "namespace": NS},
                 "data": {"progress-deadline": "2s"}})
    cluster.activator()
    fake.create(service("kp.dev/never-ready"))
    rev = fake.wait_for("revisions.serving.knative.dev", NS, "helloworld-go-00001", failed,
                        30 * SLOW)
    assert cond(rev)["reason"] == "ProgressDeadlineExceeded"
