"""WSGI app for tests/py/test_threads.py (--threads with slow clients).

/fast            a few bytes at once
Sizes are ?mb=N or ?kb=N.
/big?mb=N        one N MB bytes object (list of one piece)
/gen?mb=N        N MB as a generator of 256 KB pieces
/file?mb=N       N MB from a file through wsgi.file_wrapper (sendfile)
/tail?mb=N&tail=T N MB in one piece, then a last piece of T bytes (default 3)
/small?mb=N      N MB in 1000-byte pieces (the core buffers them)
/write?mb=N      N MB through the write() callable, 256 KB at a time
/sleep?s=S       sleeps S seconds, then answers
/pid             the worker's pid
&snd=N on any of them shrinks the socket's send buffer to N bytes first.
"""
import atexit
import os
import socket
import stat
import tempfile
import time
from urllib.parse import parse_qs

PIECE = 256 * 1024
_files = {}


def _pieces(size):
    while size > 0:
        yield min(size, PIECE)
        size -= PIECE


@atexit.register
def _remove_files():
    for path in _files.values():
        os.unlink(path)


def _file_of(size):
    path = _files.get(size)
    if not path:
        fd, path = tempfile.mkstemp(prefix="gallop-threads-")
        with os.fdopen(fd, "wb") as f:
            f.write(b"f" * size)
        _files[size] = path
    return path


def _shrink_sndbuf(environ, size):
    """Finds this request's socket among the worker's fds by its peer and
    gives it a small send buffer, so a slow reader fills it at once."""
    peer = (environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"]))
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if s.type == socket.SOCK_STREAM and s.getpeername()[:2] == peer:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:
            pass
        finally:
            s.close()


def app(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    size = int(q["kb"]) << 10 if "kb" in q else int(q.get("mb", "1")) << 20
    plain = [("Content-Type", "application/octet-stream")]
    if "snd" in q:
        _shrink_sndbuf(environ, int(q["snd"]))
    if path == "/big":
        start_response("200 OK", plain)
        return [b"b" * size]
    if path == "/gen":
        start_response("200 OK", plain)

        return (b"g" * n for n in _pieces(size))
    if path == "/file":
        start_response("200 OK", plain)
        return environ["wsgi.file_wrapper"](open(_file_of(size), "rb"))
    if path == "/tail":
        start_response("200 OK", plain)
        return [b"t" * size, b"E" * int(q.get("tail", "3"))]
    if path == "/small":
        start_response("200 OK", plain)
        return (b"s" * 1000 for _ in range(size // 1000))
    if path == "/write":
        write = start_response("200 OK", plain + [("Content-Length", str(size))])
        for n in _pieces(size):
            write(b"w" * n)
        return []
    if path == "/sleep":
        time.sleep(float(q.get("s", "1")))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fast"]
