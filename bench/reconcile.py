"""N Knative Services at once on the fake API, one activator reconciling:
time to all Ready, API requests, activator RSS. Run by bench/reconcile."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

from fake_kube import ALL_RULES, FakeKube  # noqa: E402

BUILD = os.environ["KP_BUILD"]
NS = "default"


def service(i):
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "svc-%04d" % i, "namespace": NS},
            "spec": {"template": {"spec": {"containerConcurrency": 10, "containers": [
                {"image": "kp:dev", "env": [{"name": "TARGET", "value": str(i)}]}]}}}}


def ready(o):
    if not o:
        return False
    st = o.get("status", {})
    return st.get("observedGeneration") == o["metadata"].get("generation") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def run(n, workdir):
    fake = FakeKube().start()
    proc = None
    try:
        fake.install_crds()
        token = fake.add_user("activator", ALL_RULES)
        token_file = fake.write_token_file(token, os.path.join(workdir, "token-%d" % n))
        cfg = os.path.join(workdir, "config-%d.json" % n)
        with open(cfg, "w") as f:
            json.dump({"autoscaler": {"initial-scale": "0", "allow-zero-initial-scale": "true"},
                       "services": [{"name": "static", "namespace": NS,
                                     "revisions": [{"name": "static-00001"}]}]}, f)
        log = open(os.path.join(workdir, "activator-%d.log" % n), "wb")
        mark = fake.mark()  # the activator's lists and watches count too
        proc = subprocess.Popen(
            [os.path.join(BUILD, "activator"), "--config", cfg, "--listen", "127.0.0.1:%d" % free_port(),
             "--admin", "127.0.0.1:%d" % free_port(), "--backend", "kubernetes", "--kube-api", fake.url,
             "--kube-token-file", token_file, "--kube-ca-file", fake.ca_file,
             "--queue-sidecar-image", "kp:dev", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        start = time.monotonic()
        for i in range(n):
            fake.create(service(i))
        names = ["svc-%04d" % i for i in range(n)]
        deadline = start + max(60, n * 0.5)
        pending = set(names)
        while pending and time.monotonic() < deadline and proc.poll() is None:
            pending = {s for s in pending
                       if not ready(fake.get("services.serving.knative.dev", NS, s))}
            time.sleep(0.05)
        took = time.monotonic() - start
        time.sleep(1)  # what the last status writes set off
        log_all = fake.request_log(since=mark, user="activator")
        writes = fake.writes(since=mark, user="activator")
        watches = [e for e in log_all if e.get("verb") == "watch"]
        if proc.poll() is not None:
            return {"n": n, "error": "activator exited %d" % proc.returncode}
        return {"n": n, "ready": n - len(pending), "seconds": took, "requests": len(log_all),
                "cpu": cpu_seconds(proc.pid),
                "writes": len(writes), "watches": len(watches), "rss": rss_kib(proc.pid)}
    except Exception as e:  # noqa: BLE001 (a bench never fails)
        return {"n": n, "error": repr(e)}
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        fake.stop()


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 1000]
    rows = []
    with tempfile.TemporaryDirectory(prefix="kp-bench-reconcile-") as d:
        for n in sizes:
            rows.append(run(n, d))
            r = rows[-1]
            print("  N=%d done: %s" % (n, r.get("error") or "%.1fs" % r["seconds"]),
                  file=sys.stderr)
    print("%8s %8s %10s %10s %9s %8s %9s %8s %8s" % (
        "services", "ready", "seconds", "requests", "req/svc", "writes", "watches", "RSS MiB",
        "CPU s"))
    for r in rows:
        if "error" in r:
            print("%8d  error: %s" % (r["n"], r["error"]))
            continue
        print("%8d %8d %10.2f %10d %9.1f %8d %9d %8.1f %8.2f" % (
            r["n"], r["ready"], r["seconds"], r["requests"], r["requests"] / max(1, r["n"]),
            r["writes"], r["watches"], r["rss"] / 1024.0, r["cpu"]))


if __name__ == "__main__":
    main()
