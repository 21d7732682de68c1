"""Apps for test_asgi_lifespan_stop.py: how a worker starts and stops.

`failing`: a Starlette app whose lifespan start-up raises (Starlette reports
it with lifespan.startup.failed, then re-raises).
`raising`: a raw app whose lifespan raises before answering.
`slow`: a Starlette app whose lifespan shutdown never ends.
`leaves`: prints on each request (stdout not a tty, so block-buffered),
registers an atexit handler, and leaves a background task and a suspended
async generator on the loop; each writes a file in STOP_TEST_DIR when it is
finalized."""
import asyncio
import atexit
import os
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

OUT = os.environ.get("STOP_TEST_DIR", "/tmp")


def mark(name):
    with open(os.path.join(OUT, f"{name}-{os.getpid()}"), "w") as f:
        f.write("x")


async def home(request):
    return PlainTextResponse("hi")


@asynccontextmanager
async def failing_lifespan(app):
    raise ValueError("no database at start-up")
    yield


failing = Starlette(lifespan=failing_lifespan, routes=[Route("/", home)])


async def raising(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise KeyError("raw start-up exploded")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


@asynccontextmanager
async def slow_lifespan(app):
    yield
    mark("shutdown-began")
    await asyncio.sleep(60)


slow = Starlette(lifespan=slow_lifespan, routes=[Route("/", home)])

atexit.register(mark, "atexit")
_kept = []


async def _forever():
    try:
        await asyncio.sleep(3600)
    finally:
        mark("task-cancelled")


async def _agen():
    try:
        yield 1
        yield 2
    finally:
        mark("agen-closed")


async def served(request):
    print(f"served {request.url.path} in {os.getpid()}")
    if not _kept:
        _kept.append(asyncio.get_running_loop().create_task(_forever()))
        g = _agen()
        await g.__anext__()  # suspended; only shutdown_asyncgens closes it
        _kept.append(g)
    return PlainTextResponse("ok")


leaves = Starlette(routes=[Route("/{p}", served), Route("/", home)])
