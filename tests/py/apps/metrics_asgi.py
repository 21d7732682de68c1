"""ASGI app for the metrics tests: answers with its pid; /status?N answers
N, /sleep?S sleeps S seconds (asyncio.sleep: the loop stays free), /burn?S
keeps the loop running Python for S seconds."""
import asyncio
import os
import time


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    qs = scope.get("query_string", b"").decode()
    status = 200
    if scope["path"] == "/status":
        status = int(qs or "200")
    elif scope["path"] == "/sleep":
        await asyncio.sleep(float(qs or "0.2"))
    elif scope["path"] == "/burn":
        end = time.monotonic() + float(qs or "0.3")
        while time.monotonic() < end:
            pass
    body = f"{os.getpid()}\n".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
