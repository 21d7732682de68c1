"""Signals and worker management: graceful TERM/INT, graceful timeout, QUIT,
replacement of a killed worker."""
import os
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import pid_alive, read_response, recv_all


def start_sleep_request(srv, seconds):
    """Sends a request that sleeps in the app; returns (socket, thread result dict)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(b"GET /sleep?s=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(seconds).encode())
    return s


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return recv_all(s, 2) == b""
    except (ConnectionRefusedError, ConnectionResetError):
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_finishes_inflight(server_factory, sig):
    srv = server_factory("basic:app", workers=2)
    workers = srv.wait_workers(2)
    s = start_sleep_request(srv, 2)
    time.sleep(0.5)  # the request is in the app now
    t0 = time.monotonic()
    srv.signal(sig)
    st, hdrs, body, rest = read_response(s, timeout=15)
    assert st == 200 and body == b"slept"
    assert rest + recv_all(s, 10) == b""  # then the connection is closed
    s.close()
    assert srv.wait(15) == 0
    assert time.monotonic() - t0 < 10
    assert refused(srv.port)
    assert wait_gone(workers, 5)
    assert "stopping gracefully" in srv.log()


def test_graceful_stop_closes_idle_keepalive(server_factory):
    srv = server_factory("basic:app", "--keep-alive", "30", workers=1)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(s)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait(10) == 0  # an idle keep-alive connection does not hold the stop
    assert time.monotonic() - t0 < 5
    assert recv_all(s, 5) == b""
    s.close()


def test_graceful_timeout_kills_slow_request(server_factory):
    srv = server_factory("basic:app", "--graceful-timeout", "1", workers=1)
    workers = srv.wait_workers(1)
    s = start_sleep_request(srv, 10)
    time.sleep(0.5)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait(15)
    elapsed = time.monotonic() - t0
    assert elapsed < 6, elapsed
    assert rc == 0
    assert wait_gone(workers, 5)
    try:
        data = recv_all(s, 5)
    except ConnectionResetError:
        data = b""
    assert b"slept" not in data
    s.close()
    assert refused(srv.port)


def test_sigquit_stops_now(server_factory):
    srv = server_factory("basic:app", workers=2)
    workers = srv.wait_workers(2)
    s = start_sleep_request(srv, 10)
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.signal(signal.SIGQUIT)
    assert srv.wait(10) == 0
    assert time.monotonic() - t0 < 4
    assert wait_gone(workers, 3)
    s.close()
    assert refused(srv.port)


def test_killed_worker_is_replaced(server_factory):
    srv = server_factory("basic:app", workers=2)
    workers = srv.wait_workers(2)
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while True:
        now = srv.workers()
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, (now, srv.log())
        time.sleep(0.05)
    new = [p for p in now if p not in workers]
    assert len(new) == 1
    log = srv.log()
    assert str(victim) in log and "signal 9" in log
    assert "booting worker with pid: %d" % new[0] in log
    srv.wait_workers(2)
    pids = set()
    for i in range(20):
        r = requests.get(srv.url("/pid"), headers={"Connection": "close"}, timeout=5)
        assert r.status_code == 200
        pids.add(int(r.text))
    assert victim not in pids
    assert pids <= set(now)


def test_killed_worker_mid_request_others_serve(server_factory):
    srv = server_factory("basic:app", workers=1)
    (w,) = srv.wait_workers(1)
    s = start_sleep_request(srv, 5)
    time.sleep(0.3)
    os.kill(w, signal.SIGKILL)
    try:
        data = recv_all(s, 5)
    except ConnectionResetError:
        data = b""
    assert data == b""  # the connection died with the worker
    s.close()
    deadline = time.monotonic() + 15
    while w in srv.workers() or len(srv.workers()) != 1:  # the dying worker may linger briefly
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)
    (w2,) = srv.wait_workers(1)
    assert w2 != w
    assert requests.get(srv.url("/after"), timeout=5).text == "hello /after"


def test_worker_exiting_by_itself_is_replaced(server_factory):
    srv = server_factory("basic:app", workers=1)
    (w,) = srv.wait_workers(1)
    os.kill(w, signal.SIGTERM)  # a worker told to stop alone: the master replaces it
    deadline = time.monotonic() + 15
    while True:
        ws = srv.workers()
        if len(ws) == 1 and ws[0] != w:
            break
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)
    assert requests.get(srv.url("/x"), timeout=5).status_code == 200


def test_master_sigkill_takes_workers_down(server_factory):
    srv = server_factory("basic:app", workers=2)
    workers = srv.wait_workers(2)
    os.kill(srv.pid, signal.SIGKILL)
    srv.wait(5)
    assert wait_gone(workers, 5)


def test_sighup_ignored(server_factory):
    srv = server_factory("basic:app", workers=1)
    (w,) = srv.wait_workers(1)
    srv.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert srv.proc.poll() is None
    assert requests.get(srv.url("/still"), timeout=5).text == "hello /still"
