"""Installing gallop with pip (pyproject.toml, setup.py, python/gallop):
`pip install .` of a clean clone and `pip install git+file://...` into a
venv build gallop with that venv's Python and put bin/gallop and its bridge
into the venv's bin/; `python -m gallop` runs it; a wheel from `pip wheel`
installs into a fresh venv after the build venv and the sources are gone.
Only Debian's setuptools, no package index (--no-build-isolation --no-index).
Each test builds gallop once (about half a minute)."""
import os
import shutil
import signal
import subprocess
import time

import requests

from conftest import APPS, PYTHON, REPO, free_port, recv_all

import socket


def make_venv(path):
    subprocess.run([PYTHON, "-m", "venv", "--system-site-packages", str(path)], check=True, timeout=120)
    return path


def pip_env():
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    e["PIP_NO_INDEX"] = "1"
    e["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return e


def pip(venv, *args, cwd=None):
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], cwd=cwd, env=pip_env(),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def serve(cmd, path, cwd=APPS, env=None):
    """Starts cmd (with {port}), GETs path once it answers, stops it by pid;
    returns (the response, the log)."""
    port = free_port()
    e = pip_env()
    e.update(env or {})
    proc = subprocess.Popen([c.format(port=port) for c in cmd], cwd=cwd, env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"GET /__ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if recv_all(s, 5).startswith(b"HTTP/1.1 "):
                        break
            except OSError:
                time.sleep(0.1)
        r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0, out
    return r, out


def clean_clone(dest):
    subprocess.run(["git", "clone", "-q", REPO, str(dest)], check=True, timeout=120)
    return dest


def check_installed(venv):
    for name in ("gallop", "gallop-python.so", "gallop-tls.so"):
        assert os.access(venv / "bin" / name, os.X_OK), name
    with open(venv / "bin" / "gallop", "rb") as f:
        assert f.read(4) == b"\x7fELF"
    # the Flask app through bin/gallop; the venv's python runs the worker
    r, _ = serve([str(venv / "bin" / "gallop"), "--bind", "127.0.0.1:{port}", "--workers", "1", "flaskapp:app"], "/")
    assert r.status_code == 200 and r.text == "flask index"
    # FastAPI through python -m gallop, run from elsewhere (--chdir)
    r, _ = serve([str(venv / "bin" / "python"), "-m", "gallop", "--bind", "127.0.0.1:{port}", "--workers", "1",
                  "--chdir", APPS, "install_asgi:app"], "/who", cwd="/")
    assert r.status_code == 200
    assert r.json() == {"executable": str(venv / "bin" / "python"), "prefix": str(venv)}


def test_pip_install_of_a_clean_clone(tmp_path):
    src = clean_clone(tmp_path / "src")
    venv = make_venv(tmp_path / "venv")
    pip(venv, "install", "--no-build-isolation", ".", cwd=src)
    check_installed(venv)
    r = subprocess.run([str(venv / "bin" / "gallop"), "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("gallop ")


def test_wheel_from_git_url_installs_elsewhere(tmp_path):
    """pip install git+file:// builds from a clone pip makes itself; a wheel
    built that way works in another venv once the build venv is gone (what
    the binary needs is found at run time, beside it)."""
    build = make_venv(tmp_path / "build-venv")
    wheels = tmp_path / "wheels"
    pip(build, "wheel", "--no-build-isolation", "--no-deps", "-w", str(wheels), f"git+file://{REPO}")
    [wheel] = os.listdir(wheels)
    assert wheel.startswith("gallop-") and "linux" in wheel and "-none-any" not in wheel
    shutil.rmtree(build)
    venv = make_venv(tmp_path / "other" / "venv")
    pip(venv, "install", str(wheels / wheel))
    check_installed(venv)


def test_make_run_installs_only_what_running_needs():
    out = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    apt = [ln for ln in out.splitlines() if "dpkg -s" in ln]
    assert len(apt) == 1 and "python3-dev" in apt[0] and "gcc" in apt[0]
    for tool in ("cmocka", "clang", "pytest", "flask", "valgrind"):
        assert tool not in apt[0], apt[0]
    out = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    assert "libcmocka-dev" in out and "python3-pytest" in out
