"""HTTP/1.x protocol behaviour, with raw sockets, http.client, requests and curl."""
import http.client
import json
import re
import socket
import subprocess
import time
from email.utils import parsedate_to_datetime

import pytest
import requests

from conftest import raw_request, read_continue, read_response, recv_all, status_of


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory("basic:app", "--keep-alive", "3", workers=2)


def conn(srv, timeout=5):
    return socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)


def test_basic_get_headers(srv):
    with conn(srv) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hdrs, body, rest = read_response(s)
    h = dict(hdrs)
    assert st == 200 and body == b"hello /hello" and rest == b""
    assert h["server"] == "gallop"
    d = parsedate_to_datetime(h["date"])
    assert abs(d.timestamp() - time.time()) < 120
    assert h["content-length"] == str(len(body))
    assert "connection" not in h or h["connection"].lower() != "close"


def test_keepalive_http11_reuses_connection(srv):
    with conn(srv) as s:
        for i in range(5):
            s.sendall(b"GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            st, _, body, rest = read_response(s)
            assert st == 200 and body == b"hello /k%d" % i and rest == b""


def test_http10_closes_by_default(srv):
    data = raw_request(srv.port, b"GET /ten HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    assert data.endswith(b"hello /ten")
    head = data.split(b"\r\n\r\n")[0].lower()
    assert b"connection: keep-alive" not in head


def test_http10_keepalive(srv):
    with conn(srv) as s:
        for i in range(3):
            s.sendall(b"GET /a%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            st, hdrs, body, rest = read_response(s)
            assert st == 200 and body == b"hello /a%d" % i
            assert dict(hdrs).get("connection", "").lower() == "keep-alive"
        # without the header the last one closes
        s.sendall(b"GET /last HTTP/1.0\r\n\r\n")
        st, hdrs, body, rest = read_response(s)
        assert body == b"hello /last"
        assert recv_all(s, 5) == b""


def test_http10_stream_is_close_delimited(srv):
    data = raw_request(srv.port, b"GET /stream?n=4 HTTP/1.0\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"part0;part1;part2;part3;"


def test_http10_keepalive_stream_without_length_closes(srv):
    # no length and no chunked on 1.0: the close must delimit the body even if keep-alive was asked
    data = raw_request(srv.port, b"GET /stream?n=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b"part0;part1;"
    assert b"connection: keep-alive" not in head.lower()


def test_chunked_response_on_http11(srv):
    with conn(srv) as s:
        s.sendall(b"GET /stream?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hdrs, body, rest = read_response(s)
        h = dict(hdrs)
        assert h["transfer-encoding"].lower() == "chunked" and "content-length" not in h
        assert body == b"part0;part1;part2;"
        # connection still usable
        s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"hello /after"


@pytest.fixture(scope="module")
def raw_srv(module_server_factory):
    # the validator wraps the app's iterable, so the list case needs the bare app
    return module_server_factory("basic:raw", workers=1)


def test_one_element_list_gets_content_length(raw_srv):
    srv = raw_srv
    with conn(srv) as s:
        s.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hdrs, body, _ = read_response(s)
    h = dict(hdrs)
    assert h.get("content-length") == str(len(b"single element body"))
    assert "transfer-encoding" not in h
    assert body == b"single element body"


def test_empty_and_204(srv):
    with conn(srv) as s:
        s.sendall(b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        st, h1, b1, rest = read_response(s)
        assert st == 200 and b1 == b""
        st, h2, b2, rest = read_response(s, rest)
        assert st == 204 and b2 == b""
        assert "transfer-encoding" not in dict(h2)
        st, _, b3, rest = read_response(s, rest)
        assert b3 == b"hello /x"


def test_pipelining_in_order(srv):
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10))
    reqs += b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    reqs += b"GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
    reqs += b"GET /final HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with conn(srv) as s:
        s.sendall(reqs)
        rest = b""
        for i in range(10):
            st, _, body, rest = read_response(s, rest)
            assert (st, body) == (200, b"hello /p%d" % i)
        st, _, body, rest = read_response(s, rest)
        assert body == b"hello"
        st, _, body, rest = read_response(s, rest)
        assert body == b"part0;part1;"
        st, hdrs, body, rest = read_response(s, rest)
        assert body == b"hello /final" and dict(hdrs).get("connection", "").lower() == "close"
        assert rest + recv_all(s) == b""


def test_pipelining_byte_by_byte(srv):
    reqs = b"GET /b1 HTTP/1.1\r\nHost: x\r\n\r\nGET /b2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with conn(srv) as s:
        for i in range(len(reqs)):
            s.send(reqs[i:i + 1])
        data = recv_all(s)
    assert data.count(b"HTTP/1.1 200") == 2
    assert data.index(b"hello /b1") < data.index(b"hello /b2")


def test_connection_close(srv):
    with conn(srv) as s:
        s.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        st, hdrs, body, rest = read_response(s)
        assert dict(hdrs)["connection"].lower() == "close"
        assert rest + recv_all(s) == b""


def test_content_length_body(srv):
    with conn(srv) as s:
        body = bytes(range(256)) * 40
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        st, _, got, _ = read_response(s)
        assert got == body


def test_chunked_request_body(srv):
    with conn(srv) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n1;ext=val\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
                  b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, got, rest = read_response(s)
        assert st == 200 and got == b"hello 0123456789"
        st, _, got, rest = read_response(s, rest)
        assert got == b"hello /next"


def test_unread_body_is_skipped_on_keepalive(srv):
    with conn(srv) as s:
        s.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
                  b"POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                  b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        rest = b""
        for expect in (b"ignored", b"ignored", b"hello /next"):
            st, _, got, rest = read_response(s, rest)
            assert got == expect


def test_expect_100_continue(srv):
    with conn(srv) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(5)
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            assert b, buf
            buf += b
        assert buf.startswith(b"HTTP/1.1 100 Continue\r\n"), buf
        rest = buf.split(b"\r\n\r\n", 1)[1]
        s.sendall(b"data")
        st, _, got, _ = read_response(s, rest)
        assert st == 200 and got == b"data"


def test_expect_100_then_body_held_for_app_that_does_not_read(srv):
    """A sync worker reads the body before the app runs (request buffering),
    so it sends 100 Continue whether the app reads the body or not; the
    connection stays usable for the next request."""
    with conn(srv) as s:
        s.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        rest = read_continue(s)
        s.sendall(b"data" + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, got, rest = read_response(s, rest)
        assert st == 200
        st, _, got, _ = read_response(s, rest)
        assert st == 200 and got == b"hello /next"


def test_head_request(srv):
    with conn(srv) as s:
        s.sendall(b"GET /stream?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        _, gh, _, _ = read_response(s)
        s.sendall(b"HEAD /stream?n=3 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /z HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hh, body, rest = read_response(s, head_only=True)
        assert st == 200
        assert dict(hh).get("content-type") == dict(gh).get("content-type")
        st, hh2, body, rest = read_response(s, rest, head_only=True)
        assert dict(hh2)["content-length"] == str(len(b"hello /hello"))
        # no body bytes were sent: the next response follows immediately
        st, _, body, rest = read_response(s, rest)
        assert body == b"hello /z"


def test_keepalive_timeout_closes_idle(server_factory):
    srv = server_factory("basic:app", "--keep-alive", "1")
    with conn(srv, timeout=10) as s:
        t0 = time.monotonic()
        assert recv_all(s, 10) == b""  # nothing sent: closed by the server
        assert time.monotonic() - t0 < 8
    with conn(srv, timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(s)
        t0 = time.monotonic()
        assert recv_all(s, 10) == b""
        assert time.monotonic() - t0 < 8


def test_idle_and_slow_clients_do_not_block(server_factory):
    srv = server_factory("basic:app", "--keep-alive", "30", workers=1)
    idle = [conn(srv) for _ in range(20)]
    partial = conn(srv)
    partial.sendall(b"GET /partial HTTP/1.1\r\nHo")  # an unfinished head
    used = conn(srv)
    used.sendall(b"GET /used HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(used)[2] == b"hello /used"  # now an idle keep-alive connection
    try:
        t0 = time.monotonic()
        for i in range(5):
            r = requests.get(srv.url("/q%d" % i), timeout=5)
            assert r.text == "hello /q%d" % i
        assert time.monotonic() - t0 < 10
        partial.sendall(b"st: x\r\n\r\n")
        assert read_response(partial)[2] == b"hello /partial"
        used.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(used)[2] == b"hello /again"
    finally:
        for s in idle + [partial, used]:
            s.close()


def test_slowly_sent_body_read_whole(server_factory):
    # the app reads CONTENT_LENGTH bytes with one read(n): it must get them all
    # even though they arrive in several pieces
    srv = server_factory("basic:app", workers=1)
    with conn(srv, timeout=10) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        for i in range(4):
            time.sleep(0.15)
            s.sendall(b"x" * 20)
        time.sleep(0.15)
        s.sendall(b"y" * 17)
        st, _, body, _ = read_response(s, timeout=10)
    assert st == 200 and body == b"abc" + b"x" * 80 + b"y" * 17


def test_http_client(srv):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        c.request("GET", "/hc?a=1")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"hello /hc"
        c.request("POST", "/echo", body=b"abc" * 1000, headers={"Content-Type": "application/x-test"})
        r = c.getresponse()
        assert r.read() == b"abc" * 1000
        c.request("POST", "/echo", body=iter([b"ab", b"cd", b"ef"]), encode_chunked=True)
        r = c.getresponse()
        assert r.read() == b"abcdef"
        c.request("GET", "/stream?n=5")
        r = c.getresponse()
        assert r.getheader("Transfer-Encoding") == "chunked"
        assert r.read() == b"".join(b"part%d;" % i for i in range(5))
    finally:
        c.close()


def test_requests_session(srv):
    with requests.Session() as sess:
        for i in range(3):
            r = sess.get(srv.url("/s%d" % i), timeout=5)
            assert r.status_code == 200 and r.text == "hello /s%d" % i
            assert r.headers["Server"] == "gallop"
        r = sess.post(srv.url("/echo"), data=b"x" * 100000, timeout=10)
        assert r.content == b"x" * 100000
        r = sess.post(srv.url("/echo"), data=(b"chunk%d" % i for i in range(100)), timeout=10)
        assert r.content == b"".join(b"chunk%d" % i for i in range(100))


def test_curl(srv, tmp_path):
    out = subprocess.run(["curl", "-sS", "-m", "10", "-i", srv.url("/curl")], capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"HTTP/1.1 200")
    assert b"hello /curl" in out.stdout
    f = tmp_path / "up.bin"
    f.write_bytes(b"u" * 300000)
    # curl sends Expect: 100-continue for big bodies
    out = subprocess.run(["curl", "-sS", "-m", "10", "--data-binary", "@" + str(f), srv.url("/echo")],
                         capture_output=True, timeout=15)
    assert out.returncode == 0 and out.stdout == b"u" * 300000
    out = subprocess.run(["curl", "-sS", "-m", "10", "-H", "Transfer-Encoding: chunked", "--data-binary",
                          "@" + str(f), srv.url("/echo")], capture_output=True, timeout=15)
    assert out.returncode == 0 and out.stdout == b"u" * 300000
    out = subprocess.run(["curl", "-sS", "-m", "10", "--http1.0", "-I", srv.url("/head")],
                         capture_output=True, timeout=15)
    assert out.returncode == 0 and re.match(rb"HTTP/1\.[01] 200", out.stdout)


def test_many_sequential_connections(srv):
    for i in range(100):
        data = raw_request(srv.port, b"GET /n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(data) == 200 and data.endswith(b"hello /n")


def test_expect_100_continue_chunked(srv):
    with conn(srv) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(5)
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            assert b, buf
            buf += b
        assert buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), buf
        s.sendall(b"3\r\nabc\r\n0\r\n\r\n")
        st, _, got, _ = read_response(s, buf[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
        assert st == 200 and got == b"abc"


def test_expect_100_ignored_on_http10(srv):
    data = raw_request(srv.port, b"POST /echo HTTP/1.0\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nabcd")
    assert b"100 Continue" not in data
    assert status_of(data) == 200 and data.endswith(b"abcd")


def test_large_pipelined_batch(srv):
    n = 300
    reqs = b"GET /batch HTTP/1.1\r\nHost: x\r\n\r\n" * n + b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with conn(srv, timeout=10) as s:
        s.sendall(reqs)
        data = recv_all(s, 10)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == n + 1
    assert data.count(b"hello /batch") == n and data.endswith(b"hello /end")
