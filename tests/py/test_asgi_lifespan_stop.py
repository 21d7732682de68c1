"""How an ASGI (and WSGI) worker starts and stops, against the real binary:
a failed lifespan start-up reports its traceback once and without the
driver's frames, the lifespan shutdown is bounded by --graceful-timeout, and
a worker that stops gracefully runs atexit handlers, flushes stdout, cancels
the tasks left on its loop and closes suspended async generators."""
import os
import re
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgitools import Gallop, wait_for  # noqa: E402

T = 10


def marks(d, prefix):
    return sorted(f for f in os.listdir(str(d)) if f.startswith(prefix))


def test_failed_startup_reported_once(tmp_path):
    # Starlette sends lifespan.startup.failed with the traceback, then re-raises
    g = Gallop("asgi_stop:failing", workers=1, log_dir=tmp_path, wait=False)
    rc = g.wait_exit(20)
    log = g.log()
    g.stop()
    assert rc == 4, log
    assert log.count("Traceback (most recent call last)") == 1, log
    assert log.count("ValueError: no database at start-up") == 1, log
    assert "application start-up failed" in log, log
    assert "gallop asgi driver" not in log and 'File "<string>"' not in log, log


def test_raised_startup_traceback_has_no_driver_frames(tmp_path):
    g = Gallop("asgi_stop:raising", "--lifespan", "on", workers=1, log_dir=tmp_path, wait=False)
    rc = g.wait_exit(20)
    log = g.log()
    g.stop()
    assert rc == 4, log
    assert log.count("Traceback (most recent call last)") == 1, log
    assert "KeyError: 'raw start-up exploded'" in log, log
    # the first frame is the app's own
    frames = re.findall(r'File "([^"]+)", line \d+, in (\w+)', log)
    assert frames and frames[0][0].endswith("asgi_stop.py"), log
    assert "gallop asgi driver" not in log and "<string>" not in log, log


def test_lifespan_shutdown_bounded_by_graceful_timeout(tmp_path):
    g = Gallop("asgi_stop:slow", "--graceful-timeout", "1", workers=1, log_dir=tmp_path,
               env={"STOP_TEST_DIR": str(tmp_path)})
    try:
        r = httpx.get(g.url + "/", timeout=T)
        assert r.status_code == 200 and r.text == "hi"
        worker = g.workers()[0]
        assert httpx.get(g.url + "/", timeout=T).text == "hi"  # the worker serves on
        t0 = time.monotonic()
        g.signal(15)
        rc = g.wait_exit(15)
        took = time.monotonic() - t0
    finally:
        g.stop()
    log = g.log()
    assert rc == 0, log
    assert marks(tmp_path, "shutdown-began"), log
    # cut by the worker itself at the bound, not killed by the master later
    assert re.search(r"application shutdown did not finish within 0\.[0-9]+s \(--graceful-timeout\)", log), log
    assert f"worker {worker} exited (exit code 0)" in log, log
    assert "killing them" not in log and "Killed" not in log, log
    assert took < 1.8, (took, log)
    assert "CancelledError" not in log, log


def test_graceful_stop_runs_atexit_flushes_and_cancels(tmp_path):
    env = {"STOP_TEST_DIR": str(tmp_path), "PYTHONUNBUFFERED": ""}
    g = Gallop("asgi_stop:leaves", workers=1, log_dir=tmp_path, env=env)
    try:
        assert httpx.get(g.url + "/one", timeout=T).text == "ok"
        assert httpx.get(g.url + "/two", timeout=T).text == "ok"  # serves the next request
        worker = g.workers()[0]
    finally:
        rc = g.stop()
    log = g.log()
    assert rc == 0, log
    assert f"served /one in {worker}" in log and f"served /two in {worker}" in log, log
    assert marks(tmp_path, "atexit-") == [f"atexit-{worker}"], log
    assert marks(tmp_path, "task-cancelled-") == [f"task-cancelled-{worker}"], log
    assert marks(tmp_path, "agen-closed-") == [f"agen-closed-{worker}"], log
    assert f"worker {worker} exited (exit code 0)" in log, log


def test_wsgi_graceful_stop_runs_atexit_and_flushes(tmp_path):
    env = {"STOP_TEST_DIR": str(tmp_path), "PYTHONUNBUFFERED": ""}
    for extra in ((), ("--threads", "2")):
        g = Gallop("wsgi_stop:app", *extra, workers=1, log_dir=tmp_path, env=env)
        try:
            assert httpx.get(g.url + "/first", timeout=T).text == "ok"
            assert httpx.get(g.url + "/second", timeout=T).text == "ok"
            worker = g.workers()[0]
        finally:
            rc = g.stop()
        log = g.log()
        assert rc == 0, log
        assert f"served /second in {worker}" in log, (extra, log)
        assert f"atexit-{worker}" in marks(tmp_path, "atexit-"), (extra, log)
