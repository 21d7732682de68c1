"""gallop top: the live terminal view, driven in a real tmux (80x24):
every worker pid is on screen, the counts move under load, the request
running longest shows with its method, path and duration, and q quits."""
import os
import re
import shutil
import subprocess
import threading
import time
import http.client

import pytest

from conftest import GALLOP_BIN, free_port, run_gallop


def tmux(*args):
    return subprocess.run(["tmux", "-L", f"gallop-test-{os.getpid()}", *args],
                          capture_output=True, text=True, timeout=10)


def screen(session):
    return tmux("capture-pane", "-p", "-t", session).stdout


def get(port, path="/"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    c.getresponse().read()
    c.close()


def row_of(text, pid):
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == str(pid):
            return f
    return None


def wait_screen(session, pred, timeout=10):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(session)
        if pred(text):
            return text
        time.sleep(0.2)
    raise AssertionError(text)


def start_top(server_factory, app, workers, session):
    """A server with --metrics-bind, and gallop top on it in a detached 80x24
    tmux: the server and its worker pids."""
    mport = free_port()
    srv = server_factory(app, "--metrics-bind", f"127.0.0.1:{mport}", workers=workers)
    pids = srv.wait_workers(workers)
    r = tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24",
             f"{GALLOP_BIN} top http://127.0.0.1:{mport}")
    assert r.returncode == 0, r.stderr
    return srv, pids


def test_top_in_tmux(server_factory):
    session = "top"
    srv, pids = start_top(server_factory, "metrics_app:app", 2, session)
    try:
        text = wait_screen(session, lambda t: all(row_of(t, p) for p in pids))
        assert "2/2 workers" in text
        before = {p: float(row_of(text, p)[2]) for p in pids}
        slow = threading.Thread(target=get, args=(srv.port, "/sleep?3"))
        slow.start()
        for _ in range(80):
            get(srv.port)
        # the counts move, a worker is busy, and the long request is named
        text = wait_screen(session, lambda t: "longest: worker" in t and
                           sum(float(row_of(t, p)[2]) for p in pids if row_of(t, p))
                           >= sum(before.values()) + 80)
        m = re.search(r"longest: worker (\d+) GET /sleep\?3 for (\d+\.\d)s", text)
        assert m and int(m.group(1)) in pids, text
        assert any(row_of(text, p)[1] == "busy" for p in pids), text
        assert all(len(line) <= 80 for line in text.splitlines())
        slow.join(10)
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and tmux("has-session", "-t", session).returncode == 0:
            time.sleep(0.1)
        assert tmux("has-session", "-t", session).returncode != 0  # q quit it
    finally:
        tmux("kill-server")


def test_top_names_the_longest_asgi_request(server_factory):
    """An ASGI worker runs its requests as tasks on one loop: top still names
    the one in progress longest, while shorter ones come and go beside it."""
    session = "topasgi"
    srv, (pid,) = start_top(server_factory, "metrics_asgi:app", 1, session)
    try:
        wait_screen(session, lambda t: row_of(t, pid))
        short = [threading.Thread(target=get, args=(srv.port, "/sleep?1")) for _ in range(3)]
        slow = threading.Thread(target=get, args=(srv.port, "/sleep?5"))
        slow.start()
        time.sleep(0.3)
        for t in short:
            t.start()
        text = wait_screen(session, lambda t: re.search(
            r"longest: worker \d+ GET /sleep\?5 for ([2-9]\.\d)s", t))
        m = re.search(r"longest: worker (\d+) GET /sleep\?5 for (\d+\.\d)s", text)
        assert int(m.group(1)) == pid, text
        slow.join(10)
        for t in short:
            t.join(10)
        # nothing in progress: no longest request any more
        wait_screen(session, lambda t: "longest: worker" not in t)
    finally:
        tmux("kill-server")


def test_top_shows_an_asgi_worker_busy_while_its_tasks_run(server_factory):
    """Requests held open by tasks that await leave the ASGI worker's loop
    idle, yet they are in flight: top shows the worker busy while they run
    and idle once they are answered."""
    session = "topasgibusy"
    srv, (pid,) = start_top(server_factory, "metrics_asgi:app", 1, session)
    try:
        def state(text):
            row = row_of(text, pid)
            return row[1] if row else None

        wait_screen(session, lambda t: state(t) == "idle")
        held = [threading.Thread(target=get, args=(srv.port, "/sleep?4")) for _ in range(3)]
        t0 = time.monotonic()
        for t in held:
            t.start()
        text = wait_screen(session, lambda t: state(t) == "busy" and
                           re.search(r"longest: worker \d+ GET /sleep\?4", t), timeout=3.5)
        assert time.monotonic() - t0 < 4, text  # seen while the requests were held open
        assert row_of(text, pid)[4] == "3", text  # the in-flight column
        for t in held:
            t.join(10)
        wait_screen(session, lambda t: state(t) == "idle" and "longest: worker" not in t)
    finally:
        tmux("kill-server")


def test_top_unreachable_and_bad_url():
    p = run_gallop(["top", "no such host:::"])
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "gallop: error: top:" in p.stderr
    # nothing listening: it says so and keeps trying; EOF on stdin and a TERM end it
    port = free_port()
    proc = subprocess.Popen([GALLOP_BIN, "top", f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    proc.terminate()
    out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert b"Connection refused" in out and b"retrying" in out
