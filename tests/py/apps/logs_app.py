"""Apps for the log tests: the same WSGI app runs under gallop and gunicorn,
so their access-log lines can be compared atom by atom."""
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/fail":
        raise RuntimeError("boom\nsecond line of the message")
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "0.5"))
    body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Out", 'v"1\\')])
    return [body]


def flask_app():
    from flask import Flask
    fa = Flask(__name__)

    @fa.route("/hello")
    def hello():
        return "hi", 201, {"X-Flask": "yes"}

    @fa.route("/fail")
    def fail():
        raise ValueError("flask failed")

    return fa


flask = flask_app()


def fastapi_app():
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse
    fa = FastAPI()

    @fa.get("/items/{n}")
    async def item(n: int):
        return PlainTextResponse(f"item {n}", headers={"X-Item": str(n)})

    @fa.get("/slow")
    async def slow():
        import asyncio
        await asyncio.sleep(0.6)
        return PlainTextResponse("late")

    @fa.get("/fail")
    async def fail():
        raise KeyError("fastapi failed")

    return fa


fastapi = fastapi_app()
