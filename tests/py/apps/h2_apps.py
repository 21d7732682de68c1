"""Apps for test_h2: a WSGI callable, a raw ASGI one, Flask and FastAPI."""
import asyncio
import time

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from flask import Flask, Response, request


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/slow":
        time.sleep(1.0)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            for i in range(3):
                yield b"piece %d\n" % i
                time.sleep(0.3)
        return gen()
    body = ("%s %s %s %s" % (environ["SERVER_PROTOCOL"], environ["REQUEST_METHOD"], path,
                             environ.get("HTTP_HOST", ""))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("Connection", "keep-alive")])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan: --lifespan auto runs without it
    path = scope["path"]
    if path == "/noread":  # answers without asking for the body
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"unread"})
        return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    if path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-sum")]})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})
        return
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"piece %d\n" % i,
                        "more_body": True})
            await asyncio.sleep(0.3)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/big":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        chunk = b"x" * 65536
        for _ in range(32):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/sleep":
        await asyncio.sleep(1.0)
    out = b"%s %s %d" % (scope["http_version"].encode(), path.encode(), len(body))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": out})


flask_app = Flask(__name__)


@flask_app.route("/hello")
def hello():
    return "flask " + request.environ["SERVER_PROTOCOL"]


@flask_app.route("/up", methods=["POST"])
def up():
    return Response(str(len(request.get_data())), mimetype="text/plain")


fast = FastAPI()


@fast.get("/items/{n}")
async def item(n: int):
    return {"n": n}


@fast.get("/stream")
async def fast_stream():
    async def gen():
        for i in range(3):
            yield b"piece %d\n" % i
            await asyncio.sleep(0.3)
    return StreamingResponse(gen(), media_type="text/plain")
