"""The activator's capacity with HTTP/2: its two traffic listeners (--listen
and --listen-h2c) take their clients from one connection budget, which
follows the pods' own descriptors as pods come; and its h2c connections to
pods count among the pod connections it budgets descriptors for
(/status capacity.pod_connections)."""
import os
import resource
import select
import socket
import time

import h2raw
from activator_harness import free_port, revision
from test_http2 import own_pods

REV = "helloworld-go-00001"
HOST = "helloworld-go.default.127.0.0.1.sslip.io"
RESERVED_FILES, FILES_PER_POD = 256, 2  # activator/capacity.h


def config(pods, h2c=False):
    rev = revision(REV, "World", cc=0, annotations={
        "autoscaling.knative.dev/min-scale": str(pods),
        "autoscaling.knative.dev/max-scale": str(pods)})
    if h2c:
        rev["ports"] = [{"name": "h2c", "containerPort": 8080}]
    return {"domain": "127.0.0.1.sslip.io",
            "services": [{"name": "helloworld-go", "namespace": "default", "revisions": [rev],
                          "traffic": [{"revisionName": REV, "percent": 100}]}]}


def start_under_file_limit(activator_factory, cfg, files, args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, hard))
    try:
        return activator_factory(cfg, args=args)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect(port, n):
    """n connections that send nothing: an accepted one stays open (until
    the header timeout), a refused one is closed at once."""
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]


def closed_by_peer(socks):
    readable, _, _ = select.select(socks, [], [], 0.5)
    gone = []
    for s in readable:
        try:
            if s.recv(1) == b"":
                gone.append(s)
        except ConnectionResetError:
            gone.append(s)
    return gone


def test_both_listeners_share_one_client_budget_that_follows_the_pods(activator_factory):
    pods, files = 2, 400
    h2c_port = free_port()
    act = start_under_file_limit(activator_factory, config(pods), files,
                                 ("--listen-h2c", "127.0.0.1:%d" % h2c_port) + own_pods())
    act.wait_for(lambda: act.revision_status(REV)["ready_pods"] == pods, 60, "pods ready")
    bound = files - RESERVED_FILES - FILES_PER_POD * pods
    act.wait_for(lambda: act.status()["capacity"]["max_connections"] == bound, 10,
                 "the bound less the pods' descriptors")
    main = connect(act.port, 100)
    h2c = connect(h2c_port, 100)
    try:
        act.wait_for(lambda: act.status()["capacity"]["connections"] == bound, 10,
                     "both listeners' connections counted together")
        refused = closed_by_peer(main + h2c)
        # The main port's 100 fit; the h2c port took only what was left.
        assert not [s for s in refused if s in main]
        assert len(refused) == 200 - bound, (len(refused), bound)
        assert act.status()["capacity"]["connections"] == bound
        # What the main port gives back, the h2c port may take.
        for s in main:
            s.close()
        act.wait_for(lambda: act.status()["capacity"]["connections"] == bound - 100, 10,
                     "the main port's connections gone")
        more = connect(h2c_port, 120)
        h2c += more
        act.wait_for(lambda: act.status()["capacity"]["connections"] == bound, 10,
                     "the h2c port filling the budget")
        assert len(closed_by_peer(more)) == 120 - 100
    finally:
        for s in main + h2c:
            s.close()
    act.wait_for(lambda: act.status()["capacity"]["connections"] == 0, 10, "all gone")


def outbound_sockets(pid, own_ports):
    """The process's TCP sockets it opened itself (to pods, here): every
    socket descriptor whose local port is not one it listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[9] in inodes and fields[3] != "0A" and local_port not in own_ports:
                    found.append(remote_port)
    return found


def test_h2c_connections_to_pods_count_as_pod_connections(activator_factory):
    h2c_port = free_port()
    act = activator_factory(config(1, h2c=True),
                            args=("--listen-h2c", "127.0.0.1:%d" % h2c_port) + own_pods())
    act.wait_for(lambda: act.revision_status(REV)["ready_pods"] == 1, 60, "pod ready")
    own = {act.port, h2c_port, act.admin_port}

    def counted(at_least):
        n = len(outbound_sockets(act.proc.pid, own))
        return n >= at_least and act.status()["capacity"]["pod_connections"] == n

    act.wait_for(lambda: counted(0), 10, "pod_connections equal to the sockets open to pods")
    # At rest (a scrape's connection may come and go): the fewest seen.
    samples = []
    for _ in range(5):
        samples.append(len(outbound_sockets(act.proc.pid, own)))
        time.sleep(0.1)
    before = min(samples)
    # Two clients of 60 streams each (the activator, like Knative's, takes
    # 100 at once per connection): more than the queue-proxy takes on one
    # connection, so the h2c pool opens a second one beside the first.
    clients = [h2raw.H2(h2c_port), h2raw.H2(act.port)]
    try:
        sids = [(c, c.request(authority=HOST, path="/?sleep=4000"))
                for c in clients for _ in range(60)]
        act.wait_for(lambda: counted(before + 2), 10,
                     "two more sockets open to the pod, and counted")
        for c in clients:
            assert c.read_until(lambda: all(c.streams[s].done for d, s in sids if d is c), 30)
        assert {c.streams[s].status for c, s in sids} == {200}
    finally:
        for c in clients:
            c.close()
