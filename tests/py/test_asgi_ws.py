"""ASGI WebSockets against the real gallop binary: the `websockets` client for
the ASGI side, raw sockets with hand-built frames for RFC 6455 details."""
import asyncio
import json
import os
import socket
import struct
import sys
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgitools import (FrameReader, Gallop, close_payload, read_head, wait_for,  # noqa: E402
                       ws_frame, ws_handshake, WS_KEY)

T = 10


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return tmp_path_factory.mktemp("asgi_ws")


@pytest.fixture(scope="module")
def srv(outdir):
    g = Gallop("asgi_raw:app", "--ws-max-size", "1024", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir)
    yield g
    g.stop()


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def read_out(outdir, name, timeout=10.0):
    p = os.path.join(str(outdir), name)
    assert wait_for(lambda: os.path.exists(p), timeout), f"the app never wrote {name}"
    with open(p) as f:
        return json.load(f)


def alive(g):
    assert httpx.get(g.url + "/__ready", timeout=T).status_code == 200

    async def one():
        async with websockets.connect(g.ws_url + "/ws", open_timeout=T, close_timeout=T) as ws:
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), T) == "still here"
    run(one())


# ---- 5. many concurrent WebSockets ----------------------------------------------------

def test_100_concurrent_websockets(outdir):
    with Gallop("asgi_raw:app", workers=2, env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
        async def client(i):
            async with websockets.connect(g.ws_url + f"/ws?c={i}", open_timeout=20, close_timeout=T,
                                          max_size=None) as ws:
                for k in range(10):
                    if k % 2:
                        msg = f"client {i} message {k} " + "x" * (i * 37 % 3000)
                    else:
                        msg = bytes([i % 256, k]) * (k * 100 + 1)
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), T)
                    assert got == msg and type(got) is type(msg)
                return i

        async def main():
            return await asyncio.gather(*(client(i) for i in range(100)))

        t0 = time.monotonic()
        done = run(main(), timeout=60)
        assert sorted(done) == list(range(100))
        assert time.monotonic() - t0 < 60
        assert "Exception" not in g.log()


# ---- the ASGI side ------------------------------------------------------------------

def test_subprotocol_headers_and_scope(srv):
    async def main():
        async with websockets.connect(srv.ws_url + "/ws?x=1", subprotocols=["chat", "superchat"],
                                      extra_headers={"X-Client": "yes"}, open_timeout=T) as ws:
            assert ws.subprotocol == "superchat"
            assert ws.response_headers["x-ws-extra"] == "1"
            await ws.send("scope")
            sc = json.loads(await asyncio.wait_for(ws.recv(), T))
            await ws.send(b"\x00\xffbin")
            assert await asyncio.wait_for(ws.recv(), T) == b"\x00\xffbin"
            return sc
    sc = run(main())
    assert sc["type"] == "websocket" and sc["scheme"] == "ws"
    assert sc["subprotocols"] == ["chat", "superchat"]
    assert sc["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert sc["query_string"] == {"bytes": "x=1"}
    assert sc["extensions"].get("websocket.http.response") == {}
    assert "method" not in sc
    hs = {h["tuple"][0]["bytes"]: h["tuple"][1]["bytes"] for h in sc["headers"]}
    assert hs["x-client"] == "yes" and hs["upgrade"].lower() == "websocket"
    assert sc["state"]["token"] == "lifespan-token"


def test_server_close_with_code_and_reason(srv):
    async def main():
        async with websockets.connect(srv.ws_url + "/ws", open_timeout=T, close_timeout=T) as ws:
            await ws.send("close:4001")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
            return ws.close_code, ws.close_reason
    assert run(main()) == (4001, "bye 4001")


def test_client_close_code_reaches_app(srv, outdir):
    async def main():
        ws = await websockets.connect(srv.ws_url + "/ws?tag=cc", open_timeout=T, close_timeout=T)
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), T) == "hi"
        await ws.close(code=4002, reason="client says bye")
        return ws.close_code
    assert run(main()) == 4002
    assert read_out(outdir, "ws-cc")["code"] == 4002


def test_close_before_accept_is_403(srv):
    async def main():
        with pytest.raises(InvalidStatusCode) as ei:
            await websockets.connect(srv.ws_url + "/ws-reject", open_timeout=T)
        return ei.value.status_code
    assert run(main()) == 403


def test_denial_response(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
    with s:
        s.sendall((f"GET /ws-deny HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        st, hs, rest = read_head(s)
        hd = dict(hs)
        body = rest
        while True:
            c = s.recv(65536)
            if not c:
                break
            body += c
    assert st == 401
    assert hd["x-denied"] == "yes"
    if "content-length" in hd:
        assert body == b"no entry"
    else:
        assert b"no " in body and b"entry" in body


def test_app_exception_closes_1011(srv):
    async def main():
        async with websockets.connect(srv.ws_url + "/ws", open_timeout=T, close_timeout=T) as ws:
            await ws.send("raise")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
            return ws.close_code
    assert run(main()) == 1011
    assert wait_for(lambda: "ws-boom" in srv.log(), 5)
    alive(srv)


def test_receive_after_cancelled_receive(srv):
    async def main():
        async with websockets.connect(srv.ws_url + "/ws", open_timeout=T, close_timeout=T) as ws:
            await ws.send("wait")
            assert await asyncio.wait_for(ws.recv(), T) == "timed out"
            await ws.send("after")
            return await asyncio.wait_for(ws.recv(), T)
    assert run(main()) == "after"


def test_message_during_cancelled_receive_is_kept(srv):
    async def main():
        async with websockets.connect(srv.ws_url + "/ws", open_timeout=T, close_timeout=T) as ws:
            await ws.send("waitsleep")
            await asyncio.sleep(0.5)  # the app's receive() has timed out; it sleeps
            await ws.send("during")
            return await asyncio.wait_for(ws.recv(), T)
    assert run(main()) == "late during"


# ---- 6. RFC 6455 with raw frames ----------------------------------------------------

def test_fragmented_masked_with_ping_between(srv):
    s, rest = ws_handshake(srv.port)
    with s:
        text = "fragmented h\u00e9llo \u2603 message"
        data = text.encode()
        p1, p2, p3 = data[:5], data[5:13], data[13:]  # splits inside multi-byte characters too
        s.sendall(ws_frame(0x1, p1, fin=False, mask_key=b"\xa1\xb2\xc3\xd4"))
        s.sendall(ws_frame(0x0, p2, fin=False, mask_key=b"\x01\x02\x03\x04"))
        s.sendall(ws_frame(0x9, b"are you there", mask_key=b"\x55\x66\x77\x88"))
        s.sendall(ws_frame(0x0, p3, fin=True, mask_key=b"\x99\x00\x99\x00"))
        r = FrameReader(s, rest)
        frames = [r.frame(), r.frame()]
        assert (True, 0xA, b"are you there") in frames, frames
        assert (True, 0x1, data) in frames, frames
        # the echo is one message: exactly one text frame came back
        # close handshake: the server echoes our close
        s.sendall(ws_frame(0x8, close_payload(1000)))
        code, reason, seen = r.until_close()
        assert code == 1000 and seen == []


def test_binary_fragmented_large(srv):
    s, rest = ws_handshake(srv.port)
    with s:
        data = bytes(range(256)) * 4  # exactly --ws-max-size (1024)
        for i in range(0, 1024, 256):
            s.sendall(ws_frame(0x2 if i == 0 else 0x0, data[i:i + 256], fin=i == 768))
        fin, op, p = FrameReader(s, rest).frame()
        assert (fin, op, p) == (True, 0x2, data)


def test_invalid_utf8_closes_1007(srv):
    s, rest = ws_handshake(srv.port)
    with s:
        s.sendall(ws_frame(0x1, b"ok \xff\xfe bad"))
        code, reason, seen = FrameReader(s, rest).until_close()
        assert code == 1007
    alive(srv)


def test_invalid_utf8_across_fragments_closes_1007(srv):
    s, rest = ws_handshake(srv.port)
    with s:
        s.sendall(ws_frame(0x1, b"abc\xe2\x98", fin=False))  # a valid prefix of U+2603 ...
        s.sendall(ws_frame(0x0, b"(zz", fin=True))  # ... not continued
        code, reason, seen = FrameReader(s, rest).until_close()
        assert code == 1007
        assert seen == []


@pytest.mark.parametrize("fragmented", [False, True])
def test_oversize_closes_1009(srv, fragmented):
    s, rest = ws_handshake(srv.port)
    with s:
        if fragmented:
            for i in range(3):
                s.sendall(ws_frame(0x2 if i == 0 else 0x0, b"q" * 500, fin=i == 2))
        else:
            s.sendall(ws_frame(0x2, b"q" * 2000))
        code, reason, seen = FrameReader(s, rest).until_close()
        assert code == 1009
        assert seen == []
    alive(srv)


@pytest.mark.parametrize("kind", ["unmasked", "rsv1", "bad-opcode", "long-ping", "orphan-continuation"])
def test_protocol_errors_close_1002(srv, kind):
    other, orest = ws_handshake(srv.port)  # an innocent bystander on the same worker
    s, rest = ws_handshake(srv.port)
    with s, other:
        frame = {
            "unmasked": ws_frame(0x1, b"hello", mask=False),
            "rsv1": ws_frame(0x1, b"hello", rsv=4),
            "bad-opcode": ws_frame(0x3, b"hello"),
            "long-ping": ws_frame(0x9, b"p" * 126),
            "orphan-continuation": ws_frame(0x0, b"hello"),
        }[kind]
        s.sendall(frame)
        code, reason, seen = FrameReader(s, rest).until_close()
        assert code == 1002
        assert seen == []
        # the server closes the TCP connection after the close frame
        s.settimeout(T)
        try:
            tail = s.recv(1024)
        except ConnectionResetError:
            tail = b""
        assert tail == b""
        other.sendall(ws_frame(0x1, b"bystander"))
        assert FrameReader(other, orest).frame() == (True, 0x1, b"bystander")
    alive(srv)


def test_ping_answered_with_pong_and_empty_messages(srv):
    s, rest = ws_handshake(srv.port)
    with s:
        r = FrameReader(s, rest)
        s.sendall(ws_frame(0x9, b""))
        assert r.frame() == (True, 0xA, b"")
        s.sendall(ws_frame(0x1, b""))
        assert r.frame() == (True, 0x1, b"")
        s.sendall(ws_frame(0xA, b"unsolicited pong is ignored"))
        s.sendall(ws_frame(0x1, b"x" * 300))  # 16-bit length
        assert r.frame() == (True, 0x1, b"x" * 300)


def test_server_ping_and_timeout_1011(outdir):
    with Gallop("asgi_raw:app", "--ws-ping-interval", "0.5", "--ws-ping-timeout", "1",
                env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
        # a client that answers pings (websockets does) stays connected
        async def good():
            async with websockets.connect(g.ws_url + "/ws", open_timeout=T, close_timeout=T) as ws:
                await asyncio.sleep(2.5)
                await ws.send("alive")
                return await asyncio.wait_for(ws.recv(), T)
        # a raw client that never answers gets pinged, then closed with 1011
        s, rest = ws_handshake(g.port, path="/ws?tag=pt")
        with s:
            assert run(good()) == "alive"
            t0 = time.monotonic()
            code, reason, seen = FrameReader(s, rest).until_close()
            assert code == 1011
            assert any(op == 0x9 for op, _ in seen), seen
            assert time.monotonic() - t0 < 5
        assert read_out(outdir, "ws-pt")["code"] == 1011


def test_ping_timeout_while_the_server_keeps_sending(outdir):
    with Gallop("asgi_raw:app", "--ws-ping-interval", "0.5", "--ws-ping-timeout", "1",
                env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir) as g:
        s, rest = ws_handshake(g.port, path="/ws")
        with s:
            s.sendall(ws_frame(0x1, b"push:40"))  # 8 s of pushes; this client never answers a ping
            r = FrameReader(s, rest)
            s.settimeout(1)
            t0 = time.monotonic()
            pings = code = None
            pings = 0
            while time.monotonic() - t0 < 4.5:
                try:
                    fin, op, p = r.frame()
                except socket.timeout:
                    continue
                if op == 0x9:
                    pings += 1
                if op == 0x8:
                    code = struct.unpack("!H", p[:2])[0]
                    break
            assert pings >= 1
            assert code == 1011, f"no close 1011 within 4.5 s though the pong is {time.monotonic() - t0:.1f} s late"


# ---- sends after the peer left, close codes, denial responses ---------------------------

@pytest.fixture(scope="module")
def edge(outdir):
    g = Gallop("asgi_ws_edge:app", env={"ASGI_TEST_DIR": str(outdir)}, log_dir=outdir)
    yield g
    g.stop()


def test_send_after_client_left_raises_oserror(edge, outdir):
    worker = edge.workers()[0]

    async def main():
        async with websockets.connect(edge.ws_url + "/ticks?tag=gone", open_timeout=T, close_timeout=T) as ws:
            assert (await asyncio.wait_for(ws.recv(), T)).startswith("tick")
    run(main())
    # the endless sender stops: its send raised an OSError (Starlette's WebSocketDisconnect in newer versions)
    got = read_out(outdir, "ws-edge-gone")
    assert got["oserror"] and got["type"] == "ClientDisconnected", got
    n = got["sent"]
    time.sleep(0.3)
    assert read_out(outdir, "ws-edge-gone")["sent"] == n  # nothing kept sending
    assert edge.workers() == [worker]
    assert httpx.get(edge.url + "/ping", timeout=T).text == "pong"  # the worker serves on


@pytest.mark.parametrize("code", [1005, 1006, 999, 5000, 1004, 1015, 2000, 1000, 1001, 1011, 1014, 3000, 4999])
def test_close_codes_not_valid_on_the_wire_are_app_errors(edge, outdir, code):
    valid = code in (1000, 1001, 1011, 1014, 3000, 4999)

    async def main():
        async with websockets.connect(edge.ws_url + f"/close?code={code}", open_timeout=T,
                                      close_timeout=T) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
            return ws.close_code
    # an invalid code never goes out: the client sees the app's second close, 1000
    assert run(main()) == (code if valid else 1000)
    got = read_out(outdir, f"ws-edge-close-{code}")
    if valid:
        assert got["type"] is None, got
    else:
        assert got["type"] == "RuntimeError" and str(code) in got["text"], got


def test_large_denial_does_not_block_the_loop(edge, outdir):
    s = socket.create_connection(("127.0.0.1", edge.port), timeout=T)
    with s:
        s.sendall((f"GET /deny-big HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        # the denial's 32 MiB cannot be written while this client does not read: the same
        # (single) worker still answers other requests at once
        time.sleep(0.5)
        t0 = time.monotonic()
        assert httpx.get(edge.url + "/ping", timeout=T).text == "pong"
        assert time.monotonic() - t0 < 2.0
        st, hs, rest = read_head(s)
        body = rest
        while len(body) < 32 << 20:
            c = s.recv(4 << 20)
            if not c:
                break
            body += c
    assert st == 401 and dict(hs)["content-length"] == str(32 << 20)
    assert len(body) == 32 << 20 and body.count(b"d") == len(body)
    assert read_out(outdir, "ws-edge-deny-big")["sent"]  # its send completed once drained


def test_denial_body_not_bytes_is_an_error(edge, outdir):
    s = socket.create_connection(("127.0.0.1", edge.port), timeout=T)
    with s:
        s.sendall((f"GET /deny-str HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        st, hs, rest = read_head(s)
    assert st == 500
    got = read_out(outdir, "ws-edge-deny-str")
    assert got["type"] == "TypeError" and "bytes" in got["text"], got
    assert wait_for(lambda: "Exception in ASGI application, WebSocket" in edge.log(), 5), edge.log()
    assert httpx.get(edge.url + "/ping", timeout=T).text == "pong"
