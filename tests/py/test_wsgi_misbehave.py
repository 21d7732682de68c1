"""WSGI apps that misbehave as real ones do, against the real binary: each
request gets the status PEP 3333 and gunicorn give, the log says why, and the
same worker serves the next request. Also the PEP 3333 details (write(b""),
latin-1 status, long header names) and streaming: a generator's piece reaches
the client before the app's next wait."""
import re
import socket
import time

import pytest

from asgitools import wait_for
from conftest import APPS, free_port, read_response, run_gallop


@pytest.fixture(scope="module", params=["sync", "threads"])
def srv(request, module_server_factory):
    args = ("--threads", "4") if request.param == "threads" else ()
    return module_server_factory("misbehave:app", *args, workers=1)


def request(srv, path, headers="", timeout=10):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode("latin-1"))
        return read_response(s, timeout=timeout)


def worker_pid(srv):
    st, _, body, _ = request(srv, "/pid")
    assert st == 200
    return int(body)


def assert_logged(srv, *texts):
    assert wait_for(lambda: all(t in srv.log() for t in texts), 5.0), srv.log()[-3000:]


# ---- exceptions that are not Exceptions -------------------------------------------

@pytest.mark.parametrize("path,logged", [
    ("/exit", ["Error handling request GET /exit (in the app)", "SystemExit: 3"]),
    ("/kbint", ["Error handling request GET /kbint (in the app)",
                "KeyboardInterrupt: misbehave: ^C in the view"]),
    ("/exit-after-start", ["Error handling request GET /exit-after-start (in the app)",
                           "SystemExit: misbehave: exit after start_response"]),
    ("/exit-in-iter", ["Error handling request GET /exit-in-iter (while iterating the response)",
                       "SystemExit: 4"]),
    ("/kbint-in-iter", ["Error handling request GET /kbint-in-iter (while iterating the response)",
                        "KeyboardInterrupt: misbehave: ^C in the iterable"]),
])
def test_exit_and_interrupt_give_500_and_worker_lives(srv, path, logged):
    before = worker_pid(srv)
    st, hs, body, _ = request(srv, path)
    assert st == 500
    assert b"Internal Server Error" in body
    assert_logged(srv, *logged)
    assert "Traceback (most recent call last)" in srv.log()
    # the same worker goes on serving, on a new connection and on this one
    assert worker_pid(srv) == before
    assert srv.proc.poll() is None
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\nGET /pid HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        st1, _, _, rest = read_response(s)
        st2, _, body2, _ = read_response(s, rest)
    assert (st1, st2, int(body2)) == (500, 200, before)


def test_exit_mid_body_cuts_the_response_and_worker_lives(srv):
    before = worker_pid(srv)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /exit-mid-body HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while True:  # the server closes: the body cannot end properly
            b = s.recv(65536)
            if not b:
                break
            data += b
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"part of the body;" in data and not data.endswith(b"0\r\n\r\n")
    assert_logged(srv, "Error handling request GET /exit-mid-body (while iterating the response)",
                  "SystemExit: 5")
    assert worker_pid(srv) == before


def test_sys_exit_while_importing_is_an_app_error():
    r = run_gallop(["--bind", f"127.0.0.1:{free_port()}", "--workers", "2", "--chdir", APPS,
                    "import_exits:app"], timeout=20)
    assert r.returncode == 4  # the app failed to load: the master stops
    assert r.stderr.count("SystemExit: 0") == 1, r.stderr  # once, with its traceback
    assert "[ERROR] the app module 'import_exits' raised an exception while importing" in r.stderr


# ---- the header list changed after start_response ------------------------------

@pytest.mark.parametrize("path,logged", [
    ("/headers-append-nontuple", "TypeError: response header 'X-Bogus: not a tuple' is not a (str, str) tuple"),
    ("/headers-append-badvalue", "TypeError: response header ('X-Number', 5) is not a (str, str) tuple"),
])
def test_headers_changed_after_start_response(srv, path, logged):
    before = worker_pid(srv)
    st, hs, body, _ = request(srv, path)
    assert st == 500 and b"Internal Server Error" in body and b"body" not in body
    assert_logged(srv, f"Error handling request GET {path}", logged)
    assert worker_pid(srv) == before


# ---- PEP 3333 details --------------------------------------------------------------

def test_write_empty_does_not_send_the_head(srv):
    st, _, body, _ = request(srv, "/write-empty-then-fail")
    assert st == 500 and b"Internal Server Error" in body  # the head was still unsent
    assert_logged(srv, "ValueError: misbehave: failed after write(b'')")
    st, hs, body, _ = request(srv, "/write-empty-then-body")
    assert st == 200 and body == b"after"
    assert dict(hs).get("content-length") == "5"  # a one-piece body: the head waited for it


def test_status_line_is_latin1(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /status-latin1 HTTP/1.1\r\nHost: t\r\n\r\n")
        head = b""
        while b"\r\n" not in head:
            head += s.recv(4096)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 \xd6kay"
    before = worker_pid(srv)
    st, _, body, _ = request(srv, "/status-not-latin1")
    assert st == 500 and b"Internal Server Error" in body
    assert_logged(srv, "Error handling request GET /status-not-latin1 (in the app)",
                  "ValueError: start_response: status '200 \u0150kay \u20ac' is not latin-1")
    assert worker_pid(srv) == before


def test_long_header_names_are_neither_merged_nor_cut(srv):
    stem = "X-Long-" + "a" * 300
    st, _, body, _ = request(srv, "/long-headers", headers=f"{stem}-1: one\r\n{stem}-2: two\r\n")
    assert st == 200
    key = "HTTP_X_LONG_" + "A" * 300
    assert body.decode().split("\n") == [f"{key}_1=one", f"{key}_2=two"]


# ---- streaming --------------------------------------------------------------------

def arrivals(port, path, markers, timeout=15):
    """Sends GET path; returns the monotonic time each marker arrived, from the send."""
    seen = {}
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        t0 = time.monotonic()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        while len(seen) < len(markers):
            b = s.recv(65536)
            if not b:
                break
            buf += b
            now = time.monotonic() - t0
            for m in markers:
                if m not in seen and m in buf:
                    seen[m] = now
    assert len(seen) == len(markers), buf
    return [seen[m] for m in markers], buf


def test_generator_pieces_leave_before_the_next_wait(srv):
    (t1, t2, t3), buf = arrivals(srv.port, "/stream?1", [b"first;", b"second;", b"third"])
    assert t1 < 0.8, (t1, t2, t3)  # not held back until the generator ends (~2 s)
    assert t2 - t1 > 0.6 and t3 - t2 > 0.6, (t1, t2, t3)
    assert b"transfer-encoding: chunked" in buf.lower()


def test_write_pieces_leave_before_the_next_wait(srv):
    (t1, t2), buf = arrivals(srv.port, "/write-stream", [b"first;", b"second;"])
    assert t1 < 0.8 and t2 - t1 > 0.6, (t1, t2)


def test_flask_stream_with_context(server_factory):
    srv = server_factory("flask_stream:app", workers=1)
    (t0, t1, t2), buf = arrivals(srv.port, "/stream?pause=1",
                                 [b"piece 0 of /stream", b"piece 1 of /stream", b"piece 2 of /stream"])
    assert t0 < 0.8, (t0, t1, t2)
    assert t1 - t0 > 0.6 and t2 - t1 > 0.6, (t0, t1, t2)
    assert re.match(rb"HTTP/1.1 200 OK\r\n", buf)
