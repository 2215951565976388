"""Logging never holds up the loop. The activator and the queue-proxy with
stdout and stderr in a pipe nobody reads answer every request; the lines
that find their buffer full are dropped and counted in
kp_log_lines_dropped_total; what comes out once the pipe is read is whole
JSON lines; and an exit with the pipe still stuck does not hang."""

import fcntl
import json
import os
import signal
import subprocess

import kp
from activator_harness import ASAN, HOST, Activator, hey, helloworld_config
from test_metrics import promtool_check

F_SETPIPE_SZ = 1031  # fcntl.h; Python's fcntl module names it only from 3.10
REQUESTS = 2500 if ASAN else 5000
# Knative's documented request log template, near enough.
TEMPLATE = ('{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": '
            '"{{js .Request.RequestURI}}", "requestSize": "{{.Request.ContentLength}}", '
            '"status": {{.Response.Code}}, "responseSize": "{{.Response.Size}}", "userAgent": '
            '"{{js .Request.UserAgent}}", "remoteIp": "{{js .Request.RemoteAddr}}", "serverIp": '
            '"{{.Revision.PodIP}}", "referer": "{{js .Request.Referer}}", "latency": '
            '"{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "traceId": '
            '"{{.TraceID}}"}')


def stalled_pipe():
    """A pipe of one page, so that it is full after a few lines."""
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
    return r, w


def read_to_eof(fd):
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def whole_json_lines(data):
    assert data.endswith(b"\n"), data[-300:]
    out = []
    for line in data.split(b"\n")[:-1]:
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError("not a whole JSON line: %r" % line[:500])
    return out


def dropped(metrics_text, stream):
    prefix = 'kp_log_lines_dropped_total{stream="%s"} ' % stream
    values = [int(line[len(prefix):]) for line in metrics_text.splitlines()
              if line.startswith(prefix)]
    assert len(values) == 1, metrics_text[-2000:]
    return values[0]


def test_activator_with_a_stalled_log_pipe_answers_every_request():
    """At debug level the activator logs each request; its pods write to
    the same pipe."""
    r, w = stalled_pipe()
    act = Activator(helloworld_config(), ["--log-level", "debug"], output=w)
    os.close(w)
    try:
        codes = hey(act.url("/"), HOST, concurrency=50, requests=REQUESTS, timeout=20)
        assert codes == {200: REQUESTS}, codes
        # The loop is at work still, and says what it dropped.
        assert act.request("/", timeout=10) == (200, "Hello World!\n")
        metrics = act.metrics()
        promtool_check(metrics)
        lost = dropped(metrics, "stderr")
        assert lost > 0, metrics[-1000:]
        # Someone reads at last: what is buffered goes out, then the lines
        # of the shutdown.
        reader = kp.run_in_thread(read_to_eof, r)
        assert act.stop() == 0
        lines = whole_json_lines(reader(60))
    finally:
        act.stop()
        os.close(r)
    done = [l for l in lines if l.get("message") == "request done"]
    assert REQUESTS + 1 - lost <= len(done) < REQUESTS + 1, (len(done), lost)
    assert lines[-1]["message"] == "every pod stopped; exiting", lines[-3:]


def test_activator_exit_does_not_hang_on_a_pipe_nobody_ever_reads():
    r, w = stalled_pipe()
    act = Activator(helloworld_config(), ["--log-level", "debug"], output=w)
    os.close(w)
    try:
        codes = hey(act.url("/"), HOST, concurrency=50, requests=REQUESTS, timeout=20)
        assert codes == {200: REQUESTS}, codes
        assert dropped(act.metrics(), "stderr") > 0
        act.proc.send_signal(signal.SIGTERM)
        # Pods drain, then each process gives its last lines two seconds.
        assert act.proc.wait(30 * kp.SLOW) == 0
    finally:
        act.stop()
        os.close(r)


def test_queue_proxy_with_a_stalled_log_pipe_answers_every_request(procs):
    """The request log (stdout) and the log (stderr) in one pipe nobody
    reads; the drops are on the user metrics port."""
    env = kp.knative_env(SERVING_ENABLE_REQUEST_LOG="true", SERVING_REQUEST_LOG_TEMPLATE=TEMPLATE,
                         SERVING_REQUEST_METRICS_BACKEND="prometheus",
                         SERVING_LOGGING_LEVEL="debug", CONTAINER_CONCURRENCY="10")
    procs.start("helloworld", kp.app_command(), {"PORT": env["USER_PORT"], "HOST": "127.0.0.1"})
    r, w = stalled_pipe()
    qp = subprocess.Popen([kp.binary("queue-proxy")],
                          env={**os.environ, **{k: str(v) for k, v in env.items()}},
                          stdin=subprocess.DEVNULL, stdout=w, stderr=w, start_new_session=True)
    os.close(w)
    port = int(env["QUEUE_SERVING_PORT"])
    try:
        kp.wait_port(port)
        kp.wait_port(int(env["USER_PORT"]))
        codes, out = kp.hey("http://127.0.0.1:%d/" % port, 50, n=REQUESTS, timeout=60)
        assert codes == {200: REQUESTS}, out
        metrics = kp.request(int(env["KP_USER_METRICS_PORT"]), "/metrics").text
        promtool_check(metrics)
        lost = dropped(metrics, "stdout")
        assert lost > 0, metrics[-1000:]
        reader = kp.run_in_thread(read_to_eof, r)
        qp.send_signal(signal.SIGTERM)
        assert qp.wait(30 * kp.SLOW) == 0
        lines = whole_json_lines(reader(30))
    finally:
        if qp.poll() is None:
            os.killpg(qp.pid, signal.SIGKILL)
            qp.wait()
        os.close(r)
    logged = [l for l in lines if "httpRequest" in l]
    assert len(logged) + lost == REQUESTS, (len(logged), lost)
    # Its last log line, written at exit (stdout has a writer of its own, so
    # request lines may come after it).
    assert [l for l in lines if l.get("message") == "exiting"], lines[-3:]
