"""An h2c revision on the kubernetes backend: its pods' queue-proxy serves
on the port its private Service names "http2" (8013), and the activator
dials that port, as Knative's picks endpoints by
ServicePortName(revision protocol); the EndpointSlice's other ports
(metrics, admin) come first in its list and are not mistaken for it."""
import h2client
from activator_harness import HOST, helloworld_config
from kubelet_sim import QUEUE_H2C_PORT
from test_activator_kubernetes import cluster, replicas  # noqa: F401 (fixture)

REV = "helloworld-go-00001"


def test_an_h2c_revision_is_dialled_on_its_http2_port(cluster):  # noqa: F811
    cluster.sim.configure(REV, app_env={"TARGET": "World"}, container_concurrency=10, h2c=True)
    config = helloworld_config()
    config["services"][0]["revisions"][0]["ports"] = [{"name": "h2c", "containerPort": 8080}]
    act = cluster.activator(config)
    assert act.request("/") == (200, "Hello World!\n")
    assert replicas(cluster.fake) >= 1
    pod = cluster.sim.ready_pods(REV)[0]
    assert "http" not in pod.ports and pod.ports["http2"] == QUEUE_H2C_PORT
    # the slice lists the metrics and admin ports before "http2"
    names = [p["name"] for s in cluster.fake.slices("default", REV + "-private")
             for p in s["ports"]]
    assert names.index("http2") > 0, names
    pods = act.revision_status(REV)["pods"]
    assert [(p["ip"], p["port"]) for p in pods] == [(pod.ip, QUEUE_H2C_PORT)], pods
    # HTTP/2 through the activator to the h2c revision
    r = h2client.get(act.port, "/", authority=HOST, timeout=10)
    assert r.status == 200 and r.body == b"Hello World!\n", r
