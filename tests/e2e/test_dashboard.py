"""The Grafana dashboard (config/grafana-dashboard.json) asks only for
metrics the programs serve: every metric name in its queries is in the
activator's /metrics, or a pod's queue-proxy :9090 (autoscaler) or :9091
(Prometheus) output, with every label the query filters or groups by."""
import json
import os
import re

import kp
from activator_harness import HOST, helloworld_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "config", "grafana-dashboard.json")

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "le"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def queries():
    with open(DASHBOARD) as f:
        board = json.load(f)
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            if node.get("type") == "query" and isinstance(node.get("query"), (str, dict)):
                q = node["query"]
                found.append(q if isinstance(q, str) else q.get("query", ""))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(board)
    return found


def names_and_labels(expr):
    """Metric names a PromQL expression reads, and the label names it
    filters or groups by."""
    labels = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {l.strip() for l in grouping.split(",") if l.strip()}
    labels |= set(re.findall(r"label_values\(.*,\s*(\w+)\s*\)", expr))
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"label_values\(\s*([a-zA-Z_:]\w*)\s*,\s*\w+\s*\)", r" \1 ", bare)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][\w:]*", bare):
        word = m.group(0)
        follows = bare[m.end():].lstrip()[:1]
        if word in PROMQL_WORDS or follows == "(" or word.startswith("$"):
            continue
        if bare[max(0, m.start() - 1)] == "$":
            continue
        if re.fullmatch(r"\d+\w*", word):
            continue
        names.add(word)
    return names, labels - {"le"}


def served_series(text):
    """{sample name: set of label names} from Prometheus text."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s", line)
        if m:
            labels = set(re.findall(r"([a-zA-Z_]\w*)=\"", m.group(2) or ""))
            series.setdefault(m.group(1), set()).update(labels)
    return series


def test_dashboard_queries_only_what_is_served(activator_factory, pod):
    act = activator_factory(helloworld_config())
    assert act.request("/", host=HOST)[0] == 200  # a cold start: pods, latencies, cold starts
    qp = pod(SERVING_REQUEST_METRICS_BACKEND="prometheus")
    assert qp.get("/").status == 200
    served = served_series(act.metrics())
    for port in (qp.metrics_port, qp.user_metrics_port):
        for name, labels in served_series(kp.request(port, "/metrics").body.decode()).items():
            served.setdefault(name, set()).update(labels)

    exprs = queries()
    assert len(exprs) >= 10, exprs
    missing = []
    for expr in exprs:
        names, labels = names_and_labels(expr)
        assert names, f"no metric found in {expr!r}"
        for name in names:
            if name not in served:
                missing.append(f"{name} (in {expr})")
                continue
            # Labels the query filters or groups by must exist on the series
            # it reads (a typo there is an empty panel, not an error).
            unknown = labels - served[name] - {"job", "instance"}
            # Grouping can name labels of the other side of a binary
            # operation; only a label on none of the query's metrics is wrong.
            unknown -= set().union(*(served.get(n, set()) for n in names))
            if unknown:
                missing.append(f"labels {sorted(unknown)} of {name} (in {expr})")
    assert not missing, "the dashboard asks for what nothing serves:\n" + "\n".join(missing)


def test_the_name_extraction_sees_names_and_labels():
    names, labels = names_and_labels(
        'histogram_quantile(0.99, sum by (le, revision_name) '
        '(rate(activator_request_latencies_bucket{namespace_name=~"$namespace"}[$__rate_interval])))')
    assert names == {"activator_request_latencies_bucket"}
    assert labels == {"revision_name", "namespace_name"}
    names, _ = names_and_labels("sum(a_total) / on(instance) group_left() b_gauge > bool 0")
    assert names == {"a_total", "b_gauge"}
    names, labels = names_and_labels('label_values(x_pods{namespace_name=~"$namespace"}, revision_name)')
    assert names == {"x_pods"} and labels == {"namespace_name", "revision_name"}
