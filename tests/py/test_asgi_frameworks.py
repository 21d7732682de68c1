"""Starlette and FastAPI apps under gallop with default settings (--interface auto)."""
import asyncio
import json
import os
import sys
import time

import httpx
import pytest
import requests
import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgitools import Gallop, wait_for  # noqa: E402

T = 10


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return tmp_path_factory.mktemp("asgi_fw")


@pytest.fixture(scope="module")
def star(outdir):
    g = Gallop("asgi_star:app", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def fast(outdir):
    g = Gallop("asgi_fast:app", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir)
    yield g
    g.stop()


# ---- Starlette --------------------------------------------------------------------

def test_starlette_detected_as_asgi3(star):
    assert "ASGI 3 app" in star.log()
    assert "unsupported" not in star.log()


def test_starlette_route_json_and_lifespan_state(star):
    r = httpx.get(star.url + "/items/42", params={"q": "x y"}, timeout=T)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"id": 42, "q": "x y", "db": "star-db"}
    assert httpx.get(star.url + "/items/notanint", timeout=T).status_code == 404


def test_starlette_post_json(star):
    r = requests.post(star.url + "/echo", json={"a": [1, 2, {"b": None}]}, timeout=T)
    assert r.json() == {"got": {"a": [1, 2, {"b": None}]}, "method": "POST"}
    assert requests.get(star.url + "/echo", timeout=T).status_code == 405


def test_starlette_streaming_response(star):
    with httpx.stream("GET", star.url + "/numbers?n=30", timeout=T) as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        lines = r.read().decode().splitlines()
    assert lines == [f"line {i}" for i in range(30)]


def test_starlette_background_task_runs_after_response(star, outdir):
    t0 = time.time()
    r = httpx.get(star.url + "/background?tag=one", timeout=T)
    assert r.status_code == 200 and r.json()["queued"] == "one"
    got = time.time()
    p = os.path.join(str(outdir), "star-bg-one")
    assert not os.path.exists(p)  # the response came before the task (it sleeps 0.2 s)
    assert wait_for(lambda: os.path.exists(p), 5)
    with open(p) as f:
        done = json.load(f)["time"]
    assert done >= r.json()["time"] and got - t0 < 5


def test_starlette_websocket(star):
    async def main():
        async with websockets.connect(star.ws_url + "/ws", open_timeout=T, close_timeout=T) as ws:
            out = []
            for m in ("one", "two", "\u00fcnicode"):
                await ws.send(m)
                out.append(json.loads(await asyncio.wait_for(ws.recv(), T)))
            return out
    assert run(main()) == [{"echo": m, "db": "star-db"} for m in ("one", "two", "\u00fcnicode")]


def test_starlette_shutdown_on_stop(outdir):
    g = Gallop("asgi_star:app", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir)
    pids = g.workers()
    assert httpx.get(g.url + "/items/1", timeout=T).status_code == 200
    assert g.stop() == 0
    for pid in pids:
        assert os.path.exists(os.path.join(str(outdir), f"star-shutdown-{pid}")), g.log()


# ---- FastAPI ------------------------------------------------------------------------

def test_fastapi_path_and_query(fast):
    r = httpx.get(fast.url + "/users/7", params={"verbose": "true", "q": "hi"}, timeout=T)
    assert r.status_code == 200
    assert r.json() == {"user_id": 7, "verbose": True, "q": "hi", "startup": True}
    r = httpx.get(fast.url + "/users/abc", timeout=T)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_fastapi_post_pydantic(fast):
    r = requests.post(fast.url + "/orders", json={"name": "widget", "quantity": 3, "tags": ["a"]}, timeout=T)
    assert r.status_code == 201
    assert r.json() == {"name": "widget", "total": 6, "tags": ["a"], "note": None}
    r = requests.post(fast.url + "/orders", json={"name": "widget"}, timeout=T)
    assert r.status_code == 422


def test_fastapi_openapi(fast):
    r = httpx.get(fast.url + "/openapi.json", timeout=T)
    assert r.status_code == 200 and "/orders" in r.json()["paths"]


def test_fastapi_websocket(fast):
    async def main():
        async with websockets.connect(fast.ws_url + "/ws/lobby", open_timeout=T, close_timeout=T) as ws:
            await ws.send(json.dumps({"n": 1}))
            return json.loads(await asyncio.wait_for(ws.recv(), T))
    assert run(main()) == {"room": "lobby", "data": {"n": 1}}


def test_fastapi_concurrent_clients(fast):
    async def main():
        async with httpx.AsyncClient(timeout=T) as c:
            rs = await asyncio.gather(*(c.get(fast.url + f"/users/{i}") for i in range(50)))
        return [r.json()["user_id"] for r in rs]
    assert run(main()) == list(range(50))
