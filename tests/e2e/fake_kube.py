"""A fake Kubernetes API server for the activator's `kubernetes` backend
and reconciler tests. Stdlib only (plus the `openssl` CLI for its
certificates, and python3-yaml for CRD files).

It follows the real kube-apiserver where a client could notice (see
design.md, "Kubernetes API facts"); it may be stricter, never more lenient:
- HTTPS with its own CA (or plain HTTP, like `kubectl proxy`);
- bearer tokens mapped to users with RBAC rules; a bad token is a 401
  `Unauthorized`, no token is `system:anonymous`, a missing permission is a
  403 with the real message shape, checked before routing (a resource that
  is not served is a 403 for a user without the permission, a 404 for the
  others); a subresource is its own RBAC resource ("services/status" in
  group serving.knative.dev, "deployments/scale" in apps);
- every error is a `Status` object;
- one global resourceVersion; every change bumps it and records a watch
  event; a write that changes nothing stores nothing (same resourceVersion,
  no event), as etcd3's store does.

Resources (kube_api.builtin_resources; `kubectl api-resources` works):
core v1 namespaces, services, pods, configmaps, events; apps/v1
deployments (+ /status, + the autoscaling/v1 `scale`); autoscaling/v2
horizontalpodautoscalers; discovery.k8s.io/v1 endpointslices;
coordination.k8s.io/v1 leases; apiextensions.k8s.io/v1
customresourcedefinitions. serving.knative.dev/v1 services (ksvc),
configurations, revisions and routes are served only once their CRDs are
installed (install_crds(), or POSTing CustomResourceDefinitions): until
then /apis/serving.knative.dev/... is a 404 "the server could not find
the requested resource". Discovery: /api, /api/v1, /apis, /apis/{g},
/apis/{g}/{v}; no /openapi (kubectl needs --validate=false).

One generic handler serves /api/v1/[namespaces/{ns}/]{plural}[/{name}
[/status]] and /apis/{g}/{v}/[namespaces/{ns}/]{plural}[/{name}[/status]]
(without a namespace: list and watch across namespaces):
- GET; LIST with labelSelector (k=v, k==v, k!=v, k, !k, k in (a,b),
  k notin (a,b)) and fieldSelector (metadata.name, metadata.namespace;
  pods also spec.nodeName, status.phase), resourceVersionMatch=Exact on a
  compacted version is a 410; items of built-in kinds carry no
  kind/apiVersion, custom resources do; kubectl's Table (Accept
  as=Table) for custom resources, with the CRD's printer columns;
- WATCH of any resource (chunked JSON lines, bookmarks, an `ERROR` 410
  `Expired` event for a compacted resourceVersion, timeoutSeconds; with a
  selector, an object that starts or stops matching is ADDED or DELETED);
- POST: 201; 409 AlreadyExists ('services.serving.knative.dev "x" already
  exists'); generateName; 404 for a missing namespace; 500 when
  metadata.resourceVersion is set; 422 for a bad name and for the
  validation below;
- PUT: metadata.resourceVersion is the precondition (409 Conflict
  'Operation cannot be fulfilled on services.serving.knative.dev "x": the
  object has been modified; please apply your changes to the latest
  version and try again'); without one, built-in kinds update
  unconditionally and custom resources answer 422 ("must be specified
  for an update"); a missing object is a 404 (leases: created);
- PATCH: application/merge-patch+json (RFC 7386),
  application/json-patch+json (RFC 6902), strategic merge patch on
  built-in kinds only (custom resources answer 415), anything else 415
  (server-side apply included); a resourceVersion in the patch is a
  precondition;
- DELETE: 200 with a Status (pods: with the pod), 404 when missing;
  propagationPolicy Background (the default: the garbage collector
  deletes dependents through metadata.ownerReferences, recursively,
  `gc_delay` seconds later, each with its own DELETED event; a dependent
  with another live owner only loses the reference), Foreground
  (dependents first) or Orphan (dependents lose the reference);
  preconditions; a pod bound to a node only gets deletionTimestamp (the
  kubelet removes it), gracePeriodSeconds=0 removes it at once.
- metadata: uid, creationTimestamp, resourceVersion on every write;
  generation (CRDs, deployments, endpointslices) 1 on create and +1 when
  anything but metadata (and status, for kinds with the status
  subresource) changes; /status writes change only status; writes of the
  main resource ignore status (for kinds with the status subresource),
  which is cleared on create;
- the defaults and checks a reconciler meets (kube_api.apply_defaults,
  validate): Deployments (replicas 1, strategy, progressDeadlineSeconds
  600, revisionHistoryLimit, pod spec and container defaults; selector
  required, matching the template, immutable), Services (clusterIP
  allocated and kept, targetPort = port, protocol TCP, type ClusterIP...;
  DNS-1035 names), Pods, HPAs (minReplicas 1, default CPU metric).
Not modelled: managedFields, finalizers (besides pods' graceful
deletion), admission webhooks (Knative's defaulting and validation),
OpenAPI schema pruning, ReplicaSets, deletecollection.

Test controls: cut_watches(), down(seconds) / set_down(bool), fail_next(),
compact(); records: requests (every request, with the bearer token it
carried, and verb/resource/subresource/namespace/name/index),
open_watches() (the watches streaming now), scale_patches (every PATCH of
a scale), lease_writes.

In-process helpers (API semantics, no RBAC, not in `requests`; resource =
key "services.serving.knative.dev", plural "deployments" (core wins:
"services" is the core Service), short name "ksvc", or kind; errors raise
ApiError with .code and .status):
    install_crds(path=None) -> [resource keys]; served(resource) -> bool
    add_namespace(name) -> Namespace
    get(resource, ns, name) -> obj or None
    list(resource, ns=None, selector=None) -> [obj]  (selector: str or dict)
    create(obj, ns=None) -> obj            (POST; resource from apiVersion/kind)
    update(obj, subresource=None) -> obj   (PUT, with its resourceVersion)
    apply(obj) -> obj                      (create, or update like kubectl apply)
    patch(resource, ns, name, patch, subresource=None,
          content_type=MERGE_PATCH) -> obj
    set_status(resource, ns, name, status) -> obj   (as a controller would)
    delete(resource, ns, name, propagation=None, grace=None) -> Status or pod
    touch(resource, ns, name) -> obj       (a concurrent writer: new
                                            resourceVersion, same generation)
    wait_for(resource, ns, name, predicate=None, timeout=10) -> obj
    wait_gone(resource, ns, name, timeout=10)
    events_after(rv, timeout=0.5) -> [(rv, resource key, ns, type, obj)]
Request log:
    mark() -> index of the next request (for since=)
    request_log(verb=None, resource=None, since=0, user=None,
                namespace=None, name=None) -> [entry]
    request_counts(verb=None, resource=None, since=0, user=None)
        -> {(verb, "key[/subresource]"): n}
    writes(since=0, resource=None, user=None) -> [entry]
        (create/update/patch/delete, whatever their answer)
("ksvc" matches the main resource and its subresources; "ksvc/status"
only the status.)

    with FakeKube() as kube:
        token = kube.add_user("activator", activator_rules("default"))
        kube.add_deployment("default", "hello-00001-deployment", replicas=0)
        env = kube.in_cluster_env(token)     # KUBERNETES_SERVICE_*, KP_KUBE_SA_DIR

kubelet_deploy.DeploymentKubelet runs the pods of the Deployments stored
here; kubelet_sim.KubeletSim is the older, scale-hook driven simulator.
"""
import copy
import json
import os
import queue
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
# ApiError, status_obj, REASONS and the patch types are part of this
# module's interface too
from kube_api import (APPLY_PATCH, JSON_PATCH, KNATIVE_CRDS, KNATIVE_GROUP, MERGE_PATCH,
                      REASONS, STRATEGIC_PATCH, ApiError, SelectorError, api_group,
                      api_resource_list, builtin_resources, field_selector_matches,
                      label_selector_matches, now_rfc3339, parse_field_selector,
                      parse_label_selector, random_suffix, selector_string, status_obj, table)
from kube_store import ObjectStore

REEXPORTED = (APPLY_PATCH, JSON_PATCH, REASONS, STRATEGIC_PATCH)

SCALE_PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale$")
LEASE_PATH = re.compile(
    r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?$")
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")

DEPLOY_KEY = "deployments.apps"
SLICE_KEY = "endpointslices.discovery.k8s.io"
LEASE_KEY = "leases.coordination.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")

GROUP_OF = {"deployments": "apps", "endpointslices": "discovery.k8s.io",
            "leases": "coordination.k8s.io"}


def activator_rules(namespace="default"):
    """The least-privilege RBAC rules of the activator (config/kubernetes):
    (verb, group, resource, namespace) tuples."""
    return [("get", "apps", "deployments/scale", namespace),
            ("patch", "apps", "deployments/scale", namespace),
            ("list", "discovery.k8s.io", "endpointslices", namespace),
            ("watch", "discovery.k8s.io", "endpointslices", namespace),
            ("get", "coordination.k8s.io", "leases", namespace),
            ("create", "coordination.k8s.io", "leases", namespace),
            ("update", "coordination.k8s.io", "leases", namespace)]


ALL_RULES = [("*", "*", "*", "*")]


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
    """Label selectors: a=b, a==b, a!=b, a, !a, a in (x,y), a notin (x,y)
    (comma-joined); kube_api.SelectorError when malformed."""
    return parse_label_selector(sel)


def selector_matches(reqs, labels):
    return label_selector_matches(reqs, labels)


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
        entry.update(fake._describe(method, path, q))
        with fake._lock:
            entry["index"] = len(fake.requests)
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


class FakeKube(ObjectStore):
    """A fake kube-apiserver in a background thread.

    FakeKube(plain_http=False, port=0, bookmark_interval=2.0,
             watch_timeout=None, san_ips=("127.0.0.1",), host="127.0.0.1",
             history_limit=20000, gc_delay=0.05)
    start() / stop(), or use as a context manager. Properties: url,
    ca_file, port, resource_version.
    """

    def __init__(self, plain_http=False, port=0, bookmark_interval=2.0, watch_timeout=None,
                 san_ips=("127.0.0.1",), host="127.0.0.1", history_limit=20000, gc_delay=0.05):
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
        self.gc_delay = gc_delay  # seconds before the garbage collector acts on a deletion
        self._served = {}  # resource key -> Resource
        self._gvr = {}  # (group, version, plural) -> Resource
        self._legacy_scale = set()  # (ns, name) made by add_deployment: Scale.status follows spec
        self._next_ip = 1
        self._touches = 0
        self._gc_queue = queue.Queue()
        self._gc_thread = None
        for r in builtin_resources():
            self._serve(r)
        for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._add_builtin_namespace(n)
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

    def _add_builtin_namespace(self, n):
        with self._lock:
            meta = self._new_meta("", n, {"kubernetes.io/metadata.name": n})
            for k in ("namespace", "generation"):
                meta.pop(k)
            self._bump("namespaces", "", "ADDED", {
                "kind": "Namespace", "apiVersion": "v1", "metadata": meta,
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})

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
        self._gc_thread = threading.Thread(target=self._run_gc, daemon=True,
                                           name="fake-kube-gc")
        self._gc_thread.start()
        self._listen()
        return self

    def stop(self):
        if self._down_timer is not None:
            self._down_timer.cancel()
        self._close_listener()
        self._drop_connections()
        self._cb_queue.put(None)
        self._gc_queue.put(None)
        if self._cb_thread is not None:
            self._cb_thread.join(5)
        if self._gc_thread is not None:
            self._gc_thread.join(5)
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
            self._cond.notify_all()

    # ------------------------------------------------------------ storage
    def _bump(self, resource, ns, etype, obj):
        """Stores a change (called with the lock held): new RV, event."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (resource, ns, obj["metadata"]["name"])
        prev = self._objects.get(key)
        if etype == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        if resource == DEPLOY_KEY and etype == "MODIFIED" and prev is not None and \
                prev["spec"].get("replicas") != obj["spec"].get("replicas"):
            self._cb_queue.put((ns, obj["metadata"]["name"], obj["spec"].get("replicas")))
        # prev lets a watch with a selector turn a change into ADDED/DELETED
        self._events.append((self._rv, resource, ns, etype, copy.deepcopy(obj),
                             copy.deepcopy(prev) if prev is not None else None))
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
            self._legacy_scale.add((ns, name))
            self._bump(DEPLOY_KEY, ns, "ADDED", obj)
        return self.get_scale(ns, name)

    def _scale_of(self, ns, name):
        d = self._objects.get((DEPLOY_KEY, ns, name))
        if d is None:
            raise not_found("deployments", name)
        spec = d["spec"]["replicas"]
        st = self._deploy_status.get((ns, name))
        if st is None and (ns, name) not in self._legacy_scale:
            st = (d.get("status") or {}).get("replicas", 0)
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": name, "namespace": ns, "uid": d["metadata"]["uid"],
                             "resourceVersion": d["metadata"]["resourceVersion"],
                             "creationTimestamp": d["metadata"]["creationTimestamp"]},
                "spec": {"replicas": spec},
                "status": {"replicas": spec if st is None else st,
                           "selector": selector_string(d["spec"].get("selector"))}}

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
            d = self._objects.get((DEPLOY_KEY, ns, name))
            if d is None:
                raise KeyError(name)
            if self._deploy_status.get((ns, name)) == replicas:
                return
            self._deploy_status[(ns, name)] = replicas
            d = copy.deepcopy(d)
            d["status"] = {} if replicas is None else {"replicas": replicas}
            self._bump(DEPLOY_KEY, ns, "MODIFIED", d)

    def set_replicas(self, ns, name, replicas):
        """Changes spec.replicas as another writer would (no PATCH record);
        runs the scale hooks."""
        self._set_replicas(ns, name, replicas)

    def _set_replicas(self, ns, name, replicas):
        with self._lock:
            d = self._objects.get((DEPLOY_KEY, ns, name))
            if d is None:
                raise not_found("deployments", name)
            changed = d["spec"]["replicas"] != replicas
            if changed:
                d = copy.deepcopy(d)
                d["spec"]["replicas"] = replicas
                d["metadata"]["generation"] += 1
                self._bump(DEPLOY_KEY, ns, "MODIFIED", d)
            return self._scale_of(ns, name)

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
                    name = "%s-%s" % (service, random_suffix(5))
                    self._slice_names[key] = name
                old = self._objects.get((SLICE_KEY, ns, name))
                port_list = [{"name": n, "protocol": "TCP", "port": p} for n, p in pkey]
                if old is not None:
                    if old["endpoints"] == eps and old["ports"] == port_list:
                        continue
                    obj = copy.deepcopy(old)
                    obj["endpoints"] = eps
                    obj["ports"] = port_list
                    obj["metadata"]["generation"] += 1
                    self._bump(SLICE_KEY, ns, "MODIFIED", obj)
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
                    self._bump(SLICE_KEY, ns, "ADDED", obj)
            for pkey in [k for k in existing if k not in groups]:
                key = (ns, service, pkey)
                name = self._slice_names.pop(key)
                old = self._objects.get((SLICE_KEY, ns, name))
                if old is not None:
                    self._bump(SLICE_KEY, ns, "DELETED", copy.deepcopy(old))

    def delete_endpoints(self, ns, service):
        """Deletes every slice of the service (as when the Service goes)."""
        with self._lock:
            for key in [k for k in self._slice_names if k[:2] == (ns, service)]:
                name = self._slice_names.pop(key)
                old = self._objects.get((SLICE_KEY, ns, name))
                if old is not None:
                    self._bump(SLICE_KEY, ns, "DELETED", copy.deepcopy(old))

    def slices(self, ns, service):
        with self._lock:
            return [copy.deepcopy(o) for (r, n, _), o in sorted(self._objects.items())
                    if r == SLICE_KEY and n == ns and
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
        return self.get_object(LEASE_KEY, ns, name)

    def put_lease(self, ns, name, spec):
        """Writes a lease directly (as another client would)."""
        with self._lock:
            old = self._objects.get((LEASE_KEY, ns, name))
            obj = copy.deepcopy(old) if old else {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": self._new_meta(ns, name)}
            obj["spec"] = dict(spec)
            return copy.deepcopy(self._bump(LEASE_KEY, ns, "MODIFIED" if old else "ADDED", obj))

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

    # ------------------------------------------------------------ request log
    # Every request is in `requests` with, besides method/path/user/status/
    # time/token: index, verb (get list watch create update patch delete
    # deletecollection), resource (its key), subresource, namespace, name.
    def mark(self):
        """The index the next request will get: pass it as since=."""
        with self._lock:
            return len(self.requests)

    def _resource_filter(self, resource):
        if resource is None:
            return None, None
        base, _, sub = resource.partition("/")
        try:
            key = self._resource(base).key
        except KeyError:
            # not served (yet): Knative's names still mean Knative's resources
            key = next(("%s.%s" % (plural, KNATIVE_GROUP) for plural, kind, short, _ in
                        KNATIVE_CRDS if base.lower() in [plural, kind.lower()] + short), base)
        return key, sub or None

    def request_log(self, verb=None, resource=None, since=0, user=None, namespace=None,
                    name=None):
        """Copies of the request entries since index `since` that match:
        verb (a verb or a tuple of verbs), resource ("ksvc",
        "deployments", "services.serving.knative.dev/status": a subresource
        only when named), user, namespace, name."""
        key, sub = self._resource_filter(resource)
        verbs = (verb,) if isinstance(verb, str) else verb
        with self._lock:
            return [dict(e) for e in self.requests[since:]
                    if (verbs is None or e.get("verb") in verbs) and
                    (key is None or e.get("resource") == key) and
                    (sub is None or e.get("subresource") == sub) and
                    (user is None or e.get("user") == user) and
                    (namespace is None or e.get("namespace") == namespace) and
                    (name is None or e.get("name") == name)]

    def request_counts(self, verb=None, resource=None, since=0, user=None):
        """{(verb, "resource[/subresource]"): count} over request_log()."""
        out = {}
        for e in self.request_log(verb, resource, since, user):
            k = (e.get("verb"), e.get("resource") +
                 ("/" + e["subresource"] if e.get("subresource") else "")
                 if e.get("resource") else e.get("path"))
            out[k] = out.get(k, 0) + 1
        return out

    def writes(self, since=0, resource=None, user=None):
        """The create/update/patch/delete requests since `since` (whatever
        their answer): [] after a resync that changed nothing."""
        return self.request_log(WRITE_VERBS, resource, since, user)

    # ------------------------------------------------------------ routing
    def _route(self, h, user, method, path, q, body, entry):
        m = SCALE_PATH.match(path)
        if m:
            return self._scale_req(user, method, m.group(1), m.group(2), h, body)
        m = LEASE_PATH.match(path)
        if m and method in ("POST", "PUT", "DELETE") or \
                (m and method == "GET" and entry.get("verb") != "watch"):
            return self._lease_req(user, method, m.group(1), m.group(2), body)
        if method == "GET":
            doc = self._discovery(path)
            if doc is not None:
                # discovery is for authenticated users (system:discovery);
                # anonymous ones only read /version
                if user == "system:anonymous" and path != "/version":
                    raise ApiError(403, 'forbidden: User "system:anonymous" cannot get path '
                                   '"%s"' % path, "Forbidden", {})
                return 200, doc
        if entry.get("plural"):
            return self._generic(h, user, method, q, body, entry)
        raise ApiError(404, "the server could not find the requested resource", "NotFound", {})

    def _discovery(self, path):
        """/version, /api, /api/v1, /apis, /apis/{g}, /apis/{g}/{v}, or None."""
        if path == "/version":
            return {"major": "1", "minor": "29", "gitVersion": "v1.29.0-fake",
                    "platform": "linux/amd64"}
        with self._lock:
            served = list(self._served.values())
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "%s:%d" % (self.host, self._port)}]}
        if path == "/api/v1":
            return api_resource_list("v1", [r for r in served if not r.group])
        groups = {}
        for r in served:
            if r.group:
                vs = groups.setdefault(r.group, [])
                if r.version not in vs:
                    vs.append(r.version)
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [api_group(g, vs) for g, vs in sorted(groups.items())]}
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups:
            return api_group(parts[1], groups[parts[1]])
        if parts[0] == "apis" and len(parts) == 3 and parts[2] in groups.get(parts[1], ()):
            return api_resource_list("%s/%s" % (parts[1], parts[2]),
                                     [r for r in served if (r.group, r.version) ==
                                      (parts[1], parts[2])])
        return None

    def _describe(self, method, path, q):
        """What a request is about, for RBAC, routing and the request log:
        {verb, resource (the resource key, or plural.group when not served),
        subresource, namespace, name, group, version, plural}."""
        out = {"verb": None, "resource": None, "subresource": None, "namespace": None,
               "name": None, "group": None, "version": None, "plural": None}
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return out
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and \
                not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3 or not rest[0]:
            return out
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        watch = q.get("watch", "").lower() in ("1", "true")
        verb = {"GET": "get" if name else ("watch" if watch else "list"),
                "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method)
        with self._lock:
            res = self._gvr.get((group, version, plural))
        out.update(verb=verb, subresource=sub, namespace=ns, name=name, group=group,
                   version=version, plural=plural,
                   resource=res.key if res else ("%s.%s" % (plural, group) if group else plural))
        return out

    def _generic(self, h, user, method, q, body, entry):
        """Every verb on every served resource, as the real API answers."""
        verb, ns, name, sub = entry["verb"], entry["namespace"], entry["name"], \
            entry["subresource"]
        group, plural = entry["group"], entry["plural"]
        if verb is None:
            raise self._method_not_allowed()
        # the authorization filter runs before routing: a user without the
        # permission gets 403 even for a resource the API does not serve
        self._authorize_as(user, verb, group, plural, sub, ns, name)
        with self._lock:
            res = self._gvr.get((group, entry["version"], plural))
        if res is None or (sub is not None and not (sub == "status" and res.status)) or \
                (ns is not None and not res.namespaced) or \
                (ns is None and res.namespaced and verb not in ("list", "watch")):
            raise ApiError(404, "the server could not find the requested resource",
                           "NotFound", {})
        as_table = res.crd and "as=Table" in (h.headers.get("Accept") or "")
        if verb == "get":
            with self._lock:
                o = self._objects.get((res.key, ns or "", name))
                if o is None:
                    raise self._not_found(res, name)
                if as_table:
                    return 200, table(res, [o], o["metadata"]["resourceVersion"],
                                      q.get("includeObject", "Metadata"))
                return 200, copy.deepcopy(o)
        if verb in ("list", "watch"):
            try:
                sel = parse_label_selector(q.get("labelSelector", ""))
                fsel = parse_field_selector(q.get("fieldSelector", ""), res)
            except SelectorError as e:
                raise ApiError(400, "unable to parse requirement: %s" % e
                               if not str(e).startswith(("unable", "invalid", '"')) else str(e),
                               "BadRequest")
            if verb == "watch":
                self._watch(h, res, ns, sel, q, entry, fsel)
                return 200, None
            lst = self._list(res, ns, sel, fsel, q)
            if as_table:
                return 200, table(res, lst["items"], lst["metadata"]["resourceVersion"],
                                  q.get("includeObject", "Metadata"))
            return 200, lst
        if verb == "create":
            if name is not None:
                raise self._method_not_allowed()
            return 201, self._create(res, ns or "", self._decode(h, body, res))
        if verb == "update":
            return 200, self._update(res, ns or "", name, self._decode(h, body, res), sub)
        if verb == "patch":
            ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            return 200, self._patch(res, ns or "", name, body, ctype, sub)
        if verb == "delete":
            opts = {}
            if body:
                try:
                    opts = json.loads(body)
                except ValueError as e:
                    raise ApiError(400, "error decoding DeleteOptions: %s" % e)
            policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
            grace = q.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
            return 200, self._delete(res, ns or "", name, policy,
                                     None if grace is None else int(grace),
                                     opts.get("preconditions") or {})
        raise self._method_not_allowed()

    @staticmethod
    def _decode(h, body, res):
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if ctype in ("application/yaml", "application/x-yaml"):
                import yaml
                obj = yaml.safe_load(body)
            elif ctype in ("application/json", ""):
                obj = json.loads(body or b"null")
            else:
                raise ApiError(415, "the body of the request was in an unknown format - "
                               "accepted media types include: application/json, "
                               "application/yaml, application/vnd.kubernetes.protobuf")
        except ValueError as e:
            raise ApiError(400, "couldn't get version/kind; json parse error: %s" % e)
        if not isinstance(obj, dict):
            raise ApiError(400, '%s in version "%s" cannot be handled as a %s: expected an '
                           'object' % (res.kind, res.version, res.kind))
        return obj

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

    def _watch(self, h, res, ns, sel, q, entry, fsel=()):
        """A watch stream of one resource type (in ns, or everywhere when
        ns is None). As the watch cache does with a selector, a change that
        makes an object match is sent as ADDED and one that makes it stop
        matching as DELETED."""
        rv_param = q.get("resourceVersion", "")
        bookmarks = q.get("allowWatchBookmarks", "").lower() in ("1", "true")
        timeout = None
        if q.get("timeoutSeconds"):
            timeout = float(q["timeoutSeconds"])
        if self.watch_timeout is not None:
            timeout = self.watch_timeout if timeout is None else min(timeout, self.watch_timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        entry["status"] = 200

        def matches(n, obj):
            return obj is not None and (ns is None or n == ns) and \
                label_selector_matches(sel, obj["metadata"].get("labels")) and \
                field_selector_matches(fsel, obj)

        def event_of(r, n, t, o, prev):
            if r != res.key:
                return None
            now, before = matches(n, o), t == "MODIFIED" and matches(n, prev)
            if t == "MODIFIED" and now != before:
                if now:
                    return "ADDED", o
                gone = copy.deepcopy(prev)
                gone["metadata"]["resourceVersion"] = o["metadata"]["resourceVersion"]
                return "DELETED", gone
            return (t, o) if now else None

        with self._lock:
            gen = self._cut_gen
            initial = []
            if rv_param in ("", "0"):
                # start at the current state: synthetic ADDED events
                for (r, n, _), o in sorted(self._objects.items()):
                    if r == res.key and matches(n, o):
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
                        if cursor < self._oldest_rv:
                            # compacted while this watch was behind: the
                            # real API ends such a watch with 410 too
                            evs = None
                            break
                        evs = []
                        for rv, r, n, t, o, prev in self._events:
                            if rv > cursor:
                                e = event_of(r, n, t, o, prev)
                                if e:
                                    evs.append((rv,) + e)
                                cursor = rv
                        if evs:
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
                    oldest = self._oldest_rv
                if evs is None:
                    h.send_event({"type": "ERROR", "object": status_obj(
                        410, "too old resource version: %d (%d)" % (cursor, oldest),
                        "Expired")})
                    h.end_stream()
                    return
                for _, t, o in evs:
                    h.send_event({"type": t, "object": o})
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    h.end_stream()
                    return
                if not evs and bookmarks and self.bookmark_interval and \
                        now - last_bookmark >= self.bookmark_interval:
                    # typed objects serialize a null creationTimestamp, custom
                    # resources (unstructured) only what is set
                    meta = {"resourceVersion": str(bm_rv)}
                    if not res.crd:
                        meta["creationTimestamp"] = None
                    bm = {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}
                    if res.key == SLICE_KEY:
                        bm.update({"addressType": "", "endpoints": None, "ports": None})
                    h.send_event({"type": "BOOKMARK", "object": bm})
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
                o = self.get_object(LEASE_KEY, ns, name)
                if o is None:
                    raise not_found(res, name)
                return 200, o
            self._authorize(user, "list", res, ns)
            with self._lock:
                items = []
                for (r, n, _), o in sorted(self._objects.items()):
                    if r == LEASE_KEY and n == ns:
                        it = copy.deepcopy(o)
                        del it["kind"], it["apiVersion"]
                        items.append(it)
                return 200, {"kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1",
                             "metadata": {"resourceVersion": str(self._rv)}, "items": items}
        if method == "DELETE" and name:
            self._authorize(user, "delete", res, ns, name)
            with self._lock:
                o = self._objects.get((LEASE_KEY, ns, name))
                if o is None:
                    raise not_found(res, name)
                self._bump(LEASE_KEY, ns, "DELETED", copy.deepcopy(o))
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
                old = self._objects.get((LEASE_KEY, ns, oname))
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
                    self._bump(LEASE_KEY, ns, "MODIFIED", new)
                    code = 200
                else:
                    # POST, or PUT of a missing lease (leases allow create on update)
                    new = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                           "metadata": self._new_meta(ns, oname, meta.get("labels")),
                           "spec": spec}
                    self._bump(LEASE_KEY, ns, "ADDED", new)
                    code = 201
                rec["status"] = code
                return code, copy.deepcopy(new)
        except ApiError as e:
            rec["status"] = e.code
            raise
