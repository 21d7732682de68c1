"""The master in real deployments: PID 1 of a container, apps that start
threads at import (signals), retirement under keep-alive load (wrk), exit
codes after a worker was ready, the graceful timeout, systemd's
notifications in order, a missing bridge, long config files; and the access
log as gunicorn writes it (user, escaping, bytes sent, cut-off responses,
an unwritable log, the OOM line)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import read_response
from mastertools import APPS, GALLOP_BIN, Load, base_env, free_port, gallop, get, get_pid, pid_alive, wait_for  # noqa: F401

APP = "deploy_app:app"


# ---- PID 1 ------------------------------------------------------------------------------------

def test_pid1_in_a_new_pid_namespace_keeps_its_workers(gallop):
    # as in a container: the master is PID 1, so its workers' getppid() is 1
    g = gallop(["--workers", "2"], app=APP,
               prefix=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
    g.wait_serving(timeout=20)
    g.wait_log(r"\[1\] \[INFO\] listening at")
    seen = set()
    end = time.monotonic() + 5
    while time.monotonic() < end:
        seen.add(get_pid(g.port))
        time.sleep(0.05)
    log = g.log()
    assert len(re.findall(r"booting worker with pid", log)) == 2, log[-3000:]
    assert len(seen) == 2 or len(seen) == 1, seen
    assert "exited" not in log and "died" not in log, log[-3000:]


# ---- signals and app threads ------------------------------------------------------------------

@pytest.mark.parametrize("preload", [False, True], ids=["import-in-worker", "preload"])
def test_usr1_and_term_spare_workers_whose_app_started_a_thread(gallop, preload):
    g = gallop(["--workers", "1"] + (["--preload"] if preload else []), app=APP)
    (w,) = g.wait_workers(1)
    g.wait_serving()
    for _ in range(5):
        os.kill(w, signal.SIGUSR1)  # log reopen, the worker's own
        g.kill(signal.SIGUSR1)      # log reopen through the master (which imported the app with --preload)
        time.sleep(0.1)
    assert get_pid(g.port) == w
    assert g.workers() == [w] and pid_alive(g.pid)
    assert g.log().count("log files reopened") == 5
    # TERM with a request in flight (to the worker itself, or to the master
    # that imported the app): the request completes, the worker exits 0
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", get(g.port, "/sleep?1.5", timeout=10)))
    t.start()
    time.sleep(0.5)
    os.kill(g.pid if preload else w, signal.SIGTERM)
    t.join(10)
    assert got.get("r") == (200, f"{w}\n"), got
    wait_for(lambda: not pid_alive(w), 10, what="the worker to exit")
    g.kill(signal.SIGTERM)
    assert g.wait_exit(timeout=10) == 0
    log = g.log()
    assert re.search(rf"worker {w} (exited \(exit code 0\)|died unexpectedly \(exit code 0\))", log), log[-3000:]
    assert "signal 10" not in log and "signal 15" not in log and "User defined" not in log, log[-3000:]


@pytest.mark.parametrize("threads", [1, 4], ids=["sync", "threads4"])
def test_processes_the_app_starts_get_term(gallop, threads):
    # a child the app spawns has nothing blocked (exec keeps a blocked mask),
    # so terminate() stops it; a child it forks dies of TERM as by default,
    # and neither signal reaches the worker
    g = gallop(["--workers", "1", "--threads", str(threads)], app=APP)
    (w,) = g.wait_workers(1)
    g.wait_serving()
    status, body = get(g.port, "/children", timeout=15)
    assert status == 200, body
    assert body.split() == ["-15", "0000000000000000", "15"], body
    assert get_pid(g.port) == w and g.workers() == [w]


# ---- retirement -------------------------------------------------------------------------------

def test_keepalive_connection_closes_only_after_a_response_that_says_so(gallop):
    # --max-requests on one busy keep-alive connection: the worker asks for a
    # replacement and serves on; once stopped, its next response says
    # Connection: close, and only then is the connection closed
    g = gallop(["--workers", "1", "--max-requests", "20"], app=APP)
    (w,) = g.wait_workers(1)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    responses, rest = [], b""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body, rest = read_response(s, rest)  # EOFError: closed under a request
            responses.append((status, dict(headers).get("connection"), body))
            if dict(headers).get("connection") == "close":
                break
            time.sleep(0.01)
        assert responses[-1][1] == "close", responses[-3:]
        assert all(st == 200 for st, _, _ in responses)
        assert all(c is None for _, c, _ in responses[:-1])
        assert {int(b) for _, _, b in responses} == {w}
        s.settimeout(5)
        assert s.recv(100) == b""  # closed after the response that said so
    finally:
        s.close()
    assert len(responses) > 20
    g.wait_log(rf"worker {w} reached --max-requests after 20 requests")
    g.wait_log(rf"worker {w} retired after \d+ requests")


def _wrk(port, seconds, connections=50, path="/"):
    """Runs wrk; returns (requests, errors dict, output)."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors.update(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors["non2xx"] = int(m.group(1))
    return reqs, errors, out


@pytest.mark.parametrize("threads,extra", [(1, []), (4, []), (1, ["--reuse-port"])],
                         ids=["sync", "threads4", "reuse-port"])
def test_wrk_across_many_retirements_gets_no_errors(gallop, threads, extra):
    # --reuse-port: what queued on a retiring worker's own socket is served, not reset
    g = gallop(["--workers", "2", "--max-requests", "50", "--threads", threads] + extra, app=APP)
    g.wait_workers(2)
    g.wait_serving()
    reqs, errors, out = _wrk(g.port, 6)
    retired = len(re.findall(r"reached --max-requests after", g.log()))
    print(f"threads={threads}: {reqs} requests, {retired} retirements, errors {errors}")
    assert sum(errors.values()) == 0, (errors, retired, out)
    assert retired >= 20, (retired, out)
    assert "died" not in g.log() and "killed" not in g.log()
    assert g.proc.poll() is None


def test_wrk_across_two_hups_with_threads_gets_no_errors(gallop):
    g = gallop(["--workers", "2", "--threads", "4"], app=APP)
    g.wait_workers(2)
    g.wait_serving()
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", _wrk(g.port, 7)))
    t.start()
    time.sleep(1.5)
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload complete: generation 2", timeout=15)
    time.sleep(1.0)
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload complete: generation 3", timeout=15)
    t.join(40)
    reqs, errors, out = got["r"]
    print(f"two HUPs, --threads 4: {reqs} requests, errors {errors}")
    assert sum(errors.values()) == 0, (errors, out)
    assert reqs > 1000, out


# ---- exits after ready ------------------------------------------------------------------------

def test_exit_code_4_inside_a_request_is_a_crash_to_replace(gallop):
    g = gallop(["--workers", "2"], app=APP)
    ws = g.wait_workers(2)
    g.wait_serving()
    with pytest.raises(Exception):
        get(g.port, "/exit4", timeout=5)
    g.wait_log(r"worker (\d+) died unexpectedly \(exit code 4\); replacing it")
    now = g.wait_workers(2)
    assert len(set(now) - set(ws)) == 1
    assert g.proc.poll() is None and "app failed" not in g.log() and "shutting down" not in g.log()
    for _ in range(4):
        assert get_pid(g.port) in now


def test_broken_reload_then_a_dying_worker_never_stops_the_server(gallop, tmp_path):
    src = os.path.join(APPS, "deploy_app.py")
    shutil.copy(src, tmp_path / "hupapp.py")
    g = gallop(["--workers", "2"], app="hupapp:app", chdir=str(tmp_path))
    ws = g.wait_workers(2)
    g.wait_serving()
    (tmp_path / "hupapp.py").write_text("raise RuntimeError('broken deploy')\n")
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload failed: the new generation cannot load the app; keeping the old workers")
    assert set(g.wait_workers(2)) == set(ws)
    os.kill(ws[0], signal.SIGKILL)  # an old worker dies; its replacement cannot load the new code
    g.wait_log(r"could not load the app \(exit code 4\); next try in [\d.]+s, 1 worker still serving",
               count=3, timeout=15)
    assert g.proc.poll() is None, g.log()[-3000:]
    for _ in range(5):
        assert get_pid(g.port) == ws[1]
    shutil.copy(src, tmp_path / "hupapp.py")  # fixed: the next try loads
    now = g.wait_workers(2, timeout=20)
    assert ws[1] in now and ws[0] not in now
    assert g.proc.poll() is None


# ---- graceful timeout -------------------------------------------------------------------------

def test_graceful_timeout_is_the_limit(gallop):
    g = gallop(["--workers", "1", "--graceful-timeout", "1"], app=APP)
    g.wait_workers(1)
    g.wait_serving()
    t = threading.Thread(target=lambda: _ignore(lambda: get(g.port, "/sleep?10", timeout=15)), daemon=True)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    g.kill(signal.SIGTERM)
    assert g.wait_exit(timeout=10) == 0
    took = time.monotonic() - t0
    assert 0.9 <= took <= 1.5, took
    assert "workers still alive after the graceful timeout; killing them" in g.log()


def _ignore(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the cut request's error is the point
        pass


# ---- systemd ----------------------------------------------------------------------------------

def test_sd_notify_datagrams_in_order(gallop, tmp_path):
    path = f"/tmp/gallop-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(path)
    got = []

    def until(key, timeout):
        nsock.settimeout(timeout)
        while True:
            msg = nsock.recv(4096).decode()
            got.append(msg)
            if f"{key}=1" in msg.split("\n"):
                return msg
    try:
        g = gallop(["--workers", "2"], app=APP, env={"NOTIFY_SOCKET": path})
        first = until("READY", 20)  # before any HUP
        assert f"MAINPID={g.pid}" in first
        g.kill(signal.SIGHUP)
        until("READY", 20)
        g.wait_log("reload complete: generation 2")
        g.kill(signal.SIGTERM)
        until("STOPPING", 10)
        assert g.wait_exit(timeout=15) == 0
        nsock.settimeout(0.5)
        try:
            while True:
                got.append(nsock.recv(4096).decode())
        except socket.timeout:
            pass
    finally:
        nsock.close()
        os.unlink(path)
    kinds = [k for m in got for k in ("READY", "RELOADING", "STOPPING") if f"{k}=1" in m.split("\n")]
    assert kinds == ["READY", "RELOADING", "READY", "STOPPING"], got


def test_sd_notify_ready_while_workers_retire_under_load(gallop):
    # --max-requests 1 under load from the first moment: a worker that asked
    # for its replacement still serves, so the generation is ready at once
    path = f"/tmp/gallop-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(path)
    try:
        g = gallop(["--workers", "2", "--max-requests", "1"], app=APP, env={"NOTIFY_SOCKET": path})
        with Load(g.port, threads=4, timeout=5.0):
            nsock.settimeout(15)
            msg = nsock.recv(4096).decode()
            assert "READY=1" in msg.split("\n") and f"MAINPID={g.pid}" in msg, msg
            assert "serving with 2 workers" in msg
    finally:
        nsock.close()
        os.unlink(path)


# ---- start-up errors --------------------------------------------------------------------------

def test_missing_bridge_exits_3_as_the_readme_says(tmp_path):
    lone = tmp_path / "gallop"
    shutil.copy(GALLOP_BIN, lone)
    p = subprocess.run([str(lone), "--bind", f"127.0.0.1:{free_port()}", "--chdir", APPS, APP],
                       capture_output=True, text=True, timeout=20, env=base_env())
    assert p.returncode == 3, (p.returncode, p.stderr)
    lines = p.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("gallop: error: the Python bridge "), p.stderr
    assert "gallop-python.so is missing" in lines[0]
    readme = open(os.path.join(os.path.dirname(GALLOP_BIN), "..", "README.md")).read()
    assert re.search(r"\| 3 \|[^\n]*bridge", readme)


def test_config_file_of_600_lines_is_read_to_the_end(gallop, tmp_path):
    conf = tmp_path / "gallop.conf"
    conf.write_text("".join(f"backlog = {100 + i}\n" for i in range(599)) + "workers = 3\n")
    g = gallop(["-c", conf, "--keep-alive", "5", "--timeout", "30", "--log-level", "info"], app=APP)
    g.wait_workers(3)
    g.wait_log(r"starting 3 workers")
    assert get_pid(g.port) in g.workers()


# ---- the access log ---------------------------------------------------------------------------

LINE = re.compile(r'^127\.0\.0\.1 - (\S+) \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "(.*)" (\d{3}) (\d+) "(.*)" "(.*)"$')


def _raw(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return read_response(s, head_only=data.startswith(b"HEAD "))[:3]


def test_access_log_as_gunicorn_writes_it(gallop, tmp_path):
    alog = tmp_path / "access.log"
    g = gallop(["--workers", "1", "--access-log", alog], app=APP)
    g.wait_serving()
    close = b"Connection: close\r\n"
    first = _raw(g.port, b"GET /?a=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Ym9iOnNlY3JldA==\r\n"
                 b"User-Agent: curl/8\r\n" + close + b"\r\n")
    _raw(g.port, b'GET /x HTTP/1.1\r\nHost: x\r\nReferer: ref"x\r\nUser-Agent: a"b\xffc\\d\r\n' + close + b"\r\n")
    _raw(g.port, b"GET /empty HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n")
    _raw(g.port, b"GET /over HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n")
    _raw(g.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n")
    # a response cut off: the client reads a little and leaves
    with socket.create_connection(("127.0.0.1", g.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big?50000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
        time.sleep(0.3)
    def ours():  # wait_serving's own requests ("GET / HTTP/1.1") aside
        ls = [ln for ln in open(alog).read().splitlines() if '"GET / HTTP/1.1"' not in ln]
        return ls if len(ls) >= 6 else None
    lines = wait_for(ours, 10, what="six access-log lines")
    parsed = [LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    rows = [m.groups() for m in parsed]
    assert rows[0] == ("bob", "GET /?a=1 HTTP/1.1", "200", str(len(first[2])), "-", "curl/8")
    assert rows[1][1:] == ("GET /x HTTP/1.1", "200", rows[0][3], 'ref\\"x', 'a\\"b\\xffc\\\\d'), lines[1]
    assert rows[1][0] == "-"
    assert rows[2][1:5] == ("GET /empty HTTP/1.1", "204", "0", "-")  # gunicorn: 0, not "-"
    assert rows[3][1:4] == ("GET /over HTTP/1.1", "200", "5")        # sent, not produced (10)
    assert rows[4][1:4] == ("HEAD / HTTP/1.1", "200", "0")           # no body left for HEAD
    assert rows[5][1:3] == ("GET /big?50000000 HTTP/1.1", "200")     # cut off, still a line
    assert 0 < int(rows[5][3]) < 50000000, lines[5]


def test_access_log_that_cannot_be_written_warns_once(gallop):
    g = gallop(["--workers", "1", "--access-log", "/dev/full"], app=APP)
    (w,) = g.wait_workers(1)
    for _ in range(6):
        assert get_pid(g.port) == w
    g.wait_log(r"\[WARNING\] cannot write the access log: No space left on device")
    time.sleep(0.2)
    assert g.log().count("cannot write the access log") == 1, g.log()[-3000:]


def _own_memory_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            if ctrl == "memory" and os.path.isdir(f"/sys/fs/cgroup/memory{path}"):
                return f"/sys/fs/cgroup/memory{path}", "memory.limit_in_bytes"
            if ctrl == "" and os.path.exists(f"/sys/fs/cgroup{path}/memory.max"):
                return f"/sys/fs/cgroup{path}", "memory.max"
    return None, None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a memory cgroup")
def test_worker_killed_by_the_oom_killer_is_named_so(gallop, tmp_path):
    base, limit_file = _own_memory_cgroup()
    assert base, "no memory cgroup to nest in"
    cg = os.path.join(base, f"gallop-oom-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(cg)
    try:
        with open(os.path.join(cg, limit_file), "w") as f:
            f.write(str(300 << 20))
        if limit_file == "memory.limit_in_bytes" and os.path.exists(os.path.join(cg, "memory.memsw.limit_in_bytes")):
            with open(os.path.join(cg, "memory.memsw.limit_in_bytes"), "w") as f:
                f.write(str(300 << 20))
        procs = os.path.join(cg, "cgroup.procs")
        g = gallop(["--workers", "1"], app=APP, prefix=["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"])
        (w,) = g.wait_workers(1)
        g.wait_serving()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and pid_alive(w):
            _ignore(lambda: get(g.port, "/leak", timeout=10))
        g.wait_log(rf"\[ERROR\] worker {w} was killed by the kernel's OOM killer \(signal 9, oom_kill in "
                   rf"\S+ went from 0 to 1\); replacing it")
        assert "that the master did not send" not in g.log()
        g.wait_workers(1)
        g.stop()
    finally:
        wait_for(lambda: _rmdir(cg), 10, what="the test cgroup to empty")


def _rmdir(path):
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False
