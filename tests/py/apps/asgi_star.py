"""A Starlette app for test_asgi_frameworks.py: routes, JSONResponse,
StreamingResponse, a BackgroundTask, a WebSocket endpoint, lifespan with state.
Side-channel files go to ASGI_TEST_DIR."""
import asyncio
import contextlib
import json
import os
import time

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

OUT = os.environ.get("ASGI_TEST_DIR", "/tmp")


def write(name, data):
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"db": "star-db", "started_at": time.time()}
    write(f"star-shutdown-{os.getpid()}", {"time": time.time()})


async def ready(request):
    return PlainTextResponse("ready")


async def item(request):
    return JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q"),
                         "db": request.state.db})


async def echo(request):
    data = await request.json()
    return JSONResponse({"got": data, "method": request.method})


async def numbers(request):
    n = int(request.query_params.get("n", "5"))

    async def gen():
        for i in range(n):
            yield f"line {i}\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(gen(), media_type="text/plain")


async def bg_job(tag):
    await asyncio.sleep(0.2)
    write(f"star-bg-{tag}", {"time": time.time()})


async def background(request):
    tag = request.query_params["tag"]
    return JSONResponse({"queued": tag, "time": time.time()}, background=BackgroundTask(bg_job, tag))


async def ws_endpoint(websocket):
    await websocket.accept()
    try:
        while True:
            msg = await websocket.receive_text()
            await websocket.send_json({"echo": msg, "db": websocket.state.db})
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[
    Route("/__ready", ready),
    Route("/items/{item_id:int}", item),
    Route("/echo", echo, methods=["POST"]),
    Route("/numbers", numbers),
    Route("/background", background),
    WebSocketRoute("/ws", ws_endpoint),
], lifespan=lifespan)
