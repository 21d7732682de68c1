"""Behind a proxy, without the proxy: proxy headers from trusted and untrusted
peers (--forwarded-allow-ips), PROXY protocol v1/v2 headers sent by hand
(--proxy-protocol), and UNIX socket permissions and addresses, for a WSGI
and an ASGI app (tests/py/apps/proxied.py). Real nginx and HAProxy in front:
test_behind_nginx.py."""
import asyncio
import json
import os
import socket
import stat
import struct
import time

import pytest
import websockets

from conftest import free_port, read_response, recv_all, run_gallop

APPS = ("proxied:app", "proxied:asgi_app")


def seen(port, headers=(), path="/p", proxy=b""):
    """The app's JSON for one request on a fresh connection, after proxy bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        hs = "".join(f"{k}: {v}\r\n" for k, v in headers)
        s.sendall(proxy + f"GET {path} HTTP/1.1\r\nHost: app.local:8000\r\n{hs}Connection: close\r\n\r\n".encode())
        status, _, body, _ = read_response(s)
        assert status == 200, body
        return json.loads(body)


def norm(d):
    """The WSGI and ASGI views as one dict: client, port, scheme, host, root."""
    if "client" in d:
        c = d["client"]
        return {"client": c[0] if c else None, "port": c[1] if c else None, "scheme": d["scheme"],
                "host": d["host"][0] if d["host"] else None, "root": d["root_path"]}
    return {"client": d.get("REMOTE_ADDR"), "port": int(d["REMOTE_PORT"]) if "REMOTE_PORT" in d else None,
            "scheme": d["wsgi.url_scheme"], "host": d.get("HTTP_HOST"), "root": d["SCRIPT_NAME"],
            "server_port": d["SERVER_PORT"]}


ALL = [("X-Forwarded-For", "203.0.113.9, 10.1.2.3"), ("X-Forwarded-Proto", "https"),
       ("X-Forwarded-Host", "shop.example"), ("X-Forwarded-Port", "8443"),
       ("X-Forwarded-Prefix", "/shop/")]


@pytest.mark.parametrize("app", APPS)
def test_trusted_peer_headers_apply(server_factory, app):
    srv = server_factory(app, "--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8")
    v = norm(seen(srv.port, ALL))
    # 10.1.2.3 is a trusted proxy: the client is the hop left of it
    assert v["client"] == "203.0.113.9" and v["port"] == 0
    assert v["scheme"] == "https"
    assert v["host"] == "shop.example:8443"
    assert v["root"] == "/shop"
    if "server_port" in v:
        assert v["server_port"] == "8443"
    # nothing forwarded: the connection itself
    plain = norm(seen(srv.port))
    assert plain["client"] == "127.0.0.1" and plain["port"] > 0
    assert plain["scheme"] == "http" and plain["host"] == "app.local:8000" and plain["root"] == ""


@pytest.mark.parametrize("app", APPS)
def test_rfc7239_forwarded(server_factory, app):
    srv = server_factory(app)
    v = norm(seen(srv.port, [("Forwarded", 'for=198.51.100.1, for="[2001:db8::5]:4711";proto=https;host=api.example')]))
    assert v == {**v, "client": "2001:db8::5", "port": 4711, "scheme": "https", "host": "api.example"}
    # X-Forwarded-* present: Forwarded is ignored (nginx passes a client's own on)
    v = norm(seen(srv.port, [("Forwarded", "for=6.6.6.6;proto=https"), ("X-Forwarded-For", "192.0.2.44")]))
    assert v["client"] == "192.0.2.44" and v["scheme"] == "http"


@pytest.mark.parametrize("app", APPS)
def test_untrusted_peer_changes_nothing(server_factory, app):
    srv = server_factory(app, "--forwarded-allow-ips", "10.0.0.1")
    d = seen(srv.port, ALL + [("Forwarded", "for=6.6.6.6;proto=https")])
    v = norm(d)
    assert v["client"] == "127.0.0.1" and v["port"] > 0
    assert v["scheme"] == "http" and v["host"] == "app.local:8000" and v["root"] == ""
    # passed on untouched
    if "HTTP_X_FORWARDED_FOR" in d:
        assert d["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 10.1.2.3"
        assert d["HTTP_FORWARDED"] == "for=6.6.6.6;proto=https"


@pytest.mark.parametrize("app", APPS)
def test_no_proxy_headers(server_factory, app):
    srv = server_factory(app, "--no-proxy-headers", "--forwarded-allow-ips", "*")
    v = norm(seen(srv.port, ALL))
    assert v["client"] == "127.0.0.1" and v["scheme"] == "http" and v["host"] == "app.local:8000"
    on = server_factory(app, "--no-proxy-headers", "--proxy-headers")  # the last one wins
    assert norm(seen(on.port, ALL))["scheme"] == "https"


def test_access_log_shows_the_client(server_factory, tmp_path):
    log = tmp_path / "access.log"
    srv = server_factory("proxied:app", "--access-log", str(log))
    seen(srv.port, [("X-Forwarded-For", "192.0.2.61")], path="/logged")
    seen(srv.port, path="/logged")
    untrusted = server_factory("proxied:app", "--access-log", str(log), "--forwarded-allow-ips", "10.0.0.1")
    seen(untrusted.port, [("X-Forwarded-For", "192.0.2.62")], path="/logged")
    deadline = time.monotonic() + 5
    while log.read_text().count("/logged") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    hosts = [ln.split()[0] for ln in log.read_text().splitlines() if "/logged" in ln]
    assert hosts == ["192.0.2.61", "127.0.0.1", "127.0.0.1"], hosts


def test_ipv6_peer(server_factory):
    port = free_port(socket.AF_INET6, "::1")
    srv = server_factory("proxied:asgi_app", bind=f"[::1]:{port}", wait=False)
    deadline = time.monotonic() + 15
    while "ready" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    with socket.create_connection(("::1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 2001:db8::77\r\nConnection: close\r\n\r\n")
        status, _, body, _ = read_response(s)
    assert json.loads(body)["client"] == ["2001:db8::77", 0]  # ::1 is trusted by default


@pytest.mark.parametrize("args", [("--threads", "2"), ("--body-buffer-size", "1024")])
def test_threads_and_held_bodies(server_factory, args):
    """The request reaches the app through a request thread, or after its body
    was read ahead (the head parsed again): the proxy headers still count."""
    srv = server_factory("proxied:app", *args)
    body = b"x" * 50000
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /b?slow HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.71\r\n"
                  b"X-Forwarded-Proto: https\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        for i in range(0, len(body), 10000):
            s.sendall(body[i:i + 10000])
            time.sleep(0.01)
        status, _, resp, _ = read_response(s)
    d = json.loads(resp)
    assert (d["REMOTE_ADDR"], d["wsgi.url_scheme"]) == ("192.0.2.71", "https")


def test_forwarded_allow_ips_from_environment(server_factory):
    srv = server_factory("proxied:app", env={"FORWARDED_ALLOW_IPS": "10.9.9.9"})
    assert seen(srv.port, [("X-Forwarded-For", "203.0.113.9")])["REMOTE_ADDR"] == "127.0.0.1"
    srv2 = server_factory("proxied:app", "--forwarded-allow-ips", "127.0.0.0/8",
                          env={"FORWARDED_ALLOW_IPS": "10.9.9.9"})
    assert seen(srv2.port, [("X-Forwarded-For", "203.0.113.9")])["REMOTE_ADDR"] == "203.0.113.9"


def test_spoofed_hops_left_of_the_client_are_ignored(server_factory):
    srv = server_factory("proxied:app")  # default: 127.0.0.1,::1
    # a client at 127.0.0.7 (not trusted) forged a hop; our proxy appended it
    d = seen(srv.port, [("X-Forwarded-For", "6.6.6.6, 127.0.0.7")])
    assert d["REMOTE_ADDR"] == "127.0.0.7"
    # every hop trusted: the left-most
    assert seen(srv.port, [("X-Forwarded-For", "::1, 127.0.0.1")])["REMOTE_ADDR"] == "::1"
    star = server_factory("proxied:app", "--forwarded-allow-ips", "*")
    assert seen(star.port, [("X-Forwarded-For", "6.6.6.6, 127.0.0.7")])["REMOTE_ADDR"] == "6.6.6.6"


@pytest.mark.parametrize("app", APPS)
def test_malformed_values_are_ignored(server_factory, app):
    srv = server_factory(app)
    bad = [("X-Forwarded-For", "not-an-ip"), ("X-Forwarded-Proto", "gopher"),
           ("X-Forwarded-Host", "a b/c"), ("X-Forwarded-Port", "99999"),
           ("X-Forwarded-Prefix", "no-slash"), ("Forwarded", 'for="unterminated')]
    for h in bad + [tuple(bad)]:
        hs = list(h) if isinstance(h[0], tuple) else [h]
        v = norm(seen(srv.port, hs))
        assert v["client"] == "127.0.0.1" and v["port"] > 0, hs
        assert v["scheme"] == "http" and v["host"] == "app.local:8000" and v["root"] == "", hs
    # one bad value spoils only itself
    v = norm(seen(srv.port, [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Proto", "gopher")]))
    assert v["client"] == "192.0.2.1" and v["scheme"] == "http"
    # the worker is still the same one: nothing crashed
    assert len(srv.workers()) == 1


def test_websocket_scheme(server_factory):
    srv = server_factory("proxied:asgi_app")

    async def scope(headers):
        async with websockets.connect(f"ws://127.0.0.1:{srv.port}/ws", extra_headers=headers) as ws:
            return json.loads(await ws.recv())

    assert asyncio.run(scope([]))["scheme"] == "ws"
    for proto, want in (("https", "wss"), ("wss", "wss"), ("http", "ws"), ("ws", "ws")):
        d = asyncio.run(scope([("X-Forwarded-Proto", proto), ("X-Forwarded-For", "192.0.2.8")]))
        assert d["scheme"] == want and d["client"] == ["192.0.2.8", 0], (proto, d)


def test_root_path_and_prefix_combine(server_factory):
    srv = server_factory("proxied:app", "--root-path", "/api")
    d = seen(srv.port, [("X-Forwarded-Prefix", "/site")], path="/api/items")
    assert d["SCRIPT_NAME"] == "/site/api" and d["PATH_INFO"] == "/items"


def test_config_file_names(server_factory, tmp_path):
    """gunicorn's setting names in a config file: forwarded_allow_ips, proxy_protocol."""
    conf = tmp_path / "gallop.conf"
    conf.write_text("forwarded_allow_ips = 127.0.0.1, 10.0.0.0/8\nproxy_protocol = True\n")
    srv = server_factory("proxied:app", "-c", str(conf), wait=False)
    deadline = time.monotonic() + 15
    while "ready" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    d = seen(srv.port, [("X-Forwarded-For", "192.0.2.3, 10.0.0.9")],
             proxy=b"PROXY TCP4 127.0.0.1 127.0.0.1 1000 80\r\n")
    assert d["REMOTE_ADDR"] == "192.0.2.3"


def test_bad_flags_exit_2():
    for args, msg in ((["--forwarded-allow-ips", "localhost"], "invalid --forwarded-allow-ips entry 'localhost'"),
                      (["--forwarded-allow-ips", "10.0.0.0/33"], "10.0.0.0/33"),
                      (["--proxy-protocol=127.0.0.1:1", "--bind", "127.0.0.1:2"],
                       "not one of the --bind addresses")):
        r = run_gallop(args + ["proxied:app"])
        assert r.returncode == 2, r
        assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr


# ---- PROXY protocol -------------------------------------------------------------------

def v2_header(src, sport, dst="127.0.0.1", dport=80, cmd=0x21, tlv=b""):
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    a = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst if fam == socket.AF_INET else "::1")
    body = a + struct.pack("!HH", sport, dport) + tlv
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([cmd, 0x11 if fam == socket.AF_INET else 0x21])
            + struct.pack("!H", len(body)) + body)


@pytest.fixture(scope="module")
def pp(module_server_factory):
    """One gallop with a plain listener and a PROXY one (the per-bind form)."""
    pport = free_port()
    srv = module_server_factory("proxied:app", "--bind", f"127.0.0.1:{pport}",
                                f"--proxy-protocol=127.0.0.1:{pport}", "--header-timeout", "1")
    srv.pport = pport
    return srv


def test_proxy_v1_and_v2(pp):
    d = seen(pp.pport, proxy=b"PROXY TCP4 198.51.100.7 127.0.0.1 40001 80\r\n")
    assert (d["REMOTE_ADDR"], d["REMOTE_PORT"]) == ("198.51.100.7", "40001")
    d = seen(pp.pport, proxy=b"PROXY TCP6 2001:db8::9 ::1 40002 80\r\n")
    assert (d["REMOTE_ADDR"], d["REMOTE_PORT"]) == ("2001:db8::9", "40002")
    d = seen(pp.pport, proxy=v2_header("203.0.113.50", 40003, tlv=b"\x04\x00\x03abc"))
    assert (d["REMOTE_ADDR"], d["REMOTE_PORT"]) == ("203.0.113.50", "40003")
    # UNKNOWN and LOCAL (health checks): the connection's own address
    d = seen(pp.pport, proxy=b"PROXY UNKNOWN\r\n")
    assert d["REMOTE_ADDR"] == "127.0.0.1" and d["REMOTE_PORT"] != "0"
    d = seen(pp.pport, proxy=v2_header("203.0.113.50", 1, cmd=0x20))
    assert d["REMOTE_ADDR"] == "127.0.0.1"
    # the plain listener of the same server needs none
    assert seen(pp.port)["REMOTE_ADDR"] == "127.0.0.1"


def test_proxy_header_in_pieces_and_keep_alive(pp):
    with socket.create_connection(("127.0.0.1", pp.pport), timeout=5) as s:
        for b in b"PROXY TCP4 192.0.2.77 127.0.0.1 5555 80\r\n":
            s.sendall(bytes([b]))
            time.sleep(0.002)
        for _ in range(2):  # the address holds for every request of the connection
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body, _ = read_response(s)
            assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "192.0.2.77"


def test_proxy_client_is_not_trusted_for_headers(pp):
    # HAProxy in TCP mode passes the client's own headers: they count only
    # when the client the PROXY header names is itself trusted
    d = seen(pp.pport, [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https")],
             proxy=b"PROXY TCP4 198.51.100.7 127.0.0.1 40001 80\r\n")
    assert d["REMOTE_ADDR"] == "198.51.100.7" and d["wsgi.url_scheme"] == "http"
    d = seen(pp.pport, [("X-Forwarded-For", "192.0.2.5"), ("X-Forwarded-Proto", "https")],
             proxy=b"PROXY TCP4 127.0.0.1 127.0.0.1 40001 80\r\n")
    assert d["REMOTE_ADDR"] == "192.0.2.5" and d["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                  b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                  b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                  b"PROXY " + b"x" * 200,
                                  b"\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c" + b"\x00" * 12])
def test_proxy_bad_header_closes(pp, data):
    with socket.create_connection(("127.0.0.1", pp.pport), timeout=5) as s:
        s.sendall(data)
        assert recv_all(s, 3) == b""  # closed, nothing answered


def test_proxy_header_timeout(pp):
    with socket.create_connection(("127.0.0.1", pp.pport), timeout=5) as s:
        s.sendall(b"PROXY TCP4 1.2.3.4")
        t = time.monotonic()
        assert recv_all(s, 5) == b""
        assert 0.5 < time.monotonic() - t < 4  # --header-timeout 1


def test_proxy_only_from_trusted_peers(server_factory):
    srv = server_factory("proxied:app", "--proxy-protocol", "--forwarded-allow-ips", "10.0.0.1",
                         wait=False)
    deadline = time.monotonic() + 15
    while "ready" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert recv_all(s, 3) == b""
        except ConnectionResetError:
            pass
    time.sleep(0.2)
    assert "not in --forwarded-allow-ips" in srv.log()


# ---- UNIX sockets -----------------------------------------------------------------------

def unix_get(path, headers=()):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    with s:
        hs = "".join(f"{k}: {v}\r\n" for k, v in headers)
        s.sendall(f"GET /u HTTP/1.1\r\nHost: app.local\r\n{hs}Connection: close\r\n\r\n".encode())
        status, _, body, _ = read_response(s)
        assert status == 200
        return json.loads(body)


def start_unix(server_factory, tmp_path, app, *args):
    path = str(tmp_path / "app.sock")
    srv = server_factory(app, *args, bind=f"unix:{path}", wait=False)
    deadline = time.monotonic() + 15
    while "ready" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    return srv, path


@pytest.mark.parametrize("umask,mode", [(None, 0o777), ("007", 0o770), ("077", 0o700)])
def test_unix_socket_mode(server_factory, tmp_path, umask, mode):
    args = ("--umask", umask) if umask else ()
    srv, path = start_unix(server_factory, tmp_path, "proxied:app", *args)
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == mode, oct(st.st_mode)


def test_unix_remote_addr(server_factory, tmp_path):
    srv, path = start_unix(server_factory, tmp_path, "proxied:app")
    d = unix_get(path, [("X-Forwarded-For", "192.0.2.1")])
    assert d["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in d  # as gunicorn; not trusted
    (tmp_path / "b").mkdir()
    srv2, path2 = start_unix(server_factory, tmp_path / "b", "proxied:asgi_app",
                             "--forwarded-allow-ips", "unix")
    d = unix_get(path2, [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Proto", "https")])
    assert d["client"] == ["192.0.2.1", 0] and d["scheme"] == "https"
    d = unix_get(path2)
    assert d["client"] is None
