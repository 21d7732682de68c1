"""WSGI apps that misbehave as real ones do (tests/py/test_wsgi_misbehave.py).

Routes on PATH_INFO; /pid answers with the worker's pid, so a test can tell
whether the same worker (or a replacement) serves the next request."""
import os
import sys
import time


def ok(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def exits_in_body(start_response, exc):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise exc


def gen_raises(exc):
    if exc is not None:
        raise exc
    yield b"never"


def exit_mid_body():
    yield b"part of the body;"
    sys.exit(5)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/pid" or path == "/__ready":
        return ok(start_response, str(os.getpid()).encode())
    if path == "/exit":
        sys.exit(3)
    if path == "/kbint":
        raise KeyboardInterrupt("misbehave: ^C in the view")
    if path == "/exit-after-start":
        exits_in_body(start_response, SystemExit("misbehave: exit after start_response"))
    if path == "/exit-in-iter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen_raises(SystemExit(4))
    if path == "/kbint-in-iter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen_raises(KeyboardInterrupt("misbehave: ^C in the iterable"))
    if path == "/exit-mid-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return exit_mid_body()
    if path == "/write-stream":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first;")
        time.sleep(1)
        write(b"second;")
        return []
    if path == "/headers-append-nontuple":
        headers = [("Content-Type", "text/plain")]
        start_response("200 OK", headers)
        headers.append("X-Bogus: not a tuple")
        return [b"body"]
    if path == "/headers-append-badvalue":
        headers = [("Content-Type", "text/plain")]
        start_response("200 OK", headers)
        headers.append(("X-Number", 5))
        return [b"body"]
    if path == "/write-empty-then-fail":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"")
        raise ValueError("misbehave: failed after write(b'')")
    if path == "/write-empty-then-body":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"")
        return [b"after"]
    if path == "/status-latin1":
        return ok(start_response, b"latin", status="200 \u00d6kay")
    if path == "/status-not-latin1":
        return ok(start_response, b"never", status="200 \u0150kay \u20ac")
    if path == "/long-headers":
        names = sorted(k for k in environ if k.startswith("HTTP_X_LONG"))
        return ok(start_response, "\n".join(f"{k}={environ[k]}" for k in names).encode())
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream(float(environ.get("QUERY_STRING") or 1))
    return ok(start_response, b"not found", status="404 Not Found")


def stream(pause):
    yield b"first;"
    time.sleep(pause)
    yield b"second;"
    time.sleep(pause)
    yield b"third"
