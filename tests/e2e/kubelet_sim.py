"""Plays the kubelet (and the ReplicaSet and EndpointSlice controllers) for a
FakeKube: when the replicas of a deployment `{revision}-deployment` change,
it starts or stops pods, and publishes them in the EndpointSlices of the
service `{revision}-private`. (kubelet_deploy.DeploymentKubelet, also
importable from here, instead runs whatever Deployments, Pods and Services
the API holds, and writes Pod objects and statuses.)

A pod is build/helloworld + build/queue-proxy with Knative's environment,
on its own loopback address (127.0.0.2, 127.0.0.3, ...): the app listens on
POD_IP:8080 (HOST/PORT) and the queue-proxy reaches it with KP_USER_HOST.

Ports: by default (port_mode="standard") every pod uses Knative's ports
(queue 8012, admin 8022, metrics 9090, user metrics 9091) on its own
address, the queue-proxy binding POD_IP (KP_LISTEN_HOST), as on a cluster.
port_mode="per-pod" gives each pod free ports instead, published in the
slice as named ports like Knative's private service ("http",
"http-autometric", "http-usermetric", "http-queueadm"); endpoints with
different port sets live in different slices.

Readiness: like the kubelet's probe of the queue-proxy (User-Agent
kube-probe/1.23 or 1.26, K-Network-Probe: queue → 200). A pod is published
not ready first, ready once the probe answers 200.

Scale down, as the kubelet and the EndpointSlice controller do it
(kubernetes/kubernetes pkg/kubelet/kuberuntime killContainer and
executePreStopHook, pkg/kubelet/lifecycle/handlers.go, pkg/probe/http):
- the endpoint turns `ready: false, terminating: true`, and `serving`
  follows the readiness probe, which goes on while the pod terminates;
- the containers stop in parallel. The app (Knative's user-container) has
  the preStop hook `httpGet {path: /wait-for-drain, port: 8022}`: it is run
  as the kubelet style given runs it (see run_http_get_hook), waited for up
  to terminationGracePeriodSeconds, then the app gets SIGTERM with what is
  left of the grace period (at least 2 s), then SIGKILL. The queue-proxy
  has no hook: SIGTERM at once, SIGKILL when the grace period ends. The
  queue-proxy runs with KP_DRAIN_QUIET_PERIOD_SECONDS=0 unless configured
  otherwise;
- the endpoint is removed once both exited.
"""
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import kp

QUEUE_PORT = 8012
ADMIN_PORT = 8022
METRICS_PORT = 9090
USER_METRICS_PORT = 9091
APP_PORT = 8080


def _rand(n, alphabet="bcdfghjklmnpqrstvwxz2456789"):
    return "".join(random.choice(alphabet) for _ in range(n))


KUBELET_STYLES = ("1.23", "1.26")
# Knative's user-container: lifecycle.preStop.httpGet on the queue-proxy's admin port.
PRESTOP_PATH = "/wait-for-drain"
# pkg/kubelet/kuberuntime: "always give containers a minimal shutdown window".
MINIMUM_GRACE_PERIOD_S = 2
REDIRECT_CODES = (301, 302, 303, 307, 308)


def _join_host_port(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def run_http_get_hook(kubelet, host, port, path, timeout):
    """Runs a lifecycle httpGet hook the way a kubelet of that style does;
    returns {"hops": [(request target, status)], "error": text or None}.
    The status decides nothing: both styles ignore it (a 404 "succeeds").

    "1.23" (every kubelet before 1.26, lifecycle/handlers.go): the URL is
    fmt.Sprintf("http://%s/%s", JoinHostPort(host, port), path), so
    "/wait-for-drain" goes out as "GET //wait-for-drain"; the client is
    Go's default http.Client (User-Agent Go-http-client/1.1), which follows
    up to 10 redirects to any host.

    "1.26" (ConsistentHTTPGetHandlers, pkg/probe/http/request.go): the URL
    is url.Parse(path) with scheme and host set, so the path goes out as
    written; User-Agent kube-lifecycle/1.26, Accept */*; redirects are
    followed only to the same host (httpprobe.RedirectChecker(false)), up
    to 10.

    Neither has a timeout of its own: the kubelet stops waiting at the
    grace period; timeout ends the request then."""
    if kubelet not in KUBELET_STYLES:
        raise ValueError("kubelet=%r: expected one of %s" % (kubelet, ", ".join(KUBELET_STYLES)))
    authority = _join_host_port(host, port)
    if kubelet == "1.23":
        url = "http://%s/%s" % (authority, path)
        headers = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"}
    else:
        parsed = urllib.parse.urlsplit(path)
        rel = parsed.path if parsed.path.startswith("/") else "/" + parsed.path
        url = urllib.parse.urlunsplit(("http", authority, rel, parsed.query, ""))
        headers = {"User-Agent": "kube-lifecycle/1.26", "Accept": "*/*",
                   "Accept-Encoding": "gzip"}
    first_host = urllib.parse.urlsplit(url).hostname
    deadline = time.monotonic() + timeout
    hops = []
    while True:
        u = urllib.parse.urlsplit(url)
        target = (u.path or "/") + ("?" + u.query if u.query else "")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return {"hops": hops, "error": "timed out"}
        try:
            c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=remaining)
            try:
                c.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
                c.putheader("Host", u.netloc)
                for k, v in headers.items():
                    c.putheader(k, v)
                c.endheaders()
                r = c.getresponse()
                r.read()
            finally:
                c.close()
        except (OSError, http.client.HTTPException) as e:
            return {"hops": hops, "error": "%s: %s" % (type(e).__name__, e)}
        hops.append((target, r.status))
        location = r.getheader("Location")
        if r.status not in REDIRECT_CODES or not location:
            return {"hops": hops, "error": None}
        next_url = urllib.parse.urljoin(url, location)
        if kubelet == "1.26" and urllib.parse.urlsplit(next_url).hostname != first_host:
            return {"hops": hops, "error": None}  # http.ErrUseLastResponse
        if len(hops) >= 10:
            return {"hops": hops, "error": "stopped after 10 redirects"}
        url = next_url


def _can_bind(ip, port):
    s = socket.socket()
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class SimPod:
    def __init__(self, namespace, revision, name, ip):
        self.namespace = namespace
        self.revision = revision
        self.name = name
        self.ip = ip
        self.ports = {}  # slice port name -> number
        self.user_port = None
        self.app = None  # kp.Proc
        self.qp = None  # kp.Proc
        self.ready = False
        self.terminating = False
        self.failed = False  # a container exited on its own
        self.started = time.monotonic()
        self.ready_at = None
        self.gone = False  # every container exited, the endpoint removed
        self.hook = None  # the preStop hook's run: run_http_get_hook's result + timings
        self.exit_codes = {}  # container -> exit code, once stopped
        self.killed = []  # containers that needed SIGKILL
        self.sigterm_at = {}  # container -> time.monotonic() of its SIGTERM

    @property
    def port(self):
        """The queue-proxy's serving port (8012 in standard mode)."""
        return self.ports["http"]

    @property
    def metrics_port(self):
        return self.ports["http-autometric"]

    @property
    def admin_port(self):
        return self.ports["http-queueadm"]

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.ip, self.port, path)

    def get(self, path="/", headers=None, timeout=5):
        return kp.request(self.port, path, "GET", headers, timeout=timeout, host=self.ip)

    def alive(self):
        return self.qp is not None and self.qp.poll() is None and \
            (self.app is None or self.app.poll() is None)

    def __repr__(self):
        return "<SimPod %s %s:%s ready=%s terminating=%s>" % (
            self.name, self.ip, self.ports.get("http"), self.ready, self.terminating)


class KubeletSim:
    """KubeletSim(fake, build_dir=None, port_mode="standard", probe_interval=0.05,
    probe_period=0.5, termination_grace_period=30, app_port=8080, kubelet="1.26")

    kubelet: "1.23" or "1.26", how the preStop hook is sent
    (run_http_get_hook); termination_grace_period: the pods'
    terminationGracePeriodSeconds (Kubernetes' default is 30).

    configure(revision, namespace="default", app_env=None, qp_env=None,
              container_concurrency=0, service=None, configuration=None,
              app_argv=None)
    pods(revision=None, namespace="default", include_terminating=False)
    ready_pods(revision, namespace="default")
    wait_ready(revision, n, timeout=10, namespace="default") -> [SimPod]
    wait_pods(revision, n, timeout=10, namespace="default")   (n processes, any state)
    reconcile(namespace, deployment, replicas)   (what the scale hook calls)
    stop()   (SIGKILL everything; also on context-manager exit)

    before_start: None, or a function (pod, qp_env) called before a pod's
    processes start; it may change that pod's queue-proxy environment (a
    test moving one pod's stats port to bind a black hole in its place).
    """

    def __init__(self, fake, build_dir=None, port_mode="standard", probe_interval=0.05,
                 probe_period=0.5, termination_grace_period=30, app_port=APP_PORT,
                 kubelet="1.26"):
        assert port_mode in ("per-pod", "standard"), port_mode
        if kubelet not in KUBELET_STYLES:
            raise ValueError("kubelet=%r: expected one of %s" % (
                kubelet, ", ".join(KUBELET_STYLES)))
        if int(termination_grace_period) != termination_grace_period or \
                termination_grace_period < 0:
            raise ValueError("termination_grace_period=%r: expected whole seconds >= 0" % (
                termination_grace_period,))
        self.fake = fake
        self.build_dir = build_dir or kp.BUILD
        self.port_mode = port_mode
        self.probe_interval = probe_interval
        self.probe_period = probe_period
        self.termination_grace_period = int(termination_grace_period)
        self.kubelet = kubelet
        self.hooks = []  # pod.hook of every pod stopped, in order
        self.stopped = []  # every pod stopped and gone, in order
        self.app_port = app_port
        self.procs = kp.Procs()
        self._lock = threading.RLock()
        self._pods = {}  # (ns, revision) -> [SimPod]
        self._config = {}  # (ns, revision) -> dict
        self._ips_in_use = set()
        self._next_ip = 2
        self._stopped = False
        self.events = []  # (time, "start"|"ready"|"stop"|"gone"|"failed", pod name, ip)
        self.before_start = None
        fake.scale_listeners.append(self._on_scale)
        # deployments that already want pods
        existing = [(o["metadata"]["namespace"], o["metadata"]["name"], o["spec"]["replicas"])
                    for o in fake.list("deployments")]
        for ns, name, n in existing:
            if n:
                self.reconcile(ns, name, n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ config
    def configure(self, revision, namespace="default", app_env=None, qp_env=None,
                  container_concurrency=0, service=None, configuration=None, app_argv=None):
        """Per-revision settings: app_env (e.g. {"TARGET": "Go Sample v1"},
        STARTUP_DELAY_MS), extra/overriding queue-proxy env, Knative names."""
        if configuration is None:
            parts = revision.rsplit("-", 1)
            configuration = parts[0] if len(parts) == 2 and parts[1].isdigit() else revision
        with self._lock:
            self._config[(namespace, revision)] = {
                "app_env": dict(app_env or {}), "qp_env": dict(qp_env or {}),
                "cc": container_concurrency, "configuration": configuration,
                "service": configuration if service is None else service,
                "app_argv": app_argv}

    def _cfg(self, ns, revision):
        with self._lock:
            if (ns, revision) not in self._config:
                self.configure(revision, ns)
            return self._config[(ns, revision)]

    # ------------------------------------------------------------ queries
    def pods(self, revision=None, namespace="default", include_terminating=False):
        with self._lock:
            out = []
            for (ns, rev), ps in self._pods.items():
                if ns == namespace and (revision is None or rev == revision):
                    out += [p for p in ps if include_terminating or not p.terminating]
            return out

    def ready_pods(self, revision, namespace="default"):
        return [p for p in self.pods(revision, namespace) if p.ready]

    def wait_ready(self, revision, n, timeout=10.0, namespace="default"):
        kp.wait_until(lambda: len(self.ready_pods(revision, namespace)) == n, timeout,
                      what="%d ready pods of %s (have %r)" % (
                          n, revision, self.pods(revision, namespace, True)))
        return self.ready_pods(revision, namespace)

    def wait_pods(self, revision, n, timeout=10.0, namespace="default"):
        """Waits until exactly n pods exist (terminating ones included)."""
        kp.wait_until(lambda: len(self.pods(revision, namespace, True)) == n, timeout,
                      what="%d pods of %s" % (n, revision))
        return self.pods(revision, namespace, True)

    # ------------------------------------------------------------ scaling
    def _on_scale(self, ns, name, replicas):
        if name.endswith("-deployment"):
            self.reconcile(ns, name, replicas)

    def reconcile(self, ns, deployment, replicas):
        revision = deployment[:-len("-deployment")] if deployment.endswith("-deployment") \
            else deployment
        with self._lock:
            if self._stopped:
                return
            live = [p for p in self._pods.get((ns, revision), []) if not p.terminating]
            for _ in range(len(live), replicas):
                self._start_pod(ns, revision)
            if replicas < len(live):
                # not ready first, then the newest (like the ReplicaSet controller)
                victims = sorted(live, key=lambda p: (p.ready, -p.started))[:len(live) - replicas]
                for p in victims:
                    # ready stays what the probe says: it is `serving` now
                    p.terminating = True
                    self.events.append((time.time(), "stop", p.name, p.ip))
                    threading.Thread(target=self._stop_pod, args=(p,), daemon=True).start()
            self._publish(ns, revision)

    def _alloc_ip(self):
        for _ in range(253):
            n = self._next_ip
            self._next_ip = 2 if self._next_ip >= 254 else self._next_ip + 1
            ip = "127.0.0.%d" % n
            # Another run on this machine may hold the address's ports.
            if ip not in self._ips_in_use and (self.port_mode != "standard" or all(
                    _can_bind(ip, port) for port in (QUEUE_PORT, ADMIN_PORT, METRICS_PORT))):
                self._ips_in_use.add(ip)
                return ip
        raise RuntimeError("no free loopback address")

    def _start_pod(self, ns, revision):
        cfg = self._cfg(ns, revision)
        name = "%s-deployment-%s-%s" % (revision, _rand(10), _rand(5))
        ip = self._alloc_ip()
        pod = SimPod(ns, revision, name, ip)
        if self.port_mode == "standard":
            pod.ports = {"http": QUEUE_PORT, "http-queueadm": ADMIN_PORT,
                         "http-autometric": METRICS_PORT, "http-usermetric": USER_METRICS_PORT}
            tls_port = 8112
        else:
            pod.ports = {"http": kp.free_port(), "http-queueadm": kp.free_port(),
                         "http-autometric": kp.free_port(),
                         "http-usermetric": kp.free_port()}
            tls_port = kp.free_port()
        pod.user_port = self.app_port if _can_bind(ip, self.app_port) else kp.free_port()
        app_env = {"PORT": pod.user_port, "HOST": ip, "K_REVISION": revision,
                   "K_CONFIGURATION": cfg["configuration"], "K_SERVICE": cfg["service"]}
        app_env.update(cfg["app_env"])
        qp_env = kp.knative_env(
            SERVING_NAMESPACE=ns, SERVING_CONFIGURATION=cfg["configuration"],
            SERVING_REVISION=revision, SERVING_POD=name, SERVING_POD_IP=ip,
            SERVING_SERVICE=cfg["service"], QUEUE_SERVING_PORT=pod.ports["http"],
            QUEUE_SERVING_TLS_PORT=tls_port, USER_PORT=pod.user_port,
            CONTAINER_CONCURRENCY=str(cfg["cc"]), KP_USER_HOST=ip, KP_LISTEN_HOST=ip,
            KP_ADMIN_PORT=pod.ports["http-queueadm"],
            KP_METRICS_PORT=pod.ports["http-autometric"],
            KP_USER_METRICS_PORT=pod.ports["http-usermetric"],
            KP_DRAIN_QUIET_PERIOD_SECONDS="0",
            SERVING_READINESS_PROBE=json.dumps(
                {"tcpSocket": {"port": pod.user_port, "host": ip}, "successThreshold": 1}))
        qp_env.update(cfg["qp_env"])
        if self.before_start:
            self.before_start(pod, qp_env)
        argv = cfg["app_argv"] or [os.path.join(self.build_dir, "helloworld")]
        if os.environ.get("KP_FAKE_APP") == "1" and not cfg["app_argv"]:
            argv = kp.app_command()
        pod.app = self.procs.start("helloworld", argv, app_env)
        pod.qp = self.procs.start("queue-proxy", [os.path.join(self.build_dir, "queue-proxy")],
                                  qp_env)
        self._pods.setdefault((ns, revision), []).append(pod)
        self.events.append((time.time(), "start", name, ip))
        threading.Thread(target=self._monitor, args=(pod,), daemon=True).start()

    def _probe(self, pod):
        try:
            c = http.client.HTTPConnection(pod.ip, pod.port, timeout=1)
            try:
                c.request("GET", "/", headers={"User-Agent": "kube-probe/" + self.kubelet,
                                               "K-Network-Probe": "queue",
                                               "Accept": "*/*"})
                r = c.getresponse()
                r.read()
                return r.status == 200
            finally:
                c.close()
        except (OSError, http.client.HTTPException):
            return False

    def _monitor(self, pod):
        """The kubelet's readiness probe of the queue-proxy. It goes on while
        the pod terminates: the endpoint's `serving` follows it."""
        while True:
            with self._lock:
                if self._stopped or pod.gone:
                    return
                terminating = pod.terminating
            if not terminating and not pod.alive():
                with self._lock:
                    if pod.terminating or self._stopped:
                        continue
                    pod.failed = True
                    if pod.ready:
                        pod.ready = False
                    self.events.append((time.time(), "failed", pod.name, pod.ip))
                    self._publish(pod.namespace, pod.revision)
                return
            ok = self._probe(pod)
            with self._lock:
                if self._stopped or pod.gone:
                    return
                if ok != pod.ready:
                    pod.ready = ok
                    if ok and pod.ready_at is None:
                        pod.ready_at = time.monotonic()
                        self.events.append((time.time(), "ready", pod.name, pod.ip))
                    self._publish(pod.namespace, pod.revision)
            time.sleep(self.probe_period if pod.ready else self.probe_interval)

    def _stop_container(self, pod, name, proc, grace):
        """CRI StopContainer: SIGTERM, then SIGKILL once grace seconds pass."""
        with self._lock:
            pod.sigterm_at[name] = time.monotonic()
        proc.signal(signal.SIGTERM)
        try:
            rc = proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.poll()
            with self._lock:
                pod.killed.append(name)
        with self._lock:
            pod.exit_codes[name] = rc

    def _stop_user_container(self, pod):
        """killContainer for the app: the preStop hook first, waited for up to
        the grace period; SIGTERM with what is left of it, at least 2 s."""
        grace = self.termination_grace_period
        if grace > 0:
            box = {}
            start = time.monotonic()

            def hook():
                box.update(run_http_get_hook(self.kubelet, pod.ip, pod.admin_port,
                                             PRESTOP_PATH, grace + 1))
                box["ended_at"] = time.monotonic()

            t = threading.Thread(target=hook, daemon=True)
            t.start()
            t.join(grace)
            elapsed = time.monotonic() - start
            record = {"pod": pod.name, "kubelet": self.kubelet, "started_at": start,
                      "waited": round(elapsed, 3), "completed": not t.is_alive(), **box}
            with self._lock:
                pod.hook = record
                self.hooks.append(record)
            grace -= int(elapsed)  # executePreStopHook returns whole seconds
        self._stop_container(pod, "user-container", pod.app,
                             max(grace, MINIMUM_GRACE_PERIOD_S) * kp.SLOW)

    def _stop_pod(self, pod):
        # killContainersWithSyncResult: every container at once.
        workers = [threading.Thread(target=self._stop_container, daemon=True, args=(
            pod, "queue-proxy", pod.qp,
            max(self.termination_grace_period, MINIMUM_GRACE_PERIOD_S) * kp.SLOW))]
        if pod.app is not None:
            workers.append(threading.Thread(target=self._stop_user_container, args=(pod,),
                                            daemon=True))
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        with self._lock:
            pod.gone = True
            self.stopped.append(pod)
            ps = self._pods.get((pod.namespace, pod.revision), [])
            if pod in ps:
                ps.remove(pod)
            self._ips_in_use.discard(pod.ip)
            self.events.append((time.time(), "gone", pod.name, pod.ip))
            if not self._stopped:
                self._publish(pod.namespace, pod.revision)

    def _publish(self, ns, revision):
        """Writes the revision's endpoints to FakeKube and the deployment's
        status.replicas (called with the lock held)."""
        pods = self._pods.get((ns, revision), [])
        eps = [{"ip": p.ip, "ready": p.ready and not p.terminating, "pod": p.name,
                "serving": p.ready, "terminating": p.terminating, "ports": dict(p.ports)}
               for p in pods]
        default_ports = {"http": QUEUE_PORT, "http-queueadm": ADMIN_PORT,
                         "http-autometric": METRICS_PORT, "http-usermetric": USER_METRICS_PORT}
        self.fake.set_endpoints(ns, "%s-private" % revision, eps, ports=default_ports)
        try:
            self.fake.set_deployment_status(ns, "%s-deployment" % revision,
                                            len([p for p in pods if not p.terminating]))
        except KeyError:
            pass

    # ------------------------------------------------------------ teardown
    def stop(self):
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            try:
                self.fake.scale_listeners.remove(self._on_scale)
            except ValueError:
                pass
        for p in self.procs.procs:
            if p.poll() is None:
                p.kill()  # SIGKILL its process group
            else:
                p._out.close()
                p._err.close()
        self.procs.remove_logs()

    def logs(self, pod):
        """The pod's queue-proxy and app output, for assertion messages."""
        return "%s\n%s" % (pod.qp.describe(), pod.app.describe() if pod.app else "")


def __getattr__(name):
    # The Deployment-driven kubelet lives in kubelet_deploy.py (it imports
    # this module); `from kubelet_sim import DeploymentKubelet` works too.
    if name == "DeploymentKubelet":
        from kubelet_deploy import DeploymentKubelet
        return DeploymentKubelet
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
