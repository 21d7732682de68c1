"""Command lines people already have for gunicorn and uvicorn, typed the same
way at gallop: options after the app, uvicorn's --host/--port/--uds/...,
gunicorn's short flags, -k, --bind forms (HOST alone, PORT alone, tcp://,
unix://, fd://), $PORT, the app factory call syntax, -v/-V/--version,
--help, --log-level debug, and workers' load errors as log lines.

Each test starts the real binary the way a Dockerfile or Procfile would and
checks the effect at a client. Addresses that must be port 8000 are tried in
a network namespace of their own (unshare -rn), where 8000 is surely free."""
import json
import re
import signal
import socket
import subprocess
import textwrap
import time

import pytest
import requests

from conftest import APPS, GALLOP_BIN, PYTHON, free_port, read_response, run_gallop
from mastertools import base_env

LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ")

MAIN_PY = textwrap.dedent("""\
    import os
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.get("/")
    async def root(request: Request):
        return {"hello": "world", "root_path": request.scope.get("root_path", ""), "pid": os.getpid()}
    """)

WSGI_PY = textwrap.dedent("""\
    import os

    def app(environ, start_response):
        body = ("wsgi %d" % os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    """)


def clean_env(extra=None):
    e = base_env()
    e.pop("PORT", None)  # gallop's default address depends on it
    e.update(extra or {})
    return e


class Gallop:
    """gallop started with exactly the given argv (no --bind added)."""

    def __init__(self, argv, cwd, log_path, env=None, pass_fds=()):
        self.argv = [GALLOP_BIN] + list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
                                     env=clean_env(env), pass_fds=pass_fds)
        self.pid = self.proc.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, workers=1, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if self.proc.poll() is not None:
                raise AssertionError(f"gallop exited {self.proc.returncode}:\n{log}")
            if len(re.findall(r"worker \d+ ready", log)) >= workers:
                return self
            time.sleep(0.05)
        raise AssertionError("not ready:\n" + self.log())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def launch(tmp_path):
    started = []

    def start(argv, cwd=APPS, env=None, pass_fds=(), workers=1, wait=True):
        g = Gallop(argv, str(cwd), str(tmp_path / f"gallop-{len(started)}.log"), env, pass_fds)
        started.append(g)
        return g.wait_ready(workers) if wait else g

    yield start
    for g in started:
        g.stop()


@pytest.fixture
def project(tmp_path):
    """A directory like a user's project: main.py (FastAPI) and wsgi.py."""
    d = tmp_path / "proj"
    d.mkdir()
    (d / "main.py").write_text(MAIN_PY)
    (d / "wsgi.py").write_text(WSGI_PY)
    return d


def listening(log):
    return re.findall(r"listening at (\S+)", log)


def get_unix(path, target="/"):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        status, _, body, _ = read_response(s)
        return status, body


def refused(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return False
    except ConnectionRefusedError:
        return True


# ---- options before and after the app ------------------------------------

def test_gunicorn_options_after_app(launch, project):
    port = free_port()
    g = launch(["wsgi:app", "-w", "2", "-b", f"127.0.0.1:{port}"], cwd=project, workers=2)
    assert listening(g.log()) == [f"http://127.0.0.1:{port}"]
    assert "starting 2 workers (from --workers)" in g.log()
    r = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert r.status_code == 200 and r.text.startswith("wsgi ")


def test_gunicorn_docker_line(launch, project):
    """`gunicorn -w 4 -b 0.0.0.0:8000 wsgi:app`, on a free port."""
    port = free_port()
    g = launch(["-w", "2", "-b", f"0.0.0.0:{port}", "wsgi:app", "-t", "60", "--access-logfile", "-"],
               cwd=project, workers=2)
    assert listening(g.log()) == [f"http://0.0.0.0:{port}"]
    r = requests.get(f"http://127.0.0.1:{port}/x", timeout=10)
    assert r.status_code == 200
    time.sleep(0.3)
    assert '"GET /x HTTP/1.1" 200' in g.log()


def test_gunicorn_docker_worker_tmp_dir(launch, project):
    """The Docker guides' `gunicorn --worker-tmp-dir /dev/shm --workers 2 ...`:
    accepted (gallop's heartbeat is in shared memory already)."""
    port = free_port()
    launch(["--worker-tmp-dir", "/dev/shm", "--workers", "2", "--bind", f"0.0.0.0:{port}",
            "wsgi:app"], cwd=project, workers=2)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    r = run_gallop(["--worker-tmp-dir", "/no/such/dir", "wsgi:app"])
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_second_positional_is_a_usage_error(project):
    r = run_gallop(["wsgi:app", "-w", "2", "workers"], cwd=str(project))
    assert r.returncode == 2
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("gallop: error: ")]
    assert errs == ["gallop: error: unexpected argument 'workers' (one application only)"], r.stderr


def test_double_dash_then_app(launch, project):
    port = free_port()
    launch(["-b", f"127.0.0.1:{port}", "--", "wsgi:app"], cwd=project)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200


# ---- uvicorn's flags ---------------------------------------------------------

def test_uvicorn_host_port_workers(launch, project):
    """`uvicorn main:app --host 0.0.0.0 --port 8000 --workers 2` (FastAPI)."""
    port = free_port()
    g = launch(["main:app", "--host", "0.0.0.0", "--port", str(port), "--workers", "2"],
               cwd=project, workers=2)
    assert listening(g.log()) == [f"http://0.0.0.0:{port}"]
    pids = set()
    for _ in range(6):
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=10, headers={"Connection": "close"})
        assert r.status_code == 200 and r.json()["hello"] == "world"
        pids.add(r.json()["pid"])
    assert len(pids) >= 1


def test_uvicorn_http_loop_app_dir(launch, project, tmp_path):
    """`uvicorn main:app --app-dir proj --http httptools --loop uvloop --ws websockets`
    from the directory above the project."""
    port = free_port()
    launch(["main:app", "--app-dir", str(project), "--http", "httptools", "--loop", "uvloop",
            "--ws", "websockets", "--port", str(port)], cwd=tmp_path)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).json()["hello"] == "world"
    r = run_gallop(["main:app", "--http", "h2"])
    assert r.returncode == 2 and "invalid --http 'h2'" in r.stderr


def test_uvicorn_port_alone_is_loopback(launch, project):
    """uvicorn's --host defaults to 127.0.0.1: not reachable on 127.0.0.2,
    which a socket on every interface would answer."""
    port = free_port()
    g = launch(["--port", str(port), "main:app"], cwd=project)
    assert listening(g.log()) == [f"http://127.0.0.1:{port}"]
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).json()["hello"] == "world"
    assert refused("127.0.0.2", port)


def test_uvicorn_ipv6_host(launch, project):
    port = free_port(socket.AF_INET6, "::1")
    g = launch(["main:app", "--host", "::1", "--port", str(port)], cwd=project)
    assert listening(g.log()) == [f"http://[::1]:{port}"]
    assert requests.get(f"http://[::1]:{port}/", timeout=10).status_code == 200


def test_uvicorn_uds_root_path_keepalive(launch, project, tmp_path):
    """`uvicorn main:app --uds /tmp/app.sock --root-path /api --timeout-keep-alive 1`."""
    sock = str(tmp_path / "app.sock")
    launch(["main:app", "--uds", sock, "--root-path", "/api", "--timeout-keep-alive", "1",
            "--proxy-headers"], cwd=project)
    status, body = get_unix(sock)
    assert status == 200 and json.loads(body)["root_path"] == "/api"
    # an idle keep-alive connection is closed after about 1 s, not the default 5
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, rest = read_response(s)
        assert status == 200
        t0 = time.monotonic()
        s.settimeout(10)
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 3.5


@pytest.mark.parametrize("flags,honoured", [([], True), (["--proxy-headers"], True),
                                            (["--no-proxy-headers"], False)])
def test_uvicorn_proxy_headers(launch, flags, honoured):
    """uvicorn's switch: X-Forwarded-For from a --forwarded-allow-ips peer
    (127.0.0.1 by default) is believed unless --no-proxy-headers."""
    port = free_port()
    launch(["basic:app", "--port", str(port)] + flags)
    env = requests.get(f"http://127.0.0.1:{port}/env", headers={"X-Forwarded-For": "203.0.113.7"},
                       timeout=10).json()
    assert env["REMOTE_ADDR"] == ("203.0.113.7" if honoured else "127.0.0.1"), env


def test_uvicorn_limit_max_requests(launch, project):
    port = free_port()
    g = launch(["main:app", "--port", str(port), "--limit-max-requests", "3", "--workers", "1"],
               cwd=project)
    pids = []
    deadline = time.monotonic() + 30
    while len(set(pids)) < 2 and time.monotonic() < deadline:
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=10, headers={"Connection": "close"})
        pids.append(r.json()["pid"])
        time.sleep(0.05)
    # the first worker served its 3 requests (and on until its replacement was ready)
    assert len(set(pids)) == 2 and pids.count(pids[0]) >= 3, pids
    assert "reached --max-requests after 3 requests" in g.log()


def test_uvicorn_no_access_log(launch, project):
    port = free_port()
    g = launch(["main:app", "--port", str(port), "--access-log", "-", "--no-access-log"], cwd=project)
    requests.get(f"http://127.0.0.1:{port}/quiet", timeout=10)
    time.sleep(0.3)
    assert "/quiet" not in g.log()


def test_uvicorn_log_level_trace_is_debug(launch, project):
    port = free_port()
    g = launch(["main:app", "--port", str(port), "--log-level", "trace"], cwd=project)
    requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    time.sleep(0.3)
    assert "[DEBUG] connection" in g.log()


def test_uvicorn_factory(launch):
    """`uvicorn --factory cli_apps:make_fastapi`."""
    port = free_port()
    launch(["--factory", "cli_apps:make_fastapi", "--port", str(port)])
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).json()["hello"] == "world"


def test_uvicorn_worker_class(launch, project):
    """`gunicorn -w 2 -k uvicorn.workers.UvicornWorker main:app`: gallop's own
    workers run the ASGI app."""
    port = free_port()
    launch(["-w", "2", "-k", "uvicorn.workers.UvicornWorker", "-b", f"127.0.0.1:{port}", "main:app"],
           cwd=project, workers=2)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).json()["hello"] == "world"


@pytest.mark.parametrize("cls", ["gevent", "eventlet", "tornado"])
def test_unsupported_worker_class_exit_2(cls):
    r = run_gallop(["-k", cls, "wsgi:app"])
    assert r.returncode == 2
    assert f"unsupported worker class '{cls}'" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("args,needle", [
    (["--port", "70000", "main:app"], "invalid --port '70000'"),
    (["main:app", "--port", "http"], "invalid --port 'http'"),
    (["main:app", "--host", ""], "invalid --host ''"),
    (["main:app", "--uds", ""], "invalid --uds ''"),
])
def test_uvicorn_bad_values_exit_2(args, needle):
    r = run_gallop(args)
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr


# ---- --bind forms ------------------------------------------------------------

def test_bind_unix_equals_after_app_log_debug(launch, tmp_path):
    """`gallop --bind=unix:/tmp/x.sock app:app --log-level debug`: connection
    open/close and worker states are logged at debug."""
    sock = str(tmp_path / "x.sock")
    g = launch([f"--bind=unix:{sock}", "basic:app", "--log-level", "debug", "-w", "1"])
    status, body = get_unix(sock, "/pid")
    assert status == 200
    time.sleep(0.5)
    log = g.log()
    worker = int(body)
    assert re.search(rf"\[{worker}\] \[DEBUG\] connection \d+ from unix opened", log), log
    assert re.search(rf"\[{worker}\] \[DEBUG\] connection \d+ from unix closed", log), log
    assert re.search(rf"\[DEBUG\] worker {worker} booted \(generation 1\)", log), log
    g.stop()
    assert re.search(rf"\[{worker}\] \[DEBUG\] worker {worker} stopping: 0 connections open", g.log())


def test_log_level_info_logs_no_debug(launch):
    port = free_port()
    g = launch(["basic:app", "-b", f"127.0.0.1:{port}"])
    requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    g.stop()
    assert "[DEBUG]" not in g.log() and "worker" in g.log()


def test_debug_logs_tcp_peer_and_worker_connections(launch):
    port = free_port()
    g = launch(["basic:app", "-b", f"127.0.0.1:{port}", "--log-level", "debug",
                "--worker-connections", "1"])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(s)
        local = s.getsockname()[1]
        time.sleep(0.3)
    time.sleep(0.5)
    log = g.log()
    assert re.search(rf"connection \d+ from 127\.0\.0\.1:{local} opened", log), log
    assert re.search(rf"connection \d+ from 127\.0\.0\.1:{local} closed", log), log
    assert "is full: stops accepting (1 connections, --worker-connections 1)" in log
    assert "accepts again (0 connections" in log


def test_bind_tcp_prefix_as_gunicorn(launch, tmp_path):
    port = free_port()
    g = launch(["-b", f"tcp://127.0.0.1:{port}", "basic:app"])
    assert listening(g.log()) == [f"http://127.0.0.1:{port}"]
    assert "brackets" not in g.log()
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    g.stop()
    # gunicorn takes the same address
    gport = free_port()
    (tmp_path / "gapp.py").write_text(WSGI_PY)
    gp = subprocess.Popen([PYTHON, "-m", "gunicorn", "-b", f"tcp://127.0.0.1:{gport}", "gapp:app"],
                          cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                assert requests.get(f"http://127.0.0.1:{gport}/", timeout=5).status_code == 200
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError("gunicorn did not listen")
    finally:
        gp.terminate()
        gp.wait(timeout=20)


def test_bind_bare_port_is_loopback_only(launch):
    """`--bind PORT` listens on 127.0.0.1:PORT only, never every interface
    (gunicorn takes the number for a host and fails); `:PORT` is every
    interface, as in gunicorn."""
    port = free_port()
    g = launch(["-b", str(port), "basic:app"])
    assert listening(g.log()) == [f"http://127.0.0.1:{port}"]
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    assert refused("127.0.0.2", port)
    g.stop()
    port = free_port()
    g = launch(["-b", f":{port}", "basic:app"])
    assert listening(g.log()) == [f"http://0.0.0.0:{port}"]
    assert requests.get(f"http://127.0.0.2:{port}/", timeout=10).status_code == 200


def test_bind_unix_url_form(launch, tmp_path):
    sock = str(tmp_path / "u.sock")
    g = launch(["basic:app", "-b", f"unix://{sock}"])
    assert listening(g.log()) == [f"unix:{sock}"]
    assert get_unix(sock)[0] == 200


def test_bind_fd_url_form(launch):
    """gunicorn's `--bind fd://N` is --fd N."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    port = s.getsockname()[1]
    try:
        launch(["basic:app", "--bind", f"fd://{s.fileno()}"], pass_fds=(s.fileno(),))
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    finally:
        s.close()


def test_port_env_as_gunicorn(launch):
    """Heroku-style: no address given, $PORT set: 0.0.0.0:$PORT (gunicorn's default)."""
    port = free_port()
    g = launch(["basic:app"], env={"PORT": str(port)})
    assert listening(g.log()) == [f"http://0.0.0.0:{port}"]
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200


NETNS_PROBE = textwrap.dedent("""\
    import json, socket, subprocess, sys, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    argv, cwd = json.loads(sys.argv[1]), sys.argv[2]
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    def probe(host):
        try:
            socket.create_connection((host, 8000), timeout=2).close()
            return True
        except OSError:
            return False
    ok = False
    for _ in range(300):
        if p.poll() is not None:
            break
        if probe("127.0.0.1"):
            ok = True
            break
        time.sleep(0.05)
    res = {"127.0.0.1": ok, "127.0.0.2": probe("127.0.0.2"), "rc": p.poll()}
    if p.poll() is None:
        p.terminate()
    out, _ = p.communicate(timeout=20)
    res["log"] = out.decode("utf-8", "replace")
    print(json.dumps(res))
    """)


def in_netns(argv, cwd):
    """Runs argv in a fresh network namespace (only loopback; port 8000 free)
    and tells which of 127.0.0.1:8000 and 127.0.0.2:8000 accepted."""
    # -r: a user namespace too, so it needs no root where user namespaces are allowed
    r = subprocess.run(["unshare", "-rn", PYTHON, "-c", NETNS_PROBE, json.dumps(argv), cwd],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("bind,v6", [("127.0.0.1", False), ("localhost", False), ("[::1]", True),
                                     ("tcp://127.0.0.1", False), ("8000", False)])
def test_bind_without_port_is_8000(bind, v6, tmp_path):
    res = in_netns([GALLOP_BIN, "-w", "1", "--bind", bind, "basic:app"], APPS)
    want = "[::1]:8000" if v6 else "127.0.0.1:8000"
    assert f"listening at http://{want}" in res["log"], res["log"]
    if not v6:
        assert res["127.0.0.1"] and not res["127.0.0.2"], res


def test_default_address_is_uvicorns_and_gunicorns(tmp_path):
    """No address at all: 127.0.0.1:8000 for gallop, as for gunicorn."""
    res = in_netns([GALLOP_BIN, "-w", "1", "basic:app"], APPS)
    assert res["127.0.0.1"] and not res["127.0.0.2"], res
    (tmp_path / "gapp.py").write_text(WSGI_PY)
    gres = in_netns([PYTHON, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1", "gapp:app"], str(tmp_path))
    assert gres["127.0.0.1"] and not gres["127.0.0.2"], gres
    res = in_netns([GALLOP_BIN, "-w", "1", "-b", "127.0.0.1", "basic:app"], APPS)
    assert res["127.0.0.1"] and not res["127.0.0.2"], res


# ---- the app factory call syntax ---------------------------------------------

def test_factory_call_with_literal_arguments(launch):
    port = free_port()
    launch(["-b", f"127.0.0.1:{port}", "cli_apps:create_app('x', debug=True)"])
    body = requests.get(f"http://127.0.0.1:{port}/", timeout=10).text.split("|")
    assert body[:4] == ["x", "True", "()", "[]"], body


def test_factory_call_nested_literals(launch):
    port = free_port()
    launch(["-b", f"127.0.0.1:{port}", "cli_apps:create_app(1, {'a': [1, 2.5]}, None, z=-3, s=b'q')"])
    body = requests.get(f"http://127.0.0.1:{port}/", timeout=10).text.split("|")
    assert body[:4] == ["1", "{'a': [1, 2.5]}", "(None,)", "[('s', b'q'), ('z', -3)]"], body


def test_flask_factory_call(launch):
    """`gunicorn "myapp:create_app(config_name='testing', testing=True)"` with a real Flask factory."""
    port = free_port()
    launch(["-b", f"127.0.0.1:{port}", "cli_apps:create_flask(config_name='testing', testing=True)"])
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).json() == {"config": "testing",
                                                                            "testing": True}


@pytest.mark.parametrize("spec,why", [
    ("cli_apps:create_app(__import__('os').system('true'))", "is not a Python literal"),
    ("cli_apps:create_app(open('/etc/passwd'))", "is not a Python literal"),
    ("cli_apps:create_app(*['a'])", "*['a'] is not a Python literal"),
    ("cli_apps:create_app(**{'a': 1})", "is not a Python literal"),
    ("cli_apps:create_app(1)(2)", "expected one call"),
    ("cli_apps:create_app(1,,)", "expected one call"),
])
def test_factory_call_refuses_code(spec, why):
    r = run_gallop(["-b", f"127.0.0.1:{free_port()}", "-w", "1", "--chdir", APPS, spec], timeout=30)
    assert r.returncode == 4, r.stderr
    assert f"[ERROR] cannot call the app factory in '{spec}': " in r.stderr and why in r.stderr, r.stderr


@pytest.mark.parametrize("spec,name", [("cli_apps:no_such_factory(1)", "no_such_factory"),
                                       ("cli_apps:create_app.deeper('x.y')", "create_app.deeper")])
def test_factory_call_missing_attribute(spec, name):
    r = run_gallop(["-b", f"127.0.0.1:{free_port()}", "-w", "1", "--chdir", APPS, spec], timeout=30)
    assert r.returncode == 4
    assert f"[ERROR] attribute '{name}' not found in module 'cli_apps'" in r.stderr, r.stderr


def test_factory_call_that_raises_is_logged_once(tmp_path):
    r = run_gallop(["-b", f"127.0.0.1:{free_port()}", "-w", "2", "--chdir", APPS,
                    "cli_apps:exploding_factory('now')"], timeout=30)
    assert r.returncode == 4
    assert r.stderr.count("RuntimeError: factory-exploded-now") == 1, r.stderr
    assert "the app factory 'cli_apps:exploding_factory('now')' raised an exception" in r.stderr


def test_factory_call_unbalanced_is_usage_error():
    r = run_gallop(["cli_apps:create_app('x'"])
    assert r.returncode == 2 and "invalid application" in r.stderr


# ---- version and help ------------------------------------------------------

@pytest.mark.parametrize("flag", ["-v", "-V", "--version"])
def test_version_flags(flag):
    r = run_gallop([flag])
    assert r.returncode == 0 and re.fullmatch(r"gallop \d+\.\d+\.\d+\n", r.stdout), r.stdout


def test_help_says_wsgi_and_asgi():
    r = run_gallop(["--help"])
    assert r.returncode == 0
    head = r.stdout.split("\n\n")[1]
    assert "WSGI" in head and "ASGI" in head and "after the app" in head, head
    for flag in ("--host", "--port", "--uds", "--timeout-keep-alive", "--limit-max-requests",
                 "--no-access-log", "--proxy-headers", "--worker-class", "-v, -V, --version"):
        assert flag in r.stdout, flag


# ---- workers' errors are log lines -------------------------------------------

def test_app_load_traceback_has_log_prefix():
    """An ImportError in the app: every line of the worker's report, the
    traceback included, carries the time, pid and level as the master's do."""
    r = run_gallop(["-b", f"127.0.0.1:{free_port()}", "-w", "1", "--chdir", APPS,
                    "import_missing_dep:app"], timeout=30)
    assert r.returncode == 4
    lines = r.stderr.splitlines()
    assert lines and all(LOG_LINE.match(ln) for ln in lines), r.stderr
    worker = [ln for ln in lines if "Traceback (most recent call last)" in ln]
    assert len(worker) == 1
    pid = LOG_LINE.match(worker[0]).group(1)
    mine = [ln[LOG_LINE.match(ln).end():] for ln in lines if LOG_LINE.match(ln).group(1) == pid]
    assert mine[0] == "the app module 'import_missing_dep' raised an exception while importing (traceback below)"
    assert mine[1] == "Traceback (most recent call last):"
    assert mine[-1] == "ModuleNotFoundError: No module named 'gallop_no_such_dependency_xyz'"
    assert all(LOG_LINE.match(ln).group(2) == "ERROR" for ln in lines
               if LOG_LINE.match(ln).group(1) == pid and "ready" not in ln)


def test_request_traceback_has_log_prefix(launch):
    port = free_port()
    g = launch(["basic:app", "-b", f"127.0.0.1:{port}"])
    assert requests.get(f"http://127.0.0.1:{port}/raise", timeout=10).status_code == 500
    time.sleep(0.3)
    log = g.log()
    tb = [ln for ln in log.splitlines() if "Traceback (most recent call last)" in ln]
    assert len(tb) == 1 and LOG_LINE.match(tb[0]) and "[ERROR]" in tb[0], log
    assert all(LOG_LINE.match(ln) for ln in log.splitlines()), log


def test_config_file_raising_in_worker_is_logged(tmp_path):
    """A gunicorn.conf.py whose second reading (the worker's, for its hooks)
    raises: the worker's report and traceback are log lines too."""
    marker = tmp_path / "read-once"
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent(f"""\
        import os
        if os.path.exists({str(marker)!r}):
            raise RuntimeError("conf-raises-in-worker")
        open({str(marker)!r}, "w").close()
        workers = 1

        def post_fork(server, worker):
            pass
        """))
    r = run_gallop(["-b", f"127.0.0.1:{free_port()}", "--chdir", APPS, "basic:app"], cwd=str(tmp_path),
                   timeout=30)
    assert r.returncode != 0, r.stderr
    lines = r.stderr.splitlines()
    report = [ln for ln in lines if "raised in the worker" in ln]
    assert len(report) >= 1 and LOG_LINE.match(report[0]) and "[ERROR]" in report[0], r.stderr
    cause = [ln for ln in lines if "RuntimeError: conf-raises-in-worker" in ln]
    assert cause and all(LOG_LINE.match(ln) for ln in cause), r.stderr
