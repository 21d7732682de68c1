"""Python config files as gunicorn reads them (gunicorn.conf.py, -c FILE.py)
and gunicorn's server hooks, against the real build/gallop; the same file
under the real gunicorn where behaviour could differ.

The files are written the way gunicorn's docs write them: `bind = "..."`,
`workers = multiprocessing.cpu_count() * 2 + 1`, `accesslog = "-"`, hooks
that log and write files."""
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time

import pytest

from mastertools import APPS, GALLOP_BIN, REPO, base_env, free_port, gallop, get, wait_for  # noqa: F401

APP = "conf_app:app"


def conf(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def served(port, path="/"):
    status, body = get(port, path)
    assert status == 200, (status, body)
    return json.loads(body)


def records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_bad(tmp_path, args, cwd=None):
    """gallop that must refuse to start: (exit code, stderr lines)."""
    p = subprocess.run([GALLOP_BIN] + [str(a) for a in args], cwd=cwd or tmp_path, env=base_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stderr.decode().splitlines()


# ---- settings ----------------------------------------------------------------------------


def test_gunicorn_conf_py_as_the_docs_write_it(gallop, tmp_path):
    port = free_port()
    c = conf(tmp_path / "gunicorn.conf.py", f"""\
        import multiprocessing

        bind = "127.0.0.1:{port}"
        workers = multiprocessing.cpu_count() * 2 + 1
        accesslog = "-"
        loglevel = "info"
        keepalive = 4
        timeout = 20
        raw_env = ["GREETING=hello from raw_env"]
        chdir = {APPS!r}
        """)
    g = gallop(["-c", c], app=APP, bind=False, chdir=None, port=port)
    n = multiprocessing.cpu_count() * 2 + 1
    pids = g.wait_workers(n)
    body = served(port, "/x")
    assert body["pid"] in pids and body["greeting"] == "hello from raw_env"
    g.wait_log(r'"GET /x HTTP/1.1" 200 ')  # accesslog = "-"
    assert f"config file {c} read" in g.log()
    assert "WARNING" not in g.log(), g.log()


def test_default_file_is_found_in_the_working_directory(gallop, tmp_path):
    port = free_port()
    conf(tmp_path / "gunicorn.conf.py", f'bind = "127.0.0.1:{port}"\nworkers = 2\n')
    g = gallop([], app=APP, bind=False, cwd=tmp_path, port=port)
    g.wait_workers(2)
    served(port)
    assert f"config file {tmp_path}/gunicorn.conf.py read (Python" in g.log()


def test_gallop_conf_py_comes_before_gunicorn_conf_py(gallop, tmp_path):
    port, other = free_port(), free_port()
    conf(tmp_path / "gunicorn.conf.py", f'bind = "127.0.0.1:{other}"\nworkers = 3\n')
    conf(tmp_path / "gallop.conf.py", f'bind = "127.0.0.1:{port}"\nworkers = 1\n')
    g = gallop([], app=APP, bind=False, cwd=tmp_path, port=port)
    g.wait_workers(1)
    served(port)
    assert f"config file {tmp_path}/gallop.conf.py read" in g.log()
    with pytest.raises(OSError):
        get(other, timeout=1)


def test_the_command_line_wins_over_the_file(gallop, tmp_path):
    port, file_port = free_port(), free_port()
    c = conf(tmp_path / "settings.py", f"""\
        bind = ["127.0.0.1:{file_port}"]
        workers = 3
        raw_env = ["GREETING=file"]
        """)
    g = gallop(["-c", c, "--workers", "1", "--env", "GREETING=cli"], app=APP, port=port)
    g.wait_workers(1)
    assert served(port)["greeting"] == "cli"
    with pytest.raises(OSError):
        get(file_port, timeout=1)  # the command line's --bind replaced the file's list


def test_wsgi_app_setting_names_the_app(gallop, tmp_path):
    c = conf(tmp_path / "gunicorn.conf.py", 'wsgi_app = "conf_app:app"\nworkers = 1\n')
    g = gallop(["-c", c], app=None)
    g.wait_workers(1)
    assert served(g.port)["path"] == "/"


def test_settings_gallop_lacks_each_get_a_warning(gallop, tmp_path):
    c = conf(tmp_path / "gunicorn.conf.py", """\
        workers = 1
        access_log_format = '%(h)s %(r)s'
        worker_class = "sync"
        proc_name = "myapp"
        sendfile = False
        secure_scheme_headers = {"X-SSL": "on"}
        port = 8000  # a helper, not a setting: gunicorn ignores it

        def on_starting(server):
            pass

        def ssl_context(config, default_ssl_context_factory):
            pass
        """)
    g = gallop(["-c", c], app=APP)
    g.wait_workers(1)
    served(g.port)
    log = g.log()
    assert "setting 'access_log_format'" not in log  # a flag now: --access-log-format
    for line, name in [(4, "proc_name"),
                       (5, "sendfile"), (6, "secure_scheme_headers"), (7, "port"),
                       (9, "on_starting"), (12, "ssl_context")]:
        found = re.findall(rf"\[WARNING\] config file {re.escape(str(c))}, line {line}: setting '{name}': .+", log)
        assert len(found) == 1, (name, log)
    assert "--preload" in re.search(r"'on_starting': (.*)", log).group(1)
    assert "bind" in re.search(r"'port': (.*)", log).group(1)
    assert "8000" not in log  # nothing listens on the helper's port


def test_hup_evaluates_the_file_again(gallop, tmp_path):
    c = conf(tmp_path / "gunicorn.conf.py", 'workers = 1\nraw_env = ["GREETING=one"]\n')
    g = gallop(["-c", c], app=APP)
    old = g.wait_workers(1)
    assert served(g.port)["greeting"] == "one"
    conf(c, 'workers = 2\nraw_env = ["GREETING=two"]\n')
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload: 2 workers")
    new = g.wait_workers(2)
    assert not set(old) & set(new)
    assert served(g.port)["greeting"] == "two"
    # a file that no longer evaluates keeps the running configuration
    conf(c, 'workers = 3\nraise RuntimeError("half-edited")\n')
    g.kill(signal.SIGHUP)
    g.wait_log(r"line 2: RuntimeError: half-edited")
    g.wait_log(r"the configuration has an error")
    assert len(g.wait_workers(2)) == 2


# ---- errors: one line naming file, line and setting; exit 2 --------------------------------

@pytest.mark.parametrize("text,line,needle", [
    ("workers = 2\nworker = 4\n", 2, "setting 'worker': unknown setting (did you mean 'workers'?)"),
    ("workers = 'lots'\n", 1, "setting 'workers': invalid worker count 'lots'"),
    ("bind = '127.0.0.1:8000'\ntimeout = -3\n", 2, "setting 'timeout': invalid --timeout '-3'"),
    ("preload_app = 'sometimes'\n", 1, "setting 'preload_app': expects True or False"),
    ("import os\n\nworkers = (2\n", 3, "SyntaxError: '(' was never closed"),
    ("workers = 1\nbind = undefined_name\n", 2, "NameError: name 'undefined_name' is not defined"),
    ("certfile = '/nonexistent/cert.pem'\ncert_reqs = 7\n", 2, "setting 'cert_reqs': invalid --cert-reqs '7'"),
    ("daemon = True\n", 1, "setting 'daemon': gallop does not detach"),
    ("workers = 2\nworker_class = 'gevent'\n", 2, "setting 'worker_class': unsupported worker class 'gevent'"),
    ("def post_fork(server, worker): pass\npre_request = 5\n", 2, "setting 'pre_request': a server hook must be a function"),
    ("raw_env = ['NOEQUALS']\n", 1, "setting 'raw_env': invalid --env 'NOEQUALS'"),
])
def test_a_bad_file_is_one_line_and_exit_2(tmp_path, text, line, needle):
    c = conf(tmp_path / "bad.conf.py", text)
    code, err = run_bad(tmp_path, ["-c", "bad.conf.py", APP])
    assert code == 2, err
    lines = [e for e in err if e.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gallop: error: config file bad.conf.py, line {line}: "), err
    assert needle in lines[0], err


def test_a_missing_file_is_an_error(tmp_path):
    code, err = run_bad(tmp_path, ["-c", "nope.py", APP])
    assert code == 2
    assert err == ["gallop: error: config file nope.py: cannot read it: No such file or directory"]


def test_key_value_files_name_their_line_too(tmp_path):
    conf(tmp_path / "gallop.conf", "# settings\nworkers = 2\nkeepalive = 3\nmax-requests = many\n")
    code, err = run_bad(tmp_path, ["-c", "gallop.conf", APP])
    assert code == 2
    assert err == ["gallop: error: config file gallop.conf, line 4: setting 'max-requests': "
                   "invalid --max-requests 'many'"], err
    conf(tmp_path / "py.conf", "import multiprocessing\nworkers = 2\n")
    code, err = run_bad(tmp_path, ["-c", "py.conf", APP])
    assert code == 2 and "line 1: this looks like Python" in err[0], err


# ---- server hooks -------------------------------------------------------------------------

HOOKS = """\
    import json, os
    OUT = {out!r}

    def _note(*args):
        with open(OUT, "a") as f:
            f.write(json.dumps(args) + "\\n")

    def post_fork(server, worker):
        worker.log.info("post_fork hook in %s", worker.pid)
        _note("post_fork", worker.pid, os.getpid(), worker.age, server.pid)

    def post_worker_init(worker):
        _note("post_worker_init", worker.pid, worker.booted)

    def pre_request(worker, req):
        _note("pre_request", worker.pid, req.method, req.path, req.query,
              dict(req.headers).get("X-TRACE"), list(req.version))
        if req.path == "/refused":
            raise RuntimeError("pre_request says no")

    def post_request(worker, req, environ, resp):
        _note("post_request", worker.pid, req.path, resp.status_code, resp.sent,
              environ["PATH_INFO"] if "PATH_INFO" in environ else environ["path"])

    def worker_int(worker):
        _note("worker_int", worker.pid, os.getpid())

    def worker_exit(server, worker):
        _note("worker_exit", worker.pid)
    """


def _traced_get(port, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path, headers={"X-Trace": "t-1"})
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out


def test_worker_hooks_run_with_gunicorns_arguments(gallop, tmp_path):
    out = tmp_path / "hooks.jsonl"
    c = conf(tmp_path / "gunicorn.conf.py", "workers = 2\n" + textwrap.dedent(HOOKS).format(out=str(out)))
    g = gallop(["-c", c], app=APP)
    pids = g.wait_workers(2)
    status, body = _traced_get(g.port, "/hello?x=1")
    assert status == 200
    served_by = json.loads(body)["pid"]
    status, _ = _traced_get(g.port, "/refused")
    assert status == 500
    g.wait_log(r"pre_request says no")
    wait_for(lambda: len([r for r in records(out) if r[0] == "post_request"]) >= 1, 5, what="post_request")
    recs = records(out)
    forks = [r for r in recs if r[0] == "post_fork"]
    assert sorted(r[1] for r in forks) == sorted(pids)
    assert all(r[1] == r[2] and r[4] == g.pid for r in forks)  # worker.pid is the worker; server.pid the master
    assert sorted(r[3] for r in forks) == [1, 2]  # worker.age counts the spawns
    assert sorted(r[1] for r in recs if r[0] == "post_worker_init") == sorted(pids)
    assert all(r[2] is True for r in recs if r[0] == "post_worker_init")
    assert ["pre_request", served_by, "GET", "/hello", "x=1", "t-1", [1, 1]] in recs
    posts = [r for r in recs if r[0] == "post_request"]
    assert posts == [["post_request", served_by, "/hello", 200, len(body), "/hello"]], recs
    assert len(re.findall(r"\[INFO\] post_fork hook in \d+", g.log())) == 2  # worker.log
    assert not any(r[0] == "worker_int" for r in recs)
    os.killpg(g.pid, signal.SIGINT)  # Ctrl-C: INT to the master and the workers: worker_int, a graceful stop
    assert g.wait_exit(20) == 0
    recs = records(out)
    assert sorted(r[1] for r in recs if r[0] == "worker_int") == sorted(pids)
    assert all(r[1] == r[2] for r in recs if r[0] == "worker_int")
    exits = [r[1] for r in recs if r[0] == "worker_exit"]
    assert sorted(exits) == sorted(pids)


def test_worker_abort_runs_on_timeout(gallop, tmp_path):
    """--timeout: the tracebacks are logged, then worker_abort(worker) runs in
    the stuck worker before the kill."""
    out = tmp_path / "abort.jsonl"
    c = conf(tmp_path / "gunicorn.conf.py", f"""\
        import json, os
        workers = 1
        timeout = 1

        def worker_abort(worker):
            with open({str(out)!r}, "a") as f:
                f.write(json.dumps([worker.pid, os.getpid(), worker.aborted]) + "\\n")
        """)
    g = gallop(["-c", c], app="master_app:app")
    (pid,) = g.wait_workers(1)
    import http.client
    with pytest.raises((OSError, http.client.HTTPException)):
        get(g.port, "/stuck", timeout=15)  # the worker is killed under the request
    assert records(out) == [[pid, pid, True]]
    g.wait_log(r"WORKER TIMEOUT \(pid:%d\)" % pid)
    assert "stuck_in_the_app" in g.log()  # the traceback dump still comes first
    g.wait_workers(1)  # and a replacement serves


def test_asgi_hooks_and_uvicorn_worker_class(gallop, tmp_path):
    out = tmp_path / "hooks.jsonl"
    c = conf(tmp_path / "gunicorn.conf.py",
             'worker_class = "uvicorn.workers.UvicornWorker"\nworkers = 1\n'
             + textwrap.dedent(HOOKS).format(out=str(out)))
    g = gallop(["-c", c], app="conf_app:asgi")
    (pid,) = g.wait_workers(1)
    status, body = _traced_get(g.port, "/a?b=c")
    assert status == 201 and json.loads(body)["pid"] == pid
    wait_for(lambda: any(r[0] == "post_request" for r in records(out)), 5, what="post_request")
    recs = records(out)
    assert ["pre_request", pid, "GET", "/a", "b=c", "t-1", [1, 1]] in recs
    assert ["post_request", pid, "/a", 201, len(body), "/a"] in recs


@pytest.mark.parametrize("more", ["", "def post_request(worker, req, environ, resp): pass"])
def test_request_hooks_keep_the_response_framing(gallop, tmp_path, more):
    """A one-piece body keeps the Content-Length gallop gives it, with or
    without post_request (whose wrapper hands gallop an iterator)."""
    out = tmp_path / "hooks.jsonl"
    c = conf(tmp_path / "gunicorn.conf.py", textwrap.dedent(f"""\
        workers = 1
        def post_fork(server, worker):
            open({str(out)!r}, "a").write("forked\\n")
        """) + more + "\n")
    g = gallop(["-c", c], app=APP)
    g.wait_workers(1)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
    conn.request("GET", "/nolength")
    r = conn.getresponse()
    r.read()
    assert r.getheader("Content-Length") == "9" and not r.getheader("Transfer-Encoding")
    conn.close()
    assert out.read_text() == "forked\n"


def test_master_hooks_run_with_preload(gallop, tmp_path):
    out = tmp_path / "master.jsonl"
    c = conf(tmp_path / "gunicorn.conf.py", textwrap.dedent(f"""\
        import json, os
        workers = 1
        preload_app = True
        def _note(*a):
            with open({str(out)!r}, "a") as f:
                f.write(json.dumps(a) + "\\n")
        def on_starting(server): _note("on_starting", server.pid, os.getpid())
        def when_ready(server): _note("when_ready", server.pid)
        def pre_fork(server, worker): _note("pre_fork", worker.pid, worker.age)
        def child_exit(server, worker): _note("child_exit", worker.pid)
        def nworkers_changed(server, new_value, old_value): _note("nworkers_changed", new_value, old_value)
        def on_reload(server): _note("on_reload", server.pid)
        def on_exit(server): _note("on_exit", os.getpid())
        """))
    g = gallop(["-c", c], app=APP)
    (first,) = g.wait_workers(1)
    g.kill(signal.SIGTTIN)
    g.wait_workers(2)
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload complete|retiring worker")
    wait_for(lambda: any(r[0] == "child_exit" for r in records(out)), 10, what="child_exit")
    g.kill(signal.SIGTERM)
    assert g.wait_exit(20) == 0
    recs = records(out)
    names = [r[0] for r in recs]
    assert recs[0] == ["on_starting", g.pid, g.pid]
    assert recs[1] == ["when_ready", g.pid]
    assert ["pre_fork", None, 1] in recs and ["pre_fork", None, 2] in recs
    assert ["nworkers_changed", 2, 1] in recs
    assert ["on_reload", g.pid] in recs
    assert ["child_exit", first] in recs
    assert names[-1] == "on_exit" and recs[-1][1] == g.pid
    assert "is not run" not in g.log()


# ---- the same file under the real gunicorn ----------------------------------------------

def test_same_file_under_gunicorn(gallop, tmp_path):
    """One gunicorn.conf.py, served by gunicorn and by gallop: both listen where
    bind says, run `workers` workers, export raw_env and call post_fork and
    pre_request with the same arguments."""
    gunicorn = shutil.which("gunicorn")
    assert gunicorn, "gunicorn is in DEB_TEST: make deps installs it"
    results = {}
    for server in ("gunicorn", "gallop"):
        port = free_port()
        out = tmp_path / f"{server}.jsonl"
        d = tmp_path / server
        d.mkdir()
        conf(d / "gunicorn.conf.py", f"""\
            import json, os
            bind = "127.0.0.1:{port}"
            workers = 2
            raw_env = ["GREETING=same file"]
            chdir = {APPS!r}

            def post_fork(server, worker):
                with open({str(out)!r}, "a") as f:
                    f.write(json.dumps(["post_fork", worker.pid == os.getpid(), worker.age > 0,
                                        server.pid == os.getppid()]) + "\\n")

            def pre_request(worker, req):
                with open({str(out)!r}, "a") as f:
                    f.write(json.dumps(["pre_request", req.method, req.path, req.query,
                                        dict(req.headers).get("X-TRACE")]) + "\\n")
            """)
        if server == "gallop":
            g = gallop([], app=APP, bind=False, chdir=None, cwd=d, port=port)
        else:
            g = gallop([], app=APP, bind=False, chdir=None, cwd=d, port=port, binary=gunicorn)
        wait_for(lambda: len(records(out)) >= 2, 20, what=f"{server} workers")
        status, body = _traced_get(port, "/p?q=1")
        assert status == 200, (server, body)
        wait_for(lambda: any(r[0] == "pre_request" for r in records(out)), 5, what="pre_request")
        results[server] = (json.loads(body)["greeting"], sorted(map(tuple, records(out))))
        g.stop()
    assert results["gallop"] == results["gunicorn"]
    assert results["gallop"][0] == "same file"
    assert ("post_fork", True, True, True) in results["gallop"][1]


# ---- which interpreter, which location -----------------------------------------------------

def test_the_venvs_python_evaluates_the_file(gallop, tmp_path):
    """With --venv (or VIRTUAL_ENV) the file runs under the venv's bin/python,
    so it can import what only the venv has, as under the venv's gunicorn."""
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    sp = next((venv / "lib").glob("python3*/site-packages"))
    (sp / "venv_settings.py").write_text("WORKERS = 2\n")
    c = conf(tmp_path / "gunicorn.conf.py", """\
        import sys
        from venv_settings import WORKERS
        workers = WORKERS
        raw_env = ["GREETING=" + sys.prefix]
        """)
    g = gallop(["-c", c, "--venv", venv], app=APP)
    g.wait_workers(2)
    assert served(g.port)["greeting"] == str(venv)
    g2 = gallop(["-c", c], app=APP, env={"VIRTUAL_ENV": str(venv)})
    g2.wait_workers(2)
    code, err = run_bad(tmp_path, ["-c", c, APP])  # the system Python has no venv_settings
    assert code == 2 and "line 2: ModuleNotFoundError: No module named 'venv_settings'" in err[-1], err


def test_python_module_location(gallop, tmp_path):
    """gunicorn's -c python:MODULE: a module on sys.path (the working directory)."""
    (tmp_path / "deploy_settings.py").write_text("timeout = 5\nworkers = 0\n")
    code, err = run_bad(tmp_path, ["-c", "python:deploy_settings", APP])
    assert code == 2 and err[-1].startswith("gallop: error: config file python:deploy_settings, line 2: setting 'workers': "), err
    (tmp_path / "deploy_settings.py").write_text("workers = 2\n")
    g = gallop(["-c", "python:deploy_settings"], app=APP, cwd=tmp_path)
    g.wait_workers(2)
    served(g.port)


def test_usr2_reads_the_same_default_file_and_runs_pre_exec(gallop, tmp_path):
    """After --chdir, a USR2 upgrade still finds ./gunicorn.conf.py where gallop
    started; with preload_app, pre_exec(server) runs before the exec."""
    out = tmp_path / "exec.jsonl"
    conf(tmp_path / "gunicorn.conf.py", f"""\
        import json, os
        workers = 2
        preload_app = True
        def pre_exec(server):
            with open({str(out)!r}, "a") as f:
                f.write(json.dumps(["pre_exec", server.pid, os.getpid()]) + "\\n")
        """)
    g = gallop([], app=APP, cwd=tmp_path)  # and --chdir APPS
    g.wait_workers(2)
    old = g.pid
    g.kill(signal.SIGUSR2)
    new = int(g.wait_log(r"started new master (\d+) from ")[0])
    g.adopt_master(new)
    assert g.wait_exit(timeout=20) == 0
    g.wait_workers(2, master=new)
    served(g.port)
    assert len(re.findall(rf"config file {re.escape(str(tmp_path))}/gunicorn.conf.py read", g.log())) == 2
    (rec,) = records(out)
    assert rec[0] == "pre_exec" and rec[1] == old and rec[2] == new  # in the child that becomes the new master


def test_what_the_file_starts_does_not_hold_up_gallop(tmp_path):
    """A thread the file starts, or a process it forks (holding the pipe the
    settings come through), is not waited for."""
    conf(tmp_path / "gunicorn.conf.py", """\
        import os, threading, time
        threading.Thread(target=time.sleep, args=(60,)).start()
        if os.fork() == 0:
            time.sleep(10)
            os._exit(0)
        workers = 3
        """)
    t = time.monotonic()
    with open(tmp_path / "out", "wb") as out:  # not a pipe: the forked process holds it too
        p = subprocess.run([GALLOP_BIN, "--check-config", APP], cwd=tmp_path, env=base_env(),
                           stdout=out, stderr=subprocess.STDOUT, timeout=30)
    took = time.monotonic() - t
    text = (tmp_path / "out").read_text()
    assert p.returncode == 0, text
    assert "3 workers" in text
    assert took < 5


def test_gunicorn_cmd_args_sit_between_the_file_and_the_command_line(gallop, tmp_path):
    """gunicorn's GUNICORN_CMD_ARGS (split as a shell would): over the file,
    under the command line."""
    port, file_port = free_port(), free_port()
    c = conf(tmp_path / "gunicorn.conf.py", f"""\
        bind = "127.0.0.1:{file_port}"
        workers = 3
        raw_env = ["GREETING=file"]
        """)
    env = {"GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} --workers=2 -e 'GREETING=from env'"}
    g = gallop(["-c", c], app=APP, bind=False, port=port, env=env)
    g.wait_workers(2)
    assert served(port)["greeting"] == "from env"
    with pytest.raises(OSError):
        get(file_port, timeout=1)
    # the command line wins over GUNICORN_CMD_ARGS
    p = subprocess.run([GALLOP_BIN, "-c", str(c), "--workers", "1", "--check-config", APP], cwd=tmp_path,
                       env=base_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0 and f"1 worker, 127.0.0.1:{port}" in p.stdout.decode(), p
    p = subprocess.run([GALLOP_BIN, "-c", str(c), APP], cwd=tmp_path, env=base_env({"GUNICORN_CMD_ARGS": "--workers lots"}),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 2
    assert p.stderr.decode().splitlines() == [
        "gallop: error: GUNICORN_CMD_ARGS: invalid worker count 'lots' (from --workers): use a number from 1 to 1024 or 'auto'"]
