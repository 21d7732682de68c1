"""--reuse-port balancing (src/core/reuseport.c): an eBPF program hands new
connections round-robin to the ready workers' own SO_REUSEPORT sockets, a
worker killed with -9 has its queued connections moved to the others and its
replacement joins the rotation, TTIN/TTOU change the rotation, and without
the privilege for eBPF the kernel's hash still serves everyone."""
import collections
import os
import shutil
import signal
import socket
import time

import conftest
from conftest import read_response
from mastertools import Load, gallop  # noqa: F401 (a fixture)

APP = "accept_app:app"
REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def open_conns(port, n):
    """n connections opened one after another (kept open)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]


def owners(socks, path="/"):
    """Sends one keep-alive request on each socket; the worker pid that answered each."""
    for s in socks:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    out = []
    for s in socks:
        status, headers, _, _ = read_response(s, timeout=10)
        assert status == 200
        out.append(int(dict(headers)["x-worker"]))
    return out


def split(port, n):
    """Worker pid -> how many of n fresh connections it got."""
    socks = open_conns(port, n)
    try:
        return collections.Counter(owners(socks))
    finally:
        for s in socks:
            s.close()


def test_round_robin_split(server_factory):
    """64 fresh connections over 2 workers: exactly 32 each, in every run
    (the kernel's hash gave 26 to 38), from the moment both say they are
    ready."""
    srv = server_factory(APP, "--reuse-port", workers=2)
    srv.wait_workers(2)
    assert "deals connections round-robin to the workers" in srv.log(), srv.log()
    for _ in range(3):
        assert sorted(split(srv.port, 64).values()) == [32, 32]


def test_one_worker(server_factory):
    """--workers 1: every connection to it; killed with -9, its replacement
    serves once ready."""
    srv = server_factory(APP, "--reuse-port", workers=1)
    (w,) = srv.wait_workers(1)
    assert split(srv.port, 10) == {w: 10}
    os.kill(w, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        ws = srv.workers()
        if len(ws) == 1 and ws[0] != w and f"worker {ws[0]} ready" in srv.log():
            break
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)
    assert split(srv.port, 10) == {ws[0]: 10}


def test_killed_worker_loses_no_queued_connection(server_factory):
    """A sync worker busy in a 4 s request has connections waiting in its own
    queue; killed with -9, those move to the other worker and are answered
    (without the program the kernel resets them). Its replacement then gets
    its half again, and nothing is refused meanwhile."""
    srv = server_factory(APP, "--reuse-port", "--keep-alive", "30", workers=2)
    srv.wait_workers(2)
    pair = open_conns(srv.port, 2)
    a, b = owners(pair)
    assert a != b
    pair[0].sendall(b"GET /sleep?4 HTTP/1.1\r\nHost: t\r\n\r\n")  # a is busy now
    time.sleep(0.5)
    queued = open_conns(srv.port, 6)  # round-robin: 3 wait behind a's sleep
    for s in queued:
        s.sendall(REQ)
    time.sleep(0.3)
    os.kill(a, signal.SIGKILL)
    got = []
    for s in queued:
        status, headers, _, _ = read_response(s, timeout=3)
        assert status == 200
        got.append(int(dict(headers)["x-worker"]))
    assert got == [b] * 6, (got, a, b)
    # the dead one's slot takes none, and none is refused (the replacement
    # may already be up on a fast machine)
    got = split(srv.port, 8)
    assert a not in got and sum(got.values()) == 8, (got, srv.log())
    deadline = time.monotonic() + 10
    while True:
        ws = set(srv.workers())
        if len(ws) == 2 and a not in ws and all(f"worker {p} ready" in srv.log() for p in ws):
            break
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)
    (c,) = ws - {b}
    assert split(srv.port, 20) == {b: 10, c: 10}
    for s in pair + queued:
        s.close()


def test_ttin_ttou(server_factory):
    """TTIN: the third worker joins the rotation (60 connections: 20 each);
    TTOU: the retired one gets no more, the two left split evenly."""
    srv = server_factory(APP, "--reuse-port", workers=2)
    srv.wait_workers(2)
    srv.signal(signal.SIGTTIN)
    three = srv.wait_workers(3)
    got = split(srv.port, 60)
    assert sorted(got.values()) == [20, 20, 20] and set(got) == set(three), got
    srv.signal(signal.SIGTTOU)
    deadline = time.monotonic() + 10
    while len(srv.workers()) != 2:
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)
    two = set(srv.workers())
    got = split(srv.port, 40)
    assert set(got) == two and sorted(got.values()) == [20, 20], (got, two)


def test_without_bpf_privilege(server_factory, tmp_path, monkeypatch):
    """Started without CAP_BPF/CAP_NET_ADMIN/CAP_SYS_ADMIN (setpriv): one info
    line says the kernel's hash spreads the connections, and both workers
    serve."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed"
    wrapper = tmp_path / "gallop-nobpf"
    wrapper.write_text("#!/bin/sh\nexec %s --bounding-set=-bpf,-net_admin,-sys_admin,-perfmon "
                       "--inh-caps=-all %s \"$@\"\n" % (setpriv, conftest.GALLOP_BIN))
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "GALLOP_BIN", str(wrapper))
    srv = server_factory(APP, "--reuse-port", workers=2)
    srv.wait_workers(2)
    log = srv.log()
    assert log.count("--reuse-port: the kernel's hash spreads connections") == 1, log
    assert "Operation not permitted" in log
    assert "round-robin" not in log
    time.sleep(0.3)
    got = split(srv.port, 64)
    assert len(got) == 2 and sum(got.values()) == 64, got


def test_hup_and_usr2_keep_the_rotation(gallop):
    """A HUP's new generation and a USR2's new master take over the
    rotation (the new master's program replaces the old one's once its
    first worker is ready): no request fails meanwhile, and 64 connections
    then split 32/32 over the newest workers."""
    g = gallop(["--workers", "2", "--reuse-port"], app=APP)
    first = set(g.wait_workers(2))
    with Load(g.port, threads=2) as load:
        g.kill(signal.SIGHUP)
        g.wait_log(r"reload complete: generation 2", timeout=20)
        second = set(g.wait_workers(2))
        assert second.isdisjoint(first)
        g.kill(signal.SIGUSR2)
        new = int(g.wait_log(r"handling signal: usr2; started new master (\d+) from ")[0])
        g.adopt_master(new)
        assert g.wait_exit(timeout=20) == 0, g.log()[-4000:]
        third = set(g.wait_workers(2))
        assert third.isdisjoint(second)
        time.sleep(0.5)
    assert load.failed == 0 and load.ok > 20, load.summary()
    assert g.log().count("deals connections round-robin to the workers") == 2, g.log()
    got = split(g.port, 64)
    assert set(got) == third and sorted(got.values()) == [32, 32], (got, third)


def keep_alive(port):
    """A connection with one request answered; (socket, worker pid)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    (pid,) = owners([s])
    return s, pid


def test_full_worker_leaves_the_rotation(server_factory):
    """--worker-connections 3: a worker holding 3 takes its socket out of the
    rotation, so the turns it would get go to the other worker (without that
    they would wait in its queue until one of its connections closed); once
    one closes, it gets its turns again."""
    srv = server_factory(APP, "--reuse-port", "--worker-connections", "3", "--keep-alive", "30",
                         workers=2)
    srv.wait_workers(2)
    held = [keep_alive(srv.port) for _ in range(5)]
    x, y = held[0][1], held[1][1]
    assert [p for _, p in held] == [x, y, x, y, x]  # x is full
    for s, p in held:
        if p == y:
            s.close()
    held = [h for h in held if h[1] == x]
    time.sleep(0.5)  # y sees the closes
    more = [keep_alive(srv.port) for _ in range(3)]  # read timeout 5 s: one queued at x fails
    assert [p for _, p in more] == [y, y, y], srv.log()
    held.pop()[0].close()
    time.sleep(0.5)
    last = [keep_alive(srv.port)]
    assert last[0][1] == x  # y is full now, x has room again
    for s, _ in held + more + last:
        s.close()


def test_burst_spreads_over_sync_workers(server_factory):
    """Sync WSGI, 2 workers, 10 connections at once to a 1 s view: 5 each, so
    the last answer comes after about 5 s (the hash: 7/3 and 7 s seen)."""
    from test_accept import burst
    srv = server_factory(APP, "--reuse-port", workers=2)
    srv.wait_workers(2)
    res = burst(srv.port, 10, "/sleep?1")
    per = collections.Counter(pid for _, pid in res)
    assert sorted(per.values()) == [5, 5], per
    assert max(t for t, _ in res) < 6.5, res
