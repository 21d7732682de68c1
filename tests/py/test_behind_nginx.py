"""gallop behind Debian's real nginx (workers as www-data, TCP and UNIX socket
upstreams, the usual proxy_set_header lines) and HAProxy (send-proxy and
send-proxy-v2): what a WSGI and an ASGI app see. Then two gallops behind one
nginx, each restarted under load (TERM, a new one on the same port): no
request may fail at the client.

Each test starts its own nginx/HAProxy with its own config in a temp dir (mode
0755, so www-data can reach the socket) on free ports; the client connects
from 127.0.0.5, an untrusted loopback address, so the address the app sees
is visibly the client's and not the proxy's."""
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import websockets

from conftest import Server, free_port, read_response

CLIENT = "127.0.0.5"
FWD = """
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto {proto};
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $conn;"""


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="gallop-proxy-")
    os.chmod(d, 0o755)  # www-data must reach the UNIX socket in it
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_port(port, proc, log, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, open(log).read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("not listening:\n" + open(log).read())


class Proc:
    """nginx or haproxy in the foreground, stopped by pid."""

    def __init__(self, cmd, log, port):
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        wait_port(port, self.proc, log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()


def start_nginx(procs, d, servers, upstreams):
    """servers: [(port, [(location, upstream, proto)])]; upstreams: {name: [server lines]}."""
    ups = "".join(f"    upstream {n} {{ {' '.join(f'server {s};' for s in lines)} keepalive 8; }}\n"
                  for n, lines in upstreams.items())
    srv = ""
    for port, locs in servers:
        srv += f"    server {{\n        listen 127.0.0.1:{port};\n"
        for loc, up, proto in locs:
            srv += (f"        location {loc} {{\n            proxy_pass http://{up};\n"
                    f"            proxy_next_upstream error timeout;{FWD.format(proto=proto)}\n        }}\n")
        srv += "    }\n"
    user = "user www-data;" if os.geteuid() == 0 else ""
    conf = f"""daemon off;
master_process on;
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/t_body; proxy_temp_path {d}/t_proxy; fastcgi_temp_path {d}/t_fcgi;
    uwsgi_temp_path {d}/t_uwsgi; scgi_temp_path {d}/t_scgi;
    map $http_upgrade $conn {{ default upgrade; '' ''; }}
{ups}{srv}}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    p = Proc(["nginx", "-e", f"{d}/nginx-error.log", "-c", path], f"{d}/nginx.out", servers[0][0])
    procs.append(p)
    return p


def start_gallop(procs, app, binds, *args, workers=1):
    """A gallop whose first bind is a plain TCP one (for the readiness check)."""
    s = Server(app, list(args), workers=workers, bind=binds[0], extra_binds=binds[1:], wait=False)
    procs.append(s)
    s.port = int(binds[0].rsplit(":", 1)[1])
    s.wait_ready()
    return s


def fetch(port, path, headers=()):
    """GET from CLIENT through the proxy; the app's JSON and our source port."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(CLIENT, 0))
    with s:
        hs = "".join(f"{k}: {v}\r\n" for k, v in headers)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: front.example:{port}\r\n{hs}Connection: close\r\n\r\n".encode())
        status, _, body, _ = read_response(s, timeout=10)
        assert status == 200, body
        return json.loads(body), s.getsockname()[1]


def view(d):
    if "client" in d:
        return {"addr": d["client"][0] if d["client"] else None, "port": d["client"][1] if d["client"] else None,
                "scheme": d["scheme"], "host": d["host"][0]}
    return {"addr": d["REMOTE_ADDR"], "port": int(d.get("REMOTE_PORT", -1)),
            "scheme": d["wsgi.url_scheme"], "host": d["HTTP_HOST"]}


def nginx_worker_uids(p):
    uids = set()
    for pid in open(f"/proc/{p.proc.pid}/task/{p.proc.pid}/children").read().split():
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("Uid:"):
                uids.add(int(line.split()[1]))
    return uids


@pytest.mark.parametrize("app", ["proxied:app", "proxied:asgi_app"])
def test_nginx_tcp_and_unix(procs, workdir, app):
    gport, nport, tls_port = free_port(), free_port(), free_port()
    sock = f"{workdir}/app.sock"
    start_gallop(procs, app, [f"127.0.0.1:{gport}", f"unix:{sock}"],
                 "--forwarded-allow-ips", "127.0.0.1,::1,unix")
    ng = start_nginx(procs, workdir,
                     [(nport, [("/tcp/", "tcp_up", "$scheme"), ("/unix/", "unix_up", "$scheme")]),
                      # as if nginx terminated TLS here
                      (tls_port, [("/", "tcp_up", "https")])],
                     {"tcp_up": [f"127.0.0.1:{gport}"], "unix_up": [f"unix:{sock}"]})
    for path in ("/tcp/x", "/unix/x"):
        v = view(fetch(nport, path)[0])
        assert v == {"addr": CLIENT, "port": 0, "scheme": "http", "host": f"front.example:{nport}"}, path
        # a hop the client made up is left of its own address: never believed
        v = view(fetch(nport, path, [("X-Forwarded-For", "6.6.6.6")])[0])
        assert v["addr"] == CLIENT, path
    v = view(fetch(tls_port, "/y")[0])
    assert v == {"addr": CLIENT, "port": 0, "scheme": "https", "host": f"front.example:{tls_port}"}
    if os.geteuid() == 0:  # checked once it served: a worker just forked may not have switched yet
        assert nginx_worker_uids(ng) == {33}  # www-data


def test_nginx_websocket_scheme(procs, workdir):
    gport, nport = free_port(), free_port()
    start_gallop(procs, "proxied:asgi_app", [f"127.0.0.1:{gport}"])
    start_nginx(procs, workdir, [(nport, [("/", "up", "https")])], {"up": [f"127.0.0.1:{gport}"]})

    async def scope():
        async with websockets.connect(f"ws://127.0.0.1:{nport}/ws") as ws:
            return json.loads(await ws.recv())

    d = asyncio.run(scope())
    assert d["scheme"] == "wss" and d["client"] == ["127.0.0.1", 0]


def test_unix_socket_too_strict_for_nginx(procs, workdir):
    """The default mode is what lets www-data in: with --umask 077 nginx gets 502."""
    nport = free_port()
    sock = f"{workdir}/strict.sock"
    s = Server("proxied:app", ["--umask", "077"], bind=f"unix:{sock}", wait=False)
    procs.append(s)
    s.wait_ready()
    start_nginx(procs, workdir, [(nport, [("/", "up", "$scheme")])], {"up": [f"unix:{sock}"]})
    c = http.client.HTTPConnection("127.0.0.1", nport, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    assert r.status == (502 if os.geteuid() == 0 else 200)


def start_haproxy(procs, d, fronts):
    """fronts: [(port, server address, send-proxy option)]."""
    cfg = "global\n    maxconn 200\ndefaults\n    mode tcp\n    timeout connect 2s\n" \
          "    timeout client 10s\n    timeout server 10s\n"
    for i, (port, addr, opt) in enumerate(fronts):
        cfg += (f"frontend f{i}\n    bind 127.0.0.1:{port}\n    default_backend b{i}\n"
                f"backend b{i}\n    server s{i} {addr} {opt}\n")
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    p = Proc(["haproxy", "-db", "-f", path], f"{d}/haproxy.out", fronts[0][0])
    procs.append(p)
    return p


@pytest.mark.parametrize("app", ["proxied:app", "proxied:asgi_app"])
def test_haproxy_send_proxy(procs, workdir, app):
    plain, pp, h1, h2, h3 = (free_port() for _ in range(5))
    sock = f"{workdir}/pp.sock"
    start_gallop(procs, app, [f"127.0.0.1:{plain}", f"127.0.0.1:{pp}", f"unix:{sock}"],
                 f"--proxy-protocol=127.0.0.1:{pp}", f"--proxy-protocol=unix:{sock}",
                 "--forwarded-allow-ips", "127.0.0.1,unix")
    start_haproxy(procs, workdir, [(h1, f"127.0.0.1:{pp}", "send-proxy"),
                                   (h2, f"127.0.0.1:{pp}", "send-proxy-v2"),
                                   (h3, sock, "send-proxy-v2")])
    for port in (h1, h2, h3):
        d, src_port = fetch(port, "/z")
        v = view(d)
        assert (v["addr"], v["port"]) == (CLIENT, src_port), (port, d)
        assert v["scheme"] == "http" and v["host"] == f"front.example:{port}"
        # TCP mode: the client's own X-Forwarded-For reaches us, and is not believed
        d, _ = fetch(port, "/z", [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https")])
        assert view(d)["addr"] == CLIENT and view(d)["scheme"] == "http"
    # straight to the PROXY listener without a header: closed unanswered
    with socket.create_connection(("127.0.0.1", pp), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100) == b""


def test_rolling_restart_behind_nginx(procs, workdir):
    """Two gallops behind nginx (keep-alive upstream, proxy_next_upstream error);
    each in turn gets TERM under load and a new one takes its port."""
    pa, pb, nport = free_port(), free_port(), free_port()
    gal = {pa: start_gallop(procs, "proxied:app", [f"127.0.0.1:{pa}"], "--keep-alive", "30", workers=2),
           pb: start_gallop(procs, "proxied:app", [f"127.0.0.1:{pb}"], "--keep-alive", "30", workers=2)}
    start_nginx(procs, workdir, [(nport, [("/", "up", "$scheme")])],
                # max_fails=0: a server refused once is tried again at once, not
                # shunned for fail_timeout (10 s), which would leave none when
                # the second one restarts
                {"up": [f"127.0.0.1:{pa} max_fails=0", f"127.0.0.1:{pb} max_fails=0"]})
    stop = threading.Event()
    results = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def client(method):
        c = None
        while not stop.is_set():
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", nport, timeout=10)
                # nginx retries a GET on the other server after any error, a POST
                # only when it was not sent yet: a POST cut by the stop shows
                c.request(method, "/r?slow", body=b"x" * 100 if method == "POST" else None)
                r = c.getresponse()
                body = r.read()
                with lock:
                    if r.status == 200:
                        results["ok"] += 1
                    else:
                        results["failed"].append((r.status, body[:200]))
            except Exception as e:  # noqa: BLE001 - every failure counts
                with lock:
                    results["failed"].append(repr(e))
                c = None
            time.sleep(0.002)  # bounded load: a few hundred requests a second

    threads = [threading.Thread(target=client, args=(m,)) for m in ("GET", "POST", "POST", "POST")]
    for t in threads:
        t.start()
    try:
        time.sleep(0.7)
        for port in (pa, pb):
            old = gal[port]
            old.signal(signal.SIGTERM)
            old.wait(20)
            gal[port] = start_gallop(procs, "proxied:app", [f"127.0.0.1:{port}"], "--keep-alive", "30",
                                     workers=2)
            time.sleep(0.7)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    errors = [ln for ln in open(f"{workdir}/nginx-error.log") if "[error]" in ln]
    assert results["failed"] == [], (len(results["failed"]), results["failed"][:2], errors[:5])
    assert results["ok"] > 100, results
