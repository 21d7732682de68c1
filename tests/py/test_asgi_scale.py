"""One ASGI worker holds 10,000 idle keep-alive connections and serves them all."""
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("GALLOP_BIN", os.path.join(HERE, "..", "..", "build", "gallop"))
CONNS = 10000


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


@pytest.fixture
def server(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < CONNS + 200:
        pytest.skip(f"needs {CONNS + 200} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = free_port()
    log = open(tmp_path / "log", "w")
    # past gunicorn's default of 1000 connections a worker stops accepting
    p = subprocess.Popen([BIN, "--workers", "1", "--keep-alive", "60", "--worker-connections", str(CONNS + 100),
                          "--bind", f"127.0.0.1:{port}",
                          "--chdir", os.path.join(HERE, "..", "..", "bench", "apps"), "hello_asgi:app"],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:  # an answer, not just a connection: the worker is up
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        time.sleep(0.1)
    yield p, port
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_ten_thousand_idle_keepalive_connections(server):
    p, port = server
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        (worker,) = [int(x) for x in f.read().split()]
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    before = rss_kb(worker)
    socks = []
    try:
        for _ in range(CONNS):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(request)
            socks.append(s)
        first = sum(s.recv(4096).startswith(b"HTTP/1.1 200") for s in socks)
        assert first == CONNS
        time.sleep(1)  # all of them idle, held by the one worker
        grown = rss_kb(worker) - before
        assert grown < 100 * 1024, f"the worker grew by {grown} kB for {CONNS} idle connections"
        for s in socks[::10]:  # every tenth connection is still open and served again
            s.sendall(request)
        again = sum(s.recv(4096).startswith(b"HTTP/1.1 200") for s in socks[::10])
        assert again == CONNS // 10
    finally:
        for s in socks:
            s.close()
