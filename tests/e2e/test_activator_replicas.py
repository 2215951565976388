"""Activator replicas sharing pods exactly: with A replicas in front of a
pod of containerConcurrency CC, the replicas together never send it more
than CC, CC < A included, so no request waits in a queue-proxy's queue
while the activators hold it; and the replicas changing under load fails
no request. Fake API server, kubelet simulator, real activators."""

import concurrent.futures
import json
import re
import threading
import time

from activator_harness import HOST, free_port, hey, helloworld_config
from test_activator_kubernetes import SLOW, cluster, token_for, wait_for_holder  # noqa: F401
import kp

REV = "helloworld-go-00001"
NAMES = ("activator-a", "activator-b", "activator-c")
IPS = ("127.0.1.11", "127.0.1.12", "127.0.1.13")


def publish(cluster, ready):
    """The activator Service's endpoints: every replica, `ready` of them
    ready (as the EndpointSlice controller writes them)."""
    cluster.fake.set_endpoints("default", "kp-activator", [
        (ip, name in ready, name) for ip, name in zip(IPS, NAMES)], port=8080)


def three_replicas(cluster, cfg, ready=NAMES):
    publish(cluster, ready)
    admin_port = free_port()
    acts = []
    for name, ip in zip(NAMES, IPS):
        acts.append(cluster.activator(
            cfg, identity=name, extra=["--activator-service", "kp-activator"],
            token_path=token_for(cluster, name), admin_host=ip, admin_port=admin_port))
        if name == NAMES[0]:
            wait_for_holder(cluster.fake, name, 10)
    return acts


def queued_at(pod):
    """kp_queue_proxy_queued_requests_total of a pod's queue-proxy."""
    r = kp.request(pod.ports["http-usermetric"], "/metrics", host=pod.ip)
    assert r.status == 200, r
    m = re.search(r"^kp_queue_proxy_queued_requests_total (\d+)$", r.text, re.M)
    assert m, r.text
    return int(m.group(1))


def app_stats(pod):
    return json.loads(pod.get("/stats").body)


def cc_one_on_three_pods(cluster):
    cluster.sim.configure(REV, app_env={"TARGET": "World"}, container_concurrency=1,
                          qp_env={"SERVING_REQUEST_METRICS_BACKEND": "prometheus"})
    return helloworld_config(cc=1, autoscaler={"min-scale": "3", "max-scale": "3"})


def test_three_replicas_never_send_a_pod_of_cc_1_more_than_one(cluster):
    """CC 1, three pods, three replicas each driven with 3 concurrent
    requests (9 against 3 slots): each replica owns one pod's slot, so the
    excess waits at the activators, and no queue-proxy ever queues."""
    acts = three_replicas(cluster, cc_one_on_three_pods(cluster))
    cluster.sim.wait_ready(REV, 3, timeout=20 * SLOW)
    for act in acts:
        act.wait_for(lambda act=act: "activator replicas changed" in act.logs(), 10,
                     "the replicas counted")
    pods = cluster.sim.ready_pods(REV)
    before = {p.name: queued_at(p) for p in pods}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(hey, act.url("/?sleep=30"), HOST, 3, "5s") for act in acts]
        codes = [r.result() for r in runs]
    assert all(set(c) == {200} for c in codes), codes
    stats = {p.name: app_stats(p) for p in pods}
    assert all(s["max_in_flight"] <= 1 for s in stats.values()), stats
    assert all(s["requests"] > 0 for s in stats.values()), stats  # every pod served
    queued = {p.name: queued_at(p) - before[p.name] for p in pods}
    assert all(q == 0 for q in queued.values()), \
        "requests waited at a queue-proxy while the activators held them: %s" % queued


def test_replicas_going_2_3_1_under_load_fail_no_request(cluster):
    """The activator Deployment scales 2 -> 3 -> 1 while every replica
    carries load: each re-deals the pods' slots at once, and every request
    gets its 200."""
    acts = three_replicas(cluster, cc_one_on_three_pods(cluster), ready=NAMES[:2])
    cluster.sim.wait_ready(REV, 3, timeout=20 * SLOW)

    def reshape():
        time.sleep(2)
        publish(cluster, NAMES)
        time.sleep(2)
        publish(cluster, NAMES[:1])

    changer = threading.Thread(target=reshape)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(hey, act.url("/?sleep=20"), HOST, 3, "6s") for act in acts]
        changer.start()
        codes = [r.result() for r in runs]
    changer.join()
    assert all(set(c) == {200} and sum(c.values()) > 50 for c in codes), codes
    said = acts[1].logs()
    assert re.search(r"activator replicas changed.*ready.{0,4}3", said), said[-3000:]
    assert re.search(r"activator replicas changed.*ready.{0,4}1", said), said[-3000:]
    for p in cluster.sim.ready_pods(REV):
        assert app_stats(p)["max_in_flight"] <= 1
