"""ASGI apps as frameworks and users write them (issue 9): FastAPI's http
middleware around streaming, background tasks, uploads, SSE with a client
that leaves, receive()/send() handed to asyncio as coroutines, a Task and a
context per request, fresh scope dicts, and apps that misbehave. Each test
checks the status, the body, the log, and that the worker serves on."""
import json
import os
import socket
import sys
import time

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgitools import Gallop, read_chunked, read_head, recv_until, wait_for  # noqa: E402
from conftest import read_response  # noqa: E402

T = 10


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    g = Gallop("asgi_real:app", log_dir=tmp_path_factory.mktemp("asgi_apps"))
    yield g
    g.stop()


def state(srv):
    r = httpx.get(srv.url + "/raw/state", timeout=T)
    assert r.status_code == 200
    return r.json()


def serves_on(srv, pid=None):
    """The worker (the same one when pid is given) answers the next request."""
    s = state(srv)
    if pid is not None:
        assert s["pid"] == pid
    return s


def connect(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
    s.settimeout(T)
    return s


def get(s, path, body=b"", method="GET"):
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


# ---- FastAPI / Starlette ------------------------------------------------------------

def test_http_middleware_around_streaming_response(srv):
    pid = state(srv)["pid"]
    with httpx.Client(timeout=T) as c:
        for _ in range(2):  # twice on one keep-alive connection
            r = c.get(srv.url + "/stream")
            assert r.status_code == 200
            assert r.headers["x-mw"] == "yes"
            assert r.text == "0\n1\n2\n"
    assert "receive() called again" not in srv.log()
    assert "Exception in ASGI application" not in srv.log()
    serves_on(srv, pid)


def test_background_task_runs_after_the_response_reached_the_client(srv):
    t0 = time.time()
    r = httpx.post(srv.url + "/bg", timeout=T)
    took = time.time() - t0
    assert r.status_code == 200 and r.json() == {"queued": True}
    assert r.headers["x-mw"] == "yes"
    assert took < 0.7, f"the answer waited for the 1 s background task ({took:.2f} s)"
    done = wait_for(lambda: state(srv)["bg_done_at"], 5)
    assert done and done >= t0 + 0.9


def test_request_body_through_middleware(srv):
    data = bytes(range(256)) * 48  # 12 KB
    r = httpx.post(srv.url + "/upload", content=data, timeout=T)
    assert r.status_code == 200
    assert r.json() == {"len": len(data), "sum": sum(data) % 65521}


def test_sse_generator_stops_when_the_client_leaves(srv):
    before = state(srv)
    s = connect(srv)
    get(s, "/sse")
    status, hs, rest = read_head(s)
    assert status == 200 and dict(hs)["content-type"].startswith("text/event-stream")
    recv_until(s, rest, b"data: 1")
    s.close()
    st = wait_for(lambda: (lambda x: x if x["sse_finished"] > before["sse_finished"] else None)(state(srv)), 5)
    assert st, "the endless SSE generator still runs after its client left"
    assert st["sse_started"] == before["sse_started"] + 1
    assert st["pid"] == before["pid"]


# ---- receive and send as asyncio takes them -------------------------------------------

def chunked_post(s, path, pieces):
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    for p in pieces:
        time.sleep(0.05)
        s.sendall(b"%x\r\n%s\r\n" % (len(p), p))
    time.sleep(0.05)
    s.sendall(b"0\r\n\r\n")


def test_receive_in_create_task_ensure_future_wait_for_gather(srv):
    s = connect(srv)
    chunked_post(s, "/raw/create_task", [b"a", b"b", b"c"])
    status, hs, rest = read_head(s)
    assert status == 200, srv.log()[-2000:]
    body = json.loads(rest) if rest else json.loads(s.recv(65536))
    assert body == ["a", "b", "c", "http.request"]
    assert "Exception in ASGI application" not in srv.log()


def test_two_receive_waiting_at_once(srv):
    s = connect(srv)
    s.sendall(b"POST /raw/two_waiters HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    time.sleep(0.5)
    s.sendall(b"hello")
    status, hs, body, rest = read_response(s)
    assert status == 200 and body == b"got hello"
    assert wait_for(lambda: state(srv).get("two_waiters"), 5) == ["hello", "http.disconnect"]
    assert "receive() called again" not in srv.log()
    s.close()


def test_send_in_create_task_gather_wait_for(srv):
    r = httpx.get(srv.url + "/raw/create_task_send", timeout=T)
    assert r.status_code == 200
    assert r.text == "via tasks"


def test_unawaited_send_and_receive_do_nothing(srv):
    r = httpx.post(srv.url + "/raw/lazy", content=b"the body", timeout=T)
    assert r.status_code == 200
    assert r.json() == {"body": "the body", "more": False}
    assert "sent twice" not in srv.log()


# ---- a Task and a context per request ---------------------------------------------------

def test_each_request_has_its_own_task_and_context(srv):
    with httpx.Client(timeout=T) as c:
        a = c.get(srv.url + "/raw/who?1").json()
        b = c.get(srv.url + "/raw/who?2").json()
    assert a["before"] == "unset" and b["before"] == "unset"
    assert b["same_task"] is False, "two requests on one connection ran in one Task"
    assert b["old_ctx_value_alive"] is False, "the first request's context outlived it"


def test_scope_dicts_are_fresh_per_request(srv):
    with httpx.Client(timeout=T) as c:
        a = c.get(srv.url + "/raw/scope").json()
        b = c.get(srv.url + "/raw/scope").json()
    assert a == b
    assert "leak" not in b["asgi"] and "leak" not in b["ext"]
    assert b["ext_pathsend"] == {} and "leak" not in b["state"]
    assert b["asgi"]["spec_version"] == "2.4"


# ---- streaming and departed clients -------------------------------------------------------

def test_stream_piece_reaches_the_client_before_the_app_waits(srv):
    s = connect(srv)
    t0 = time.monotonic()
    get(s, "/raw/stream")
    status, hs, rest = read_head(s)
    rest = recv_until(s, rest, b"first;")
    first_at = time.monotonic() - t0
    assert first_at < 0.6, f"the first piece waited for the app's next send ({first_at:.2f} s)"
    body, sizes, _, _ = read_chunked(s, rest)
    total = time.monotonic() - t0
    assert body == b"first;second;third;end"
    assert total > 1.4


def test_send_after_the_client_left_raises_oserror(srv):
    s = connect(srv)
    get(s, "/raw/endless")
    status, hs, rest = read_head(s)
    assert status == 200
    s.close()
    st = wait_for(lambda: state(srv)["raw_stream_exc"], 5)
    assert st == ["ClientDisconnected", True], st


# ---- misbehaving apps --------------------------------------------------------------------

@pytest.mark.parametrize("path, name", [("/raw/exit", "SystemExit"), ("/raw/kbint", "KeyboardInterrupt")])
def test_exit_in_a_request_is_a_500(srv, path, name):
    pid = state(srv)["pid"]
    with httpx.Client(timeout=T) as c:
        r = c.get(srv.url + path)
        assert r.status_code == 500
        assert c.get(srv.url + "/raw/state").json()["pid"] == pid
    assert srv.wait_log(f"Exception in ASGI application, GET {path}", 5), srv.log()[-2000:]
    log = srv.log()
    assert "Traceback (most recent call last)" in log and name in log
    assert srv.proc.poll() is None


def test_exit_after_the_head_cuts_the_body(srv):
    pid = state(srv)["pid"]
    s = connect(srv)
    get(s, "/raw/exit_late")
    status, hs, rest = read_head(s)
    assert status == 200
    with pytest.raises(EOFError):
        read_chunked(s, rest)
    serves_on(srv, pid)


@pytest.mark.parametrize("exc", ["RuntimeError", "MemoryError"])
def test_task_factory_that_raises_gives_one_500(srv, exc):
    pid = state(srv)["pid"]
    s = connect(srv)
    get(s, "/raw/arm?" + exc)
    status, hs, rest = read_head(s)
    assert status == 200 and rest == b"armed"
    get(s, "/raw/state")  # while /raw/arm still runs
    status, hs, body, rest = read_response(s)
    assert status == 500 and body == b"Internal Server Error\n"
    # one answer, and the connection goes on: the next request on it is served
    get(s, "/raw/state")
    status, hs, body, rest = read_response(s, rest)
    assert status == 200 and json.loads(body)["pid"] == pid
    assert rest == b""
    s.close()
    assert srv.wait_log("factory says no", 5)
    serves_on(srv, pid)
