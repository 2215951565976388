"""The Kubernetes client (common/kube_*.c) through build/tools/kube_check,
against the fake API server: a rotated service-account token is picked up
without a restart, and API errors are explicit."""

import os
import subprocess
import time

from activator_harness import BUILD
from fake_kube import FakeKube, activator_rules

KUBE_CHECK = os.path.join(BUILD, "tools", "kube_check")


def kube_check(fake, token_file, *cmd, timeout=30):
    return subprocess.run([KUBE_CHECK, "--api", fake.url, "--token-file", token_file,
                           "--ca-file", fake.ca_file, *cmd],
                          capture_output=True, text=True, timeout=timeout)


def test_rotated_token_is_used_on_the_next_request(tmp_path):
    with FakeKube() as fake:
        fake.add_deployment("default", "web-deployment", replicas=2)
        old = fake.add_user("activator", activator_rules("default"))
        token_file = fake.write_token_file(old, str(tmp_path / "token"))
        fake.set_endpoints("default", "web-private", [("127.0.0.2", True, "web-1")])
        watch = subprocess.Popen([KUBE_CHECK, "--api", fake.url, "--token-file", token_file,
                                  "--ca-file", fake.ca_file, "watch", "default", "web-private",
                                  "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        time.sleep(1.5)
        # The kubelet rotates the projected token; the old one stops working.
        new = fake.add_user("activator", activator_rules("default"))
        fake.write_token_file(new, token_file)
        fake.revoke_token(old)
        fake.cut_watches()  # the reconnect must authenticate with the new token
        time.sleep(1.5)
        fake.set_endpoints("default", "web-private", [("127.0.0.2", True, "web-1"),
                                                      ("127.0.0.3", False, "web-2")])
        out, err = watch.communicate(timeout=30)
        assert "endpoints n=1" in out and "endpoints n=2" in out, (out, err)
        statuses = [r["status"] for r in fake.requests]
        assert 401 not in statuses, fake.requests
        # A one-shot request reads the new token too.
        r = kube_check(fake, token_file, "get-scale", "default", "web-deployment")
        assert r.returncode == 0 and r.stdout.strip() == "replicas=2", r


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
