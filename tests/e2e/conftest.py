"""pytest fixtures for the end-to-end tests: `procs` (every process started
by a test, killed at its end whatever happens) and `pod` (a factory for
helloworld + queue-proxy pairs)."""
import os
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kp  # noqa: E402


def pytest_report_header(config):
    return "kp e2e: build=%s asan=%s app=%s" % (
        kp.BUILD, kp.ASAN, "helloworld" if kp.have_helloworld() else "fakeapp.py (stand-in)")


def pytest_sessionstart(session):
    if not os.path.exists(kp.binary("queue-proxy")):
        raise pytest.UsageError("%s missing: run `make %s`" % (
            kp.binary("queue-proxy"), os.path.relpath(kp.binary("queue-proxy"), kp.REPO)))


@pytest.fixture
def procs():
    ps = kp.Procs()
    try:
        yield ps
    finally:
        # Give queue-proxies a chance to exit cleanly so the sanitizers
        # report at exit, then kill everything that is left.
        for p in ps.procs:
            if p.name == "queue-proxy" and p.poll() is None:
                p.signal(signal.SIGTERM)
        for p in ps.procs:
            if p.name == "queue-proxy":
                try:
                    p.wait(2 * kp.SLOW)
                except subprocess.TimeoutExpired:
                    pass
        ps.kill_all()
    try:
        errors = [p.describe() for p in ps.procs
                  if p.name in ("queue-proxy", "activator") and p.sanitizer_errors()]
        assert not errors, "sanitizer reports:\n" + "\n".join(errors)
    finally:
        ps.remove_logs()


@pytest.fixture
def pod(procs):
    """pod(**env_overrides) -> kp.Pod; app=False for no app on USER_PORT,
    app_env={...} for the app's environment."""
    def make(**kw):
        return kp.Pod(procs, **kw)
    return make


@pytest.fixture
def activator_factory():
    """activator_factory(config, args=(), env=None) -> a running Activator,
    stopped and checked at the end of the test."""
    from activator_harness import Activator, stop_all
    started = []

    def start(config, args=(), env=None):
        act = Activator(config, args, env)
        started.append(act)
        return act

    yield start
    stop_all(started)
