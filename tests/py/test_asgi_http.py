"""ASGI over HTTP against the real gallop binary: scope, streaming both ways,
disconnects, backpressure, errors the spec names, pathsend, trailers,
--limit-concurrency, loops, ASGI 2, asyncio/contextvars/anyio behaviour."""
import concurrent.futures
import json
import os
import socket
import sys
import time

import httpx
import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgitools import Gallop, read_chunked, read_head, rss_kib, wait_for  # noqa: E402

T = 10  # seconds: every client call has a timeout


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return tmp_path_factory.mktemp("asgi_http")


@pytest.fixture(scope="module")
def srv(outdir):
    g = Gallop("asgi_raw:app", "--root-path", "/mnt", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir)
    yield g
    g.stop()


def read_out(outdir, name, timeout=15.0):
    p = os.path.join(str(outdir), name)
    assert wait_for(lambda: os.path.exists(p), timeout), f"the app never wrote {name}"
    with open(p) as f:
        return json.load(f)


def b(v):
    assert isinstance(v, dict) and "bytes" in v, v
    return v["bytes"]


def alive(g):
    r = httpx.get(g.url + "/__ready", timeout=T)
    assert r.status_code == 200 and r.text == "ready"


# ---- 1. scope --------------------------------------------------------------------

def test_scope_fields(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        # the app routes /scope only; use a raw request so that the path is sent exactly
        s.sendall((f"GET /scope?x=1&y=%20 HTTP/1.1\r\nHost: h.example\r\nX-Dup: one\r\n"
                   f"X-Mixed-CASE: v\r\nx-dup: two\r\nConnection: close\r\n\r\n").encode())
        st, hs, rest = read_head(s)
        body = rest
        while True:
            c = s.recv(65536)
            if not c:
                break
            body += c
    assert st == 200
    sc = json.loads(body)
    ty = sc["__types"]
    assert sc["type"] == "http"
    assert sc["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert sc["http_version"] == "1.1"
    assert sc["method"] == "GET"
    assert sc["scheme"] == "http"
    assert sc["path"] == "/scope" and ty["path"] == "str"
    assert b(sc["raw_path"]) == "/scope" and ty["raw_path"] == "bytes"
    assert b(sc["query_string"]) == "x=1&y=%20" and ty["query_string"] == "bytes"
    assert sc["root_path"] == "/mnt"
    names = [b(h["tuple"][0]) for h in sc["headers"]]
    vals = [b(h["tuple"][1]) for h in sc["headers"]]
    assert names == ["host", "x-dup", "x-mixed-case", "x-dup", "connection"], names
    assert vals == ["h.example", "one", "v", "two", "close"]
    assert ty["client"] == "tuple" and ty["server"] == "tuple"
    host, port = sc["client"]["tuple"]
    assert host == "127.0.0.1" and isinstance(port, int) and port > 0
    assert sc["server"]["tuple"] == ["127.0.0.1", srv.port]
    assert sc["extensions"] == {"http.response.pathsend": {}, "http.response.trailers": {},
                                "websocket.http.response": {}}
    assert sc["state"]["token"] == "lifespan-token"


def test_scope_percent_decoded_path_and_raw_path(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(b"GET /mnt/%73cope/caf%C3%A9%20x%2Fy%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        st, hs, data = read_head(s)
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    assert st == 200, data[:200]
    sc = json.loads(data)
    assert sc["path"] == "/mnt/scope/caf\u00e9 x/y%zz"
    assert b(sc["raw_path"]) == "/mnt/%73cope/caf%C3%A9%20x%2Fy%zz"
    assert sc["root_path"] == "/mnt"


def test_scope_utf8_path_via_websocket(srv):
    from asgitools import FrameReader, ws_frame, ws_handshake
    s, rest = ws_handshake(srv.port, path="/mnt/caf%C3%A9%20%2Fx?q=%C3%A9")
    with s:
        s.sendall(ws_frame(1, b"scope"))
        fin, op, p = FrameReader(s, rest).frame()
        sc = json.loads(p)
    assert sc["type"] == "websocket"
    assert sc["path"] == "/mnt/caf\u00e9 /x"
    assert b(sc["raw_path"]) == "/mnt/caf%C3%A9%20%2Fx"
    assert b(sc["query_string"]) == "q=%C3%A9"
    assert sc["root_path"] == "/mnt"
    assert sc["scheme"] == "ws"
    assert sc["state"]["token"] == "lifespan-token"


def test_state_is_a_shallow_copy_per_request(srv):
    r1 = httpx.get(srv.url + "/scope?mutate=1", timeout=T).json()
    assert "added_by_request" not in r1["state"]
    r2 = httpx.get(srv.url + "/scope", timeout=T).json()
    # top-level keys added by a request do not leak into the next one ...
    assert "added_by_request" not in r2["state"]
    # ... but the copy is shallow: values are shared objects
    assert r2["state"]["items"][0] == "startup" and "req" in r2["state"]["items"]


def test_http10_scope(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(b"POST /scope HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        st, hs, rest = read_head(s)
        data = rest
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    sc = json.loads(data)
    assert sc["http_version"] == "1.0" and sc["method"] == "POST"


# ---- 2. streaming both ways -------------------------------------------------------

def test_request_body_streams_in_chunks(srv):
    parts = [b"%06d" % i for i in range(100000)]  # 600 kB

    def gen():
        for i in range(0, len(parts), 10000):
            yield b"".join(parts[i:i + 10000])
            time.sleep(0.02)

    r = httpx.post(srv.url + "/body", content=gen(), timeout=T)
    assert r.status_code == 200
    d = r.json()
    assert d["total"] == 600000 and d["ok"] and d["other"] is None
    chunks = d["chunks"]
    assert len(chunks) >= 3, chunks
    assert all(m for _, m in chunks[:-1]) and chunks[-1][1] is False
    assert all(n <= 65536 for n, _ in chunks)


def test_request_body_content_length(srv):
    body = b"".join(b"%06d" % i for i in range(50000))
    r = requests.post(srv.url + "/body", data=body, timeout=T)
    d = r.json()
    assert d["total"] == len(body) and d["ok"]
    assert d["chunks"][-1][1] is False


def test_empty_body_is_one_message(srv):
    d = httpx.get(srv.url + "/body", timeout=T).json()
    assert d["chunks"] == [[0, False]]


def test_response_streams_chunked(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(b"GET /stream?n=20&size=1000&delay=0.01 HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, rest = read_head(s)
        assert st == 200
        assert ("transfer-encoding", "chunked") in hs
        assert "content-length" not in dict(hs)
        body, sizes, trailers, rest = read_chunked(s, rest)
    assert body == b"".join(bytes([97 + i % 26]) * 1000 for i in range(20))
    assert len(sizes) >= 2 and trailers == []


def test_response_stream_with_clients(srv):
    with httpx.stream("GET", srv.url + "/stream?n=50&size=4096", timeout=T) as r:
        got = b"".join(r.iter_bytes())
    assert len(got) == 50 * 4096
    r2 = requests.get(srv.url + "/stream?n=3&size=10", timeout=T)
    assert r2.content == b"a" * 10 + b"b" * 10 + b"c" * 10
    assert r2.headers["transfer-encoding"] == "chunked"


def test_keepalive_reuses_connection(srv):
    with httpx.Client(timeout=T) as c:
        for i in range(20):
            r = c.get(srv.url + "/stream?n=2&size=5")
            assert r.content == b"aaaaabbbbb"


# ---- 3. disconnect while streaming ---------------------------------------------------

def test_disconnect_midstream_receive_and_send(srv, outdir):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
    s.sendall(b"GET /disc?tag=a HTTP/1.1\r\nHost: x\r\n\r\n")
    st, hs, rest = read_head(s)
    assert st == 200
    n = len(rest)
    while n < 20000:
        n += len(s.recv(65536))
    s.close()
    rec = read_out(outdir, "disc-a", timeout=25)
    # ASGI spec 2.4: a send after the client left raises an OSError subclass
    assert len(rec["errors"]) == 1 and rec["errors"][0].startswith("ClientDisconnected("), rec
    assert rec["receive"] == "http.disconnect", rec
    assert rec["second_receive"] == "http.disconnect", rec
    alive(srv)


def test_disconnect_midstream_send_only(srv, outdir):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
    s.sendall(b"GET /disc-send?tag=b HTTP/1.1\r\nHost: x\r\n\r\n")
    st, hs, rest = read_head(s)
    s.recv(65536)
    s.close()
    rec = read_out(outdir, "discsend-b", timeout=20)
    assert len(rec["errors"]) == 1 and rec["errors"][0].startswith("ClientDisconnected("), rec
    assert rec["receive"] == "http.disconnect", rec
    alive(srv)


def test_receive_pending_when_response_completes(srv, outdir):
    # the client keeps the connection open (keep-alive): the response being
    # complete is what must end the app's pending receive()
    with httpx.Client(timeout=T) as c:
        r = c.get(srv.url + "/after-complete?tag=keep")
        assert r.text == "done"
        rec = read_out(outdir, "after-keep", timeout=10)
        assert rec == {"pending_receive": "http.disconnect", "fresh_receive": "http.disconnect"}, rec
        assert c.get(srv.url + "/__ready").status_code == 200


@pytest.mark.parametrize("sleep", ["0", "0.8"])
def test_receive_after_a_cancelled_receive(srv, sleep):
    # the app's first receive() times out (cancelled); the body arrives either
    # before (sleep 0.8) or after (sleep 0) its next receive(): not a byte is lost
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(b"POST /cancelled-receive?sleep=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
                  % sleep.encode())
        time.sleep(0.4)
        s.sendall(b"0123456789")
        st, hs, rest = read_head(s)
        n = int(dict(hs)["content-length"])
        while len(rest) < n:
            rest += s.recv(65536)
    assert st == 200
    assert json.loads(rest) == {"first": "timeout", "body": "0123456789"}


# ---- 4. backpressure ------------------------------------------------------------

def test_backpressure_bounded_rss(outdir):
    with Gallop("asgi_raw:app", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
        alive(g)
        (wpid,) = g.workers()
        base = rss_kib(wpid)
        total = 200 << 20
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(T)
        s.connect(("127.0.0.1", g.port))
        s.sendall(b"GET /big?mb=200&tag=bp HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, rest = read_head(s)
        assert st == 200 and dict(hs)["content-length"] == str(total)
        got = len(rest)
        while got < 1 << 20:
            got += len(s.recv(65536))
        peak = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0:  # the client stops reading
            peak = max(peak, rss_kib(wpid))
            time.sleep(0.1)
        assert peak - base < 60 * 1024, (base, peak)
        # meanwhile the worker serves others
        r = httpx.get(g.url + "/__ready", timeout=T)
        assert r.status_code == 200
        assert not os.path.exists(os.path.join(str(outdir), "big-done-bp"))
        # now read everything
        t0 = time.monotonic()
        while got < total:
            c = s.recv(1 << 20)
            assert c, f"closed after {got} bytes"
            got += len(c)
            if got % (16 << 20) < len(c):
                peak = max(peak, rss_kib(wpid))
            assert time.monotonic() - t0 < 60
        assert got == total
        s.close()
        assert peak - base < 60 * 1024, (base, peak)
        read_out(outdir, "big-done-bp", timeout=10)
        alive(g)


def test_backpressure_client_closes(outdir):
    with Gallop("asgi_raw:app", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
        (wpid,) = g.workers()
        base = rss_kib(wpid)
        s = socket.create_connection(("127.0.0.1", g.port), timeout=T)
        s.sendall(b"GET /big?mb=200&tag=bpc HTTP/1.1\r\nHost: x\r\n\r\n")
        read_head(s)
        s.recv(65536)
        time.sleep(1.5)
        assert rss_kib(wpid) - base < 60 * 1024
        s.close()
        # the app's next send raises: it stops at once
        rec = read_out(outdir, "big-done-bpc", timeout=30)
        assert rec["gone"] == "ClientDisconnected" and rec["sent"] < 200 << 20, rec
        alive(g)
        assert rss_kib(wpid) - base < 60 * 1024


# ---- 10. errors ------------------------------------------------------------------------

def test_second_start_raises(srv):
    r = httpx.get(srv.url + "/err/second-start", timeout=T)
    assert r.status_code == 200
    assert r.text.startswith("RuntimeError"), r.text


def test_body_before_start_raises(srv):
    r = httpx.get(srv.url + "/err/body-first", timeout=T)
    assert r.status_code == 200
    assert r.text.startswith("RuntimeError"), r.text


def test_bad_header_raises(srv):
    r = httpx.get(srv.url + "/err/bad-header", timeout=T)
    assert r.status_code == 200
    assert r.json() == {"name": "ValueError", "value": "ValueError", "lf": "ValueError"}
    assert "x-bad" not in r.headers


def test_no_response_is_500(srv):
    r = httpx.get(srv.url + "/err/noresponse", timeout=T)
    assert r.status_code == 500
    alive(srv)


def test_exception_is_500_with_traceback(srv):
    r = requests.get(srv.url + "/err/raise", timeout=T)
    assert r.status_code == 500
    assert wait_for(lambda: "asgi-test-boom-marker" in srv.log(), 5), srv.log()[-2000:]
    log = srv.log()
    assert "Traceback" in log and "r_raise" in log
    alive(srv)


def test_exception_after_start_cuts_the_response(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(b"GET /err/raise-after-start HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, rest = read_head(s)
        assert st == 200
        data = rest
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    # the body is cut short: no terminating chunk, and the connection is closed
    assert b"partial" in data and not data.endswith(b"0\r\n\r\n")
    assert wait_for(lambda: "asgi-test-late-boom" in srv.log(), 5)
    alive(srv)


# ---- 11. pathsend and trailers ----------------------------------------------------

def test_pathsend(srv, outdir):
    p = os.path.join(str(outdir), "payload.bin")
    data = os.urandom(3 << 20) + b"end"
    with open(p, "wb") as f:
        f.write(data)
    r = httpx.get(srv.url + "/pathsend", params={"path": p}, timeout=T)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))
    assert r.content == data
    # missing file: the app's send raises -> 500
    r = httpx.get(srv.url + "/pathsend", params={"path": p + ".missing"}, timeout=T)
    assert r.status_code == 500


def test_trailers(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
        st, hs, rest = read_head(s)
        assert st == 200
        hd = dict(hs)
        assert hd.get("transfer-encoding") == "chunked" and "content-length" not in hd
        body, sizes, trailers, rest = read_chunked(s, rest)
        assert body == b"hello trailer world"
        assert trailers == ["x-checksum: abc123", "x-count: 3"]
        # the connection is still usable afterwards
        s.sendall(b"GET /__ready HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, rest = read_head(s, rest)
        assert st == 200


# ---- 8. --limit-concurrency ---------------------------------------------------------

def test_limit_concurrency(outdir):
    with Gallop("asgi_raw:app", "--limit-concurrency", "2", env={"ASGI_TEST_DIR": str(outdir)},
                log_dir=outdir) as g:
        def one(i):
            return httpx.get(g.url + "/slow?t=1", timeout=T).status_code

        with concurrent.futures.ThreadPoolExecutor(5) as ex:
            codes = list(ex.map(one, range(5)))
        assert codes.count(200) >= 2, codes
        assert codes.count(503) >= 1, codes
        assert set(codes) <= {200, 503}
        # recovered: once idle, two at a time pass again
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            codes = list(ex.map(lambda i: httpx.get(g.url + "/slow?t=0.3", timeout=T).status_code, range(2)))
        assert codes == [200, 200]


# ---- 13. loops, ASGI 2, asyncio semantics -----------------------------------------------

@pytest.mark.parametrize("loop,module", [("asyncio", "asyncio"), ("uvloop", "uvloop")])
def test_loops(outdir, loop, module):
    with Gallop("asgi_raw:app", "--loop", loop, env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
        d = httpx.get(g.url + "/ctx", timeout=T).json()
        assert d["loop"].split(".")[0] == module
        assert d["current_task"] is True
        assert d["child"] == ["from-app", True]
        assert d["anyio"] == [[0, "from-app"], [1, "from-app"], [2, "from-app"]]
        assert d["to_thread"] == 42 and d["wait_for"] == "ok"
        # a contextvar set in one request does not leak into the next
        assert httpx.get(g.url + "/var", timeout=T).json() == {"var": "unset"}
        lines = [ln for ln in g.log().splitlines() if "ASGI 3 app on the" in ln]
        assert len(lines) == 1, g.log()


def test_loop_log_lines_differ(outdir):
    names = []
    for loop in ("asyncio", "uvloop"):
        with Gallop("asgi_raw:app", "--loop", loop, env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
            ln = [x for x in g.log().splitlines() if "ASGI 3 app on the" in x][0]
            names.append(ln.split("app on the ")[1])
    assert names[0] != names[1], names
    assert "uvloop" in names[1].lower(), names


def test_asgi2_double_callable(outdir):
    with Gallop("asgi_raw:app2", "--interface", "asgi2", env={"ASGI_TEST_DIR": str(outdir)},
                log_dir=outdir) as g:
        d = httpx.get(g.url + "/hello", timeout=T).json()
        assert d == {"asgi": {"version": "2.0", "spec_version": "2.4"}, "path": "/hello"}
        assert "ASGI 2 app" in g.log()


def test_auto_detects_callable_object(outdir):
    with Gallop("asgi_raw:obj_app", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
        assert httpx.get(g.url + "/var", timeout=T).json() == {"var": "unset"}
        assert "ASGI 3 app" in g.log()
