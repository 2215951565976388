"""config/kubernetes/: every manifest parses; RBAC grants exactly what the
activator calls; pods are locked down; the default manifests install no app
and their config.json (no service) loads in the real activator; the
hand-written revision of examples/without-crds/ has Knative's names, its
queue-proxy sidecar Knative's environment (which our queue-proxy accepts),
and its config.json matches it. Needs PyYAML (Debian: python3-yaml). No
cluster needed."""
import glob
import json
import os
import shutil
import subprocess

import pytest

import kp
from activator_harness import Activator

yaml = pytest.importorskip("yaml", reason="PyYAML missing: apt-get install python3-yaml")

MANIFEST_DIR = os.path.join(kp.REPO, "config", "kubernetes")
WITHOUT_CRDS = os.path.join(MANIFEST_DIR, "examples", "without-crds")
APPS_NS = "default"
SYSTEM_NS = "kp-system"
REVISION = "helloworld-go-00001"
KNATIVE_QP_ENV = [
    "SERVING_NAMESPACE", "SERVING_CONFIGURATION", "SERVING_REVISION", "SERVING_POD",
    "SERVING_POD_IP", "QUEUE_SERVING_PORT", "QUEUE_SERVING_TLS_PORT", "USER_PORT",
    "CONTAINER_CONCURRENCY", "REVISION_TIMEOUT_SECONDS", "SERVING_LOGGING_CONFIG",
    "SERVING_LOGGING_LEVEL",
]
PROGRAMS = ("activator", "queue-proxy", "helloworld")


def load_all(directory):
    files = sorted(p for p in glob.glob(os.path.join(directory, "*.yaml"))
                   if os.path.basename(p) != "kustomization.yaml")  # test_kustomize.py's
    assert files, "no manifests in %s" % directory
    docs = []
    for path in files:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                where = "%s: %s" % (os.path.basename(path), doc.get("kind"))
                for key in ("apiVersion", "kind", "metadata"):
                    assert key in doc, "%s: no %s" % (where, key)
                assert doc["metadata"].get("name"), "%s: no metadata.name" % where
                doc["_file"] = os.path.basename(path)
                docs.append(doc)
    return docs


DOCS = load_all(MANIFEST_DIR)
# The hand-written sample, for clusters without the CRDs.
EXAMPLE_DOCS = load_all(WITHOUT_CRDS)


def find(kind, name, namespace=None, docs=DOCS):
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
            and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(hits) == 1, "expected one %s %s/%s, found %d" % (kind, namespace, name, len(hits))
    return hits[0]


def container(deployment, name):
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError("%s has no container %s" % (deployment["metadata"]["name"], name))


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def test_kinds_and_names():
    have = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in DOCS}
    for kind, ns, name in [
        ("Namespace", None, SYSTEM_NS),
        ("ServiceAccount", SYSTEM_NS, "kp-activator"),
        ("Role", APPS_NS, "kp-activator-apps"),
        ("RoleBinding", APPS_NS, "kp-activator-apps"),
        ("Role", SYSTEM_NS, "kp-activator"),
        ("RoleBinding", SYSTEM_NS, "kp-activator"),
        ("ConfigMap", SYSTEM_NS, "kp-config"),
        ("Deployment", SYSTEM_NS, "kp-activator"),
        ("Service", SYSTEM_NS, "kp-activator"),
        ("PodDisruptionBudget", SYSTEM_NS, "kp-activator"),
        ("HorizontalPodAutoscaler", SYSTEM_NS, "kp-activator"),
    ]:
        assert (kind, ns, name) in have, "missing %s %s/%s" % (kind, ns, name)
    # No app: the apps' namespace gets only the activator's Role and
    # RoleBinding, so a user's Knative Service finds its names free.
    apps = sorted((k, n) for k, ns, n in have if ns == APPS_NS)
    assert apps == [("Role", "kp-activator-apps"), ("RoleBinding", "kp-activator-apps")], apps
    example = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
               for d in EXAMPLE_DOCS}
    assert example == {("Deployment", APPS_NS, REVISION + "-deployment"),
                       ("Service", APPS_NS, REVISION + "-private"),
                       ("Service", APPS_NS, REVISION)}, example
    for plural in ("services", "configurations", "revisions", "routes"):
        assert ("CustomResourceDefinition", None, plural + ".serving.knative.dev") in have
    # Every namespaced object says its namespace (kubectl apply -f must not
    # depend on the current context's), and the Namespace comes first.
    for d in DOCS:
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                             "CustomResourceDefinition"):
            assert d["metadata"].get("namespace"), "%s %s: no namespace" % (d["kind"], d["metadata"]["name"])
    assert DOCS[0]["kind"] == "Namespace", "the Namespace must be applied first"


def rules_of(role):
    grants = set()
    for r in role["rules"]:
        assert "resourceNames" not in r or r["resourceNames"], role["metadata"]["name"]
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for v in r["verbs"]:
                    assert "*" not in (g, res, v), "wildcard in %s" % role["metadata"]["name"]
                    grants.add((g, res, v))
    return grants


FULL = ("get", "list", "watch", "create", "update", "patch", "delete")
KNATIVE_KINDS = ("services", "configurations", "revisions", "routes")
# What the activator calls in the apps' namespace: scale and EndpointSlices
# (routing, autoscaling), and the Service API's reconciler.
APPS_RULES = {
    ("apps", "deployments/scale", "get"), ("apps", "deployments/scale", "patch"),
    ("discovery.k8s.io", "endpointslices", "get"),
    ("discovery.k8s.io", "endpointslices", "list"),
    ("discovery.k8s.io", "endpointslices", "watch"),
    *{("serving.knative.dev", k, v) for k in KNATIVE_KINDS for v in FULL},
    *{("serving.knative.dev", k + "/status", v) for k in KNATIVE_KINDS
      for v in ("get", "update", "patch")},
    *{("apps", "deployments", v) for v in FULL},
    *{("", "services", v) for v in FULL},
    *{("", "pods", v) for v in ("get", "list", "watch")},
    *{("autoscaling", "horizontalpodautoscalers", v) for v in FULL},
    ("", "events", "create"), ("", "events", "patch"),
}
# The Lease, the activator Service's EndpointSlices (KP_ACTIVATOR_SERVICE),
# the config-* ConfigMaps and its own pod (its image).
SYSTEM_RULES = {
    ("coordination.k8s.io", "leases", "get"), ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
    ("discovery.k8s.io", "endpointslices", "get"),
    ("discovery.k8s.io", "endpointslices", "list"),
    ("discovery.k8s.io", "endpointslices", "watch"),
    ("", "configmaps", "get"), ("", "configmaps", "list"), ("", "configmaps", "watch"),
    ("", "pods", "get"),
}


def test_rbac_is_exactly_what_the_activator_calls():
    assert not [d for d in DOCS if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert rules_of(find("Role", "kp-activator-apps", APPS_NS)) == APPS_RULES
    assert rules_of(find("Role", "kp-activator", SYSTEM_NS)) == SYSTEM_RULES
    roles = [d for d in DOCS if d["kind"] == "Role"]
    assert len(roles) == 2, "unexpected extra Role: %s" % [r["metadata"]["name"] for r in roles]
    for ns, name in [(APPS_NS, "kp-activator-apps"), (SYSTEM_NS, "kp-activator")]:
        rb = find("RoleBinding", name, ns)
        assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "kp-activator",
                                   "namespace": SYSTEM_NS}]
    pod = find("Deployment", "kp-activator", SYSTEM_NS)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kp-activator"


def test_rbac_says_why_for_every_rule():
    """Each rule of 10-rbac.yaml is named in its header comment, so the file
    documents what each grant is for."""
    with open(os.path.join(MANIFEST_DIR, "10-rbac.yaml")) as f:
        header = f.read().split("apiVersion:", 1)[0]
    for words in ("deployments/scale", "EndpointSlices", "Services, Configurations, Revisions, "
                  "Routes", "their /status", "Deployments", "Services {revision}", "Pods",
                  "HorizontalPodAutoscalers", "Events", "Lease", "ConfigMaps", "its own pod"):
        assert words in header, "10-rbac.yaml's header does not explain %r" % words


def test_the_fake_api_grants_the_manifests_rules():
    """tests/e2e/fake_kube.py's activator_rules, used by every test against
    the fake API server, are the manifests' rules (in one namespace)."""
    import fake_kube
    fake = {(g, r, v) for v, g, r, ns in fake_kube.activator_rules("ns")}
    assert all(ns == "ns" for *_, ns in fake_kube.activator_rules("ns"))
    assert fake == APPS_RULES | SYSTEM_RULES


def crds():
    return {d["spec"]["names"]["kind"]: d for d in DOCS if d["kind"] == "CustomResourceDefinition"}


def structural_problems(node, path, root=False):
    """Kubernetes' structural schema rules (apiextensions.k8s.io/v1): every
    node says its type unless it keeps unknown fields or is int-or-string;
    properties only on objects, items only on arrays (and required there);
    not both properties and additionalProperties; at the root, metadata may
    say no more than its type."""
    out = []
    t = node.get("type")
    keeps = node.get("x-kubernetes-preserve-unknown-fields") is True
    if not t and not keeps and not node.get("x-kubernetes-int-or-string"):
        out.append("%s: no type" % path)
    if "properties" in node and t not in (None, "object"):
        out.append("%s: properties on a %s" % (path, t))
    if "properties" in node and "additionalProperties" in node:
        out.append("%s: both properties and additionalProperties" % path)
    if t == "array" and "items" not in node:
        out.append("%s: an array without items" % path)
    for forbidden in ("$ref", "allOf", "anyOf", "oneOf", "not"):
        if forbidden in node and root:
            out.append("%s: %s at the root" % (path, forbidden))
    for name, child in node.get("properties", {}).items():
        if root and name == "metadata" and set(child) - {"type"}:
            out.append("%s.metadata: more than its type" % path)
        out += structural_problems(child, "%s.%s" % (path, name))
    if isinstance(node.get("items"), dict):
        out += structural_problems(node["items"], path + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += structural_problems(node["additionalProperties"], path + "{}")
    return out


def test_crds_are_knatives_names_with_structural_schemas():
    want = {  # kind: (plural, short names)
        "Service": ("services", ["ksvc", "kservice"]),
        "Configuration": ("configurations", ["config", "cfg"]),
        "Revision": ("revisions", ["rev"]),
        "Route": ("routes", ["rt"]),
    }
    have = crds()
    assert sorted(have) == sorted(want)
    for kind, (plural, short) in want.items():
        crd = have[kind]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == plural + ".serving.knative.dev"
        spec = crd["spec"]
        assert spec["group"] == "serving.knative.dev" and spec["scope"] == "Namespaced"
        names = spec["names"]
        assert (names["kind"], names["plural"], names["singular"]) == (kind, plural, kind.lower())
        assert names["shortNames"] == short
        assert names["categories"] == ["all", "knative", "serving"]
        assert [v["name"] for v in spec["versions"]] == ["v1"]
        v1 = spec["versions"][0]
        assert v1["served"] is True and v1["storage"] is True
        # Status is written only through /status, as kubectl wait and kn expect.
        assert v1["subresources"] == {"status": {}}
        schema = v1["schema"]["openAPIV3Schema"]
        problems = structural_problems(schema, kind, root=True)
        assert not problems, problems
        status = schema["properties"]["status"]["properties"]
        cond = status["conditions"]["items"]
        assert cond["required"] == ["type", "status"]
        assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(
            cond["properties"])
        assert status["observedGeneration"]["type"] == "integer"
    props = lambda kind: have[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"]
    # The template's revision spec is typed where kp reads it, open elsewhere.
    for kind in ("Service", "Configuration"):
        tmpl = props(kind)["spec"]["properties"]["template"]["properties"]
        rspec = tmpl["spec"]
        assert rspec["x-kubernetes-preserve-unknown-fields"] is True
        assert rspec["required"] == ["containers"]
        assert rspec["properties"]["containerConcurrency"]["type"] == "integer"
        assert rspec["properties"]["timeoutSeconds"]["type"] == "integer"
        assert tmpl["metadata"]["properties"]["annotations"]["additionalProperties"] == {
            "type": "string"}
    assert props("Revision")["spec"]["required"] == ["containers"]
    for kind in ("Service", "Route"):
        item = props(kind)["spec"]["properties"]["traffic"]["items"]["properties"]
        assert {k: item[k]["type"] for k in item} == {
            "configurationName": "string", "latestRevision": "boolean", "percent": "integer",
            "revisionName": "string", "tag": "string", "url": "string"}
        assert props(kind)["status"]["properties"]["url"]["type"] == "string"
        assert props(kind)["status"]["properties"]["address"]["properties"]["url"]


def test_crd_printer_columns_are_knatives():
    ready = ".status.conditions[?(@.type=='Ready')].status"
    reason = ".status.conditions[?(@.type=='Ready')].reason"
    want = {
        "Service": [("URL", ".status.url"), ("LatestCreated", ".status.latestCreatedRevisionName"),
                    ("LatestReady", ".status.latestReadyRevisionName"), ("Ready", ready),
                    ("Reason", reason)],
        "Configuration": [("LatestCreated", ".status.latestCreatedRevisionName"),
                          ("LatestReady", ".status.latestReadyRevisionName"), ("Ready", ready),
                          ("Reason", reason)],
        "Route": [("URL", ".status.url"), ("Ready", ready), ("Reason", reason)],
        "Revision": [("Config Name", ".metadata.labels['serving\\.knative\\.dev/configuration']"),
                     ("K8s Service Name", ".status.serviceName"),
                     ("Generation",
                      ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']"),
                     ("Ready", ready), ("Reason", reason),
                     ("Actual Replicas", ".status.actualReplicas"),
                     ("Desired Replicas", ".status.desiredReplicas")],
    }
    for kind, cols in want.items():
        got = crds()[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
        assert [(c["name"], c["jsonPath"]) for c in got] == cols, kind
        for c in got:
            assert c["type"] == ("integer" if "Replicas" in c["name"] else "string"), c


def test_crds_admit_the_example_service():
    """examples/helloworld-go.yaml fits the Service schema: every field it
    sets is declared with the type it has (a check of our own, no server)."""
    with open(os.path.join(MANIFEST_DIR, "examples", "helloworld-go.yaml")) as f:
        ksvcs = [d for d in yaml.safe_load_all(f) if d]
    assert [(d["apiVersion"], d["kind"], d["metadata"]["name"], d["metadata"]["namespace"])
            for d in ksvcs] == [("serving.knative.dev/v1", "Service", "helloworld-go", "default")]
    schema = crds()["Service"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    types = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}

    def check(value, node, path):
        t = node.get("type")
        if t:
            assert isinstance(value, types[t]) and not (t == "integer" and value is True), \
                "%s: %r is not a %s" % (path, value, t)
        for k in node.get("required", []):
            assert k in value, "%s: %s missing" % (path, k)
        if isinstance(value, dict):
            for k, v in value.items():
                if k in node.get("properties", {}):
                    check(v, node["properties"][k], path + "." + k)
                elif isinstance(node.get("additionalProperties"), dict):
                    check(v, node["additionalProperties"], path + "." + k)
                else:
                    assert node.get("x-kubernetes-preserve-unknown-fields") or path == "Service", \
                        "%s.%s: not in the schema (it would be pruned)" % (path, k)
        if isinstance(value, list):
            for i, v in enumerate(value):
                check(v, node["items"], "%s[%d]" % (path, i))

    body = {k: v for k, v in ksvcs[0].items() if k != "metadata"}
    check(body, schema, "Service")
    spec = ksvcs[0]["spec"]["template"]["spec"]
    app = spec["containers"][0]
    # Knative's helloworld-go sample, with our own helloworld image.
    assert app["image"] == "kp:dev" and app.get("args", app.get("command"))
    assert {e["name"]: e["value"] for e in app["env"]} == {"TARGET": "World"}


def assert_locked_down(deployment):
    pod = deployment["spec"]["template"]["spec"]
    name = deployment["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        where = "%s/%s" % (name, c["name"])
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities") == {"drop": ["ALL"]}, where
        assert sc.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        assert not sc.get("privileged"), where
        res = c.get("resources", {})
        assert res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory"), where
        assert res.get("limits", {}).get("memory"), where
        # The image's programs, chosen by command (the image has no entrypoint).
        assert (c.get("command") or [None])[0] in PROGRAMS, where


def test_activator_deployment():
    d = find("Deployment", "kp-activator", SYSTEM_NS)
    # The HorizontalPodAutoscaler owns the count: a count here would reset
    # it at every apply.
    assert "replicas" not in d["spec"]
    assert_locked_down(d)
    c = container(d, "activator")
    argv = c["command"] + c.get("args", [])
    assert argv == ["activator", "--config", "/etc/kp/config.json", "--backend", "kubernetes",
                    "--listen", "0.0.0.0:8080", "--listen-h2c", "0.0.0.0:8013",
                    "--admin", "0.0.0.0:9095"]
    help_text = subprocess.run([kp.binary("activator"), "--help"], capture_output=True,
                               text=True, timeout=5).stdout
    for flag in argv[1::2]:
        assert flag in help_text, "activator --help does not know %s" % flag
    env = env_of(c)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["KP_ACTIVATOR_SERVICE"]["value"] == "kp-activator"
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 9095}
    assert c["livenessProbe"]["tcpSocket"] == {"port": 8080}
    mount = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/kp"]
    assert mount and mount[0].get("readOnly") is True
    vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    assert vols[mount[0]["name"]]["configMap"]["name"] == "kp-config"

    labels = d["spec"]["template"]["metadata"]["labels"]
    svc = find("Service", "kp-activator", SYSTEM_NS)
    # Knative's names: the h2c container port, served as "http2" on 81
    assert {p["name"]: p["containerPort"] for p in c["ports"]}.get("h2c") == 8013
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080,
                                     "protocol": "TCP"},
                                    {"name": "http2", "port": 81, "targetPort": 8013,
                                     "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"}]
    pdb = find("PodDisruptionBudget", "kp-activator", SYSTEM_NS)
    assert pdb["spec"]["minAvailable"] == 1
    hpa = find("HorizontalPodAutoscaler", "kp-activator", SYSTEM_NS)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "kp-activator"}
    # Never so few replicas that the budget forbids every eviction (a node
    # drain would hang), and room to grow.
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    for sel in (svc["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"],
                d["spec"]["selector"]["matchLabels"]):
        assert sel.items() <= labels.items(), sel


def test_revision_objects():
    d = find("Deployment", REVISION + "-deployment", APPS_NS, EXAMPLE_DOCS)
    assert d["spec"]["replicas"] == 0
    assert_locked_down(d)
    label = {"serving.knative.dev/revision": REVISION}
    assert d["spec"]["selector"]["matchLabels"] == label
    assert label.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    app = container(d, "user-container")
    assert app["command"] == ["helloworld"]
    assert {k: v.get("value") for k, v in env_of(app).items()
            if k in ("PORT", "TARGET")} == {"PORT": "8080", "TARGET": "World"}
    assert app["lifecycle"]["preStop"]["httpGet"] == {"path": "/wait-for-drain", "port": 8022}
    for svc_name, port in [(REVISION + "-private", 8012), (REVISION, 80)]:
        svc = find("Service", svc_name, APPS_NS, EXAMPLE_DOCS)
        assert svc["spec"]["selector"] == label, svc_name
        http = [p for p in svc["spec"]["ports"] if p["name"] == "http"]
        assert http and http[0]["port"] == port and http[0]["targetPort"] == 8012, svc_name


def queue_proxy_env():
    """The queue-proxy container's environment as the kubelet would make it
    (downward API values filled with stand-ins)."""
    c = container(find("Deployment", REVISION + "-deployment", APPS_NS, EXAMPLE_DOCS),
                  "queue-proxy")
    downward = {"metadata.namespace": APPS_NS, "metadata.name": REVISION + "-deployment-abc12",
                "status.podIP": "10.244.0.7"}
    out = {}
    for name, e in env_of(c).items():
        if "value" in e:
            assert isinstance(e["value"], str), "%s: env values must be strings" % name
            out[name] = e["value"]
        else:
            out[name] = downward[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return c, out


def test_queue_proxy_sidecar_has_knatives_environment():
    c, env = queue_proxy_env()
    missing = [v for v in KNATIVE_QP_ENV if v not in env]
    assert not missing, "queue-proxy env lacks %s" % missing
    raw = env_of(c)
    for name, path in [("SERVING_NAMESPACE", "metadata.namespace"), ("SERVING_POD", "metadata.name"),
                       ("SERVING_POD_IP", "status.podIP")]:
        assert raw[name]["valueFrom"]["fieldRef"]["fieldPath"] == path, name
    assert env["SERVING_REVISION"] == REVISION
    assert (env["QUEUE_SERVING_PORT"], env["QUEUE_SERVING_TLS_PORT"], env["USER_PORT"]) == \
        ("8012", "8112", "8080")
    assert env["CONTAINER_CONCURRENCY"] == "10" and env["REVISION_TIMEOUT_SECONDS"] == "300"
    assert env["SERVING_LOGGING_CONFIG"] == "" and env["SERVING_LOGGING_LEVEL"] == "info"
    assert json.loads(env["SERVING_READINESS_PROBE"]) == {
        "tcpSocket": {"port": 8080, "host": "127.0.0.1"}, "successThreshold": 1}
    assert {p["name"]: p["containerPort"] for p in c["ports"]}.items() >= {
        "http": 8012, "metrics": 9090}.items()
    probe = c["readinessProbe"]["httpGet"]
    assert probe["port"] == 8012
    assert {"name": "K-Network-Probe", "value": "queue"} in probe["httpHeaders"]


def test_queue_proxy_accepts_the_manifests_environment(procs):
    """Our queue-proxy starts with exactly that environment (ports moved to
    free ones so the test runs anywhere) and answers a kubelet probe."""
    _, env = queue_proxy_env()
    serving, user = kp.free_port(), kp.free_port()
    env.update(QUEUE_SERVING_PORT=str(serving), USER_PORT=str(user),
               KP_ADMIN_PORT=str(kp.free_port()), KP_METRICS_PORT=str(kp.free_port()),
               KP_USER_METRICS_PORT=str(kp.free_port()), KP_DRAIN_QUIET_PERIOD_SECONDS="0",
               SERVING_READINESS_PROBE=env["SERVING_READINESS_PROBE"].replace("8080", str(user)))
    app = procs.start("helloworld", kp.app_command(), {"PORT": str(user), "HOST": "127.0.0.1"})
    qp = procs.start("queue-proxy", [kp.binary("queue-proxy")], env)
    kp.wait_port(serving, proc=qp)
    kp.wait_port(user, proc=app)
    r = kp.request(serving, "/", headers={"User-Agent": "kube-probe/1.30",
                                          "K-Network-Probe": "queue"})
    assert (r.status, r.body) == (200, b"queue"), r


def shipped_config():
    return json.loads(find("ConfigMap", "kp-config", SYSTEM_NS)["data"]["config.json"])


def example_config():
    with open(os.path.join(WITHOUT_CRDS, "config.json")) as f:
        return json.load(f)


def test_configmap_lists_no_service_and_loads_in_the_real_activator():
    """The default config.json: the cluster-wide settings and no service
    (apps are Knative Services). Without Knative the activator starts on
    it, routes nothing and says why."""
    config = shipped_config()
    assert config["services"] == []
    assert config["autoscaler"]["stable-window"] == "60s"
    act = Activator(config)
    try:
        assert act.status()["services"] == []
        assert act.request("/")[0] == 404
        warned = [line for line in act.log_lines()
                  if line.get("message", "").startswith("the config lists no services")]
        assert [line["severity"] for line in warned] == ["WARNING"], act.logs()
    finally:
        code = act.stop(timeout=10)
    assert code == 0, "activator exit %s:\n%s" % (code, act.logs())


def test_without_crds_config_matches_its_revision_and_loads():
    """examples/without-crds/config.json: the default one plus the service
    of helloworld-go-00001.yaml, with the Deployment's CC and timeout."""
    config = example_config()
    shipped = shipped_config()
    assert {k: v for k, v in config.items() if k != "services"} == \
        {k: v for k, v in shipped.items() if k != "services"}
    [svc] = config["services"]
    assert (svc["name"], svc["namespace"]) == ("helloworld-go", APPS_NS)
    rev = [r for r in svc["revisions"] if r["name"] == REVISION]
    assert rev and rev[0]["containerConcurrency"] == 10
    _, env = queue_proxy_env()
    assert str(rev[0]["containerConcurrency"]) == env["CONTAINER_CONCURRENCY"]
    assert str(rev[0].get("timeoutSeconds", 300)) == env["REVISION_TIMEOUT_SECONDS"]
    # The Deployment starts at zero: so must the activator (no pod at start).
    act = Activator(config)
    try:
        status = act.status()
        assert [s["name"] for s in status["services"]] == ["helloworld-go"], status
        assert act.revision_status(REVISION) is not None
        assert act.revision_status(REVISION)["ready_pods"] == 0
    finally:
        code = act.stop(timeout=10)
    assert code == 0, "activator exit %s:\n%s" % (code, act.logs())


def test_configmap_update_reaches_the_running_activator(tmp_path):
    """The kubelet updates a mounted ConfigMap by writing a new directory and
    swapping the `..data` symlink (its AtomicWriter); config.json is a
    symlink through it. The running activator picks the new content up
    without a restart, as config/kubernetes/README.md says."""
    config = shipped_config()

    def publish(cfg, stamp):
        d = tmp_path / ("..2025_01_01_00_00_0%d.000000001" % stamp)
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        os.symlink(d.name, str(tmp_path / "..data_tmp"))
        os.rename(str(tmp_path / "..data_tmp"), str(tmp_path / "..data"))
        return d

    first = publish(config, 1)
    os.symlink("..data/config.json", str(tmp_path / "config.json"))
    act = Activator(config, args=["--config", str(tmp_path / "config.json")])
    try:
        assert act.status()["services"] == []
        config["services"] = example_config()["services"]
        publish(config, 2)
        shutil.rmtree(str(first))
        act.wait_for(lambda: [s["name"] for s in act.status()["services"]] ==
                     ["helloworld-go"], 10, "the ConfigMap's new service")
        assert act.request("/") == (200, "Hello World!\n")
        # And back to none: the service and its pod go, the host with them.
        config["services"] = []
        publish(config, 3)
        act.wait_for(lambda: act.status()["services"] == [], 10, "the service removed")
        assert act.request("/")[0] == 404
    finally:
        code = act.stop(timeout=10)
    assert code == 0, "activator exit %s:\n%s" % (code, act.logs())
