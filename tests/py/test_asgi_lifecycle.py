"""ASGI lifespan and graceful stop against the real gallop binary."""
import asyncio
import json
import os
import signal
import sys
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgitools import Gallop, wait_for  # noqa: E402

T = 10


def files(d, prefix):
    return sorted(f for f in os.listdir(str(d)) if f.startswith(prefix))


def load(d, name):
    with open(os.path.join(str(d), name)) as f:
        return json.load(f)


# ---- 7. lifespan -------------------------------------------------------------------

def test_lifespan_state_and_shutdown_at_term(tmp_path):
    g = Gallop("asgi_raw:app", workers=2, env={"ASGI_TEST_DIR": str(tmp_path)}, log_dir=tmp_path)
    try:
        st = httpx.get(g.url + "/scope", timeout=T).json()["state"]
        assert st["token"] == "lifespan-token" and st["items"][0] == "startup"
        assert st["pid"] in g.workers()
        # one lifespan per worker (the second worker may still be starting)
        assert wait_for(lambda: len(files(tmp_path, "startup-")) == 2, 10), files(tmp_path, "startup-")
        assert files(tmp_path, "shutdown-") == []
    finally:
        rc = g.stop()
    assert rc == 0, g.log()
    assert len(files(tmp_path, "shutdown-")) == 2, g.log()
    assert "unsupported" not in g.log()


@pytest.mark.parametrize("mode,args", [("fail", ()), ("fail", ("--lifespan", "on")),
                                       ("raise", ("--lifespan", "on"))])
def test_startup_failure_exits_4(tmp_path, mode, args):
    t0 = time.monotonic()
    g = Gallop("asgi_raw:app", *args, workers=2, env={"ASGI_TEST_DIR": str(tmp_path), "ASGI_LIFESPAN": mode},
               log_dir=tmp_path, wait=False)
    try:
        rc = g.wait_exit(15)
        log = g.log()
        assert rc == 4, log
        assert time.monotonic() - t0 < 10, log
        assert "start-up failed" in log or "startup failed" in log, log
        if mode == "fail":
            assert "asgi-test startup refused" in log
        else:
            assert "asgi-test startup exploded" in log and "Traceback" in log
        # no respawn loop: each worker booted once at most
        assert log.count("booting worker") <= 2, log
    finally:
        g.stop()


def test_exception_in_startup_under_auto_runs_without_lifespan(tmp_path):
    # auto: an app that raises before sending anything has no lifespan support
    with Gallop("asgi_raw:app", workers=1, env={"ASGI_TEST_DIR": str(tmp_path), "ASGI_LIFESPAN": "raise"},
                log_dir=tmp_path) as g:
        assert httpx.get(g.url + "/__ready", timeout=T).status_code == 200
        assert "unsupported" in g.log()


def test_app_without_lifespan_under_auto(tmp_path):
    with Gallop("asgi_raw:nolifespan", workers=1, env={"ASGI_TEST_DIR": str(tmp_path)},
                log_dir=tmp_path) as g:
        for _ in range(3):
            r = httpx.get(g.url + "/scope", timeout=T)
            assert r.status_code == 200
        assert r.json().get("state", {}) == {}
        log = g.log()
        assert log.count("appears unsupported") == 1, log
        assert "ValueError" not in log or "unsupported scope type lifespan" in log
    assert g.proc.returncode == 0


def test_lifespan_off(tmp_path):
    with Gallop("asgi_raw:app", "--lifespan", "off", workers=1, env={"ASGI_TEST_DIR": str(tmp_path)},
                log_dir=tmp_path) as g:
        st = httpx.get(g.url + "/scope", timeout=T).json().get("state", {})
        assert "token" not in st
    assert files(tmp_path, "startup-") == [] and files(tmp_path, "shutdown-") == []


def test_lifespan_on_with_unsupported_app_fails(tmp_path):
    g = Gallop("asgi_raw:nolifespan", "--lifespan", "on", workers=1, env={"ASGI_TEST_DIR": str(tmp_path)},
               log_dir=tmp_path, wait=False)
    try:
        assert g.wait_exit(15) == 4, g.log()
    finally:
        g.stop()


# ---- 9. graceful stop ----------------------------------------------------------------

def test_graceful_stop_inflight_request_and_websocket(tmp_path):
    g = Gallop("asgi_raw:app", "--graceful-timeout", "15", workers=1, env={"ASGI_TEST_DIR": str(tmp_path)},
               log_dir=tmp_path)
    try:
        async def main():
            async with httpx.AsyncClient(timeout=T) as client:
                slow = asyncio.ensure_future(client.get(g.url + "/slow?t=2&tag=g"))
                ws = await websockets.connect(g.ws_url + "/ws?tag=gs", open_timeout=T, close_timeout=T)
                await ws.send("before stop")
                assert await asyncio.wait_for(ws.recv(), T) == "before stop"
                await asyncio.sleep(0.5)  # the request is in flight
                t_term = time.time()
                os.kill(g.pid, signal.SIGTERM)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), T)
                code, reason = ws.close_code, ws.close_reason
                resp = await asyncio.wait_for(slow, T)
                return t_term, code, reason, resp.status_code, resp.text

        t_term, code, reason, status, text = asyncio.run(asyncio.wait_for(main(), 30))
        assert code == 1001, (code, reason)
        assert status == 200 and text == "slept"
        rc = g.wait_exit(15)
        assert rc == 0, g.log()
        slow_done = load(tmp_path, "slow-g")["done"]
        ws_gone = load(tmp_path, "ws-gs")
        assert ws_gone["code"] == 1001
        (sd,) = files(tmp_path, "shutdown-")
        shut = load(tmp_path, sd)["time"]
        assert shut >= slow_done and shut >= ws_gone["time"], (shut, slow_done, ws_gone)
        assert slow_done >= t_term + 1.0  # it really was in flight at TERM
    finally:
        g.stop()


def test_stop_refuses_new_work_while_draining(tmp_path):
    g = Gallop("asgi_raw:app", "--graceful-timeout", "15", workers=1, env={"ASGI_TEST_DIR": str(tmp_path)},
               log_dir=tmp_path)
    try:
        async def main():
            async with httpx.AsyncClient(timeout=5) as client:
                slow = asyncio.ensure_future(client.get(g.url + "/slow?t=2&tag=d"))
                await asyncio.sleep(0.5)
                os.kill(g.pid, signal.SIGTERM)
                await asyncio.sleep(0.5)
                try:
                    async with httpx.AsyncClient(timeout=3) as c2:
                        late = (await c2.get(g.url + "/__ready")).status_code
                except httpx.HTTPError as e:
                    late = type(e).__name__
                return (await slow).status_code, late

        status, late = asyncio.run(asyncio.wait_for(main(), 30))
        assert status == 200
        assert late != 200, "a new request was served after TERM"
        assert g.wait_exit(15) == 0
    finally:
        g.stop()
