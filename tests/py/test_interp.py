"""How a worker runs Python (src/main.c, src/py/entry.c, src/py/interp.c,
src/core/handoff.c): each worker executes the real interpreter, which loads
the bridge as an extension module; the master maps no Python; --preload
keeps workers forked from the master's interpreter; the worker gets exactly
the master's current settings; multiprocessing's spawn works from an app; a
stale virtual environment is refused once, with one line and exit 3."""
import os
import signal
import subprocess
import sys
import time

import requests

from conftest import APPS, GALLOP_BIN, PYTHON, free_port, pid_alive, run_gallop

BRIDGE = os.path.join(os.path.dirname(GALLOP_BIN), "gallop-python.so")


def maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {ln.split()[-1] for ln in f if "/" in ln.split()[-1]}


def libpython(mapped):
    return [m for m in mapped if "libpython" in os.path.basename(m)]


def info(srv, path="/"):
    r = requests.get(srv.url(path), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_worker_runs_the_real_interpreter(server_factory):
    srv = server_factory("interp_app:app")
    d = info(srv)
    worker = d["pid"]
    assert worker in srv.workers()
    # the statically linked python3 itself, not an embedder of libpython.so
    assert os.path.realpath(f"/proc/{worker}/exe") == os.path.realpath(PYTHON)
    assert d["executable"] == PYTHON
    assert libpython(d["mapped"]) == [], d["mapped"]
    assert os.path.realpath(BRIDGE) in d["mapped"]
    # what the app sees is what it saw embedded: argv, and the working
    # directory first on sys.path by its full name (not the "" of -c)
    assert d["argv"] == ["gallop"]
    assert d["path"][0] == APPS and "" not in d["path"]
    # the master stays without Python
    master = maps(srv.pid)
    assert libpython(master) == [] and os.path.realpath(BRIDGE) not in master
    assert os.path.realpath(f"/proc/{srv.pid}/exe") == os.path.realpath(GALLOP_BIN)


def test_preload_forks_workers_from_the_master(server_factory):
    srv = server_factory("interp_app:app", "--preload")
    d = info(srv)
    # no exec: the worker is a fork of the master, which hosts the interpreter
    assert os.path.realpath(f"/proc/{d['pid']}/exe") == os.path.realpath(GALLOP_BIN)
    assert libpython(d["mapped"]) and libpython(maps(srv.pid))
    assert d["path"][0] == APPS


def test_multiprocessing_spawn_from_a_worker(server_factory):
    srv = server_factory("interp_app:app")
    d = info(srv, "/spawn")
    assert d["squares"] == [1, 4, 9]
    assert pid_alive(d["pid"])  # the worker lives on and serves
    assert info(srv)["pid"] == d["pid"]


def test_python_environment_variables_as_under_python(server_factory, tmp_path):
    """PYTHONPATH and the rest of Python's environment work in a worker as
    they do for python3 (and uvicorn, which runs in it)."""
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "sitecustomize.py").write_text("import os\nos.environ['GALLOP_TEST_MARK'] = 'site'\n")
    srv = server_factory("interp_app:app", env={"PYTHONPATH": str(extra)})
    d = info(srv)
    assert str(extra) in d["path"] and d["user_env"] == "site"


def test_workers_get_the_masters_settings_after_hup(server_factory, tmp_path):
    """A worker parses no config file itself: it gets what the master read,
    including after a HUP re-read it."""
    conf = tmp_path / "gallop.conf"
    conf.write_text("root_path = /first\n")
    srv = server_factory("interp_app:app", "-c", str(conf))
    assert info(srv, "/first/x")["script_name"] == "/first"
    old = srv.workers()
    conf.write_text("root_path = /second\n")
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (set(srv.workers()) & set(old) or not srv.workers()):
        time.sleep(0.1)
    d = info(srv, "/second/x")
    assert d["script_name"] == "/second" and d["pid"] not in old


def _run_with_venv(venv, env=None, args=()):
    e = {"VIRTUAL_ENV": str(venv)} if env is None else env
    return run_gallop(["--bind", f"127.0.0.1:{free_port()}", "--workers", "2", "--chdir", APPS, *args,
                       "interp_app:app"], timeout=20, env=e)


def _one_error(r):
    assert r.returncode == 3, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gallop: error: "), r.stderr
    assert "booting worker" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    return lines[0]


def test_stale_virtual_env_deleted(tmp_path):
    gone = tmp_path / "gone"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(gone)], check=True, timeout=60)
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    line = _one_error(_run_with_venv(gone))
    assert str(gone) in line and "$VIRTUAL_ENV" in line and "does not exist" in line


def test_stale_virtual_env_for_another_python(tmp_path):
    other = tmp_path / "py39"
    (other / "bin").mkdir(parents=True)
    (other / "lib" / "python3.9" / "site-packages").mkdir(parents=True)
    os.symlink(PYTHON, other / "bin" / "python")
    (other / "pyvenv.cfg").write_text("home = /opt/python3.9/bin\ninclude-system-site-packages = false\n"
                                      "version = 3.9.18\n")
    line = _one_error(_run_with_venv(other))
    assert str(other) in line and "3.9.18" in line and "%d.%d" % sys.version_info[:2] in line
    # the same from --venv says so
    line = _one_error(_run_with_venv(other, env={}, args=("--venv", str(other))))
    assert "--venv" in line


def test_directory_that_is_not_a_venv(tmp_path):
    line = _one_error(_run_with_venv(tmp_path))
    assert str(tmp_path) in line and "not a virtual environment" in line


def test_venv_python_runs_the_workers(server_factory, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    srv = server_factory("interp_app:app", env={"VIRTUAL_ENV": str(venv)})
    d = info(srv)
    assert d["executable"] == str(venv / "bin" / "python")
    assert d["prefix"] == str(venv) and d["base_prefix"] != str(venv)
    assert libpython(d["mapped"]) == []


def test_missing_interpreter_exits_3(tmp_path):
    """A venv whose python is gone (the interpreter it was made from was removed)."""
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    for name in os.listdir(venv / "bin"):
        if name.startswith("python"):
            os.unlink(venv / "bin" / name)
    line = _one_error(_run_with_venv(venv))
    assert "bin/python" in line
