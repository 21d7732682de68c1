"""Logs people can ship: --access-log-format with gunicorn's atoms (each
compared with what gunicorn itself prints for the same request), --log-format
json for the error and access logs, and --log-slow. Mirrors src/core/accesslog.c
and the JSON side of src/core/log.c."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import APPS, free_port, run_gallop

# every atom whose value does not depend on the moment or the process
STABLE = ('%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s %(H)s '
          '[%({x-request-id}i)s] [%({X-Out}o)s] [%({content-type}o)s] [%({missing}i)s] 100%%')
TIMED = "%(t)s %(p)s D=%(D)s T=%(T)s M=%(M)s L=%(L)s %(U)s"


def send(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


def lines_of(path, want, timeout=10, keep=lambda ln: "/__ready" not in ln):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as f:
                ls = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if keep(ln)]
        except FileNotFoundError:
            ls = []
        if len(ls) >= want or time.monotonic() > deadline:
            return ls
        time.sleep(0.05)


class Gunicorn:
    """gunicorn itself (Debian's), on a free port, for the reference lines."""

    def __init__(self, tmp_path, fmt, app="logs_app:app"):
        self.port = free_port()
        self.alog = str(tmp_path / "gunicorn-access.log")
        self.err = open(tmp_path / "gunicorn-error.log", "wb")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", "-w", "1",
             "--access-logfile", self.alog, "--access-logformat", fmt, app],
            cwd=APPS, stdout=self.err, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None, "gunicorn exited"
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


@pytest.fixture
def gunicorn(tmp_path):
    started = []

    def start(fmt, **kw):
        g = Gunicorn(tmp_path, fmt, **kw)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


REQUESTS = [
    b"GET /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\"1\r\nReferer: http://r/\r\n"
    b"User-Agent: ua/1\r\nAuthorization: Basic Ym9iOnNlY3JldA==\r\nConnection: close\r\n\r\n",
    b"GET /plain HTTP/1.0\r\n\r\n",
    b"POST /form?q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nx-request-id: lower\r\n"
    b"Connection: close\r\n\r\nabc",
    b"GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
]


def test_every_atom_as_gunicorn_prints_it(gunicorn, server_factory, tmp_path):
    alog = tmp_path / "gallop-access.log"
    g = gunicorn(STABLE)
    ours = server_factory("logs_app:app", "--access-log", str(alog), "--access-log-format", STABLE)
    for req in REQUESTS:
        send(g.port, req)
        send(ours.port, req)
    theirs = lines_of(g.alog, len(REQUESTS))
    mine = lines_of(alog, len(REQUESTS))
    assert len(theirs) == len(REQUESTS), theirs
    # the same bytes, but that gallop escapes a backslash too (README), where
    # gunicorn escapes only '"'
    assert [x.replace("\\\\", "\\") for x in mine[:3]] == theirs[:3]
    # an app that raised: gunicorn logs a made-up environ (U "None") and its own
    # error page's headers; gallop the request's values and its 500 page
    assert re.match(r'^127.0.0.1 - - "GET /fail HTTP/1.1" 500 \d+ \d+ "-" "-" GET /fail  HTTP/1.1 '
                    r'\[-\] \[-\] \[text/plain\] \[-\] 100%$', mine[3]), mine[3]
    assert mine[0] == ('127.0.0.1 - bob "GET /a%20b/c?x=1&y=%41 HTTP/1.1" 200 5 5 "http://r/" '
                       '"ua/1" GET /a b/c x=1&y=%41 HTTP/1.1 [abc\\"1] [v\\"1\\\\] [text/plain] [-] 100%')


def test_time_pid_and_duration_atoms(gunicorn, server_factory, tmp_path):
    alog = tmp_path / "gallop-access.log"
    g = gunicorn(TIMED)
    ours = server_factory("logs_app:app", "--access-log", str(alog), "--access-log-format", TIMED)
    (worker,) = ours.workers()
    req = b"GET /sleep?0.3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    send(g.port, req)
    send(ours.port, req)
    shape = re.compile(r"^\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] <(\d+)> D=(\d+) T=(\d+) "
                       r"M=(\d+) L=(\d+)\.(\d{6}) /sleep$")
    (theirs,) = lines_of(g.alog, 1)
    (mine,) = lines_of(alog, 1)
    mt, tt = shape.match(mine), shape.match(theirs)
    assert mt and tt, (mine, theirs)
    assert int(mt.group(2)) == worker
    stamp = time.strftime("%d/%b/%Y:%H:%M", time.strptime(mt.group(1)[:17], "%d/%b/%Y:%H:%M"))
    assert mt.group(1).startswith(stamp)
    for m in (mt, tt):
        d = int(m.group(3))
        assert 300000 <= d < 1300000, m.group(0)
        assert int(m.group(4)) == d // 1000000
        assert int(m.group(5)) == d // 1000
        assert int(m.group(6)) * 1000000 + int(m.group(7)) == d


ODD = b"\xc3\xa9t\xc3\xa9 \xff\"q\" back\\slash\ttab"


def test_header_with_odd_bytes_text_and_json(server_factory, tmp_path):
    fmt = '%(h)s "%(r)s" %(U)s %(s)s "%({x-odd}i)s" "%(a)s" %({x-out}o)s %(D)s'
    text_log, json_log = tmp_path / "text.log", tmp_path / "json.log"
    t = server_factory("logs_app:app", "--access-log", str(text_log), "--access-log-format", fmt)
    j = server_factory("logs_app:app", "--access-log", str(json_log), "--access-log-format", fmt,
                       "--log-format", "json")
    req = (b"GET /odd%E2%82%AC%FF?q HTTP/1.1\r\nHost: x\r\nX-Odd: " + ODD + b"\r\nUser-Agent: "
           b"\xf0\x9f\x98\x80\r\nConnection: close\r\n\r\n")
    send(t.port, req)
    send(j.port, req)
    (line,) = lines_of(text_log, 1)
    assert line.startswith('127.0.0.1 "GET /odd%E2%82%AC%FF?q HTTP/1.1" /odd\\xe2\\x82\\xac\\xff 200 '
                           '"\\xc3\\xa9t\\xc3\\xa9 \\xff\\"q\\" back\\\\slash\\x09tab" '
                           '"\\xf0\\x9f\\x98\\x80" v\\"1\\\\ '), line
    (raw,) = lines_of(json_log, 1, keep=lambda ln: '"logger":"access"' in ln and "/odd" in ln)
    rec = json.loads(raw)
    assert rec["level"] == "INFO" and rec["logger"] == "access"
    assert rec["request"] == "GET /odd%E2%82%AC%FF?q HTTP/1.1"
    assert rec["path"] == "/odd\u20ac\u00ff"  # decoded; valid UTF-8 as it is, 0xff as \u00ff
    # the byte 0xff is no UTF-8: \u00ff, its Latin-1 reading; the rest as sent
    assert rec["request_headers"] == {"x-odd": 'été \u00ff"q" back\\slash\ttab'}
    assert rec["user_agent"] == "\U0001F600"
    assert rec["response_headers"] == {"x-out": 'v"1\\'}
    assert rec["status"] == 200 and isinstance(rec["duration_us"], int)
    assert rec["remote_addr"] == "127.0.0.1"
    # the message is the text line, as --log-format text writes it (its own duration)
    assert rec["message"] == line.rsplit(" ", 1)[0] + f" {rec['duration_us']}"
    assert rec["pid"] in j.workers()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$", rec["time"])


def _json_records(server, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        recs = [json.loads(ln) for ln in server.log().splitlines() if ln.strip()]
        if want(recs) or time.monotonic() > deadline:
            return recs
        time.sleep(0.05)


def test_json_error_and_access_logs_flask(server_factory):
    s = server_factory("logs_app:flask", "--log-format", "json", "--access-log", "-",
                       "--access-log-format", '%(h)s "%(r)s" %(s)s %(b)s %(M)s %({x-flask}o)s')
    assert send(s.port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 201")
    assert send(s.port, b"GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 500")
    # every line of both logs (one stream here) is one JSON object
    recs = _json_records(s, lambda rs: sum(r.get("logger") == "access" for r in rs) >= 3)
    assert {r["logger"] for r in recs} == {"error", "access"}
    assert all({"time", "level", "pid", "message"} <= set(r) for r in recs)
    boots = [r for r in recs if r["message"].startswith("booting worker with pid")]
    assert boots and boots[0]["level"] == "INFO" and boots[0]["pid"] == s.pid
    # Flask logs the exception itself (to wsgi.errors): the record with its
    # whole traceback is one object
    tb = [r for r in recs if "Traceback (most recent call last)" in r["message"]]
    assert len(tb) == 1, recs
    assert tb[0]["level"] == "ERROR" and tb[0]["pid"] in s.workers()
    assert tb[0]["message"].startswith("[") and "Exception on /fail [GET]\nTraceback" in tb[0]["message"]
    assert tb[0]["message"].endswith("ValueError: flask failed")
    access = {r["request"]: r for r in recs if r["logger"] == "access"}
    hello = access["GET /hello HTTP/1.1"]
    assert hello["status"] == 201 and hello["bytes"] == 2 and hello["response_headers"] == {"x-flask": "yes"}
    assert isinstance(hello["duration_ms"], int)
    assert access["GET /fail HTTP/1.1"]["status"] == 500


def test_json_logs_fastapi(server_factory):
    s = server_factory("logs_app:fastapi", "--log-format", "json", "--access-log", "-",
                       "--access-log-format", '"%(r)s" %(s)s %(U)s %({x-item}o)s')
    assert b"item 7" in send(s.port, b"GET /items/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert send(s.port, b"GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 500")
    recs = _json_records(s, lambda rs: any("KeyError" in r["message"] for r in rs) and
                         sum(r.get("logger") == "access" for r in rs) >= 3)
    item = [r for r in recs if r.get("path") == "/items/7"]
    assert item and item[0]["status"] == 200 and item[0]["response_headers"] == {"x-item": "7"}
    tb = [r for r in recs if "KeyError" in r["message"]]
    assert len(tb) == 1 and "Traceback (most recent call last)" in tb[0]["message"], tb
    assert tb[0]["level"] == "ERROR"


def test_log_slow_warns_about_slow_requests_only(server_factory):
    s = server_factory("logs_app:app", "--log-slow", "0.4")
    send(s.port, b"GET /sleep?0.7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    send(s.port, b"GET /quick?a=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    send(s.port, b"GET /sleep?0.05 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    deadline = time.monotonic() + 5
    while "slow request" not in s.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    slow = [ln for ln in s.log().splitlines() if "slow request" in ln]
    assert len(slow) == 1, s.log()
    m = re.search(r"\[WARNING\] slow request: GET /sleep took (\d+\.\d{3}) s \(status 200\)$", slow[0])
    assert m, slow
    assert 0.7 <= float(m.group(1)) < 2.0


def test_log_slow_asgi_json(server_factory):
    s = server_factory("logs_app:fastapi", "--log-slow", "0.3", "--log-format", "json")
    assert b"late" in send(s.port, b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    send(s.port, b"GET /items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    recs = _json_records(s, lambda rs: any("slow request" in r["message"] for r in rs))
    slow = [r for r in recs if "slow request" in r["message"]]
    assert len(slow) == 1 and slow[0]["level"] == "WARNING", recs
    assert slow[0]["message"].startswith("slow request: GET /slow took 0.")


@pytest.mark.parametrize("args, says", [
    (["--access-log-format", "%(x)s"], "unknown atom '%(x)s'"),
    (["--access-log-format", "%(h)s %s"], "write atoms as %(NAME)s"),
    (["--access-log-format", "%(h)s %(r"], "unclosed"),
    (["--access-log-format", "%(h)d"], "not a number"),
    (["--access-log-format", "%({REMOTE_ADDR}e)s"], "environ"),
    (["--log-format", "xml"], "invalid --log-format 'xml' (text or json)"),
    (["--log-slow", "-1"], "invalid --log-slow '-1'"),
    (["--log-slow", "soon"], "invalid --log-slow 'soon'"),
])
def test_bad_settings_are_one_line_and_exit_2(args, says):
    r = run_gallop(args + ["logs_app:app"])
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gallop: error: ") and says in lines[0], r.stderr
    r = run_gallop(["--check-config"] + args + ["logs_app:app"])
    assert r.returncode == 2 and says in r.stderr


def test_access_log_format_in_a_gunicorn_config_file(server_factory, tmp_path):
    alog = tmp_path / "access.log"
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"accesslog = {str(alog)!r}\naccess_log_format = '%(m)s %(U)s %(s)s %(p)s'\n")
    s = server_factory("logs_app:app", "-c", str(conf))
    send(s.port, b"GET /from-conf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (line,) = lines_of(alog, 1)
    assert line == f"GET /from-conf 200 <{s.workers()[0]}>"
    assert "WARNING" not in s.log() and "not supported" not in s.log()


def test_default_format_given_is_the_default(server_factory, tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    fmt = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    s1 = server_factory("logs_app:app", "--access-log", str(a))
    s2 = server_factory("logs_app:app", "--access-log", str(b), "--access-log-format", fmt)
    req = b"GET /x?y HTTP/1.1\r\nHost: x\r\nReferer: r\"\r\nUser-Agent: \xffz\r\nConnection: close\r\n\r\n"
    send(s1.port, req)
    send(s2.port, req)
    drop_time = lambda ln: re.sub(r"\[[^]]+\]", "[T]", ln, count=1)
    (l1,), (l2,) = lines_of(a, 1), lines_of(b, 1)
    assert drop_time(l1) == drop_time(l2) == '127.0.0.1 - - [T] "GET /x?y HTTP/1.1" 200 5 "r\\"" "\\xffz"'


def test_json_app_that_does_not_import_exit_4():
    r = run_gallop(["--chdir", APPS, "-w", "1", "-b", f"127.0.0.1:{free_port()}",
                    "--log-format", "json", "import_raises:app"], timeout=30)
    assert r.returncode == 4, r
    recs = [json.loads(ln) for ln in r.stderr.splitlines() + r.stdout.splitlines() if ln.strip()]
    tb = [x for x in recs if x["message"].startswith("Traceback (most recent call last):")]
    assert len(tb) == 1 and tb[0]["level"] == "ERROR", recs
    assert tb[0]["message"].endswith("RuntimeError: import-time-failure-marker")
    assert any("shutting down (exit 4)" in x["message"] for x in recs)


def test_hup_takes_a_new_access_log_format(server_factory, tmp_path):
    alog = tmp_path / "access.log"
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"accesslog = {str(alog)!r}\naccess_log_format = 'one %(s)s %(U)s'\n")
    s = server_factory("logs_app:app", "-c", str(conf))
    (old,) = s.workers()
    send(s.port, b"GET /before HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    conf.write_text(f"accesslog = {str(alog)!r}\naccess_log_format = 'two %(m)s %(U)s'\n"
                    "workers = 1\n")
    s.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (old in s.workers() or len(s.workers()) != 1):
        time.sleep(0.05)
    (new,) = s.workers()
    assert new != old
    time.sleep(0.3)
    send(s.port, b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ls = lines_of(alog, 2, keep=lambda ln: "/before" in ln or "/after" in ln)
    assert ls == ["one 200 /before", "two GET /after"], ls
