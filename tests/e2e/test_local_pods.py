"""Local pods live and die with their activator. A terminal's Ctrl-C (SIGINT
to the activator's whole process group) reaches only the activator, which
drains: in-flight requests end 200, then its pods stop through their own
drain. A SIGKILLed activator leaves no pod process behind, and a new
activator on the same ports starts its pods there. A pod port some other
process holds is named in a warning, not skipped in silence."""
import concurrent.futures
import os
import random
import signal
import socket
import time

import pytest

import activator_harness as ah
import kp

REV = "helloworld-go-00001"


def port_base():
    """A range of pod ports of this test's own (five per pod), below the
    ephemeral range like the default, and free now."""
    for _ in range(100):
        base = random.randrange(22000, 32000, 50)
        if all(_bindable(p) for p in range(base, base + 20)):
            return base
    raise AssertionError("no free range of pod ports")


def _bindable(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def config(pods):
    cfg = ah.helloworld_config(autoscaler={"min-scale": str(pods), "initial-scale": str(pods)})
    svc = cfg["services"][0]
    svc["revisions"] = svc["revisions"][:1]
    svc["traffic"] = [{"revisionName": REV, "percent": 100}]
    return cfg


def started_pods(act):
    """{pod id: "pod started" log line} of this activator."""
    return {l["pod"]: l for l in act.log_lines() if l.get("message") == "pod started"}


def pod_pids(act):
    return [int(l[k]) for l in started_pods(act).values() for k in ("app_pid", "qp_pid")]


def alive(pid):
    """Running (a zombie waiting for its reaper is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_ready(act, n):
    act.wait_for(lambda: act.revision_status(REV)["ready_pods"] >= n, 15 * kp.SLOW,
                 f"{n} ready pods")


@pytest.fixture
def activators():
    started = []
    yield started
    reports = []
    for act in started:
        if act.proc.poll() is None:
            act.stop()
        for pid in pod_pids(act):  # whatever the outcome, leave nothing behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        logs = act.logs()  # the pods' output lands there too
        if "Sanitizer" in logs or "runtime error:" in logs:
            reports.append(logs[-4000:])
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)


def test_ctrl_c_reaches_only_the_activator_which_drains(activators):
    """SIGINT to the activator's process group, as a terminal sends it on
    Ctrl-C, with ?sleep= requests in flight on two pods: every request ends
    200, each pod's processes stop on the activator's SIGTERM (not the
    terminal's SIGINT) and exit 0, and the activator exits 0."""
    act = ah.Activator(config(2), args=["--pod-port-base", str(port_base())])
    activators.append(act)
    wait_ready(act, 2)
    pids = pod_pids(act)
    assert len(pids) == 4 and all(alive(p) for p in pids), pids
    # The pods are in sessions of their own, out of the terminal's reach.
    assert all(os.getsid(p) != os.getsid(act.proc.pid) for p in pids)
    n = 12
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(act.request, "/?sleep=1500") for _ in range(n)]
        act.wait_for(lambda: act.revision_status(REV)["in_flight"] == n, 10 * kp.SLOW,
                     f"{n} requests in flight")
        t0 = time.monotonic()
        os.killpg(os.getpgid(act.proc.pid), signal.SIGINT)
        results = [f.result() for f in futures]
    code = act.proc.wait(30 * kp.SLOW)
    took = time.monotonic() - t0
    codes = {}
    for status, body in results:
        codes[(status, body)] = codes.get((status, body), 0) + 1
    print(f"\nCtrl-C with {n} in flight on 2 pods: {codes}, activator exit {code} "
          f"after {took:.2f} s")
    assert codes == {(200, "Hello World!\n"): n}, codes
    assert code == 0, act.logs()[-3000:]
    lines = act.log_lines()
    got = {(l.get("logger"), l.get("message")) for l in lines}
    assert ("activator", "received SIGINT: finishing accepted requests, then stopping pods") in got
    # No pod process saw the terminal's SIGINT; each queue-proxy drained on
    # the activator's SIGTERM, then its app stopped.
    assert ("queue-proxy", "received SIGINT: draining") not in got, lines
    assert sum(1 for l in lines if l.get("logger") == "queue-proxy"
               and l.get("message") == "received SIGTERM: draining") == 2, lines
    exits = [(l["pod"], l["process"], l["status"]) for l in lines
             if l.get("message") == "pod process exited"]
    assert sorted(exits) == sorted((pod, proc, "exit status 0") for pod in started_pods(act)
                                   for proc in ("queue-proxy", "app")), exits
    assert not [l for l in lines if l.get("message") == "pod died"], lines
    assert not [p for p in pids if alive(p)]


def test_killed_activator_leaves_no_pod_and_a_new_one_reuses_the_ports(activators):
    """SIGKILL of the activator alone (its process group is left alone, as
    `kill -9 PID` does): within a few seconds no process of its pods is
    left; a new activator on the same pod ports starts its pods on exactly
    those ports and serves."""
    base = port_base()
    old = ah.Activator(config(2), args=["--pod-port-base", str(base)])
    activators.append(old)
    wait_ready(old, 2)
    pids = pod_pids(old)
    old_ports = sorted(int(l[k]) for l in started_pods(old).values()
                       for k in ("app_port", "serving_port", "admin_port", "metrics_port",
                                 "user_metrics_port"))
    assert len(pids) == 4 and all(alive(p) for p in pids), pids
    t0 = time.monotonic()
    os.kill(old.proc.pid, signal.SIGKILL)
    old.proc.wait(5)
    old.crashed = True
    deadline = t0 + 5 * kp.SLOW
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.02)
    left = [p for p in pids if alive(p)]
    gone_after = time.monotonic() - t0
    assert not left, f"pod processes {left} outlived their activator by {gone_after:.1f} s"

    new = ah.Activator(config(2), args=["--pod-port-base", str(base)])
    activators.append(new)
    wait_ready(new, 2)
    assert new.request("/") == (200, "Hello World!\n")
    new_ports = sorted(int(l[k]) for l in started_pods(new).values()
                       for k in ("app_port", "serving_port", "admin_port", "metrics_port",
                                 "user_metrics_port"))
    print(f"\nSIGKILL: {len(pids)} pod processes gone after {gone_after:.2f} s; "
          f"new activator's pod ports {new_ports[0]}-{new_ports[-1]} "
          f"(old {old_ports[0]}-{old_ports[-1]})")
    assert new_ports == old_ports
    assert not [l for l in new.log_lines() if "taken" in l.get("message", "")]
    assert new.stop() == 0, new.logs()[-3000:]


def test_a_taken_pod_port_is_named_in_a_warning(activators):
    """A pod port held by another process is skipped with a warning that
    names it and says what to do; the pod starts on the next ports."""
    base = port_base()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", base))
    holder.listen(1)
    try:
        act = ah.Activator(config(1), args=["--pod-port-base", str(base)])
        activators.append(act)
        wait_ready(act, 1)
        assert act.request("/") == (200, "Hello World!\n")
        warnings = [l for l in act.log_lines()
                    if l.get("message") == "pod port taken by another process; skipping it"]
        print(f"\ntaken port: {warnings}")
        assert [w["port"] for w in warnings] == [base], warnings
        assert warnings[0]["severity"] == "WARNING"
        assert "--pod-port-base" in warnings[0]["hint"], warnings
        ports = [int(v) for l in started_pods(act).values() for k, v in l.items()
                 if k.endswith("_port")]
        assert base not in ports and min(ports) == base + 1, ports
        assert act.stop() == 0
    finally:
        holder.close()


def test_a_pod_program_that_cannot_run_is_named_and_retried(activators):
    """A missing app is found before any process starts for the pod: the
    log and /status name the program and why (as a failed exec would, exit
    127), no pod is made, and the start is retried with a growing backoff."""
    cfg = config(1)
    cfg["services"][0]["revisions"][0]["command"] = ["/nonexistent/app", "--flag"]
    act = ah.Activator(cfg, args=["--pod-port-base", str(port_base())])
    activators.append(act)
    act.wait_for(lambda: sum(1 for l in act.log_lines() if l.get("message") == "cannot start pod")
                 >= 3, 10 * kp.SLOW, "three failed starts")
    lines = act.log_lines()
    cannot = [l for l in lines if l.get("message") == "cannot start pod"]
    print(f"\nmissing app: {cannot[0]}; "
          f"backoffs {[l['backoff_ms'] for l in lines if 'backoff_ms' in l][:4]} ms")
    reason = 'ExitCode127: exec "/nonexistent/app": No such file or directory'
    assert all(l["reason"] == reason for l in cannot), cannot
    assert not [l for l in lines if l.get("message") in ("pod started", "pod died")], lines
    backoffs = [l["backoff_ms"] for l in lines if "backoff_ms" in l]
    assert backoffs[:3] == [100, 200, 400], backoffs
    # An operator sees why without reading the log.
    rev = act.revision_status(REV)
    assert rev["failure"] == reason, rev
    assert rev["last_failure"]["reason"] == "pod failed to start: " + reason, rev
    assert act.stop() == 0, act.logs()[-3000:]


def test_pod_exec_by_hand_says_what_it_is():
    import subprocess
    r = subprocess.run([os.path.join(ah.BUILD, "activator"), "--pod-exec"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert "--pod-exec ACTIVATOR_PID FILE [ARG...]" in r.stderr, r.stderr
    assert "not for use by hand" in r.stderr
