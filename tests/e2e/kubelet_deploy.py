"""The Deployment-driven kubelet for a FakeKube: plays the deployment and
ReplicaSet controllers, the kubelet of one node and the EndpointSlice
controller for one namespace, from the objects in the API (however they
were written: over HTTP by the activator, or by a test).

    with FakeKube() as kube, DeploymentKubelet(kube, images={
            "kp.dev/helloworld": [kp.binary("helloworld")]}) as kubelet:
        ...  # POST a Deployment: its pods run, their Pod objects, the
             # Deployment's status and the Services' EndpointSlices follow

What it does, as the real components do it (differences are listed):
- Deployments (deployment controller, ReplicaSet controller): runs
  spec.replicas pods of spec.template (following /scale and any write);
  pods are named {deployment}-{template hash}-{xxxxx}, labelled with the
  template's labels plus pod-template-hash, bound to node `node_name`.
  A template change starts new pods and deletes the old ones once the new
  ones are ready (a surge rollout). The annotation
  deployment.kubernetes.io/revision counts template changes.
  Difference: no ReplicaSet objects; a pod's controller ownerReference
  points at its Deployment.
- Deployment status through /status: observedGeneration, replicas,
  updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas,
  conditions Available (MinimumReplicasAvailable /
  MinimumReplicasUnavailable, maxUnavailable 25% rounded down) and
  Progressing (ReplicaSetUpdated while pods change, NewReplicaSetAvailable
  when done, ProgressDeadlineExceeded once spec.progressDeadlineSeconds
  pass without progress).
- Pods (kubelet): each container of the template runs as a local process:
  the container named `queue-proxy` as build/queue-proxy, any other by
  its image through the `images` table ({image: argv}; a tag or digest
  missing from the table falls back to the bare image name); args are
  appended to that argv (command is ignored). env (value, and valueFrom
  fieldRef metadata.name/namespace/uid, status.podIP, spec.nodeName,
  with $(VAR) expansion) comes from the template. An image not in the
  table never runs: the container waits with reason ErrImagePull, then
  ImagePullBackOff, retried with back-off.
  Each pod has its own loopback address (127.0.0.2, ...), standing for
  its network namespace: when the template does not set them, HOST,
  KP_LISTEN_HOST and KP_USER_HOST are that address, and a host of
  127.0.0.1/localhost/none in SERVING_READINESS_PROBE becomes it.
  env_defaults (default: queue-proxy KP_DRAIN_QUIET_PERIOD_SECONDS=0)
  fills variables the template leaves unset.
- readinessProbe (httpGet with port number or name, path, httpHeaders;
  tcpSocket) on the pod's address, with the kubelet's User-Agent, every
  `probe_period` seconds (instead of periodSeconds, to keep tests fast),
  failureThreshold and successThreshold honoured; exec probes fail (not
  supported here). No probe: ready once started.
- A container that exits: state terminated {exitCode, reason Completed
  (0) or Error, message, startedAt, finishedAt}, then restarted after a
  back-off (backoff_initial doubling to backoff_max seconds, instead of
  the kubelet's 10 s to 5 min) with waiting reason CrashLoopBackOff;
  lastState keeps the termination, restartCount counts restarts. The
  message: with terminationMessagePolicy FallbackToLogsOnError and an
  error exit, the last 80 lines (at most 2048 bytes) of the container's
  output, as the kubelet does; otherwise the content of
  terminationMessagePath when that file exists on this machine (never
  the case for the default /dev/termination-log), else none.
- Pod status through /status: phase, conditions PodScheduled,
  Initialized, ContainersReady, Ready, hostIP, podIP(s), startTime,
  containerStatuses {name, image, imageID, containerID, ready, started,
  restartCount, state, lastState}.
- Pod deletion: the API marks a bound pod (deletionTimestamp); the
  containers stop as the kubelet stops them (lifecycle.preStop httpGet
  first, waited for up to the grace period, then SIGTERM, then SIGKILL;
  see kubelet_sim.run_http_get_hook), then the pod is removed.
- EndpointSlices (EndpointSlice controller), for every Service with a
  selector: slices {service}-xxxxx labelled kubernetes.io/service-name and
  endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io,
  owned by the Service, with the matching pods that have an address
  (ready = pod Ready and not terminating, serving = Ready, terminating),
  targetRef to the pod, and the Service's ports (name, protocol, port =
  targetPort resolved against the pod's container ports by name).
  Endpoints whose resolved ports differ go to different slices; a Service
  without endpoints keeps one slice with endpoints and ports null.
"""
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import kp
from kubelet_sim import KUBELET_STYLES, MINIMUM_GRACE_PERIOD_S, _can_bind, run_http_get_hook

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
SAFE = "bcdfghjklmnpqrstvwxz2456789"


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _rand(n):
    return "".join(random.choice(SAFE) for _ in range(n))


def template_hash(template):
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SAFE[b % len(SAFE)] for b in digest[:10])


def _owner_ref(obj):
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _controlled_by(obj, uid):
    return any(r.get("uid") == uid and r.get("controller")
               for r in obj["metadata"].get("ownerReferences") or [])


def _matches(selector, labels):
    labels = labels or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class Container:
    """One container of a pod as the kubelet sees it."""

    def __init__(self, spec):
        self.spec = spec
        self.name = spec["name"]
        self.proc = None
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.restarts = 0
        self.ready = False
        self.started_at = None
        self.container_id = None
        self.next_try = 0.0  # monotonic time of the next start or pull attempt
        self.backoff = None
        self.probe_ok = 0  # consecutive successes / failures
        self.probe_bad = 0
        self.stopping = False
        self.crashed = None  # its last termination, until the back-off starts


class PodRuntime:
    """The containers of one Pod object on this node."""

    def __init__(self, pod, ip):
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.ip = ip
        self.containers = [Container(c) for c in pod["spec"].get("containers") or []]
        self.start_time = _now()
        self.terminating = False
        self.terminated = False  # every container stopped: the pod object may go
        self.hooks = []  # preStop hook runs: run_http_get_hook's result + container

    def ready(self):
        """The pod's Ready condition: it follows the readiness probes while
        the pod terminates too (the endpoint is then serving, not ready)."""
        return bool(self.containers) and all(c.ready for c in self.containers)


class DeploymentKubelet:
    """DeploymentKubelet(fake, images, namespace="default", build_dir=None,
    node_name="fake-node", probe_period=0.1, backoff_initial=0.5,
    backoff_max=5.0, pull_delay=0.2, kubelet="1.26", env_defaults=None,
    tick=0.05)

    images: {image: [argv...]}; kubelet: "1.23" or "1.26" (how preStop
    hooks are sent). Queries: pods(deployment=None) -> [PodRuntime],
    runtime(pod_name), wait_ready(deployment, n, timeout) -> [PodRuntime],
    logs(pod_name) (the containers' output). stop() (SIGKILL everything;
    also on context-manager exit)."""

    def __init__(self, fake, images, namespace="default", build_dir=None,
                 node_name="fake-node", probe_period=0.1, backoff_initial=0.5, backoff_max=5.0,
                 pull_delay=0.2, kubelet="1.26", env_defaults=None, tick=0.05):
        if kubelet not in KUBELET_STYLES:
            raise ValueError("kubelet=%r: expected one of %s" % (kubelet,
                                                                  ", ".join(KUBELET_STYLES)))
        self.fake = fake
        self.images = dict(images)
        self.ns = namespace
        self.build_dir = build_dir or kp.BUILD
        self.node_name = node_name
        self.probe_period = probe_period
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.pull_delay = pull_delay
        self.kubelet = kubelet
        self.env_defaults = {"queue-proxy": {"KP_DRAIN_QUIET_PERIOD_SECONDS": "0"}} \
            if env_defaults is None else env_defaults
        self.tick = tick
        self.procs = kp.Procs()
        self._lock = threading.RLock()
        self._runtimes = {}  # pod name -> PodRuntime
        self._ips = set()
        self._next_ip = 2
        self._progress = {}  # deployment uid -> (counts, monotonic time of the last change, hash)
        self._revisions = {}  # deployment uid -> [template hashes, in order]
        self._stopped = False
        self._wake = threading.Event()
        self.errors = []  # unexpected exceptions of the control loop (for test messages)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kubelet-deploy")
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ queries
    def pods(self, deployment=None):
        with self._lock:
            return [r for r in self._runtimes.values()
                    if deployment is None or r.name.startswith(deployment + "-")]

    def runtime(self, pod_name):
        with self._lock:
            return self._runtimes.get(pod_name)

    def wait_ready(self, deployment, n, timeout=10.0):
        def ready():
            return [r for r in self.pods(deployment) if r.ready() and not r.terminating]
        kp.wait_until(lambda: len(ready()) == n, timeout,
                      what="%d ready pods of %s (have %r; errors %r)" % (
                          n, deployment, [(r.name, r.ready()) for r in self.pods(deployment)],
                          self.errors))
        return ready()

    def logs(self, pod_name):
        rt = self.runtime(pod_name)
        if rt is None:
            return ""
        return "\n".join(c.proc.describe() for c in rt.containers if c.proc)

    # ------------------------------------------------------------ control loop
    def _loop(self):
        while not self._stopped:
            self._wake.wait(self.tick)
            self._wake.clear()
            if self._stopped:
                return
            try:
                self._sync()
            except Exception as e:  # noqa: BLE001 (keep controlling; tests see errors)
                self.errors.append(repr(e))
                del self.errors[:-50]

    def _sync(self):
        deployments = self.fake.list("deployments", self.ns)
        for d in deployments:
            self._sync_deployment(d)
        self._sync_kubelet()
        pods = self.fake.list("pods", self.ns)
        for d in deployments:
            self._sync_deployment_status(d, pods)
        for svc in self.fake.list("services", self.ns):
            self._sync_slices(svc, pods)

    # ------------------------------------------------------------ deployment controller
    def _owned_pods(self, d):
        uid = d["metadata"]["uid"]
        return [p for p in self.fake.list("pods", self.ns) if _controlled_by(p, uid)]

    def _sync_deployment(self, d):
        if d["metadata"].get("deletionTimestamp"):
            return
        spec = d["spec"]
        want = spec.get("replicas", 1)
        h = template_hash(spec["template"])
        pods = [p for p in self._owned_pods(d) if not p["metadata"].get("deletionTimestamp")]
        new = [p for p in pods if p["metadata"]["labels"].get(POD_TEMPLATE_HASH) == h]
        old = [p for p in pods if p not in new]
        self._note_revision(d, h)
        for _ in range(len(new), want):
            self._create_pod(d, h)
        if len(new) > want:
            self._delete_pods(new, len(new) - want)
        ready_new = len([p for p in new if self._pod_ready(p)])
        if old and (ready_new >= want or want == 0):
            self._delete_pods(old, len(old))

    def _note_revision(self, d, h):
        ann = d["metadata"].get("annotations") or {}
        hashes = self._revisions.setdefault(d["metadata"]["uid"], [])
        if h not in hashes:
            hashes.append(h)
        rev = str(len(hashes))
        if ann.get(REVISION_ANNOTATION) != rev:
            try:
                self.fake.patch("deployments", self.ns, d["metadata"]["name"],
                                {"metadata": {"annotations": {REVISION_ANNOTATION: rev}}})
            except Exception:  # noqa: BLE001 (deleted meanwhile)
                pass

    @staticmethod
    def _pod_ready(p):
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (p.get("status") or {}).get("conditions") or [])

    def _create_pod(self, d, h):
        tmpl = d["spec"]["template"]
        meta = tmpl.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels[POD_TEMPLATE_HASH] = h
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "%s-%s-%s" % (d["metadata"]["name"], h, _rand(5)),
                            "namespace": self.ns, "labels": labels,
                            "ownerReferences": [_owner_ref(d)]},
               "spec": dict(tmpl.get("spec") or {}, nodeName=self.node_name)}
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(meta["annotations"])
        self.fake.create(pod, self.ns)

    def _delete_pods(self, pods, n):
        # not ready first, then the newest (the ReplicaSet controller's order)
        newest = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
        for p in sorted(newest, key=self._pod_ready)[:n]:
            try:
                self.fake.delete("pods", self.ns, p["metadata"]["name"])
            except Exception:  # noqa: BLE001 (gone meanwhile)
                pass

    def _sync_deployment_status(self, d, pods):
        spec = d["spec"]
        uid = d["metadata"]["uid"]
        want = spec.get("replicas", 1)
        h = template_hash(spec["template"])
        mine = [p for p in pods if _controlled_by(p, uid) and
                not p["metadata"].get("deletionTimestamp")]
        updated = [p for p in mine if p["metadata"]["labels"].get(POD_TEMPLATE_HASH) == h]
        ready = [p for p in mine if self._pod_ready(p)]
        available = len(ready)
        counts = (len(mine), len(updated), len(ready))
        now = time.monotonic()
        prev = self._progress.get(uid)
        if prev is None or prev[0] != counts or prev[2] != h:
            self._progress[uid] = prev = (counts, now, h)
        old = d.get("status") or {}
        conds = {c["type"]: c for c in old.get("conditions") or []}
        max_unavailable = self._max_unavailable(spec, want)
        avail_ok = available >= want - max_unavailable
        rs = "%s-%s" % (d["metadata"]["name"], h)
        complete = len(updated) == want and available >= want and len(mine) == want
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            progressing = ("True", "NewReplicaSetAvailable",
                           'ReplicaSet "%s" has successfully progressed.' % rs)
        elif now - prev[1] > deadline:
            progressing = ("False", "ProgressDeadlineExceeded",
                           'ReplicaSet "%s" has timed out progressing.' % rs)
        else:
            progressing = ("True", "ReplicaSetUpdated", 'ReplicaSet "%s" is progressing.' % rs)
        available_c = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.") \
            if avail_ok else ("False", "MinimumReplicasUnavailable",
                              "Deployment does not have minimum availability.")
        status = {"observedGeneration": d["metadata"].get("generation", 1),
                  "replicas": len(mine), "updatedReplicas": len(updated),
                  "readyReplicas": len(ready), "availableReplicas": available,
                  "unavailableReplicas": max(want - available, 0),
                  "conditions": [self._condition(conds.get("Available"), "Available",
                                                 available_c),
                                 self._condition(conds.get("Progressing"), "Progressing",
                                                 progressing)]}
        # the real status omits zero counts (omitempty)
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                  "unavailableReplicas"):
            if not status[k]:
                del status[k]
        if status != old:
            try:
                self.fake.set_status("deployments", self.ns, d["metadata"]["name"], status)
            except Exception:  # noqa: BLE001 (deleted meanwhile)
                pass

    @staticmethod
    def _max_unavailable(spec, want):
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        v = ru.get("maxUnavailable", "25%")
        if isinstance(v, str) and v.endswith("%"):
            return int(want * int(v[:-1]) / 100)
        return int(v)

    @staticmethod
    def _condition(old, ctype, value):
        status, reason, message = value
        now = _now()
        if old and (old.get("status"), old.get("reason"), old.get("message")) == value:
            return old
        return {"type": ctype, "status": status,
                "lastUpdateTime": now,
                "lastTransitionTime": old["lastTransitionTime"]
                if old and old.get("status") == status else now,
                "reason": reason, "message": message}

    # ------------------------------------------------------------ kubelet
    def _alloc_ip(self, ports):
        for _ in range(253):
            n = self._next_ip
            self._next_ip = 2 if self._next_ip >= 254 else self._next_ip + 1
            ip = "127.0.0.%d" % n
            if ip not in self._ips and all(_can_bind(ip, p) for p in ports):
                self._ips.add(ip)
                return ip
        raise RuntimeError("no free loopback address")

    def _sync_kubelet(self):
        pods = {p["metadata"]["name"]: p for p in self.fake.list("pods", self.ns)
                if (p.get("spec") or {}).get("nodeName") == self.node_name}
        with self._lock:
            for name, rt in list(self._runtimes.items()):
                p = pods.get(name)
                if p is None or p["metadata"]["uid"] != rt.uid:
                    # removed behind our back: kill at once
                    self._kill(rt)
                    del self._runtimes[name]
                    self._ips.discard(rt.ip)
            for name, p in pods.items():
                rt = self._runtimes.get(name)
                if rt is None and not p["metadata"].get("deletionTimestamp"):
                    ports = [port.get("containerPort") for c in p["spec"].get("containers") or []
                             for port in c.get("ports") or [] if port.get("containerPort")]
                    rt = PodRuntime(p, self._alloc_ip(ports))
                    self._runtimes[name] = rt
                    threading.Thread(target=self._run_pod, args=(rt,), daemon=True,
                                     name="pod-" + name).start()
                if rt is not None and p["metadata"].get("deletionTimestamp") and \
                        not rt.terminating:
                    rt.terminating = True
                    grace = p["metadata"].get("deletionGracePeriodSeconds", 30)
                    threading.Thread(target=self._stop_pod, args=(rt, grace), daemon=True,
                                     name="stop-" + name).start()
            runtimes = list(self._runtimes.values())
        for rt in runtimes:
            p = pods.get(rt.name)
            if p is None:
                continue
            if rt.terminated:
                try:
                    self.fake.delete("pods", self.ns, rt.name, grace=0)
                except Exception:  # noqa: BLE001 (gone meanwhile)
                    pass
                continue
            status = self._pod_status(rt, p)
            if status != p.get("status"):
                try:
                    self.fake.set_status("pods", self.ns, rt.name, status)
                except Exception:  # noqa: BLE001 (gone meanwhile)
                    pass

    def _resolve_image(self, image):
        if image in self.images:
            return self.images[image]
        bare = image.split("@", 1)[0]
        if bare in self.images:
            return self.images[bare]
        last = bare.rsplit("/", 1)
        if ":" in last[-1]:
            bare = bare[:bare.rindex(":")]
        return self.images.get(bare)

    def _argv(self, c):
        if c.name == "queue-proxy":
            base = [os.path.join(self.build_dir, "queue-proxy")]
        else:
            base = self._resolve_image(c.spec.get("image") or "")
            if base is None:
                return None
        return list(base) + [str(a) for a in c.spec.get("args") or []]

    def _env(self, rt, c):
        pod = rt.pod
        fields = {"metadata.name": rt.name, "metadata.namespace": self.ns,
                  "metadata.uid": rt.uid, "status.podIP": rt.ip, "spec.nodeName": self.node_name,
                  "status.hostIP": "127.0.0.1"}
        env = {}

        def expand(v):
            return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                          lambda m: env.get(m.group(1), m.group(0)), v)
        for e in c.spec.get("env") or []:
            if "valueFrom" in e:
                ref = (e["valueFrom"] or {}).get("fieldRef") or {}
                if ref.get("fieldPath") in fields:
                    env[e["name"]] = fields[ref["fieldPath"]]
                elif ref.get("fieldPath", "").startswith("metadata.labels['"):
                    key = ref["fieldPath"][len("metadata.labels['"):-2]
                    env[e["name"]] = (pod["metadata"].get("labels") or {}).get(key, "")
            else:
                env[e["name"]] = expand(str(e.get("value", "")))
        for k, v in (self.env_defaults.get(c.name) or {}).items():
            env.setdefault(k, v)
        # the pod's loopback is its own address here
        env.setdefault("HOST", rt.ip)
        env.setdefault("KP_LISTEN_HOST", rt.ip)
        env.setdefault("KP_USER_HOST", rt.ip)
        probe = env.get("SERVING_READINESS_PROBE")
        if probe:
            try:
                pj = json.loads(probe)
                for kind in ("tcpSocket", "httpGet", "grpc"):
                    if isinstance(pj.get(kind), dict) and \
                            pj[kind].get("host", "") in ("", "127.0.0.1", "localhost"):
                        pj[kind]["host"] = rt.ip
                env["SERVING_READINESS_PROBE"] = json.dumps(pj)
            except ValueError:
                pass
        return env

    def _run_pod(self, rt):
        """The kubelet's sync loop for one pod: start, restart, probe (the
        probes go on while the pod terminates)."""
        while not self._stopped:
            with self._lock:
                if rt.terminated:
                    return
            now = time.monotonic()
            changed = False
            for c in rt.containers:
                changed |= self._sync_container(rt, c, now)
            if changed:
                self._wake.set()
            time.sleep(min(self.probe_period, 0.05))

    def _sync_container(self, rt, c, now):
        """One step of a container's life; True when its state changed."""
        with self._lock:
            if self._stopped or (c.stopping and c.proc is None):
                return False
            if c.proc is not None:
                rc = c.proc.poll()
                if rc is not None and c.stopping:
                    return False  # _stop_container records how it ended
                if rc is None:
                    probe = c.spec.get("readinessProbe")
                    if not probe or now < c.next_try:
                        return False
                    c.next_try = now + self.probe_period
                    proc = c.proc
                else:
                    probe = proc = None
            else:
                rc = probe = proc = None
        if proc is not None:
            ok = self._probe(rt, c, probe)
            with self._lock:
                return c.proc is proc and proc.poll() is None and \
                    self._probe_result(c, probe, ok)
        with self._lock:
            if c.stopping or self._stopped:
                return False
            if c.proc is not None:
                # it exited on its own: terminated for a moment, then the back-off
                c.crashed = self._terminated(c, rc)
                c.state = {"terminated": c.crashed}
                c.proc = None
                c.ready = False
                c.probe_ok = c.probe_bad = 0
                c.next_try = now + self.pull_delay
                return True
            if now < c.next_try:
                return False
            if c.crashed is not None:
                c.last_state = {"terminated": c.crashed}
                c.crashed = None
                c.backoff = self.backoff_initial if c.backoff is None else \
                    min(c.backoff * 2, self.backoff_max)
                c.next_try = now + c.backoff
                c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                    "back-off %gs restarting failed container=%s pod=%s_%s(%s)" % (
                        c.backoff, c.name, rt.name, self.ns, rt.uid))}}
                return True
            argv = self._argv(c)
            image = c.spec.get("image", "")
            if argv is None:
                reason = (c.state.get("waiting") or {}).get("reason")
                if reason != "ErrImagePull":
                    c.state = {"waiting": {"reason": "ErrImagePull", "message": (
                        'rpc error: code = NotFound desc = failed to pull and unpack image '
                        '"%s": failed to resolve reference "%s": %s: not found' % (
                            image, image, image))}}
                    c.next_try = now + self.pull_delay
                else:
                    c.backoff = self.backoff_initial if c.backoff is None else \
                        min(c.backoff * 2, self.backoff_max)
                    c.state = {"waiting": {"reason": "ImagePullBackOff",
                                           "message": 'Back-off pulling image "%s"' % image}}
                    c.next_try = now + c.backoff
                return True
            if c.last_state:
                c.restarts += 1
            c.proc = self.procs.start(c.name, argv, self._env(rt, c))
            c.container_id = "containerd://" + hashlib.sha256(
                ("%s/%d" % (rt.uid + c.name, c.restarts)).encode()).hexdigest()
            c.started_at = _now()
            c.state = {"running": {"startedAt": c.started_at}}
            if not c.spec.get("readinessProbe"):
                c.ready = True
            return True

    def _terminated(self, c, rc):
        reason = "Completed" if rc == 0 else "Error"
        if rc < 0:  # killed by a signal: the runtime reports 128 + signal
            rc = 128 - rc
        t = {"exitCode": rc, "reason": reason, "startedAt": c.started_at,
             "finishedAt": _now(), "containerID": c.container_id}
        msg = self._termination_message(c, rc)
        if msg:
            t["message"] = msg
        return t

    def _termination_message(self, c, rc):
        path = c.spec.get("terminationMessagePath", "/dev/termination-log")
        if path != "/dev/termination-log" and os.path.isfile(path):
            with open(path, errors="replace") as f:
                text = f.read(4096)
            if text:
                return text
        if rc != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and \
                c.proc is not None:
            out = (c.proc.stdout() + c.proc.stderr()).splitlines()[-80:]
            return "\n".join(out)[-2048:]
        return None

    @staticmethod
    def _probe_result(c, probe, ok):
        was = c.ready
        if ok:
            c.probe_ok += 1
            c.probe_bad = 0
            if c.probe_ok >= probe.get("successThreshold", 1):
                c.ready = True
        else:
            c.probe_bad += 1
            c.probe_ok = 0
            if not c.ready or c.probe_bad >= probe.get("failureThreshold", 3):
                c.ready = False
        return was != c.ready

    def _port_of(self, rt, port):
        if isinstance(port, int):
            return port
        for c in rt.containers:
            for p in c.spec.get("ports") or []:
                if p.get("name") == port:
                    return p["containerPort"]
        return None

    def _probe(self, rt, c, probe):
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            g = probe["httpGet"]
            port = self._port_of(rt, g.get("port"))
            if port is None:
                return False
            headers = {"User-Agent": "kube-probe/" + self.kubelet, "Accept": "*/*"}
            for h in g.get("httpHeaders") or []:
                headers[h["name"]] = h["value"]
            try:
                conn = http.client.HTTPConnection(g.get("host") or rt.ip, port, timeout=timeout)
                try:
                    conn.request("GET", g.get("path") or "/", headers=headers)
                    r = conn.getresponse()
                    r.read()
                    return 200 <= r.status < 400
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException):
                return False
        if "tcpSocket" in probe:
            port = self._port_of(rt, probe["tcpSocket"].get("port"))
            try:
                socket.create_connection((probe["tcpSocket"].get("host") or rt.ip, port),
                                         timeout=timeout).close()
                return True
            except (OSError, TypeError):
                return False
        return False  # exec and grpc probes are not supported here

    def _pod_status(self, rt, p):
        with self._lock:
            statuses = []
            for c in rt.containers:
                s = {"name": c.name, "image": c.spec.get("image", ""),
                     "imageID": "", "ready": c.ready, "restartCount": c.restarts,
                     "started": "running" in c.state, "state": c.state,
                     "lastState": c.last_state}
                if c.container_id:
                    s["containerID"] = c.container_id
                    s["imageID"] = "%s@sha256:%s" % (
                        c.spec.get("image", "").split(":")[0],
                        hashlib.sha256(c.spec.get("image", "").encode()).hexdigest())
                statuses.append(s)
            ready = rt.ready()
            running = any("running" in c.state for c in rt.containers)
        old = p.get("status") or {}
        old_conds = {c["type"]: c for c in old.get("conditions") or []}

        def cond(t, ok):
            status = "True" if ok else "False"
            o = old_conds.get(t)
            if o and o["status"] == status:
                return o
            c = {"type": t, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": _now()}
            if not ok:
                c["reason"] = "ContainersNotReady"
                c["message"] = "containers with unready status: [%s]" % " ".join(
                    s["name"] for s in statuses if not s["ready"])
            return c
        return {"phase": "Running" if running else "Pending",
                "conditions": [cond("Initialized", True), cond("Ready", ready),
                               cond("ContainersReady", ready), cond("PodScheduled", True)],
                "hostIP": "127.0.0.1", "podIP": rt.ip, "podIPs": [{"ip": rt.ip}],
                "startTime": rt.start_time, "containerStatuses": statuses,
                "qosClass": old.get("qosClass", "BestEffort")}

    # ------------------------------------------------------------ stopping pods
    def _stop_pod(self, rt, grace):
        workers = [threading.Thread(target=self._stop_container, args=(rt, c, grace),
                                    daemon=True) for c in rt.containers]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        with self._lock:
            rt.terminated = True
        self._wake.set()

    def _stop_container(self, rt, c, grace):
        with self._lock:
            c.stopping = True
            proc = c.proc
        if proc is None:
            return
        hook = ((c.spec.get("lifecycle") or {}).get("preStop") or {}).get("httpGet")
        start = time.monotonic()
        if hook and grace > 0:
            port = self._port_of(rt, hook.get("port"))
            box = {}

            def run():
                box.update(run_http_get_hook(self.kubelet, hook.get("host") or rt.ip, port,
                                             hook.get("path", "/"), grace + 1))
            t = threading.Thread(target=run, daemon=True)
            t.start()
            t.join(grace)
            with self._lock:
                rt.hooks.append(dict(box, container=c.name, completed=not t.is_alive(),
                                     waited=round(time.monotonic() - start, 3)))
        left = max(grace - int(time.monotonic() - start), MINIMUM_GRACE_PERIOD_S)
        proc.signal(signal.SIGTERM)
        try:
            rc = proc.wait(left * kp.SLOW)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.poll()
        with self._lock:
            c.ready = False
            c.state = {"terminated": self._terminated(c, rc if rc is not None else 137)}

    def _kill(self, rt):
        for c in rt.containers:
            if c.proc is not None and c.proc.poll() is None:
                c.proc.kill()

    # ------------------------------------------------------------ endpoint slices
    def _sync_slices(self, svc, pods):
        sel = (svc.get("spec") or {}).get("selector")
        if not sel:
            return
        name = svc["metadata"]["name"]
        groups = {}
        for p in pods:
            st = p.get("status") or {}
            if not _matches(sel, p["metadata"].get("labels")) or not st.get("podIP"):
                continue
            ports = []
            for sp in svc["spec"].get("ports") or []:
                target = sp.get("targetPort", sp.get("port"))
                if isinstance(target, str):
                    target = next((cp["containerPort"] for c in p["spec"].get("containers") or []
                                   for cp in c.get("ports") or [] if cp.get("name") == target),
                                  None)
                if target is None:
                    continue
                entry = {"name": sp.get("name", ""), "protocol": sp.get("protocol", "TCP"),
                         "port": target}
                if sp.get("appProtocol"):
                    entry["appProtocol"] = sp["appProtocol"]
                ports.append(entry)
            ready = self._pod_ready(p)
            terminating = bool(p["metadata"].get("deletionTimestamp"))
            ep = {"addresses": [st["podIP"]],
                  "conditions": {"ready": ready and not terminating, "serving": ready,
                                 "terminating": terminating},
                  "targetRef": {"kind": "Pod", "namespace": self.ns,
                                "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]},
                  "nodeName": p["spec"].get("nodeName")}
            key = json.dumps(sorted(ports, key=lambda x: x["name"]), sort_keys=True)
            groups.setdefault(key, []).append(ep)
        existing = [s for s in self.fake.list("endpointslices", self.ns,
                                              {SERVICE_NAME_LABEL: name})
                    if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY]
        by_key = {}
        for s in existing:
            k = json.dumps(sorted(s.get("ports") or [], key=lambda x: x["name"]),
                           sort_keys=True) if s.get("ports") else None
            if k in by_key:  # a duplicate: drop it
                self._delete_slice(s)
                continue
            by_key[k] = s
        if not groups:
            groups = {None: None}
        for key, eps in groups.items():
            ports = json.loads(key) if key is not None else None
            if eps is not None:
                eps = sorted(eps, key=lambda e: e["targetRef"]["name"])
            s = by_key.pop(key, None)
            if s is None:
                s = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"generateName": name + "-", "namespace": self.ns,
                                  "labels": {SERVICE_NAME_LABEL: name,
                                             MANAGED_BY_LABEL: MANAGED_BY},
                                  "ownerReferences": [_owner_ref(svc)]},
                     "addressType": "IPv4", "endpoints": eps, "ports": ports}
                self.fake.create(s, self.ns)
            elif s.get("endpoints") != eps or s.get("ports") != ports:
                s["endpoints"], s["ports"] = eps, ports
                try:
                    self.fake.update(s)
                except Exception:  # noqa: BLE001 (raced with another write: next tick)
                    pass
        for s in by_key.values():
            self._delete_slice(s)

    def _delete_slice(self, s):
        try:
            self.fake.delete("endpointslices", self.ns, s["metadata"]["name"])
        except Exception:  # noqa: BLE001 (gone meanwhile)
            pass

    # ------------------------------------------------------------ teardown
    def stop(self):
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._wake.set()
        self._thread.join(5)
        for p in self.procs.procs:
            if p.poll() is None:
                p.kill()
            else:
                p._out.close()
                p._err.close()
        self.procs.remove_logs()
