"""The README's first commands give what the README says they give: the
lines `make run` suggests, run against the activator with the same
config/local.json, on this test's own ports."""
import json
import math
import os
import re
import subprocess
import threading
import time

from activator_harness import BUILD


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README_PORT, README_ADMIN = "127.0.0.1:8080", "127.0.0.1:9095"
# hey runs for this long instead of the README's 30 s: the pods the README
# promises are there within seconds (the panic window is 6 s).
HEY_SECONDS = 15


def make_run_block():
    """(command, expectation) pairs of the shell block after "`make run`
    serves": each command line with the comment lines under it."""
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("`make run` serves")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S).group(1)
    pairs = []
    for line in block.splitlines():
        if line.startswith("#"):
            pairs[-1][1].append(line.lstrip("# ").rstrip())
        elif line.strip():
            command, _, comment = line.partition("  #")
            pairs.append((command.strip(), [comment.strip()] if comment else []))
    return [(c, " ".join(e)) for c, e in pairs]


def local_config():
    with open(os.path.join(ROOT, "config/local.json")) as f:
        return json.load(f)


def seconds(duration):
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, duration
    return int(m.group(1))


def run_here(command, act):
    """The README's command line on this activator's ports."""
    command = command.replace(README_PORT, f"127.0.0.1:{act.port}")
    command = command.replace(README_ADMIN, f"127.0.0.1:{act.admin_port}")
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)


def test_make_run_uses_the_config_and_ports_the_readme_names():
    script = open(os.path.join(ROOT, "scripts/run.sh")).read()
    assert "config/local.json" in script
    assert "0.0.0.0:8080" in script and README_ADMIN in script


def test_the_readme_make_run_lines_do_what_it_says(activator_factory):
    act = activator_factory(local_config())
    commands = make_run_block()
    assert [c.split()[0] for c, _ in commands] == \
        ["curl", "curl", "hey", "build/activator", "curl"], commands
    for command, expected in commands:
        if command.startswith("curl -H"):
            # "# Hello World!   (a pod ... was started for it)"
            body = re.split(r"\s{2,}|\s\(", expected)[0]
            result = run_here(command, act)
            assert result.stdout.strip() == body, (command, result.stdout, result.stderr)
        elif command.startswith("build/activator status"):
            # -w follows until interrupted: one view is what it shows first.
            once = command.replace(" -w", "").replace("build/", BUILD + "/", 1)
            if f"127.0.0.1:{act.admin_port}" not in once:
                once = once.replace("status", f"status --admin 127.0.0.1:{act.admin_port}", 1)
            result = run_here(once, act)
            assert result.returncode == 0, result.stderr
            for word in ("REVISION", "DESIRED", "READY", "helloworld-go-00001", "POD"):
                assert word in result.stdout, result.stdout
        elif command.startswith("curl -s"):
            status = json.loads(run_here(command, act).stdout)
            revisions = status["services"][0]["revisions"]
            assert "traffic" in status["services"][0]
            assert all("pods" in r and "in_flight" in r for r in revisions)
        else:
            check_the_load_line(act, command, expected)


def check_the_load_line(act, command, expected):
    """"N pods (target P % of containerConcurrency CC ...); back to zero S s
    after the load stops (W s stable window, then the G s grace period)"."""
    cfg = local_config()
    scaler = cfg["autoscaler"]
    rev = cfg["services"][0]["revisions"][0]
    clients = int(re.search(r"-c (\d+)", command).group(1))
    pods = int(re.match(r"~?(\d+) pods", expected).group(1))
    target = rev["containerConcurrency"] * scaler["container-concurrency-target-percentage"] / 100
    assert pods == math.ceil(clients / target), (expected, clients, target)
    back = re.search(r"back to zero (\d+) s after the load stops \((\d+) s stable window, "
                     r"then the (\d+) s grace period\)", expected)
    assert back, expected
    window, grace = seconds(scaler["stable-window"]), seconds(scaler["scale-to-zero-grace-period"])
    assert (int(back.group(2)), int(back.group(3))) == (window, grace)
    assert int(back.group(1)) == window + grace

    ready_seen, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            ready_seen.append(act.revision_status(rev["name"])["ready_pods"])
            time.sleep(0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run_here(command.replace("-z 30s", f"-z {HEY_SECONDS}s"), act)
    finally:
        stop.set()
        sampler.join()
    assert result.returncode == 0, result.stderr
    codes = re.findall(r"\[(\d{3})\]\s+\d+ responses", result.stdout)
    assert codes == ["200"], result.stdout
    # The autoscaler may briefly see a little above 50 (a request is counted
    # from arrival to its last byte), never below: pods, or one more.
    assert pods <= max(ready_seen) <= pods + 1, (pods, sorted(set(ready_seen)))


def test_every_manifest_the_readmes_name_exists():
    """The Kubernetes steps name only files that are there (no step for a
    manifest that moved), and apply the seed Service straight after the
    default manifests: they hold nothing of its names."""
    named = set()
    for readme, base in (("README.md", ""), ("config/kubernetes/README.md", "config/kubernetes/")):
        text = open(os.path.join(ROOT, readme)).read()
        for path in re.findall(r"(config/kubernetes/[\w./-]*\w)", text):
            named.add(path)
        for path in re.findall(r"`((?:examples/)[\w./-]*\w|\d\d-[\w-]+\.yaml)`", text):
            named.add(base + path)
        assert "40-helloworld" not in text, readme
    missing = sorted(p for p in named if not os.path.exists(os.path.join(ROOT, p)))
    assert not missing, "named in the READMEs but not in the repository: %s" % missing
    assert "config/kubernetes/examples/without-crds/helloworld-go-00001.yaml" in named
    assert "config/kubernetes/examples/without-crds/config.json" in named
    for readme in ("README.md", "config/kubernetes/README.md"):
        text = open(os.path.join(ROOT, readme)).read()
        start = text.index("## One manifest per app")
        block = re.search(r"```sh\n(.*?)```", text[start:], re.S).group(1)
        first = [line for line in block.splitlines() if line.strip()][0]
        assert first == "kubectl apply -f config/kubernetes/examples/helloworld-go.yaml", \
            (readme, first)
