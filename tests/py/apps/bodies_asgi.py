"""ASGI apps for test_bodies.py: a FastAPI upload that awaits request.body(), a
Starlette stream that pauses between pieces, and a raw ASGI stream that is
quiet between events (SSE-style)."""
import asyncio
import hashlib
import os

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()
EVENTS = os.environ.get("BODIES_EVENTS")  # a file each app step is appended to


def note(what):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(what + "\n")


@app.get("/__ready")
async def ready():
    return {"ready": True}


@app.get("/")
async def index():
    return {"ok": True}


@app.post("/upload")
async def upload(request: Request):
    note("upload-start")
    try:
        body = await request.body()
    except BaseException as e:
        note("upload-" + type(e).__name__)
        raise
    note("upload-done")
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@app.get("/stream")
async def stream():
    async def gen():
        yield b"first\n"
        await asyncio.sleep(1.0)
        yield b"second\n"
    return StreamingResponse(gen(), media_type="text/plain")


async def quiet(scope, receive, send):
    """Raw ASGI: an event, QUIET_S seconds of silence, another event."""
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/big":
        # a big stream for a client that does not read: the write timeout cuts it
        await send({"type": "http.response.start", "status": 200, "headers": []})
        piece = b"x" * 65536
        try:
            for _ in range(2000):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except OSError:
            pass
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    if path == "/__ready":
        await send({"type": "http.response.body", "body": b"ready"})
        return
    await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
    await asyncio.sleep(float(os.environ.get("QUIET_S", "4")))
    await send({"type": "http.response.body", "body": b"data: two\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b""})
