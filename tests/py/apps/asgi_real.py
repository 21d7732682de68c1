"""Apps as users write them, for test_asgi_apps.py: a FastAPI app with an
http middleware (Starlette's BaseHTTPMiddleware) around streaming, background
tasks, uploads and an endless SSE feed; and raw ASGI endpoints under /raw
that use receive/send as asyncio lets them (tasks, wait_for, gather), look at
their Task and context, write into the scope, and misbehave (sys.exit,
KeyboardInterrupt, a task factory that raises). Events that the tests check
after the response are kept in STATE, read back through /raw/state."""
import asyncio
import contextvars
import json
import os
import sys
import time
import weakref

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse

STATE = {"sse_started": 0, "sse_finished": 0, "bg_done_at": None, "raw_stream_exc": None,
         "arm": None}
VAR = contextvars.ContextVar("VAR", default="unset")
HELD = {"ref": None, "task": None}

fast = FastAPI()


@fast.on_event("startup")
async def install_factory():
    loop = asyncio.get_running_loop()

    def factory(loop, coro, **kw):
        exc, STATE["arm"] = STATE["arm"], None
        if exc:
            coro.close()
            raise {"MemoryError": MemoryError, "RuntimeError": RuntimeError}[exc]("factory says no")
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(factory)


@fast.middleware("http")
async def add_header(request: Request, call_next):
    response = await call_next(request)
    response.headers["x-mw"] = "yes"
    return response


@fast.get("/__ready")
async def ready():
    return {"ready": True}


@fast.get("/stream")
async def stream():
    async def gen():
        for i in range(3):
            yield f"{i}\n"
            await asyncio.sleep(0.2)
    return StreamingResponse(gen(), media_type="text/plain")


@fast.post("/bg")
async def with_background(background_tasks: BackgroundTasks):
    async def later():
        await asyncio.sleep(1.0)
        STATE["bg_done_at"] = time.time()
    background_tasks.add_task(later)
    return {"queued": True}


@fast.post("/upload")
async def upload(request: Request):
    body = await request.body()
    return {"len": len(body), "sum": sum(body) % 65521}


@fast.get("/sse")
async def sse():
    async def events():
        STATE["sse_started"] += 1
        try:
            n = 0
            while True:
                yield f"data: {n}\n\n"
                n += 1
                await asyncio.sleep(0.1)
        finally:
            STATE["sse_finished"] += 1
    return StreamingResponse(events(), media_type="text/event-stream")


# ---- raw ASGI ---------------------------------------------------------------------

async def reply(send, status, body, ctype=b"application/json"):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})


async def raw(scope, receive, send):
    path = scope["path"][4:]
    if path == "/state":
        return await reply(send, 200, dict(STATE, pid=os.getpid()))
    if path == "/create_task":
        # a receive() scheduled as a Task, another through ensure_future, wait_for, gather
        t = asyncio.create_task(receive())
        first = await t
        second = await asyncio.ensure_future(receive())
        third = await asyncio.wait_for(receive(), 5)
        rest = await asyncio.gather(receive())
        got = [first["body"].decode(), second["body"].decode(), third["body"].decode()]
        got += [m["type"] for m in rest]
        return await reply(send, 200, got)
    if path == "/create_task_send":
        await asyncio.create_task(send({"type": "http.response.start", "status": 200,
                                        "headers": [(b"content-type", b"text/plain")]}))
        await asyncio.gather(send({"type": "http.response.body", "body": b"via ", "more_body": True}))
        await asyncio.wait_for(send({"type": "http.response.body", "body": b"tasks"}), 5)
        return
    if path == "/lazy":
        # never awaited: must neither send nor take a message
        send({"type": "http.response.start", "status": 500, "headers": []})
        receive()
        msg = await receive()
        await reply(send, 200, {"body": msg["body"].decode(), "more": msg["more_body"]})
        return
    if path == "/who":
        # current_task and contextvars, per request
        before = VAR.get()
        VAR.set("set by " + scope["query_string"].decode())
        task = asyncio.current_task()
        prev = HELD["task"]() if HELD["task"] else None
        same = prev is task
        HELD["task"] = weakref.ref(task)
        old = HELD["ref"]() if HELD["ref"] else None

        class Big:
            pass

        big = Big()
        HELD["ref"] = weakref.ref(big)
        VAR2.set(big)
        return await reply(send, 200, {"before": before, "same_task": same,
                                       "old_ctx_value_alive": old is not None})
    if path == "/scope":
        seen = {"asgi": dict(scope["asgi"]), "ext": sorted(scope["extensions"]),
                "ext_pathsend": dict(scope["extensions"].get("http.response.pathsend", {})),
                "state": dict(scope.get("state", {}))}
        scope["asgi"]["leak"] = 1
        scope["extensions"]["leak"] = {}
        scope["extensions"]["http.response.pathsend"]["leak"] = 1
        scope.setdefault("state", {})["leak"] = 1
        return await reply(send, 200, seen)
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        await asyncio.sleep(1.0)
        await send({"type": "http.response.body", "body": b"second;", "more_body": True})
        await send({"type": "http.response.body", "body": b"third;", "more_body": True})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"end"})
        return
    if path == "/endless":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
                await asyncio.sleep(0.05)
        except BaseException as e:
            STATE["raw_stream_exc"] = [type(e).__name__, isinstance(e, OSError)]
            raise
    if path == "/two_waiters":
        # two receive() wait at once (a middleware and a streaming response do):
        # the body goes to the first, the end of the response reaches both
        first = asyncio.create_task(receive())
        second = asyncio.create_task(receive())
        await asyncio.sleep(0.2)  # both wait; the client sends the body now
        got = (await first)["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"got " + got})
        STATE["two_waiters"] = [got.decode(), (await asyncio.wait_for(second, 5))["type"]]
        return
    if path == "/exit":
        sys.exit(3)
    if path == "/kbint":
        raise KeyboardInterrupt
    if path == "/exit_late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        sys.exit(0)
    if path == "/arm":
        # answers, then runs on a while: the next request on this connection
        # arrives while this call still runs
        STATE["arm"] = scope["query_string"].decode()
        await reply(send, 200, b"armed", b"text/plain")
        await asyncio.sleep(0.5)
        return
    return await reply(send, 404, b"no such raw path", b"text/plain")


VAR2 = contextvars.ContextVar("VAR2", default=None)


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith("/raw/"):
        return await raw(scope, receive, send)
    return await fast(scope, receive, send)
