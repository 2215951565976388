"""Tests of the fake Kubernetes API server (fake_kube.py) and the kubelet
simulator (kubelet_sim.py) themselves."""
import _socket
import http.client
import json
import socket
import ssl
import subprocess
import threading

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

    def __init__(self, kube, token, query):
        self.c = conn(kube, timeout=10)
        self.c.request("GET", SLICES + "?" + query, headers={"Authorization": "Bearer " + token})
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
