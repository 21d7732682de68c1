"""App for the config file tests (test_conffile.py): answers with its pid
and what the config file set (GREETING from raw_env) as JSON; /boom raises."""
import json
import os


def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    if environ["PATH_INFO"] == "/nolength":  # gallop adds Content-Length to a one-piece list
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"one piece"]
    body = json.dumps({"pid": os.getpid(), "greeting": os.environ.get("GREETING"),
                       "path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    body = json.dumps({"pid": os.getpid(), "greeting": os.environ.get("GREETING"),
                       "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
