"""Request bodies and streamed replies at the connection layer: uploads paced
by slow clients (ASGI and sync WSGI), the body held before a WSGI app runs
(memory, then an unlinked temp file), the head and body timeouts, quiet
streams, and pieces reaching the client before the app's next wait."""
import hashlib
import json
import os
import socket
import threading
import time

import pytest

from asgitools import wait_for
from conftest import read_continue, read_response, recv_all, status_of


def sha(b):
    return hashlib.sha256(b).hexdigest()


def worker_of(srv):
    ws = srv.wait_workers(1)
    return ws[0]


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sockets_of(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def paced_send(s, data, piece, interval):
    """Sends data in pieces of piece bytes, interval seconds apart."""
    for i in range(0, len(data), piece):
        s.sendall(data[i:i + piece])
        if interval:
            time.sleep(interval)


def chunked(data, piece):
    out = []
    for i in range(0, len(data), piece):
        p = data[i:i + piece]
        out.append(b"%x\r\n%s\r\n" % (len(p), p))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def upload_head(path, n=None, extra=b""):
    h = b"POST %s HTTP/1.1\r\nHost: x\r\n" % path.encode()
    h += b"Content-Length: %d\r\n" % n if n is not None else b"Transfer-Encoding: chunked\r\n"
    return h + extra + b"\r\n"


def get(port, path="/", timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        return read_response(s, timeout=timeout)


# ---- ASGI: a Content-Length body that arrives in pieces ----------------------

@pytest.fixture(scope="module")
def fast(module_server_factory, tmp_path_factory):
    d = tmp_path_factory.mktemp("fast")
    events = str(d / "events")
    srv = module_server_factory("bodies_asgi:app", "--body-timeout", "3", workers=1,
                                env={"BODIES_EVENTS": events})
    srv.events = events
    return srv


def test_asgi_paced_upload_arrives_whole(fast):
    """FastAPI await request.body() of 1 MB sent at ~400 KB/s: past the first
    16 KB of head and body the request used to hang for good."""
    body = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", fast.port), timeout=10) as s:
        s.sendall(upload_head("/upload", len(body)))
        paced_send(s, body, 16384, 0.04)
        st, _, got, _ = read_response(s, timeout=10)
    assert st == 200, got
    assert json.loads(got) == {"size": len(body), "sha256": sha(body)}


def test_asgi_paced_chunked_upload(fast):
    body = os.urandom(300000)
    with socket.create_connection(("127.0.0.1", fast.port), timeout=10) as s:
        s.sendall(upload_head("/upload"))
        paced_send(s, chunked(body, 7000), 20000, 0.01)
        st, _, got, _ = read_response(s, timeout=10)
    assert st == 200 and json.loads(got) == {"size": len(body), "sha256": sha(body)}


def test_asgi_abandoned_uploads_disconnect_and_close(fast):
    """Clients that leave mid-upload: the app sees http.disconnect
    (ClientDisconnect) and every socket is closed, none left in CLOSE-WAIT."""
    pid = worker_of(fast)
    assert get(fast.port)[0] == 200
    base = sockets_of(pid)
    open(fast.events, "w").close()
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", fast.port), timeout=5)
        s.sendall(upload_head("/upload", 1 << 20))
        s.sendall(os.urandom(40000))  # past the 16 KB that used to stall
        time.sleep(0.05)
        s.close()
    assert wait_for(lambda: sockets_of(pid) <= base, 5), (sockets_of(pid), base)

    def events():
        with open(fast.events) as f:
            return f.read().split()
    wait_for(lambda: events().count("upload-ClientDisconnect") >= 20, 3)
    ev = events()
    assert ev.count("upload-start") == 20
    assert ev.count("upload-ClientDisconnect") == 20, " ".join(ev)
    assert get(fast.port)[0] == 200


def test_asgi_body_timeout_408(fast):
    """No body byte for --body-timeout (3 s here): 408 and a close."""
    with socket.create_connection(("127.0.0.1", fast.port), timeout=10) as s:
        s.sendall(upload_head("/upload", 100000) + b"x" * 20000)
        t0 = time.monotonic()
        data = recv_all(s, 10)
        took = time.monotonic() - t0
    assert status_of(data) == 408, data[:200]
    assert 2.0 < took < 6.0, took


# ---- sync WSGI: the body is held before the app runs --------------------------

@pytest.fixture(scope="module")
def flask(module_server_factory):
    return module_server_factory("bodies_wsgi:app", "--body-buffer-size", "65536",
                                 "--limit-request-body", "5000000", "--body-timeout", "2",
                                 workers=1)


def slow_upload(port, head, data, piece, interval, result):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(head)
            paced_send(s, data, piece, interval)
            result["resp"] = read_response(s, timeout=20)
    except Exception as e:  # reported by the test
        result["error"] = e


def upload_while_serving(port, head, data, piece, interval, gets=5):
    """Runs a paced upload and, meanwhile, a few GETs on the same server.
    Returns the upload's response and the GETs' latencies."""
    res = {}
    t = threading.Thread(target=slow_upload, args=(port, head, data, piece, interval, res))
    t.start()
    time.sleep(0.4)
    lat = []
    for _ in range(gets):
        t0 = time.monotonic()
        st, _, got, _ = get(port)
        lat.append(time.monotonic() - t0)
        assert st == 200 and got == b"index"
        time.sleep(0.1)
    t.join(20)
    assert "error" not in res, res
    return res["resp"], lat


def test_wsgi_slow_uploader_does_not_hold_worker(flask):
    """One client uploads 300 KB at ~100 KB/s to a one-worker Flask server;
    other clients are served meanwhile, and the upload arrives whole."""
    body = os.urandom(300000)
    (st, _, got, _), lat = upload_while_serving(
        flask.port, upload_head("/upload", len(body)), body, 5000, 0.05)
    assert st == 200 and json.loads(got) == {"size": len(body), "sha256": sha(body)}
    assert max(lat) < 0.5, lat


def test_wsgi_slow_chunked_upload(flask):
    body = os.urandom(200000)
    (st, _, got, _), lat = upload_while_serving(
        flask.port, upload_head("/upload"), chunked(body, 3000), 6000, 0.03, gets=3)
    assert st == 200 and json.loads(got) == {"size": len(body), "sha256": sha(body)}
    assert max(lat) < 0.5, lat


def test_wsgi_body_beyond_buffer_goes_to_unlinked_file(flask):
    """Past --body-buffer-size (64 KB here) the body waits in an unlinked temp
    file: visible among the worker's descriptors while the upload is paused."""
    pid = worker_of(flask)
    body = os.urandom(200000)
    with socket.create_connection(("127.0.0.1", flask.port), timeout=10) as s:
        s.sendall(upload_head("/upload", len(body)) + body[:150000])
        def held():
            links = []
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    pass
            # the scoreboard is a memfd, "/memfd:gallop-scoreboard (deleted)"
            return [x for x in links if ("(deleted)" in x and not x.startswith("/memfd:")) or x.startswith("/tmp/#")]
        assert wait_for(lambda: held(), 3), os.listdir(f"/proc/{pid}/fd")
        s.sendall(body[150000:])
        st, _, got, _ = read_response(s, timeout=10)
    assert st == 200 and json.loads(got) == {"size": len(body), "sha256": sha(body)}
    assert wait_for(lambda: not held(), 3)


def test_wsgi_limit_request_body_413_at_once(flask):
    """A Content-Length past --limit-request-body: 413 before any body byte."""
    with socket.create_connection(("127.0.0.1", flask.port), timeout=5) as s:
        s.sendall(upload_head("/upload", 6000000, b"Expect: 100-continue\r\n"))
        data = recv_all(s, 5)
    assert status_of(data) == 413 and b"100 Continue" not in data


def test_wsgi_limit_request_body_413_chunked(flask):
    body = chunked(b"z" * 6000000, 60000)
    with socket.create_connection(("127.0.0.1", flask.port), timeout=10) as s:
        s.sendall(upload_head("/upload"))
        try:
            s.sendall(body)
        except OSError:
            pass  # the server may close once it answered
        data = recv_all(s, 10)
    assert status_of(data) == 413


def test_wsgi_expect_continue_then_body(flask):
    """100 Continue goes out before the core reads the body for the app."""
    with socket.create_connection(("127.0.0.1", flask.port), timeout=5) as s:
        s.sendall(upload_head("/upload", 5, b"Expect: 100-continue\r\n"))
        rest = read_continue(s)
        s.sendall(b"hello")
        st, _, got, _ = read_response(s, rest)
    assert st == 200 and json.loads(got)["size"] == 5


def test_wsgi_body_timeout_408(flask):
    """No body byte for --body-timeout (2 s here): 408 and a close, and the
    worker serves others meanwhile."""
    with socket.create_connection(("127.0.0.1", flask.port), timeout=10) as s:
        s.sendall(upload_head("/upload", 1000) + b"x" * 10)
        t0 = time.monotonic()
        assert get(flask.port)[0] == 200
        data = recv_all(s, 10)
        took = time.monotonic() - t0
    assert status_of(data) == 408, data[:200]
    assert 1.5 < took < 5.0, took


def test_threads_body_timeout_408(server_factory):
    """With --threads the app thread reads the body from the socket; a body
    that stops still ends in 408 after --body-timeout, not a fixed minute."""
    srv = server_factory("bodies_wsgi:hasher", "--threads", "2", "--body-timeout", "1", workers=1)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(upload_head("/", 1000) + b"x" * 10)
        t0 = time.monotonic()
        data = recv_all(s, 10)
        took = time.monotonic() - t0
    assert status_of(data) == 408, data[:200]
    assert took < 4.0, took


@pytest.fixture(scope="module")
def hasher(module_server_factory):
    return module_server_factory("bodies_wsgi:hasher", workers=1)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_wsgi_200mb_upload_flat_memory(hasher, framing):
    """200 MB uploads arrive whole while the worker's memory stays flat (the
    body beyond 1 MB waits on disk)."""
    pid = worker_of(hasher)
    with open(f"/proc/{pid}/status") as f:
        before = next(int(x.split()[1]) for x in f if x.startswith("VmRSS"))
    total = 200 << 20
    piece = os.urandom(1 << 20)
    h = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", hasher.port), timeout=30) as s:
        s.sendall(upload_head("/", total if framing == "length" else None))
        for _ in range(total // len(piece)):
            s.sendall(piece if framing == "length" else b"%x\r\n%s\r\n" % (len(piece), piece))
            h.update(piece)
        if framing == "chunked":
            s.sendall(b"0\r\n\r\n")
        st, _, got, _ = read_response(s, timeout=60)
    assert st == 200 and got == b"%d %s" % (total, h.hexdigest().encode())
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(x.split()[1]) for x in f if x.startswith("VmHWM"))
    assert hwm - before < 40 * 1024, (before, hwm)


# ---- the head timeout ------------------------------------------------------------

def test_header_timeout_408(server_factory):
    """A head dripped byte by byte past --header-timeout (1 s): 408 and a close,
    though each byte came well within the keep-alive time."""
    srv = server_factory("bodies_wsgi:app", "--header-timeout", "1", workers=1)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        t0 = time.monotonic()
        s.setblocking(False)
        data = b""
        for ch in head:
            try:
                s.send(bytes([ch]))
                data += s.recv(4096)
                break  # the server answered
            except BlockingIOError:
                pass
            time.sleep(0.05)
        took = time.monotonic() - t0
        s.setblocking(True)
        data += recv_all(s, 5)
    assert status_of(data) == 408, data[:200]
    assert took < 3.5, took


# ---- streamed replies ------------------------------------------------------------

def first_piece_gap(port, path):
    """Seconds between the first and the second piece of a streamed reply, as
    the client sees them."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        buf = b""
        t_first = t_second = None
        t0 = time.monotonic()
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
            if t_first is None and b"first" in buf:
                t_first = time.monotonic()
            if t_second is None and b"second" in buf:
                t_second = time.monotonic()
    assert t_first is not None and t_second is not None, buf
    assert buf.startswith(b"HTTP/1.1 200"), buf
    return t_first - t0, t_second - t_first


def test_wsgi_generator_pieces_arrive_before_the_sleep(flask):
    first, gap = first_piece_gap(flask.port, "/stream")
    assert first < 0.5 and gap > 0.7, (first, gap)


def test_asgi_more_body_arrives_before_the_await(fast):
    first, gap = first_piece_gap(fast.port, "/stream")
    assert first < 0.5 and gap > 0.7, (first, gap)


def test_wsgi_write_callable_pieces_arrive_before_the_sleep(hasher):
    first, gap = first_piece_gap(hasher.port, "/write")
    assert first < 0.5 and gap > 0.7, (first, gap)


def test_wsgi_generator_with_threads(server_factory):
    srv = server_factory("bodies_wsgi:app", "--threads", "2", workers=1)
    first, gap = first_piece_gap(srv.port, "/stream")
    assert first < 0.5 and gap > 0.7, (first, gap)


# ---- quiet streams and the send timeout --------------------------------------------

@pytest.fixture(scope="module")
def quiet(module_server_factory):
    return module_server_factory("bodies_asgi:quiet", "--send-timeout", "1", workers=1,
                                 env={"QUIET_S": "3.5"})


def test_quiet_stream_is_not_cut(quiet):
    """An SSE feed silent for 3.5 s, with --send-timeout 1: both events arrive
    and the stream ends properly (the send timeout used to run on after the
    last write and cut the quiet stream)."""
    with socket.create_connection(("127.0.0.1", quiet.port), timeout=10) as s:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hdrs, body, _ = read_response(s, timeout=10)
    assert st == 200
    assert body == b"data: one\n\ndata: two\n\n"


def test_send_timeout_cuts_a_client_that_reads_nothing(quiet):
    """The send timeout still applies while bytes wait for the client: one that
    stops reading a 128 MB stream for 3 s finds it cut short."""
    s = socket.create_connection(("127.0.0.1", quiet.port), timeout=10)
    try:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(3)
        total = 0
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                total += len(b)
        except ConnectionResetError:
            pass
    finally:
        s.close()
    assert total < 2000 * 65536 // 2, total
