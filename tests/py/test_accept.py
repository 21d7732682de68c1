"""The worker's accepting, connection limits and timers: load spread over
workers, --worker-connections, running out of descriptors, closing sockets an
app's child still holds, keep-alive and WebSocket ping timing."""
import os
import socket
import time

from conftest import child_pids, read_response

APP = "accept_app:app"


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(port, path="/", timeout=10.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        status, headers, body, _ = read_response(s, timeout=timeout)
        return status, dict(headers), body


def test_keep_alive_closes_on_time(server_factory):
    """--keep-alive 2: an idle connection is closed 2 s after its last
    response, not up to a tick later."""
    srv = server_factory(APP, "--keep-alive", "2")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, _, _ = read_response(s)
        t0 = time.monotonic()
        assert status == 200
        s.settimeout(10)
        assert s.recv(100) == b""
        idle = time.monotonic() - t0
    assert 1.9 <= idle <= 2.6, idle
    # a fresh connection that never sends is held for the same time
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""
        idle = time.monotonic() - t0
    assert 1.9 <= idle <= 2.6, idle


def test_closed_socket_a_child_still_holds(server_factory):
    """An app forks a child that keeps the client's socket: once the
    connection is closed, the worker neither spins on its events nor hands
    them to the connection that reuses its memory."""
    srv = server_factory(APP, workers=1)
    (worker,) = child_pids(srv.pid)
    for _ in range(3):
        status, _, _ = get(srv.port, "/fork?4")
        assert status == 200
    time.sleep(0.3)
    c0 = cpu_seconds(worker)
    t0 = time.monotonic()
    for i in range(30):  # new connections reuse the closed ones' memory
        status, headers, body = get(srv.port, "/")
        assert status == 200 and body == str(worker).encode()
    time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
    used = cpu_seconds(worker) - c0
    assert used < 0.5, f"worker used {used:.2f} s of CPU in 1.5 s: spinning"
