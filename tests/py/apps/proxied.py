"""What an app behind a proxy sees: the client, scheme, host, port and mount
point, as JSON, from a WSGI app (app) and an ASGI one (asgi_app; WebSockets
get the same JSON as one text message)."""
import json
import os
import time


def app(environ, start_response):
    if environ.get("QUERY_STRING") == "slow":  # in flight when a stop comes
        environ["wsgi.input"].read()
        time.sleep(0.03)
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME",
            "SERVER_PORT", "SCRIPT_NAME", "PATH_INFO", "HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")
    d = {k: environ[k] for k in keys if k in environ}
    d["pid"] = os.getpid()
    body = json.dumps(d).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def describe_scope(scope):
    headers = {}
    for k, v in scope["headers"]:
        headers.setdefault(k.decode("latin-1"), []).append(v.decode("latin-1"))
    return {"client": scope.get("client"), "scheme": scope["scheme"],
            "host": headers.get("host"), "root_path": scope["root_path"],
            "path": scope["path"], "server": scope.get("server"), "pid": os.getpid()}


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps(describe_scope(scope)).encode()
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body.decode()})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
