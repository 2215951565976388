"""The activator's capacity: past its bound on requests (held and in flight,
every revision together) a request is answered 503 "activator at capacity"
at once and the process lives on; the bound is derived from the memory
limit of the container (cgroup v2 memory.max, cgroup v1
memory.limit_in_bytes) unless --max-requests sets it; the manifests' limit
and the bound derived from it agree."""
import os
import re
import resource

import yaml

from activator_harness import HOST, hey, revision
from crowd import NEVER_READY_CONFIG, NEVER_READY_REVISION as REV, open_crowd
from test_metrics import promtool_check

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COST_PER_CONNECTION = 8 * 1024  # activator/capacity.h: ACT_COST_PER_CONNECTION


def answer_of(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(4096)
    return head.split(b" ", 2)[1].decode(), body.decode()


def rejected(act):
    m = re.search(r"^activator_capacity_rejected_requests_total (\d+)$", act.metrics(), re.M)
    return int(m.group(1))


def fake_cgroup(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {"KP_CGROUP_ROOT": str(tmp_path)}


def derived(memory_bytes):
    connections = memory_bytes // 4 * 3 // COST_PER_CONNECTION
    return connections // 5 * 4, connections


def test_past_max_requests_a_503_activator_at_capacity(activator_factory):
    act = activator_factory(NEVER_READY_CONFIG, ["--max-requests", "20"])
    cap = act.status()["capacity"]
    assert (cap["max_requests"], cap["max_requests_from"]) == (20, "--max-requests"), cap
    crowd = open_crowd(act.port, 20)
    try:
        act.wait_for(lambda: act.revision_status(REV)["held"] == 20, 10, "20 held")
        assert rejected(act) == 0
        # The 21st, on a connection of its own: refused at once, in words.
        extra = open_crowd(act.port, 1)[0]
        assert answer_of(extra) == ("503", "activator at capacity\n")
        extra.close()
        assert act.status()["capacity"]["active_requests"] == 20
        assert act.revision_status(REV)["held"] == 20
        metrics = act.metrics()
        promtool_check(metrics)
        assert rejected(act) == 1
        assert re.search(r"^activator_active_requests 20$", metrics, re.M)
        assert re.search(r"^activator_capacity_requests 20$", metrics, re.M)
    finally:
        for s in crowd:
            s.close()
    # The crowd gone, a request is taken in again (held, not refused).
    act.wait_for(lambda: act.status()["capacity"]["active_requests"] == 0, 10, "crowd gone")
    again = open_crowd(act.port, 1)[0]
    act.wait_for(lambda: act.revision_status(REV)["held"] == 1, 10, "held again")
    again.close()
    assert act.proc.poll() is None
    assert rejected(act) == 1


def test_the_bound_is_derived_from_cgroup_v2_memory_max(activator_factory, tmp_path):
    env = fake_cgroup(tmp_path, {"memory.max": "4194304\n"})  # 4 MiB
    act = activator_factory(NEVER_READY_CONFIG, env=env)
    want_requests, want_connections = derived(4 << 20)
    cap = act.status()["capacity"]
    assert cap["memory_limit_bytes"] == 4 << 20 and \
        cap["memory_limit_from"] == "cgroup v2 memory.max", cap
    assert (cap["max_requests"], cap["max_connections"]) == (want_requests, want_connections)
    assert cap["max_requests_from"] == "memory limit"
    crowd = open_crowd(act.port, want_requests)
    try:
        act.wait_for(lambda: act.revision_status(REV)["held"] == want_requests, 20,
                     f"{want_requests} held")
        extra = open_crowd(act.port, 1)[0]
        assert answer_of(extra) == ("503", "activator at capacity\n")
        extra.close()
    finally:
        for s in crowd:
            s.close()
    assert rejected(act) == 1 and act.proc.poll() is None


def test_cgroup_v1_limit_and_no_limit(activator_factory, tmp_path):
    # cgroup v2 without a limit ("max") and a v1 hierarchy with one: v1's.
    env = fake_cgroup(tmp_path, {"memory.max": "max\n",
                                 "memory/memory.limit_in_bytes": "8388608\n"})
    cap = activator_factory(NEVER_READY_CONFIG, env=env).status()["capacity"]
    assert cap["memory_limit_from"] == "cgroup v1 memory.limit_in_bytes", cap
    assert (cap["max_requests"], cap["max_connections"]) == derived(8 << 20)
    # v1's "no limit" (the largest page-aligned signed 64-bit number): the
    # machine's memory, and the descriptors the process may open.
    env = fake_cgroup(tmp_path / "unlimited",
                      {"memory/memory.limit_in_bytes": "9223372036854771712\n"})
    cap = activator_factory(NEVER_READY_CONFIG, env=env).status()["capacity"]
    assert cap["memory_limit_from"] == "physical memory", cap
    assert cap["memory_limit_bytes"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_an_explicit_max_connections_is_kept(activator_factory, tmp_path):
    env = {**fake_cgroup(tmp_path, {"memory.max": "4194304\n"}), "KP_HTTP_MAX_CONNECTIONS": "50"}
    cap = activator_factory(NEVER_READY_CONFIG, env=env).status()["capacity"]
    assert cap["max_connections"] == 50, cap


def quantity_bytes(text):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", text)
    return int(m.group(1)) * units.get(m.group(2), 1)


def test_the_manifests_limit_and_the_derived_bound_agree(activator_factory, tmp_path):
    """The activator in config/kubernetes gets its bound from its memory
    limit (nothing in the manifest overrides it), and what that bound
    admits fits in the limit: its connections at the cost per connection
    the bound assumes take three quarters of it, and the process's own
    share of that (2 KiB per held request, test_memory_at_scale) far less."""
    with open(os.path.join(ROOT, "config", "kubernetes", "30-activator.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "Deployment"]
    container = next(c for c in docs[0]["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "activator")
    limit = quantity_bytes(container["resources"]["limits"]["memory"])
    env_names = {e["name"] for e in container.get("env", [])}
    assert "KP_HTTP_MAX_CONNECTIONS" not in env_names and "KP_MAX_REQUESTS" not in env_names
    assert "--max-requests" not in container.get("args", [])
    env = fake_cgroup(tmp_path, {"memory.max": f"{limit}\n"})
    cap = activator_factory(NEVER_READY_CONFIG, env=env).status()["capacity"]
    print(f"\nmanifest limit {limit >> 20} MiB: max_requests {cap['max_requests']}, "
          f"max_connections {cap['max_connections']}")
    assert cap["memory_limit_bytes"] == limit
    assert (cap["max_requests"], cap["max_connections"]) == derived(limit)
    assert cap["max_connections"] * COST_PER_CONNECTION <= limit * 3 // 4
    assert cap["max_requests"] * 2048 <= limit // 4


def test_pods_descriptors_come_off_the_clients_share(activator_factory):
    """Under a limit of 600 open files with 20 pods (2 descriptors each at
    rest: a stats scrape and a kept-alive connection), the clients'
    connections are bounded by what the reserve and the pods leave, and a
    request that would find no descriptor for its pod connection is
    refused: a crowd larger than that gets 200s and 503s in words, never a
    request failed by EMFILE."""
    pods = 20
    config = {
        "domain": "127.0.0.1.sslip.io",
        "services": [{
            "name": "helloworld-go", "namespace": "default",
            "revisions": [revision(REV, "World", cc=0, annotations={
                "autoscaling.knative.dev/min-scale": str(pods),
                "autoscaling.knative.dev/max-scale": str(pods)})],
            "traffic": [{"revisionName": REV, "percent": 100}],
        }],
    }
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (600, hard))
    try:
        act = activator_factory(config)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    act.wait_for(lambda: act.revision_status(REV)["ready_pods"] == pods, 60, "pods ready")
    cap = act.status()["capacity"]
    assert (cap["open_files_limit"], cap["pods"]) == (600, pods), cap
    assert cap["max_connections"] == 600 - 256 - 2 * pods, cap
    codes = hey(act.url("/?sleep=200"), HOST, 400, "4s")
    assert codes.get(200), codes
    assert set(codes) <= {200, 503}, codes
    logs = act.logs()
    assert "too many open files" not in logs.lower() and "EMFILE" not in logs, logs[-3000:]
    assert act.proc.poll() is None
