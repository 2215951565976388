"""A crowd of held requests: a service whose pod never becomes ready, and
many connections that each send one request and wait. Also the process
numbers the tests that use it measure."""
import resource
import socket

from activator_harness import HOST, revision

NEVER_READY_REVISION = "helloworld-go-00001"
NEVER_READY_CONFIG = {
    "domain": "127.0.0.1.sslip.io",
    "autoscaler": {"initial-scale": "0", "allow-zero-initial-scale": "true"},
    "services": [{
        "name": "helloworld-go", "namespace": "default",
        # Its app starts in an hour: every request stays held.
        "revisions": [revision(NEVER_READY_REVISION, "World", timeout=600,
                               env={"STARTUP_DELAY_MS": "3600000"},
                               annotations={"autoscaling.knative.dev/max-scale": "1"})],
        "traffic": [{"revisionName": NEVER_READY_REVISION, "percent": 100}],
    }],
}
REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: crowd\r\n\r\n".encode()


def open_crowd(port, n, payload=REQUEST):
    """n connections, each having sent payload."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(payload)
        socks.append(s)
    return socks


def close_crowd(socks):
    for s in socks:
        s.close()


def raise_nofile(n):
    """Whether this process (and what it starts) may open n descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= n


def status_kib(pid, field):
    """A /proc/PID/status field in KiB (VmRSS, VmData...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")
