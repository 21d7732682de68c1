"""I/O-bound endpoint: every request awaits 100 ms, as if for a database."""
import asyncio


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(0.1)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
