"""The Kubernetes client's generic side (common/kube/object.c, informer.c)
and the EndpointSlice watches shared per namespace (watch.c), through
build/tools/kube_objects against the fake API server: object calls and
their answers (201, 409, merge patch, delete), an informer's events across
a cut watch and a 410 relist, a resource the API does not serve, and fifty
services' endpoints on one watch stream."""

import copy
import json
import os
import signal
import subprocess
import threading

import kp
from activator_harness import BUILD
from fake_kube import LEASE_PATH, MERGE_PATCH, ApiError, FakeKube, activator_rules

KUBE_OBJECTS = os.path.join(BUILD, "tools", "kube_objects")
LEASES = "leases.coordination.k8s.io/v1"
SLICES = "endpointslices.discovery.k8s.io/v1"
SERVICE_LABEL = "kubernetes.io/service-name"


class LeaseFake(FakeKube):
    """The fake API server, recording every DELETE body and PATCH content
    type of Leases; a PUT of their status (a subresource Leases lack) is
    authorized as update on leases/status, then 404."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.delete_bodies = []
        self.patch_types = []

    def _route(self, h, user, method, path, q, body, entry):
        status_path = path.endswith("/status") and LEASE_PATH.match(path[:-len("/status")])
        if status_path and method == "PUT":
            ns, name = status_path.groups()
            self._authorize(user, "update", "leases/status", ns, name)
            raise ApiError(404, "leases have no status", "NotFound")
        m = LEASE_PATH.match(path)
        if m and method == "DELETE":
            self.delete_bodies.append(json.loads(body or b"null"))
        if m and method == "PATCH" and m.group(2):
            self.patch_types.append((h.headers.get("Content-Type") or "").split(";")[0].strip())
        return super()._route(h, user, method, path, q, body, entry)


def objects(fake, token_file, *cmd, timeout=30):
    r = subprocess.run([KUBE_OBJECTS, "--api", fake.url, "--token-file", token_file,
                        "--ca-file", fake.ca_file, *cmd],
                       capture_output=True, text=True, timeout=timeout * kp.SLOW)
    assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r  # one answer per call
    return r.returncode, json.loads(lines[0]), r.stderr


class Running:
    """kube_objects in the background; its JSON lines as they come."""

    def __init__(self, fake, token_file, *cmd):
        self.proc = subprocess.Popen([KUBE_OBJECTS, "--api", fake.url, "--token-file",
                                      token_file, "--ca-file", fake.ca_file, *cmd],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.err = ""
        self._lock = threading.Lock()
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(json.loads(line))

    def _read_err(self):
        for line in self.proc.stderr:
            with self._lock:
                self.err += line

    def seen(self):
        with self._lock:
            return list(self.lines)

    def wait_for(self, fn, what, timeout=10):
        return kp.wait_until(lambda: fn(self.seen()), timeout, what=what)

    def finish(self, early=True):
        """Ends the run (SIGTERM: the tool closes its client and exits 0),
        or with early=False waits for its own deadline."""
        if early and self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30 * kp.SLOW)
        finally:
            self.proc.kill()
        self._out.join(5)
        self._err.join(5)
        return self.proc.returncode


def events(lines, since=0):
    return [(ln["event"], ln["name"]) for ln in lines[since:] if "event" in ln]


def slice_name(fake, service):
    return fake.slices("default", service)[0]["metadata"]["name"]


def requests_to(fake, path_part, watch=None):
    out = []
    for r in list(fake.requests):
        if path_part not in r["path"]:
            continue
        if watch is not None and ("watch=1" in r["path"]) != watch:
            continue
        out.append(r)
    return out


def test_object_calls_answer_with_the_api_object_or_its_status(tmp_path):
    with LeaseFake() as fake:
        token = fake.add_user("writer", [(v, "coordination.k8s.io", "leases", "default")
                                         for v in ("get", "create", "update", "patch",
                                                   "delete")])
        tf = fake.write_token_file(token, str(tmp_path / "token"))
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "web", "labels": {"app": "web"}},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10}}
        rc, ans, _ = objects(fake, tf, "create", LEASES, "default", json.dumps(lease))
        assert rc == 0 and ans["status"] == 201 and ans["message"] == "", ans
        created = ans["object"]
        assert created["metadata"]["name"] == "web" and created["spec"]["holderIdentity"] == "a"
        assert fake.get_lease("default", "web")["metadata"]["uid"] == created["metadata"]["uid"]

        rc, ans, _ = objects(fake, tf, "create", LEASES, "default", json.dumps(lease))
        assert rc == 1 and ans["status"] == 409 and ans["object"] is None, ans
        assert "already exists" in ans["message"], ans

        rc, ans, _ = objects(fake, tf, "get", LEASES, "default", "web")
        assert ans["status"] == 200 and ans["object"] == created, ans

        # A replace from the read version lands; the same again is stale.
        replaced = copy.deepcopy(created)
        replaced["spec"]["holderIdentity"] = "b"
        rc, ans, _ = objects(fake, tf, "replace", LEASES, "default", json.dumps(replaced))
        assert ans["status"] == 200 and ans["object"]["spec"]["holderIdentity"] == "b", ans
        newer = ans["object"]["metadata"]["resourceVersion"]
        assert newer != created["metadata"]["resourceVersion"]
        rc, ans, _ = objects(fake, tf, "replace", LEASES, "default", json.dumps(replaced))
        assert rc == 1 and ans["status"] == 409 and "has been modified" in ans["message"], ans
        assert fake.get_lease("default", "web")["spec"]["holderIdentity"] == "b"

        rc, ans, _ = objects(fake, tf, "patch", LEASES, "default", "web",
                             json.dumps({"metadata": {"labels": {"app": None, "tier": "x"}},
                                         "spec": {"holderIdentity": "c"}}))
        assert ans["status"] == 200, ans
        assert ans["object"]["metadata"]["labels"] == {"tier": "x"}, ans
        assert ans["object"]["spec"] == {"holderIdentity": "c", "leaseDurationSeconds": 10}
        assert fake.patch_types == [MERGE_PATCH]

        rc, ans, _ = objects(fake, tf, "delete", LEASES, "default", "web")
        assert ans["status"] == 200 and ans["object"]["status"] == "Success", ans
        assert fake.delete_bodies == [{"kind": "DeleteOptions", "apiVersion": "v1",
                                       "propagationPolicy": "Background"}]
        rc, ans, _ = objects(fake, tf, "get", LEASES, "default", "web")
        assert rc == 1 and ans["status"] == 404 and "not found" in ans["message"], ans
        methods = [(r["method"], r["path"]) for r in fake.requests]
        base = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
        assert methods == [("POST", base), ("POST", base), ("GET", base + "/web"),
                           ("PUT", base + "/web"), ("PUT", base + "/web"),
                           ("PATCH", base + "/web"), ("DELETE", base + "/web"),
                           ("GET", base + "/web")], methods


def test_object_call_errors_name_the_rbac_rule_and_never_go_unanswered(tmp_path):
    with LeaseFake() as fake:
        reader = fake.add_user("reader", [("get", "coordination.k8s.io", "leases", "default")])
        tf = fake.write_token_file(reader, str(tmp_path / "token"))
        fake.put_lease("default", "web", {"holderIdentity": "a"})
        lease = fake.get_lease("default", "web")
        rc, ans, err = objects(fake, tf, "replace-status", LEASES, "default", json.dumps(lease))
        assert ans["status"] == 403 and 'cannot update resource "leases/status"' in \
            ans["message"], ans
        assert "missing RBAC: verbs [update] on leases/status in coordination.k8s.io, " \
            "namespace default" in err, err
        assert fake.requests[-1]["path"].endswith("/leases/web/status"), fake.requests[-1]
        rc, ans, err = objects(fake, tf, "delete", LEASES, "default", "web")
        assert ans["status"] == 403 and "missing RBAC: verbs [delete] on leases" in err, err
        assert fake.get_lease("default", "web") is not None

        # An invalid name never leaves the process.
        seen = len(fake.requests)
        r = subprocess.run([KUBE_OBJECTS, "--api", fake.url, "--token-file", tf, "--ca-file",
                            fake.ca_file, "get", LEASES, "default", "Not_A_Name"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stdout == "", r
        assert len(fake.requests) == seen

        # The client closes before the answer: the callback still runs,
        # once, with status 0 (the tool exits 3 if it ran twice or never).
        rc, ans, _ = objects(fake, tf, "--close-at-once", "get", LEASES, "default", "web")
        assert rc == 1 and ans["status"] == 0 and "closed" in ans["message"], ans

        # Unreachable: status 0 and curl's reason.
        fake.set_down(True)
        rc, ans, _ = objects(fake, tf, "get", LEASES, "default", "web")
        assert rc == 1 and ans["status"] == 0 and ans["message"], ans


def slice_informer(fake, tf, seconds, *extra):
    return Running(fake, tf, "inform", SLICES, "default", SERVICE_LABEL, str(seconds), *extra)


def test_informer_delivers_changes_and_resumes_a_cut_watch_without_duplicates(tmp_path):
    with FakeKube(bookmark_interval=0.3) as fake:
        tf = fake.write_token_file(fake.add_user("activator", activator_rules("default")),
                                   str(tmp_path / "token"))
        fake.set_endpoints("default", "one", [("10.0.0.1", True, "one-a")])
        fake.set_endpoints("default", "two", [("10.0.0.2", True, "two-a")])
        # Not selected: no service-name label.
        with fake._lock:
            fake._bump("endpointslices", "default", "ADDED", {
                "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": fake._new_meta("default", "unlabelled", {"app": "x"}),
                "addressType": "IPv4",
                "endpoints": [], "ports": []})
        one, two = slice_name(fake, "one"), slice_name(fake, "two")
        inf = slice_informer(fake, tf, int(12 * kp.SLOW))
        try:
            inf.wait_for(lambda ls: any("synced" in ln for ln in ls), "the first list")
            first = inf.seen()
            assert sorted(events(first)) == [("ADDED", one), ("ADDED", two)], first
            sync = [ln for ln in first if "synced" in ln][0]
            assert sync == {"synced": 2, "walked": 2, "flag": True}, sync
            assert all(ln["cached"] and not ln["managed_fields"] for ln in first
                       if "event" in ln)

            fake.set_endpoints("default", "one", [("10.0.0.9", True, "one-b")])
            fake.set_endpoints("default", "three", [("10.0.0.3", True, "three-a")])
            fake.delete_endpoints("default", "two")
            three = slice_name(fake, "three")
            inf.wait_for(lambda ls: len(events(ls)) == 5, "three more events")
            lines = inf.seen()
            assert events(lines, len(first)) == [("UPDATED", one), ("ADDED", three),
                                                 ("DELETED", two)], lines
            upd = [ln for ln in lines if ln.get("event") == "UPDATED"][0]
            assert int(upd["rv"]) > int(upd["old_rv"]), upd
            gone = [ln for ln in lines if ln.get("event") == "DELETED"][0]
            assert gone["cached"] is False and gone["count"] == 2, gone

            # The stream is cut: the informer watches again from the last
            # resourceVersion it saw (bookmarks included), and what it had
            # already delivered is not delivered again.
            watches = len(requests_to(fake, "/endpointslices", watch=True))
            assert fake.cut_watches() == 1
            kp.wait_until(lambda: len(requests_to(fake, "/endpointslices", watch=True)) >
                          watches and fake.watch_count() == 1, 10, what="the watch reopened")
            resumed = requests_to(fake, "/endpointslices", watch=True)[-1]["path"]
            assert "resourceVersion=0" not in resumed and "allowWatchBookmarks=true" in resumed
            fake.set_endpoints("default", "three", [("10.0.0.4", True, "three-b")])
            inf.wait_for(lambda ls: len(events(ls)) == 6, "the change after the cut")
            assert events(inf.seen())[-1] == ("UPDATED", three)
            assert len(requests_to(fake, "/endpointslices", watch=False)) == 1  # no relist
        finally:
            rc = inf.finish()
        assert rc == 0, inf.err
        assert len(events(inf.lines)) == 6, inf.lines


def test_relist_after_410_delivers_only_the_difference(tmp_path):
    with FakeKube(bookmark_interval=0) as fake:
        tf = fake.write_token_file(fake.add_user("activator", activator_rules("default")),
                                   str(tmp_path / "token"))
        for svc in ("keep", "change", "drop"):
            fake.set_endpoints("default", svc, [("10.1.0.1", True, svc + "-a")])
        names = {svc: slice_name(fake, svc) for svc in ("keep", "change", "drop")}
        inf = slice_informer(fake, tf, int(12 * kp.SLOW))
        try:
            inf.wait_for(lambda ls: any("synced" in ln for ln in ls), "the first list")
            kp.wait_until(lambda: fake.watch_count() == 1, 10, what="the watch")
            n0 = len(inf.seen())
            # While the API is away the history moves on and is compacted:
            # the watch's resourceVersion is gone (ERROR 410 on reconnect).
            fake.set_down(True)
            fake.set_endpoints("default", "change", [("10.1.0.2", True, "change-b")])
            fake.delete_endpoints("default", "drop")
            fake.set_endpoints("default", "new", [("10.1.0.3", True, "new-a")])
            fake.compact()
            fake.set_down(False)
            inf.wait_for(lambda ls: sum("synced" in ln for ln in ls) == 2, "the relist", 20)
            after = inf.seen()[n0:]
            diff = events(after)
            assert sorted(diff) == sorted([("UPDATED", names["change"]),
                                           ("DELETED", names["drop"]),
                                           ("ADDED", slice_name(fake, "new"))]), after
            assert "synced" in after[-1] and after[-1]["synced"] == 3, after
            assert len(requests_to(fake, "/endpointslices", watch=False)) == 2
            assert "relisting" in inf.err, inf.err
            kp.wait_until(lambda: fake.watch_count() == 1, 10, what="watching again")
        finally:
            rc = inf.finish()
        assert rc == 0, inf.err


def test_a_resource_the_api_does_not_serve_is_retried_with_backoff_and_said_once(tmp_path):
    with FakeKube() as fake:
        tf = fake.write_token_file(fake.add_user("all", [("*", "*", "*", "*")]),
                                   str(tmp_path / "token"))
        secs = 5
        inf = Running(fake, tf, "inform", "services.serving.knative.dev/v1", "default", "",
                      str(secs))
        rc = inf.finish(early=False)
        assert rc == 0, inf.err
        path = "/apis/serving.knative.dev/v1/namespaces/default/services"
        tries = [r for r in fake.requests if r["path"] == path]
        assert all(r["status"] == 404 for r in tries), tries
        # 200 ms doubling (jittered): about 5 in 5 s, never a hot loop.
        assert 3 <= len(tries) <= 8, [r["time"] for r in tries]
        gaps = [b["time"] - a["time"] for a, b in zip(tries, tries[1:])]
        assert gaps[-1] > 2 * gaps[0], gaps
        said = [ln for ln in inf.err.splitlines() if "does not serve" in ln]
        assert len(said) == 1, inf.err
        assert "services.serving.knative.dev" in said[0] and path in said[0], said
        assert inf.lines == [], inf.lines  # no event, never synced


def test_an_informer_stopped_from_its_own_callback_delivers_nothing_more(tmp_path):
    with FakeKube(bookmark_interval=0.2) as fake:
        tf = fake.write_token_file(fake.add_user("activator", activator_rules("default")),
                                   str(tmp_path / "token"))
        fake.set_endpoints("default", "one", [("10.0.0.1", True, "one-a")])
        inf = slice_informer(fake, tf, int(30 * kp.SLOW), "stopper-x")
        try:
            inf.wait_for(lambda ls: any("synced" in ln for ln in ls), "the first list")
            kp.wait_until(lambda: fake.watch_count() == 1, 10, what="the watch")
            # A slice named for the stop comes in the middle of a burst.
            with fake._lock:
                for name in ("before-x", "stopper-x", "after-x"):
                    fake.create({
                        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                        "metadata": {"name": name, "namespace": "default",
                                     "labels": {SERVICE_LABEL: "one"}},
                        "addressType": "IPv4", "endpoints": [], "ports": []})
            inf.wait_for(lambda ls: {"stopped": True} in ls, "the stop")
            kp.wait_until(lambda: fake.watch_count() == 0, 10, what="its watch closed")
            fake.set_endpoints("default", "one", [("10.0.0.2", True, "one-b")])
        finally:
            rc = inf.finish()
        assert rc == 0, inf.err
        tail = events(inf.lines)[-2:]
        assert tail == [("ADDED", "before-x"), ("ADDED", "stopper-x")], inf.lines
        assert inf.lines[-1] == {"stopped": True}, inf.lines


def test_fifty_services_share_one_watch_stream(tmp_path):
    n = 50
    with FakeKube(bookmark_interval=0.5) as fake:
        tf = fake.write_token_file(fake.add_user("activator", activator_rules("default")),
                                   str(tmp_path / "token"))
        services = ["svc-%02d" % i for i in range(n)]
        for i, svc in enumerate(services):
            fake.set_endpoints("default", svc, [("10.2.%d.2" % i, True, svc + "-b"),
                                                ("10.2.%d.1" % i, i % 2 == 0, svc + "-a")])
        # svc-00's address is also in a second slice (another port set):
        # one set, sorted by ip then port, each address once.
        fake.set_endpoints("default", "svc-00", [("10.2.0.2", True, "svc-00-b"),
                                                 ("10.2.0.1", True, "svc-00-a"),
                                                 {"ip": "10.2.0.1", "ready": True,
                                                  "pod": "svc-00-a", "ports": 9000}])
        watch = Running(fake, tf, "endpoints", "default", str(int(30 * kp.SLOW)), *services)
        try:
            watch.wait_for(lambda ls: len(ls) >= n, "every service's first set")
            first = {ln["service"]: ln["endpoints"] for ln in watch.seen()}
            assert set(first) == set(services)
            for i, svc in enumerate(services[1:], 1):
                assert first[svc] == [
                    {"ip": "10.2.%d.1" % i, "port": 8012, "ready": i % 2 == 0,
                     "pod": svc + "-a"},
                    {"ip": "10.2.%d.2" % i, "port": 8012, "ready": True,
                     "pod": svc + "-b"}], first[svc]
            assert [(e["ip"], e["port"]) for e in first["svc-00"]] == [
                ("10.2.0.1", 8012), ("10.2.0.1", 9000), ("10.2.0.2", 8012)], first["svc-00"]
            kp.wait_until(lambda: fake.watch_count() == 1, 10, what="the watch")
            assert len(requests_to(fake, "/endpointslices", watch=True)) == 1
            assert len(requests_to(fake, "/endpointslices", watch=False)) == 1
            assert "labelSelector=kubernetes.io%2Fservice-name&" in \
                requests_to(fake, "/endpointslices", watch=True)[0]["path"]

            # One service changes: only its watcher hears of it.
            fake.set_endpoints("default", "svc-07", [("10.2.7.9", True, "svc-07-c")])
            watch.wait_for(lambda ls: len(ls) == n + 1, "svc-07's change")
            assert watch.seen()[-1] == {"service": "svc-07", "endpoints": [
                {"ip": "10.2.7.9", "port": 8012, "ready": True, "pod": "svc-07-c"}]}
            # A cut stream resumes; nothing changed, so nobody hears anything.
            assert fake.cut_watches() == 1
            kp.wait_until(lambda: fake.watch_count() == 1, 10, what="the watch reopened")
            fake.delete_endpoints("default", "svc-49")
            watch.wait_for(lambda ls: len(ls) == n + 2, "svc-49's slices gone")
            assert watch.seen()[-1] == {"service": "svc-49", "endpoints": []}
            # Every watcher stops: the shared stream closes with the last.
            watch.proc.send_signal(signal.SIGUSR1)
            watch.wait_for(lambda ls: {"watchers_stopped": True} in ls, "the watchers' stop")
            kp.wait_until(lambda: fake.watch_count() == 0, 10, what="the stream closed")
            assert watch.proc.poll() is None  # the client is still up
        finally:
            rc = watch.finish()
        assert rc == 0, watch.err
        assert len(watch.lines) == n + 3, watch.lines


def test_watchers_of_one_service_each_get_the_set_once_and_may_stop_inside(tmp_path):
    with FakeKube(bookmark_interval=0.5) as fake:
        tf = fake.write_token_file(fake.add_user("activator", activator_rules("default")),
                                   str(tmp_path / "token"))
        fake.set_endpoints("default", "dup", [("10.3.0.1", True, "dup-a")])
        watch = Running(fake, tf, "endpoints", "default", str(int(30 * kp.SLOW)),
                        "dup", "dup", "stop:dup", "empty")
        try:
            watch.wait_for(lambda ls: len(ls) >= 4, "every watcher's first set")
            first = watch.seen()
            dup = [{"ip": "10.3.0.1", "port": 8012, "ready": True, "pod": "dup-a"}]
            assert sorted(json.dumps(ln, sort_keys=True) for ln in first) == sorted(
                json.dumps(ln, sort_keys=True) for ln in [
                    {"service": "dup", "endpoints": dup},
                    {"service": "dup", "endpoints": dup},
                    {"service": "dup", "endpoints": dup, "stopped_itself": True},
                    {"service": "empty", "endpoints": []}]), first
            fake.set_endpoints("default", "dup", [("10.3.0.2", True, "dup-b")])
            watch.wait_for(lambda ls: len(ls) >= 6, "the change, to the two left")
            dup2 = [{"ip": "10.3.0.2", "port": 8012, "ready": True, "pod": "dup-b"}]
            assert watch.seen()[4:] == [{"service": "dup", "endpoints": dup2}] * 2
            # A watcher joining the synced namespace hears the current set
            # at once, from the cache: no new request.
            seen = len(fake.requests)
            watch.proc.send_signal(signal.SIGUSR2)
            watch.wait_for(lambda ls: len(ls) >= 7, "the late watcher's set")
            assert watch.seen()[6] == {"service": "dup", "endpoints": dup2, "late": True}
            assert len(fake.requests) == seen
            assert fake.watch_count() == 1
            fake.set_endpoints("default", "empty", [("10.3.1.1", False, "e-a")])
            watch.wait_for(lambda ls: len(ls) >= 8, "the other service's change")
            assert watch.seen()[7] == {"service": "empty", "endpoints": [
                {"ip": "10.3.1.1", "port": 8012, "ready": False, "pod": "e-a"}]}
        finally:
            rc = watch.finish()
        assert rc == 0, watch.err
        assert len(watch.lines) == 8, watch.lines
