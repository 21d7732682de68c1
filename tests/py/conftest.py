"""Shared helpers for the gallop integration suite.

Every server is the real build/gallop binary (GALLOP_BIN), started on a free
loopback port and stopped by pid (TERM, then KILL) in a finalizer."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
APPS = os.path.join(HERE, "apps")
GALLOP_BIN = os.environ.get("GALLOP_BIN") or os.path.join(REPO, "build", "gallop")
PYTHON = "/usr/bin/python3"


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def child_pids(pid):
    """Direct children of pid (the workers of a master)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def proc_status(pid):
    """VmRSS / VmHWM of pid in KiB, as a dict."""
    res = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                res[k] = int(v.split()[0])
    return res


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


def recv_all(sock, timeout=5.0, limit=64 << 20):
    """Reads until EOF; raises socket.timeout if the peer does not close."""
    sock.settimeout(timeout)
    chunks = []
    total = 0
    while True:
        b = sock.recv(65536)
        if not b:
            break
        chunks.append(b)
        total += len(b)
        assert total <= limit
    return b"".join(chunks)


def raw_request(port, data, timeout=5.0, host="127.0.0.1"):
    """Sends data on a fresh connection and returns all bytes until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        return recv_all(s, timeout)


def read_response(sock, buf=b"", head_only=False, timeout=5.0):
    """Reads one HTTP/1.x response from sock. Returns (status, headers, body, rest).
    headers: list of (lower-name, value). Supports Content-Length, chunked and close."""
    sock.settimeout(timeout)
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            raise EOFError("connection closed before the head: %r" % buf)
        buf += b
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    hd = dict(headers)
    if head_only or status in (100, 204, 304) or 100 <= status < 200:
        return status, headers, b"", buf
    if "content-length" in hd:
        n = int(hd["content-length"])
        while len(buf) < n:
            b = sock.recv(65536)
            if not b:
                raise EOFError("short body")
            buf += b
        return status, headers, buf[:n], buf[n:]
    if hd.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                b = sock.recv(65536)
                if not b:
                    raise EOFError("short chunked body")
                buf += b
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                b = sock.recv(65536)
                if not b:
                    raise EOFError("short chunk")
                buf += b
            if size == 0:
                # no trailers expected from gallop
                assert buf[:2] == b"\r\n", buf[:20]
                return status, headers, body, buf[2:]
            body += buf[:size]
            assert buf[size:size + 2] == b"\r\n"
            buf = buf[size + 2:]
    # delimited by close
    while True:
        b = sock.recv(65536)
        if not b:
            break
        buf += b
    return status, headers, buf, b""


def read_continue(sock, timeout=5.0):
    """Reads the interim 100 Continue; returns the bytes received after it."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(4096)
        assert b, buf
        buf += b
    assert buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), buf
    return buf[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", raw)
    assert m, raw[:200]
    return int(m.group(1))


class Server:
    def __init__(self, app, args=(), workers=1, cwd=None, env=None, bind=None,
                 tmp_path=None, chdir=APPS, wait=True, extra_binds=()):
        self.port = None
        if bind is None:
            self.port = free_port()
            bind = f"127.0.0.1:{self.port}"
        self.bind = bind
        cmd = [GALLOP_BIN, "--bind", bind]
        for b in extra_binds:
            cmd += ["--bind", b]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        if chdir:
            cmd += ["--chdir", chdir]
        cmd += list(args)
        if app is not None:
            cmd.append(app)
        self.cmd = cmd
        e = dict(os.environ)
        e.pop("WEB_CONCURRENCY", None)
        e.pop("VIRTUAL_ENV", None)
        e["PYTHONDONTWRITEBYTECODE"] = "1"
        if env:
            e.update(env)
        d = tmp_path or "/tmp"
        self.log_path = os.path.join(str(d), f"gallop-{os.getpid()}-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=e, cwd=cwd or REPO)
        self.pid = self.proc.pid
        if wait:
            self.wait_ready()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, timeout=20.0, nworkers=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gallop exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.port is not None:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                        s.sendall(b"GET /__ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                        if recv_all(s, 5).startswith(b"HTTP/1.1 "):
                            break
                else:
                    time.sleep(0.1)
                    if "ready" in self.log():
                        break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"gallop did not become ready:\n{self.log()}")
        if nworkers:
            self.wait_workers(nworkers)
        return self

    def workers(self):
        return [p for p in child_pids(self.pid) if pid_alive(p)]

    def wait_workers(self, n, timeout=20.0, ready=True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws = self.workers()
            if len(ws) == n and (not ready or all(f"worker {p} ready" in self.log() for p in ws)):
                return ws
            time.sleep(0.05)
        raise AssertionError(f"expected {n} workers, have {self.workers()}\n{self.log()}")

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            workers = self.workers()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                for p in workers:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
        self._log.close()


@pytest.fixture
def server_factory(tmp_path):
    started = []

    def start(app, *args, **kw):
        kw.setdefault("tmp_path", tmp_path)
        s = Server(app, args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory):
    started = []
    d = tmp_path_factory.mktemp("srv")

    def start(app, *args, **kw):
        kw.setdefault("tmp_path", d)
        s = Server(app, args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def run_gallop(args, timeout=15, env=None, cwd=None):
    """Runs gallop to completion (for CLI errors); returns CompletedProcess."""
    e = dict(os.environ)
    e.pop("WEB_CONCURRENCY", None)
    e.pop("VIRTUAL_ENV", None)
    if env:
        e.update(env)
    return subprocess.run([GALLOP_BIN] + list(args), capture_output=True, timeout=timeout,
                          env=e, cwd=cwd or REPO, text=True)
