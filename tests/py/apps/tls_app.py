"""Apps for test_tls.py: what a TLS connection shows the app.

`wsgi`: GET answers the environ's scheme and TLS keys as JSON; POST echoes the
body; /pid answers the worker's pid; /slow?S sleeps S seconds first (a request in flight across a HUP).
`asgi`: the scope's scheme and tls extension as JSON; a WebSocket echoes each
message after a first one with the scope's scheme."""
import json
import os
import time

WSGI_KEYS = ("wsgi.url_scheme", "HTTPS", "SSL_PROTOCOL", "SSL_CIPHER", "SSL_CLIENT_S_DN",
             "SSL_CLIENT_CERT")


def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    if environ["PATH_INFO"] == "/pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
    else:
        body = json.dumps({k: environ.get(k) for k in WSGI_KEYS}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    info = {"scheme": scope["scheme"], "tls": scope.get("extensions", {}).get("tls")}
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(info)})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": m.get("text") or ""})
    while True:
        m = await receive()
        if not m.get("more_body"):
            break
    body = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
