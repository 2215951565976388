"""A fake Kubernetes API server for the activator's `kubernetes` backend
tests. Stdlib only (plus the `openssl` CLI for its certificates).

It follows the real kube-apiserver where a client could notice (see
design.md, "Kubernetes API facts"):
- HTTPS with its own CA (or plain HTTP, like `kubectl proxy`);
- bearer tokens mapped to users with RBAC rules; a bad token is a 401
  `Unauthorized`, no token is `system:anonymous`, a missing permission is a
  403 with the real message shape;
- every error is a `Status` object;
- one global resourceVersion; every change bumps it and records a watch
  event;
- apps/v1 deployments and their autoscaling/v1 `scale` subresource (GET,
  PATCH with application/merge-patch+json);
- discovery.k8s.io/v1 EndpointSlices: list (with labelSelector) and watch
  (chunked JSON lines, bookmarks, `ERROR` 410 `Expired` event for a
  compacted resourceVersion, timeoutSeconds);
- coordination.k8s.io/v1 Leases: GET/POST/PUT/DELETE, 409 `AlreadyExists`
  and 409 `Conflict`.

Test controls: cut_watches(), down(seconds) / set_down(bool), fail_next(),
compact(); records: requests (every request, with the bearer token it
carried), open_watches() (the watches streaming now), scale_patches (every
PATCH of a scale), lease_writes.

    with FakeKube() as kube:
        token = kube.add_user("activator", activator_rules("default"))
        kube.add_deployment("default", "hello-00001-deployment", replicas=0)
        env = kube.in_cluster_env(token)     # KUBERNETES_SERVICE_*, KP_KUBE_SA_DIR
"""
import copy
import json
import os
import queue
import random
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import _socket

SCALE_PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale$")
DEPLOY_PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments(?:/([^/]+))?$")
SLICE_PATH = re.compile(
    r"^/apis/discovery\.k8s\.io/v1/namespaces/([^/]+)/endpointslices(?:/([^/]+))?$")
LEASE_PATH = re.compile(
    r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?$")
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MERGE_PATCH = "application/merge-patch+json"

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}

GROUP_OF = {"deployments": "apps", "endpointslices": "discovery.k8s.io",
            "leases": "coordination.k8s.io"}
KIND_OF = {"deployments": "Deployment", "endpointslices": "EndpointSlice", "leases": "Lease"}
API_VERSION_OF = {"deployments": "apps/v1", "endpointslices": "discovery.k8s.io/v1",
                  "leases": "coordination.k8s.io/v1"}


def activator_rules(namespace="default"):
    """The least-privilege RBAC rules of the activator (config/kubernetes):
    (verb, group, resource, namespace) tuples."""
    full = ("get", "list", "watch", "create", "update", "patch", "delete")
    return [("get", "apps", "deployments/scale", namespace),
            ("patch", "apps", "deployments/scale", namespace),
            ("get", "discovery.k8s.io", "endpointslices", namespace),
            ("list", "discovery.k8s.io", "endpointslices", namespace),
            ("watch", "discovery.k8s.io", "endpointslices", namespace),
            ("get", "coordination.k8s.io", "leases", namespace),
            ("create", "coordination.k8s.io", "leases", namespace),
            ("update", "coordination.k8s.io", "leases", namespace),
            # The Service API's reconciler.
            *[(v, "serving.knative.dev", r, namespace) for r in
              ("services", "configurations", "revisions", "routes") for v in full],
            *[(v, "serving.knative.dev", r + "/status", namespace) for r in
              ("services", "configurations", "revisions", "routes")
              for v in ("get", "update", "patch")],
            *[(v, "apps", "deployments", namespace) for v in full],
            *[(v, "", "services", namespace) for v in full],
            *[(v, "", "pods", namespace) for v in ("get", "list", "watch")],
            *[(v, "autoscaling", "horizontalpodautoscalers", namespace) for v in full],
            *[(v, "", "events", namespace) for v in ("create", "patch")],
            *[(v, "", "configmaps", namespace) for v in ("get", "list", "watch")]]


ALL_RULES = [("*", "*", "*", "*")]


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_obj(code, message, reason=None, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason or REASONS.get(code, "Unknown")}
    if details is not None:
        s["details"] = details
    s["code"] = code
    return s


class ApiError(Exception):
    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.status = status_obj(code, message, reason, details)


def qualified(resource):
    """deployments -> deployments.apps; a core resource stays bare."""
    base = resource.split("/")[0]
    group = GROUP_OF.get(base, "")
    return "%s.%s" % (base, group) if group else base


def not_found(resource, name):
    base = resource.split("/")[0]
    return ApiError(404, '%s "%s" not found' % (qualified(base), name), "NotFound",
                    {"name": name, "group": GROUP_OF.get(base, ""), "kind": base})


def conflict(resource, name):
    return ApiError(409, 'Operation cannot be fulfilled on %s "%s": the object has been '
                    'modified; please apply your changes to the latest version and try again'
                    % (qualified(resource), name), "Conflict",
                    {"name": name, "group": GROUP_OF.get(resource, ""), "kind": resource})


def parse_selector(sel):
    """Equality-based label selectors: a=b, a==b, a!=b, a, !a (comma-joined)."""
    reqs = []
    for part in filter(None, (p.strip() for p in (sel or "").split(","))):
        if "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append(("ne", k.strip(), v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            reqs.append(("eq", k.strip(), v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            reqs.append(("eq", k.strip(), v.strip()))
        elif part.startswith("!"):
            reqs.append(("absent", part[1:].strip(), None))
        else:
            reqs.append(("present", part, None))
    return reqs


def selector_matches(reqs, labels):
    labels = labels or {}
    for op, k, v in reqs:
        if op == "eq" and labels.get(k) != v:
            return False
        if op == "ne" and labels.get(k) == v:
            return False
        if op == "present" and k not in labels:
            return False
        if op == "absent" and k in labels:
            return False
    return True


def _rand(n, alphabet="bcdfghjklmnpqrstvwxz2456789"):
    return "".join(random.choice(alphabet) for _ in range(n))


def make_certs(directory, ips=("127.0.0.1",), dns=("localhost",)):
    """A CA and a server certificate (EC P-256) signed by it, for the given
    IP and DNS SANs. Returns (ca_file, cert_file, key_file)."""
    ca_key = os.path.join(directory, "ca.key")
    ca_crt = os.path.join(directory, "ca.crt")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    crt = os.path.join(directory, "server.crt")
    ext = os.path.join(directory, "server.ext")
    sans = ["IP:%s" % ip for ip in ips] + ["DNS:%s" % d for d in dns]
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % ",".join(sans))

    def run(*argv):
        subprocess.run(("openssl",) + argv, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2",
        "-subj", "/CN=fake-kube-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, fake):
        self.fake = fake
        super().__init__(addr, _Handler)

    def finish_request(self, request, client_address):
        fake = self.fake
        sock = request
        if fake._ssl_ctx is not None:
            try:
                request.settimeout(10)
                sock = fake._ssl_ctx.wrap_socket(request, server_side=True)
                sock.settimeout(None)
            except (OSError, ssl.SSLError):
                try:
                    request.close()
                except OSError:
                    pass
                return
        with fake._lock:
            fake._conns.add(sock)
        try:
            _Handler(sock, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with fake._lock:
                fake._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # clients that go away are normal here


class _WatchCut(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    # --- plumbing ---
    def _body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = b""
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send_json(self, code, obj):
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _dispatch(self):
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        method = self.command
        body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        auth = self.headers.get("Authorization")
        bearer = auth.split(None, 1) if auth else []
        entry = {"method": method, "path": self.path, "user": None, "status": None,
                 "time": time.time(),
                 "token": bearer[1].strip() if len(bearer) == 2 and
                 bearer[0].lower() == "bearer" else None}
        with fake._lock:
            fake.requests.append(entry)
        try:
            fail = fake._take_failure(method, self.path)
            if fail is not None:
                code, message = fail
                if code == 0:
                    entry["status"] = 0
                    self.close_connection = True
                    _socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
                    return
                raise ApiError(code, message or "fake-kube: injected failure")
            user = fake._authenticate(self.headers.get("Authorization"))
            entry["user"] = user
            code, obj = fake._route(self, user, method, path, q, body, entry)
            if obj is None:  # a watch stream already answered
                return
            entry["status"] = code
            self._send_json(code, obj)
        except ApiError as e:
            entry["status"] = e.code
            self._send_json(e.code, e.status)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    # --- watch streaming ---
    def start_stream(self):
        self.send_response(200)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def send_event(self, ev):
        data = (json.dumps(ev, separators=(",", ":")) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeKube:
    """A fake kube-apiserver in a background thread.

    FakeKube(plain_http=False, port=0, bookmark_interval=2.0,
             watch_timeout=None, san_ips=("127.0.0.1",))
    start() / stop(), or use as a context manager. Properties: url,
    ca_file, port, resource_version.
    """

    def __init__(self, plain_http=False, port=0, bookmark_interval=2.0, watch_timeout=None,
                 san_ips=("127.0.0.1",), host="127.0.0.1", history_limit=20000):
        self.plain_http = plain_http
        self.host = host
        self._port = port
        self.bookmark_interval = bookmark_interval  # None/0: no bookmarks
        self.watch_timeout = watch_timeout  # server-side cap on watch length (None: none)
        self.san_ips = tuple(san_ips)
        self.history_limit = history_limit  # events kept for watches; older ones compact
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._rv = 100
        self._oldest_rv = self._rv  # a watch from an RV below this is 410 Expired
        self._events = []  # (rv, resource, namespace, type, obj)
        self._objects = {}  # (resource, ns, name) -> object (with kind/apiVersion)
        self._deploy_status = {}  # (ns, name) -> status replicas override
        self._slice_names = {}  # (ns, service, portkey) -> slice name
        self._tokens = {}  # token -> user
        self._rules = {}  # user -> [(verb, group, resource, ns)]
        self._failures = []  # [ [n, code, message, method, path_contains] ]
        self._conns = set()
        self._watches = set()  # handlers streaming a watch
        self._cut_gen = 0
        self._down = False
        self._down_timer = None
        self._server = None
        self._thread = None
        self._ssl_ctx = None
        self._tmpdir = None
        self.ca_file = None
        self.cert_file = None
        self.key_file = None
        # {method, path, user, status, time, token (the bearer token sent, or
        # None)}; a watch's entry also has streaming: True while it is open
        self.requests = []
        self.scale_patches = []  # {user, time, namespace, name, replicas, status}
        self.lease_writes = []  # {user, time, method, namespace, name, holder, status}
        self.on_scale = None  # callable(ns, name, replicas), after spec.replicas changed
        self.scale_listeners = []  # more callables like on_scale
        self._cb_queue = queue.Queue()
        self._cb_thread = None
        if plain_http:
            # kubectl proxy: requests without a token act as the proxy's user
            self.anonymous_user = "kubectl-proxy"
            self._rules["kubectl-proxy"] = list(ALL_RULES)
        else:
            self.anonymous_user = "system:anonymous"

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._tmpdir = tempfile.mkdtemp(prefix="fake-kube-")
        if not self.plain_http:
            self.ca_file, self.cert_file, self.key_file = make_certs(self._tmpdir, self.san_ips)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert_file, self.key_file)
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_ctx = ctx
        self._cb_thread = threading.Thread(target=self._run_callbacks, daemon=True,
                                           name="fake-kube-callbacks")
        self._cb_thread.start()
        self._listen()
        return self

    def stop(self):
        if self._down_timer is not None:
            self._down_timer.cancel()
        self._close_listener()
        self._drop_connections()
        self._cb_queue.put(None)
        if self._cb_thread is not None:
            self._cb_thread.join(5)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _listen(self):
        self._server = _Server((self.host, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="fake-kube")
        self._thread.start()

    def _close_listener(self):
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()

    def _drop_connections(self):
        with self._lock:
            conns = list(self._conns)
            self._cut_gen += 1
            self._cond.notify_all()
        for c in conns:
            try:
                _socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        return "%s://%s:%d" % ("http" if self.plain_http else "https", self.host, self._port)

    @property
    def resource_version(self):
        with self._lock:
            return self._rv

    # ------------------------------------------------------------ auth
    def add_user(self, user, rules=(), token=None):
        """Adds (or extends) a user with RBAC rules [(verb, group, resource,
        namespace)] ("*" matches anything; subresources are
        "deployments/scale"); returns a new bearer token for it."""
        token = token or "tok-%s-%s" % (re.sub(r"[^a-z0-9]", "", user.lower())[:20],
                                        uuid.uuid4().hex[:16])
        with self._lock:
            self._tokens[token] = user
            self._rules.setdefault(user, []).extend(rules)
        return token

    add_token = add_user

    def set_rules(self, user, rules):
        with self._lock:
            self._rules[user] = list(rules)

    def grant(self, user, verb, group, resource, namespace="*"):
        with self._lock:
            self._rules.setdefault(user, []).append((verb, group, resource, namespace))

    def revoke_token(self, token):
        with self._lock:
            self._tokens.pop(token, None)

    def write_token_file(self, token, path=None):
        path = path or os.path.join(self._tmpdir, "token-%s" % uuid.uuid4().hex[:8])
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(token)
        os.replace(tmp, path)
        return path

    def make_sa_dir(self, token, namespace="default"):
        """A service-account directory like /var/run/secrets/kubernetes.io/
        serviceaccount: token, ca.crt (absent with plain_http), namespace."""
        d = tempfile.mkdtemp(prefix="sa-", dir=self._tmpdir)
        self.write_token_file(token, os.path.join(d, "token"))
        if self.ca_file:
            shutil.copy(self.ca_file, os.path.join(d, "ca.crt"))
        with open(os.path.join(d, "namespace"), "w") as f:
            f.write(namespace)
        return d

    def in_cluster_env(self, token, namespace="default"):
        """Environment for a client's in-cluster configuration."""
        return {"KUBERNETES_SERVICE_HOST": self.host,
                "KUBERNETES_SERVICE_PORT": str(self._port),
                "KP_KUBE_SA_DIR": self.make_sa_dir(token, namespace)}

    def _authenticate(self, header):
        if not header:
            return self.anonymous_user
        parts = header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise ApiError(401, "Unauthorized")
        with self._lock:
            user = self._tokens.get(parts[1].strip())
        if user is None:
            raise ApiError(401, "Unauthorized")
        return user

    def allowed(self, user, verb, group, resource, namespace):
        with self._lock:
            rules = list(self._rules.get(user, ()))
        for v, g, r, ns in rules:
            if v in ("*", verb) and g in ("*", group) and r in ("*", resource) and \
                    ns in ("*", namespace):
                return True
        return False

    def _authorize(self, user, verb, resource, namespace, name=None):
        base = resource.split("/")[0]
        group = GROUP_OF.get(base, "")
        if self.allowed(user, verb, group, resource, namespace):
            return
        who = '%s "%s"' % (qualified(base), name) if name else qualified(base)
        raise ApiError(403, '%s is forbidden: User "%s" cannot %s resource "%s" in API group '
                       '"%s" in the namespace "%s"' % (who, user, verb, resource, group,
                                                       namespace), "Forbidden",
                       {"name": name, "group": group, "kind": base} if name else
                       {"group": group, "kind": base})

    # ------------------------------------------------------------ test controls
    def fail_next(self, n, status=503, method=None, path_contains=None, message=None):
        """The next n requests (matching method / a path substring if given)
        fail with `status` as a Status object; status 0 drops the connection
        without an answer."""
        with self._lock:
            self._failures.append([n, status, message, method, path_contains])

    def _take_failure(self, method, path):
        with self._lock:
            for f in self._failures:
                n, code, message, m, pc = f
                if n > 0 and (m is None or m == method) and (pc is None or pc in path):
                    f[0] -= 1
                    if f[0] == 0:
                        self._failures.remove(f)
                    return code, message
        return None

    def cut_watches(self):
        """Abruptly closes every open watch stream (no final chunk)."""
        with self._lock:
            handlers = list(self._watches)
            self._cut_gen += 1
            self._cond.notify_all()
        for h in handlers:
            try:
                _socket.socket.shutdown(h.connection, socket.SHUT_RDWR)
            except OSError:
                pass
        return len(handlers)

    def watch_count(self):
        with self._lock:
            return len(self._watches)

    def open_watches(self):
        """Copies of the request entries of the watches streaming now (their
        response head sent): who opened them and with which token."""
        with self._lock:
            return [dict(e) for e in self.requests if e.get("streaming")]

    def set_down(self, down):
        """True: close the listening socket and every connection (clients
        get ECONNREFUSED); False: listen again on the same port."""
        with self._lock:
            was, self._down = self._down, down
        if down and not was:
            self._close_listener()
            self._drop_connections()
        elif was and not down:
            for _ in range(100):
                try:
                    self._listen()
                    break
                except OSError:
                    time.sleep(0.05)

    def down(self, seconds):
        """Refuse connections for `seconds`, then listen again."""
        if self._down_timer is not None:
            self._down_timer.cancel()
        self.set_down(True)
        self._down_timer = threading.Timer(seconds, self.set_down, (False,))
        self._down_timer.daemon = True
        self._down_timer.start()

    def compact(self, rv=None):
        """Drops the watch history up to rv (default: everything so far):
        a watch from an older resourceVersion gets an ERROR 410 Expired."""
        with self._lock:
            self._oldest_rv = self._rv if rv is None else int(rv)
            self._events = [e for e in self._events if e[0] > self._oldest_rv]

    # ------------------------------------------------------------ storage
    def _bump(self, resource, ns, etype, obj):
        """Stores a change (called with the lock held): new RV, event."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (resource, ns, obj["metadata"]["name"])
        if etype == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        self._events.append((self._rv, resource, ns, etype, copy.deepcopy(obj)))
        if self.history_limit and len(self._events) > self.history_limit:
            drop = len(self._events) - self.history_limit
            self._oldest_rv = self._events[drop - 1][0]
            del self._events[:drop]
        self._cond.notify_all()
        return obj

    def _new_meta(self, ns, name, labels=None):
        m = {"name": name, "namespace": ns, "uid": str(uuid.uuid4()), "resourceVersion": "",
             "generation": 1, "creationTimestamp": now_rfc3339()}
        if labels:
            m["labels"] = dict(labels)
        return m

    def get_object(self, resource, ns, name):
        with self._lock:
            o = self._objects.get((resource, ns, name))
            return copy.deepcopy(o) if o else None

    # ------------------------------------------------------------ deployments
    def add_deployment(self, ns, name, replicas=0, labels=None):
        with self._lock:
            obj = {"kind": "Deployment", "apiVersion": "apps/v1",
                   "metadata": self._new_meta(ns, name, labels),
                   "spec": {"replicas": replicas,
                            "selector": {"matchLabels": {"app": name}}},
                   "status": {}}
            self._bump("deployments", ns, "ADDED", obj)
        return self.get_scale(ns, name)

    def _scale_of(self, ns, name):
        d = self._objects.get(("deployments", ns, name))
        if d is None:
            raise not_found("deployments", name)
        spec = d["spec"]["replicas"]
        st = self._deploy_status.get((ns, name))
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": name, "namespace": ns, "uid": d["metadata"]["uid"],
                             "resourceVersion": d["metadata"]["resourceVersion"],
                             "creationTimestamp": d["metadata"]["creationTimestamp"]},
                "spec": {"replicas": spec},
                "status": {"replicas": spec if st is None else st,
                           "selector": "app=%s" % name}}

    def get_scale(self, ns, name):
        """The Scale object as the API would return it (None if absent)."""
        with self._lock:
            try:
                return self._scale_of(ns, name)
            except ApiError:
                return None

    def replicas(self, ns, name):
        s = self.get_scale(ns, name)
        return None if s is None else s["spec"]["replicas"]

    def set_deployment_status(self, ns, name, replicas=None):
        """Scale.status.replicas (the pods that exist); None: follow spec."""
        with self._lock:
            d = self._objects.get(("deployments", ns, name))
            if d is None:
                raise KeyError(name)
            if self._deploy_status.get((ns, name)) == replicas:
                return
            self._deploy_status[(ns, name)] = replicas
            d = copy.deepcopy(d)
            d["status"] = {} if replicas is None else {"replicas": replicas}
            self._bump("deployments", ns, "MODIFIED", d)

    def set_replicas(self, ns, name, replicas):
        """Changes spec.replicas as another writer would (no PATCH record);
        runs the scale hooks."""
        self._set_replicas(ns, name, replicas)

    def _set_replicas(self, ns, name, replicas):
        with self._lock:
            d = self._objects.get(("deployments", ns, name))
            if d is None:
                raise not_found("deployments", name)
            changed = d["spec"]["replicas"] != replicas
            if changed:
                d = copy.deepcopy(d)
                d["spec"]["replicas"] = replicas
                d["metadata"]["generation"] += 1
                self._bump("deployments", ns, "MODIFIED", d)
            scale = self._scale_of(ns, name)
        if changed:
            self._cb_queue.put((ns, name, replicas))
        return scale

    def _run_callbacks(self):
        while True:
            item = self._cb_queue.get()
            if item is None:
                return
            for cb in [self.on_scale] + list(self.scale_listeners):
                if cb is None:
                    continue
                try:
                    cb(*item)
                except Exception as e:  # noqa: BLE001 (a test hook must not kill us)
                    print("fake-kube: scale hook failed: %r" % e)

    def patches(self, ns=None, name=None, ok_only=True):
        with self._lock:
            return [p for p in self.scale_patches
                    if (ns is None or p["namespace"] == ns) and
                    (name is None or p["name"] == name) and
                    (not ok_only or p["status"] == 200)]

    # ------------------------------------------------------------ endpoint slices
    def set_endpoints(self, ns, service, endpoints, port=8012, ports=None):
        """Sets the service's endpoints; creates/updates/deletes its slices.

        endpoints: [(ip, ready, podname)] or dicts {ip, ready, pod,
        serving, terminating, ports}; ports (dict name -> number, default
        {"http": port}) is the port set of every endpoint without its own.
        Endpoints with different port sets go to different slices (as the
        real EndpointSlice controller does); each slice is named
        "{service}-xxxxx" and labelled kubernetes.io/service-name={service};
        its ports[] are sorted by name, so "http" comes first when present.
        Unchanged slices are not rewritten."""
        default_ports = dict(ports) if ports else {"http": port}
        groups = {}
        for e in endpoints:
            if isinstance(e, dict):
                d = dict(e)
            else:
                d = {"ip": e[0], "ready": e[1], "pod": e[2] if len(e) > 2 else None}
                if len(e) > 3 and e[3]:
                    d["ports"] = e[3]
            p = d.get("ports") or default_ports
            if isinstance(p, int):
                p = {"http": p}
            pkey = tuple(sorted(p.items()))
            ready = bool(d.get("ready", True))
            term = bool(d.get("terminating", False))
            ep = {"addresses": [d["ip"]],
                  "conditions": {"ready": ready and not term,
                                 "serving": bool(d.get("serving", ready)),
                                 "terminating": term}}
            if d.get("pod"):
                ep["targetRef"] = {"kind": "Pod", "namespace": ns, "name": d["pod"],
                                   "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, d["pod"]))}
            ep["nodeName"] = "fake-node"
            groups.setdefault(pkey, []).append(ep)
        with self._lock:
            existing = {k[2]: k for k in self._slice_names if k[:2] == (ns, service)}
            if not groups:
                # keep one slice, empty
                keep = next(iter(existing), tuple(sorted(default_ports.items())))
                groups = {keep: []}
            for pkey, eps in groups.items():
                key = (ns, service, pkey)
                name = self._slice_names.get(key)
                if name is None:
                    name = "%s-%s" % (service, _rand(5))
                    self._slice_names[key] = name
                old = self._objects.get(("endpointslices", ns, name))
                port_list = [{"name": n, "protocol": "TCP", "port": p} for n, p in pkey]
                if old is not None:
                    if old["endpoints"] == eps and old["ports"] == port_list:
                        continue
                    obj = copy.deepcopy(old)
                    obj["endpoints"] = eps
                    obj["ports"] = port_list
                    obj["metadata"]["generation"] += 1
                    self._bump("endpointslices", ns, "MODIFIED", obj)
                else:
                    obj = {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                           "metadata": self._new_meta(ns, name, {
                               SERVICE_NAME_LABEL: service,
                               "endpointslice.kubernetes.io/managed-by":
                                   "endpointslice-controller.k8s.io"}),
                           "addressType": "IPv4", "endpoints": eps, "ports": port_list}
                    obj["metadata"]["generateName"] = service + "-"
                    obj["metadata"]["ownerReferences"] = [{
                        "apiVersion": "v1", "kind": "Service", "name": service,
                        "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, ns + "/" + service)),
                        "controller": True, "blockOwnerDeletion": True}]
                    self._bump("endpointslices", ns, "ADDED", obj)
            for pkey in [k for k in existing if k not in groups]:
                key = (ns, service, pkey)
                name = self._slice_names.pop(key)
                old = self._objects.get(("endpointslices", ns, name))
                if old is not None:
                    self._bump("endpointslices", ns, "DELETED", copy.deepcopy(old))

    def delete_endpoints(self, ns, service):
        """Deletes every slice of the service (as when the Service goes)."""
        with self._lock:
            for key in [k for k in self._slice_names if k[:2] == (ns, service)]:
                name = self._slice_names.pop(key)
                old = self._objects.get(("endpointslices", ns, name))
                if old is not None:
                    self._bump("endpointslices", ns, "DELETED", copy.deepcopy(old))

    def slices(self, ns, service):
        with self._lock:
            return [copy.deepcopy(o) for (r, n, _), o in sorted(self._objects.items())
                    if r == "endpointslices" and n == ns and
                    o["metadata"]["labels"].get(SERVICE_NAME_LABEL) == service]

    def endpoints(self, ns, service):
        """[(ip, ready, pod, {portname: port})] over all the service's slices."""
        out = []
        for s in self.slices(ns, service):
            ports = {p["name"]: p["port"] for p in s["ports"]}
            for e in s["endpoints"]:
                out.append((e["addresses"][0], e["conditions"].get("ready", True),
                            (e.get("targetRef") or {}).get("name"), ports))
        return out

    # ------------------------------------------------------------ leases
    def get_lease(self, ns, name):
        return self.get_object("leases", ns, name)

    def put_lease(self, ns, name, spec):
        """Writes a lease directly (as another client would)."""
        with self._lock:
            old = self._objects.get(("leases", ns, name))
            obj = copy.deepcopy(old) if old else {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": self._new_meta(ns, name)}
            obj["spec"] = dict(spec)
            return copy.deepcopy(self._bump("leases", ns, "MODIFIED" if old else "ADDED", obj))

    @staticmethod
    def _lease_spec(body):
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise ApiError(400, "spec: expected an object")
        out = {}
        for k in ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
                  "leaseTransitions"):
            if spec.get(k) is None:
                continue
            v = spec[k]
            if k in ("acquireTime", "renewTime"):
                if not isinstance(v, str) or not MICROTIME.match(v):
                    raise ApiError(400, 'Lease in version "v1" cannot be handled as a Lease: '
                                   'parsing time "%s" as "2006-01-02T15:04:05.000000Z07:00": '
                                   'cannot parse' % v)
            elif k in ("leaseDurationSeconds", "leaseTransitions"):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ApiError(400, 'Lease in version "v1" cannot be handled as a Lease: '
                                   'json: cannot unmarshal %s into Go struct field '
                                   'LeaseSpec.spec.%s of type int32' % (type(v).__name__, k))
            elif not isinstance(v, str):
                raise ApiError(400, 'Lease in version "v1" cannot be handled as a Lease: '
                               'json: cannot unmarshal into Go struct field '
                               'LeaseSpec.spec.%s of type string' % k)
            out[k] = v
        return out

    # ------------------------------------------------------------ routing
    def _route(self, h, user, method, path, q, body, entry):
        m = SCALE_PATH.match(path)
        if m:
            return self._scale_req(user, method, m.group(1), m.group(2), h, body)
        m = SLICE_PATH.match(path)
        if m:
            return self._slice_req(h, user, method, m.group(1), m.group(2), q, entry)
        m = LEASE_PATH.match(path)
        if m:
            return self._lease_req(user, method, m.group(1), m.group(2), body)
        m = DEPLOY_PATH.match(path)
        if m and m.group(2) and method == "GET":
            ns, name = m.groups()
            self._authorize(user, "get", "deployments", ns, name)
            o = self.get_object("deployments", ns, name)
            if o is None:
                raise not_found("deployments", name)
            return 200, o
        if path == "/version" and method == "GET":
            return 200, {"major": "1", "minor": "29", "gitVersion": "v1.29.0-fake",
                         "platform": "linux/amd64"}
        raise ApiError(404, "the server could not find the requested resource", "NotFound", {})

    @staticmethod
    def _method_not_allowed():
        return ApiError(405, "the server does not allow this method on the requested resource",
                        "MethodNotAllowed", {})

    def _scale_req(self, user, method, ns, name, h, body):
        if method == "GET":
            self._authorize(user, "get", "deployments/scale", ns, name)
            with self._lock:
                return 200, self._scale_of(ns, name)
        if method != "PATCH":
            if method == "PUT":
                self._authorize(user, "update", "deployments/scale", ns, name)
            raise self._method_not_allowed()
        rec = {"user": user, "time": time.time(), "monotonic": time.monotonic(),
               "namespace": ns, "name": name, "replicas": None, "status": None}
        with self._lock:
            self.scale_patches.append(rec)
        try:
            self._authorize(user, "patch", "deployments/scale", ns, name)
            ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != MERGE_PATCH:
                raise ApiError(415, "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml",
                               "UnsupportedMediaType")
            try:
                patch = json.loads(body or b"null")
            except ValueError as e:
                raise ApiError(400, "error decoding patch: %s" % e, "BadRequest")
            if not isinstance(patch, dict):
                raise ApiError(400, "json: cannot unmarshal into Go value of type "
                               "map[string]interface {}", "BadRequest")
            with self._lock:
                cur = self._scale_of(ns, name)
            spec = patch.get("spec") or {}
            rv = (patch.get("metadata") or {}).get("resourceVersion")
            if rv is not None and str(rv) != cur["metadata"]["resourceVersion"]:
                raise conflict("deployments", name)
            replicas = spec.get("replicas", cur["spec"]["replicas"])
            if not isinstance(replicas, int) or isinstance(replicas, bool):
                raise ApiError(400, 'Scale in version "v1" cannot be handled as a Scale: '
                               'json: cannot unmarshal %s into Go struct field '
                               'ScaleSpec.spec.replicas of type int32' % type(replicas).__name__,
                               "BadRequest")
            if replicas < 0:
                raise ApiError(422, 'Scale.autoscaling "%s" is invalid: spec.replicas: Invalid '
                               'value: %d: must be greater than or equal to 0' % (name, replicas),
                               "Invalid", {"name": name, "group": "autoscaling", "kind": "Scale",
                                           "causes": [{"reason": "FieldValueInvalid",
                                                       "field": "spec.replicas"}]})
            rec["replicas"] = replicas
            scale = self._set_replicas(ns, name, replicas)
            rec["status"] = 200
            return 200, scale
        except ApiError as e:
            rec["status"] = e.code
            raise

    def _slice_req(self, h, user, method, ns, name, q, entry):
        if method != "GET":
            raise self._method_not_allowed()
        if name:
            self._authorize(user, "get", "endpointslices", ns, name)
            o = self.get_object("endpointslices", ns, name)
            if o is None:
                raise not_found("endpointslices", name)
            return 200, o
        watch = q.get("watch", "").lower() in ("1", "true")
        self._authorize(user, "watch" if watch else "list", "endpointslices", ns)
        sel = parse_selector(q.get("labelSelector", ""))
        if not watch:
            rv = q.get("resourceVersion", "")
            if q.get("resourceVersionMatch") == "Exact" and rv:
                with self._lock:
                    if int(rv) < self._oldest_rv:
                        raise ApiError(410, "The resourceVersion for the provided list is too "
                                       "old.", "Expired")
            with self._lock:
                items = []
                for (r, n, _), o in sorted(self._objects.items()):
                    if r == "endpointslices" and n == ns and \
                            selector_matches(sel, o["metadata"].get("labels")):
                        it = copy.deepcopy(o)
                        del it["kind"], it["apiVersion"]  # as in real lists
                        items.append(it)
                return 200, {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                             "metadata": {"resourceVersion": str(self._rv)}, "items": items}
        self._watch(h, ns, sel, q, entry)
        return 200, None

    def _watch(self, h, ns, sel, q, entry):
        rv_param = q.get("resourceVersion", "")
        bookmarks = q.get("allowWatchBookmarks", "").lower() in ("1", "true")
        timeout = None
        if q.get("timeoutSeconds"):
            timeout = float(q["timeoutSeconds"])
        if self.watch_timeout is not None:
            timeout = self.watch_timeout if timeout is None else min(timeout, self.watch_timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        entry["status"] = 200

        def matches(resource, n, obj):
            return resource == "endpointslices" and n == ns and \
                selector_matches(sel, obj["metadata"].get("labels"))

        with self._lock:
            gen = self._cut_gen
            initial = []
            if rv_param in ("", "0"):
                # start at the current state: synthetic ADDED events
                for (r, n, _), o in sorted(self._objects.items()):
                    if matches(r, n, o):
                        initial.append({"type": "ADDED", "object": copy.deepcopy(o)})
                cursor = self._rv
            else:
                try:
                    cursor = int(rv_param)
                except ValueError:
                    raise ApiError(400, 'invalid resource version "%s"' % rv_param,
                                   "BadRequest")
                if cursor < self._oldest_rv:
                    initial = [{"type": "ERROR", "object": status_obj(
                        410, "too old resource version: %d (%d)" % (cursor, self._oldest_rv),
                        "Expired")}]
                    cursor = None
            self._watches.add(h)
        try:
            h.start_stream()
            entry["streaming"] = True
            for ev in initial:
                h.send_event(ev)
            if cursor is None:
                h.end_stream()
                return
            last_bookmark = time.monotonic()
            while True:
                with self._lock:
                    while True:
                        if self._cut_gen != gen:
                            raise _WatchCut()
                        evs = [(rv, t, o) for rv, r, n, t, o in self._events
                               if rv > cursor and matches(r, n, o)]
                        if evs:
                            cursor = evs[-1][0]
                            break
                        now = time.monotonic()
                        if deadline is not None and now >= deadline:
                            break
                        if bookmarks and self.bookmark_interval and \
                                now - last_bookmark >= self.bookmark_interval:
                            break
                        waits = [0.5]
                        if deadline is not None:
                            waits.append(deadline - now)
                        if bookmarks and self.bookmark_interval:
                            waits.append(last_bookmark + self.bookmark_interval - now)
                        self._cond.wait(max(0.001, min(waits)))
                    bm_rv = self._rv
                for _, t, o in evs:
                    h.send_event({"type": t, "object": o})
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    h.end_stream()
                    return
                if not evs and bookmarks and self.bookmark_interval and \
                        now - last_bookmark >= self.bookmark_interval:
                    h.send_event({"type": "BOOKMARK", "object": {
                        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                        "metadata": {"resourceVersion": str(bm_rv),
                                     "creationTimestamp": None},
                        "addressType": "", "endpoints": None, "ports": None}})
                    cursor = max(cursor, bm_rv)
                    last_bookmark = now
        except (_WatchCut, OSError, ssl.SSLError):
            h.close_connection = True
            try:
                _socket.socket.shutdown(h.connection, socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            with self._lock:
                self._watches.discard(h)
                entry["streaming"] = False

    def _lease_req(self, user, method, ns, name, body):
        res = "leases"
        if method == "GET":
            if name:
                self._authorize(user, "get", res, ns, name)
                o = self.get_object(res, ns, name)
                if o is None:
                    raise not_found(res, name)
                return 200, o
            self._authorize(user, "list", res, ns)
            with self._lock:
                items = []
                for (r, n, _), o in sorted(self._objects.items()):
                    if r == res and n == ns:
                        it = copy.deepcopy(o)
                        del it["kind"], it["apiVersion"]
                        items.append(it)
                return 200, {"kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1",
                             "metadata": {"resourceVersion": str(self._rv)}, "items": items}
        if method == "DELETE" and name:
            self._authorize(user, "delete", res, ns, name)
            with self._lock:
                o = self._objects.get((res, ns, name))
                if o is None:
                    raise not_found(res, name)
                self._bump(res, ns, "DELETED", copy.deepcopy(o))
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success",
                         "details": {"name": name, "group": GROUP_OF[res], "kind": res,
                                     "uid": o["metadata"]["uid"]}}
        if method not in ("POST", "PUT") or (method == "POST" and name) or \
                (method == "PUT" and not name):
            raise self._method_not_allowed()
        rec = {"user": user, "time": time.time(), "monotonic": time.monotonic(),
               "method": method, "namespace": ns, "name": None, "holder": None, "status": None}
        with self._lock:
            self.lease_writes.append(rec)
        try:
            self._authorize(user, "create" if method == "POST" else "update", res, ns, name)
            try:
                obj = json.loads(body or b"null")
            except ValueError as e:
                raise ApiError(400, 'Lease in version "v1" cannot be handled as a Lease: %s' % e)
            if not isinstance(obj, dict):
                raise ApiError(400, 'Lease in version "v1" cannot be handled as a Lease: '
                               'expected an object')
            meta = obj.get("metadata") or {}
            oname = meta.get("name") or ""
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError(400, "the namespace of the provided object does not match the "
                               "namespace sent on the request")
            if method == "PUT" and oname != name:
                raise ApiError(400, "the name of the object (%s) does not match the name on "
                               "the URL (%s)" % (oname, name))
            if method == "POST" and not oname:
                raise ApiError(422, "Lease.coordination.k8s.io \"\" is invalid: metadata.name: "
                               "Required value: name or generateName is required", "Invalid")
            rec["name"] = oname
            spec = self._lease_spec(obj)
            rec["holder"] = spec.get("holderIdentity")
            with self._lock:
                old = self._objects.get((res, ns, oname))
                if method == "POST" and old is not None:
                    raise ApiError(409, 'leases.coordination.k8s.io "%s" already exists' % oname,
                                   "AlreadyExists",
                                   {"name": oname, "group": GROUP_OF[res], "kind": res})
                if old is not None:
                    rv = meta.get("resourceVersion")
                    if rv not in (None, "") and str(rv) != old["metadata"]["resourceVersion"]:
                        raise conflict(res, oname)
                    new = copy.deepcopy(old)
                    new["spec"] = spec
                    if meta.get("labels") is not None:
                        new["metadata"]["labels"] = meta["labels"]
                    self._bump(res, ns, "MODIFIED", new)
                    code = 200
                else:
                    # POST, or PUT of a missing lease (leases allow create on update)
                    new = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                           "metadata": self._new_meta(ns, oname, meta.get("labels")),
                           "spec": spec}
                    self._bump(res, ns, "ADDED", new)
                    code = 201
                rec["status"] = code
                return code, copy.deepcopy(new)
        except ApiError as e:
            rec["status"] = e.code
            raise
