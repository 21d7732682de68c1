"""Worker health: --timeout (traceback dump, then SIGKILL), --max-requests,
--max-worker-memory, and workers that cannot boot (back-off, exit 3) or
cannot import the app (exit 4)."""
import http.client
import re
import time

import pytest

from mastertools import gallop, get, get_pid, pid_alive  # noqa: F401 (gallop: fixture)


def test_timeout_dumps_tracebacks_kills_and_replaces(gallop):
    g = gallop(["--workers", "1", "--timeout", "2"])
    (w,) = g.wait_workers(1)
    g.wait_serving()
    t0 = time.monotonic()
    with pytest.raises((http.client.HTTPException, OSError)):
        get(g.port, "/stuck", timeout=15)
    took = time.monotonic() - t0
    assert 2.0 <= took < 10.0, took  # 2 s timeout, checked once a second, 1 s for the dump
    g.wait_log(rf"worker {w} was killed after its timeout; replacing it")
    log = g.log()
    m = re.search(rf"\[ERROR\] WORKER TIMEOUT \(pid:{w}\): request GET /stuck has run for ([\d.]+)s", log)
    assert m, log[-4000:]
    assert 2.0 <= float(m.group(1)) < 5.0
    # faulthandler's dump: the frame that called time.sleep, in the app file
    assert re.search(r'File "[^"]*master_app\.py", line \d+ in stuck_in_the_app', log), log[-4000:]
    assert re.search(r'File "[^"]*master_app\.py", line \d+ in app', log), log[-4000:]
    assert log.index("WORKER TIMEOUT") < log.index("in stuck_in_the_app")
    assert not pid_alive(w)
    (w2,) = g.wait_workers(1)
    assert w2 != w
    assert get_pid(g.port) == w2
    assert "probably out of memory" not in log  # the master sent that SIGKILL itself


def test_timeout_spares_slow_but_moving_requests(gallop):
    g = gallop(["--workers", "1", "--timeout", "2"])
    (w,) = g.wait_workers(1)
    g.wait_serving()
    # several 1.5 s requests in a row: each is under the limit
    for _ in range(2):
        assert get(g.port, "/sleep?1.5", timeout=10)[0] == 200
    assert "WORKER TIMEOUT" not in g.log()
    assert g.workers() == [w]


def test_max_requests_retires_and_replaces(gallop):
    # a worker that reached --max-requests serves on until its replacement
    # is ready, so the pid changes some requests later, never with an error
    g = gallop(["--workers", "1", "--max-requests", "5"])
    g.wait_workers(1)
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(get_pid(g.port, timeout=10))
        if sum(1 for a, b in zip(seen, seen[1:]) if a != b) >= 2:
            break
        time.sleep(0.02)
    changes = sum(1 for a, b in zip(seen, seen[1:]) if a != b)
    assert changes >= 2, seen
    g.wait_log(r"worker \d+ reached --max-requests after 5 requests", count=2)
    g.wait_log(r"worker \d+ retired after \d+ requests \(--max-requests\)", count=2)
    for p in sorted(set(seen))[:2]:
        assert f"worker {p} reached --max-requests after 5 requests" in g.log()
    assert "died" not in g.log()


def test_max_requests_jitter_stays_within_bounds(gallop):
    g = gallop(["--workers", "1", "--max-requests", "3", "--max-requests-jitter", "2"])
    g.wait_workers(1)
    for _ in range(15):
        get_pid(g.port, timeout=10)
        time.sleep(0.1)
    counts = [int(n) for n in re.findall(r"reached --max-requests after (\d+) requests", g.log())]
    assert counts and all(3 <= n <= 5 for n in counts), counts


def test_max_worker_memory_retires_a_leaking_worker(gallop):
    g = gallop(["--workers", "1", "--max-worker-memory", "60"])
    (w,) = g.wait_workers(1)
    g.wait_serving()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "over --max-worker-memory" not in g.log():
        status, _ = get(g.port, "/leak", timeout=10)
        assert status == 200
        time.sleep(0.3)
    log = g.log()
    assert re.search(rf"\[WARNING\] worker {w} uses \d+ MB, over --max-worker-memory 60", log), log[-3000:]
    g.wait_log(rf"worker {w} retired: memory over --max-worker-memory")
    assert len(re.findall(rf"worker {w} uses \d+ MB, over --max-worker-memory", g.log())) == 1, g.log()[-3000:]
    (w2,) = g.wait_workers(1)
    assert w2 != w and not pid_alive(w)
    for _ in range(3):
        assert get_pid(g.port) == w2


def test_boot_crash_backs_off_then_exits_3(gallop):
    g = gallop(["--workers", "1"], app="master_bootcrash:app")
    t0 = time.monotonic()
    rc = g.wait_exit(timeout=20)
    took = time.monotonic() - t0
    log = g.log()
    assert rc == 3, log[-4000:]
    assert took < 15, took
    delays = [float(x) for x in re.findall(r"died while booting \(exit code 1\); next try in ([\d.]+)s", log)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6], log[-4000:]
    # the delays were honoured: 3.1 s in all at least
    assert took >= 3.0
    assert re.search(r"\[ERROR\] no worker could boot \(6 tries, the last ended with exit code 1\); "
                     r"shutting down \(exit 3\)", log), log[-4000:]


def test_app_raising_at_import_exits_4_at_once(gallop):
    g = gallop(["--workers", "2"], app="master_importraise:app")
    t0 = time.monotonic()
    rc = g.wait_exit(timeout=20)
    took = time.monotonic() - t0
    log = g.log()
    assert rc == 4, log[-4000:]
    assert took < 8, took
    assert "master_importraise refuses to load" in log
    assert "worker failed to load the app; shutting down (exit 4)" in log
    assert "next try in" not in log


def _stuck_in_background(port):
    import threading

    def run():
        try:
            get(port, "/stuck", timeout=15)
        except (http.client.HTTPException, OSError):
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_timeout_with_threads_stuck_request_alone(gallop):
    """--threads: the loop has its own thread and keeps moving; the stuck
    request itself must be noticed."""
    g = gallop(["--workers", "1", "--threads", "4", "--timeout", "2"])
    (w,) = g.wait_workers(1)
    g.wait_serving()
    t = _stuck_in_background(g.port)
    g.wait_log(rf"WORKER TIMEOUT \(pid:{w}\): request GET /stuck has run for", timeout=8)
    g.wait_log(rf"worker {w} was killed after its timeout")
    t.join(10)
    (w2,) = g.wait_workers(1)
    assert w2 != w and get_pid(g.port) == w2


def test_timeout_with_threads_stuck_request_among_fast_ones(gallop):
    g = gallop(["--workers", "1", "--threads", "4", "--timeout", "2", "--graceful-timeout", "1"])
    (w,) = g.wait_workers(1)
    g.wait_serving()
    _stuck_in_background(g.port)
    time.sleep(0.3)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and "WORKER TIMEOUT" not in g.log():
        try:
            get(g.port, "/", timeout=5)
        except (http.client.HTTPException, OSError):
            pass
        time.sleep(0.05)
    assert re.search(rf"WORKER TIMEOUT \(pid:{w}\): request GET /stuck has run for", g.log()), g.log()[-3000:]
