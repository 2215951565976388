"""Long life is flat: revisions that leave the config are freed once they hold
nothing and have no pod (autoscaler, collector, timers, pools, backend state,
metric series), and each reload frees the config it replaced. 1 000 reloads
that add one revision and remove another, under light load, leave the
activator's open descriptors where they started and its memory within 5 %."""
import json
import os
import signal
import threading
import time

from activator_harness import ASAN, HOST, revision
from crowd import status_kib

# Under ASan only descriptors and frees are checked (its quarantine keeps
# freed memory resident on purpose), so fewer reloads prove as much.
RELOADS = 300 if ASAN else 1000
WARMUP = 100 if ASAN else 1000
# Every this many reloads, the newest revision gets a request through its tag,
# so that some of the revisions freed had a pod (started, scaled to zero).
COLD_EVERY = 100
WINDOWS = {"stable-window": "6s", "scale-to-zero-grace-period": "6s",
           "initial-scale": "0", "allow-zero-initial-scale": "true"}


def churn_config(i):
    """A steady revision that takes the traffic, and revisions i-1 and i at 0 %
    (i tagged "new"): reload i adds churn-i and removes churn-(i-2)."""
    revs = [revision("steady-00001", "Steady")]
    traffic = [{"revisionName": "steady-00001", "percent": 100}]
    for n in (i - 1, i):
        if n >= 0:
            revs.append(revision("churn-%05d" % n, "Churn %d" % n))
            traffic.append({"revisionName": "churn-%05d" % n, "percent": 0,
                            **({"tag": "new"} if n == i else {})})
    return {"domain": "127.0.0.1.sslip.io", "autoscaler": dict(WINDOWS),
            "services": [{"name": "helloworld-go", "namespace": "default",
                          "revisions": revs, "traffic": traffic}]}


def open_fds(pid):
    """The fewest descriptors seen over half a second: the light load's own
    connection (one at a time, a new one per request) comes and goes."""
    seen = []
    for _ in range(10):
        seen.append(len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.05)
    return min(seen)


def revision_series(act):
    """Revisions the activator still has (one activator_pods series each)."""
    return sorted(line.split('revision="')[1].split('"')[0]
                  for line in act.metrics().splitlines() if line.startswith("activator_pods{"))


def reload_to(act, i):
    tmp = act.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(churn_config(i), f)
    os.replace(tmp, act.config_path)
    act.proc.send_signal(signal.SIGHUP)
    want = "churn-%05d" % i
    act.wait_for(lambda: want in [r["name"] for r in act.status()["services"][0]["revisions"]],
                 10, f"reload {i} applied")


def wait_flat(act, i):
    """Until only the current config's revisions are left (the retired ones
    scaled to zero and were freed)."""
    want = sorted(["steady-00001", "churn-%05d" % (i - 1), "churn-%05d" % i])
    deadline = time.time() + 60
    while time.time() < deadline and revision_series(act) != want:
        time.sleep(0.5)
    assert revision_series(act) == want


def test_a_thousand_reloads_leave_memory_and_descriptors_flat(activator_factory):
    # glibc's per-thread cache keeps up to 7 freed chunks of each of its 64
    # small sizes out of the heap's bins, where malloc_trim cannot see them:
    # wherever they happen to lie, each pins its page. That is a bounded
    # cache, not something the program holds, but which pages it pins is
    # chance: with it on, the same 1 000 reloads measured +2 %, +6 % and
    # +12.8 % (444 KiB) in three runs, with 226-320 KiB "in use" in the heap
    # against 87 KiB with it off. Off, resident memory is what the program
    # holds, and a leak of even a few hundred bytes per reload shows.
    act = activator_factory(churn_config(0), env={"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"})
    pid = act.proc.pid
    statuses, stop = {}, threading.Event()

    def light_load():  # a request every 20 ms to the steady revision
        while not stop.is_set():
            code = act.request("/", timeout=30)[0]
            statuses[code] = statuses.get(code, 0) + 1
            time.sleep(0.02)

    loader = threading.Thread(target=light_load)
    loader.start()
    try:
        # Warm-up: the same churn for WARMUP reloads, so that the baseline is
        # the heap's working size, not a process that has not done the work
        # yet. What the program holds is the same after 300 and after 900
        # reloads (valgrind's massif: 32 671 bytes live at both); the heap
        # reaches its high-water mark (retired revisions wait out their
        # grace period, ~260 at a time) during the first round.
        for i in range(1, WARMUP + 1):
            reload_to(act, i)
            if i % COLD_EVERY == 0:
                assert act.request("/", host="new-" + HOST) == (200, f"Hello Churn {i}!\n")
        wait_flat(act, WARMUP)
        time.sleep(6)  # a periodic malloc_trim (every 5 s) has run
        fds_before, rss_before = open_fds(pid), status_kib(pid, "VmRSS")

        cold = 0
        for i in range(WARMUP + 1, WARMUP + 1 + RELOADS):
            reload_to(act, i)
            if i % COLD_EVERY == 0:
                assert act.request("/", host="new-" + HOST) == (200, f"Hello Churn {i}!\n")
                cold += 1
        last = WARMUP + RELOADS
        wait_flat(act, last)
        time.sleep(6)
        fds_after, rss_after = open_fds(pid), status_kib(pid, "VmRSS")
    finally:
        stop.set()
        loader.join()

    freed = sum(1 for line in act.log_lines() if line.get("message") == "revision freed")
    print(f"{RELOADS} reloads, {cold} cold starts, {freed} revisions freed; fds {fds_before} -> "
          f"{fds_after}; RSS {rss_before} -> {rss_after} KiB; light load {statuses}")
    assert freed >= RELOADS + WARMUP - 2
    assert set(statuses) == {200}, statuses
    assert fds_after <= fds_before, (fds_before, fds_after)
    if not ASAN:  # ASan's quarantine keeps freed memory resident on purpose
        assert rss_after <= rss_before * 1.05, (rss_before, rss_after)
