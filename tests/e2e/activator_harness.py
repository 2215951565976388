"""Starts a real activator (local backend) on free ports with a config written
for the test, and talks to it over real sockets. Every process it starts is
stopped at the end, pods included: the activator stops its pods on SIGTERM,
and pods it could not stop die with it (each runs in a session of its own,
with PR_SET_PDEATHSIG); the activator's own process group is killed last."""

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

BUILD = os.environ.get("KP_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
ASAN = BUILD.rstrip("/").endswith("-asan") or os.environ.get("KP_ASAN") == "1"
HOST = "helloworld-go.default.127.0.0.1.sslip.io"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def revision(name, target, cc=10, timeout=300, env=None, annotations=None):
    rev = {"name": name, "containerConcurrency": cc, "timeoutSeconds": timeout,
           "env": {"TARGET": target, **(env or {})}}
    if annotations:
        rev["annotations"] = annotations
    return rev


def helloworld_config(autoscaler=None, cc=10, split=(100, 0), timeout=300, env=None):
    """The demo service: 00001 says World, 00002 says Knative (tag candidate)."""
    return {
        "domain": "127.0.0.1.sslip.io",
        # Start at zero, as the demo does: the first request starts a pod.
        "autoscaler": {"initial-scale": "0", "allow-zero-initial-scale": "true",
                       **(autoscaler or {})},
        "services": [{
            "name": "helloworld-go", "namespace": "default",
            "revisions": [revision("helloworld-go-00001", "World", cc, timeout, env),
                          revision("helloworld-go-00002", "Knative", cc, timeout, env)],
            "traffic": [{"revisionName": "helloworld-go-00001", "percent": split[0]},
                        {"revisionName": "helloworld-go-00002", "percent": split[1],
                         "tag": "candidate"}],
        }],
    }


class Activator:
    def __init__(self, config, args=(), env=None, admin_host="127.0.0.1", admin_port=None,
                 output=None):
        """output: a file descriptor for its stdout and stderr (a pipe, say)
        instead of the log file."""
        self.port = free_port()
        self.admin_host = admin_host
        self.admin_port = admin_port or free_port()
        self.dir = tempfile.mkdtemp(prefix="kp-act-")
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        self.crashed = False
        self.log_path = os.path.join(self.dir, "activator.log")
        self.log = open(self.log_path, "wb")
        cmd = [os.path.join(BUILD, "activator"), "--config", self.config_path,
               "--listen", f"127.0.0.1:{self.port}", "--admin", f"{admin_host}:{self.admin_port}",
               *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log if output is None else output,
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"activator exited {self.proc.returncode}:\n{self.logs()}")
            try:
                socket.create_connection((admin_host, self.admin_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("activator did not listen:\n" + self.logs())

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_lines(self):
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path="/", host=HOST, headers=None, timeout=30, method="GET"):
        """(status, body text) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, headers={"Host": host, **(headers or {})})
            r = conn.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            conn.close()

    def status(self):
        conn = http.client.HTTPConnection(self.admin_host, self.admin_port, timeout=5)
        try:
            conn.request("GET", "/status")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def metrics(self):
        conn = http.client.HTTPConnection(self.admin_host, self.admin_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def revision_status(self, name):
        for svc in self.status()["services"]:
            for rev in svc["revisions"]:
                if rev["name"] == name:
                    return rev
        raise KeyError(name)

    def pod_processes(self):
        """PIDs of the activator's live child processes (the pods' processes)."""
        out = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout.split("\n")
        return [int(line.split()[0]) for line in out
                if line.strip() and not line.split()[1].startswith("Z")]

    def wait_for(self, predicate, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n"
                             f"status: {json.dumps(self.status())}")

    def stop(self, timeout=30):
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        code = self.proc.poll()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()
        return code


    def crash(self):
        """SIGKILL, so nothing is cleaned up (a lost node, an OOM kill)."""
        self.crashed = True
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def hey(url, host, concurrency, duration=None, requests=None, timeout=60):
    """Runs hey; returns {status: count} and the number of errors hey saw."""
    cmd = ["hey", "-c", str(concurrency), "-host", host, "-t", str(timeout)]
    cmd += ["-z", duration] if duration else ["-n", str(requests)]
    cmd += ["-o", "csv", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    codes = {}
    for line in out.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) >= 7 and fields[6].isdigit():
            codes[int(fields[6])] = codes.get(int(fields[6]), 0) + 1
    return codes


def stop_all(activators):
    """Stops each activator; fails if one exited badly or its log (where its
    pods' output lands too) has a sanitizer report."""
    problems = []
    for act in activators:
        code = act.stop()
        logs = act.logs()
        if (code != 0 and not act.crashed) or "Sanitizer" in logs or "runtime error:" in logs:
            problems.append(f"activator exit {code}:\n{logs[-4000:]}")
    assert not problems, "\n".join(problems)
