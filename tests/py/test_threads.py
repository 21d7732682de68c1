"""--threads with clients that really read slowly (curl --limit-rate, or a
socket that stops reading): a response waiting on its client holds neither a
request thread nor the worker's loop, --timeout counts only the app's own
time, a stuck thread lets the others finish, and the last piece of a
response is never flushed through a hook that needs the GIL the thread gave
up. Issue 8 ('With --threads') and issue 9 (the GIL item)."""
import http.client
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import child_pids, pid_alive

APP = "threads_app:app"


def get(port, path, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def curl(url, rate):
    """A download at rate (curl's units: 100k, 1M) into nowhere; stdout gets
    'status bytes' when it ends."""
    return subprocess.Popen(["curl", "-s", "-o", "/dev/null", "--limit-rate", rate,
                             "-w", "%{http_code} %{size_download}", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dechunk(raw):
    body = b""
    while True:
        line, _, raw = raw.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return body
        body += raw[:n]
        raw = raw[n + 2:]


def slow_download(port, path, rate, out, rcvbuf=65536):
    """GET path, reading the response at about rate bytes/s; appends
    (status, body bytes) to out, or the error."""
    try:
        with socket.socket() as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            c.settimeout(20)
            c.connect(("127.0.0.1", port))
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            data = b""
            t0 = time.monotonic()
            while True:
                b = c.recv(8192)
                if not b:
                    break
                data += b
                ahead = len(data) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        head, _, body = data.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head.lower():
            body = dechunk(body)
        out.append((int(head.split()[1]), len(body)))
    except (OSError, ValueError, IndexError) as e:
        out.append(repr(e))


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(5)


@pytest.mark.parametrize("path", ["/big", "/gen", "/file"])
def test_slow_downloads_leave_fast_answered(server_factory, path):
    """-w 1 --threads 2: two slow 64 MB downloads take both threads today
    (they wait on their sockets), and /fast waits forever."""
    s = server_factory(APP, "--threads", "2", workers=1)
    downloads = [curl(s.url(f"{path}?mb=64"), "1M") for _ in range(2)]
    try:
        time.sleep(1.0)  # both are into their bodies, their sockets full
        for _ in range(3):
            t0 = time.monotonic()
            status, body = get(s.port, "/fast", timeout=5)
            took = time.monotonic() - t0
            assert (status, body) == (200, b"fast")
            assert took < 1.0, took
        assert all(p.poll() is None for p in downloads), [p.communicate() for p in downloads]
    finally:
        stop(downloads)
    assert "Traceback" not in s.log() and "Fatal" not in s.log(), s.log()[-3000:]


@pytest.mark.parametrize("path,clients", [("/gen", 20), ("/big", 20), ("/write", 4)])
def test_timeout_counts_the_request_not_the_client(server_factory, path, clients):
    """--timeout 3 and downloads of about 6 s, read at 100 KB/s: none is cut
    and no worker is killed. /write holds its thread (write() blocks, as PEP
    3333 says) but its waits for the client are not the request's time. The
    app gives its sockets a small send buffer (snd=), so that the kernel does
    not absorb most of a body that is small enough for a short test."""
    s = server_factory(APP, "--threads", "2", "--timeout", "3", workers=2)
    workers = set(s.wait_workers(2))
    size = 600 << 10
    results = []
    downloads = [threading.Thread(target=slow_download,
                                  args=(s.port, f"{path}?kb=600&snd=32768", 100 << 10, results))
                 for _ in range(clients)]
    t0 = time.monotonic()
    for t in downloads:
        t.start()
    for t in downloads:
        t.join(40)
    took = time.monotonic() - t0
    log = s.log()
    assert "WORKER TIMEOUT" not in log, log[-3000:]
    assert results == [(200, size)] * clients, (results, log[-3000:])
    assert took > 4.5, took  # the clients really were slow
    assert took < 15, took  # and were served side by side
    assert set(s.workers()) == workers


def test_stuck_thread_lets_the_others_finish(server_factory):
    """One request sleeps past --timeout while short ones (0.8 s, well under
    it) keep coming on the other threads: the stuck one's traceback is
    logged, a replacement worker starts, and no short request is cut when the
    stuck worker goes (today the ones in flight on it die with it)."""
    s = server_factory(APP, "--threads", "4", "--timeout", "2", "--graceful-timeout", "5",
                       workers=1)
    (old,) = s.wait_workers(1)
    results = []

    def run(path, timeout):
        try:
            results.append(get(s.port, path, timeout=timeout))
        except (OSError, http.client.HTTPException) as e:
            results.append(repr(e))

    stuck = threading.Thread(target=run, args=("/sleep?s=60", 15), daemon=True)
    stuck.start()
    time.sleep(0.2)
    short = []
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline and pid_alive(old):
        t = threading.Thread(target=run, args=("/sleep?s=0.8", 10), daemon=True)
        t.start()
        short.append(t)
        time.sleep(0.2)
    for t in short:
        t.join(10)
    log = s.log()
    assert not pid_alive(old), log[-3000:]
    assert re.search(rf"WORKER TIMEOUT \(pid:{old}\): request GET /sleep\?s=60 has run for", log), log
    # the stuck request's traceback: the app frame it is stuck in
    assert re.search(r'File ".*threads_app\.py", line \d+ in app', log), log[-3000:]
    assert f"worker {old} was killed after its timeout" in log
    stuck.join(10)
    assert len(short) > 10
    bad = [r for r in results if r != (200, b"slept")]
    assert len(bad) == 1 and bad[0] != (200, b"slept"), (bad, log[-3000:])  # the stuck one only
    (new,) = s.wait_workers(1)
    assert new != old and get(s.port, "/pid")[1] == str(new).encode()


@pytest.mark.parametrize("path", ["/tail?mb=1&tail=15000&snd=4096", "/tail?mb=2&tail=16000&snd=4096"])
def test_last_piece_to_a_slow_reader(server_factory, path):
    """The app is done, its last small piece is still in the output buffer and
    the socket is full: the thread has given up the GIL, so that piece must
    not wait through the blocking hook (today: 'Fatal Python error:
    PyEval_SaveThread' and the worker dies). The app shrinks its socket's
    send buffer so a slow reader fills it for sure."""
    s = server_factory(APP, "--threads", "2", workers=1)
    (w,) = s.wait_workers(1)
    for _ in range(2):
        with socket.socket() as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            c.settimeout(10)
            c.connect(("127.0.0.1", s.port))
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            time.sleep(0.3)  # does not read: the socket fills up
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                b = c.recv(4096)
                assert b, (len(data), s.log()[-3000:])
                data += b
                time.sleep(0.001)  # then reads slowly
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"transfer-encoding: chunked" in head.lower()
    log = s.log()
    assert "Fatal Python error" not in log, log[-3000:]
    assert s.workers() == [w]
    assert get(s.port, "/pid")[1] == str(w).encode()
