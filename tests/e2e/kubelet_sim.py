"""Plays the kubelet (and the ReplicaSet and EndpointSlice controllers) for a
FakeKube: when the replicas of a deployment `{revision}-deployment` change,
it starts or stops pods, and publishes them in the EndpointSlices of the
service `{revision}-private`.

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
kube-probe/1.29, K-Network-Probe: queue → 200). A pod is published not
ready first, ready once the probe answers 200. Scale down: the endpoint
turns not ready + terminating, the queue-proxy gets SIGTERM (it runs with
KP_DRAIN_QUIET_PERIOD_SECONDS=0 unless configured otherwise), then the app;
the endpoint is removed once both exited.
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

import kp

QUEUE_PORT = 8012
ADMIN_PORT = 8022
METRICS_PORT = 9090
USER_METRICS_PORT = 9091
APP_PORT = 8080


def _rand(n, alphabet="bcdfghjklmnpqrstvwxz2456789"):
    return "".join(random.choice(alphabet) for _ in range(n))


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
    probe_period=0.5, drain_timeout=10, app_port=8080)

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
                 probe_period=0.5, drain_timeout=10.0, app_port=APP_PORT):
        assert port_mode in ("per-pod", "standard"), port_mode
        self.fake = fake
        self.build_dir = build_dir or kp.BUILD
        self.port_mode = port_mode
        self.probe_interval = probe_interval
        self.probe_period = probe_period
        self.drain_timeout = drain_timeout
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
        with fake._lock:
            existing = [(k[1], k[2], o["spec"]["replicas"]) for k, o in fake._objects.items()
                        if k[0] == "deployments"]
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
                    p.terminating = True
                    p.ready = False
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
                c.request("GET", "/", headers={"User-Agent": "kube-probe/1.29",
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
        """The kubelet's readiness probe of the queue-proxy."""
        while True:
            with self._lock:
                if self._stopped or pod.terminating:
                    return
            if not pod.alive():
                with self._lock:
                    if pod.terminating or self._stopped:
                        return
                    pod.failed = True
                    if pod.ready:
                        pod.ready = False
                    self.events.append((time.time(), "failed", pod.name, pod.ip))
                    self._publish(pod.namespace, pod.revision)
                return
            ok = self._probe(pod)
            with self._lock:
                if self._stopped or pod.terminating:
                    return
                if ok != pod.ready:
                    pod.ready = ok
                    if ok and pod.ready_at is None:
                        pod.ready_at = time.monotonic()
                        self.events.append((time.time(), "ready", pod.name, pod.ip))
                    self._publish(pod.namespace, pod.revision)
            time.sleep(self.probe_period if pod.ready else self.probe_interval)

    def _stop_pod(self, pod):
        for proc, timeout in ((pod.qp, self.drain_timeout), (pod.app, 5.0)):
            if proc is None:
                continue
            proc.signal(signal.SIGTERM)
            try:
                proc.wait(timeout * kp.SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
        with self._lock:
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
