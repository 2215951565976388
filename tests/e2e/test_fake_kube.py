"""Tests of the fake Kubernetes API server (fake_kube.py) and the kubelet
simulator (kubelet_sim.py) themselves."""
import _socket
import http.client
import json
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

import kp
from fake_kube import FakeKube, activator_rules
from kubelet_sim import KubeletSim

NS = "default"
SCALE = "/apis/apps/v1/namespaces/default/deployments/%s/scale"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
SEL = "labelSelector=kubernetes.io%2Fservice-name%3D"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


@pytest.fixture
def kube():
    with FakeKube(bookmark_interval=0.3) as k:
        yield k


@pytest.fixture
def token(kube):
    return kube.add_user("activator", activator_rules(NS))


def conn(kube, timeout=5):
    if kube.plain_http:
        return http.client.HTTPConnection("127.0.0.1", kube.port, timeout=timeout)
    ctx = ssl.create_default_context(cafile=kube.ca_file)
    return http.client.HTTPSConnection("127.0.0.1", kube.port, timeout=timeout, context=ctx)


def api(kube, method, path, token=None, body=None, ctype="application/json"):
    c = conn(kube)
    try:
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + token
        if body is not None:
            headers["Content-Type"] = ctype
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        c.close()


class Watch:
    """A watch stream read line by line in a thread."""

    def __init__(self, kube, token, query, path=SLICES):
        self.c = conn(kube, timeout=10)
        self.c.request("GET", path + "?" + query, headers={"Authorization": "Bearer " + token})
        self.r = self.c.getresponse()
        self.events = []
        self.ended = None  # "clean" or "error"
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        how = "clean"
        buf = b""
        try:
            while True:
                # read1 (not readline) so that a cut chunked stream raises
                # IncompleteRead instead of looking like the end
                data = self.r.read1(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with self.cv:
                        self.events.append(json.loads(line))
                        self.cv.notify_all()
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            how = "error"
        with self.cv:
            self.ended = how
            self.cv.notify_all()

    def wait(self, pred, timeout=5):
        with self.cv:
            assert self.cv.wait_for(lambda: pred(self), timeout), \
                "watch: condition not met; events %r ended %r" % (self.events, self.ended)

    def close(self):
        # wake the reader (blocked in recv, holding the response's buffer
        # lock) before closing
        try:
            _socket.socket.shutdown(self.c.sock, socket.SHUT_RDWR)
        except (OSError, TypeError):
            pass
        with self.cv:
            self.cv.wait_for(lambda: self.ended is not None, 5)
        self.c.close()


def assert_status(body, code, reason, message=None):
    assert body["kind"] == "Status" and body["apiVersion"] == "v1", body
    assert body["status"] == "Failure" and body["code"] == code and body["reason"] == reason, body
    if message is not None:
        assert body["message"] == message, body


# ---------------------------------------------------------------- TLS


def test_tls_verifies_with_the_ca_only(kube, token):
    url = kube.url + "/version"
    ok = subprocess.run(["curl", "-sS", "--cacert", kube.ca_file, url],
                        capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["major"] == "1"
    bad = subprocess.run(["curl", "-sS", url], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 60, (bad.returncode, bad.stderr)  # peer certificate not trusted
    with pytest.raises(ssl.SSLError):
        c = http.client.HTTPSConnection("127.0.0.1", kube.port, timeout=5,
                                        context=ssl.create_default_context())
        c.request("GET", "/version")
    # the server survives the failed handshakes
    assert api(kube, "GET", SCALE % "x", token)[0] == 404


def test_plain_http_like_kubectl_proxy():
    with FakeKube(plain_http=True) as k:
        assert k.url.startswith("http://") and k.ca_file is None
        k.add_deployment(NS, "web", 2)
        st, body = api(k, "GET", SCALE % "web")
        assert st == 200 and body["spec"]["replicas"] == 2


# ---------------------------------------------------------------- auth


def test_401_403_shapes(kube):
    kube.add_deployment(NS, "web", 1)
    st, body = api(kube, "GET", SCALE % "web", "no-such-token")
    assert st == 401
    assert_status(body, 401, "Unauthorized", "Unauthorized")
    st, body = api(kube, "GET", SCALE % "web")
    assert st == 403
    assert_status(body, 403, "Forbidden",
                  'deployments.apps "web" is forbidden: User "system:anonymous" cannot get '
                  'resource "deployments/scale" in API group "apps" in the namespace "default"')
    reader = kube.add_user("scaler", [("get", "apps", "deployments/scale", NS)])
    assert api(kube, "GET", SCALE % "web", reader)[0] == 200
    st, body = api(kube, "PATCH", SCALE % "web", reader, {"spec": {"replicas": 3}},
                   "application/merge-patch+json")
    assert st == 403
    assert_status(body, 403, "Forbidden",
                  'deployments.apps "web" is forbidden: User "scaler" cannot patch resource '
                  '"deployments/scale" in API group "apps" in the namespace "default"')
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    assert kube.replicas(NS, "web") == 1
    st, body = api(kube, "GET", SLICES + "?" + SEL + "x", reader)
    assert_status(body, 403, "Forbidden",
                  'endpointslices.discovery.k8s.io is forbidden: User "scaler" cannot list '
                  'resource "endpointslices" in API group "discovery.k8s.io" in the namespace '
                  '"default"')
    # the namespace matters
    st, body = api(kube, "GET", "/apis/apps/v1/namespaces/other/deployments/web/scale", reader)
    assert st == 403 and 'in the namespace "other"' in body["message"]
    assert [(r["method"], r["user"], r["status"]) for r in kube.requests[:2]] == \
        [("GET", None, 401), ("GET", "system:anonymous", 403)]


def test_unknown_path_is_a_404_status(kube, token):
    admin = kube.add_user("admin", [("*", "*", "*", "*")])
    st, body = api(kube, "GET", "/apis/nope/v1/things", admin)
    assert st == 404
    assert_status(body, 404, "NotFound", "the server could not find the requested resource")
    assert api(kube, "GET", "/nope", token)[0] == 404
    # authorization comes before routing, as in the real filter chain
    st, body = api(kube, "GET", "/apis/nope/v1/things", token)
    assert_status(body, 403, "Forbidden",
                  'things.nope is forbidden: User "activator" cannot list resource "things" in '
                  'API group "nope" at the cluster scope')


# ---------------------------------------------------------------- scale


def test_scale_get_and_patch(kube, token):
    seen = []
    kube.on_scale = lambda ns, name, n: seen.append((ns, name, n))
    kube.add_deployment(NS, "web", 0)
    st, s = api(kube, "GET", SCALE % "web", token)
    assert st == 200
    assert (s["kind"], s["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert s["metadata"]["name"] == "web" and s["metadata"]["namespace"] == NS
    assert s["spec"] == {"replicas": 0} and s["status"]["replicas"] == 0
    rv0 = int(s["metadata"]["resourceVersion"])

    st, s = api(kube, "PATCH", SCALE % "web", token, {"spec": {"replicas": 3}},
                "application/merge-patch+json")
    assert st == 200 and s["spec"]["replicas"] == 3
    assert int(s["metadata"]["resourceVersion"]) > rv0
    assert kube.replicas(NS, "web") == 3
    kp.wait_until(lambda: seen == [(NS, "web", 3)], 2, what="on_scale")

    st, body = api(kube, "PATCH", SCALE % "web", token, {"spec": {"replicas": 1}},
                   "application/json")
    assert st == 415
    assert_status(body, 415, "UnsupportedMediaType")
    st, body = api(kube, "PATCH", SCALE % "web", token, {"spec": {"replicas": -1}},
                   "application/merge-patch+json")
    assert st == 422 and body["reason"] == "Invalid"
    st, body = api(kube, "GET", SCALE % "nope", token)
    assert st == 404
    assert_status(body, 404, "NotFound", 'deployments.apps "nope" not found')
    assert kube.replicas(NS, "web") == 3
    ok = kube.patches(NS, "web")
    assert [(p["user"], p["replicas"]) for p in ok] == [("activator", 3)]
    assert len(kube.patches(ok_only=False)) == 3


# ---------------------------------------------------------------- slices


def test_list_then_watch_sees_added_then_modified(kube, token):
    st, lst = api(kube, "GET", SLICES + "?" + SEL + "hello-private", token)
    assert st == 200 and lst["kind"] == "EndpointSliceList" and lst["items"] == []
    rv = lst["metadata"]["resourceVersion"]
    w = Watch(kube, token, "watch=1&resourceVersion=%s&allowWatchBookmarks=true&%s"
              "hello-private" % (rv, SEL))
    try:
        assert w.r.status == 200 and w.r.getheader("Transfer-Encoding") == "chunked"
        kube.set_endpoints(NS, "other-private", [("10.0.0.9", True, "o")])  # not selected
        kube.set_endpoints(NS, "hello-private", [("127.0.0.2", False, "pod-a")])
        w.wait(lambda w: any(e["type"] == "ADDED" for e in w.events))
        ev = [e for e in w.events if e["type"] != "BOOKMARK"][0]
        o = ev["object"]
        assert o["kind"] == "EndpointSlice" and o["apiVersion"] == "discovery.k8s.io/v1"
        assert o["metadata"]["name"].startswith("hello-private-")
        assert o["metadata"]["labels"]["kubernetes.io/service-name"] == "hello-private"
        assert o["endpoints"][0]["addresses"] == ["127.0.0.2"]
        assert o["endpoints"][0]["conditions"]["ready"] is False
        assert o["ports"] == [{"name": "http", "protocol": "TCP", "port": 8012}]
        kube.set_endpoints(NS, "hello-private", [("127.0.0.2", True, "pod-a")])
        w.wait(lambda w: any(e["type"] == "MODIFIED" for e in w.events))
        # bookmarks carry only a resourceVersion, and come every 0.3 s here
        w.wait(lambda w: any(e["type"] == "BOOKMARK" for e in w.events), 3)
        bm = [e for e in w.events if e["type"] == "BOOKMARK"][0]["object"]
        assert set(bm["metadata"]) <= {"resourceVersion", "creationTimestamp"}
        types = [e["type"] for e in w.events if e["type"] != "BOOKMARK"]
        assert types == ["ADDED", "MODIFIED"], w.events
    finally:
        w.close()
    # the list sees the current state, at a newer resourceVersion
    st, lst = api(kube, "GET", SLICES + "?" + SEL + "hello-private", token)
    assert int(lst["metadata"]["resourceVersion"]) > int(rv)
    assert [i["endpoints"][0]["conditions"]["ready"] for i in lst["items"]] == [True]


def test_watch_timeout_seconds_ends_the_stream(kube, token):
    w = Watch(kube, token, "watch=1&resourceVersion=%d&timeoutSeconds=1&%sx"
              % (kube.resource_version, SEL))
    w.wait(lambda w: w.ended == "clean", 4)


def test_watch_from_compacted_rv_is_an_error_event(kube, token):
    kube.set_endpoints(NS, "hello-private", [("127.0.0.2", True, "a")])
    old = kube.resource_version
    kube.set_endpoints(NS, "hello-private", [("127.0.0.3", True, "b")])
    kube.compact()
    w = Watch(kube, token, "watch=1&resourceVersion=%d&%shello-private" % (old, SEL))
    assert w.r.status == 200
    w.wait(lambda w: w.ended is not None)
    assert w.ended == "clean"
    assert len(w.events) == 1 and w.events[0]["type"] == "ERROR"
    assert_status(w.events[0]["object"], 410, "Expired")
    # a list with resourceVersionMatch=Exact on a compacted version is an HTTP 410
    st, body = api(kube, "GET", SLICES + "?resourceVersion=%d&resourceVersionMatch=Exact" % old,
                   token)
    assert st == 410 and body["reason"] == "Expired"
    # watching from the current version works
    w2 = Watch(kube, token, "watch=1&resourceVersion=%d&%shello-private"
               % (kube.resource_version, SEL))
    kube.set_endpoints(NS, "hello-private", [])
    w2.wait(lambda w: w.events and w.events[0]["type"] == "MODIFIED")
    w2.close()


def test_cut_watches_down_and_fail_next(kube, token):
    w = Watch(kube, token, "watch=1&resourceVersion=%d&%sx" % (kube.resource_version, SEL))
    kp.wait_until(lambda: kube.watch_count() == 1, 2, what="watch registered")
    assert kube.cut_watches() == 1
    w.wait(lambda w: w.ended is not None)
    assert w.ended == "error"  # no final chunk: an abrupt end

    kube.down(0.5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", kube.port), timeout=1)
    kp.wait_until(lambda: kp.port_open(kube.port), 3, what="fake-kube back up")
    kube.add_deployment(NS, "web", 1)
    assert api(kube, "GET", SCALE % "web", token)[0] == 200

    kube.fail_next(2, 503, path_contains="/scale")
    assert api(kube, "GET", SCALE % "web", token)[0] == 503
    st, body = api(kube, "GET", SCALE % "web", token)
    assert_status(body, 503, "ServiceUnavailable")
    assert api(kube, "GET", SCALE % "web", token)[0] == 200


# ---------------------------------------------------------------- leases


def lease(name, holder, rv=None):
    meta = {"name": name, "namespace": NS}
    if rv is not None:
        meta["resourceVersion"] = rv
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "acquireTime": "2024-05-01T10:00:00.000000Z",
                     "renewTime": "2024-05-01T10:00:05.123456Z"}}


def test_leases(kube, token):
    st, body = api(kube, "GET", LEASES + "/activator", token)
    assert st == 404
    assert_status(body, 404, "NotFound", 'leases.coordination.k8s.io "activator" not found')
    st, l1 = api(kube, "POST", LEASES, token, lease("activator", "a-1"))
    assert st == 201 and l1["spec"]["holderIdentity"] == "a-1"
    assert l1["spec"]["renewTime"] == "2024-05-01T10:00:05.123456Z"
    st, body = api(kube, "POST", LEASES, token, lease("activator", "a-2"))
    assert st == 409
    assert_status(body, 409, "AlreadyExists",
                  'leases.coordination.k8s.io "activator" already exists')
    rv1 = l1["metadata"]["resourceVersion"]
    st, l2 = api(kube, "PUT", LEASES + "/activator", token, lease("activator", "a-1", rv1))
    assert st == 200 and int(l2["metadata"]["resourceVersion"]) > int(rv1)
    st, body = api(kube, "PUT", LEASES + "/activator", token, lease("activator", "a-2", rv1))
    assert st == 409
    assert_status(body, 409, "Conflict")
    assert "the object has been modified" in body["message"]
    assert kube.get_lease(NS, "activator")["spec"]["holderIdentity"] == "a-1"
    st, body = api(kube, "DELETE", LEASES + "/activator", token)
    assert st == 403  # least privilege: no delete
    assert [w["status"] for w in kube.lease_writes] == [201, 409, 200, 409]


# ---------------------------------------------------------------- kubelet


def test_kubelet_sim_scale_0_2_0(kube, token):
    rev = "hello-00001"
    kube.add_deployment(NS, rev + "-deployment", 0)
    sim = KubeletSim(kube)
    try:
        sim.configure(rev, app_env={"TARGET": "Fake Kube"})
        st, _ = api(kube, "PATCH", SCALE % (rev + "-deployment"), token,
                    {"spec": {"replicas": 2}}, "application/merge-patch+json")
        assert st == 200
        pods = sim.wait_ready(rev, 2, timeout=10)
        assert len({p.ip for p in pods}) == 2
        assert all(p.ip.startswith("127.0.0.") and p.ip != "127.0.0.1" for p in pods)
        eps = kp.wait_until(lambda: (lambda e: e if len(e) == 2 and all(x[1] for x in e)
                                     else None)(kube.endpoints(NS, rev + "-private")), 3,
                            what="2 ready endpoints")
        by_ip = {p.ip: p for p in pods}
        for ip, ready, pod, ports in eps:
            assert by_ip[ip].name == pod and ports["http"] == by_ip[ip].port
        # the published address and port reach the app through the queue-proxy
        for ip, _, _, ports in eps:
            r = kp.request(ports["http"], "/", host=ip)
            assert r.status == 200 and r.text == "Hello Fake Kube!\n", r
        # the first event of each pod was "not ready"
        assert kube.get_scale(NS, rev + "-deployment")["status"]["replicas"] == 2
        procs = [p.qp for p in pods] + [p.app for p in pods]

        st, _ = api(kube, "PATCH", SCALE % (rev + "-deployment"), token,
                    {"spec": {"replicas": 0}}, "application/merge-patch+json")
        assert st == 200
        sim.wait_pods(rev, 0, timeout=10)
        assert all(p.poll() is not None for p in procs)
        assert all(p.qp.poll() == 0 for p in pods), [sim.logs(p) for p in pods]
        assert kube.endpoints(NS, rev + "-private") == []
        assert kube.get_scale(NS, rev + "-deployment")["status"]["replicas"] == 0
    finally:
        sim.stop()


def test_kubelet_sim_publishes_not_ready_first(kube):
    rev = "slow-00001"
    kube.add_deployment(NS, rev + "-deployment", 0)
    with KubeletSim(kube) as sim:
        sim.configure(rev, app_env={"STARTUP_DELAY_MS": "300"})
        seen = []
        orig = kube.set_endpoints

        def spy(ns, svc, eps, **kw):
            seen.append([(e["ip"], e["ready"]) for e in eps])
            return orig(ns, svc, eps, **kw)
        kube.set_endpoints = spy
        kube.set_replicas(NS, rev + "-deployment", 1)
        pod = sim.wait_ready(rev, 1, timeout=10)[0]
        assert seen[0] == [(pod.ip, False)] and seen[-1] == [(pod.ip, True)]
        kube.set_endpoints = orig


# ---------------------------------------------------------------- generic resources

KSVC = "/apis/serving.knative.dev/v1/namespaces/default/services"
KCFG = "/apis/serving.knative.dev/v1/namespaces/default/configurations"
KREV = "/apis/serving.knative.dev/v1/namespaces/default/revisions"
KRT = "/apis/serving.knative.dev/v1/namespaces/default/routes"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
SVCS = "/api/v1/namespaces/default/services"
HPAS = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
PODS = "/api/v1/namespaces/default/pods"
MERGE = "application/merge-patch+json"
STALE = ('Operation cannot be fulfilled on services.serving.knative.dev "hello": the object '
         'has been modified; please apply your changes to the latest version and try again')


@pytest.fixture
def admin(kube):
    return kube.add_user("admin", [("*", "*", "*", "*")])


def ksvc(name="hello", image="kp.dev/helloworld", labels=None, **extra):
    o = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
         "metadata": {"name": name, "namespace": NS},
         "spec": {"template": {"spec": {"containers": [{"image": image}]}}}}
    if labels:
        o["metadata"]["labels"] = labels
    o.update(extra)
    return o


def owned(obj, owner):
    obj["metadata"]["ownerReferences"] = [{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]
    return obj


def deployment(name, labels=None, image="kp.dev/helloworld", replicas=None):
    labels = labels or {"app": name}
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "user-container",
                                                        "image": image}]}}}}
    if replicas is not None:
        d["spec"]["replicas"] = replicas
    return d


def test_knative_resources_404_until_the_crds_are_installed(kube, admin, tmp_path):
    st, body = api(kube, "GET", KSVC, admin)
    assert st == 404
    assert_status(body, 404, "NotFound", "the server could not find the requested resource")
    assert body["details"] == {}
    assert api(kube, "POST", KSVC, admin, ksvc())[0] == 404
    # the request log names them before they are served
    assert kube.request_counts(resource="ksvc") == {
        ("list", "services.serving.knative.dev"): 1, ("create", "services.serving.knative.dev"): 1}
    groups = [g["name"] for g in api(kube, "GET", "/apis", admin)[1]["groups"]]
    assert "serving.knative.dev" not in groups and "apps" in groups
    assert api(kube, "GET", "/apis/serving.knative.dev/v1", admin)[0] == 404

    assert sorted(kube.install_crds()) == [
        "configurations.serving.knative.dev", "revisions.serving.knative.dev",
        "routes.serving.knative.dev", "services.serving.knative.dev"]
    st, lst = api(kube, "GET", KSVC, admin)
    assert st == 200 and lst["kind"] == "ServiceList" and lst["items"] == []
    assert lst["apiVersion"] == "serving.knative.dev/v1"
    st, disc = api(kube, "GET", "/apis/serving.knative.dev/v1", admin)
    assert st == 200 and disc["kind"] == "APIResourceList"
    by_name = {r["name"]: r for r in disc["resources"]}
    assert by_name["services"]["shortNames"] == ["ksvc", "kservice"]
    assert by_name["services"]["kind"] == "Service" and by_name["services"]["namespaced"]
    assert set(by_name["services"]["verbs"]) >= {"get", "list", "watch", "create", "update",
                                                 "patch", "delete"}
    assert set(by_name) == {"services", "services/status", "configurations",
                            "configurations/status", "revisions", "revisions/status",
                            "routes", "routes/status"}
    core = {r["name"] for r in api(kube, "GET", "/api/v1", admin)[1]["resources"]}
    assert {"pods", "pods/status", "services", "configmaps", "events"} <= core
    assert api(kube, "GET", "/api", admin)[1]["versions"] == ["v1"]
    st, body = api(kube, "GET", "/apis")
    assert_status(body, 403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path '
                  '"/apis"')


def test_install_crds_from_a_file(kube, admin, tmp_path):
    path = tmp_path / "crds.yaml"
    path.write_text("""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.dev
spec:
  group: example.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {x: {type: integer}}}
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
    - name: v1alpha1
      served: false
      storage: false
      schema: {openAPIV3Schema: {type: object}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-crd}
""")
    assert kube.install_crds(str(path)) == ["widgets.example.dev"]
    w = "/apis/example.dev/v1/namespaces/default/widgets"
    st, o = api(kube, "POST", w, admin, {"apiVersion": "example.dev/v1", "kind": "Widget",
                                         "metadata": {"name": "a"}, "spec": {"x": 1, "y": 2},
                                         "status": {"ignored": True}})
    assert st == 201 and "status" not in o  # the status subresource clears it on create
    assert o["spec"] == {"x": 1}  # pruned: the schema does not know y
    st, o = api(kube, "POST", w, admin, {"metadata": {"name": "n"}, "spec": {"x": None}})
    assert st == 201 and o["spec"] == {}  # a null that is not nullable is pruned too
    st, body = api(kube, "POST", w, admin, {"metadata": {"name": "b"}, "spec": {"x": "one"}})
    assert_status(body, 422, "Invalid", 'Widget.example.dev "b" is invalid: spec.x: Invalid '
                  'value: "string": spec.x in body must be of type integer: "string"')
    st, o = api(kube, "PATCH", w + "/a/status", admin, {"status": {"any": {"thing": 1}}}, MERGE)
    assert st == 200 and o["status"] == {"any": {"thing": 1}}
    assert api(kube, "GET", w + "/a/status", admin)[0] == 200
    assert api(kube, "GET", "/apis/example.dev/v1alpha1/namespaces/default/widgets",
               admin)[0] == 404
    assert kube.get("wd", NS, "a")["spec"] == {"x": 1}
    crd = api(kube, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
              "widgets.example.dev", admin)[1]
    assert [c["type"] for c in crd["status"]["conditions"]] == ["NamesAccepted", "Established"]
    # deleting the CRD stops serving it, and its objects go with it
    assert api(kube, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
               "widgets.example.dev", admin)[0] == 200
    assert api(kube, "GET", w, admin)[0] == 404 and not kube.served("widgets.example.dev")


def test_create_metadata_and_already_exists(kube, admin):
    kube.install_crds()
    st, o = api(kube, "POST", KSVC, admin, ksvc(status={"url": "http://forged"}))
    assert st == 201
    m = o["metadata"]
    assert m["generation"] == 1 and m["namespace"] == NS and len(m["uid"]) == 36
    assert re_ts(m["creationTimestamp"]) and int(m["resourceVersion"]) > 0
    assert "status" not in o and o["kind"] == "Service"
    st, body = api(kube, "POST", KSVC, admin, ksvc())
    assert st == 409
    assert_status(body, 409, "AlreadyExists",
                  'services.serving.knative.dev "hello" already exists')
    assert body["details"] == {"name": "hello", "group": "serving.knative.dev",
                               "kind": "services"}
    # generateName
    st, g = api(kube, "POST", KSVC, admin, {"metadata": {"generateName": "gen-"},
                                            "spec": {}})
    assert st == 201 and re.match(r"^gen-[a-z0-9]{5}$", g["metadata"]["name"]), g
    assert g["apiVersion"] == "serving.knative.dev/v1"  # defaulted from the URL
    # the body must fit the URL
    st, body = api(kube, "POST", KSVC, admin, dict(ksvc("x"), kind="Route"))
    assert st == 400 and "does not match the expected kind" in body["message"]
    st, body = api(kube, "POST", KSVC, admin, {"metadata": {}})
    assert st == 422 and body["reason"] == "Invalid"
    assert "name or generateName is required" in body["message"]
    st, body = api(kube, "POST", KSVC, admin, dict(ksvc("Bad_Name")))
    assert st == 422 and "RFC 1123" in body["message"]
    st, body = api(kube, "POST", KSVC, admin,
                   dict(ksvc("y"), metadata={"name": "y", "resourceVersion": "5"}))
    assert st == 500 and body["message"] == \
        "resourceVersion should not be set on objects to be created"
    st, body = api(kube, "POST", "/apis/serving.knative.dev/v1/namespaces/nope/services",
                   admin, ksvc())
    assert_status(body, 400, "BadRequest", "the namespace of the provided object does not "
                  "match the namespace sent on the request")
    st, body = api(kube, "POST", "/apis/serving.knative.dev/v1/namespaces/nope/services",
                   admin, dict(ksvc(), metadata={"name": "hello"}))
    assert_status(body, 404, "NotFound", 'namespaces "nope" not found')


def re_ts(ts):
    return re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ts)


def test_generation_and_conflicts_on_put(kube, admin):
    kube.install_crds()
    o = api(kube, "POST", KSVC, admin, ksvc())[1]
    rv1 = o["metadata"]["resourceVersion"]
    # a spec change bumps generation
    o["spec"]["template"]["spec"]["containers"][0]["image"] = "kp.dev/v2"
    st, o2 = api(kube, "PUT", KSVC + "/hello", admin, o)
    assert st == 200 and o2["metadata"]["generation"] == 2
    rv2 = o2["metadata"]["resourceVersion"]
    assert int(rv2) > int(rv1)
    # a stale resourceVersion is a 409 Conflict with the real message
    st, body = api(kube, "PUT", KSVC + "/hello", admin, o)
    assert st == 409
    assert_status(body, 409, "Conflict", STALE)
    # metadata changes do not bump generation; status in a PUT is ignored
    o2["metadata"]["labels"] = {"team": "a"}
    o2["status"] = {"observedGeneration": 99}
    st, o3 = api(kube, "PUT", KSVC + "/hello", admin, o2)
    assert st == 200 and o3["metadata"]["generation"] == 2 and "status" not in o3
    assert o3["metadata"]["labels"] == {"team": "a"}
    assert o3["metadata"]["uid"] == o["metadata"]["uid"]
    # a write that changes nothing stores nothing: same resourceVersion
    st, o4 = api(kube, "PUT", KSVC + "/hello", admin, o3)
    assert st == 200 and o4["metadata"]["resourceVersion"] == o3["metadata"]["resourceVersion"]
    # a concurrent writer makes our copy stale
    kube.touch("ksvc", NS, "hello")
    o3["spec"]["template"]["spec"]["containers"][0]["image"] = "kp.dev/v3"
    st, body = api(kube, "PUT", KSVC + "/hello", admin, o3)
    assert_status(body, 409, "Conflict", STALE)
    # CRDs refuse an update without resourceVersion
    del o3["metadata"]["resourceVersion"]
    st, body = api(kube, "PUT", KSVC + "/hello", admin, o3)
    assert_status(body, 422, "Invalid",
                  'Service.serving.knative.dev "hello" is invalid: metadata.resourceVersion: '
                  'Invalid value: 0x0: must be specified for an update')
    st, body = api(kube, "PUT", KSVC + "/nope", admin, ksvc("nope"))
    assert_status(body, 404, "NotFound", 'services.serving.knative.dev "nope" not found')
    st, body = api(kube, "PUT", KSVC + "/other", admin, o3)
    assert st == 400 and "does not match the name on the URL" in body["message"]
    assert kube.get("ksvc", NS, "hello")["metadata"]["generation"] == 2


def test_status_subresource_is_isolated(kube, admin):
    kube.install_crds()
    o = api(kube, "POST", KSVC, admin, ksvc())[1]
    o["spec"] = {"forged": True}
    o["metadata"]["labels"] = {"forged": "yes"}
    o["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    st, s = api(kube, "PUT", KSVC + "/hello/status", admin, o)
    assert st == 200
    assert s["status"]["conditions"][0]["status"] == "True"
    assert s["spec"] == ksvc()["spec"] and "labels" not in s["metadata"]
    assert s["metadata"]["generation"] == 1
    # stale precondition on /status
    st, body = api(kube, "PUT", KSVC + "/hello/status", admin, o)
    assert_status(body, 409, "Conflict", STALE)
    st, s2 = api(kube, "PATCH", KSVC + "/hello/status", admin,
                 {"status": {"url": "http://hello.default.example.com"}, "spec": {"x": 1}},
                 MERGE)
    assert st == 200 and s2["status"]["url"] == "http://hello.default.example.com"
    assert s2["status"]["observedGeneration"] == 1 and "x" not in s2["spec"]
    assert s2["metadata"]["generation"] == 1
    # the main resource ignores status
    st, s3 = api(kube, "PATCH", KSVC + "/hello", admin, {"status": {"url": "forged"}}, MERGE)
    assert st == 200 and s3["status"]["url"] == "http://hello.default.example.com"
    assert s3["metadata"]["resourceVersion"] == s2["metadata"]["resourceVersion"]
    # a resource without the status subresource has no /status
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"a": "1"}})
    assert api(kube, "GET", "/api/v1/namespaces/default/configmaps/c/status", admin)[0] == 404


def test_patch_content_types(kube, admin):
    kube.install_crds()
    api(kube, "POST", KSVC, admin, ksvc(labels={"a": "1", "b": "2"}))
    st, o = api(kube, "PATCH", KSVC + "/hello", admin,
                {"metadata": {"labels": {"a": None, "c": "3"}}}, MERGE)
    assert st == 200 and o["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert o["metadata"]["generation"] == 1
    st, o = api(kube, "PATCH", KSVC + "/hello", admin,
                [{"op": "replace", "path": "/spec/template/spec/containers/0/image",
                  "value": "kp.dev/v2"}], "application/json-patch+json")
    assert st == 200 and o["metadata"]["generation"] == 2
    assert o["spec"]["template"]["spec"]["containers"][0]["image"] == "kp.dev/v2"
    st, body = api(kube, "PATCH", KSVC + "/hello", admin,
                   [{"op": "test", "path": "/spec/nope", "value": 1}],
                   "application/json-patch+json")
    assert st == 422
    # the resourceVersion in a patch is a precondition
    st, body = api(kube, "PATCH", KSVC + "/hello", admin,
                   {"metadata": {"resourceVersion": "1"}, "spec": {"x": 1}}, MERGE)
    assert_status(body, 409, "Conflict", STALE)
    # CRDs do not take strategic merge patches; nothing takes plain JSON
    for ctype in ("application/strategic-merge-patch+json", "application/json"):
        st, body = api(kube, "PATCH", KSVC + "/hello", admin, {"spec": {}}, ctype)
        assert st == 415, ctype
        assert_status(body, 415, "UnsupportedMediaType")
        assert "strategic" not in body["message"]
    st, body = api(kube, "PATCH", KSVC + "/nope", admin, {"spec": {}}, MERGE)
    assert st == 404
    # built-in kinds do: containers merge by name
    d = deployment("web")
    d["spec"]["template"]["spec"]["containers"].append({"name": "queue-proxy",
                                                        "image": "kp.dev/qp"})
    assert api(kube, "POST", DEPLOYS, admin, d)[0] == 201
    st, o = api(kube, "PATCH", DEPLOYS + "/web", admin,
                {"spec": {"template": {"spec": {"containers": [
                    {"name": "queue-proxy", "image": "kp.dev/qp2"}]}}}},
                "application/strategic-merge-patch+json")
    assert st == 200, o
    assert [(c["name"], c["image"]) for c in o["spec"]["template"]["spec"]["containers"]] == \
        [("user-container", "kp.dev/helloworld"), ("queue-proxy", "kp.dev/qp2")]
    assert o["metadata"]["generation"] == 2


def test_rbac_checks_subresources_as_their_own_resource(kube, admin):
    kube.install_crds()
    api(kube, "POST", KSVC, admin, ksvc())
    writer = kube.add_user("writer", [(v, "serving.knative.dev", "services", NS)
                                      for v in ("get", "update", "patch")])
    st, body = api(kube, "PATCH", KSVC + "/hello/status", writer, {"status": {"a": 1}}, MERGE)
    assert_status(body, 403, "Forbidden",
                  'services.serving.knative.dev "hello" is forbidden: User "writer" cannot '
                  'patch resource "services/status" in API group "serving.knative.dev" in the '
                  'namespace "default"')
    # a core Service permission is not a Knative Service permission
    core = kube.add_user("core", [("get", "", "services", NS)])
    st, body = api(kube, "GET", KSVC + "/hello", core)
    assert st == 403 and 'in API group "serving.knative.dev"' in body["message"]
    status_writer = kube.add_user("status", [("update", "serving.knative.dev",
                                              "services/status", NS)])
    o = kube.get("ksvc", NS, "hello")
    assert api(kube, "PUT", KSVC + "/hello", status_writer, o)[0] == 403
    o["status"] = {"observedGeneration": 1}
    assert api(kube, "PUT", KSVC + "/hello/status", status_writer, o)[0] == 200
    st, body = api(kube, "GET", "/apis/serving.knative.dev/v1/services", writer)
    assert st == 403 and body["message"].endswith("at the cluster scope")


def test_watch_every_write_on_a_crd_resume_and_expire(kube, admin):
    kube.install_crds()
    st, lst = api(kube, "GET", KSVC, admin)
    rv0 = lst["metadata"]["resourceVersion"]
    w = Watch(kube, admin, "watch=1&resourceVersion=%s" % rv0, KSVC)
    try:
        o = api(kube, "POST", KSVC, admin, ksvc())[1]
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "kp.dev/v2"
        o = api(kube, "PUT", KSVC + "/hello", admin, o)[1]
        api(kube, "PATCH", KSVC + "/hello/status", admin, {"status": {"observedGeneration": 2}},
            MERGE)
        api(kube, "DELETE", KSVC + "/hello", admin)
        w.wait(lambda w: len(w.events) == 4)
    finally:
        w.close()
    assert [e["type"] for e in w.events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in w.events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4
    assert all(e["object"]["kind"] == "Service" for e in w.events)
    assert w.events[2]["object"]["status"] == {"observedGeneration": 2}
    # resume from the second event: the last two only
    w2 = Watch(kube, admin, "watch=1&resourceVersion=%d&timeoutSeconds=1" % rvs[1], KSVC)
    w2.wait(lambda w: w.ended is not None, 4)
    assert [e["type"] for e in w2.events] == ["MODIFIED", "DELETED"]
    kube.compact()
    w3 = Watch(kube, admin, "watch=1&resourceVersion=%d" % rvs[1], KSVC)
    w3.wait(lambda w: w.ended is not None)
    assert [e["type"] for e in w3.events] == ["ERROR"]
    assert_status(w3.events[0]["object"], 410, "Expired")


def test_watch_with_a_selector_sees_objects_enter_and_leave(kube, admin):
    kube.install_crds()
    kube.add_namespace("other")
    w = Watch(kube, admin, "watch=1&resourceVersion=%d&labelSelector=tier%%20in%%20(a%%2Cb)"
              % kube.resource_version, "/apis/serving.knative.dev/v1/services")
    try:
        api(kube, "POST", KSVC, admin, ksvc("x", labels={"tier": "c"}))
        y = ksvc("y", labels={"tier": "a"})
        y["metadata"]["namespace"] = "other"
        assert api(kube, "POST", "/apis/serving.knative.dev/v1/namespaces/other/services",
                   admin, y)[0] == 201
        api(kube, "PATCH", KSVC + "/x", admin, {"metadata": {"labels": {"tier": "b"}}}, MERGE)
        api(kube, "PATCH", KSVC + "/x", admin, {"metadata": {"labels": {"tier": "z"}}}, MERGE)
        w.wait(lambda w: len(w.events) == 3)
    finally:
        w.close()
    assert [(e["type"], e["object"]["metadata"]["namespace"], e["object"]["metadata"]["name"])
            for e in w.events] == [("ADDED", "other", "y"), ("ADDED", NS, "x"),
                                   ("DELETED", NS, "x")]
    st, lst = api(kube, "GET", "/apis/serving.knative.dev/v1/services?labelSelector="
                  "tier%21%3Dz", admin)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["y"]
    assert lst["items"][0]["kind"] == "Service"  # custom resources keep kind in lists
    st, lst = api(kube, "GET", KSVC + "?fieldSelector=metadata.name%3Dx", admin)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["x"]
    st, body = api(kube, "GET", KSVC + "?fieldSelector=spec.foo%3Dx", admin)
    assert st == 400 and "not a known field selector" in body["message"]
    st, body = api(kube, "GET", KSVC + "?labelSelector=a%20in%20(", admin)
    assert st == 400


def chain(kube, admin):
    """A Service and what a reconciler makes of it, each owned by its parent."""
    kube.install_crds()
    svc = api(kube, "POST", KSVC, admin, ksvc())[1]
    cfg = api(kube, "POST", KCFG, admin, owned({"metadata": {"name": "hello"}, "spec": {}},
                                               svc))[1]
    api(kube, "POST", KRT, admin, owned({"metadata": {"name": "hello"}, "spec": {}}, svc))
    rev = api(kube, "POST", KREV, admin, owned({"metadata": {"name": "hello-00001"},
                                                "spec": {}}, cfg))[1]
    st, d = api(kube, "POST", DEPLOYS, admin, owned(deployment("hello-00001-deployment"), rev))
    assert st == 201, d
    for name in ("hello-00001-private", "hello-00001"):
        st, s = api(kube, "POST", SVCS, admin, owned({"metadata": {"name": name}, "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": 8012}]}}, rev))
        assert st == 201, s
    st, h = api(kube, "POST", HPAS, admin, owned({"metadata": {"name": "hello-00001"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                           "name": "hello-00001-deployment"}, "maxReplicas": 3}}, rev))
    assert st == 201, h
    return svc, rev


def test_cascading_delete_through_owner_references(kube, admin):
    chain(kube, admin)
    watches = {p: Watch(kube, admin, "watch=1&resourceVersion=%d" % kube.resource_version, p)
               for p in (KCFG, KRT, KREV, DEPLOYS, SVCS, HPAS)}
    try:
        st, body = api(kube, "DELETE", KSVC + "/hello", admin)
        assert st == 200 and body["status"] == "Success"
        assert body["details"]["name"] == "hello"
        for w in watches.values():
            w.wait(lambda w: len([e for e in w.events if e["type"] == "DELETED"]) >=
                   (2 if w is watches[SVCS] else 1))
    finally:
        for w in watches.values():
            w.close()
    for res in ("ksvc", "configurations", "routes", "revisions", "deployments", "services",
                "hpa"):
        assert kube.list(res, NS) == [], res
    deleted = {(e["object"]["kind"], e["object"]["metadata"]["name"])
               for w in watches.values() for e in w.events if e["type"] == "DELETED"}
    assert deleted == {("Configuration", "hello"), ("Route", "hello"),
                       ("Revision", "hello-00001"), ("Deployment", "hello-00001-deployment"),
                       ("Service", "hello-00001-private"), ("Service", "hello-00001"),
                       ("HorizontalPodAutoscaler", "hello-00001")}
    st, body = api(kube, "DELETE", KSVC + "/hello", admin)
    assert_status(body, 404, "NotFound", 'services.serving.knative.dev "hello" not found')


def test_orphan_and_foreground_deletes(kube, admin):
    svc, rev = chain(kube, admin)
    st, _ = api(kube, "DELETE", KREV + "/hello-00001?propagationPolicy=Orphan", admin)
    assert st == 200
    time.sleep(0.3)  # the garbage collector would act by now
    d = kube.get("deployments", NS, "hello-00001-deployment")
    assert d is not None and "ownerReferences" not in d["metadata"]
    assert kube.get("services", NS, "hello-00001-private") is not None
    # a dependent with a live owner only loses the dangling reference
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}}
    owned(cm, svc)
    cm["metadata"]["ownerReferences"].append(dict(cm["metadata"]["ownerReferences"][0],
                                                  uid=d["metadata"]["uid"], controller=False,
                                                  kind="Deployment", apiVersion="apps/v1"))
    kube.create(cm)
    st, _ = api(kube, "DELETE", KSVC + "/hello", admin,
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})
    assert st == 200
    assert kube.list("configurations", NS) == [] and kube.list("routes", NS) == []
    left = kube.wait_for("configmaps", NS, "shared",
                         lambda o: len(o["metadata"]["ownerReferences"]) == 1)
    assert left["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    st, body = api(kube, "DELETE", DEPLOYS + "/x?propagationPolicy=Sideways", admin)
    assert st == 400


def test_deployments_and_services_get_the_api_defaults(kube, admin):
    seen = []
    kube.on_scale = lambda ns, name, n: seen.append((name, n))
    st, body = api(kube, "POST", DEPLOYS, admin, {"metadata": {"name": "bad"}, "spec": {
        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert st == 422 and "spec.selector: Required value" in body["message"]
    d = deployment("web")
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    st, body = api(kube, "POST", DEPLOYS, admin, d)
    assert st == 422 and "does not match template" in body["message"]
    st, d = api(kube, "POST", DEPLOYS, admin, deployment("web"))
    assert st == 201
    assert d["spec"]["replicas"] == 1 and d["spec"]["progressDeadlineSeconds"] == 600
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["imagePullPolicy"] == "Always" and d["status"] == {}
    assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30
    # the scale subresource of a created deployment: status from the deployment's status
    s = api(kube, "GET", SCALE % "web", admin)[1]
    assert s["spec"]["replicas"] == 1 and s["status"] == {"replicas": 0, "selector": "app=web"}
    st, d2 = api(kube, "PATCH", DEPLOYS + "/web", admin, {"spec": {"replicas": 3}}, MERGE)
    assert d2["metadata"]["generation"] == 2
    kp.wait_until(lambda: seen == [("web", 3)], 2, what="on_scale")
    st, d3 = api(kube, "PUT", DEPLOYS + "/web/status", admin,
                 dict(d2, status={"replicas": 3, "observedGeneration": 2}))
    assert st == 200 and d3["metadata"]["generation"] == 2
    assert api(kube, "GET", SCALE % "web", admin)[1]["status"]["replicas"] == 3
    d3["spec"]["selector"] = {"matchLabels": {"app": "x"}}
    d3["spec"]["template"]["metadata"]["labels"] = {"app": "x"}
    st, body = api(kube, "PUT", DEPLOYS + "/web", admin, d3)
    assert st == 422 and "field is immutable" in body["message"]
    # deployments take an unconditional update
    d3 = kube.get("deployments", NS, "web")
    del d3["metadata"]["resourceVersion"]
    d3["spec"]["replicas"] = 2
    assert api(kube, "PUT", DEPLOYS + "/web", admin, d3)[1]["metadata"]["generation"] == 3

    st, s = api(kube, "POST", SVCS, admin, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}})
    assert st == 201
    assert s["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP",
                                   "targetPort": 80}]
    ip = s["spec"]["clusterIP"]
    assert ip.startswith("10.96.") and s["spec"]["clusterIPs"] == [ip]
    assert s["spec"]["type"] == "ClusterIP" and s["spec"]["sessionAffinity"] == "None"
    assert "generation" not in s["metadata"]
    s["spec"]["clusterIP"] = ""
    s["spec"]["clusterIPs"] = []
    st, s2 = api(kube, "PUT", SVCS + "/web", admin, s)
    assert st == 200 and s2["spec"]["clusterIP"] == ip
    s2["spec"]["clusterIP"] = "10.96.99.99"
    st, body = api(kube, "PUT", SVCS + "/web", admin, s2)
    assert st == 422 and "may not change once set" in body["message"]
    st, body = api(kube, "POST", SVCS, admin, {"metadata": {"name": "1web"}, "spec": {
        "ports": [{"port": 80}]}})
    assert st == 422 and "DNS-1035" in body["message"]


def test_request_log_counts_reads_and_writes(kube, admin):
    kube.install_crds()
    kube.apply(ksvc())
    since = kube.mark()
    api(kube, "GET", KSVC, admin)
    w = Watch(kube, admin, "watch=1&resourceVersion=%d&timeoutSeconds=1"
              % kube.resource_version, KSVC)
    api(kube, "GET", KSVC + "/hello", admin)
    api(kube, "GET", DEPLOYS, admin)
    w.wait(lambda w: w.ended is not None, 4)
    assert kube.writes(since) == []
    assert kube.request_counts(since=since) == {
        ("list", "services.serving.knative.dev"): 1,
        ("watch", "services.serving.knative.dev"): 1,
        ("get", "services.serving.knative.dev"): 1,
        ("list", "deployments.apps"): 1}
    o = kube.get("ksvc", NS, "hello")
    api(kube, "PUT", KSVC + "/hello", admin, o)  # changes nothing, but is a write
    api(kube, "PATCH", KSVC + "/hello/status", admin, {"status": {"a": 1}}, MERGE)
    api(kube, "PUT", KSVC + "/nope", admin, ksvc("nope"))
    writes = kube.writes(since)
    assert [(e["verb"], e["resource"], e["subresource"], e["name"], e["status"])
            for e in writes] == [
        ("update", "services.serving.knative.dev", None, "hello", 200),
        ("patch", "services.serving.knative.dev", "status", "hello", 200),
        ("update", "services.serving.knative.dev", None, "nope", 404)]
    assert len(kube.writes(since, resource="ksvc/status")) == 1
    assert kube.writes(since, resource="deployments") == []
    assert kube.request_counts("watch", "ksvc") == {("watch", "services.serving.knative.dev"): 1}
    assert [e["user"] for e in kube.request_log(resource="ksvc", since=since)] == \
        ["admin"] * 6


def test_helpers_apply_touch_wait_for(kube):
    kube.install_crds()
    o = kube.apply(ksvc())
    assert o["metadata"]["generation"] == 1
    same = kube.apply(ksvc())
    assert same["metadata"]["resourceVersion"] == o["metadata"]["resourceVersion"]
    o2 = kube.apply(ksvc(image="kp.dev/v2", labels={"x": "1"}))
    assert o2["metadata"]["generation"] == 2 and o2["metadata"]["labels"] == {"x": "1"}
    kube.set_status("ksvc", NS, "hello", {"observedGeneration": 2})
    t = kube.touch("ksvc", NS, "hello")
    assert t["metadata"]["generation"] == 2 and t["status"] == {"observedGeneration": 2}
    assert int(t["metadata"]["resourceVersion"]) > int(o2["metadata"]["resourceVersion"])
    assert [x["metadata"]["name"] for x in kube.list("ksvc", NS, {"x": "1"})] == ["hello"]
    assert kube.list("ksvc", NS, "x!=1") == []
    threading.Timer(0.2, kube.set_status, ("ksvc", NS, "hello", {"ready": True})).start()
    got = kube.wait_for("ksvc", NS, "hello", lambda o: o["status"].get("ready"), 5)
    assert got["status"] == {"ready": True}
    with pytest.raises(AssertionError):
        kube.wait_for("ksvc", NS, "nope", timeout=0.2)
    kube.delete("ksvc", NS, "hello")
    assert kube.get("ksvc", NS, "hello") is None


def test_pods_terminate_gracefully_once_bound(kube, admin):
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    st, p = api(kube, "POST", PODS, admin, pod)
    assert st == 201 and p["status"]["phase"] == "Pending"
    assert "generation" not in p["metadata"]
    # not bound to a node: removed at once, the answer is the pod
    st, gone = api(kube, "DELETE", PODS + "/p", admin)
    assert st == 200 and gone["kind"] == "Pod" and kube.get("pods", NS, "p") is None
    pod["spec"]["nodeName"] = "fake-node"
    api(kube, "POST", PODS, admin, pod)
    st, p = api(kube, "DELETE", PODS + "/p", admin)
    assert st == 200 and p["metadata"]["deletionGracePeriodSeconds"] == 30
    assert kube.get("pods", NS, "p")["metadata"]["deletionTimestamp"]
    st, _ = api(kube, "DELETE", PODS + "/p?gracePeriodSeconds=0", admin)
    assert st == 200 and kube.get("pods", NS, "p") is None
    assert api(kube, "POST", "/api/v1/namespaces/default/events", admin, {
        "metadata": {"generateName": "p."}, "involvedObject": {"kind": "Pod", "name": "p"},
        "reason": "Started", "message": "m"})[0] == 201


def test_kubectl_apply_get_wait_delete(kube, admin, tmp_path):
    """kubectl discovers the Knative resources and works with them; the
    Table it asks for has the CRD's printer columns."""
    kube.install_crds()
    manifest = tmp_path / "ksvc.yaml"
    manifest.write_text("apiVersion: serving.knative.dev/v1\nkind: Service\n"
                        "metadata: {name: helloworld-go, namespace: default}\n"
                        "spec:\n  template:\n    spec:\n      containers:\n"
                        "        - image: gcr.io/knative-samples/helloworld-go\n")
    base = ["kubectl", "--server", kube.url, "--token", admin, "--certificate-authority",
            kube.ca_file, "--cache-dir", str(tmp_path / "cache")]

    def kubectl(*args):
        r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    # no OpenAPI document here: validation is off
    assert "created" in kubectl("apply", "--validate=false", "-f", str(manifest))
    assert "unchanged" in kubectl("apply", "--validate=false", "-f", str(manifest))
    kube.set_status("ksvc", NS, "helloworld-go", {
        "observedGeneration": 1, "url": "http://helloworld-go.default.example.com",
        "latestCreatedRevisionName": "helloworld-go-00001",
        "conditions": [{"type": "Ready", "status": "True"}]})
    out = kubectl("get", "ksvc").splitlines()
    assert out[0].split() == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON",
                              "AGE"], out
    # LATESTREADY and REASON are empty
    row = out[1].split()
    assert row[:4] == ["helloworld-go", "http://helloworld-go.default.example.com",
                       "helloworld-go-00001", "True"] and re.match(r"^\d+s$", row[4]), out
    kubectl("wait", "--for=condition=Ready", "ksvc/helloworld-go", "--timeout=10s")
    assert json.loads(kubectl("get", "kservice", "helloworld-go", "-o", "json"))[
        "metadata"]["generation"] == 1
    assert "deleted" in kubectl("delete", "ksvc", "helloworld-go")
    assert kube.get("ksvc", NS, "helloworld-go") is None


def test_bookmarks_of_a_custom_resource_watch(kube, admin):
    kube.install_crds()
    w = Watch(kube, admin, "watch=1&allowWatchBookmarks=true&resourceVersion=%d"
              % kube.resource_version, KSVC)
    try:
        w.wait(lambda w: any(e["type"] == "BOOKMARK" for e in w.events), 3)
    finally:
        w.close()
    bm = [e for e in w.events if e["type"] == "BOOKMARK"][0]["object"]
    assert bm == {"kind": "Service", "apiVersion": "serving.knative.dev/v1",
                  "metadata": {"resourceVersion": str(kube.resource_version)}}
