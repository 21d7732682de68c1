"""The worker's accepting, connection limits and timers: load spread over
workers, --worker-connections, running out of descriptors, closing sockets an
app's child still holds, keep-alive and WebSocket ping timing."""
import os
import socket
import subprocess
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


def idle_after_response(port, path="/"):
    """Seconds from a keep-alive response's arrival until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
        status, _, _, _ = read_response(s)
        t0 = time.monotonic()
        assert status == 200
        s.settimeout(10)
        assert s.recv(100) == b""
        return time.monotonic() - t0


def test_keep_alive_closes_on_time(server_factory):
    """--keep-alive 2: an idle connection is closed 2 s after its last
    response, not up to a tick later."""
    srv = server_factory(APP, "--keep-alive", "2")
    idle = idle_after_response(srv.port)
    assert 1.9 <= idle <= 2.6, idle
    # a fresh connection that never sends is held for the same time
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""
        idle = time.monotonic() - t0
    assert 1.9 <= idle <= 2.6, idle


def test_keep_alive_counts_from_the_response_not_the_request(server_factory):
    """A sync request that takes 1.5 s: the idle time starts when its answer
    went out, so --keep-alive 2 still gives the client about 2 s after it."""
    srv = server_factory(APP, "--keep-alive", "2", workers=1)
    idle = idle_after_response(srv.port, "/sleep?1.5")
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


def burst(port, n, path):
    """n fresh connections at once, each asking for path; returns
    [(seconds until its answer, worker pid)]."""
    import threading
    start = threading.Barrier(n)
    out = [None] * n
    t0 = [0.0]

    def one(i):
        start.wait()
        if i == 0:
            t0[0] = time.monotonic()
        status, headers, body = get(port, path, timeout=30)
        assert status == 200
        out[i] = (time.monotonic(), int(headers["x-worker"]))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return [(t - t0[0], pid) for t, pid in out]


def test_burst_spreads_over_sync_workers(server_factory):
    """Sync WSGI, 2 workers, 10 connections at once to a 1 s view: each
    worker takes one at a time, so they split 5/5 and all are answered in
    about 5 s (not 8 s behind one worker)."""
    srv = server_factory(APP, workers=2)
    srv.wait_workers(2)
    res = burst(srv.port, 10, "/sleep?1")
    last = max(t for t, _ in res)
    per = {}
    for _, pid in res:
        per[pid] = per.get(pid, 0) + 1
    assert last < 6.5, (last, per)
    assert len(per) == 2 and all(4 <= n <= 6 for n in per.values()), per


def test_burst_spreads_over_thread_workers(server_factory):
    """--threads 2, 2 workers, 8 connections to a 1 s view: a worker accepts
    only while a thread is free, so each takes 4 and all finish in about 2 s."""
    srv = server_factory(APP, "--threads", "2", workers=2)
    srv.wait_workers(2)
    res = burst(srv.port, 8, "/sleep?1")
    last = max(t for t, _ in res)
    per = {}
    for _, pid in res:
        per[pid] = per.get(pid, 0) + 1
    assert last < 3.5, (last, per)
    assert len(per) == 2 and all(3 <= n <= 5 for n in per.values()), per


def keep_alive_load(port, conns=64, seconds=2.5, every=0.02):
    """conns keep-alive connections opened at once, each sending a request
    every `every` seconds (the next one once the last was answered), so the
    client, not the server's CPU share on a busy machine, sets the pace.
    Returns {worker pid: requests served}; .owners maps each connection to
    the worker that served it."""
    import selectors
    sel = selectors.DefaultSelector()
    req = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(conns)]
    idle = set()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, b"")
        idle.add(s)
    per, owner = {}, {}
    end = time.monotonic() + seconds
    next_round = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_round:
            for s in idle:
                s.send(req)
            idle.clear()
            next_round = now + every
        for key, _ in sel.select(timeout=max(0.0, next_round - time.monotonic())):
            s = key.fileobj
            buf = key.data + s.recv(65536)
            head, sep, rest = buf.partition(b"\r\n\r\n")
            fields = dict(ln.split(b": ", 1) for ln in head.split(b"\r\n")[1:]) if sep else {}
            if not sep or len(rest) < int(fields[b"Content-Length"]):
                sel.modify(s, selectors.EVENT_READ, buf)
                continue
            sel.modify(s, selectors.EVENT_READ, b"")
            pid = int(fields[b"X-Worker"])
            per[pid] = per.get(pid, 0) + 1
            owner.setdefault(s.fileno(), pid)
            idle.add(s)
    for s in socks:
        s.close()
    keep_alive_load.owners = owner
    return per


def check_split(per, low=0.40):
    total = sum(per.values())
    shares = sorted(n / total for n in per.values())
    assert len(per) == 2 and total > 2000, per
    assert low <= shares[0] <= shares[1] <= 1 - low, per


def test_keep_alive_load_splits_shared_socket(server_factory):
    """64 keep-alive connections opened at once on the shared socket: each of
    2 workers serves 40-60% of the requests."""
    srv = server_factory(APP, workers=2)
    srv.wait_workers(2)
    check_split(keep_alive_load(srv.port))


def test_keep_alive_load_splits_reuse_port(server_factory):
    """The same with --reuse-port. The kernel's hash of the client's address
    and port split 64 connections like coin tosses (26 to 38 of 64); the
    eBPF program (src/core/reuseport.c) hands them out round-robin, so each
    worker holds exactly 32 and serves 40-60% of the requests."""
    import collections
    srv = server_factory(APP, "--reuse-port", workers=2)
    srv.wait_workers(2)
    per = keep_alive_load(srv.port)
    conns = collections.Counter(keep_alive_load.owners.values())
    assert sorted(conns.values()) == [32, 32], conns
    check_split(per)


def open_keep_alive(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, _, _ = read_response(s)
    assert status == 200
    return s, int(dict(headers)["x-worker"])


def test_worker_connections_limit(server_factory):
    """--worker-connections 2 with 2 workers: each worker holds 2; a fifth
    connection waits until one closes, then is served."""
    srv = server_factory(APP, "--worker-connections", "2", "--keep-alive", "30", workers=2)
    srv.wait_workers(2)
    held = [open_keep_alive(srv.port) for _ in range(4)]
    per = {}
    for _, pid in held:
        per[pid] = per.get(pid, 0) + 1
    assert sorted(per.values()) == [2, 2], per
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        s.settimeout(1.0)
        try:
            got = s.recv(100)
        except socket.timeout:
            got = None
        assert got is None, "answered past --worker-connections"
        first, pid = held.pop(0)
        first.close()
        status, headers, _, _ = read_response(s, timeout=3)
        assert status == 200 and int(dict(headers)["x-worker"]) == pid
    for s2, _ in held:
        s2.close()


def test_out_of_descriptors(server_factory):
    """A worker that runs out of descriptors (prlimit) pauses accepting: it
    does not spin, warns about once a second, answers the shed client 503,
    keeps its spare descriptor, and serves again once clients leave."""
    import shutil
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is needed"
    srv = server_factory(APP, "--keep-alive", "30", workers=1)
    (worker,) = srv.wait_workers(1)
    subprocess.run([prlimit, "--pid", str(worker), "--nofile=32:32"], check=True)

    def devnull_fds():
        n = 0
        for f in os.listdir(f"/proc/{worker}/fd"):
            try:
                n += os.readlink(f"/proc/{worker}/fd/{f}") == "/dev/null"
            except OSError:
                pass
        return n

    spare_before = devnull_fds()
    clients = []
    for _ in range(60):  # more than the worker has descriptors for
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        clients.append(s)
    time.sleep(0.5)
    c0 = cpu_seconds(worker)
    time.sleep(2.0)
    used = cpu_seconds(worker) - c0
    assert used < 0.3, f"worker used {used:.2f} s of CPU in 2 s while out of descriptors"
    warnings = srv.log().count("too many open files")
    assert 1 <= warnings <= 5, srv.log()
    answers = []
    for s in clients:
        s.settimeout(0.2)
        try:
            answers.append(s.recv(4096))
        except socket.timeout:
            answers.append(None)
    assert sum(1 for a in answers if a and a.startswith(b"HTTP/1.1 200")) >= 10
    assert any(a and a.startswith(b"HTTP/1.1 503") for a in answers), answers
    for s in clients:
        s.close()
    time.sleep(1.0)
    t0 = time.monotonic()
    status, _, body = get(srv.port, "/")
    assert status == 200 and body == str(worker).encode()
    assert time.monotonic() - t0 < 1.5
    assert devnull_fds() == spare_before, "the spare descriptor was lost"


def count_pings(port, chatty, seconds=3.0):
    """A websockets client connected for `seconds`, sending a message every
    0.3 s when chatty; returns how many pings the server sent it (each one
    the client answers through its pong method)."""
    import asyncio
    import websockets
    pings = []

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10,
                                      ping_interval=None) as ws:
            pong = ws.pong

            async def counting_pong(data=b""):
                pings.append(time.monotonic())
                return await pong(data)

            ws.pong = counting_pong
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if chatty:
                    await ws.send("hi")
                    assert await asyncio.wait_for(ws.recv(), 5) == "hi"
                    await asyncio.sleep(0.3)
                else:
                    await asyncio.sleep(0.1)
    asyncio.run(main())
    return len(pings)


def test_ws_pings_fill_silences_only(server_factory):
    """--ws-ping-interval 1 --ws-ping-timeout 5: an idle socket is pinged
    about once a second (not once every 5 s), one exchanging a message every
    0.3 s is never pinged."""
    srv = server_factory("accept_app:ws_app", "--ws-ping-interval", "1",
                         "--ws-ping-timeout", "5", workers=1)
    idle = count_pings(srv.port, chatty=False, seconds=3.6)
    assert 2 <= idle <= 4, idle
    assert count_pings(srv.port, chatty=True, seconds=3.0) == 0
