"""gallop tune: the real binary measures the sample apps of apps/tune_apps.py
with its own load generator and the gallops it starts. A CPU-bound app gets
about one worker per usable CPU and one thread; a sync app that sleeps 50 ms
gets workers x threads well above the CPUs; ASGI is tried without threads;
the plot is XML with one point per configuration of --json; bad input is one
line and exit 2; Ctrl-C stops it and the gallop it runs. Short --duration:
this is about the decisions, not the figures (those go in docs/benchmarks.md)."""
import json
import os
import re
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from conftest import APPS, GALLOP_BIN

SVG = "{http://www.w3.org/2000/svg}"
RECOMMEND = re.compile(r"^recommend: --workers (\d+) --threads (\d+) "
                       r"\((CPU|I/O)-bound: \d+% CPU per busy worker; [^()]+\)$")


def usable_cpus():
    return len(os.sched_getaffinity(0))


def processes_with(marker):
    """Pids whose environment holds GALLOP_TUNE_TEST=marker: a tune and the
    gallops it started."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if b"GALLOP_TUNE_TEST=" + marker.encode() in f.read():
                    found.append(int(d))
        except OSError:
            pass
    return found


def tune(*args, timeout=150):
    """Runs `gallop tune` to the end; every gallop it started must be gone."""
    marker = uuid.uuid4().hex
    p = subprocess.Popen([GALLOP_BIN, "tune", "--chdir", APPS, *args],
                         env=dict(os.environ, GALLOP_TUNE_TEST=marker),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert processes_with(marker) == [], "tune left a gallop running"
    return p.returncode, out, err


def points(svg_path):
    root = ET.parse(svg_path).getroot()
    assert root.tag == SVG + "svg"
    return [g for g in root.iter(SVG + "g") if "point" in g.get("class", "").split()]


def check_plot(svg_path, res):
    pts = points(svg_path)
    tried = [(c["workers"], c["threads"]) for c in res["configs"]]
    assert [(int(g.get("data-workers")), int(g.get("data-threads"))) for g in pts] == tried
    picks = [g for g in pts if "pick" in g.get("class").split()]
    assert len(picks) == 1
    rec = res["recommend"]
    assert (int(picks[0].get("data-workers")), int(picks[0].get("data-threads"))) == \
        (rec["workers"], rec["threads"])


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    svg = str(tmp_path_factory.mktemp("tune") / "cpu.svg")
    rc, out, err = tune("tune_apps:cpu", "--duration", "1", "--json", "--plot", svg)
    assert rc == 0, err
    return json.loads(out), err, svg


def check_cpu_bound(res):
    n = usable_cpus()
    assert res["interface"] == "wsgi"
    assert res["usable_cpus"] == n
    assert res["classification"] == "cpu-bound", res
    assert res["cpu_per_busy_worker"] > 0.6
    rec = res["recommend"]
    assert rec["threads"] == 1, res
    assert max(1, n // 2) <= rec["workers"] <= n + 1, res
    tried = [(c["workers"], c["threads"]) for c in res["configs"]]
    assert tried[0] == (1, 1)
    assert max(w for w, t in tried) >= min(n, 2)  # went up to the CPUs at least
    assert any(t > 1 for w, t in tried)  # and tried threads, which did not help
    for c in res["configs"]:
        assert c["errors"] == 0 and c["status"]["5xx"] == 0
        assert c["requests"] > 0 and c["rps"] > 0 and 0 < c["p50_ms"] <= c["p99_ms"]
        assert len(c["cpu_per_worker"]) == c["workers"] == len(c["rss_mb_per_worker"])
        assert all(5 < r < 500 for r in c["rss_mb_per_worker"])
        assert c["cpu_ms_per_request"] > 0.5  # a few ms of Python per request
        assert c["concurrency"] >= 8
    assert RECOMMEND.match(rec["line"]), rec["line"]


def test_cpu_bound_app_gets_a_worker_per_cpu(cpu_run):
    res, err, svg = cpu_run
    check_cpu_bound(res)
    # progress as it goes: which configuration, and how far
    assert "tune: [" in err and "1 worker x 1 thread: starting" in err
    assert "2 workers x 1 thread: starting" in err
    assert re.search(r"1x1: \d+ req/s, p50", err)
    # the table and the verdict go to stderr with --json
    assert "CPU-bound: a busy worker is on the CPU" in err
    assert rec_line(err) == res["recommend"]["line"]


def rec_line(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("recommend: ")]
    assert len(lines) == 1, text
    return lines[0]


def test_plot_has_one_point_per_configuration(cpu_run):
    res, _, svg = cpu_run
    check_plot(svg, res)


def test_two_runs_agree(cpu_run):
    first = cpu_run[0]
    rc, out, err = tune("tune_apps:cpu", "--duration", "1", "--json")
    assert rc == 0, err
    second = json.loads(out)
    check_cpu_bound(second)
    a, b = first["recommend"], second["recommend"]
    assert abs(a["workers"] - b["workers"]) <= 1 and a["threads"] == b["threads"] == 1
    one = [next(c for c in r["configs"] if (c["workers"], c["threads"]) == (1, 1))
           for r in (first, second)]
    # the same app costs the same CPU per request, whatever else the machine runs
    ratio = one[0]["cpu_ms_per_request"] / one[1]["cpu_ms_per_request"]
    assert 0.6 < ratio < 1.6, (one[0], one[1])


def test_sleeping_app_gets_threads_well_past_the_cpus(tmp_path):
    n = usable_cpus()
    svg = str(tmp_path / "sleepy.svg")
    rc, out, err = tune("tune_apps:sleepy", "--duration", "0.7", "--plot", svg)
    assert rc == 0, err
    # text mode: the table and the verdict on stdout, progress on stderr
    assert "recommend: " not in err and "tune: [" in err
    m = RECOMMEND.match(rec_line(out))
    assert m and m.group(3) == "I/O", out
    w, t = int(m.group(1)), int(m.group(2))
    assert w * t >= 4 * n, out
    assert "I/O-bound: a busy worker is on the CPU" in out
    assert "ASGI" in out  # the other way out for an app that waits
    rows = [ln.split() for ln in out.splitlines() if re.match(r"^\s+\d+\s+\d+\s+\d+\s", ln)]
    pts = points(svg)
    assert len(rows) == len(pts) >= 4
    assert [(int(r[0]), int(r[1])) for r in rows] == \
        [(int(g.get("data-workers")), int(g.get("data-threads"))) for g in pts]
    rps = {(int(r[0]), int(r[1])): float(r[3]) for r in rows}
    assert rps[(w, t)] > 8 * rps[(1, 1)]  # 50 ms each: threads multiply it
    assert 10 < rps[(1, 1)] < 25  # one thread, 50 ms: at most 20/s
    picked = [r for r in out.splitlines() if r.endswith("<- pick")]
    assert len(picked) == 1 and picked[0].split()[:2] == [str(w), str(t)]


def test_asgi_app_is_tried_without_threads(tmp_path):
    rc, out, err = tune("tune_apps:asgi_cpu", "--duration", "0.6", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["interface"] == "asgi"
    assert all(c["threads"] == 1 for c in res["configs"])
    assert [c["workers"] for c in res["configs"]][:2] == [1, 2]
    assert res["classification"] == "cpu-bound"
    assert res["recommend"]["line"].startswith(
        "recommend: --workers %d (ASGI, CPU-bound: " % res["recommend"]["workers"])
    assert all(c["concurrency"] >= 64 for c in res["configs"])


def test_post_body_and_paths(tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"x": 1}')
    rc, out, err = tune("tune_apps:broken", "--path", "/ok", "--method", "PUT", "--body", str(body),
                        "--duration", "0.5", "--concurrency", "3", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["paths"] == ["/ok"]
    assert all(c["concurrency"] == 3 and c["status"]["2xx"] == c["requests"] > 0
               for c in res["configs"])


@pytest.mark.parametrize("args, needle", [
    (["nosuch_module:app"], "the app did not load: cannot import module 'nosuch_module'"),
    (["tune_apps:nothere"], "the app did not load: attribute 'nothere'"),
    (["tune_apps:broken"], "GET / answers 500 Internal Server Error"),
    (["tune_apps:broken", "--path", "/ok", "--path", "/bad"], "GET /bad answers 500"),
    (["tune_apps:cpu", "--duration", "0.2"], "--duration 0.2 is too short"),
    (["tune_apps:cpu", "--duration", "x"], "--duration wants a number"),
    (["tune_apps:cpu", "--no-such-flag"], "unknown flag --no-such-flag"),
    (["tune_apps:cpu", "--workers", "4"], "--workers is tune's to choose"),
    (["tune_apps:cpu", "--threads=4"], "--threads is tune's to choose"),
    (["tune_apps:cpu", "--path", "x"], "--path must start with /"),
    (["tune_apps:cpu", "--max-requests", "zz"], "invalid --max-requests 'zz'"),
    (["tune_apps:cpu", "--body", "/nonexistent/body"], "cannot read --body"),
    ([], "which app?"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle):
    rc, out, err = tune(*args, timeout=60)
    assert rc == 2, (rc, err)
    errors = [ln for ln in err.splitlines() if not ln.startswith("tune: ")]
    assert len(errors) == 1, err
    assert errors[0].startswith("gallop: error: tune: ") and needle in errors[0], err
    assert out == ""


def test_help():
    r = subprocess.run([GALLOP_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "gallop tune MODULE:APP" in r.stdout
    r = subprocess.run([GALLOP_BIN, "tune", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for flag in ("--path", "--method", "--body", "--duration", "--concurrency", "--plot",
                 "--json", "--rate"):
        assert flag in r.stdout


def test_interrupt_stops_tune_and_its_gallop():
    marker = uuid.uuid4().hex
    p = subprocess.Popen([GALLOP_BIN, "tune", "--chdir", APPS, "tune_apps:sleepy",
                          "--duration", "30"], env=dict(os.environ, GALLOP_TUNE_TEST=marker),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(processes_with(marker)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # tune, its gallop master and the worker are up
        time.sleep(1)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        assert time.monotonic() - t0 < 10
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "tune: interrupted" in err
    assert processes_with(marker) == []


def test_memory_caps_the_worker_count(cpu_run):
    """--memory with room for one worker of the size measured: tune stops
    adding workers there, and the sleeping app gets its concurrency from
    threads in that one worker."""
    rss = next(c for c in cpu_run[0]["configs"] if c["workers"] == 1)["rss_mb_per_worker"][0]
    mem = round(1.5 * rss / 0.9, 1)  # one fits in 90% of it, two do not
    rc, out, err = tune("tune_apps:sleepy", "--duration", "0.5", "--memory", str(mem), "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["memory_available_mb"] == pytest.approx(mem, abs=0.1)
    assert {c["workers"] for c in res["configs"]} == {1}, res["configs"]
    assert "2 workers of " in err and "would not fit in" in err and "(--memory)" in err
    rec = res["recommend"]
    assert rec["workers"] == 1 and rec["threads"] >= 4 * usable_cpus()
    assert re.search(r"memory: [\d.]+ MB per worker, [\d.]+ MB available \(--memory\): "
                     r"room for 1 workers", err)


def test_open_loop_rate():
    """--rate: requests on a schedule, so no configuration serves more than
    the rate; the pick is the smallest one that kept up (90% of it)."""
    rc, out, err = tune("tune_apps:broken", "--path", "/ok", "--rate", "100", "--duration", "1",
                        "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["rate"] == 100 and "open loop" in err
    for c in res["configs"]:
        assert 60 <= c["rps"] <= 106, c  # never above the schedule
    rec = res["recommend"]
    size = rec["workers"] * rec["threads"]
    picked = next(c for c in res["configs"]
                  if (c["workers"], c["threads"]) == (rec["workers"], rec["threads"]))
    assert picked["rps"] >= 90
    assert all(c["rps"] < 90 for c in res["configs"] if c["workers"] * c["threads"] < size)
    one = res["configs"][0]
    if one["rps"] >= 90:  # one worker kept up: it was never kept busy
        assert res["classification"] == "unclassified"
        assert re.match(r"recommend: --workers 1 --threads 1 \(keeps up with 100 req/s: "
                        r"p99 [\d.]+ ms; ", rec["line"]), rec["line"]
