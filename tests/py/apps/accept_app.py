"""Apps for test_accept: each answer names the worker that served it (the
X-Worker header and the body), so tests can see how load was spread."""
import os
import time


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    pid = str(os.getpid())
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    elif path == "/fork":
        # the child inherits every descriptor, the client's socket included,
        # and keeps them while it sleeps
        if os.fork() == 0:
            time.sleep(float(environ.get("QUERY_STRING") or "3"))
            os._exit(0)
    body = pid.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", pid),
                              ("Content-Length", str(len(body)))])
    return [body]


async def ws_app(scope, receive, send):
    """Echoes WebSocket messages."""
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": m.get("text") or ""})
