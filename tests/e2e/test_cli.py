"""Command-line habits: --version on every program (the commit it was built
from), the address forms --listen and --admin take (:PORT, host names,
[IPv6]:PORT) and the errors for the rest, the queue-proxy naming every
missing variable in one run, and `make run`'s banner only once the
activator listens."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import kp
from activator_harness import helloworld_config

PROGRAMS = ("activator", "queue-proxy", "helloworld")
RUN_SH = os.path.join(kp.REPO, "scripts", "run.sh")
BANNER = "Try, in another terminal:"


def git_commit():
    """HEAD's short hash when the repository is a git checkout, else None."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=kp.REPO,
                             capture_output=True, text=True, timeout=10)
        if top.returncode != 0 or os.path.realpath(top.stdout.strip()) != os.path.realpath(kp.REPO):
            return None
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=kp.REPO,
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


@pytest.mark.parametrize("program", PROGRAMS)
def test_version(program):
    r = subprocess.run([kp.binary(program), "--version"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"(\S+) (\S+) \(git (\w+?)(-dirty)?\)\n", r.stdout)
    assert m, "unexpected --version output: %r" % r.stdout
    assert m.group(1) == program
    with open(os.path.join(kp.REPO, "VERSION")) as f:
        assert m.group(2) == f.read().strip()
    commit = git_commit()
    if commit is None:
        assert m.group(3) == "unknown", r.stdout
    else:
        assert m.group(3) == commit, (
            "%s was built from %s, the checkout is at %s: rebuild (make)" % (
                kp.binary(program), m.group(3), commit))
    help_text = subprocess.run([kp.binary(program), "--help"], capture_output=True, text=True,
                               timeout=10).stdout
    assert "--version" in help_text


def write_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(helloworld_config()))
    return str(path)


def start_activator(procs, tmp_path, listen, admin, env=None):
    return procs.start("activator", [kp.binary("activator"), "--config", write_config(tmp_path),
                                     "--listen", listen, "--admin", admin], env or {})


def curl(url):
    """(status, body) through the curl CLI."""
    r = subprocess.run(["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", url],
                       capture_output=True, text=True, timeout=10 * kp.SLOW)
    assert r.returncode == 0, "curl %s: %s" % (url, r.stderr)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def assert_serves(port, admin_port, host="127.0.0.1"):
    """Both ports answer: traffic (404 for a host no service has) and admin."""
    url_host = "[%s]" % host if ":" in host else host
    code, body = curl("http://%s:%d/" % (url_host, port))
    assert (code, body.startswith("no service for host")) == (404, True), (code, body)
    assert curl("http://%s:%d/healthz" % (url_host, admin_port))[0] == 200


@pytest.mark.parametrize("form", [":%d", "localhost:%d"], ids=["port-only", "host-name"])
def test_listen_forms(procs, tmp_path, form):
    port, admin = kp.free_port(), kp.free_port()
    act = start_activator(procs, tmp_path, form % port, form % admin)
    kp.wait_port(port, proc=act)
    kp.wait_port(admin, proc=act)
    assert_serves(port, admin)


def test_listen_ipv6(procs, tmp_path):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.skip("no IPv6 loopback here: %s" % e)
    port, admin = kp.free_port(), kp.free_port()
    act = start_activator(procs, tmp_path, "[::1]:%d" % port, "[::1]:%d" % admin)
    kp.wait_port(port, proc=act, host="::1")
    assert_serves(port, admin, host="::1")


@pytest.mark.parametrize("flag,value,why", [
    ("--listen", "8080", "no port"),
    ("--listen", "0.0.0.0:", 'port "" is not a number from 1 to 65535'),
    ("--listen", ":99999", 'port "99999" is not a number from 1 to 65535'),
    ("--listen", "::1:8080", "too many colons: an IPv6 address goes in brackets"),
    ("--listen", "[::1]", 'no ":PORT" after "]"'),
    ("--listen", "10.1:8080", '"10.1" is not an IPv4 address'),
    ("--admin", "no-such-host.invalid:9095", 'cannot resolve host "no-such-host.invalid"'),
    ("KP_ACTIVATOR_LISTEN", "localhost", "no port"),
    ("KP_ACTIVATOR_ADMIN", "[::1:9095", 'no "]" after the IPv6 address'),
])
def test_bad_addresses_say_what_is_accepted(tmp_path, flag, value, why):
    argv = [kp.binary("activator"), "--config", write_config(tmp_path)]
    env = dict(os.environ)
    if flag.startswith("--"):
        argv += [flag, value]
        named = '%s "%s": ' % (flag, value)
    else:
        env[flag] = value
        named = '%s="%s": ' % (flag, value)
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10 * kp.SLOW)
    assert r.returncode == 2, r
    assert ("activator: " + named + why) in r.stderr, r.stderr
    assert "HOST:PORT, :PORT or [IPv6]:PORT with PORT from 1 to 65535" in r.stderr, r.stderr


def test_queue_proxy_names_every_missing_variable_at_once(procs):
    env = {k: None for k in os.environ if k != "PATH"}
    qp = procs.start("queue-proxy", [kp.binary("queue-proxy")], env)
    assert qp.wait(5 * kp.SLOW) == 1
    err = qp.stderr()
    assert err.startswith("queue-proxy: 12 environment variables are missing or invalid"), err
    missing = re.findall(r"^  (\w+): required but not set$", err, re.M)
    assert missing == ["SERVING_NAMESPACE", "SERVING_CONFIGURATION", "SERVING_REVISION",
                       "SERVING_POD", "SERVING_POD_IP", "QUEUE_SERVING_PORT",
                       "QUEUE_SERVING_TLS_PORT", "USER_PORT", "CONTAINER_CONCURRENCY",
                       "REVISION_TIMEOUT_SECONDS", "SERVING_LOGGING_CONFIG",
                       "SERVING_LOGGING_LEVEL"], err


def test_queue_proxy_refuses_an_unknown_log_format(procs):
    env = {k: None for k in os.environ if k != "PATH"}
    env.update(kp.knative_env(KP_LOG_FORMAT="xml"))
    qp = procs.start("queue-proxy", [kp.binary("queue-proxy")], {k: str(v) if v is not None else None
                                                                 for k, v in env.items()})
    assert qp.wait(5 * kp.SLOW) == 1
    assert 'KP_LOG_FORMAT="xml": unknown format (expected json or text)' in qp.stderr(), qp.stderr()


def run_sh(procs, listen, admin):
    env = {"KP_ACTIVATOR_LISTEN": listen, "KP_ACTIVATOR_ADMIN": admin}
    return procs.start("activator", ["bash", RUN_SH, kp.BUILD], env)


def test_banner_waits_for_the_listener(procs):
    port, admin = kp.free_port(), kp.free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        p = run_sh(procs, "127.0.0.1:%d" % port, "127.0.0.1:%d" % admin)
        assert p.wait(10 * kp.SLOW) == 1, p.describe()
    assert "cannot listen on 127.0.0.1:%d (--listen): address already in use" % port \
        in p.stderr(), p.describe()
    assert BANNER not in p.stdout(), p.describe()

    # The same with the port free: the banner comes, and by then both ports
    # answer.
    p = run_sh(procs, "127.0.0.1:%d" % port, "127.0.0.1:%d" % admin)
    deadline = time.monotonic() + 10 * kp.SLOW
    while BANNER not in p.stdout():
        assert p.poll() is None and time.monotonic() < deadline, p.describe()
        time.sleep(0.02)
    assert_serves(port, admin)
    assert "curl -s http://127.0.0.1:%d/status" % admin in p.stdout()
    p.signal(signal.SIGTERM)
    assert p.wait(10 * kp.SLOW) == 0, p.describe()


def help_text(program):
    return subprocess.run([kp.binary(program), "--help"], capture_output=True, text=True,
                          timeout=10).stdout


def test_readme_documents_every_flag_and_variable():
    """README.md names every flag the activator's --help lists and every
    variable the queue-proxy's --help lists."""
    with open(os.path.join(kp.REPO, "README.md")) as f:
        readme = f.read()
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text("activator")))
    assert "--listen" in flags and "--kube-ca-file" in flags, flags
    missing = sorted(f for f in flags if "`%s" % f not in readme)
    assert not missing, "README.md does not document %s" % missing
    variables = set(re.findall(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b", help_text("queue-proxy")))
    assert "USER_PORT" in variables and "KP_LISTEN_HOST" in variables, variables
    missing = sorted(v for v in variables if "`%s`" % v not in readme)
    assert not missing, "README.md does not document %s" % missing
