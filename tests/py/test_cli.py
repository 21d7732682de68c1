"""Command line: bad input and its exit codes, --version/--help, binds, workers,
logs, --venv / VIRTUAL_ENV."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import APPS, GALLOP_BIN, Server, free_port, raw_request, recv_all, run_gallop, status_of

LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ")


def error_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("gallop: error: ")]


def logged_errors(text):
    """The messages of the log's ERROR lines (a worker's load failure is one)."""
    return [ln[m.end():] for ln in text.splitlines() if (m := LOG_LINE.match(ln)) and m.group(1) == "ERROR"]


def bind_arg():
    return "127.0.0.1:%d" % free_port()


def test_version_and_help():
    r = run_gallop(["--version"])
    assert r.returncode == 0 and re.match(r"gallop \d+\.\d+", r.stdout + r.stderr)
    for flag in ("--help", "-h"):
        r = run_gallop([flag])
        assert r.returncode == 0
        out = r.stdout + r.stderr
        assert "usage: gallop" in out and "--bind" in out and "--workers" in out


@pytest.mark.parametrize("args,needle", [
    (["--no-such-flag", "basic:app"], "--no-such-flag"),
    (["-Z", "basic:app"], "-Z"),
    (["--workers", "zero", "basic:app"], "zero"),
    (["--workers", "0", "basic:app"], "0"),
    (["--workers", "-3", "basic:app"], "-3"),
    (["--workers", "3x", "basic:app"], "3x"),
    (["--keep-alive", "abc", "basic:app"], "abc"),
    (["--limit-request-fields", "100000", "basic:app"], "100000"),
    (["--log-level", "loud", "basic:app"], "loud"),
    (["--bind"], "bind"),
    ([], "app"),
    (["basic:app", "extra:app"], "extra"),
])
def test_usage_errors_exit_2(args, needle):
    r = run_gallop(args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    errs = error_lines(r.stderr)
    assert len(errs) == 1, r.stderr
    assert needle in errs[0]


def test_bad_workers_from_env_exit_2():
    r = run_gallop(["--bind", bind_arg(), "basic:app"], env={"WEB_CONCURRENCY": "lots"})
    assert r.returncode == 2
    errs = error_lines(r.stderr)
    assert len(errs) == 1 and "lots" in errs[0]


@pytest.mark.parametrize("addr", ["127.0.0.1:99999", "127.0.0.1:abc", "nonsense", "999.1.1.1:80",
                                  "[::1:80", "unix:", "127.0.0.1:"])
def test_bad_address(addr):
    r = run_gallop(["--bind", addr, "--workers", "1", "--chdir", APPS, "basic:app"], timeout=15)
    assert r.returncode != 0, r.stderr
    assert r.returncode in (1, 2)
    errs = error_lines(r.stderr)
    assert len(errs) == 1, r.stderr
    assert addr in errs[0] or addr.split(":")[-1] in errs[0], errs


def test_port_in_use_exit_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_gallop(["--bind", "127.0.0.1:%d" % port, "--workers", "1", "--chdir", APPS, "basic:app"])
    assert r.returncode == 1
    errs = error_lines(r.stderr)
    assert len(errs) == 1 and str(port) in errs[0], r.stderr


def test_cannot_chdir_exit_1(tmp_path):
    r = run_gallop(["--bind", bind_arg(), "--chdir", str(tmp_path / "missing"), "basic:app"])
    assert r.returncode == 1
    errs = error_lines(r.stderr)
    assert len(errs) == 1 and "missing" in errs[0]


def test_module_not_found_exit_4():
    t0 = time.monotonic()
    r = run_gallop(["--bind", bind_arg(), "--workers", "2", "--chdir", APPS, "no_such_module_xyz:app"], timeout=20)
    assert r.returncode == 4, r.stderr
    assert time.monotonic() - t0 < 10
    assert not error_lines(r.stderr), r.stderr  # the worker's error is a log line
    errs = logged_errors(r.stderr)
    assert len(errs) == 2 and "exit 4" in errs[1], r.stderr
    assert "no_such_module_xyz" in errs[0]
    assert r.stderr.count("booting worker") <= 2  # no respawn loop
    assert "Traceback" not in r.stderr


def test_dependency_missing_is_not_module_missing():
    r = run_gallop(["--bind", bind_arg(), "--workers", "1", "--chdir", APPS, "import_missing_dep:app"], timeout=20)
    assert r.returncode == 4
    assert "gallop_no_such_dependency_xyz" in r.stderr  # the real cause is shown
    assert r.stderr.count("Traceback") == 1


def test_attribute_missing_exit_4():
    r = run_gallop(["--bind", bind_arg(), "--workers", "2", "--chdir", APPS, "basic:no_such_attr"], timeout=20)
    assert r.returncode == 4
    errs = logged_errors(r.stderr)
    assert "no_such_attr" in errs[0]
    assert sum("no_such_attr" in e for e in errs) == 1, r.stderr


def test_import_raises_exit_4_traceback_once():
    t0 = time.monotonic()
    r = run_gallop(["--bind", bind_arg(), "--workers", "3", "--chdir", APPS, "import_raises:app"], timeout=20)
    assert r.returncode == 4
    assert time.monotonic() - t0 < 10
    # the message line of the exception, once (the source line in the traceback quotes it too)
    assert r.stderr.count("RuntimeError: import-time-failure-marker") == 1, r.stderr
    assert r.stderr.count("Traceback") == 1
    assert "import_raises" in logged_errors(r.stderr)[0]


def test_workers_auto_logs_reason(server_factory):
    srv = server_factory("basic:app", "--workers", "auto", workers=None)
    log = srv.log()
    m = re.search(r"starting (\d+) workers? \((.*)\)", log)
    assert m, log
    n = int(m.group(1))
    assert n == len(os.sched_getaffinity(0)) or "cgroup" in m.group(2)
    assert "usable CPU" in m.group(2) and "affinity" in m.group(2)
    assert len(srv.wait_workers(n)) == n


def test_web_concurrency(server_factory):
    srv = server_factory("basic:app", workers=None, env={"WEB_CONCURRENCY": "3"})
    ws = srv.wait_workers(3)
    assert len(set(ws)) == 3
    assert re.search(r"starting 3 workers", srv.log())
    # --workers wins over the environment
    srv2 = server_factory("basic:app", workers=1, env={"WEB_CONCURRENCY": "3"})
    assert len(srv2.wait_workers(1)) == 1


def test_log_line_format(server_factory):
    srv = server_factory("basic:app")
    lines = [ln for ln in srv.log().splitlines() if ln.strip()]
    assert lines and all(LOG_LINE.match(ln) for ln in lines), lines
    assert any("listening at http://127.0.0.1:%d" % srv.port in ln for ln in lines)


def test_ipv6_bind(server_factory):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv = server_factory("basic:app", bind="[::1]:%d" % port, wait=False)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("::1", port), timeout=5) as c:
                c.sendall(b"GET /v6 HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
                data = recv_all(c)
                break
        except OSError:
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.1)
    assert data.endswith(b"hello /v6")
    out = subprocess.run(["curl", "-sS", "-m", "5", "-g", "http://[::1]:%d/env" % port], capture_output=True, timeout=10)
    assert b'"REMOTE_ADDR": "::1"' in out.stdout


def test_unix_socket_bind(server_factory, tmp_path):
    path = str(tmp_path / "g.sock")
    srv = server_factory("basic:app", bind="unix:" + path, wait=False)
    deadline = time.monotonic() + 15
    while not os.path.exists(path):
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)
    srv.wait_ready()
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(5)
        c.connect(path)
        c.sendall(b"GET /unix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert recv_all(c).endswith(b"hello /unix")
    out = subprocess.run(["curl", "-sS", "-m", "5", "--unix-socket", path, "http://localhost/env"],
                         capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    import json
    e = json.loads(out.stdout)
    assert e["REQUEST_METHOD"] == "GET" and e["PATH_INFO"] == "/env"
    srv.stop()
    assert not os.path.exists(path)  # the socket file is removed on exit


def test_two_binds(server_factory, tmp_path):
    port2 = free_port()
    path = str(tmp_path / "two.sock")
    srv = server_factory("basic:app", workers=2, extra_binds=["127.0.0.1:%d" % port2, "unix:" + path])
    assert requests.get(srv.url("/first"), timeout=5).text == "hello /first"
    assert requests.get("http://127.0.0.1:%d/two" % port2, timeout=5).text == "hello /two"
    import json
    e = json.loads(requests.get("http://127.0.0.1:%d/env" % port2, timeout=5).text)
    assert e["SERVER_PORT"] == str(port2)
    out = subprocess.run(["curl", "-sS", "-m", "5", "--unix-socket", path, "http://localhost/three"],
                         capture_output=True, timeout=10)
    assert out.stdout == b"hello /three"


def test_access_log_file(server_factory, tmp_path):
    alog = tmp_path / "access.log"
    srv = server_factory("basic:app", "--access-log", str(alog))
    s = requests.Session()
    s.get(srv.url("/path?q=1"), headers={"User-Agent": "test-agent/1.0", "Referer": "http://ref/"}, timeout=5)
    s.post(srv.url("/echo"), data=b"12345", timeout=5)
    requests.get(srv.url("/raise"), timeout=5)
    raw_request(srv.port, b"GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n")
    deadline = time.monotonic() + 5
    while alog.read_text().count("\n") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = alog.read_text().splitlines()
    pat = re.compile(r'^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                     r'"(?:(\S+) (\S+) (HTTP/1\.[01])|-)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$')
    parsed = [pat.match(ln) for ln in lines]
    assert all(parsed), lines
    g = [m.groups() for m in parsed]
    assert ("GET", "/path?q=1", "HTTP/1.1", "200", str(len("hello /path")), "http://ref/", "test-agent/1.0") in g
    assert any(x[0] == "POST" and x[1] == "/echo" and x[3] == "200" and x[4] == "5" for x in g), g
    assert any(x[1] == "/raise" and x[3] == "500" for x in g), g
    assert any(x[0] is None and x[3] == "400" for x in g), g  # the rejected head


def test_access_log_stdout(server_factory):
    srv = server_factory("basic:app", "--access-log", "-")
    requests.get(srv.url("/to-stdout"), timeout=5)
    deadline = time.monotonic() + 5
    while '"GET /to-stdout HTTP/1.1" 200' not in srv.log():
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)


def test_error_log_file(server_factory, tmp_path):
    elog = tmp_path / "error.log"
    srv = server_factory("basic:app", "--error-log", str(elog))
    assert requests.get(srv.url("/raise"), timeout=5).status_code == 500
    deadline = time.monotonic() + 5
    while "boom-marker-in-app" not in elog.read_text():
        assert time.monotonic() < deadline, elog.read_text()
        time.sleep(0.05)
    text = elog.read_text()
    assert "Traceback" in text and "starting 1 worker" in text
    assert "boom-marker-in-app" not in srv.log()


def test_log_level_warning_hides_info(server_factory, tmp_path):
    srv = server_factory("basic:app", "--log-level", "warning")
    requests.get(srv.url("/raise"), timeout=5)
    time.sleep(0.3)
    log = srv.log()
    assert "[INFO]" not in log


def _make_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    sp = venv / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    assert sp.is_dir()
    (sp / "venvonly_mod.py").write_text("MESSAGE = 'from the venv'\n")
    return venv


def test_venv_option(server_factory, tmp_path):
    venv = _make_venv(tmp_path)
    r = run_gallop(["--bind", bind_arg(), "--workers", "1", "--chdir", APPS, "venvapp:app"], timeout=20)
    assert r.returncode == 4 and "venvonly_mod" in r.stderr  # not importable without the venv
    srv = server_factory("venvapp:app", "--venv", str(venv))
    assert requests.get(srv.url("/"), timeout=5).text == "from the venv"
    srv2 = server_factory("venvapp:app", env={"VIRTUAL_ENV": str(venv)})
    assert requests.get(srv2.url("/"), timeout=5).text == "from the venv"


def test_venv_missing(tmp_path):
    r = run_gallop(["--bind", bind_arg(), "--workers", "1", "--chdir", APPS, "--venv", str(tmp_path / "nope"),
                    "basic:app"], timeout=20)
    assert r.returncode != 0
    assert "nope" in "".join(error_lines(r.stderr))


def test_pythonpath(server_factory):
    srv = server_factory("basic:app", "--pythonpath", APPS, chdir=None)
    assert requests.get(srv.url("/pp"), timeout=5).text == "hello /pp"
