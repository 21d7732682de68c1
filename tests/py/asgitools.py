"""Helpers for the ASGI integration tests (test_asgi_*.py).

Self-contained on purpose (conftest.py is edited by others): start the real
build/gallop on a free loopback port, wait until it answers HTTP, stop it by
pid (TERM, then KILL) in a finalizer. Raw-socket HTTP and WebSocket helpers."""
import base64
import os
import signal
import socket
import struct
import subprocess
import time

from conftest import child_pids as children, free_port  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
APPS = os.path.join(HERE, "apps")
GALLOP_BIN = os.environ.get("GALLOP_BIN") or os.path.join(REPO, "build", "gallop")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_for(pred, timeout, interval=0.05):
    """Polls pred() until it is true or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


class Gallop:
    """One gallop master. Use as a context manager or call stop()."""

    def __init__(self, app, *args, workers=1, env=None, log_dir="/tmp", wait=True, ready_path="/__ready"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.cmd = [GALLOP_BIN, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                    "--chdir", APPS, *args, app]
        e = dict(os.environ)
        for k in ("WEB_CONCURRENCY", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            e.pop(k, None)
        e["PYTHONDONTWRITEBYTECODE"] = "1"
        if env:
            e.update(env)
        self.log_path = os.path.join(str(log_dir), f"gallop-asgi-{self.port}-{time.monotonic_ns()}.log")
        self._logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._logf, stderr=subprocess.STDOUT, env=e, cwd=REPO)
        self.pid = self.proc.pid
        self.ready_path = ready_path
        if wait:
            self.wait_ready()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout=10.0):
        return wait_for(lambda: text in self.log(), timeout)

    def workers(self):
        return children(self.pid)

    def wait_ready(self, timeout=20.0):
        """Until a worker answers an HTTP request (any status)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gallop exited {self.proc.returncode} while starting:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(2)
                    s.sendall(f"GET {self.ready_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                    data = s.recv(16)
                    if data.startswith(b"HTTP/1."):
                        return
                    last = data
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"gallop did not answer in {timeout}s ({last!r}):\n{self.log()}")

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """TERM, then KILL (the master, then any worker left). Returns the exit code."""
        if self.proc.poll() is None:
            kids = self.workers()
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                for p in [self.pid] + kids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.wait_exit(5)
        self._logf.close()
        return self.proc.returncode


# ---- raw HTTP -----------------------------------------------------------------

def recv_until(sock, buf, marker, limit=1 << 24):
    while marker not in buf:
        b = sock.recv(65536)
        if not b:
            raise EOFError(f"closed before {marker!r}: {buf[:300]!r}")
        buf += b
        assert len(buf) < limit
    return buf


def read_head(sock, buf=b""):
    """Returns (status, [(lower name, value)], rest)."""
    buf = recv_until(sock, buf, b"\r\n\r\n")
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hs = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hs.append((k.strip().lower(), v.strip()))
    return status, hs, rest


def read_chunked(sock, buf):
    """Reads a chunked body from buf + sock. Returns (body, [chunk sizes], trailer lines, rest)."""
    body = b""
    sizes = []
    while True:
        buf = recv_until(sock, buf, b"\r\n")
        line, _, buf = buf.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        while len(buf) < size + 2:
            b = sock.recv(65536)
            if not b:
                raise EOFError("short chunk")
            buf += b
        assert buf[size:size + 2] == b"\r\n", buf[size:size + 10]
        body += buf[:size]
        sizes.append(size)
        buf = buf[size + 2:]
    trailers = []
    while True:
        buf = recv_until(sock, buf, b"\r\n")
        line, _, buf = buf.partition(b"\r\n")
        if not line:
            break
        trailers.append(line.decode("latin-1"))
    return body, sizes, trailers, buf


# ---- raw WebSocket -----------------------------------------------------------

WS_KEY = base64.b64encode(b"0123456789abcdef").decode()


def ws_handshake(port, path="/ws", timeout=5.0, extra=""):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    status, hs, rest = read_head(s)
    assert status == 101, (status, hs)
    return s, rest


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=b"\x11\x22\x33\x44"):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return hdr + payload
    masked = bytes(c ^ mask_key[i % 4] for i, c in enumerate(payload))
    return hdr + mask_key + masked


class FrameReader:
    """Reads server frames (unmasked) from a socket."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = buf

    def _need(self, n):
        while len(self.buf) < n:
            b = self.sock.recv(65536)
            if not b:
                raise EOFError("connection closed mid-frame")
            self.buf += b

    def frame(self):
        """Returns (fin, opcode, payload)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def until_close(self, max_frames=100):
        """Skips data/ping frames; returns (close code, reason, frames seen before)."""
        seen = []
        for _ in range(max_frames):
            fin, op, p = self.frame()
            if op == 8:
                code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
                return code, p[2:], seen
            seen.append((op, p))
        raise AssertionError(f"no close frame in {max_frames} frames: {seen[:5]}")


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason
