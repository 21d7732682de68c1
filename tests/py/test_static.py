"""--static URL_PREFIX=DIR: files served from C before the app (core/static.c).

Real binary, real clients (raw sockets, http.client, curl): headers and types,
HEAD, conditional requests (304), ranges (206, 416, several ranges -> 200),
precompressed .br/.gz siblings, 404/405, traversal attempts and symlinks out
of DIR, keep-alive and pipelining across static and app responses, a 50 MB
file to a slow reader while others are served, no descriptor leak, --threads
and ASGI workers, and Django's admin and Flask's static folder mounted."""
import gzip
import hashlib
import http.client
import os
import socket
import subprocess
import time
import zlib

import pytest

from conftest import APPS, PYTHON, read_response, recv_all, run_gallop

BIG = 50 << 20


def make_tree(root):
    """root/site (mounted) and root/secret.txt beside it, which must never leak."""
    site = root / "site"
    (site / "css").mkdir(parents=True)
    (site / "js").mkdir()
    (site / "sub").mkdir()
    (root / "secret.txt").write_text("TOP-SECRET\n")
    (site / "css" / "base.css").write_text("body { color: red; }\n" * 20)
    (site / "js" / "app.js").write_text("console.log('hi');\n")
    (site / "index.html").write_text("<!doctype html><p>hi</p>\n")
    (site / "10k.bin").write_bytes(bytes(range(256)) * 40)
    (site / "empty.txt").write_bytes(b"")
    (site / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (site / "noext").write_bytes(b"raw")
    (site / "sub" / "inner.txt").write_text("inner\n")
    # precompressed siblings: app.js has both, base.css only .gz
    js = (site / "js" / "app.js").read_bytes()
    (site / "js" / "app.js.gz").write_bytes(gzip.compress(js))
    (site / "js" / "app.js.br").write_bytes(b"BROTLI-STAND-IN")
    (site / "css" / "base.css.gz").write_bytes(gzip.compress((site / "css" / "base.css").read_bytes()))
    # symlinks: out of DIR (relative, absolute, through a directory) and inside it
    os.symlink("../secret.txt", site / "out.txt")
    os.symlink(str(root / "secret.txt"), site / "abs.txt")
    os.symlink("/etc", site / "etc")
    os.symlink("..", site / "up")
    os.symlink("sub/inner.txt", site / "in.txt")
    os.symlink("sub", site / "sublink")
    os.mkfifo(site / "fifo")
    return site


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    site = make_tree(root)
    big = site / "big.bin"
    with open(big, "wb") as f:
        block = hashlib.sha256(b"gallop").digest() * (1 << 15)  # 1 MiB
        for _ in range(BIG >> 20):
            f.write(block)
    return site


@pytest.fixture(scope="module")
def srv(module_server_factory, tree):
    return module_server_factory("basic:raw", "--static", f"/static={tree}", "--static-max-age", "3600",
                                 "--static", f"/files/deep={tree / 'sub'}")


def get(srv, path, headers=(), method="GET"):
    """One request on a fresh connection: (status, headers dict, body)."""
    hs = "".join(f"{k}: {v}\r\n" for k, v in headers)
    req = f"{method} {path} HTTP/1.1\r\nHost: t\r\n{hs}\r\n".encode("latin-1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(req)
        st, h, body, rest = read_response(s, head_only=method == "HEAD")
        assert rest == b""
    return st, dict(h), body


# ---- what a 200 carries ---------------------------------------------------------


def test_get_file_headers(srv, tree):
    f = tree / "css" / "base.css"
    st, h, body = get(srv, "/static/css/base.css")
    assert st == 200
    assert body == f.read_bytes()
    assert h["content-type"] == "text/css; charset=utf-8"
    assert h["content-length"] == str(f.stat().st_size)
    mtime = int(f.stat().st_mtime)
    assert h["etag"] == f'"{mtime:x}-{f.stat().st_size:x}"'
    assert h["last-modified"] == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime))
    assert h["accept-ranges"] == "bytes"
    assert h["cache-control"] == "max-age=3600"
    assert "content-encoding" not in h and "vary" not in h
    assert h["server"] == "gallop" and "date" in h


@pytest.mark.parametrize("path,ctype", [
    ("/static/js/app.js", "text/javascript; charset=utf-8"),
    ("/static/index.html", "text/html; charset=utf-8"),
    ("/static/logo.png", "image/png"),
    ("/static/10k.bin", "application/octet-stream"),
    ("/static/noext", "application/octet-stream"),
    ("/static/empty.txt", "text/plain; charset=utf-8"),
])
def test_content_types(srv, tree, path, ctype):
    st, h, body = get(srv, path)
    assert st == 200
    assert h["content-type"] == ctype
    assert body == (tree / path[len("/static/"):]).read_bytes()


def test_query_string_ignored_and_encoded_names(srv, tree):
    (tree / "with space.txt").write_text("spaced\n")
    st, _, body = get(srv, "/static/css/base.css?v=123")
    assert st == 200 and body == (tree / "css" / "base.css").read_bytes()
    st, _, body = get(srv, "/static/with%20space.txt")
    assert st == 200 and body == b"spaced\n"
    st, _, body = get(srv, "/st%61tic/js/app.js")  # the prefix matches once decoded
    assert st == 200 and body == (tree / "js" / "app.js").read_bytes()


def test_no_cache_control_by_default(server_factory, tree):
    s = server_factory("basic:raw", "--static", f"/static={tree}")
    st, h, _ = get(s, "/static/css/base.css")
    assert st == 200 and "cache-control" not in h


def test_head_then_keepalive(srv, tree):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"HEAD /static/10k.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        st, h, body, rest = read_response(s, head_only=True)
        assert st == 200 and body == b"" and rest == b""
        assert dict(h)["content-length"] == "10240"
        # nothing of the body follows: the next response on the socket is the next request's
        s.sendall(b"GET /static/js/app.js HTTP/1.1\r\nHost: t\r\n\r\n")
        st, h, body, rest = read_response(s)
        assert st == 200 and body == (tree / "js" / "app.js").read_bytes() and rest == b""


# ---- conditional requests ------------------------------------------------------


def test_if_none_match_304(srv):
    _, h, _ = get(srv, "/static/css/base.css")
    etag = h["etag"]
    st, h2, body = get(srv, "/static/css/base.css", [("If-None-Match", etag)])
    assert st == 304 and body == b""
    assert h2["etag"] == etag and h2["last-modified"] == h["last-modified"]
    assert h2["cache-control"] == "max-age=3600"
    assert "content-length" not in h2 and "content-type" not in h2
    st, _, _ = get(srv, "/static/css/base.css", [("If-None-Match", f'"other", W/{etag}')])
    assert st == 304
    st, _, _ = get(srv, "/static/css/base.css", [("If-None-Match", "*")])
    assert st == 304
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    st, _, body = get(srv, "/static/css/base.css",
                      [("If-None-Match", '"other"'), ("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")])
    assert st == 200 and body


def test_if_modified_since(srv, tree):
    _, h, _ = get(srv, "/static/js/app.js")
    lm = h["last-modified"]
    st, _, body = get(srv, "/static/js/app.js", [("If-Modified-Since", lm)])
    assert st == 304 and body == b""
    st, _, body = get(srv, "/static/js/app.js", [("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")])
    assert st == 200 and body == (tree / "js" / "app.js").read_bytes()
    st, _, _ = get(srv, "/static/js/app.js", [("If-Modified-Since", "not a date")])
    assert st == 200
    # a file changed after the client's copy: 200 with the new validators
    f = tree / "sub" / "inner.txt"
    old = get(srv, "/files/deep/inner.txt")[1]
    os.utime(f, (time.time() + 5, time.time() + 5))
    st, h2, _ = get(srv, "/files/deep/inner.txt", [("If-Modified-Since", old["last-modified"]),
                                                   ])
    assert st == 200 and h2["etag"] != old["etag"]
    st, _, _ = get(srv, "/files/deep/inner.txt", [("If-None-Match", old["etag"])])
    assert st == 200


# ---- ranges ---------------------------------------------------------------------


def test_single_ranges(srv, tree):
    data = (tree / "10k.bin").read_bytes()
    for spec, lo, hi in (("0-99", 0, 99), ("10000-", 10000, 10239), ("-40", 10200, 10239),
                         ("5000-999999", 5000, 10239)):
        st, h, body = get(srv, "/static/10k.bin", [("Range", f"bytes={spec}")])
        assert st == 206, spec
        assert h["content-range"] == f"bytes {lo}-{hi}/10240"
        assert h["content-length"] == str(hi - lo + 1)
        assert body == data[lo:hi + 1]


def test_range_unsatisfiable_416(srv):
    for spec in ("bytes=10240-", "bytes=20000-30000", "bytes=-0"):
        st, h, body = get(srv, "/static/10k.bin", [("Range", spec)])
        assert st == 416, spec
        assert h["content-range"] == "bytes */10240"
        assert body == b"Range Not Satisfiable\n"
    st, h, _ = get(srv, "/static/empty.txt", [("Range", "bytes=0-")])
    assert st == 416 and h["content-range"] == "bytes */0"


def test_multi_and_bad_ranges_get_the_whole_file(srv, tree):
    data = (tree / "10k.bin").read_bytes()
    for spec in ("bytes=0-1,5-6", "bytes=9-3", "lines=1-2", "bytes=abc"):
        st, h, body = get(srv, "/static/10k.bin", [("Range", spec)])
        assert st == 200 and body == data and "content-range" not in h, spec


def test_if_range(srv, tree):
    data = (tree / "10k.bin").read_bytes()
    _, h, _ = get(srv, "/static/10k.bin")
    st, _, body = get(srv, "/static/10k.bin", [("Range", "bytes=0-9"), ("If-Range", h["etag"])])
    assert st == 206 and body == data[:10]
    st, _, body = get(srv, "/static/10k.bin", [("Range", "bytes=0-9"), ("If-Range", h["last-modified"])])
    assert st == 206 and body == data[:10]
    st, _, body = get(srv, "/static/10k.bin", [("Range", "bytes=0-9"), ("If-Range", '"stale"')])
    assert st == 200 and body == data
    # HEAD ignores Range (RFC 9110 14.2: only GET)
    st, h, _ = get(srv, "/static/10k.bin", [("Range", "bytes=0-9")], method="HEAD")
    assert st == 200 and h["content-length"] == "10240"


def test_range_with_curl(srv, tree):
    out = subprocess.run(["curl", "-s", "-r", "100-199", srv.url("/static/10k.bin")], capture_output=True,
                         timeout=10).stdout
    assert out == (tree / "10k.bin").read_bytes()[100:200]


# ---- precompressed siblings -------------------------------------------------------


def test_precompressed_siblings(srv, tree):
    js = tree / "js" / "app.js"
    st, h, body = get(srv, "/static/js/app.js", [("Accept-Encoding", "gzip, deflate, br")])
    assert st == 200 and body == b"BROTLI-STAND-IN"
    assert h["content-encoding"] == "br" and h["vary"] == "Accept-Encoding"
    assert h["content-type"] == "text/javascript; charset=utf-8"
    assert h["content-length"] == str(len(body))
    st, h, body = get(srv, "/static/js/app.js", [("Accept-Encoding", "gzip")])
    assert st == 200 and h["content-encoding"] == "gzip" and h["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == js.read_bytes()
    st, h, body = get(srv, "/static/js/app.js", [("Accept-Encoding", "br;q=0, gzip;q=0.5")])
    assert h["content-encoding"] == "gzip"
    st, h, body = get(srv, "/static/js/app.js", [("Accept-Encoding", "identity")])
    assert st == 200 and body == js.read_bytes() and "content-encoding" not in h
    st, h, body = get(srv, "/static/js/app.js")
    assert body == js.read_bytes() and "content-encoding" not in h
    # only a .gz: a br-only client gets the file itself
    st, h, body = get(srv, "/static/css/base.css", [("Accept-Encoding", "br")])
    assert "content-encoding" not in h and body == (tree / "css" / "base.css").read_bytes()
    # each representation has its own validator
    e1 = get(srv, "/static/js/app.js", [("Accept-Encoding", "gzip")])[1]["etag"]
    e2 = get(srv, "/static/js/app.js")[1]["etag"]
    assert e1 != e2
    st, _, _ = get(srv, "/static/js/app.js", [("Accept-Encoding", "gzip"), ("If-None-Match", e1)])
    assert st == 304


def test_precompressed_with_http_client_decoding(srv, tree):
    """curl --compressed asks for gzip/br and decodes: the bytes are the file's."""
    out = subprocess.run(["curl", "-s", "-H", "Accept-Encoding: gzip", "--compressed",
                          srv.url("/static/css/base.css")], capture_output=True, timeout=10).stdout
    assert out == (tree / "css" / "base.css").read_bytes()


# ---- what is not served -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/static/nope.css", "/static/css", "/static/css/", "/static",
                                  "/static/", "/static/fifo", "/static/css/base.css/x",
                                  "/static/sublink"])
def test_missing_and_directories_404(srv, path):
    st, h, body = get(srv, path)
    assert st == 404, path
    assert body == b"Not Found\n"


@pytest.mark.parametrize("path", [
    "/static/../secret.txt", "/static/css/../../secret.txt", "/static/%2e%2e/secret.txt",
    "/static/%2E%2E%2Fsecret.txt", "/static/css%2f..%2f..%2fsecret.txt", "/static/.%2e/secret.txt",
    "/static/./css/base.css", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
    "/static/css/base.css%00", "/static/%00", "/static/out.txt", "/static/abs.txt",
    "/static/etc/passwd", "/static/up/secret.txt", "/static/sublink/../../secret.txt",
    "/static/css\\..\\..\\secret.txt",
])
def test_escapes_refused(srv, path):
    st, _, body = get(srv, path)
    assert st in (403, 404), path
    assert b"TOP-SECRET" not in body and b"root:" not in body


def test_symlink_inside_is_followed(srv):
    st, _, body = get(srv, "/static/in.txt")
    assert st == 200 and body == b"inner\n"
    st, _, body = get(srv, "/static/sublink/inner.txt")
    assert st == 200 and body == b"inner\n"


def test_unreadable_file_403(server_factory):
    """A file the worker may not read is 403 (workers run as nobody here, the
    file is root's and 0600); one it may read beside it is served."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="gallop-static-")
    try:
        os.chmod(d, 0o755)
        with open(os.path.join(d, "locked.txt"), "w") as f:
            f.write("locked")
        os.chmod(os.path.join(d, "locked.txt"), 0o600)
        with open(os.path.join(d, "open.txt"), "w") as f:
            f.write("open")
        os.chmod(os.path.join(d, "open.txt"), 0o644)
        args = ["--static", f"/static={d}"] + (["--user", "nobody"] if os.geteuid() == 0 else [])
        s = server_factory("basic:raw", *args)
        st, _, body = get(s, "/static/locked.txt")
        assert st == 403 and b"locked" not in body
        st, _, body = get(s, "/static/open.txt")
        assert st == 200 and body == b"open"
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_405(srv, method):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(f"{method} /static/css/base.css HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                  "GET /static/noext HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        st, h, body, rest = read_response(s)
        assert st == 405 and dict(h)["allow"] == "GET, HEAD"
        # the body was consumed and the connection kept: the pipelined GET is answered
        st, _, body, _ = read_response(s, rest)
        assert st == 200 and body == b"raw"


def test_other_paths_go_to_the_app(srv):
    # whole segments only: a name that merely starts with the prefix is the app's
    for path in ("/staticx/a", "/stat", "/files/deeper", "/files/x", "/files"):
        st, _, body = get(srv, path)
        assert st == 200 and body == b"hello " + path.encode(), path
    st, _, body = get(srv, "/files/deep/inner.txt")  # the longer mount
    assert st == 200 and body == b"inner\n"


# ---- connections --------------------------------------------------------------------


def test_pipelined_static_and_app(srv, tree):
    reqs = (b"GET /static/10k.bin HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /env HTTP/1.1\r\nHost: t\r\n\r\n"
            b"HEAD /static/js/app.js HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /static/missing HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /static/css/base.css HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\n"
            b"GET /static/js/app.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(reqs)
        st, _, body, rest = read_response(s)
        assert st == 200 and body == (tree / "10k.bin").read_bytes()
        st, _, body, rest = read_response(s, rest)
        assert st == 200 and b"PATH_INFO" in body
        st, _, body, rest = read_response(s, rest, head_only=True)
        assert st == 200 and body == b""
        st, _, body, rest = read_response(s, rest)
        assert st == 404
        st, _, body, rest = read_response(s, rest)
        assert st == 206 and body == b"body"
        st, h, body, rest = read_response(s, rest)
        assert st == 200 and dict(h)["connection"] == "close" and body == (tree / "js" / "app.js").read_bytes()
        assert rest == b"" and recv_all(s, 5) == b""


def test_keepalive_many_with_http_client(srv, tree):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    data = (tree / "10k.bin").read_bytes()
    for i in range(50):
        c.request("GET", "/static/10k.bin" if i % 2 else "/env")
        r = c.getresponse()
        body = r.read()
        assert r.status == 200
        if i % 2:
            assert body == data
    c.close()


def test_http10_static(srv, tree):
    out = subprocess.run(["curl", "-s", "-0", "-i", srv.url("/static/js/app.js")], capture_output=True,
                         timeout=10).stdout
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith((tree / "js" / "app.js").read_bytes())


def worker_of(srv):
    ws = srv.workers()
    assert len(ws) == 1
    return ws[0]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_big_file_to_slow_reader_does_not_block_others(srv, tree):
    """A 50 MB file to a client that stops reading: the worker's loop goes on
    serving the others at once and does not spin; the slow client then gets
    every byte."""
    want = hashlib.sha256((tree / "big.bin").read_bytes()).hexdigest()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    slow.connect(("127.0.0.1", srv.port))
    slow.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    head = slow.recv(4096)
    assert head.startswith(b"HTTP/1.1 200 OK")
    w = worker_of(srv)
    cpu0 = cpu_seconds(w)
    t0 = time.monotonic()
    for _ in range(20):
        st, _, body = get(srv, "/static/10k.bin")
        assert st == 200 and len(body) == 10240
        st, _, body = get(srv, "/env")
        assert st == 200
    fast = time.monotonic() - t0
    time.sleep(1.5)
    spent = cpu_seconds(w) - cpu0
    assert fast < 3.0, fast  # 40 requests on loopback while the big one waits
    assert spent < 1.0, spent  # no busy loop over the stalled socket
    # now read it all
    slow.settimeout(10)
    buf = head
    while b"\r\n\r\n" not in buf:
        buf += slow.recv(65536)
    h, _, body = buf.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % BIG in h
    hasher = hashlib.sha256(body)
    n = len(body)
    while n < BIG:
        b = slow.recv(1 << 20)
        assert b, n
        hasher.update(b)
        n += len(b)
    assert n == BIG and hasher.hexdigest() == want
    slow.close()


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid):
    """The worker's descriptor count once it held still for half a second."""
    n, since = fd_count(pid), time.monotonic()
    while time.monotonic() - since < 0.5:
        time.sleep(0.05)
        m = fd_count(pid)
        if m != n:
            n, since = m, time.monotonic()
    return n


def test_no_fd_leak(srv, tree):
    w = worker_of(srv)
    get(srv, "/static/10k.bin")
    base = settled_fds(w)
    heads = [[], [("If-None-Match", "*")], [("Range", "bytes=0-9")], [("Range", "bytes=99999-")],
             [("Accept-Encoding", "gzip")]]
    for i in range(40):
        for hs in heads:
            get(srv, "/static/10k.bin", hs)
        get(srv, "/static/missing")
        get(srv, "/static/out.txt")
        get(srv, "/static/10k.bin", method="HEAD")
        get(srv, "/static/css/base.css", method="POST")
    # aborted downloads: a reset mid-file, a close after the head
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        s.recv(1000)
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()
    deadline = time.monotonic() + 10
    while fd_count(w) != base and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fd_count(w) == base, os.listdir(f"/proc/{w}/fd")


def test_send_timeout_closes_stalled_download(server_factory, tree):
    s = server_factory("basic:raw", "--static", f"/static={tree}", "--send-timeout", "1")
    w = worker_of(s)
    base = settled_fds(w)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.connect(("127.0.0.1", s.port))
    c.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    time.sleep(3)
    deadline = time.monotonic() + 5
    while fd_count(w) > base and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fd_count(w) == base  # the connection and the file are both closed
    c.close()


# ---- other worker kinds -----------------------------------------------------------


def test_with_threads(server_factory, tree):
    s = server_factory("threads_app:app", "--threads", "4", "--static", f"/static={tree}")
    st, h, body = get(s, "/static/css/base.css")
    assert st == 200 and body == (tree / "css" / "base.css").read_bytes()
    st, _, _ = get(s, "/static/10k.bin", [("Range", "bytes=0-0")])
    assert st == 206


def test_with_asgi(server_factory, tree):
    s = server_factory("asgi_raw:app", "--static", f"/static={tree}")
    st, h, body = get(s, "/static/js/app.js")
    assert st == 200 and body == (tree / "js" / "app.js").read_bytes()
    st, h, body = get(s, "/static/nope")
    assert st == 404


def test_static_outside_limit_concurrency(server_factory, tree):
    """A file needs no app slot: with --limit-concurrency 1 taken by a slow
    request, the app's next request gets 503 but a static file is served."""
    import threading
    s = server_factory("asgi_raw:app", "--limit-concurrency", "1", "--static", f"/static={tree}")
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("slow", get(s, "/slow?t=1.5")[0]))
    t.start()
    time.sleep(0.5)
    try:
        assert get(s, "/slow?t=0")[0] == 503
        st, _, body = get(s, "/static/10k.bin")
        assert st == 200 and len(body) == 10240
    finally:
        t.join(10)
    assert res["slow"] == 200


def test_access_log_has_static_lines(server_factory, tree, tmp_path):
    log = tmp_path / "access.log"
    s = server_factory("basic:raw", "--static", f"/static={tree}", "--access-log", str(log))
    get(s, "/static/10k.bin")
    get(s, "/static/missing")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and log.read_text().count("/static/") < 2:
        time.sleep(0.05)
    text = log.read_text()
    assert '"GET /static/10k.bin HTTP/1.1" 200 10240' in text
    assert '"GET /static/missing HTTP/1.1" 404 10' in text


# ---- command line ---------------------------------------------------------------------


@pytest.mark.parametrize("arg,msg", [
    ("static", "use URL_PREFIX=DIR"),
    ("/static", "use URL_PREFIX=DIR"),
    ("static=/tmp", "use URL_PREFIX=DIR"),
    ("/static=", "use URL_PREFIX=DIR"),
    ("/static=/nonexistent/dir", "No such file or directory"),
    ("/static=/etc/hostname", "not a directory"),
    ("/st?x=/tmp", "plain path"),
])
def test_bad_static_flag(arg, msg):
    r = run_gallop(["--static", arg, "basic:app"])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gallop: error:") and msg in lines[0], r.stderr


def test_bad_static_flags_more(tmp_path):
    r = run_gallop(["--static", f"/a={tmp_path}", "--static", f"/a/={tmp_path}", "basic:app"])
    assert r.returncode == 2 and "mounted already" in r.stderr
    r = run_gallop(["--static-max-age", "-5", "basic:app"])
    assert r.returncode == 2 and "--static-max-age" in r.stderr
    r = run_gallop(["--static-max-age", "soon", "basic:app"])
    assert r.returncode == 2 and "--static-max-age" in r.stderr


def test_uwsgi_static_map_spelling(server_factory, tree):
    s = server_factory("basic:raw", "--static-map", f"/media={tree}")
    st, _, body = get(s, "/media/noext")
    assert st == 200 and body == b"raw"


def test_relative_dir_and_config_file(server_factory, tree, tmp_path):
    conf = tmp_path / "gallop.conf"
    conf.write_text(f"static = /assets={os.path.relpath(tree, tmp_path)}\nstatic_max_age = 60\n")
    s = server_factory("basic:raw", "-c", str(conf), cwd=str(tmp_path))
    st, h, body = get(s, "/assets/js/app.js")
    assert st == 200 and h["cache-control"] == "max-age=60"


def test_hup_rereads_static_settings(server_factory, tree, tmp_path):
    import signal
    conf = tmp_path / "gallop.conf"
    conf.write_text(f"static = /assets={tree}\nstatic_max_age = 60\n")
    s = server_factory("basic:raw", "-c", str(conf))
    old = s.workers()
    assert get(s, "/assets/noext")[1]["cache-control"] == "max-age=60"
    conf.write_text(f"static = /files={tree / 'sub'}\nstatic_max_age = 120\n")
    s.signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (set(s.workers()) & set(old) or not s.workers()):
        time.sleep(0.1)
    st, h, body = get(s, "/files/inner.txt")
    assert st == 200 and body == b"inner\n" and h["cache-control"] == "max-age=120"
    st, _, body = get(s, "/assets/noext")  # unmounted: the app's now
    assert st == 200 and body == b"hello /assets/noext"


# ---- frameworks ------------------------------------------------------------------------


def test_django_admin_static(server_factory, tmp_path):
    import django
    root = tmp_path / "collected"
    env = dict(os.environ, GALLOP_STATIC_ROOT=str(root), DJANGO_SETTINGS_MODULE="djstatic_settings",
               PYTHONPATH=f"{APPS}:{os.path.join(APPS, 'djproj')}")
    r = subprocess.run([PYTHON, "-m", "django", "collectstatic", "--noinput", "-v0"], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = server_factory("djproj.wsgi:application", "--static", f"/static={root}",
                       chdir=os.path.join(APPS, "djproj"))
    pkg = os.path.join(os.path.dirname(django.__file__), "contrib", "admin", "static")
    for rel, ctype in (("admin/css/base.css", "text/css; charset=utf-8"),
                       ("admin/js/core.js", "text/javascript; charset=utf-8"),
                       ("admin/img/icon-addlink.svg", "image/svg+xml; charset=utf-8")):
        st, h, body = get(s, "/static/" + rel)
        assert st == 200, rel
        assert h["content-type"] == ctype
        with open(os.path.join(pkg, rel), "rb") as f:
            assert body == f.read()
    st, _, body = get(s, "/")  # the app still answers the rest
    assert st == 200


def test_flask_static_folder(server_factory):
    d = os.path.join(APPS, "flaskstatic")
    s = server_factory("app:app", "--static", "/static=static", chdir=d, cwd=d)
    import importlib.util
    spec = importlib.util.spec_from_file_location("gallop_flaskstatic_app", os.path.join(d, "app.py"))
    mod = importlib.util.module_from_spec(spec)
    import sys
    sys.modules[spec.name] = mod  # Flask finds its root (and static folder) through it
    spec.loader.exec_module(mod)
    client = mod.app.test_client()  # Flask's own answer, to compare with
    for rel in ("style.css", "js/app.js"):
        want = client.get("/static/" + rel)
        assert want.status_code == 200
        st, h, body = get(s, "/static/" + rel)
        assert st == 200 and body == want.data
        assert h["content-type"].split(";")[0] == want.headers["Content-Type"].split(";")[0]
        want.close()
    st, _, body = get(s, "/")
    assert st == 200 and b"flask with static files" in body
    st, _, _ = get(s, "/static/../app.py")
    assert st == 404
