"""Sample apps for `gallop tune` (tests/py/test_tune.py, docs/benchmarks.md):
`cpu` spends a few ms of pure-Python CPU per request, `sleepy` waits 50 ms
(a blocking call, as a database would), `broken` answers 500, `asgi_cpu` is
the CPU-bound one as ASGI."""
import time

SPIN = 6000  # ~3 ms of Python on this machine


def _spin():
    x = 0
    for i in range(SPIN * 10):
        x += i * i % 7
    return x


def cpu(environ, start_response):
    body = b"%d\n" % _spin()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def sleepy(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def broken(environ, start_response):
    if environ["PATH_INFO"] == "/ok":
        start_response("200 OK", [("Content-Length", "3")])
        return [b"ok\n"]
    start_response("500 Internal Server Error", [("Content-Length", "4")])
    return [b"bad\n"]


async def asgi_cpu(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"%d\n" % _spin()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
