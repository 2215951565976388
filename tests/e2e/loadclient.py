"""A threaded HTTP/1.1 load client for reliability tests: every request's
status, or the connection error that ended it, is recorded; concurrency can
change while it runs (phases). With keep-alive, a request that fails on a
reused connection before any byte of the response is retried once on a new
connection, as Go's net/http (hey), curl and browsers do: a server may close
an idle keep-alive connection at any time (RFC 9112 §9.3.1, §9.6), and that
race is not a loss. Retries are counted apart. A failure on a new connection
is never retried."""

import collections
import http.client
import socket
import threading
import time

# Errors that mean "the server closed or reset the connection".
_CLOSED = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
           http.client.RemoteDisconnected)


class Load:
    def __init__(self, port, host, path="/", concurrency=0, keepalive=True, timeout=60,
                 headers=None):
        self.port = port
        self.host = host
        self.path = path
        self.keepalive = keepalive
        self.timeout = timeout
        self.headers = {"Host": host, **(headers or {})}
        if not keepalive:
            self.headers["Connection"] = "close"
        self.lock = threading.Lock()
        self.codes = collections.Counter()
        self.bodies = collections.Counter()  # short bodies, by text
        self.errors = collections.Counter()  # "ExceptionType: message"
        self.error_times = []                # (time.time(), error) of each
        self.retries = 0
        self.new_connections = 0
        self._target = 0
        self._stop = threading.Event()
        self._threads = []
        self.set_concurrency(concurrency)

    # --- control ---

    def set_concurrency(self, n):
        with self.lock:
            self._target = n
            while len(self._threads) < n:
                t = threading.Thread(target=self._worker, args=(len(self._threads),), daemon=True)
                self._threads.append(t)
                t.start()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self

    def snapshot(self):
        with self.lock:
            return (dict(self.codes), dict(self.errors), self.retries)

    def total(self):
        with self.lock:
            return sum(self.codes.values()) + sum(self.errors.values())

    def summary(self):
        with self.lock:
            return {"codes": dict(self.codes), "errors": dict(self.errors),
                    "retries": self.retries, "new_connections": self.new_connections,
                    "bodies": dict(self.bodies)}

    # --- workers ---

    def _record(self, status=None, body=None, error=None):
        with self.lock:
            if error is not None:
                self.errors[error] += 1
                self.error_times.append((time.time(), error))
            else:
                self.codes[status] += 1
                if body is not None and len(body) <= 100:
                    self.bodies[body.decode(errors="replace")] += 1

    def _worker(self, i):
        conn = None
        while not self._stop.is_set():
            if i >= self._target:
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(0.02)
                continue
            conn = self._one(conn)
        if conn is not None:
            conn.close()

    def _connect(self):
        with self.lock:
            self.new_connections += 1
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def _one(self, conn):
        """One request (with at most one retry); returns the connection to
        reuse, or None."""
        for attempt in (0, 1):
            reused = conn is not None and conn.sock is not None
            if conn is None or conn.sock is None:
                if conn is not None:
                    conn.close()
                conn = self._connect()
            started = False
            try:
                conn.request("GET", self.path, headers=self.headers)
                r = conn.getresponse()
                started = True
                body = r.read()
            except _CLOSED as e:
                conn.close()
                if reused and not started and attempt == 0:
                    with self.lock:
                        self.retries += 1
                    conn = None
                    continue
                self._record(error=f"{type(e).__name__}: {e}"
                             + (" (mid-response)" if started else ""))
                return None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self._record(error=f"{type(e).__name__}: {e}")
                return None
            self._record(status=r.status, body=body)
            if not self.keepalive or r.will_close:
                conn.close()
                return None
            return conn
        return None


def wait_until(predicate, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def raw_request(port, host, path, timeout=30):
    """A connected socket with a GET sent on it (for clients that misbehave)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return s
