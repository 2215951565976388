#!/usr/bin/env python3
"""Checks the source layout: which folder may #include which (the ALLOWED table
below), no cycles between folders, common/ knows no product, products don't
know each other, no file #includes a .c file (tests link the libraries), and
inside a product folder no two modules (a .c and its .h) include each other,
directly or through others: each module's header is its whole public face, so
an include loop is a call loop.
Usage: check_layout.py [--root DIR] [--graph]; exit 1 on any violation."""
import argparse
import os
import re
import sys

# folder -> the folders its files may include (edges to its own folder are free).
ALLOWED = {
    "common/base": [],  # log, strbuf, env, mem_trim, prometheus text, clock...
    "common/http": ["common/base"],  # the HTTP engine: server, upstream, proxy
    "common/kube": ["common/base"],  # the Kubernetes client
    "common/autoscaling": ["common/base"],  # KPA, stats, stat report (stat.proto)
    "queue-proxy": ["common/base", "common/http", "common/autoscaling"],  # the program
    "activator/config": ["common/base", "common/autoscaling"],  # config file parser
    "activator/backend": ["activator/config", "common/base", "common/kube"],  # local, kubernetes
    "activator/knative": ["activator/config", "common/base", "common/kube",
                          "common/autoscaling"],  # Knative's Service API: reconciler, routes
    "activator": ["activator/config", "activator/backend", "activator/knative", "common/base",
                  "common/http", "common/kube", "common/autoscaling"],  # the activator program (core)
    "examples/helloworld": ["common/base", "common/http"],  # the sample app
}
SCANNED = ["common", "activator", "queue-proxy", "examples", "tests"]
PRODUCTS = ["activator", "queue-proxy", "examples"]
GENERATED = {"stat.pb-c.h": "common/autoscaling"}  # built from common/autoscaling/stat.proto
INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.MULTILINE)


def top(folder, depth=1):
    return "/".join(folder.split("/")[:depth])


def resolve(root, src, name):
    """Folder (relative to root) of the file `#include "name"` in src means, or None."""
    path = resolve_path(root, src, name)
    if os.path.basename(name) in GENERATED:
        return GENERATED[os.path.basename(name)]
    return os.path.dirname(path) if path else None


def resolve_path(root, src, name):
    """The file (relative to root) `#include "name"` in src means, or None."""
    for base in (os.path.dirname(src), "common", ""):
        path = os.path.normpath(os.path.join(base, name))
        if not path.startswith("..") and os.path.isfile(os.path.join(root, path)):
            return path
    return None


def scan(root):
    """-> (folders, includes): includes are (file, line, name, target folder or None,
    target path or None)."""
    folders, includes = set(), []
    for sub in SCANNED:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, sub)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(f for f in filenames if f.endswith((".c", ".h"))):
                src = os.path.relpath(os.path.join(dirpath, fname), root)
                folders.add(os.path.dirname(src))
                with open(os.path.join(root, src), errors="replace") as f:
                    text = f.read()
                for m in INCLUDE_RE.finditer(text):
                    line = text.count("\n", 0, m.start()) + 1
                    includes.append((src, line, m.group(1), resolve(root, src, m.group(1)),
                                     resolve_path(root, src, m.group(1))))
    return folders, includes


def module(path):
    """A module is a .c file and its header: activator/revision.{c,h}."""
    return os.path.splitext(path)[0]


def rule_broken(src_folder, dst):
    """The rule an include from src_folder into folder dst breaks, or None."""
    if top(src_folder) == "common" and top(dst) != "common":
        return "common/ must not know a product"
    if top(dst) == "tests" and top(src_folder, 2) != top(dst, 2):
        return "nothing may include a file under tests/ except its own tests subfolder"
    if top(src_folder) == "tests":
        return None  # tests are leaves: they may include anything else
    if top(src_folder) in PRODUCTS and top(dst) in PRODUCTS and top(src_folder) != top(dst):
        return "a product must not include another product (%s -> %s)" % (top(src_folder), top(dst))
    if dst not in ALLOWED.get(src_folder, []):
        return ("edge %s -> %s is not allowed: add it to ALLOWED in scripts/check_layout.py "
                "if the dependency is intended" % (src_folder, dst))
    return None


def find_cycles(edges):
    """One list of folders per distinct cycle met by a depth-first search."""
    cycles, seen, done, stack = [], set(), set(), []

    def visit(node):
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt in stack:
                cycle = stack[stack.index(nxt):]
                i = cycle.index(min(cycle))
                key = tuple(cycle[i:] + cycle[:i])
                if key not in seen:
                    seen.add(key)
                    cycles.append(list(key))
            elif nxt not in done:
                visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(edges):
        if node not in done:
            visit(node)
    return cycles


def print_table(title, table, folders):
    print(title)
    for folder in sorted(folders):
        print("  %s -> %s" % (folder, ", ".join(sorted(table.get(folder, ()))) or "(nothing)"))


def main():
    default_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=default_root, help="repository root (default: %(default)s)")
    parser.add_argument("--graph", action="store_true", help="print the allowed and actual folder graphs")
    args = parser.parse_args()
    root = os.path.abspath(args.root)

    folders, includes = scan(root)
    edges, example, errors = {}, {}, []
    modules, module_example = {}, {}
    for src, line, name, dst, path in includes:
        where = '%s:%d: #include "%s"' % (src, line, name)
        if name.endswith(".c"):
            errors.append("%s: includes a .c file; tests must link the library instead" % where)
        src_folder = os.path.dirname(src)
        if path and dst == src_folder and top(src_folder) in PRODUCTS:
            a, b = module(src), module(path)
            if a != b:
                modules.setdefault(a, set()).add(b)
                module_example.setdefault((a, b), where)
        if dst is None or dst == src_folder:
            continue
        edges.setdefault(src_folder, set()).add(dst)
        example.setdefault((src_folder, dst), where)
        broken = rule_broken(src_folder, dst)
        if broken:
            errors.append("%s (-> %s): %s" % (where, dst, broken))
    for cycle in find_cycles(edges):
        steps = zip(cycle, cycle[1:] + cycle[:1])
        errors.append("cycle between folders: %s (%s)" % (
            " -> ".join(cycle + cycle[:1]), "; ".join(example[s] for s in steps)))

    for cycle in find_cycles(modules):
        steps = zip(cycle, cycle[1:] + cycle[:1])
        errors.append("modules call each other in a loop: %s (%s); let one of them hand "
                      "over through a callback it owns, or move the shared part out" % (
                          " -> ".join(cycle + cycle[:1]), "; ".join(module_example[s] for s in steps)))

    if args.graph:
        print_table("allowed:", ALLOWED, ALLOWED)
        print_table("actual:", edges, folders | set(edges))
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print("layout broken: %d violation(s)" % len(errors), file=sys.stderr)
        return 1
    print("layout ok: %d folders, %d edges" % (len(folders), sum(len(v) for v in edges.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
