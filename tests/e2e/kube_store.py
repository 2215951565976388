"""The object semantics of the fake API server (fake_kube.FakeKube mixes
this in): create, update, patch and delete as the real API does them
(defaults, validation, generation, status subresource, preconditions,
no-op writes), lists, CRD registration, the garbage collector, and the
in-process helpers tests use. State (the objects, the lock, _bump, the
served resources) is FakeKube's."""
import copy
import json
import time
import uuid

from kube_api import (APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, ApiError,
                      PatchError, apply_defaults, field_selector_matches, initial_status,
                      json_patch, knative_crd_docs, label_selector_matches, load_crd_docs,
                      merge_patch, name_errors, now_rfc3339, parse_label_selector,
                      prune, random_suffix, resources_of_crd, schema_errors,
                      strategic_merge_patch, validate)


class ObjectStore:
    # ------------------------------------------------------------ objects (test helpers)
    # In-process reads and writes with the API's semantics (defaults,
    # validation, generation, resourceVersion, events, garbage collection),
    # without RBAC and without an entry in `requests`. `resource` is a key
    # ("services.serving.knative.dev"), a plural ("deployments"; "services"
    # is the core Service), a short name ("ksvc", "rev") or a kind. Errors
    # raise ApiError (its .code and .status are the API's answer).
    def served(self, resource):
        """True when the API serves that resource now."""
        try:
            self._resource(resource)
            return True
        except KeyError:
            return False

    def install_crds(self, path=None):
        """Installs CustomResourceDefinitions, as `kubectl apply -f` of a CRD
        file would: from a YAML file (group, names, served versions,
        subresources), or Knative Serving's four v1 CRDs without a path.
        Until then /apis/serving.knative.dev/... answers 404. Returns the
        resource keys served; CRDs already installed are left as they are."""
        docs = knative_crd_docs() if path is None else load_crd_docs(path)
        crd_res = self._resource("customresourcedefinitions.apiextensions.k8s.io")
        keys = []
        for d in docs:
            with self._lock:
                exists = (crd_res.key, "", d["metadata"]["name"]) in self._objects
            if not exists:
                self._create(crd_res, "", copy.deepcopy(d))
            keys.append("%s.%s" % (d["spec"]["names"]["plural"], d["spec"]["group"]))
        return keys

    def add_namespace(self, name):
        """Creates a namespace (objects may only be created in existing ones;
        default, kube-system, kube-public and kube-node-lease exist)."""
        with self._lock:
            if ("namespaces", "", name) in self._objects:
                return self.get("namespaces", None, name)
        return self._create(self._resource("namespaces"), "", {
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})

    def get(self, resource, ns, name):
        """A copy of the stored object, or None."""
        res = self._resource(resource)
        with self._lock:
            o = self._objects.get((res.key, ns or "", name))
            return copy.deepcopy(o) if o is not None else None

    def list(self, resource, ns=None, selector=None):
        """Copies of the objects (in ns, or everywhere when None) matching a
        label selector: a string ("app=x,!y") or a dict of labels."""
        res = self._resource(resource)
        if isinstance(selector, dict):
            selector = ",".join("%s=%s" % kv for kv in sorted(selector.items()))
        sel = parse_label_selector(selector or "")
        with self._lock:
            return [copy.deepcopy(o) for (r, n, _), o in sorted(self._objects.items())
                    if r == res.key and (ns is None or n == (ns or "")) and
                    label_selector_matches(sel, o["metadata"].get("labels"))]

    def create(self, obj, ns=None):
        """POST: the resource comes from obj's apiVersion and kind; ns
        defaults to metadata.namespace or "default". Returns the stored
        object (409 AlreadyExists raises)."""
        res = self._resource_of_obj(obj)
        ns = (ns or (obj.get("metadata") or {}).get("namespace") or "default") \
            if res.namespaced else ""
        return self._create(res, ns, copy.deepcopy(obj))

    def update(self, obj, subresource=None):
        """PUT of the whole object (or of its status with
        subresource="status"); metadata.resourceVersion is the precondition."""
        res = self._resource_of_obj(obj)
        meta = obj.get("metadata") or {}
        ns = (meta.get("namespace") or "default") if res.namespaced else ""
        return self._update(res, ns, meta.get("name"), copy.deepcopy(obj), subresource)

    def apply(self, obj):
        """Creates obj, or updates it as `kubectl apply` would with the given
        fields: spec and the other top-level sections become obj's (plus
        defaults), labels and annotations are replaced when given, a status
        subresource is kept (write it with set_status). generation moves
        as the API moves it. Returns the object."""
        res = self._resource_of_obj(obj)
        meta = obj.get("metadata") or {}
        ns = (meta.get("namespace") or "default") if res.namespaced else ""
        with self._lock:
            old = self._objects.get((res.key, ns, meta.get("name")))
            if old is None:
                new = copy.deepcopy(obj)
                new.setdefault("metadata", {}).pop("resourceVersion", None)
                return self._create(res, ns, new)
            new = copy.deepcopy(obj)
            m = new["metadata"] = dict(copy.deepcopy(old["metadata"]), **{
                k: v for k, v in meta.items() if k in ("labels", "annotations",
                                                       "ownerReferences", "finalizers")})
            m["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self._update(res, ns, meta["name"], new)

    def patch(self, resource, ns, name, patch, subresource=None, content_type=MERGE_PATCH):
        """PATCH (a merge patch unless content_type says otherwise)."""
        res = self._resource(resource)
        return self._patch(res, ns or "", name, json.dumps(patch).encode(), content_type,
                           subresource)

    def set_status(self, resource, ns, name, status):
        """Writes the status subresource as a controller would (no
        precondition): the object's status becomes `status`."""
        res = self._resource(resource)
        with self._lock:
            old = self._objects.get((res.key, ns or "", name))
            if old is None:
                raise self._not_found(res, name)
            obj = copy.deepcopy(old)
            obj["status"] = copy.deepcopy(status)
            return self._update(res, ns or "", name, obj, "status")

    def delete(self, resource, ns, name, propagation=None, grace=None):
        """DELETE (propagation: None/"Background", "Foreground", "Orphan";
        grace: gracePeriodSeconds, 0 removes a pod at once). Returns the
        answer (a Status, or the pod); ApiError 404 if missing."""
        return self._delete(self._resource(resource), ns or "", name, propagation, grace)

    def touch(self, resource, ns, name):
        """A concurrent writer: changes an annotation, so the object gets a
        new resourceVersion (and a MODIFIED event) without a new
        generation; a client's PUT with the previous version then gets 409."""
        res = self._resource(resource)
        with self._lock:
            old = self._objects.get((res.key, ns or "", name))
            if old is None:
                raise self._not_found(res, name)
            self._touches += 1
            new = copy.deepcopy(old)
            new["metadata"].setdefault("annotations", {})["fake-kube/touched"] = \
                str(self._touches)
            return self._commit_update(res, ns or "", old, new)

    def wait_for(self, resource, ns, name, predicate=None, timeout=10.0):
        """Waits until predicate(obj) is true (obj is None while absent;
        default predicate: the object exists); returns obj. AssertionError
        with the last state on timeout."""
        res = self._resource(resource)
        predicate = predicate or (lambda o: o is not None)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                o = self._objects.get((res.key, ns or "", name))
                o = copy.deepcopy(o) if o is not None else None
                if predicate(o):
                    return o
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake-kube: %s %s/%s: condition not met in %.1fs; "
                                         "last state: %s" % (res.key, ns, name, timeout,
                                                             json.dumps(o)[:3000]))
                self._cond.wait(min(left, 0.5))

    def wait_gone(self, resource, ns, name, timeout=10.0):
        return self.wait_for(resource, ns, name, lambda o: o is None, timeout)

    def events_after(self, rv, timeout=0.5):
        """[(rv, resource key, ns, type, obj)] of the changes after rv,
        waiting up to timeout for one; None when rv is compacted away (the
        caller relists). For in-process controllers (kubelet_sim)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if rv < self._oldest_rv:
                    return None
                out = [(e[0], e[1], e[2], e[3], copy.deepcopy(e[4]))
                       for e in self._events if e[0] > rv]
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self._cond.wait(min(left, 0.5))

    # ------------------------------------------------------------ generic semantics
    def _serve(self, res):
        with self._lock:
            self._served[res.key] = res
            self._gvr[(res.group, res.version, res.plural)] = res

    def _unserve(self, group, plural):
        with self._lock:
            for k, r in list(self._gvr.items()):
                if r.group == group and r.plural == plural:
                    del self._gvr[k]
                    self._served.pop(r.key, None)

    def _resource(self, name):
        """A served Resource by key ("services.serving.knative.dev"), plural
        ("deployments"; the core group wins, as in kubectl), short name
        ("ksvc"), kind ("Revision"), or "plural.group"; KeyError if none."""
        if hasattr(name, "key"):
            return name
        with self._lock:
            served = list(self._served.values())
        low = name.lower()
        for test in (lambda r: r.key == low,
                     lambda r: r.plural == low and not r.group,
                     lambda r: r.plural == low,
                     lambda r: low in r.short_names or r.singular == low,
                     lambda r: r.kind.lower() == low):
            found = [r for r in served if test(r)]
            if found:
                return found[0]
        raise KeyError("fake-kube: no served resource %r (served: %s)" % (
            name, ", ".join(sorted(r.key for r in served))))

    def _resource_of_obj(self, obj):
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        with self._lock:
            for r in self._served.values():
                if (r.group, r.version, r.kind) == (group, version, kind):
                    return r
        raise KeyError("fake-kube: no served resource for %s %s" % (api_version, kind))

    @staticmethod
    def _qualified_kind(res):
        return "%s.%s" % (res.kind, res.group) if res.group else res.kind

    def _not_found(self, res, name):
        return ApiError(404, '%s "%s" not found' % (res.key, name), "NotFound",
                        {"name": name, "group": res.group, "kind": res.plural})

    def _invalid(self, res, name, errs):
        return ApiError(422, '%s "%s" is invalid: %s' % (
            self._qualified_kind(res), name, errs[0] if len(errs) == 1 else
            "[" + ", ".join(errs) + "]"), "Invalid",
            {"name": name, "group": res.group, "kind": res.kind,
             "causes": [{"reason": "FieldValueInvalid", "message": e,
                         "field": e.split(":")[0]} for e in errs]})

    def _conflict(self, res, name, why="the object has been modified; please apply your "
                  "changes to the latest version and try again"):
        return ApiError(409, 'Operation cannot be fulfilled on %s "%s": %s' % (res.key, name, why),
                        "Conflict", {"name": name, "group": res.group, "kind": res.plural})

    def _authorize_as(self, user, verb, group, plural, sub, ns, name):
        resource = plural + ("/" + sub if sub else "")
        if self.allowed(user, verb, group, resource, ns if ns is not None else ""):
            return
        key = "%s.%s" % (plural, group) if group else plural
        who = '%s "%s"' % (key, name) if name else key
        where = 'in the namespace "%s"' % ns if ns is not None else "at the cluster scope"
        raise ApiError(403, '%s is forbidden: User "%s" cannot %s resource "%s" in API group '
                       '"%s" %s' % (who, user, verb, resource, group, where), "Forbidden",
                       {"name": name, "group": group, "kind": plural} if name else
                       {"group": group, "kind": plural})

    def _check_type(self, res, obj):
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != res.api_version:
            raise ApiError(400, "the API version in the data (%s) does not match the expected "
                           "API version (%s)" % (av, res.api_version))
        if kind and kind != res.kind:
            raise ApiError(400, "the kind in the data (%s) does not match the expected kind "
                           "(%s)" % (kind, res.kind))

    def _alloc_cluster_ip(self):
        self._next_ip += 1
        return "10.96.%d.%d" % (self._next_ip // 250, self._next_ip % 250 + 2)

    def _list(self, res, ns, sel, fsel, q):
        rv = q.get("resourceVersion", "")
        with self._lock:
            if q.get("resourceVersionMatch") == "Exact" and rv and int(rv) < self._oldest_rv:
                raise ApiError(410, "The resourceVersion for the provided list is too old.",
                               "Expired")
            items = []
            for (r, n, _), o in sorted(self._objects.items()):
                if r == res.key and (ns is None or n == ns) and \
                        label_selector_matches(sel, o["metadata"].get("labels")) and \
                        field_selector_matches(fsel, o):
                    it = copy.deepcopy(o)
                    if not res.crd:  # typed lists carry kind/apiVersion once, on the list
                        del it["kind"], it["apiVersion"]
                    items.append(it)
            return {"kind": res.kind + "List", "apiVersion": res.api_version,
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _create(self, res, ns, obj):
        """POST semantics (lock taken here): the stored object."""
        self._check_type(res, obj)
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata: expected an object")
        with self._lock:
            if res.namespaced:
                if meta.get("namespace") not in (None, "", ns):
                    raise ApiError(400, "the namespace of the provided object does not match "
                                   "the namespace sent on the request")
                if ("namespaces", "", ns) not in self._objects:
                    raise ApiError(404, 'namespaces "%s" not found' % ns, "NotFound",
                                   {"name": ns, "kind": "namespaces"})
            if meta.get("resourceVersion"):
                raise ApiError(500, "resourceVersion should not be set on objects to be "
                               "created", "InternalError")
            name = meta.get("name") or ""
            if not name and meta.get("generateName"):
                for _ in range(20):
                    name = meta["generateName"] + random_suffix(5)
                    if (res.key, ns, name) not in self._objects:
                        break
            if not name:
                raise self._invalid(res, "", ["metadata.name: Required value: name or "
                                              "generateName is required"])
            new = copy.deepcopy(obj)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            m = new["metadata"] = dict(meta)
            for k in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "selfLink", "managedFields"):
                m.pop(k, None)
            m["name"] = name
            if res.namespaced:
                m["namespace"] = ns
            else:
                m.pop("namespace", None)
            m["uid"] = str(uuid.uuid4())
            m["creationTimestamp"] = now_rfc3339()
            if res.generation:
                m["generation"] = 1
            if res.status:
                st = initial_status(res)
                if st is None:
                    new.pop("status", None)
                else:
                    new["status"] = st
            apply_defaults(res, new, self._alloc_cluster_ip)
            if res.schema:
                new = prune(new, res.schema)
            errs = name_errors(res, name) + validate(res, new) + schema_errors(new, res.schema)
            if errs:
                raise self._invalid(res, name, errs)
            if (res.key, ns, name) in self._objects:
                raise ApiError(409, '%s "%s" already exists' % (res.key, name), "AlreadyExists",
                               {"name": name, "group": res.group, "kind": res.plural})
            if res.key == "customresourcedefinitions.apiextensions.k8s.io":
                self._register_crd(new)
            self._bump(res.key, ns, "ADDED", new)
            return copy.deepcopy(new)

    def _register_crd(self, crd):
        try:
            served = resources_of_crd(crd)
        except ValueError as e:
            raise ApiError(422, str(e), "Invalid")
        names = crd["spec"]["names"]
        crd["status"] = {"acceptedNames": {k: names[k] for k in ("plural", "kind", "singular",
                                                                  "shortNames", "listKind")
                                           if k in names},
                         "conditions": [{"type": t, "status": "True", "reason": r,
                                         "lastTransitionTime": now_rfc3339(), "message": m}
                                        for t, r, m in (
                                            ("NamesAccepted", "NoConflicts",
                                             "no conflicts found"),
                                            ("Established", "InitialNamesAccepted",
                                             "the initial names have been accepted"))],
                         "storedVersions": [v["name"] for v in crd["spec"]["versions"]
                                            if v.get("storage")]}
        for r in served:
            self._serve(r)

    def _changed(self, res, old, new):
        """Whether an update bumps metadata.generation: any change outside
        metadata (and outside status when status is a subresource)."""
        skip = {"metadata", "status"} if res.status else {"metadata"}
        keys = (set(old) | set(new)) - skip
        return any(old.get(k) != new.get(k) for k in keys)

    def _commit_update(self, res, ns, old, new):
        """Stores new over old (lock held). A write that changes nothing is
        not stored: no new resourceVersion, no event, as etcd3's store does."""
        a, b = copy.deepcopy(old), copy.deepcopy(new)
        a["metadata"].pop("resourceVersion", None)
        b["metadata"].pop("resourceVersion", None)
        if a == b:
            return copy.deepcopy(old)
        if res.generation and self._changed(res, old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._bump(res.key, ns, "MODIFIED", new)
        return copy.deepcopy(new)

    def _keep_server_fields(self, res, old, new, sub):
        """What a client cannot change with a write of the main resource
        (sub None) or of its status (sub "status")."""
        if sub == "status":
            out = copy.deepcopy(old)
            if "status" in new:
                out["status"] = copy.deepcopy(new["status"])
            else:
                out.pop("status", None)
            return self._checked(res, old, out)
        out = copy.deepcopy(new)
        out["apiVersion"], out["kind"] = res.api_version, res.kind
        m = out["metadata"] = dict(out.get("metadata") or {})
        for k in ("name", "namespace", "uid", "creationTimestamp", "generation",
                  "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in old["metadata"]:
                m[k] = old["metadata"][k]
            else:
                m.pop(k, None)
        if res.status:
            if "status" in old:
                out["status"] = copy.deepcopy(old["status"])
            else:
                out.pop("status", None)
        if res.key == "services" and old.get("spec", {}).get("clusterIP") and \
                not (out.get("spec") or {}).get("clusterIP"):
            # registry/core/service: allocated values carry over an update
            out.setdefault("spec", {})["clusterIP"] = old["spec"]["clusterIP"]
            out["spec"].setdefault("clusterIPs", old["spec"].get("clusterIPs"))
        apply_defaults(res, out)
        return self._checked(res, old, out)

    def _checked(self, res, old, out):
        """out pruned to the CRD's schema, or 422 with the API's errors."""
        if res.schema:
            out = prune(out, res.schema)
        errs = validate(res, out, old) + schema_errors(out, res.schema)
        if errs:
            raise self._invalid(res, old["metadata"]["name"], errs)
        return out

    def _update(self, res, ns, name, obj, sub=None):
        """PUT semantics (lock taken here)."""
        self._check_type(res, obj)
        meta = obj.get("metadata") or {}
        if meta.get("name") != name:
            raise ApiError(400, "the name of the object (%s) does not match the name on the "
                           "URL (%s)" % (meta.get("name") or "", name))
        if res.namespaced and meta.get("namespace") not in (None, "", ns):
            raise ApiError(400, "the namespace of the provided object does not match the "
                           "namespace sent on the request")
        with self._lock:
            old = self._objects.get((res.key, ns, name))
            if old is None:
                if res.create_on_update and sub is None:
                    obj = copy.deepcopy(obj)
                    obj["metadata"].pop("resourceVersion", None)
                    return self._create(res, ns, obj)
                raise self._not_found(res, name)
            rv = meta.get("resourceVersion")
            if not rv:
                if not res.unconditional_update:
                    raise self._invalid(res, name, [
                        "metadata.resourceVersion: Invalid value: 0x0: must be specified for "
                        "an update"])
            elif str(rv) != old["metadata"]["resourceVersion"]:
                raise self._conflict(res, name)
            return self._commit_update(res, ns, old,
                                       self._keep_server_fields(res, old, obj, sub))

    def _patch(self, res, ns, name, body, ctype, sub=None):
        """PATCH semantics (lock taken here): merge patch, JSON patch, and
        strategic merge patch on built-in kinds only."""
        accepted = "application/json-patch+json, application/merge-patch+json, " + \
            ("" if res.crd else "application/strategic-merge-patch+json, ") + \
            "application/apply-patch+yaml"
        if ctype == APPLY_PATCH:
            raise ApiError(415, "fake-kube does not implement server-side apply (%s)" % ctype,
                           "UnsupportedMediaType")
        if ctype not in (MERGE_PATCH, JSON_PATCH) and not (ctype == STRATEGIC_PATCH and
                                                           not res.crd):
            raise ApiError(415, "the body of the request was in an unknown format - accepted "
                           "media types include: " + accepted, "UnsupportedMediaType")
        try:
            patch = json.loads(body or b"null")
        except ValueError as e:
            raise ApiError(400, "error decoding patch: %s" % e)
        if ctype != JSON_PATCH and not isinstance(patch, dict):
            raise ApiError(400, "json: cannot unmarshal into Go value of type "
                           "map[string]interface {}")
        with self._lock:
            old = self._objects.get((res.key, ns, name))
            if old is None:
                raise self._not_found(res, name)
            try:
                if ctype == JSON_PATCH:
                    patched = json_patch(old, patch)
                elif ctype == STRATEGIC_PATCH:
                    patched = strategic_merge_patch(old, patch)
                else:
                    patched = merge_patch(old, patch)
            except PatchError as e:
                raise ApiError(422, str(e), "Invalid")
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise ApiError(422, "the patch removed the object's metadata", "Invalid")
            rv = patched["metadata"].get("resourceVersion")
            if rv and str(rv) != old["metadata"]["resourceVersion"]:
                raise self._conflict(res, name)
            patched["metadata"]["name"] = name
            return self._commit_update(res, ns, old,
                                       self._keep_server_fields(res, old, patched, sub))

    def _delete(self, res, ns, name, policy=None, grace=None, preconditions=None):
        """DELETE semantics (lock taken here). Pods bound to a node
        terminate gracefully (deletionTimestamp; the kubelet removes them);
        the rest go at once, their dependents through the garbage
        collector (Background, the default), before them (Foreground), or
        keep living without the owner reference (Orphan)."""
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise ApiError(400, 'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                           'Unsupported value: "%s": supported values: "Foreground", '
                           '"Background", "Orphan", "nil"' % policy, "BadRequest")
        with self._lock:
            old = self._objects.get((res.key, ns, name))
            if old is None:
                raise self._not_found(res, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise self._conflict(res, name, "Precondition failed: UID in precondition: "
                                     "%s, UID in object meta: %s" % (pre["uid"],
                                                                     old["metadata"]["uid"]))
            if pre.get("resourceVersion") and \
                    pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise self._conflict(res, name, "Precondition failed: ResourceVersion in "
                                     "precondition: %s, ResourceVersion in object meta: %s" % (
                                         pre["resourceVersion"],
                                         old["metadata"]["resourceVersion"]))
            if res.key == "pods" and (old.get("spec") or {}).get("nodeName") and grace != 0:
                if old["metadata"].get("deletionTimestamp"):
                    return copy.deepcopy(old)
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = grace if grace is not None \
                    else old["spec"].get("terminationGracePeriodSeconds", 30)
                self._bump(res.key, ns, "MODIFIED", new)
                return copy.deepcopy(new)
            uid = old["metadata"]["uid"]
            if policy == "Foreground":
                self._collect(uid, "Foreground")
            gone = copy.deepcopy(old)
            self._bump(res.key, ns, "DELETED", gone)
            if res.key == "customresourcedefinitions.apiextensions.k8s.io":
                self._drop_crd(old)
            if policy == "Orphan":
                self._orphan(uid)
            elif policy != "Foreground":
                self._gc_queue.put(uid)
            if res.key == "pods":
                return copy.deepcopy(gone)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": res.group, "kind": res.plural,
                                "uid": uid}}

    def _drop_crd(self, crd):
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        key = "%s.%s" % (plural, group)
        for k in [k for k in self._objects if k[0] == key]:
            self._bump(key, k[1], "DELETED", copy.deepcopy(self._objects[k]))
        self._unserve(group, plural)

    def _dependents(self, uid):
        return [k for k, o in sorted(self._objects.items())
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]

    def _orphan(self, uid):
        for key in self._dependents(uid):
            o = copy.deepcopy(self._objects[key])
            refs = [r for r in o["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if refs:
                o["metadata"]["ownerReferences"] = refs
            else:
                del o["metadata"]["ownerReferences"]
            self._bump(key[0], key[1], "MODIFIED", o)

    def _collect(self, uid, policy="Background"):
        """The garbage collector's pass for a deleted owner (lock held):
        dependents whose every owner is gone are deleted with the same
        policy; those with a live owner only lose the dangling reference."""
        live = {o["metadata"]["uid"] for o in self._objects.values()}
        for key in self._dependents(uid):
            o = self._objects.get(key)
            if o is None:
                continue
            others = [r for r in o["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if any(r.get("uid") in live for r in others):
                self._orphan_one(key, uid)
                continue
            res = self._served.get(key[0])
            if res is None:
                continue
            try:
                self._delete(res, key[1], key[2], policy)
            except ApiError:
                pass

    def _orphan_one(self, key, uid):
        o = copy.deepcopy(self._objects[key])
        o["metadata"]["ownerReferences"] = [r for r in o["metadata"]["ownerReferences"]
                                            if r.get("uid") != uid]
        self._bump(key[0], key[1], "MODIFIED", o)

    def _run_gc(self):
        while True:
            uid = self._gc_queue.get()
            if uid is None:
                return
            if self.gc_delay:
                time.sleep(self.gc_delay)
            with self._lock:
                self._collect(uid)
