"""Helpers for the master (process manager) tests: test_master_*.py.

Built on conftest.py's free_port: starting the real build/gallop on a free loopback port, reading its log,
listing its workers from /proc, stopping every process it started by pid
(TERM, then KILL) in a finalizer, and a bounded load client."""
import collections
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import free_port  # noqa: E402,F401

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
APPS = os.path.join(HERE, "apps")
GALLOP_BIN = os.environ.get("GALLOP_BIN") or os.path.join(REPO, "build", "gallop")
PYTHON = "/usr/bin/python3"
APP = "master_app:app"


def _stat(pid):
    """(state, ppid, starttime) of pid, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def pid_alive(pid):
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def children(pid):
    """Living direct children of pid."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return []
    return [k for k in kids if pid_alive(k)]


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns something truthy; returns that, or raises."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def get(port, path="/", timeout=5.0):
    """One request on a new connection: (status, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        return r.status, r.read().decode("latin-1")
    finally:
        c.close()


def get_pid(port, path="/", timeout=5.0):
    status, body = get(port, path, timeout)
    assert status == 200, (status, body)
    return int(body)


def base_env(extra=None):
    e = dict(os.environ)
    for k in ("WEB_CONCURRENCY", "VIRTUAL_ENV", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
              "NOTIFY_SOCKET", "GALLOP_FDS", "GALLOP_OLD_MASTER", "GUNICORN_CMD_ARGS"):
        e.pop(k, None)
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        e.update(extra)
    return e


class Gallop:
    """One gallop master started by a test. Its stdout and stderr go to
    self.log_path. Every master and worker pid it ever had is remembered so
    that stop() can take them all down by pid."""

    def __init__(self, log_dir, args=(), app=APP, port=None, bind=True, env=None,
                 pass_fds=(), prefix=(), chdir=APPS, binary=None, cwd=REPO):
        self.port = free_port() if port is None else port
        cmd = list(prefix) + [binary or GALLOP_BIN]
        if bind:
            cmd += ["--bind", f"127.0.0.1:{self.port}"]
        if chdir:
            cmd += ["--chdir", chdir]
        cmd += [str(a) for a in args]
        if app:
            cmd.append(app)
        self.cmd = cmd
        self.log_path = os.path.join(str(log_dir), f"gallop-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=base_env(env),
                                     cwd=cwd, pass_fds=tuple(pass_fds), start_new_session=True)
        self.pid = self.proc.pid  # the current master (changes on USR2)
        self._known = {}          # pid -> starttime, for a safe kill in stop()
        self._remember(self.pid)

    # ---- the log ---------------------------------------------------------
    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10.0, count=1):
        """Waits until the regex pattern matches at least count times; returns the matches."""
        rx = re.compile(pattern)

        def found():
            m = rx.findall(self.log())
            return m if len(m) >= count else None
        try:
            return wait_for(found, timeout, what=pattern)
        except AssertionError:
            raise AssertionError(f"no {count} x {pattern!r} in the log within {timeout}s:\n{self.log()[-6000:]}")

    # ---- processes -------------------------------------------------------
    def _remember(self, pid):
        st = _stat(pid)
        if st and pid not in self._known:
            self._known[pid] = st[2]

    def booted_pids(self):
        return {int(p) for p in re.findall(r"booting worker with pid: (\d+)", self.log())}

    def workers(self, master=None):
        """Living children of the master that it booted as workers."""
        master = master or self.pid
        booted = self.booted_pids()
        ws = [p for p in children(master) if p in booted]
        for p in ws:
            self._remember(p)
        return sorted(ws)

    def wait_workers(self, n, timeout=15.0, master=None):
        """Waits for exactly n workers, all of them ready; returns their pids."""
        def ok():
            ws = self.workers(master)
            log = self.log()
            if len(ws) == n and all(f"worker {p} ready" in log for p in ws):
                return ws
            return None
        try:
            return wait_for(ok, timeout, what=f"{n} workers")
        except AssertionError:
            raise AssertionError(f"expected {n} ready workers, have {self.workers(master)}\n{self.log()[-6000:]}")

    def wait_serving(self, timeout=15.0):
        """Waits until a request is answered with 200."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not pid_alive(self.pid):
                raise AssertionError(f"gallop exited {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                if get(self.port, "/", timeout=2)[0] == 200:
                    return self
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"gallop did not serve within {timeout}s ({last!r}):\n{self.log()[-6000:]}")

    def kill(self, sig):
        os.kill(self.pid, sig)

    def adopt_master(self, pid):
        """After USR2: pid is the master from now on."""
        self._remember(pid)
        self.pid = pid

    def wait_exit(self, timeout):
        """Waits for the first master (our child) to exit; returns its code."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=10.0):
        for p in list(self._known):
            self._remember_kids(p)
        for p, start in list(self._known.items()):
            self._signal_if_same(p, start, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self._same(p, s) for p, s in self._known.items()):
            self.proc.poll()
            time.sleep(0.05)
        for p, start in list(self._known.items()):
            self._signal_if_same(p, start, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def _remember_kids(self, pid):
        if self._same(pid, self._known[pid]):
            for k in children(pid):
                self._remember(k)

    @staticmethod
    def _same(pid, start):
        st = _stat(pid)
        return st is not None and st[2] == start and st[0] not in ("Z", "X")

    def _signal_if_same(self, pid, start, sig):
        if self._same(pid, start):
            try:
                os.kill(pid, sig)
            except OSError:
                pass


@pytest.fixture
def gallop(tmp_path):
    """gallop(args, **kw) starts a server; all are stopped by pid at the end."""
    started = []

    def start(args=(), **kw):
        g = Gallop(tmp_path, args, **kw)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


# ---- load ----------------------------------------------------------------------

STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Load:
    """Client threads that loop over GET path until stop().

    keepalive=False: a new connection per request; every exception or non-200
    answer is a failure.

    keepalive=True: one persistent connection per thread. Like urllib3 (and so
    requests), a request that fails on a *reused* connection before a single
    byte of the response arrived (the server closed the idle connection while
    the request was on its way: RemoteDisconnected, reset, broken pipe) is
    retried once on a new connection and counted in self.stale, not as a
    failure. Anything else (a timeout, an error on a fresh connection, a
    response cut short, a non-200) is a failure."""

    def __init__(self, port, threads=4, keepalive=False, path="/", timeout=5.0):
        self.port, self.nthreads, self.keepalive, self.path, self.timeout = port, threads, keepalive, path, timeout
        self.ok = self.failed = self.stale = 0
        self.errors = []
        self.pids = collections.Counter()
        self.timeline = []  # (monotonic time, pid or error text)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a load thread did not stop"

    def _record(self, pid=None, err=None):
        with self._lock:
            if err is None:
                self.ok += 1
                self.pids[pid] += 1
                self.timeline.append((time.monotonic(), pid))
            else:
                self.failed += 1
                self.errors.append(err)
                self.timeline.append((time.monotonic(), err))

    def _once(self, conn):
        conn.request("GET", self.path, headers={} if self.keepalive else {"Connection": "close"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}: {body[:100]!r}")
        return int(body), r.will_close

    def _run(self):
        conn, reused = None, False
        while not self._stop.is_set():
            if conn is None:
                conn, reused = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout), False
            try:
                try:
                    pid, will_close = self._once(conn)
                except STALE:
                    if not (self.keepalive and reused):
                        raise
                    with self._lock:
                        self.stale += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                    pid, will_close = self._once(conn)
                self._record(pid=pid)
                if self.keepalive and not will_close:
                    reused = True
                else:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure is counted
                self._record(err=f"{type(e).__name__}: {e}")
                conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    def summary(self):
        return (f"ok={self.ok} failed={self.failed} stale-retried={self.stale} pids={dict(self.pids)} "
                f"errors={collections.Counter(self.errors).most_common(5)}")
