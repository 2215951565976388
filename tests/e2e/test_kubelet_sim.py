"""Tests of the Deployment-driven kubelet (kubelet_deploy.py): Deployments
and Services written over HTTP to the fake API become running pods, Pod
objects, Deployment status and EndpointSlices, as on a cluster."""
import http.client
import json
import ssl

import pytest

import kp
from fake_kube import FakeKube
from kubelet_sim import DeploymentKubelet

NS = "default"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
SVCS = "/api/v1/namespaces/default/services"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
MERGE = "application/merge-patch+json"


@pytest.fixture
def kube():
    with FakeKube() as k:
        yield k


@pytest.fixture
def admin(kube):
    return kube.add_user("admin", [("*", "*", "*", "*")])


def api(kube, method, path, token, body=None, ctype="application/json"):
    ctx = ssl.create_default_context(cafile=kube.ca_file)
    c = http.client.HTTPSConnection("127.0.0.1", kube.port, timeout=10, context=ctx)
    try:
        headers = {"Authorization": "Bearer " + token}
        if body is not None:
            headers["Content-Type"] = ctype
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        c.close()


def images():
    return {"kp.dev/helloworld": kp.app_command(),
            "kp.dev/exit3": ["/bin/sh", "-c", "echo starting; echo 'config: bad' >&2; exit 3"]}


def revision_deployment(rev, image="kp.dev/helloworld", replicas=1, deadline=None, drain=None):
    """A Deployment shaped like Knative's for a revision: the user container
    and the queue-proxy with its probe, ports and environment."""
    labels = {"serving.knative.dev/revision": rev, "app": rev}
    qp_env = {"SERVING_NAMESPACE": NS, "SERVING_CONFIGURATION": rev.rsplit("-", 1)[0],
              "SERVING_REVISION": rev, "SERVING_SERVICE": rev.rsplit("-", 1)[0],
              "QUEUE_SERVING_PORT": "8012", "QUEUE_SERVING_TLS_PORT": "8112",
              "USER_PORT": "8080", "CONTAINER_CONCURRENCY": "0",
              "REVISION_TIMEOUT_SECONDS": "300", "SERVING_LOGGING_CONFIG": "",
              "SERVING_LOGGING_LEVEL": "", "SERVING_REQUEST_LOG_TEMPLATE": "",
              "SERVING_ENABLE_REQUEST_LOG": "false", "SERVING_ENABLE_PROBE_REQUEST_LOG": "false",
              "SERVING_REQUEST_METRICS_BACKEND": "", "TRACING_CONFIG_BACKEND": "none",
              "ENABLE_PROFILING": "false", "KP_ADMIN_PORT": "8022", "KP_METRICS_PORT": "9090",
              "KP_USER_METRICS_PORT": "9091",
              "SERVING_READINESS_PROBE": json.dumps({"tcpSocket": {"port": 8080,
                                                                   "host": "127.0.0.1"},
                                                     "successThreshold": 1})}
    if drain is not None:
        qp_env["KP_DRAIN_QUIET_PERIOD_SECONDS"] = drain
    env = [{"name": k, "value": v} for k, v in sorted(qp_env.items())]
    env += [{"name": "SERVING_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SERVING_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": rev + "-deployment", "labels": labels},
         "spec": {"replicas": replicas,
                  "selector": {"matchLabels": {"serving.knative.dev/revision": rev}},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "terminationGracePeriodSeconds": 5,
                      "containers": [
                          {"name": "user-container", "image": image,
                           "env": [{"name": "TARGET", "value": "Sim"},
                                   {"name": "PORT", "value": "8080"}],
                           "ports": [{"name": "user-port", "containerPort": 8080}],
                           "terminationMessagePolicy": "FallbackToLogsOnError",
                           "lifecycle": {"preStop": {"httpGet": {"port": 8022,
                                                                 "path": "/wait-for-drain"}}}},
                          {"name": "queue-proxy", "image": "kp.dev/queue-proxy", "env": env,
                           "ports": [{"name": "http1", "containerPort": 8012},
                                     {"name": "http-queueadm", "containerPort": 8022},
                                     {"name": "http-autometric", "containerPort": 9090},
                                     {"name": "http-usermetric", "containerPort": 9091}],
                           "readinessProbe": {"httpGet": {
                               "port": 8012, "httpHeaders": [{"name": "K-Network-Probe",
                                                              "value": "queue"}]},
                               "successThreshold": 1}}]}}}}
    if deadline is not None:
        d["spec"]["progressDeadlineSeconds"] = deadline
    return d


def private_service(rev):
    return {"metadata": {"name": rev + "-private"},
            "spec": {"selector": {"serving.knative.dev/revision": rev},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http1"},
                               {"name": "http-queueadm", "port": 8022, "targetPort": 8022}]}}


def condition(obj, ctype):
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == ctype), {})


def test_a_deployment_over_http_runs_its_pods_and_publishes_them(kube, admin):
    rev = "hello-00001"
    with DeploymentKubelet(kube, images()) as kubelet:
        # the queue-proxy stays up a second after SIGTERM, so that the app's
        # preStop hook reaches it (the kubelet stops both at once)
        st, d = api(kube, "POST", DEPLOYS, admin, revision_deployment(rev, drain="1"))
        assert st == 201, d
        st, s = api(kube, "POST", SVCS, admin, private_service(rev))
        assert st == 201, s
        rt = kubelet.wait_ready(rev + "-deployment", 1, timeout=15)[0]
        # the Pod object
        pod = kube.wait_for("pods", NS, rt.name, lambda p: condition(p, "Ready").get(
            "status") == "True", 10)
        assert pod["metadata"]["labels"]["serving.knative.dev/revision"] == rev
        assert "pod-template-hash" in pod["metadata"]["labels"]
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("Deployment",
                                                                 d["metadata"]["uid"], True)
        assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == rt.ip
        by_name = {c["name"]: c for c in pod["status"]["containerStatuses"]}
        assert set(by_name) == {"user-container", "queue-proxy"}
        assert all(c["ready"] and "running" in c["state"] and c["restartCount"] == 0
                   for c in by_name.values())
        # the Deployment's status, as the deployment controller writes it
        d = kube.wait_for("deployments", NS, rev + "-deployment", lambda o: condition(
            o, "Progressing").get("reason") == "NewReplicaSetAvailable", 10)
        st = d["status"]
        assert (st["observedGeneration"], st["replicas"], st["updatedReplicas"],
                st["readyReplicas"], st["availableReplicas"]) == (1, 1, 1, 1, 1)
        assert "unavailableReplicas" not in st
        assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        # the EndpointSlice of the selecting Service
        slices = kp.wait_until(lambda: [s for s in kube.list(
            "endpointslices", NS, {"kubernetes.io/service-name": rev + "-private"})
            if s["endpoints"] and s["endpoints"][0]["conditions"]["ready"]], 10,
            what="a ready endpoint")
        sl = slices[0]
        assert sl["metadata"]["name"].startswith(rev + "-private-")
        assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
            "endpointslice-controller.k8s.io"
        assert sl["metadata"]["ownerReferences"][0]["uid"] == s["metadata"]["uid"]
        assert sl["endpoints"][0]["addresses"] == [rt.ip]
        assert sl["endpoints"][0]["targetRef"]["name"] == rt.name
        assert sorted((p["name"], p["port"]) for p in sl["ports"]) == [
            ("http", 8012), ("http-queueadm", 8022)]
        # the published address reaches the app through the queue-proxy
        r = kp.request(8012, "/", host=rt.ip)
        assert r.status == 200 and r.text == "Hello Sim!\n", r
        # scale to zero through /scale: the pod terminates, its preStop hook runs
        before = kube.resource_version
        st, _ = api(kube, "PATCH", DEPLOYS + "/%s-deployment/scale" % rev, admin,
                    {"spec": {"replicas": 0}}, MERGE)
        assert st == 200
        kube.wait_gone("pods", NS, rt.name, 15)
        # meanwhile its endpoint was terminating, not ready, then removed
        seen = [e["conditions"] for _, r, _, t, o in kube.events_after(before, 0)
                if r == "endpointslices.discovery.k8s.io" and t == "MODIFIED"
                for e in o["endpoints"] or []]
        assert {"ready": False, "serving": True, "terminating": True} in seen or \
            {"ready": False, "serving": False, "terminating": True} in seen, seen
        assert seen[0]["terminating"] is True
        assert all(c.proc.poll() is not None for c in rt.containers)
        assert [e for c in rt.containers for e in c.proc.sanitizer_errors()] == []
        assert [h["container"] for h in rt.hooks] == ["user-container"]
        assert rt.hooks[0]["error"] is None and rt.hooks[0]["hops"] and \
            rt.hooks[0]["hops"][0][0] == "/wait-for-drain", rt.hooks
        kp.wait_until(lambda: [s["endpoints"] for s in kube.list(
            "endpointslices", NS, {"kubernetes.io/service-name": rev + "-private"})] == [None],
            10, what="the slice emptied")
        d = kube.wait_for("deployments", NS, rev + "-deployment",
                          lambda o: "replicas" not in o["status"], 10)
        assert d["status"]["observedGeneration"] == 2
        # deleting the Service removes its slices through their owner reference
        assert api(kube, "DELETE", SVCS + "/%s-private" % rev, admin)[0] == 200
        kp.wait_until(lambda: kube.list("endpointslices", NS) == [], 5, what="slices gone")
        assert kubelet.errors == []


def test_an_unknown_image_is_never_pulled(kube, admin):
    rev = "bad-00001"
    with DeploymentKubelet(kube, images()):
        d = revision_deployment(rev, image="bad/nonexistent:1.0")
        assert api(kube, "POST", DEPLOYS, admin, d)[0] == 201
        seen = set()

        def user_waiting(p):
            for c in (p or {}).get("status", {}).get("containerStatuses") or []:
                if c["name"] == "user-container" and "waiting" in c["state"]:
                    seen.add(c["state"]["waiting"]["reason"])
            return {"ErrImagePull", "ImagePullBackOff"} <= seen

        pod = kp.wait_until(lambda: [p for p in kube.list("pods", NS) if user_waiting(p)], 10,
                            what="ErrImagePull then ImagePullBackOff (seen %r)" % seen)[0]
        c = [c for c in pod["status"]["containerStatuses"] if c["name"] == "user-container"][0]
        assert not c["ready"] and "bad/nonexistent:1.0" in c["state"]["waiting"]["message"]
        assert "containerID" not in c and c["restartCount"] == 0
        assert condition(pod, "Ready")["status"] == "False"
        d = kube.wait_for("deployments", NS, rev + "-deployment",
                          lambda o: condition(o, "Available").get("status") == "False", 5)
        assert condition(d, "Available")["reason"] == "MinimumReplicasUnavailable"
        assert d["status"]["unavailableReplicas"] == 1


def test_a_crashing_container_and_the_progress_deadline(kube, admin):
    rev = "crash-00001"
    with DeploymentKubelet(kube, images(), backoff_initial=0.3) as kubelet:
        d = revision_deployment(rev, image="kp.dev/exit3", deadline=2)
        assert api(kube, "POST", DEPLOYS, admin, d)[0] == 201
        states = []

        def user(p):
            cs = [c for c in (p.get("status") or {}).get("containerStatuses") or []
                  if c["name"] == "user-container"]
            if cs:
                states.append(cs[0])
            return cs[0] if cs else None

        kp.wait_until(lambda: any("terminated" in (user(p) or {}).get("state", {})
                                  for p in kube.list("pods", NS)), 10, what="terminated")
        t = [s for s in states if "terminated" in s["state"]][-1]["state"]["terminated"]
        assert (t["exitCode"], t["reason"]) == (3, "Error")
        assert t["message"] == "starting\nconfig: bad"  # FallbackToLogsOnError
        crash = kp.wait_until(lambda: [u for u in map(user, kube.list("pods", NS))
                                       if u and u["state"].get("waiting", {}).get("reason") ==
                                       "CrashLoopBackOff" and u["restartCount"] >= 1], 10,
                              what="CrashLoopBackOff after a restart")[0]
        assert crash["lastState"]["terminated"]["exitCode"] == 3
        assert "restarting failed container=user-container" in \
            crash["state"]["waiting"]["message"]
        d = kube.wait_for("deployments", NS, rev + "-deployment", lambda o: condition(
            o, "Progressing").get("reason") == "ProgressDeadlineExceeded", 10)
        p = condition(d, "Progressing")
        assert p["status"] == "False"
        assert p["message"].endswith("has timed out progressing.")
        # deleting the Deployment removes its pods through the garbage collector
        assert api(kube, "DELETE", DEPLOYS + "/%s-deployment" % rev, admin)[0] == 200
        kp.wait_until(lambda: kube.list("pods", NS) == [] and kubelet.pods() == [], 15,
                      what="pods gone")


def test_a_template_change_rolls_the_pods(kube, admin):
    rev = "roll-00001"
    dname = rev + "-deployment"
    with DeploymentKubelet(kube, images()) as kubelet:
        assert api(kube, "POST", DEPLOYS, admin, revision_deployment(rev))[0] == 201
        old = kubelet.wait_ready(dname, 1, timeout=15)[0]
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "user-container", "env": [{"name": "TARGET", "value": "V2"},
                                               {"name": "PORT", "value": "8080"}]}]}}}}
        st, d = api(kube, "PATCH", DEPLOYS + "/" + dname, admin, patch,
                    "application/strategic-merge-patch+json")
        assert st == 200 and d["metadata"]["generation"] == 2, d
        kube.wait_gone("pods", NS, old.name, 20)
        new = kubelet.wait_ready(dname, 1, timeout=15)[0]
        assert new.name != old.name and new.name.split("-")[-2] != old.name.split("-")[-2]
        r = kp.request(8012, "/", host=new.ip)
        assert r.status == 200 and r.text == "Hello V2!\n", r
        d = kube.wait_for("deployments", NS, dname, lambda o: condition(
            o, "Progressing").get("reason") == "NewReplicaSetAvailable" and
            o["status"].get("observedGeneration") == 2, 10)
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        assert (d["status"]["replicas"], d["status"]["updatedReplicas"]) == (1, 1)
