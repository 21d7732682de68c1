"""Plain WSGI apps for the gallop suite. `app` is wrapped in wsgiref's validator
(so PEP 3333 violations by the server become 500s / AssertionErrors); `raw` is
the same app without it, for features the validator does not allow (read()
without a size, write(), exc_info after the headers, bad headers...)."""
import json
import os
import sys
import time
import zlib
from urllib.parse import parse_qs
from wsgiref.validate import validator

CLOSE_LOG = os.environ.get("GALLOP_TEST_CLOSE_LOG")


def note_close(tag):
    if CLOSE_LOG:
        with open(CLOSE_LOG, "a") as f:
            f.write(f"{tag} {os.getpid()}\n")


class Tracked:
    """An iterable whose close() is recorded in GALLOP_TEST_CLOSE_LOG."""

    def __init__(self, tag, chunks, raise_at=None, delay=0.0):
        self.tag = tag
        self.chunks = chunks
        self.raise_at = raise_at
        self.delay = delay

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if self.raise_at is not None and i == self.raise_at:
                raise RuntimeError(f"boom-in-iteration-{self.tag}")
            if self.delay:
                time.sleep(self.delay)
            yield c

    def close(self):
        note_close(self.tag)


def qs(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


ENV_KEYS = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
            "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
            "REMOTE_PORT", "RAW_URI", "wsgi.url_scheme"]


def describe_env(environ):
    d = {k: environ[k] for k in ENV_KEYS if k in environ}
    d["missing"] = [k for k in ENV_KEYS if k not in environ and k not in ("CONTENT_TYPE", "CONTENT_LENGTH")]
    d["http"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    d["wsgi.version"] = list(environ["wsgi.version"])
    d["version_is_tuple"] = isinstance(environ["wsgi.version"], tuple)
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        d[k] = environ[k]
    d["has_input"] = hasattr(environ["wsgi.input"], "read")
    d["has_errors"] = hasattr(environ["wsgi.errors"], "write")
    d["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    d["types"] = {k: type(v).__name__ for k, v in environ.items() if k.isupper()}
    d["path_info_latin1"] = list(environ["PATH_INFO"].encode("latin-1"))
    d["pid"] = os.getpid()
    return d


def respond(start_response, body, status="200 OK", ctype="text/plain", headers=()):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))] + list(headers))
    return [body]


def raw(environ, start_response):
    path = environ["PATH_INFO"]
    q = qs(environ)
    inp = environ["wsgi.input"]
    if path == "/env" or path.startswith("/env/"):
        return respond(start_response, json.dumps(describe_env(environ)).encode(), ctype="application/json")
    if path == "/pid":
        return respond(start_response, str(os.getpid()).encode())
    if path == "/echo":
        n = environ.get("CONTENT_LENGTH")
        body = inp.read(int(n)) if n else inp.read(-1) if q.get("all") else b"".join(iter(lambda: inp.read(8192), b""))
        return respond(start_response, body, ctype="application/octet-stream")
    if path == "/readall":  # read() without a size: the rest of the body, then b""
        body = inp.read()
        again = inp.read()
        again2 = inp.read(10)
        return respond(start_response, json.dumps({"len": len(body), "crc": zlib.crc32(body),
                                                   "again": len(again) + len(again2)}).encode())
    if path == "/readmodes":
        mode = q.get("mode")
        if mode == "readline":
            out = []
            while True:
                ln = inp.readline()
                if not ln:
                    break
                out.append(ln.decode("latin-1"))
        elif mode == "readline_n":
            out = []
            while True:
                ln = inp.readline(int(q.get("n", "4")))
                if not ln:
                    break
                out.append(ln.decode("latin-1"))
        elif mode == "readlines":
            out = [x.decode("latin-1") for x in inp.readlines()]
        elif mode == "iter":
            out = [x.decode("latin-1") for x in inp]
        else:  # read(n) pieces
            out = []
            n = int(q.get("n", "3"))
            while True:
                b = inp.read(n)
                if not b:
                    break
                out.append(b.decode("latin-1"))
        tail = inp.read(5) + inp.readline()
        return respond(start_response, json.dumps({"parts": out, "tail": tail.decode()}).encode(),
                       ctype="application/json")
    if path == "/linesig":  # a signature of readline(n) / read(n) results, to compare with io.BytesIO
        n = int(q.get("n", "-1"))
        how = q.get("how", "readline")
        sig = []
        while True:
            b = inp.readline(n) if how == "readline" else inp.read(n)
            sig.append([len(b), zlib.crc32(b)])
            if not b:
                break
        return respond(start_response, json.dumps(sig).encode(), ctype="application/json")
    if path == "/misc":
        kind = q.get("kind")
        if kind == "str":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return ["not bytes"]
        if kind == "none":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return None
        if kind == "nostart":
            return [b"body before start_response"]
        if kind == "badcl":
            start_response("200 OK", [("Content-Length", "abc")])
            return [b"x"]
        if kind == "unicode":
            start_response("200 OK", [("X-U", "\u20ac")])
            return [b"x"]
        if kind == "longbody":
            start_response("200 OK", [("Content-Length", "3")])
            return [b"abc", b"def"]
        if kind in ("204", "304"):
            start_response("204 No Content" if kind == "204" else "304 Not Modified", [("ETag", '"e"')])
            return []
    if path == "/upload":  # streamed: 64 KiB pieces
        crc = 0
        total = 0
        while True:
            b = inp.read(65536)
            if not b:
                break
            total += len(b)
            crc = zlib.crc32(b, crc)
        return respond(start_response, json.dumps({"len": total, "crc": crc}).encode(), ctype="application/json")
    if path == "/noread":  # never touches the body
        return respond(start_response, b"ignored")
    if path == "/stream":  # no Content-Length: chunked on 1.1, close-delimited on 1.0
        n = int(q.get("n", "3"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("stream", [b"part%d;" % i for i in range(n)])
    if path == "/one":  # one-element list, no length
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"single element body"]
    if path == "/empty":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []
    if path == "/nocontent":
        start_response("204 No Content", [])
        return []
    if path == "/big":  # a large generated body, in pieces
        mb = float(q.get("mb", "1"))
        size = int(mb * (1 << 20))
        piece = int(q.get("piece", str(64 << 10)))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
                       if q.get("cl") else [("Content-Type", "application/octet-stream")])

        def gen():
            left = size
            i = 0
            while left > 0:
                k = min(piece, left)
                yield bytes([i % 251]) * k
                left -= k
                i += 1
        return Tracked("big", gen())
    if path == "/sleep":
        time.sleep(float(q.get("s", "1")))
        return respond(start_response, b"slept")
    if path == "/slowiter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(q.get("tag", "slowiter"), [b"x" * 1000] * int(q.get("n", "50")), delay=float(q.get("d", "0.1")))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        write(b"then-")
        return [b"returned"]
    if path == "/exc_before":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise ValueError("replaced")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("X-Second", "1")],
                           sys.exc_info())
        return [b"error page"]
    if path == "/exc_after":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"already-sent")
        try:
            raise ValueError("too-late-marker")
        except ValueError:
            try:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            except ValueError as e:
                note_close("reraised:" + str(e))
                raise
        return [b"never"]
    if path == "/start_twice":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            start_response("200 OK", [("Content-Type", "text/plain")])
        except Exception as e:
            return [b"refused:" + type(e).__name__.encode()]
        return [b"allowed"]
    if path == "/raise":
        raise RuntimeError("boom-marker-in-app")
    if path == "/raise_iter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("raise_iter", [b"a", b"b", b"c"], raise_at=1)
    if path == "/raise_iter_first":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("raise_iter_first", [b"a", b"b"], raise_at=0)
    if path == "/badheader":
        kind = q.get("kind", "crlf")
        hdrs = {"crlf": [("X-Bad", "a\r\nInjected: yes")], "lf": [("X-Bad", "a\nInjected: yes")],
                "cr": [("X-Bad", "a\rb")], "name": [("X Bad", "v")], "colon": [("X:Bad", "v")],
                "namecrlf": [("X-Bad\r\nInjected", "v")], "nonstr": [("X-Bad", 5)]}[kind]
        start_response("200 OK", [("Content-Type", "text/plain")] + hdrs)
        return [b"should not be sent"]
    if path == "/badstatus":
        start_response(q.get("s", "abc"), [("Content-Type", "text/plain")])
        return [b"x"]
    if path == "/file":
        fn = q["f"]
        f = open(fn, "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream")]
                       + ([("Content-Length", str(os.path.getsize(fn)))] if q.get("cl") else []))
        return environ["wsgi.file_wrapper"](f, 32768)
    if path == "/filelike":  # not a real file: the wrapper must iterate it
        import io
        data = b"0123456789" * 1000
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(data), 999)
    if path == "/errors":
        environ["wsgi.errors"].write("stderr-marker-from-app\n")
        environ["wsgi.errors"].flush()
        return respond(start_response, b"logged")
    if path == "/headers":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Multi", "1"), ("X-Multi", "2"),
                                  ("Content-Length", "2")])
        return [b"ok"]
    if path == "/cl_mismatch":  # app says 100 but sends 5: connection must not be reused
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return [b"short"]
    body = ("hello " + path).encode("latin-1")
    return respond(start_response, body)


app = validator(raw)


def factory():
    return app


class Holder:
    """For MODULE:obj.attr app paths."""
    inner = app


not_callable = 42
