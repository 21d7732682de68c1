"""HTTP/2 over cleartext (h2c) through the real binary: curl with prior
knowledge and with Upgrade: h2c, nghttp, h2load, httpx, and frames made with
the h2 library for what clients do not do on purpose (floods, resets, too
many streams, huge heads, a window never opened)."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import Server  # noqa: E402

T = 10


@pytest.fixture(scope="module")
def wsgi(tmp_path_factory):
    s = Server("h2_apps:wsgi", tmp_path=tmp_path_factory.mktemp("h2w"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def asgi(tmp_path_factory):
    s = Server("h2_apps:asgi", ["--interface", "asgi"], tmp_path=tmp_path_factory.mktemp("h2a"))
    yield s
    s.stop()


def curl(*args):
    r = subprocess.run(["curl", "-sS", "-m", str(T), *args], capture_output=True, timeout=T + 5)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Raw:
    """An h2 client over a plain socket, for frames no polite client sends."""

    def __init__(self, port, window=None):
        settings = {} if window is None else {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=T)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                         header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.events = []

    def headers(self, path, extra=(), end=True, sid=None):
        sid = sid or self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                     (":authority", "t"), (":path", path), *extra],
                               end_stream=end)
        return sid

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self, until, timeout=T):
        """Reads events until until(events) is true; returns the events."""
        deadline = time.monotonic() + timeout
        while not until(self.events):
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError(f"timed out; events: {self.events[-5:]}")
            if not data:
                break
            self.events += self.conn.receive_data(data)
            self.flush()
        return self.events

    def of(self, kind, sid=None):
        return [e for e in self.events
                if isinstance(e, kind) and (sid is None or getattr(e, "stream_id", None) == sid)]

    def close(self):
        self.sock.close()


# ---- plain requests ----

def test_prior_knowledge_wsgi(wsgi):
    out = curl("--http2-prior-knowledge", "-w", " %{http_version}", wsgi.url("/a?b=1"))
    assert out == b"HTTP/2 GET /a 127.0.0.1:%d 2" % wsgi.port
    body = os.urandom(300000)
    out = curl("--http2-prior-knowledge", "--data-binary", "@-", wsgi.url("/echo"))
    r = subprocess.run(["curl", "-sS", "-m", str(T), "--http2-prior-knowledge", "--data-binary",
                        "@-", wsgi.url("/echo")], input=body, capture_output=True, timeout=T + 5)
    assert r.stdout == body


def test_upgrade_h2c(wsgi):
    # GET upgrades; a request with a body stays HTTP/1.1 (the server may decline)
    assert curl("--http2", "-w", " %{http_version}", wsgi.url("/u")).endswith(b"GET /u 127.0.0.1:%d 2"
                                                                          % wsgi.port)
    assert curl("--http2", "-w", " %{http_version}", "--data-binary", "xyz",
                wsgi.url("/echo")) == b"xyz 1.1"


def test_upgrade_before_the_preface(wsgi):
    # a client that waits for the 101 before its preface gets one 101, the
    # server's SETTINGS and stream 1's response, then nothing until it speaks
    s = socket.create_connection(("127.0.0.1", wsgi.port), timeout=T)
    s.sendall(b"GET /w HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
              b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
    s.settimeout(0.5)
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    assert got.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert got.count(b"101 Switching") == 1 and len(got) < 1000, len(got)
    assert b"HTTP/2 GET /w x" in got
    s.close()


def test_http1_still_served(wsgi):
    assert curl("-w", " %{http_version}", wsgi.url("/h1")).startswith(b"HTTP/1.1 GET /h1")


def test_asgi_version_and_body(asgi):
    assert curl("--http2-prior-knowledge", asgi.url("/v")) == b"2 /v 0"
    assert curl("--http2-prior-knowledge", "--data-binary", "hello", asgi.url("/v")) == b"2 /v 5"


def test_asgi_trailers(asgi):
    out = subprocess.run(["nghttp", "-v", asgi.url("/trailers")], capture_output=True,
                         timeout=T).stdout.decode()
    assert re.search(r"recv \(stream_id=\d+\) x-sum: 42", out), out
    assert "data" in out


def test_nghttp(wsgi):
    r = subprocess.run(["nghttp", "-nv", wsgi.url("/n")], capture_output=True, timeout=T)
    out = r.stdout.decode()
    assert r.returncode == 0, out
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out)
    assert re.search(r"recv DATA frame .*flags=0x01", out)  # the body ends its stream


def test_h2load(wsgi):
    r = subprocess.run(["h2load", "-n", "2000", "-c", "10", "-m", "10", wsgi.url("/")],
                       capture_output=True, timeout=60)
    out = r.stdout.decode()
    assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out
    assert "status codes: 2000 2xx" in out


def test_httpx_http2(asgi):
    with httpx.Client(http1=False, http2=True, timeout=T) as c:
        r = c.get(asgi.url("/x"))
        assert r.http_version == "HTTP/2"
        assert r.text == "2 /x 0"
        r = c.post(asgi.url("/x"), content=b"z" * 100000)
        assert r.text == "2 /x 100000"


# ---- frameworks, streamed ----

def test_flask(tmp_path):
    s = Server("h2_apps:flask_app", tmp_path=tmp_path)
    try:
        assert curl("--http2-prior-knowledge", s.url("/hello")) == b"flask HTTP/2"
        assert curl("--http2-prior-knowledge", "--data-binary", "x" * 70000,
                    s.url("/up")) == b"70000"
    finally:
        s.stop()


def arrivals(url):
    """Times (since the request) at which each piece of a streamed body came."""
    times = []
    t0 = time.monotonic()
    with httpx.Client(http1=False, http2=True, timeout=T) as c:
        with c.stream("GET", url) as r:
            assert r.http_version == "HTTP/2"
            for _ in r.iter_raw():
                times.append(time.monotonic() - t0)
    return times


def test_fastapi_streaming_pieces_arrive_when_sent(tmp_path):
    s = Server("h2_apps:fast", tmp_path=tmp_path)
    try:
        assert curl("--http2-prior-knowledge", s.url("/items/7")) == b'{"n":7}'
        times = arrivals(s.url("/stream"))
        # three pieces 0.3 s apart: the first long before the last
        assert len(times) >= 3, times
        assert times[0] < 0.25 and times[-1] - times[0] > 0.45, times
    finally:
        s.stop()


def test_wsgi_generator_streams(wsgi):
    times = arrivals(wsgi.url("/stream"))
    assert len(times) >= 3 and times[-1] - times[0] > 0.45, times


# ---- one stream never holds up another ----

def test_slow_app_stream_does_not_delay_another(asgi):
    c = Raw(asgi.port)
    slow = c.headers("/sleep")
    fast = c.headers("/f")
    c.flush()
    t0 = time.monotonic()
    c.read(lambda ev: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == fast for e in ev))
    assert time.monotonic() - t0 < 0.8
    assert not any(isinstance(e, h2.events.StreamEnded) and e.stream_id == slow for e in c.events)
    c.read(lambda ev: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == slow for e in ev))
    c.close()


def test_slow_reader_stream_does_not_block_another(asgi):
    # a 2 MB response whose stream window the client never opens again
    c = Raw(asgi.port)
    big = c.headers("/big")
    c.flush()
    c.read(lambda ev: sum(len(e.data) for e in ev
                          if isinstance(e, h2.events.DataReceived)) >= 65535)
    # the connection's window opens again (a client reading other streams
    # does), the big stream's never
    c.conn.increment_flow_control_window(1 << 20)
    fast = c.headers("/f")
    c.flush()
    c.read(lambda ev: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == fast for e in ev))
    got = b"".join(e.data for e in c.of(h2.events.DataReceived, fast))
    assert got == b"2 /f 0"
    assert not c.of(h2.events.StreamEnded, big)
    c.close()


# ---- limits and attacks ----

def test_max_concurrent_streams(asgi):
    c = Raw(asgi.port)
    ids = [c.headers("/sleep") for _ in range(110)]  # before the server's SETTINGS came
    c.flush()
    c.read(lambda ev: len([e for e in ev if isinstance(e, h2.events.StreamReset)]) >= 10)
    resets = c.of(h2.events.StreamReset)
    assert len(resets) == 10
    assert {e.stream_id for e in resets} == set(ids[100:])
    c.close()
    assert "refused: over 100 concurrent streams" in asgi.log()


def test_rapid_reset_gets_goaway(asgi):
    c = Raw(asgi.port)
    c.flush()
    for _ in range(400):
        sid = c.headers("/sleep")
        c.conn.reset_stream(sid)
    c.flush()
    c.read(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
    goaway = c.of(h2.events.ConnectionTerminated)[0]
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    c.close()
    assert "rapid reset" in asgi.log()


def test_header_list_too_large(wsgi):
    c = Raw(wsgi.port)
    sid = c.headers("/", extra=[("x-big", "v" * 70000)])
    c.flush()
    c.read(lambda ev: any(isinstance(e, h2.events.ResponseReceived) for e in ev))
    status = dict(c.of(h2.events.ResponseReceived, sid)[0].headers)[":status"]
    assert status == "431"
    # the connection goes on
    sid2 = c.headers("/ok")
    c.flush()
    c.read(lambda ev: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid2 for e in ev))
    c.close()
    assert "request head over the limits: 431" in wsgi.log()


def test_continuation_flood_closes(wsgi):
    s = socket.create_connection(("127.0.0.1", wsgi.port), timeout=T)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    # HEADERS without END_HEADERS, then CONTINUATION frames that never end
    frame = lambda t, flags, payload: (len(payload).to_bytes(3, "big") + bytes([t, flags]) +
                                       (1).to_bytes(4, "big") + payload)
    data = frame(1, 0x1, b"\x82") + b"".join(frame(9, 0, b"\x40\x01x\x01y") for _ in range(50))
    try:
        s.sendall(data)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except ConnectionResetError:
        got = b""
    s.close()  # the server closed: recv returned EOF (or a reset)
    assert "Too many CONTINUATION frames" in wsgi.log()


def test_ping_flood_closes(wsgi):
    s = socket.create_connection(("127.0.0.1", wsgi.port), timeout=T)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x0012345678"
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    closed = False
    try:
        for _ in range(200):
            s.sendall(ping * 100)  # never reading the acks
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    s.close()
    deadline = time.monotonic() + 5
    while "Flooding was detected" not in wsgi.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Flooding was detected" in wsgi.log()
    assert closed or "Flooding" in wsgi.log()


def test_zero_window_forever_reset(tmp_path):
    s = Server("h2_apps:asgi", ["--interface", "asgi", "--send-timeout", "1"], tmp_path=tmp_path)
    try:
        c = Raw(s.port, **{"window": 0})
        sid = c.headers("/big")
        c.flush()
        t0 = time.monotonic()
        c.read(lambda ev: any(isinstance(e, h2.events.StreamReset) and e.stream_id == sid
                              for e in ev), timeout=5)
        assert 0.8 < time.monotonic() - t0 < 4
        c.close()
        assert "the peer's window stayed shut: stream reset" in s.log()
    finally:
        s.stop()


def test_graceful_stop_goaway_and_open_stream_finishes(tmp_path):
    s = Server("h2_apps:asgi", ["--interface", "asgi"], tmp_path=tmp_path)
    try:
        idle = Raw(s.port)
        idle.flush()
        idle.read(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev))
        got = {}
        t = threading.Thread(target=lambda: got.update(out=curl(
            "--http2-prior-knowledge", "-w", " %{http_code}", s.url("/sleep"))))
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        # an idle connection hears GOAWAY (NO_ERROR) at once ...
        idle.read(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
        assert idle.of(h2.events.ConnectionTerminated)[0].error_code == 0
        assert time.monotonic() - t0 < 0.5
        idle.close()
        # ... and the stream in flight still gets its whole response
        t.join(T)
        assert got["out"] == b"2 /sleep 0 200"
        s.wait(T)
    finally:
        s.stop()


def test_static_files_over_h2(tmp_path):
    d = tmp_path / "files"
    d.mkdir()
    data = os.urandom(700000)  # more than a stream's buffer: sent as the window opens
    (d / "big.bin").write_bytes(data)
    s = Server("h2_apps:wsgi", ["--static", f"/s={d}"], tmp_path=tmp_path)
    try:
        r = subprocess.run(["curl", "-sS", "-m", str(T), "--http2-prior-knowledge",
                            s.url("/s/big.bin")], capture_output=True, timeout=T + 5)
        assert r.stdout == data
        assert curl("--http2-prior-knowledge", s.url("/app")).startswith(b"HTTP/2 GET /app")
    finally:
        s.stop()


def test_http1_only_flag(tmp_path):
    s = Server("h2_apps:wsgi", ["--http", "1"], tmp_path=tmp_path)
    try:
        r = subprocess.run(["curl", "-sS", "-m", "5", "--http2-prior-knowledge", s.url("/")],
                           capture_output=True, timeout=10)
        assert r.returncode != 0  # not HTTP/2: the preface is a bad HTTP/1.1 request
        assert curl("--http2", "-w", " %{http_version}", s.url("/u")).endswith(b" 1.1")
    finally:
        s.stop()


def test_http2_only_flag(tmp_path):
    s = Server("h2_apps:wsgi", ["--http", "2"], tmp_path=tmp_path, wait=False)
    try:
        deadline = time.monotonic() + 20
        while "ready" not in s.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert curl("--http2-prior-knowledge", s.url("/two")).startswith(b"HTTP/2 GET /two")
        assert curl("-o", "/dev/null", "-w", "%{http_code}", s.url("/one")) == b"505"
    finally:
        s.stop()


def test_idle_connection_goaway(tmp_path):
    s = Server("h2_apps:wsgi", ["--keep-alive", "1"], tmp_path=tmp_path)
    try:
        c = Raw(s.port)
        c.flush()
        t0 = time.monotonic()
        c.read(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
        assert 0.7 < time.monotonic() - t0 < 3
        assert c.of(h2.events.ConnectionTerminated)[0].error_code == 0
        assert c.sock.recv(100) == b""  # and closed
        c.close()
    finally:
        s.stop()


def test_access_log_and_max_requests(tmp_path):
    # h2 requests are logged and counted like HTTP/1.1 ones: --max-requests
    # retires the worker after them
    s = Server("h2_apps:wsgi", ["--access-log", "-", "--max-requests", "5"], tmp_path=tmp_path)
    try:
        first = s.workers()
        r = subprocess.run(["h2load", "-n", "8", "-c", "1", "-m", "1", s.url("/logged")],
                           capture_output=True, timeout=T)
        assert "8 succeeded" in r.stdout.decode()
        deadline = time.monotonic() + T
        while time.monotonic() < deadline and "GET /logged HTTP/2.0\" 200" not in s.log():
            time.sleep(0.05)
        assert '"GET /logged HTTP/2.0" 200' in s.log()
        while time.monotonic() < deadline and set(s.workers()) & set(first):
            time.sleep(0.1)
        assert not set(s.workers()) & set(first), s.log()
    finally:
        s.stop()


def test_graceful_timeout_cuts_open_streams(tmp_path):
    s = Server("h2_apps:asgi", ["--interface", "asgi", "--graceful-timeout", "0.3"],
               tmp_path=tmp_path)
    try:
        c = Raw(s.port)
        c.headers("/sleep")
        c.flush()
        time.sleep(0.2)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        c.read(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
        c.sock.settimeout(T)
        while c.sock.recv(65536):  # the connection is cut at the graceful timeout
            pass
        assert time.monotonic() - t0 < 0.9
        c.close()
        assert s.wait(T) == 0
    finally:
        s.stop()


# ---- Expect: 100-continue (RFC 9110 10.1.1) ----

def curl_verbose(*args):
    r = subprocess.run(["curl", "-sS", "-v", "-m", str(T), *args], capture_output=True,
                       timeout=T + 5)
    assert r.returncode == 0, r.stderr
    return r.stdout, r.stderr


@pytest.mark.parametrize("app,path,want", [("asgi", "/x", b"2 /x 10"), ("wsgi", "/echo", b"hello body")])
def test_expect_100_continue_sent_when_the_body_is_read(request, app, path, want):
    s = request.getfixturevalue(app)
    # curl waits (up to a second) for the 100 before it sends the body
    out, err = curl_verbose("--http2-prior-knowledge", "-H", "Expect: 100-continue",
                            "--data-binary", "hello body", s.url(path))
    assert b"< HTTP/2 100" in err
    assert b"< HTTP/2 200" in err
    assert out == want


def test_expect_100_continue_not_sent_when_the_app_answers_unread(asgi):
    out, err = curl_verbose("--http2-prior-knowledge", "-H", "Expect: 100-continue",
                            "--data-binary", "hello body", asgi.url("/noread"))
    assert b"< HTTP/2 200" in err
    assert b"HTTP/2 100" not in err
    assert out == b"unread"


def test_expect_100_continue_before_the_body_raw(asgi):
    # the 100 arrives while the client still holds its body back, and only once
    c = Raw(asgi.port)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "t"),
                              (":path", "/held"), ("content-length", "4"),
                              ("expect", "100-continue")])
    c.flush()
    c.read(lambda ev: any(isinstance(e, h2.events.InformationalResponseReceived) for e in ev))
    assert not c.of(h2.events.ResponseReceived, sid)
    c.conn.send_data(sid, b"abcd", end_stream=True)
    c.flush()
    c.read(lambda ev: any(isinstance(e, h2.events.StreamEnded) for e in ev))
    info = c.of(h2.events.InformationalResponseReceived, sid)
    assert len(info) == 1 and dict(info[0].headers)[":status"] == "100"
    assert b"".join(e.data for e in c.of(h2.events.DataReceived, sid)) == b"2 /held 4"
    c.close()


# ---- the replies of one turn leave together ----

def worker_writes(s):
    pid = s.workers()[0]
    with open(f"/proc/{pid}/io") as f:
        return int(re.search(r"syscw: (\d+)", f.read()).group(1))


@pytest.mark.parametrize("app", ["asgi", "wsgi"])
def test_streams_answered_in_one_turn_share_a_write(request, app):
    s = request.getfixturevalue(app)
    c = Raw(s.port)
    c.flush()
    c.read(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev))
    time.sleep(0.2)  # the settings' acks are out
    before = worker_writes(s)
    sids = [c.headers("/w%d" % i) for i in range(10)]
    c.flush()  # ten requests in one packet
    c.read(lambda ev: len([e for e in ev if isinstance(e, h2.events.StreamEnded)]) == 10)
    for i, sid in enumerate(sids):
        body = b"".join(e.data for e in c.of(h2.events.DataReceived, sid))
        assert body.endswith(b"/w%d" % i) or b"/w%d " % i in body
    writes = worker_writes(s) - before
    assert writes <= 3, writes  # one write per stream would be 10
    c.close()
