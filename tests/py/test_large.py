"""Large bodies: a 200 MB upload streamed through wsgi.input and a 50 MB
response to a slow reader, with the worker's memory bounded."""
import http.client
import json
import socket
import threading
import time
import zlib

import pytest
import requests

from conftest import proc_status, read_response

UPLOAD = 200 << 20
PIECE = 1 << 20
MAX_GROWTH_KB = 60 << 10  # 60 MB


def gen_body(total=UPLOAD, piece=PIECE):
    """Yields total bytes in pieces (never holds more than one piece); returns crc via the list."""
    base = bytes(range(256)) * (piece // 256)
    sent = 0
    i = 0
    while sent < total:
        k = min(piece, total - sent)
        chunk = base[:k] if i % 2 == 0 else base[::-1][:k]
        yield chunk
        sent += k
        i += 1


def expected_crc(total=UPLOAD, piece=PIECE):
    crc = 0
    for c in gen_body(total, piece):
        crc = zlib.crc32(c, crc)
    return crc


class Sampler(threading.Thread):
    """Samples a pid's VmRSS / VmHWM every 50 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                st = proc_status(self.pid)
                self.peak = max(self.peak, st["VmRSS"], st["VmHWM"])
            except OSError:
                return
            time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join(5)
        st = proc_status(self.pid)
        self.peak = max(self.peak, st["VmRSS"], st["VmHWM"])
        return self.peak


@pytest.fixture
def srv(server_factory):
    # a fresh worker per test, so VmHWM growth belongs to this test alone
    s = server_factory("basic:app", workers=1)
    s.wait_workers(1)
    return s


@pytest.fixture(scope="module")
def crc200():
    return expected_crc()


def worker_baseline(srv):
    (w,) = srv.wait_workers(1)
    # warm up: one small upload and one response so buffers and imports exist
    requests.post(srv.url("/upload"), data=b"x" * 100000, timeout=10)
    requests.get(srv.url("/big?mb=1"), timeout=10)
    return w, proc_status(w)["VmHWM"]


def test_upload_200mb_content_length(srv, crc200):
    w, base = worker_baseline(srv)
    sampler = Sampler(w)
    sampler.start()
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        c.request("POST", "/upload", body=gen_body(), headers={"Content-Length": str(UPLOAD),
                                                               "Content-Type": "application/octet-stream"})
        r = c.getresponse()
        out = json.loads(r.read())
    finally:
        c.close()
    peak = sampler.stop()
    assert out == {"len": UPLOAD, "crc": crc200}
    assert peak - base < MAX_GROWTH_KB, (base, peak)


def test_upload_200mb_chunked(srv, crc200):
    w, base = worker_baseline(srv)
    sampler = Sampler(w)
    sampler.start()
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        c.request("POST", "/upload", body=gen_body(), encode_chunked=True,
                  headers={"Transfer-Encoding": "chunked"})
        r = c.getresponse()
        out = json.loads(r.read())
    finally:
        c.close()
    peak = sampler.stop()
    assert out == {"len": UPLOAD, "crc": crc200}
    assert peak - base < MAX_GROWTH_KB, (base, peak)


def test_slow_reader_does_not_block_others(srv):
    w, base = worker_baseline(srv)
    size = 50 << 20
    sampler = Sampler(w)
    sampler.start()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    s.sendall(b"GET /big?mb=50 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    crc = 0
    got = b""
    # slow phase: small reads with sleeps, while others are served by the same worker
    quick = []
    for i in range(10):
        got += s.recv(4096)
        time.sleep(0.1)
        t0 = time.monotonic()
        r = requests.get(srv.url("/quick%d" % i), timeout=10)
        quick.append(time.monotonic() - t0)
        assert r.text == "hello /quick%d" % i
    assert max(quick) < 5, quick
    # fast phase: read the rest
    head, _, body_start = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    raw = bytearray(body_start)
    s.settimeout(60)
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        raw += b
        assert len(raw) < size + (4 << 20)
    s.close()
    # decode chunked
    body = bytearray()
    pos = 0
    while True:
        eol = raw.index(b"\r\n", pos)
        n = int(bytes(raw[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if n == 0:
            break
        body += raw[pos:pos + n]
        pos += n + 2
    assert len(body) == size
    piece = 64 << 10
    for i in range(0, size, piece * 97):  # spot checks of the pattern
        assert body[i] == (i // piece) % 251
    assert body[-1] == ((size - 1) // piece) % 251
    peak = sampler.stop()
    assert peak - base < MAX_GROWTH_KB, (base, peak)
