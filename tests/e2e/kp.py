"""Helpers for the end-to-end tests: free ports, processes that are always
cleaned up, waiting for ports, small HTTP clients over real sockets, and a
Pod (helloworld + queue-proxy with Knative's environment). Reusable by the
activator tests. Stdlib only."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("KP_BUILD") or os.path.join(REPO, "build")
ASAN = BUILD.rstrip("/").endswith("-asan") or os.environ.get("KP_ASAN") == "1"
# Sizes and loads scale down under the sanitizers (several times slower).
SLOW = 3.0 if ASAN else 1.0


def binary(name):
    return os.path.join(BUILD, name)


def have_helloworld():
    return os.environ.get("KP_FAKE_APP") != "1"


def app_command():
    """The sample app: build/helloworld, or with KP_FAKE_APP=1 the Python
    stand-in (fakeapp.py) written to the same spec, to tell a queue-proxy
    bug from a helloworld one."""
    if not have_helloworld():
        return [sys.executable, os.path.join(HERE, "fakeapp.py")]
    if not os.path.exists(binary("helloworld")):
        raise AssertionError("%s missing: run `make %s` (or KP_FAKE_APP=1 for the Python "
                             "stand-in)" % (binary("helloworld"),
                                            os.path.relpath(binary("helloworld"), REPO)))
    return [binary("helloworld")]


_used_ports = set()


def free_port():
    """A port nobody listens on now (and that this run did not hand out)."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port")


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Proc:
    """A started process in its own process group, with stdout and stderr in
    files (never pipes that could fill)."""

    def __init__(self, name, argv, env, tmpdir):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(tmpdir, "%s.%d.stdout" % (name, id(self)))
        self.err_path = os.path.join(tmpdir, "%s.%d.stderr" % (name, id(self)))
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.p = subprocess.Popen(argv, env=env, stdout=self._out, stderr=self._err,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.p.pid

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def poll(self):
        return self.p.poll()

    def wait(self, timeout):
        return self.p.wait(timeout)

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def describe(self):
        return "%s (pid %d, exit %s)\n--- stderr ---\n%s\n--- stdout ---\n%s" % (
            self.name, self.pid, self.p.poll(), self.stderr()[-4000:], self.stdout()[-2000:])

    def kill(self):
        """SIGKILL the whole group; safe to call twice."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._out.close()
        self._err.close()

    def vm_hwm_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def sanitizer_errors(self):
        err = self.stderr()
        return [l for l in err.splitlines()
                if "ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l
                or "runtime error:" in l]


class Procs:
    """Every process a test starts; kill_all() ends them all."""

    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="kp-e2e-")
        self.procs = []

    def start(self, name, argv, env):
        full = dict(os.environ)
        full.update({k: str(v) for k, v in env.items() if v is not None})
        for k, v in env.items():
            if v is None:
                full.pop(k, None)
        p = Proc(name, argv, full, self.tmpdir)
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in reversed(self.procs):
            p.kill()

    def remove_logs(self):
        """Deletes the processes' output files (KP_KEEP_LOGS=1 keeps them)."""
        if os.environ.get("KP_KEEP_LOGS") != "1":
            import shutil
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def wait_port(port, proc=None, timeout=10.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited before port %d accepted:\n%s"
                                 % (port, proc.describe()))
        time.sleep(0.02)
    raise AssertionError("port %d not accepting after %.1fs%s" % (
        port, timeout * SLOW, ("\n" + proc.describe()) if proc else ""))


def wait_until(fn, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * SLOW, what))
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    @property
    def text(self):
        return self.body.decode(errors="replace")

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


def request(port, path="/", method="GET", headers=None, body=None, timeout=10.0,
            host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=timeout * SLOW)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        c.close()


def raw(port, data, timeout=5.0, host="127.0.0.1", half_close=False):
    """Sends raw bytes, reads until the peer closes or timeout; returns bytes."""
    s = socket.create_connection((host, port), timeout=timeout * SLOW)
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(raw_response):
    line = raw_response.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def body_of(raw_response):
    return raw_response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw_response else b""


def run_in_thread(fn, *args, **kw):
    """Starts fn in a thread; returns a getter that joins and returns its
    result (or re-raises its exception)."""
    box = {}

    def target():
        try:
            box["v"] = fn(*args, **kw)
        except BaseException as e:  # noqa: B902
            box["e"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def get(timeout=30):
        t.join(timeout * SLOW)
        if t.is_alive():
            raise AssertionError("thread still running")
        if "e" in box:
            raise box["e"]
        return box["v"]

    get.thread = t
    return get


def knative_env(**over):
    """Knative's queue-proxy environment, as a revision pod sets it."""
    env = {
        "SERVING_NAMESPACE": "default",
        "SERVING_CONFIGURATION": "",
        "SERVING_REVISION": "hello-00001",
        "SERVING_POD": "hello-pod",
        "SERVING_POD_IP": "127.0.0.1",
        "SERVING_SERVICE": "hello",
        "QUEUE_SERVING_PORT": free_port(),
        "QUEUE_SERVING_TLS_PORT": free_port(),
        "USER_PORT": free_port(),
        "CONTAINER_CONCURRENCY": "0",
        "REVISION_TIMEOUT_SECONDS": "300",
        "SERVING_LOGGING_CONFIG": "",
        "SERVING_LOGGING_LEVEL": "",
        "SERVING_REQUEST_LOG_TEMPLATE": "",
        "SERVING_ENABLE_REQUEST_LOG": "false",
        "SERVING_ENABLE_PROBE_REQUEST_LOG": "false",
        "SERVING_REQUEST_METRICS_BACKEND": "",
        "TRACING_CONFIG_BACKEND": "none",
        "ENABLE_PROFILING": "false",
        "KP_ADMIN_PORT": free_port(),
        "KP_METRICS_PORT": free_port(),
        "KP_USER_METRICS_PORT": free_port(),
        "KP_DRAIN_QUIET_PERIOD_SECONDS": "0",
    }
    env.update(over)
    return env


class Pod:
    """helloworld on USER_PORT + queue-proxy in front of it."""

    def __init__(self, procs, app=True, app_env=None, wait_ready=True, **qp_env):
        self.procs = procs
        self.env = knative_env()
        # "$USER_PORT" in a value (e.g. SERVING_READINESS_PROBE) is the app's port
        self.env.update({k: (v.replace("$USER_PORT", str(self.env["USER_PORT"]))
                             if isinstance(v, str) else v) for k, v in qp_env.items()})
        self.qp_port = int(self.env["QUEUE_SERVING_PORT"])
        self.user_port = int(self.env["USER_PORT"])
        self.admin_port = int(self.env["KP_ADMIN_PORT"])
        self.metrics_port = int(self.env["KP_METRICS_PORT"])
        self.user_metrics_port = int(self.env["KP_USER_METRICS_PORT"])
        self.app = None
        if app:
            aenv = {"PORT": self.user_port, "HOST": "127.0.0.1"}
            aenv.update(app_env or {})
            self.app = procs.start("helloworld", app_command(), aenv)
        self.qp = procs.start("queue-proxy", [binary("queue-proxy")], self.env)
        wait_port(self.qp_port, self.qp)
        if app and wait_ready:
            wait_port(self.user_port, self.app)

    # traffic through the queue-proxy
    def get(self, path="/", headers=None, **kw):
        return request(self.qp_port, path, "GET", headers, **kw)

    def request(self, method, path="/", headers=None, body=None, **kw):
        return request(self.qp_port, path, method, headers, body, **kw)

    # the app directly
    def app_stats(self):
        return json.loads(request(self.user_port, "/stats").body)

    def app_reset(self):
        r = request(self.user_port, "/stats/reset", "POST", body=b"")
        assert r.status == 200, r

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.qp_port, path)

    def stop(self, timeout=10):
        """SIGTERM the queue-proxy and wait for it to exit; returns exit code."""
        self.qp.signal(signal.SIGTERM)
        return self.qp.wait(timeout * SLOW)


def hey(url, c, n=None, z=None, headers=None, timeout=60):
    """Runs hey; returns (status histogram dict, output)."""
    argv = ["hey", "-c", str(c)]
    if n:
        argv += ["-n", str(n)]
    if z:
        argv += ["-z", z]
    for h in headers or []:
        argv += ["-H", h]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * SLOW).stdout
    codes = {}
    in_dist = False
    for line in out.splitlines():
        if line.startswith("Status code distribution"):
            in_dist = True
            continue
        if in_dist:
            line = line.strip()
            if line.startswith("[") and "]" in line:
                code = int(line[1:line.index("]")])
                cnt = int(line.split()[1])
                codes[code] = cnt
            elif line:
                in_dist = False
    return codes, out


def assert_text(r, status, text):
    """Exact status and body; a body may end with one "\\n" (Go's http.Error,
    which Knative uses, appends it)."""
    body = r.body if isinstance(r, Response) else body_of(r)
    st = r.status if isinstance(r, Response) else status_of(r)
    assert (st, body) in ((status, text.encode()), (status, text.encode() + b"\n")), \
        "want %d %r, got %d %r" % (status, text, st, body[:300])


class WebSocket:
    """A minimal RFC 6455 client over a raw socket (text frames, masked)."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, port, path="/ws", headers=None, timeout=5.0, host="127.0.0.1"):
        import base64
        import hashlib
        key = base64.b64encode(os.urandom(16))
        self.expected_accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest()).decode()
        self.sock = socket.create_connection((host, port), timeout=timeout * SLOW)
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n%s\r\n"
                           % (path, host, port, key.decode(), extra)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        self.status = status_of(head)
        self.head = lines
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed after %d of %d bytes" % (len(self.buf), n))
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, payload, opcode=1):
        if isinstance(payload, str):
            payload = payload.encode()
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            hdr += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def recv(self):
        """Returns (opcode, payload) of the next frame."""
        h = self._recv_exact(2)
        n = h[1] & 0x7F
        if n == 126:
            n = int.from_bytes(self._recv_exact(2), "big")
        elif n == 127:
            n = int.from_bytes(self._recv_exact(8), "big")
        mask = self._recv_exact(4) if h[1] & 0x80 else None
        data = self._recv_exact(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return h[0] & 0x0F, data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
