"""What the fake API server (fake_kube.py) knows about Kubernetes objects,
as pure functions: the resource table, CustomResourceDefinition parsing,
label and field selectors, JSON merge patch (RFC 7386) and JSON patch
(RFC 6902), the defaults and validation the real API applies to the kinds
the reconciler writes, and the discovery documents. Stdlib (+ yaml for
CRD files)."""
import copy
import ipaddress
import random
import re
import time

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def random_suffix(n, alphabet="bcdfghjklmnpqrstvwxz2456789"):
    """What generateName appends (apiserver's names.SimpleNameGenerator)."""
    return "".join(random.choice(alphabet) for _ in range(n))


def status_obj(code, message, reason=None, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason or REASONS.get(code, "Unknown")}
    if details is not None:
        s["details"] = details
    s["code"] = code
    return s


class ApiError(Exception):
    """An answer of the API other than success: .code and the Status."""

    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.status = status_obj(code, message, reason, details)


# ---------------------------------------------------------------- resources

READ_VERBS = ["get", "list", "watch"]
ALL_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]


class Resource:
    """One served resource type. key names it inside the fake: the plural
    for the core group ("services"), plural.group otherwise
    ("services.serving.knative.dev"), as `kubectl get` spells it."""

    def __init__(self, group, version, plural, kind, namespaced=True, status=False, scale=False,
                 short_names=(), singular=None, crd=False, generation=True,
                 unconditional_update=True, create_on_update=False, verbs=None,
                 printer_columns=(), schema=None):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.status = status  # has the status subresource
        self.scale = scale
        self.short_names = list(short_names)
        self.singular = singular or kind.lower()
        self.crd = crd
        self.generation = generation  # metadata.generation is maintained
        # CRDs refuse a PUT without metadata.resourceVersion (customResourceStrategy)
        self.unconditional_update = unconditional_update
        self.create_on_update = create_on_update
        self.verbs = list(verbs or ALL_VERBS)
        self.printer_columns = list(printer_columns)
        self.schema = schema  # a CRD version's openAPIV3Schema (pruning, type checks)

    @property
    def key(self):
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def prefix(self):
        """/api/v1 or /apis/{group}/{version}."""
        return "/apis/" + self.api_version if self.group else "/api/" + self.version

    def __repr__(self):
        return "<Resource %s %s>" % (self.key, self.api_version)


def builtin_resources():
    """The built-in kinds served from the start."""
    return [
        Resource("", "v1", "namespaces", "Namespace", namespaced=False, status=True,
                 short_names=["ns"], generation=False),
        Resource("", "v1", "services", "Service", status=True, short_names=["svc"],
                 generation=False),
        Resource("", "v1", "pods", "Pod", status=True, short_names=["po"], generation=False),
        Resource("", "v1", "configmaps", "ConfigMap", short_names=["cm"], generation=False),
        Resource("", "v1", "events", "Event", short_names=["ev"], generation=False),
        Resource("apps", "v1", "deployments", "Deployment", status=True, scale=True,
                 short_names=["deploy"]),
        Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
                 status=True, short_names=["hpa"], generation=False),
        Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
        Resource("coordination.k8s.io", "v1", "leases", "Lease", generation=False,
                 create_on_update=True),
        Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", namespaced=False, status=True,
                 short_names=["crd", "crds"]),
    ]


# The CRDs of Knative Serving's v1 API (config/core/300-resources), as
# install_crds() registers them without a file.
_READY = ".status.conditions[?(@.type=='Ready')]"
KNATIVE_CRDS = [
    ("services", "Service", ["ksvc", "kservice"],
     [("URL", "string", ".status.url"),
      ("LatestCreated", "string", ".status.latestCreatedRevisionName"),
      ("LatestReady", "string", ".status.latestReadyRevisionName"),
      ("Ready", "string", _READY + ".status"), ("Reason", "string", _READY + ".reason")]),
    ("configurations", "Configuration", ["config", "cfg"],
     [("LatestCreated", "string", ".status.latestCreatedRevisionName"),
      ("LatestReady", "string", ".status.latestReadyRevisionName"),
      ("Ready", "string", _READY + ".status"), ("Reason", "string", _READY + ".reason")]),
    ("revisions", "Revision", ["rev"],
     [("Config Name", "string",
       ".metadata.labels['serving\\.knative\\.dev/configuration']"),
      ("Generation", "string",
       ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']"),
      ("Ready", "string", _READY + ".status"), ("Reason", "string", _READY + ".reason"),
      ("Actual Replicas", "integer", ".status.actualReplicas"),
      ("Desired Replicas", "integer", ".status.desiredReplicas")]),
    ("routes", "Route", ["rt"],
     [("URL", "string", ".status.url"), ("Ready", "string", _READY + ".status"),
      ("Reason", "string", _READY + ".reason")]),
]
KNATIVE_GROUP = "serving.knative.dev"


def knative_crd_docs():
    docs = []
    for plural, kind, short, columns in KNATIVE_CRDS:
        docs.append({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, KNATIVE_GROUP)},
            "spec": {"group": KNATIVE_GROUP, "scope": "Namespaced",
                     "names": {"plural": plural, "kind": kind, "singular": kind.lower(),
                               "shortNames": short, "categories": ["all", "knative",
                                                                   "serving"]},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "additionalPrinterColumns": [
                                       {"name": n, "type": t, "jsonPath": j}
                                       for n, t, j in columns],
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}}}]}})
    return docs


def load_crd_docs(path):
    """The CustomResourceDefinition documents of a YAML file."""
    import yaml
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise ValueError("%s: no CustomResourceDefinition document" % path)
    return crds


def resources_of_crd(crd):
    """A Resource per served version of a CRD document; ValueError if the
    document lacks what the API requires."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    name = (crd.get("metadata") or {}).get("name")
    if not group or not plural or not kind:
        raise ValueError("CustomResourceDefinition %r: spec.group, spec.names.plural and "
                         "spec.names.kind are required" % name)
    if name != "%s.%s" % (plural, group):
        raise ValueError('CustomResourceDefinition %r: metadata.name must be "%s.%s"'
                         % (name, plural, group))
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served"):
            continue
        subs = v.get("subresources") or spec.get("subresources") or {}
        out.append(Resource(group, v["name"], plural, kind,
                            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                            status="status" in subs, scale="scale" in subs,
                            short_names=names.get("shortNames") or (),
                            singular=names.get("singular"), crd=True,
                            unconditional_update=False,
                            printer_columns=v.get("additionalPrinterColumns") or (),
                            schema=(v.get("schema") or {}).get("openAPIV3Schema")))
    return out


# ---------------------------------------------------------------- selectors


class SelectorError(ValueError):
    pass


_SET_REQ = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s*\((.*)\)\s*$")


def _split_top(sel):
    parts, depth, cur = [], 0, ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError("unable to parse requirement: unbalanced ')'")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise SelectorError("unable to parse requirement: unbalanced '('")
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(sel):
    """Label selectors as the API parses them: k=v, k==v, k!=v, k, !k,
    k in (a,b), k notin (a,b); comma-joined. SelectorError if malformed."""
    reqs = []
    for part in _split_top(sel or ""):
        m = _SET_REQ.match(part)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            if not vals:
                raise SelectorError("unable to parse requirement: %s: for 'in', 'notin' "
                                    "operators, values set can't be empty" % part)
            reqs.append((m.group(2), m.group(1), vals))
        elif "!=" in part:
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
        elif re.match(r"^[A-Za-z0-9_./-]+$", part):
            reqs.append(("present", part, None))
        else:
            raise SelectorError("unable to parse requirement: %r" % part)
    for _, k, _ in reqs:
        if not k or not re.match(r"^([A-Za-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$",
                                 k):
            raise SelectorError("unable to parse requirement: invalid label key %r" % k)
    return reqs


def label_selector_matches(reqs, labels):
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
        if op == "in" and labels.get(k) not in v:
            return False
        if op == "notin" and k in labels and labels[k] in v:
            return False
    return True


def match_labels_selector(selector):
    """A metav1.LabelSelector ({matchLabels, matchExpressions}) as parsed
    requirements."""
    reqs = [("eq", k, v) for k, v in sorted(((selector or {}).get("matchLabels") or {}).items())]
    for e in (selector or {}).get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "present",
              "DoesNotExist": "absent"}[e["operator"]]
        reqs.append((op, e["key"], set(e.get("values") or []) if op in ("in", "notin")
                     else None))
    return reqs


def selector_string(selector):
    """metav1.FormatLabelSelector-like text of a LabelSelector."""
    out = []
    for op, k, v in match_labels_selector(selector):
        if op == "eq":
            out.append("%s=%s" % (k, v))
        elif op in ("in", "notin"):
            out.append("%s %s (%s)" % (k, op, ",".join(sorted(v))))
        elif op == "present":
            out.append(k)
        else:
            out.append("!" + k)
    return ",".join(out)


FIELDS = {"metadata.name": lambda o: o["metadata"].get("name"),
          "metadata.namespace": lambda o: o["metadata"].get("namespace", "")}
POD_FIELDS = {"spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
              "status.phase": lambda o: (o.get("status") or {}).get("phase", "")}


def parse_field_selector(sel, resource):
    """Field selectors: metadata.name and metadata.namespace everywhere
    (plus spec.nodeName and status.phase on pods), =, ==, !=."""
    fields = dict(FIELDS)
    if resource.key == "pods":
        fields.update(POD_FIELDS)
    reqs = []
    for part in filter(None, (p.strip() for p in (sel or "").split(","))):
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (sel, part))
        field = m.group(1).strip()
        if field not in fields:
            raise SelectorError('"%s" is not a known field selector: only "%s"' % (
                field, '", "'.join(sorted(fields))))
        reqs.append((fields[field], m.group(2) != "!=", m.group(3).strip()))
    return reqs


def field_selector_matches(reqs, obj):
    return all((get(obj) == v) == eq for get, eq, v in reqs)


# ---------------------------------------------------------------- patches


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class PatchError(ValueError):
    pass


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    for p in parts:
        if isinstance(doc, list):
            try:
                doc = doc[int(p)]
            except (ValueError, IndexError):
                raise PatchError("path element %r out of range" % p)
        elif isinstance(doc, dict) and p in doc:
            doc = doc[p]
        else:
            raise PatchError("doc is missing path: %r" % "/".join(parts))
    return doc


def json_patch(doc, ops):
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), _pointer(op.get("path", ""))
        if kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, src))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": op["path"], "value": value}])
            continue
        if kind == "test":
            if _walk(doc, path) != op.get("value"):
                raise PatchError("testing value %r failed" % op.get("path"))
            continue
        if kind not in ("add", "remove", "replace"):
            raise PatchError("Unexpected kind: %r" % kind)
        if not path:
            if kind == "remove":
                raise PatchError("cannot remove the root")
            doc = copy.deepcopy(op.get("value"))
            continue
        parent = _walk(doc, path[:-1])
        last = path[-1]
        if isinstance(parent, list):
            if kind == "add" and last == "-":
                parent.append(copy.deepcopy(op.get("value")))
                continue
            try:
                i = int(last)
            except ValueError:
                raise PatchError("invalid array index %r" % last)
            if kind == "add":
                if not 0 <= i <= len(parent):
                    raise PatchError("array index %d out of range" % i)
                parent.insert(i, copy.deepcopy(op.get("value")))
            else:
                if not 0 <= i < len(parent):
                    raise PatchError("array index %d out of range" % i)
                if kind == "remove":
                    del parent[i]
                else:
                    parent[i] = copy.deepcopy(op.get("value"))
        elif isinstance(parent, dict):
            if kind != "add" and last not in parent:
                raise PatchError("doc is missing key: %s" % op.get("path"))
            if kind == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(op.get("value"))
        else:
            raise PatchError("cannot patch a scalar at %r" % op.get("path"))
    return doc


# ---------------------------------------------------------------- validation

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def name_errors(resource, name):
    """The API's metadata.name checks: a DNS-1035 label for Services, a
    DNS-1123 subdomain for everything else."""
    if resource.key == "services":
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            return ["metadata.name: Invalid value: \"%s\": a DNS-1035 label must consist of "
                    "lower case alphanumeric characters or '-', start with an alphabetic "
                    "character, and end with an alphanumeric character" % name]
        return []
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return ["metadata.name: Invalid value: \"%s\": a lowercase RFC 1123 subdomain must "
                "consist of lower case alphanumeric characters, '-' or '.', and must start "
                "and end with an alphanumeric character" % name]
    return []


def _container_errors(path, containers):
    errs = []
    if not containers:
        errs.append("%s: Required value" % path)
    seen = set()
    for i, c in enumerate(containers or []):
        p = "%s[%d]" % (path, i)
        name = c.get("name") or ""
        if not name:
            errs.append("%s.name: Required value" % p)
        elif not DNS1123_LABEL.match(name) or len(name) > 63:
            errs.append('%s.name: Invalid value: "%s": a lowercase RFC 1123 label must consist '
                        "of lower case alphanumeric characters or '-'" % (p, name))
        elif name in seen:
            errs.append('%s.name: Duplicate value: "%s"' % (p, name))
        seen.add(name)
        if not c.get("image"):
            errs.append("%s.image: Required value" % p)
        pnames = set()
        for j, port in enumerate(c.get("ports") or []):
            cp = port.get("containerPort")
            if not isinstance(cp, int) or not 0 < cp < 65536:
                errs.append("%s.ports[%d].containerPort: Invalid value: %r: must be between 1 "
                            "and 65535, inclusive" % (p, j, cp))
            pn = port.get("name")
            if pn:
                if len(pn) > 15:
                    errs.append('%s.ports[%d].name: Invalid value: "%s": must be no more than '
                                "15 characters" % (p, j, pn))
                if pn in pnames:
                    errs.append('%s.ports[%d].name: Duplicate value: "%s"' % (p, j, pn))
                pnames.add(pn)
        for j, e in enumerate(c.get("env") or []):
            if not e.get("name"):
                errs.append("%s.env[%d].name: Required value" % (p, j))
    return errs


def validate(resource, obj, old=None):
    """Field errors ("path: problem") the real API would answer 422 for,
    for the kinds whose mistakes a reconciler can make."""
    errs = []
    spec = obj.get("spec")
    if resource.key == "deployments.apps":
        spec = spec or {}
        sel = spec.get("selector")
        tmpl = spec.get("template") or {}
        if not sel or not ((sel.get("matchLabels") or {}) or sel.get("matchExpressions")):
            errs.append("spec.selector: Required value")
        elif not label_selector_matches(match_labels_selector(sel),
                                        (tmpl.get("metadata") or {}).get("labels")):
            errs.append("spec.template.metadata.labels: Invalid value: %r: `selector` does not "
                        "match template `labels`" % ((tmpl.get("metadata") or {}).get("labels"),))
        if old is not None and sel != old["spec"].get("selector"):
            errs.append("spec.selector: Invalid value: %r: field is immutable" % (sel,))
        r = spec.get("replicas")
        if r is not None and (not isinstance(r, int) or r < 0):
            errs.append("spec.replicas: Invalid value: %r: must be greater than or equal to 0"
                        % (r,))
        errs += _container_errors("spec.template.spec.containers",
                                  (tmpl.get("spec") or {}).get("containers"))
    elif resource.key == "pods":
        errs += _container_errors("spec.containers", (spec or {}).get("containers"))
    elif resource.key == "services":
        spec = spec or {}
        ports = spec.get("ports") or []
        if not ports and spec.get("type", "ClusterIP") != "ExternalName" and \
                spec.get("clusterIP") != "None":
            errs.append("spec.ports: Required value")
        names = set()
        for i, p in enumerate(ports):
            port = p.get("port")
            if not isinstance(port, int) or not 0 < port < 65536:
                errs.append("spec.ports[%d].port: Invalid value: %r: must be between 1 and "
                            "65535, inclusive" % (i, port))
            if len(ports) > 1 and not p.get("name"):
                errs.append("spec.ports[%d].name: Required value" % i)
            if p.get("name") in names:
                errs.append('spec.ports[%d].name: Duplicate value: "%s"' % (i, p["name"]))
            names.add(p.get("name"))
        if old is not None and spec.get("clusterIP") and \
                spec.get("clusterIP") != old["spec"].get("clusterIP"):
            errs.append("spec.clusterIPs[0]: Invalid value: %r: may not change once set"
                        % ([spec["clusterIP"]],))
    elif resource.key == "horizontalpodautoscalers.autoscaling":
        spec = spec or {}
        ref = spec.get("scaleTargetRef") or {}
        if not ref.get("kind") or not ref.get("name"):
            errs.append("spec.scaleTargetRef: Required value")
        if not isinstance(spec.get("maxReplicas"), int) or spec["maxReplicas"] < 1:
            errs.append("spec.maxReplicas: Invalid value: %r: must be greater than or equal "
                        "to 1" % (spec.get("maxReplicas"),))
    return errs


# ---------------------------------------------------------------- defaults


def _default_probe(p):
    if not p:
        return
    p.setdefault("timeoutSeconds", 1)
    p.setdefault("periodSeconds", 10)
    p.setdefault("successThreshold", 1)
    p.setdefault("failureThreshold", 3)
    if "httpGet" in p:
        p["httpGet"].setdefault("scheme", "HTTP")
        p["httpGet"].setdefault("path", "/")


def default_pod_spec(spec):
    """The defaults the API fills into a PodSpec (pkg/apis/core/v1/defaults.go)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = c.get("image") or ""
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        c.setdefault("imagePullPolicy", "IfNotPresent" if tagged and
                     not image.endswith(":latest") else "Always")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")
        for name in ("readinessProbe", "livenessProbe", "startupProbe"):
            _default_probe(c.get(name))
    return spec


def apply_defaults(resource, obj, ip_allocator=None):
    """The defaulting of the kinds the reconciler writes, so that a client
    comparing what it wrote with what it reads meets the real API's extra
    fields."""
    spec = obj.get("spec")
    if resource.key == "deployments.apps":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strat.get("type", "RollingUpdate") == "RollingUpdate":
            strat["type"] = "RollingUpdate"
            ru = strat.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))
    elif resource.key == "pods":
        default_pod_spec(obj.setdefault("spec", {}))
    elif resource.key == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            if not spec.get("clusterIP") and ip_allocator is not None:
                spec["clusterIP"] = ip_allocator()
            if spec.get("clusterIP"):
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    elif resource.key == "horizontalpodautoscalers.autoscaling":
        spec = obj.setdefault("spec", {})
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    return obj


def initial_status(resource):
    """What PrepareForCreate leaves in status (None: no status at all)."""
    if resource.key == "pods":
        return {"phase": "Pending", "qosClass": "BestEffort"}
    if resource.key == "services":
        return {"loadBalancer": {}}
    if resource.key == "namespaces":
        return {"phase": "Active"}
    if resource.crd:
        return None
    return {} if resource.status else None


def is_cluster_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- discovery


def api_resource_list(group_version, resources):
    """The APIResourceList of one group version (what kubectl discovers)."""
    out = []
    for r in sorted(resources, key=lambda r: r.plural):
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.crd:
            entry["categories"] = ["all"]
        out.append(entry)
        if r.status:
            out.append({"name": r.plural + "/status", "singularName": "", "namespaced":
                        r.namespaced, "kind": r.kind, "verbs": list(SUB_VERBS)})
        if r.scale:
            out.append({"name": r.plural + "/scale", "singularName": "", "namespaced":
                        r.namespaced, "group": "autoscaling", "version": "v1",
                        "kind": "Scale", "verbs": list(SUB_VERBS)})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": out}


def api_group(name, versions):
    vs = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": vs,
            "preferredVersion": vs[0]}


# ---------------------------------------------------------------- strategic merge patch

# patchMergeKey of the lists a strategic merge patch merges by key (the
# rest are replaced, like in a merge patch)
SMP_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
            "volumeMounts": "mountPath", "conditions": "type", "ownerReferences": "uid",
            "imagePullSecrets": "name", "tolerations": "key", "ports": None}


def strategic_merge_patch(target, patch, field=None):
    """A strategic merge patch for built-in kinds: maps merge, the lists
    of SMP_KEYS merge by their key (ports: containerPort, or port for a
    Service), `$patch: delete|replace` and `$deleteFromPrimitiveList/`
    apply, `$setElementOrder/` and `$retainKeys` are accepted and ignored."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k == "$retainKeys":
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            out[name] = [x for x in out.get(name) or [] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and k in SMP_KEYS and isinstance(out.get(k), list) and \
                all(isinstance(x, dict) for x in v):
            out[k] = _merge_list(out[k], v, SMP_KEYS[k])
        else:
            out[k] = strategic_merge_patch(out.get(k), v, k)
    return out


def _merge_list(cur, patch, key):
    out = copy.deepcopy(cur)
    for item in patch:
        k = key or ("containerPort" if "containerPort" in item or
                    any("containerPort" in x for x in cur) else "port")
        idx = next((i for i, x in enumerate(out) if x.get(k) == item.get(k)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append({a: b for a, b in item.items() if a != "$patch"})
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


# ---------------------------------------------------------------- tables


def _jsonpath_tokens(path):
    """.a.b, ['dotted\\.key'] and [?(@.k=='v')] steps of a printer column."""
    toks, i = [], 0
    while i < len(path):
        if path[i] == ".":
            m = re.match(r"\.([A-Za-z0-9_-]+)", path[i:])
            if not m:
                raise ValueError("bad jsonPath %r" % path)
            toks.append(("key", m.group(1)))
            i += m.end()
        elif path.startswith("['", i):
            j = path.index("']", i)
            toks.append(("key", path[i + 2:j].replace("\\.", ".")))
            i = j + 2
        elif path.startswith("[?(@.", i):
            m = re.match(r"\[\?\(@\.([A-Za-z0-9_-]+)==['\"]([^'\"]*)['\"]\)\]", path[i:])
            if not m:
                raise ValueError("bad jsonPath %r" % path)
            toks.append(("filter", (m.group(1), m.group(2))))
            i += m.end()
        else:
            raise ValueError("bad jsonPath %r" % path)
    return toks


def jsonpath_get(obj, path):
    """The value a printer column's jsonPath selects (None when absent)."""
    cur = [obj]
    for kind, arg in _jsonpath_tokens(path):
        nxt = []
        for c in cur:
            if kind == "key" and isinstance(c, dict) and arg in c:
                nxt.append(c[arg])
            elif kind == "filter" and isinstance(c, list):
                nxt += [x for x in c if isinstance(x, dict) and str(x.get(arg[0])) == arg[1]]
        cur = nxt
    return cur[0] if cur else None


def _age(ts):
    import calendar
    import time
    try:
        secs = int(time.time() - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return "<unknown>"
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= 2 * n if unit != "m" else secs >= 120:
            return "%d%s" % (secs // n, unit)
    return "%ds" % max(secs, 0)


def table(resource, objects, resource_version, include_object="Metadata"):
    """A meta.k8s.io/v1 Table (what `kubectl get` asks for) of custom
    resources: Name, the CRD's additionalPrinterColumns, Age."""
    cols = [{"name": "Name", "type": "string", "format": "name", "description": "Name must "
             "be unique within a namespace.", "priority": 0}]
    for c in resource.printer_columns:
        cols.append({"name": c["name"], "type": c.get("type", "string"), "format": "",
                     "description": c.get("description", ""), "priority": c.get("priority", 0)})
    cols.append({"name": "Age", "type": "date", "format": "", "description": "", "priority": 0})
    rows = []
    for o in objects:
        cells = [o["metadata"]["name"]]
        for c in resource.printer_columns:
            cells.append(jsonpath_get(o, c["jsonPath"]))
        cells.append(_age(o["metadata"].get("creationTimestamp")))
        row = {"cells": cells}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": cols, "rows": rows}


# ---------------------------------------------------------------- structural schemas

_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool,
               "integer": int, "number": (int, float)}


def prune(value, schema, root=True):
    """Drops the fields a structural schema does not know, as the API does
    for custom resources (unless x-kubernetes-preserve-unknown-fields)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return value
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if root and k in ("apiVersion", "kind", "metadata"):
                out[k] = v
            elif v is None and isinstance(sub, dict) and not sub.get("nullable"):
                continue  # a null where the schema does not allow one is pruned (1.20+)
            elif sub is not None:
                out[k] = prune(v, sub, False)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[k] = v
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"], False) for v in value]
    return value


def schema_errors(value, schema, path=""):
    """Type errors against a structural schema, in the API's words."""
    if not isinstance(schema, dict) or value is None:
        return []
    t = schema.get("type")
    want = _JSON_TYPES.get(t)
    if want is not None and (not isinstance(value, want) or
                             (t in ("integer", "number") and isinstance(value, bool))):
        got = {dict: "object", list: "array", str: "string", bool: "boolean",
               int: "integer", float: "number"}.get(type(value), type(value).__name__)
        return ['%s: Invalid value: "%s": %s in body must be of type %s: "%s"' % (
            path or "<root>", got, path or "<root>", t, got)]
    errs = []
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for r in schema.get("required") or []:
            if r not in value:
                errs.append("%s: Required value" % ((path + "." if path else "") + r))
        for k, v in value.items():
            if path == "" and k in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(k, schema.get("additionalProperties"))
            errs += schema_errors(v, sub, (path + "." if path else "") + k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            errs += schema_errors(v, schema.get("items"), "%s[%d]" % (path, i))
    return errs
