"""WebSocket edge cases for test_asgi_ws.py (the *_after_* and denial tests).

/ticks?tag=T   Starlette endpoint sending forever; when send raises it records
               the exception in ws-edge-T (type, whether an OSError) and ends.
/close?code=N  raw: accepts, sends websocket.close with code N; records what
               that raised in ws-edge-close-N, then closes with 1000.
/deny-big      raw: refuses with a 401 and a 32 MiB body in one message.
/deny-str      raw: refuses with a body that is a str (an app bug).
/ping          plain HTTP."""
import json
import os
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

OUT = os.environ.get("ASGI_TEST_DIR", "/tmp")
BIG = 32 << 20


def record(name, data):
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def exc_info(e):
    return {"type": type(e).__name__, "oserror": isinstance(e, OSError), "text": str(e)}


async def ticks(websocket: WebSocket):
    tag = websocket.query_params.get("tag", "x")
    await websocket.accept()
    n = 0
    try:
        while True:
            await websocket.send_text(f"tick {n}")
            n += 1
            import asyncio
            await asyncio.sleep(0.02)
    except BaseException as e:
        record(f"ws-edge-{tag}", dict(exc_info(e), sent=n))
        raise


async def ping(request):
    return PlainTextResponse("pong")


async def raw(scope, receive, send):
    path = scope["path"]
    q = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    assert (await receive())["type"] == "websocket.connect"
    if path == "/close":
        await send({"type": "websocket.accept"})
        code = int(q["code"])
        try:
            await send({"type": "websocket.close", "code": code})
            record(f"ws-edge-close-{code}", {"type": None})
        except Exception as e:
            record(f"ws-edge-close-{code}", exc_info(e))
            await send({"type": "websocket.close", "code": 1000})
    elif path == "/deny-big":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "websocket.http.response.body", "body": b"d" * BIG})
        record("ws-edge-deny-big", {"sent": True})
    elif path == "/deny-str":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        try:
            await send({"type": "websocket.http.response.body", "body": "not bytes"})
        except Exception as e:
            record("ws-edge-deny-str", exc_info(e))
            raise


app = Starlette(routes=[WebSocketRoute("/ticks", ticks), Route("/ping", ping), Route("/__ready", ping),
                        Mount("/", raw)])
