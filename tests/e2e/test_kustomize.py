"""config/kubernetes/kustomization.yaml, rendered by the real `kubectl
kustomize` (Debian's kubernetes-client, kubectl 1.20 with kustomize 2.0.3,
or any newer kubectl on the PATH): it lists every manifest and renders them
unchanged; overlays written here, as config/kubernetes/README.md shows them,
move every object to another namespace, swap the image, and replace
config.json. Needs PyYAML (Debian: python3-yaml). No cluster needed."""
import functools
import glob
import json
import os
import re
import shutil
import subprocess

import pytest

import kp

yaml = pytest.importorskip("yaml", reason="PyYAML missing: apt-get install python3-yaml")

BASE = os.path.join(kp.REPO, "config", "kubernetes")
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl not found: `make deps-test` installs Debian's kubernetes-client")
NEW_NS = "apps"
NEW_IMAGE = "registry.example.com/kp:v1"
# Objects that are not in a namespace; every other kind must be.
CLUSTER_KINDS = ("Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition")


@functools.lru_cache(maxsize=None)
def kustomize_version():
    """(major, minor) of kustomize inside kubectl: kubectl 1.21+ names it in
    `kubectl version --client`; older ones (1.14-1.20) embed 2.0.3."""
    out = subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True,
                         timeout=30).stdout
    m = re.search(r"Kustomize Version: v?(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (2, 0)


def render(path):
    r = subprocess.run([KUBECTL, "kustomize", path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "kubectl kustomize %s: exit %d\n%s" % (path, r.returncode, r.stderr)
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def key(doc):
    return (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])


def listed_files():
    with open(os.path.join(BASE, "kustomization.yaml")) as f:
        return yaml.safe_load(f)["resources"]


def file_docs(name):
    with open(os.path.join(BASE, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def containers(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def test_every_manifest_is_listed_and_rendered_unchanged():
    on_disk = sorted(os.path.basename(p) for p in glob.glob(os.path.join(BASE, "*.yaml"))
                     if os.path.basename(p) != "kustomization.yaml")
    assert sorted(listed_files()) == on_disk, \
        "kustomization.yaml's resources differ from the manifests in %s" % BASE
    rendered = {key(d): d for d in render(BASE)}
    expected = {}
    for name in on_disk:
        for doc in file_docs(name):
            expected[key(doc)] = doc
    missing = sorted(set(expected) - set(rendered), key=str)
    assert not missing, "not in kubectl kustomize's output: %s" % missing
    extra = sorted(set(rendered) - set(expected), key=str)
    assert not extra, "kubectl kustomize made objects no file has: %s" % extra
    for k, doc in expected.items():
        assert rendered[k] == doc, "%s %s/%s renders differently from its file" % k


def readme_overlay():
    """The overlay config/kubernetes/README.md shows: its two yaml blocks
    (my-kp/kustomization.yaml, then what it adds for config.json)."""
    with open(os.path.join(BASE, "README.md")) as f:
        blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    main = [b for b in blocks if b.startswith("# my-kp/kustomization.yaml")]
    more = [b for b in blocks if b.startswith("# more of my-kp/kustomization.yaml")]
    assert len(main) == 1 and len(more) == 1, "README.md's overlay blocks not found"
    return main[0], more[0]


def write_readme_overlay(tmp_path, text, files=None):
    """As README.md says: my-kp/ beside config/ (here the path to it), and
    `bases:` for kustomize before 2.1."""
    text = text.replace("  - ../config/kubernetes ", "  - %s " % os.path.relpath(BASE, str(tmp_path)))
    if kustomize_version() < (2, 1):
        text = text.replace("resources:", "bases:")
    (tmp_path / "kustomization.yaml").write_text(text)
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    return str(tmp_path)


def test_overlay_moves_namespace_and_image(tmp_path):
    main, _ = readme_overlay()
    overlay = yaml.safe_load(main)
    assert overlay["namespace"] == NEW_NS
    assert overlay["images"] == [{"name": "kp", "newName": NEW_IMAGE.split(":")[0],
                                  "newTag": NEW_IMAGE.split(":")[1]}]
    base = {key(d): d for d in render(BASE)}
    out = render(write_readme_overlay(tmp_path, main))
    assert len(out) == len(base), "the overlay changed the number of objects"
    images = []
    for d in out:
        if d["kind"] in CLUSTER_KINDS:
            continue
        assert d["metadata"].get("namespace") == NEW_NS, "%s %s/%s not moved" % key(d)
        images += [c["image"] for c in containers(d)]
        for s in d.get("subjects", []):
            assert s.get("namespace") == NEW_NS, "%s %s: subject left in %s" % (
                d["kind"], d["metadata"]["name"], s.get("namespace"))
    assert images and set(images) == {NEW_IMAGE}, images
    # Knative's CRDs are cluster-wide: the overlay leaves them out of any
    # namespace, and they keep their names (a CRD's name is its group's).
    crds = sorted(d["metadata"]["name"] for d in out if d["kind"] == "CustomResourceDefinition")
    assert crds == ["configurations.serving.knative.dev", "revisions.serving.knative.dev",
                    "routes.serving.knative.dev", "services.serving.knative.dev"], crds
    assert not [d for d in out if d["kind"] == "CustomResourceDefinition"
                and d["metadata"].get("namespace")]
    # Every image of the base moved (the activator's pods; no app is installed).
    base_images = [c["image"] for d in base.values() for c in containers(d)]
    assert len(base_images) == len(images) and set(base_images) == {"kp:dev"}
    namespaces = [d["metadata"]["name"] for d in out if d["kind"] == "Namespace"]
    if kustomize_version() >= (3, 0):
        assert namespaces == [NEW_NS], namespaces
    else:
        # 2.0.3 leaves a Namespace's own name alone (the README says so).
        assert namespaces == ["kp-system"], namespaces


def test_overlay_replaces_config_json(tmp_path):
    """The README's overlay with a config.json of its own: the hand-written
    service of examples/without-crds/, moved to the overlay's namespace."""
    main, more = readme_overlay()
    with open(os.path.join(BASE, "examples", "without-crds", "config.json")) as f:
        config = json.load(f)
    config["services"][0]["namespace"] = NEW_NS
    out = render(write_readme_overlay(tmp_path, main + more,
                                      {"config.json": json.dumps(config, indent=2)}))
    maps = [d for d in out if d["kind"] == "ConfigMap"]
    assert [(m["metadata"]["name"], m["metadata"]["namespace"]) for m in maps] == \
        [("kp-config", NEW_NS)]
    assert json.loads(maps[0]["data"]["config.json"]) == config
    act = [d for d in out if d["kind"] == "Deployment" and d["metadata"]["name"] == "kp-activator"]
    volumes = act[0]["spec"]["template"]["spec"]["volumes"]
    assert [v["configMap"]["name"] for v in volumes if "configMap" in v] == ["kp-config"]
    # The base installs no app: the activator's Deployment is the only one.
    assert [d["metadata"]["name"] for d in out if d["kind"] == "Deployment"] == ["kp-activator"]
