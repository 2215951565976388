"""No single pod stalls a revision's autoscaling. A pod that accepts TCP and
never answers (a frozen process, a black hole) on its stats port or on its
serving port costs its own scrapes and probes, each with a deadline; the
revision's rounds keep coming, load elsewhere still scales it up, and the
pod is freed once removed. Kubernetes backend against the fake API server,
so that an endpoint can point at any socket."""

import json
import select
import socket
import threading
import time

import pytest

import kp
from activator_harness import ASAN, Activator, helloworld_config, stop_all
from fake_kube import FakeKube, activator_rules
from kubelet_sim import METRICS_PORT, QUEUE_PORT, KubeletSim

REV = "helloworld-go-00001"
SLOW = 3 if ASAN else 1


class BlackHole:
    """Listens on (ip, port), accepts every connection and never sends a
    byte; notices when the other side closes one."""

    def __init__(self, ip, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.accepted = 0
        self.conns = []
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            readable, _, _ = select.select([self.sock] + self.conns, [], [], 0.05)
            for s in readable:
                if s is self.sock:
                    conn, _ = self.sock.accept()
                    with self._lock:
                        self.conns.append(conn)
                        self.accepted += 1
                    continue
                try:
                    data = s.recv(65536)  # the request: read, never answered
                except OSError:
                    data = b""
                if not data:  # the peer closed it
                    with self._lock:
                        self.conns.remove(s)
                    s.close()

    def open_connections(self):
        with self._lock:
            return len(self.conns)

    def close(self):
        self._stop = True
        self._thread.join(5)
        for s in [self.sock] + self.conns:
            s.close()


def revision_config(annotations):
    cfg = helloworld_config()
    cfg["services"][0]["revisions"][0]["annotations"] = annotations
    return cfg


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube().start()
    for rev in (REV, "helloworld-go-00002"):
        fake.add_deployment("default", rev + "-deployment", replicas=0)
    token_file = fake.write_token_file(fake.add_user("activator", activator_rules("default")),
                                       str(tmp_path / "token"))
    started, closers = [], []

    def activator(config):
        act = Activator(config, ["--backend", "kubernetes", "--kube-api", fake.url,
                                 "--kube-token-file", token_file, "--kube-ca-file", fake.ca_file,
                                 "--lease-namespace", "default", "--lease-duration", "3"])
        started.append(act)
        return act

    class Kube:
        pass

    k = Kube()
    k.fake, k.activator, k.closers = fake, activator, closers
    yield k
    try:
        stop_all(started)
    finally:
        for close in closers:
            close()
        fake.stop()


def stats(act):
    return act.revision_status(REV)["stats"]


def pod_ids(act):
    return [p["id"] for p in act.revision_status(REV)["pods"]]


def test_a_black_holed_stats_port_stalls_no_round(kube):
    """Two pods; the older one's :9090 is a black hole. Load sent straight
    to the other pod (the activator out of the path, as Knative puts it
    once there is capacity) is seen only through its scrape: the revision
    scales up only if the rounds go on without the black-holed pod."""
    sim = KubeletSim(kube.fake)
    kube.closers.append(sim.stop)
    sim.configure(REV, app_env={"TARGET": "World"}, container_concurrency=10)
    holes = []

    def black_hole_first_pod(pod, qp_env):
        if not holes:
            qp_env["KP_METRICS_PORT"] = kp.free_port()  # its real stats, where nobody looks
            holes.append(BlackHole(pod.ip, METRICS_PORT))
            kube.closers.append(holes[0].close)

    sim.before_start = black_hole_first_pod
    act = kube.activator(revision_config({
        "autoscaling.knative.dev/min-scale": "2", "autoscaling.knative.dev/max-scale": "6",
        "autoscaling.knative.dev/window": "6s"}))
    sim.wait_ready(REV, 2, timeout=20 * SLOW)
    act.wait_for(lambda: act.revision_status(REV)["ready_pods"] == 2, 10 * SLOW, "2 ready pods")
    hole = holes[0]
    kp.wait_until(lambda: hole.accepted >= 1, 5, what="a scrape of the black hole")

    # Rounds keep coming while the black hole holds a scrape.
    before = stats(act)["rounds"]
    time.sleep(3)
    assert stats(act)["rounds"] >= before + 2, act.status()

    healthy = [p for p in sim.ready_pods(REV) if p.ip != hole.sock.getsockname()[0]][0]
    load = kp.run_in_thread(kp.hey, healthy.url("/?sleep=200"), 30, z="%ds" % (10 * SLOW),
                            timeout=60)
    act.wait_for(lambda: kube.fake.replicas("default", REV + "-deployment") >= 4, 12 * SLOW,
                 "scale-up for the load on the healthy pod")
    codes, out = load(60)
    assert set(codes) == {200}, out
    s = stats(act)
    assert s["scrape_timeouts"] >= 1, s  # the black hole's scrapes, dropped at their deadline
    warned = [l for l in act.log_lines() if l.get("message") == "pod stats scrape timed out"]
    assert warned and warned[0]["ip"] == hole.sock.getsockname()[0], warned

    # The black-holed pod goes (its queue-proxy dies, the endpoint turns not
    # ready): it is freed, and its scrape connection closed, at once.
    victim = [p for p in sim.pods(REV) if p.ip == hole.sock.getsockname()[0]][0]
    victim.qp.kill()
    act.wait_for(lambda: victim.name not in pod_ids(act), 5 * SLOW, "the black-holed pod freed")
    kp.wait_until(lambda: hole.open_connections() == 0, 5, what="its scrape connection closed")


def free_address(port):
    """A loopback address where port is free (the kubelet sim's pods of
    other runs may hold some)."""
    for n in range(200, 250):
        ip = "127.0.0.%d" % n
        s = socket.socket()
        try:
            s.bind((ip, port))
            return ip
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free loopback address for port %d" % port)


def test_a_black_holed_serving_port_costs_its_probe_only_and_is_freed(kube):
    """An endpoint whose queue-proxy port accepts and never answers: the
    probe is dropped at its 15 s deadline and tried again on a fresh
    connection, the rounds go on, and once the endpoint goes the pod is
    freed and every connection to the black hole closed."""
    ip = free_address(QUEUE_PORT)
    hole = BlackHole(ip, QUEUE_PORT)
    kube.closers.append(hole.close)
    act = kube.activator(helloworld_config())
    kube.fake.set_endpoints("default", REV + "-private",
                            [{"ip": ip, "ready": True, "pod": "black-hole-pod"}],
                            ports={"http": QUEUE_PORT, "http-autometric": METRICS_PORT})
    act.wait_for(lambda: "black-hole-pod" in pod_ids(act), 10 * SLOW, "the pod learnt")
    kp.wait_until(lambda: hole.accepted >= 1, 5, what="a probe of the black hole")
    pod = act.revision_status(REV)["pods"][0]
    assert pod["ready"] is False, pod
    before = stats(act)["rounds"]

    # 15 s later the probe gives up on that connection and opens another.
    kp.wait_until(lambda: hole.accepted >= 2, 20, interval=0.2, what="a second probe connection")
    kp.wait_until(lambda: hole.open_connections() == 1, 5, what="the first one closed")
    assert stats(act)["rounds"] >= before + 10, act.status()
    assert act.revision_status(REV)["ready_pods"] == 0

    kube.fake.set_endpoints("default", REV + "-private", [],
                            ports={"http": QUEUE_PORT, "http-autometric": METRICS_PORT})
    act.wait_for(lambda: pod_ids(act) == [], 5 * SLOW, "the pod freed")
    kp.wait_until(lambda: hole.open_connections() == 0, 5, what="the probe connection closed")
    assert json.dumps(act.status())  # the loop answers still
