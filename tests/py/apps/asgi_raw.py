"""Raw ASGI 3 apps for test_asgi_*.py.

`app`: routes on the path (see ROUTES); lifespan behaviour from ASGI_LIFESPAN
(ok | fail | raise | unsupported); side-channel files go to ASGI_TEST_DIR.
`nolifespan`: raises on the lifespan scope (an app without lifespan support).
`app2`: the same app as an ASGI 2 double callable."""
import asyncio
import contextvars
import json
import os
import sys
import time
from urllib.parse import parse_qs

OUT = os.environ.get("ASGI_TEST_DIR", "/tmp")
LIFESPAN = os.environ.get("ASGI_LIFESPAN", "ok")

request_var = contextvars.ContextVar("request_var", default="unset")


def out(name, data):
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def plain(v):
    """The scope made JSON-safe: bytes -> {"bytes": latin-1 text}, tuples -> {"tuple": [...]}."""
    if isinstance(v, bytes):
        return {"bytes": v.decode("latin-1")}
    if isinstance(v, tuple):
        return {"tuple": [plain(x) for x in v]}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return {"repr": repr(v)}


async def respond(send, status=200, body=b"", ctype=b"text/plain", headers=()):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        ctype = b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive):
    chunks = []
    while True:
        m = await receive()
        if m["type"] != "http.request":
            return chunks, m["type"]
        chunks.append((m.get("body", b""), m.get("more_body", False)))
        if not m.get("more_body", False):
            return chunks, None


# ---- HTTP routes --------------------------------------------------------------

async def r_ready(scope, receive, send, q):
    await respond(send, body=b"ready")


async def r_scope(scope, receive, send, q):
    await read_body(receive)
    data = plain(scope)
    data["__types"] = {k: type(v).__name__ for k, v in scope.items()}
    if "mutate" in q and "state" in scope:
        scope["state"]["added_by_request"] = True
        scope["state"]["items"].append("req")
    await respond(send, body=data)


async def r_body(scope, receive, send, q):
    chunks, other = await read_body(receive)
    body = b"".join(c for c, _ in chunks)
    await respond(send, body={"chunks": [[len(c), m] for c, m in chunks], "total": len(body),
                              "head": body[:32].decode("latin-1"), "other": other,
                              "ok": body == b"".join(b"%06d" % i for i in range(len(body) // 6))})


async def r_stream(scope, receive, send, q):
    n = int(q.get("n", "10"))
    size = int(q.get("size", "1000"))
    delay = float(q.get("delay", "0"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(n):
        await send({"type": "http.response.body", "body": bytes([97 + i % 26]) * size, "more_body": True})
        if delay:
            await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def r_big(scope, receive, send, q):
    """--big: mb megabytes in 64 KiB chunks, with a content-length."""
    mb = int(q.get("mb", "200"))
    total = mb << 20
    chunk = 65536
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(total).encode())]})
    sent = 0
    gone = None
    try:
        while sent < total:
            await send({"type": "http.response.body", "body": b"x" * chunk, "more_body": True})
            sent += chunk
        await send({"type": "http.response.body", "body": b""})
    except OSError as e:  # the client left (ASGI spec 2.4)
        gone = type(e).__name__
    out("big-done-" + q.get("tag", "x"), {"sent": sent, "gone": gone})


async def r_disc(scope, receive, send, q):
    """Streams until the client leaves; records what send/receive did then."""
    tag = q.get("tag", "x")
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    pending = asyncio.ensure_future(receive())
    sent_before = sent_after = 0
    errors = []
    for _ in range(600):  # at most ~15 s
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": b"y" * 4096, "more_body": True}), 5)
        except Exception as e:  # noqa: BLE001 - recorded for the test
            errors.append(repr(e))
            break
        if pending.done():
            sent_after += 1
            if sent_after >= 3:
                break
        else:
            sent_before += 1
        await asyncio.sleep(0.025)
    try:
        first = (await asyncio.wait_for(pending, 5))["type"]
    except asyncio.TimeoutError:
        pending.cancel()
        first = "timeout"
    try:
        second = (await asyncio.wait_for(receive(), 2))["type"]
    except asyncio.TimeoutError:
        second = "timeout"
    out("disc-" + tag, {"receive": first, "second_receive": second, "sent_before": sent_before,
                        "sent_after": sent_after, "errors": errors})


async def r_disc_send(scope, receive, send, q):
    """Only sends (never receive()s while streaming): a send after the client left raises."""
    tag = q.get("tag", "x")
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    errors = []
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 3:
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": b"z" * 65536, "more_body": True}), 5)
            n += 1
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
            break
        await asyncio.sleep(0.01)
    try:
        after = (await asyncio.wait_for(receive(), 3))["type"]
    except asyncio.TimeoutError:
        after = "timeout"
    out("discsend-" + tag, {"errors": errors, "sends": n, "receive": after})


async def r_after_complete(scope, receive, send, q):
    """A receive() pending while the response completes must give http.disconnect."""
    tag = q.get("tag", "x")
    await read_body(receive)
    pending = asyncio.ensure_future(receive())
    await asyncio.sleep(0.05)  # receive() is now waiting on the server
    await respond(send, body=b"done")
    try:
        first = (await asyncio.wait_for(pending, 3))["type"]
    except asyncio.TimeoutError:
        first = "timeout"
    try:
        second = (await asyncio.wait_for(receive(), 2))["type"]
    except asyncio.TimeoutError:
        second = "timeout"
    out("after-" + tag, {"pending_receive": first, "fresh_receive": second})


async def r_cancelled_receive(scope, receive, send, q):
    """receive() cancelled by a timeout, body bytes arrive, then receive() again."""
    try:
        await asyncio.wait_for(receive(), 0.2)
        first = "message"
    except asyncio.TimeoutError:
        first = "timeout"
    await asyncio.sleep(float(q.get("sleep", "0.8")))  # the body arrives meanwhile
    try:
        chunks, other = await asyncio.wait_for(read_body(receive), 3)
        body = b"".join(c for c, _ in chunks).decode("latin-1")
    except asyncio.TimeoutError:
        body = "timeout"
    except RuntimeError as e:
        body = "RuntimeError: " + str(e)
    await respond(send, body={"first": first, "body": body})


async def r_slow(scope, receive, send, q):
    t = float(q.get("t", "1"))
    await asyncio.sleep(t)
    if "tag" in q:
        out("slow-" + q["tag"], {"done": time.time()})
    await respond(send, body=b"slept")


async def r_second_start(scope, receive, send, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    try:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        got = "no exception"
    except Exception as e:  # noqa: BLE001
        got = type(e).__name__ + ": " + str(e)
    await send({"type": "http.response.body", "body": got.encode()})


async def r_body_first(scope, receive, send, q):
    try:
        await send({"type": "http.response.body", "body": b"too early"})
        got = "no exception"
    except Exception as e:  # noqa: BLE001
        got = type(e).__name__ + ": " + str(e)
    await respond(send, body=got.encode())


async def r_bad_header(scope, receive, send, q):
    res = {}
    for what, hdr in (("name", (b"x\r\ny", b"v")), ("value", (b"x-bad", b"x\r\ny")), ("lf", (b"x-bad", b"a\nb"))):
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [hdr]})
            res[what] = "no exception"
            break
        except Exception as e:  # noqa: BLE001
            res[what] = type(e).__name__
    await respond(send, body=res)


async def r_noresponse(scope, receive, send, q):
    return None


async def r_raise(scope, receive, send, q):
    raise RuntimeError("asgi-test-boom-marker")


async def r_raise_after_start(scope, receive, send, q):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("asgi-test-late-boom")


async def r_pathsend(scope, receive, send, q):
    path = q["path"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.pathsend", "path": path})


async def r_trailers(scope, receive, send, q):
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum, x-count")]})
    for part in (b"hello ", b"trailer ", b"world"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")], "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-count", b"3")], "more_trailers": False})


async def r_ctx(scope, receive, send, q):
    import anyio
    res = {}
    await asyncio.sleep(0.01)
    task = asyncio.current_task()
    res["current_task"] = task is not None
    res["loop"] = type(asyncio.get_running_loop()).__module__
    request_var.set("from-app")

    async def child():
        await asyncio.sleep(0)
        return request_var.get(), asyncio.current_task() is not None

    res["child"] = list(await asyncio.create_task(child()))
    seen = []

    async def worker(i):
        await anyio.sleep(0.01)
        seen.append((i, request_var.get()))

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(worker, i)
    res["anyio"] = sorted(seen)
    res["to_thread"] = await anyio.to_thread.run_sync(lambda: 6 * 7)
    res["wait_for"] = await asyncio.wait_for(asyncio.sleep(0.01, result="ok"), 1)
    res["var_in_request"] = request_var.get()
    await respond(send, body=res)


async def r_var(scope, receive, send, q):
    """A contextvar set by an earlier request must not leak into this one."""
    await respond(send, body={"var": request_var.get()})


ROUTES = {
    "/__ready": r_ready,
    "/scope": r_scope,
    "/body": r_body,
    "/stream": r_stream,
    "/big": r_big,
    "/disc": r_disc,
    "/disc-send": r_disc_send,
    "/slow": r_slow,
    "/cancelled-receive": r_cancelled_receive,
    "/after-complete": r_after_complete,
    "/err/second-start": r_second_start,
    "/err/body-first": r_body_first,
    "/err/bad-header": r_bad_header,
    "/err/noresponse": r_noresponse,
    "/err/raise": r_raise,
    "/err/raise-after-start": r_raise_after_start,
    "/pathsend": r_pathsend,
    "/trailers": r_trailers,
    "/ctx": r_ctx,
    "/var": r_var,
}


# ---- WebSocket --------------------------------------------------------------------

async def ws_echo(scope, receive, send):
    m = await receive()
    assert m["type"] == "websocket.connect", m
    q = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/ws-reject":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/ws-deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        return
    accept = {"type": "websocket.accept", "headers": [(b"x-ws-extra", b"1")]}
    if scope.get("subprotocols"):
        accept["subprotocol"] = scope["subprotocols"][-1]
    await send(accept)
    tag = q.get("tag")
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            if tag:
                out("ws-" + tag, {"code": m.get("code"), "time": time.time()})
            return
        if m.get("text") is not None:
            t = m["text"]
            if t.startswith("close:"):
                await send({"type": "websocket.close", "code": int(t[6:]), "reason": "bye " + t[6:]})
                return
            if t == "scope":
                await send({"type": "websocket.send", "text": json.dumps(plain(scope))})
                continue
            if t == "raise":
                raise RuntimeError("ws-boom")
            if t.startswith("push:"):  # the server keeps sending, every 0.2 s
                for i in range(int(t[5:])):
                    await send({"type": "websocket.send", "text": f"push {i}"})
                    await asyncio.sleep(0.2)
                continue
            if t == "waitsleep":  # a receive() cancelled; a message arrives before the next one
                try:
                    await asyncio.wait_for(receive(), 0.3)
                except asyncio.TimeoutError:
                    pass
                await asyncio.sleep(0.8)
                try:
                    m = await asyncio.wait_for(receive(), 3)
                    await send({"type": "websocket.send", "text": "late " + str(m.get("text"))})
                except asyncio.TimeoutError:
                    await send({"type": "websocket.send", "text": "lost"})
                continue
            if t == "wait":  # a receive() cancelled by a timeout, then the next one
                try:
                    m = await asyncio.wait_for(receive(), 0.3)
                    await send({"type": "websocket.send", "text": "got " + str(m.get("text"))})
                except asyncio.TimeoutError:
                    await send({"type": "websocket.send", "text": "timed out"})
                continue
            await send({"type": "websocket.send", "text": t})
        else:
            await send({"type": "websocket.send", "bytes": m["bytes"]})


# ---- lifespan -----------------------------------------------------------------

async def lifespan(scope, receive, send):
    m = await receive()
    assert m["type"] == "lifespan.startup"
    if LIFESPAN == "fail":
        await send({"type": "lifespan.startup.failed", "message": "asgi-test startup refused"})
        return
    if LIFESPAN == "raise":
        raise RuntimeError("asgi-test startup exploded")
    if "state" in scope:
        scope["state"]["token"] = "lifespan-token"
        scope["state"]["items"] = ["startup"]
        scope["state"]["pid"] = os.getpid()
    out(f"startup-{os.getpid()}", {"time": time.time()})
    await send({"type": "lifespan.startup.complete"})
    m = await receive()
    assert m["type"] == "lifespan.shutdown"
    out(f"shutdown-{os.getpid()}", {"time": time.time()})
    await send({"type": "lifespan.shutdown.complete"})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        if LIFESPAN == "unsupported":
            raise ValueError("asgi-test: no lifespan here")
        return await lifespan(scope, receive, send)
    if scope["type"] == "websocket":
        return await ws_echo(scope, receive, send)
    q = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    handler = ROUTES.get(path) or (r_scope if path.startswith("/scope/") else None)
    if handler is None:
        await respond(send, 404, b"not found")
        return
    await handler(scope, receive, send, q)


async def nolifespan(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']}")
    await app(scope, receive, send)


class App2:
    """ASGI 2: app(scope) -> instance; await instance(receive, send)."""

    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        if self.scope["type"] == "lifespan":
            return await lifespan(self.scope, receive, send)
        await respond(send, body={"asgi": self.scope["asgi"], "path": self.scope["path"]})


app2 = App2


class CallableApp:
    """An object whose __call__ is a coroutine function: auto must see ASGI 3."""

    async def __call__(self, scope, receive, send):
        await app(scope, receive, send)


obj_app = CallableApp()
