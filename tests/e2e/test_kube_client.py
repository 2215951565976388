"""The Kubernetes client (common/kube_*.c) through build/tools/kube_check,
against the fake API server: a rotated service-account token is picked up
without a restart, and API errors are explicit."""

import os
import subprocess

import kp
from activator_harness import BUILD
from fake_kube import FakeKube, activator_rules

KUBE_CHECK = os.path.join(BUILD, "tools", "kube_check")


def kube_check(fake, token_file, *cmd, timeout=30):
    return subprocess.run([KUBE_CHECK, "--api", fake.url, "--token-file", token_file,
                           "--ca-file", fake.ca_file, *cmd],
                          capture_output=True, text=True, timeout=timeout)


def slice_watches(fake, token):
    return [w for w in fake.open_watches()
            if "/endpointslices" in w["path"] and w["token"] == token]


def test_rotated_token_is_used_on_the_next_request(tmp_path):
    """The token rotates while a watch opened with the old one is streaming
    (the fake shows it open, with that token); once the old watch is cut,
    every request carries the new token: the reopened watch (no 401 on the
    way), which then delivers the next change, and a one-shot request."""
    with FakeKube() as fake:
        fake.add_deployment("default", "web-deployment", replicas=2)
        old = fake.add_user("activator", activator_rules("default"))
        token_file = fake.write_token_file(old, str(tmp_path / "token"))
        fake.set_endpoints("default", "web-private", [("127.0.0.2", True, "web-1")])
        out_path = str(tmp_path / "watch.out")
        with open(out_path, "w") as out:
            watch = subprocess.Popen([KUBE_CHECK, "--api", fake.url, "--token-file", token_file,
                                      "--ca-file", fake.ca_file, "watch", "default",
                                      "web-private", str(int(8 * kp.SLOW))], stdout=out,
                                     stderr=subprocess.PIPE, text=True)

        def output():
            with open(out_path) as f:
                return f.read()

        try:
            kp.wait_until(lambda: slice_watches(fake, old), 5,
                          what="a watch open with the old token")
            kp.wait_until(lambda: "endpoints n=1" in output(), 5, what="the first endpoints")
            # The kubelet rotates the projected token; the old one stops working.
            new = fake.add_user("activator", activator_rules("default"))
            fake.write_token_file(new, token_file)
            fake.revoke_token(old)
            seen = len(fake.requests)
            assert fake.cut_watches() == 1  # the reconnect must authenticate anew
            kp.wait_until(lambda: slice_watches(fake, new), 5,
                          what="the watch reopened with the new token")
            fake.set_endpoints("default", "web-private", [("127.0.0.2", True, "web-1"),
                                                          ("127.0.0.3", False, "web-2")])
            kp.wait_until(lambda: "endpoints n=2" in output(), 5,
                          what="the change through the new watch")
        finally:
            try:
                _, err = watch.communicate(timeout=30 * kp.SLOW)
            finally:
                watch.kill()
        assert watch.returncode == 0, (watch.returncode, output(), err)
        after = fake.requests[seen:]
        assert after and all(r["token"] == new for r in after), after
        assert all(r["status"] != 401 for r in fake.requests), fake.requests
        # A one-shot request reads the new token too.
        r = kube_check(fake, token_file, "get-scale", "default", "web-deployment")
        assert r.returncode == 0 and r.stdout.strip() == "replicas=2", r
        assert fake.requests[-1]["token"] == new, fake.requests[-1]
        print("after the rotation: %s" % ["%s %s: %s, new token %s" % (
            e["method"], e["path"], e["status"], e["token"] == new) for e in after])


def test_errors_are_explicit(tmp_path):
    with FakeKube() as fake:
        fake.add_deployment("default", "web-deployment", replicas=1)
        reader = fake.add_user("reader", [("get", "apps", "deployments/scale", "default")])
        token_file = fake.write_token_file(reader, str(tmp_path / "token"))
        r = kube_check(fake, token_file, "patch-scale", "default", "web-deployment", "3")
        assert r.returncode == 1
        assert 'cannot patch resource "deployments/scale"' in r.stderr, r.stderr
        assert "missing RBAC: verbs [patch] on deployments/scale in apps" in r.stderr, r.stderr
        bad = fake.write_token_file("not-a-token", str(tmp_path / "bad"))
        r = kube_check(fake, bad, "get-scale", "default", "web-deployment")
        assert r.returncode == 1 and "401" in r.stderr, r.stderr
        assert fake.replicas("default", "web-deployment") == 1
