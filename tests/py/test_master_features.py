"""Master features: --threads, --preload, --fd, --pid, --reuse-port,
--workers auto, systemd socket activation and sd_notify readiness."""
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import time

import pytest

from mastertools import free_port, gallop, get, get_pid  # noqa: F401 (gallop: fixture)


# ---- --threads ------------------------------------------------------------------

def _ten_sleepers(port):
    def one(_):
        status, body = get(port, "/sleep?0.2", timeout=10)
        assert status == 200
        return int(body)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        pids = list(ex.map(one, range(10)))
    return time.monotonic() - t0, pids


def test_threads_run_requests_concurrently(gallop):
    g = gallop(["--workers", "1", "--threads", "10"])
    (w,) = g.wait_workers(1)
    g.wait_serving()
    took, pids = _ten_sleepers(g.port)
    assert set(pids) == {w}
    assert took < 1.5, took


def test_one_thread_serialises_requests(gallop):
    """The control for the test above: with one thread the same load takes 2 s."""
    g = gallop(["--workers", "1", "--threads", "1"])
    (w,) = g.wait_workers(1)
    g.wait_serving()
    took, pids = _ten_sleepers(g.port)
    assert set(pids) == {w}
    assert took >= 2.0, took


# ---- --preload --------------------------------------------------------------------

@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_preload_imports_once_in_the_master(gallop, tmp_path, preload):
    imports = tmp_path / "imports.txt"
    args = ["--workers", "2"] + (["--preload"] if preload else [])
    g = gallop(args, app="master_preload:app", env={"GALLOP_TEST_IMPORT_LOG": str(imports)})
    ws = g.wait_workers(2)
    g.wait_serving()
    lines = [int(x) for x in imports.read_text().split()]
    if preload:
        assert lines == [g.pid]
        assert "app master_preload:app preloaded in the master" in g.log()
        # the workers run the master's copy: no import of their own
        assert get_pid(g.port) in ws
    else:
        assert sorted(lines) == sorted(ws)
        assert g.pid not in lines


# ---- --fd, --pid, --reuse-port ---------------------------------------------------------

def test_fd_serves_an_inherited_socket(gallop):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    port = lsock.getsockname()[1]
    fd = lsock.fileno()
    try:
        g = gallop(["--workers", "2", "--fd", str(fd)], port=port, bind=False, pass_fds=[fd])
        ws = g.wait_workers(2)
        g.wait_serving()
        assert f"listening at http://127.0.0.1:{port} " in g.log()
        assert get_pid(g.port) in ws
        g.kill(signal.SIGTERM)
        assert g.wait_exit(timeout=15) == 0
        # the socket is still ours and still listening after gallop is gone
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        lsock.close()


def test_pid_file_written_and_removed(gallop, tmp_path):
    pidfile = tmp_path / "run" / "gallop.pid"
    pidfile.parent.mkdir()
    g = gallop(["--workers", "1", "--pid", pidfile])
    g.wait_workers(1)
    g.wait_serving()
    assert pidfile.read_text() == f"{g.pid}\n"
    assert os.listdir(pidfile.parent) == ["gallop.pid"]  # no temp file left
    g.kill(signal.SIGTERM)
    assert g.wait_exit(timeout=15) == 0
    assert not pidfile.exists()


def test_reuse_port_spreads_over_both_workers(gallop):
    g = gallop(["--workers", "2", "--reuse-port"])
    ws = set(g.wait_workers(2))
    g.wait_serving()
    seen = set()
    for _ in range(200):
        seen.add(get_pid(g.port, timeout=5))
        if seen == ws:
            break
    assert seen == ws, (seen, ws)


# ---- --workers auto ------------------------------------------------------------------------

def _started_line(g):
    m = g.wait_log(r"\[INFO\] starting (\d+) workers? \(([^)]*)\)")[0]
    return int(m[0]), m[1]


def test_workers_auto_logs_why(gallop):
    g = gallop(["--workers", "auto"])
    n, why = _started_line(g)
    assert 1 <= n <= len(os.sched_getaffinity(0)), (n, why)
    assert re.search(r"affinity|cgroup|cpu", why, re.I), why
    g2 = gallop(["--workers", "auto", "--workers-formula", "2cores+1"])
    n2, why2 = _started_line(g2)
    assert n2 == 2 * n + 1, (n, n2)
    assert why2 == f"2 x cores + 1; {why}", (why, why2)


# ---- systemd ----------------------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                    reason="needs systemd-socket-activate (Debian package: systemd)")
def test_systemd_socket_activation(gallop):
    port = free_port()
    g = gallop(["--workers", "2"], port=port, bind=False,
               prefix=[shutil.which("systemd-socket-activate"), "-l", f"127.0.0.1:{port}"])
    # systemd-socket-activate execs gallop on the first connection: same pid
    g.wait_serving(timeout=20)
    ws = g.wait_workers(2)
    log = g.log()
    assert "using 1 socket from systemd" in log, log[-3000:]
    assert f"listening at http://127.0.0.1:{port} ({g.pid})" in log
    assert get_pid(g.port) in ws
    g.kill(signal.SIGTERM)
    assert g.wait_exit(timeout=15) == 0


def _recv_until(sock, pred, timeout, got):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if pred(msg):
            return msg
    raise AssertionError(f"no matching notification within {timeout}s; got {got}")


def test_sd_notify_ready_reloading_stopping(gallop, tmp_path):
    path = str(tmp_path / "notify.sock")
    if len(path) >= 100:
        path = f"/tmp/gallop-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(path)
    got = []
    try:
        g = gallop(["--workers", "2"], env={"NOTIFY_SOCKET": path})
        ready = _recv_until(nsock, lambda m: "READY=1" in m, 20, got)
        fields = dict(line.split("=", 1) for line in ready.split("\n") if line)
        assert fields["READY"] == "1" and fields["MAINPID"] == str(g.pid), ready
        assert fields["STATUS"] == "serving with 2 workers", ready
        # READY comes once both workers are ready, not before
        assert len(g.wait_workers(2, timeout=2)) == 2
        assert get_pid(g.port) in g.workers()
        before = len(got)

        g.kill(signal.SIGHUP)
        reloading = _recv_until(nsock, lambda m: "RELOADING=1" in m, 10, got)
        assert "READY=1" not in reloading
        again = _recv_until(nsock, lambda m: "READY=1" in m, 20, got)
        assert "generation 2" in again, again
        assert got.index(reloading, before) < got.index(again, before)
        g.wait_log("reload complete: generation 2")

        g.kill(signal.SIGTERM)
        _recv_until(nsock, lambda m: "STOPPING=1" in m, 10, got)
        assert g.wait_exit(timeout=15) == 0
    finally:
        nsock.close()
        os.unlink(path)


# ---- --user, --group, --umask ------------------------------------------------------------------

def _ids(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Umask"):
                out[k] = v.split()
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_group_umask(gallop, tmp_path):
    import grp
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
        nogroup = grp.getgrnam("nogroup")
    except KeyError:
        pytest.skip("no nobody/nogroup")
    pidfile = tmp_path / "g.pid"
    g = gallop(["--workers", "2", "--user", "nobody", "--group", "nogroup", "--umask", "027", "--pid", pidfile])
    ws = g.wait_workers(2)
    g.wait_serving()
    m = _ids(g.pid)
    assert m["Uid"][0] == "0" and m["Umask"] == ["0027"]
    for w in ws:
        ids = _ids(w)
        assert set(ids["Uid"]) == {str(nobody.pw_uid)}, ids
        assert set(ids["Gid"]) == {str(nogroup.gr_gid)}, ids
    assert get_pid(g.port) in ws
    assert oct(os.stat(pidfile).st_mode & 0o777) == oct(0o640)


def test_listen_fds_for_another_pid_are_ignored(gallop):
    """LISTEN_FDS is only ours when LISTEN_PID names us (sd_listen_fds rules)."""
    g = gallop(["--workers", "1"], env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
    g.wait_workers(1)
    g.wait_serving()
    log = g.log()
    assert "from systemd" not in log
    assert f"listening at http://127.0.0.1:{g.port} " in log


def test_sd_notify_abstract_socket(gallop):
    name = f"gallop-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind("\0" + name)
    got = []
    try:
        g = gallop(["--workers", "1"], env={"NOTIFY_SOCKET": "@" + name})
        ready = _recv_until(nsock, lambda m: "READY=1" in m, 20, got)
        assert f"MAINPID={g.pid}" in ready
    finally:
        nsock.close()
