"""A revision that cannot run fails its requests at once, with the reason,
instead of holding them until the revision timeout. With the local backend:
an app that exits before it is ready (ExitCode{N} and its last line on
stderr), a program that does not exist (the exec error). The reason shows in
/status and /metrics; the pods are retried with a back-off, and once the
revision is fixed (a config with a good command) its requests succeed."""
import concurrent.futures
import json
import os
import re
import signal
import time

import pytest

import activator_harness as ah
import kp
from test_local_pods import port_base

REV = "helloworld-go-00001"
# Long enough that a 503 naming the reason cannot be the hold timing out.
TIMEOUT_S = 120


def config(command=None):
    cfg = ah.helloworld_config(timeout=TIMEOUT_S)
    svc = cfg["services"][0]
    svc["revisions"] = svc["revisions"][:1]
    svc["traffic"] = [{"revisionName": REV, "percent": 100}]
    if command:
        svc["revisions"][0]["command"] = command
    return cfg


def reload(act, cfg):
    tmp = act.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.replace(tmp, act.config_path)  # a new file, as a ConfigMap update
    act.proc.send_signal(signal.SIGHUP)


def metric(act, name):
    for line in act.metrics().splitlines():
        if line.startswith(name + "{") and f'revision="{REV}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


@pytest.fixture
def activators():
    started = []
    yield started
    ah.stop_all(started)


def test_an_app_that_exits_at_once_fails_held_requests_with_its_last_words(activators):
    """The app writes a panic on stderr and exits 1 before listening: the
    request held for its cold start ends 503 naming the revision, ExitCode1
    and the message (not the hold timeout); /status and /metrics say why;
    the next request fails at once too. Then a config with a good command
    fixes it and requests succeed."""
    crash = ["/bin/sh", "-c", "echo starting >&2; echo 'panic: no PORT' >&2; exit 1"]
    act = ah.Activator(config(crash), args=["--pod-port-base", str(port_base())])
    activators.append(act)
    expected = f"revision {REV} cannot start: ExitCode1: panic: no PORT\n"
    t0 = time.monotonic()
    status, body = act.request("/", timeout=TIMEOUT_S + 30)
    held = time.monotonic() - t0
    print(f"\nheld request for an app that exits 1: {status} {body!r} after {held:.2f} s")
    assert (status, body) == (503, expected)
    rev = act.revision_status(REV)
    assert rev["failure"] == "ExitCode1: panic: no PORT", rev
    assert rev["failed_requests"] >= 1 and rev["ready_pods"] == 0 and rev["held"] == 0, rev
    assert metric(act, "activator_revision_cannot_run") == 1
    assert metric(act, "activator_failed_fast_requests_total") >= 1
    # The app's stderr still reaches the activator's, line by line.
    assert "panic: no PORT\n" in act.logs()
    # While it cannot run, a new request is not held either.
    assert act.request("/", timeout=TIMEOUT_S + 30) == (503, expected)
    # The pods asked for are retried with a back-off, not given up on.
    act.wait_for(lambda: sum(1 for l in act.log_lines()
                             if l.get("message") == "pod died") >= 2, 20 * kp.SLOW,
                 "a second attempt")

    reload(act, config())  # the default command: our helloworld
    act.wait_for(lambda: act.request("/", timeout=TIMEOUT_S + 30) == (200, "Hello World!\n"),
                 30 * kp.SLOW, "the fixed revision to answer")
    rev = act.revision_status(REV)
    assert rev["failure"] is None and rev["ready_pods"] >= 1, rev
    assert metric(act, "activator_revision_cannot_run") == 0


def test_every_held_request_ends_at_once_when_the_app_exits(activators):
    """Several requests held for one cold start all end with the same 503
    when its app exits, none is left to the timeout."""
    crash = ["/bin/sh", "-c", "sleep 1; echo 'fatal: bad config' >&2; exit 3"]
    act = ah.Activator(config(crash), args=["--pod-port-base", str(port_base())])
    activators.append(act)
    n = 6
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(act.request, "/", timeout=TIMEOUT_S + 30) for _ in range(n)]
        results = [f.result() for f in futures]
    expected = (503, f"revision {REV} cannot start: ExitCode3: fatal: bad config\n")
    assert results == [expected] * n, results
    assert act.revision_status(REV)["failed_requests"] >= n


def test_a_missing_program_is_named_at_once(activators):
    """A command whose program does not exist: no process is started for
    it; the held request ends 503 with the exec error, and the attempts go
    on with a growing back-off."""
    act = ah.Activator(config(["/nonexistent/app", "--flag"]),
                       args=["--pod-port-base", str(port_base())])
    activators.append(act)
    status, body = act.request("/", timeout=TIMEOUT_S + 30)
    print(f"\nmissing program: {status} {body!r}")
    assert (status, body) == (503, f'revision {REV} cannot start: ExitCode127: exec '
                                   f'"/nonexistent/app": No such file or directory\n')
    assert act.revision_status(REV)["failure"].startswith("ExitCode127: exec ")
    status, body = act.request("/", timeout=TIMEOUT_S + 30)
    assert status == 503 and "No such file or directory" in body, body
    # A name looked up on PATH says so.
    reload(act, config(["kp-no-such-program", "--flag"]))
    act.wait_for(lambda: "executable file not found in $PATH" in
                 act.request("/", timeout=TIMEOUT_S + 30)[1], 20 * kp.SLOW,
                 "the PATH lookup's error")
    body = act.request("/", timeout=TIMEOUT_S + 30)[1]
    assert body == (f'revision {REV} cannot start: ExitCode127: exec "kp-no-such-program": '
                    f'executable file not found in $PATH\n'), body
    reload(act, config())
    act.wait_for(lambda: act.request("/", timeout=TIMEOUT_S + 30) == (200, "Hello World!\n"),
                 30 * kp.SLOW, "the fixed revision to answer")


def test_a_pod_that_served_and_then_died_is_no_start_failure(activators):
    """A pod that was ready once and dies is replaced, and the request
    held meanwhile is served by the replacement, not failed."""
    cfg = config()
    cfg["autoscaler"].update({"min-scale": "1", "initial-scale": "1"})
    act = ah.Activator(cfg, args=["--pod-port-base", str(port_base())])
    activators.append(act)
    act.wait_for(lambda: act.revision_status(REV)["ready_pods"] == 1, 15 * kp.SLOW, "a ready pod")
    pod = [l for l in act.log_lines() if l.get("message") == "pod started"][0]
    os.kill(int(pod["app_pid"]), signal.SIGKILL)
    act.wait_for(lambda: any(l.get("message") == "pod died" for l in act.log_lines()),
                 10 * kp.SLOW, "the pod's death")
    assert act.request("/", timeout=TIMEOUT_S + 30) == (200, "Hello World!\n")
    rev = act.revision_status(REV)
    assert rev["failure"] is None and rev["failed_requests"] == 0, rev
    assert re.search(r"died|failed to start", rev["last_failure"]["reason"]), rev
