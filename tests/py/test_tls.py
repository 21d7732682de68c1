"""TLS through the real binary: curl, Python's ssl module, `openssl s_client`
and the websockets client against gallop with certificates that
tests/tls_certs.sh makes once for the module.

Each server has a plain bind for the suite's readiness probe and a TLS bind
(its own certfile=..., or the --certfile flags with ",plain" on the probe's)."""
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import websockets

from conftest import REPO, Server, free_port

APP_WSGI = "tls_app:wsgi"
APP_ASGI = "tls_app:asgi"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["sh", os.path.join(REPO, "tests", "tls_certs.sh"), str(d)], check=True)
    return d


def start(app, certs, tmp_path, bind_opts=None, args=(), workers=1, **kw):
    """gallop with a plain probe bind and a TLS bind; returns (server, tls_port).
    bind_opts: the TLS bind's options (default: its own certificate and key);
    "" means the --certfile flags in args apply."""
    tport = free_port()
    if bind_opts is None:
        bind_opts = f",certfile={certs}/server.pem,keyfile={certs}/server.key"
    plain = free_port()
    s = Server(app, args=list(args), workers=workers, tmp_path=tmp_path,
               bind=f"127.0.0.1:{plain},plain", extra_binds=[f"127.0.0.1:{tport}{bind_opts}"],
               wait=False, **kw)
    s.port = plain
    s.wait_ready()
    return s, tport


def client_ctx(certs, cert=None, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(certs / f"{cert}.pem"), str(certs / f"{cert}.key"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_conn(port, ctx, timeout=5):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def request(sock, method="GET", path="/", body=b"", close=False):
    """One request on sock; returns (status, headers dict, body)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        assert b, buf
        buf += b
    h, _, rest = buf.partition(b"\r\n\r\n")
    lines = h.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        b = sock.recv(65536)
        assert b
        rest += b
    return int(lines[0].split()[1]), headers, rest[:n]


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True,
                          timeout=timeout)


def wait_log(s, needle, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in s.log():
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in the log:\n{s.log()}")


def peer_cn(port, certs):
    with tls_conn(port, client_ctx(certs)) as c:
        return dict(x[0] for x in c.getpeercert()["subject"])["commonName"]


# ---- HTTPS with curl, Python's ssl and openssl s_client -----------------------------

def test_curl_get_and_post(certs, tmp_path):
    s, port = start(APP_WSGI, certs, tmp_path)
    try:
        url = f"https://localhost:{port}/"
        r = curl("--cacert", str(certs / "ca.pem"), "--resolve", f"localhost:{port}:127.0.0.1", url)
        assert r.returncode == 0, r.stderr
        env = json.loads(r.stdout)
        assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
        assert env["SSL_PROTOCOL"] == "TLSv1.3" and env["SSL_CIPHER"]
        assert env["SSL_CLIENT_S_DN"] is None and env["SSL_CLIENT_CERT"] is None
        body = os.urandom(300000)
        (tmp_path / "body").write_bytes(body)
        r = curl("--cacert", str(certs / "ca.pem"), "--resolve", f"localhost:{port}:127.0.0.1",
                 "--data-binary", f"@{tmp_path / 'body'}", url)
        assert r.returncode == 0, r.stderr
        assert r.stdout == body
        # the plain bind stays plain
        r = curl(f"http://127.0.0.1:{s.port}/")
        assert json.loads(r.stdout)["wsgi.url_scheme"] == "http"
    finally:
        s.stop()


def test_python_ssl_keep_alive_alpn_and_tls12(certs, tmp_path):
    s, port = start(APP_WSGI, certs, tmp_path)
    try:
        with tls_conn(port, client_ctx(certs)) as c:
            assert c.version() == "TLSv1.3"
            assert c.selected_alpn_protocol() == "http/1.1"
            for i in range(3):  # one connection, three requests
                st, _, body = request(c, "POST", "/", b"x" * i * 1000)
                assert st == 200 and body == b"x" * i * 1000
        ctx = client_ctx(certs)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with tls_conn(port, ctx) as c:
            assert c.version() == "TLSv1.2"
            st, _, body = request(c)
            assert json.loads(body)["SSL_PROTOCOL"] == "TLSv1.2"
    finally:
        s.stop()


def test_openssl_s_client(certs, tmp_path):
    s, port = start(APP_WSGI, certs, tmp_path, args=["--log-level", "debug"])
    try:
        r = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
             "-CAfile", str(certs / "ca.pem"), "-alpn", "http/1.1", "-ign_eof"],
            input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            capture_output=True, timeout=10)
        out = r.stdout.decode("latin-1")
        assert "Protocol  : TLSv1.3" in out or "New, TLSv1.3" in out, out
        assert "ALPN protocol: http/1.1" in out, out
        assert "Verify return code: 0 (ok)" in out, out
        assert "HTTP/1.1 200 OK" in out and '"wsgi.url_scheme": "https"' in out
        wait_log(s, "TLSv1.3 TLS_AES_256_GCM_SHA384, ALPN http/1.1, ")
    finally:
        s.stop()


def test_min_version_and_flags_for_all_binds(certs, tmp_path):
    """--certfile/--keyfile (gunicorn's flags) on every bind but the plain one;
    --ssl-min-version TLSv1.3 refuses a TLS 1.2 client."""
    s, port = start(APP_WSGI, certs, tmp_path, bind_opts="",
                    args=["--certfile", str(certs / "server.pem"), "--keyfile",
                          str(certs / "server.key"), "--ssl-min-version", "TLSv1.3"])
    try:
        assert peer_cn(port, certs) == "localhost"
        ctx = client_ctx(certs)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            tls_conn(port, ctx).close()
        wait_log(s, "failed: unsupported protocol")
    finally:
        s.stop()


def test_encrypted_key_and_config_file(certs, tmp_path):
    """gunicorn.conf.py keys: certfile, keyfile, keyfile_password, cert_reqs."""
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"import ssl\ncertfile = '{certs}/server.pem'\n"
                    f"keyfile = '{certs}/server-enc.key'\nkeyfile_password = 'secret'\n"
                    "cert_reqs = ssl.CERT_NONE\nssl_version = ssl.PROTOCOL_TLS_SERVER\n")
    s, port = start(APP_WSGI, certs, tmp_path, bind_opts="", args=["-c", str(conf)])
    try:
        assert peer_cn(port, certs) == "localhost"
    finally:
        s.stop()


# ---- bad certificates ------------------------------------------------------------------

@pytest.mark.parametrize("opts,needle", [
    (["--certfile", "{c}/missing.pem"], "--certfile {c}/missing.pem: No such file or directory"),
    (["--certfile", "{c}/server.pem", "--keyfile", "{c}/server2.key"], "does not match"),
    (["--certfile", "{c}/server.pem", "--keyfile", "{c}/server-enc.key"], "give --keyfile-password"),
    (["--certfile", "{c}/server.pem", "--keyfile", "{c}/server.key", "--cert-reqs", "2"],
     "needs --ca-certs"),
    (["--keyfile", "{c}/server.key"], "TLS settings without a certificate"),
])
def test_bad_files_at_start_are_one_line_and_exit(certs, tmp_path, opts, needle):
    opts = [o.format(c=certs) for o in opts]
    r = subprocess.run([os.environ.get("GALLOP_BIN", os.path.join(REPO, "build", "gallop")),
                        "--bind", f"127.0.0.1:{free_port()}", *opts, APP_WSGI],
                       capture_output=True, timeout=20, cwd=os.path.join(REPO, "tests", "py", "apps"))
    err = r.stderr.decode()
    assert r.returncode in (1, 2), err
    assert needle.format(c=certs) in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert "booting worker" not in err + r.stdout.decode()


def master_maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_master_maps_openssl_only_for_a_tls_listener(certs, tmp_path):
    """The master binary links no OpenSSL: it loads gallop-tls.so when a
    listener speaks TLS (issue 10: a master under 4 MB)."""
    s, tport = start(APP_WSGI, certs, tmp_path)
    try:
        assert "libssl" in master_maps(s.pid) and "gallop-tls.so" in master_maps(s.pid)
        status, _, body = request(tls_conn(tport, client_ctx(certs)), close=True)
        assert status == 200 and json.loads(body)["wsgi.url_scheme"] == "https"
    finally:
        s.stop()
    plain = Server(APP_WSGI, workers=1, tmp_path=tmp_path)
    try:
        maps = master_maps(plain.pid)
        assert "libssl" not in maps and "libcrypto" not in maps and "gallop-tls.so" not in maps
    finally:
        plain.stop()


def test_tls_without_gallop_tls_so_is_one_line_and_exit(certs, tmp_path):
    """A copy of gallop and its bridge without gallop-tls.so: plain listeners
    serve, a TLS listener is refused at start in one line."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gallop_bin = os.environ.get("GALLOP_BIN", os.path.join(REPO, "build", "gallop"))
    shutil.copy2(gallop_bin, bindir / "gallop")
    shutil.copy2(os.path.join(os.path.dirname(gallop_bin), "gallop-python.so"), bindir)
    r = subprocess.run([str(bindir / "gallop"), "--bind", f"127.0.0.1:{free_port()}",
                        "--certfile", f"{certs}/server.pem", "--keyfile", f"{certs}/server.key",
                        APP_WSGI], capture_output=True, timeout=20,
                       cwd=os.path.join(REPO, "tests", "py", "apps"))
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert "TLS needs gallop-tls.so beside the gallop binary" in err, err
    assert str(bindir / "gallop-tls.so") in err, err
    port = free_port()
    p = subprocess.Popen([str(bindir / "gallop"), "--workers", "1", "--bind", f"127.0.0.1:{port}",
                          APP_WSGI], cwd=os.path.join(REPO, "tests", "py", "apps"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                    c.sendall(b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    assert b" 200 " in c.recv(4096)
                    break
            except ConnectionRefusedError:
                assert time.time() < deadline, "plain gallop from the copy never served"
                time.sleep(0.2)
    finally:
        p.terminate()
        assert p.wait(15) == 0


def test_expired_certificate(certs, tmp_path):
    s, port = start(APP_WSGI, certs, tmp_path,
                    bind_opts=f",certfile={certs}/expired.pem,keyfile={certs}/expired.key")
    try:
        assert "the certificate expired on Jan  2 00:00:00 2020 GMT" in s.log()
        with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
            tls_conn(port, client_ctx(certs)).close()
        wait_log(s, "tls: handshake with 127.0.0.1:")
        lines = [ln for ln in s.log().splitlines() if "tls: handshake" in ln]
        assert len(lines) == 1 and "[INFO]" in lines[0] and "certificate expired" in lines[0], lines
    finally:
        s.stop()


# ---- client certificates ---------------------------------------------------------------

def test_mtls_required(certs, tmp_path):
    s, port = start(APP_WSGI, certs, tmp_path,
                    bind_opts=f",certfile={certs}/server.pem,keyfile={certs}/server.key,"
                              f"ca-certs={certs}/ca.pem,cert-reqs=2")
    try:
        with tls_conn(port, client_ctx(certs, "client")) as c:
            st, _, body = request(c)
            env = json.loads(body)
            assert env["SSL_CLIENT_S_DN"] == "CN=alice,O=Gallop Test,C=FR"
            assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----\n")
        for who in (None, "stranger"):  # no certificate; one our CA did not sign
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with tls_conn(port, client_ctx(certs, who)) as c:
                    request(c)  # TLS 1.3: the refusal arrives after the client's Finished
        wait_log(s, "peer did not return a certificate")
        r = curl("--cacert", str(certs / "ca.pem"), "--resolve", f"localhost:{port}:127.0.0.1",
                 "--cert", str(certs / "client.pem"), "--key", str(certs / "client.key"),
                 f"https://localhost:{port}/")
        assert json.loads(r.stdout)["SSL_CLIENT_S_DN"] == "CN=alice,O=Gallop Test,C=FR"
    finally:
        s.stop()


def test_mtls_optional_asgi_tls_extension(certs, tmp_path):
    s, port = start(APP_ASGI, certs, tmp_path,
                    bind_opts=f",certfile={certs}/server.pem,keyfile={certs}/server.key,"
                              f"ca-certs={certs}/ca.pem,cert-reqs=1")
    try:
        with tls_conn(port, client_ctx(certs, "client")) as c:
            info = json.loads(request(c)[2])
        assert info["scheme"] == "https"
        tls = info["tls"]
        assert tls["client_cert_name"] == "CN=alice,O=Gallop Test,C=FR"
        assert len(tls["client_cert_chain"]) == 1
        assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
        assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
        assert tls["tls_version"] == 0x0304 and tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
        assert tls["client_cert_error"] is None
        with tls_conn(port, client_ctx(certs)) as c:  # optional: none is fine
            info = json.loads(request(c)[2])
        assert info["tls"]["client_cert_name"] is None and info["tls"]["client_cert_chain"] == []
        # plain: no tls extension
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            info = json.loads(request(c)[2])
        assert info == {"scheme": "http", "tls": None}
    finally:
        s.stop()


def test_wss(certs, tmp_path):
    s, port = start(APP_ASGI, certs, tmp_path)

    async def talk():
        ctx = client_ctx(certs, alpn=None)
        async with websockets.connect(f"wss://localhost:{port}/ws", ssl=ctx) as ws:
            first = json.loads(await ws.recv())
            await ws.send("x" * 70000)
            echo = await ws.recv()
            return first, echo

    try:
        first, echo = asyncio.run(asyncio.wait_for(talk(), 10))
        assert first["scheme"] == "wss" and first["tls"]["tls_version"] == 0x0304
        assert echo == "x" * 70000
    finally:
        s.stop()


# ---- the handshake in the loop ---------------------------------------------------------

def test_handshake_stall_is_closed_after_header_timeout(certs, tmp_path):
    s, port = start(APP_WSGI, certs, tmp_path, args=["--header-timeout", "1"])
    try:
        with socket.create_connection(("127.0.0.1", port)) as idle, \
                socket.create_connection(("127.0.0.1", port)) as partial:
            partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello's first bytes
            t0 = time.monotonic()
            # meanwhile the worker serves others
            assert peer_cn(port, certs) == "localhost"
            for c in (idle, partial):
                c.settimeout(5)
                assert c.recv(100) == b""
            took = time.monotonic() - t0
            assert 0.7 < took < 3.5, took
    finally:
        s.stop()


def test_garbage_instead_of_client_hello(certs, tmp_path):
    s, port = start(APP_WSGI, certs, tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = c.recv(1000)
            assert not data.startswith(b"HTTP/")  # a TLS alert, or nothing
            while data:
                data = c.recv(1000)
        wait_log(s, "failed: http request")
        lines = [ln for ln in s.log().splitlines() if "tls:" in ln]
        assert len(lines) == 1 and "[INFO]" in lines[0], lines
        assert "Traceback" not in s.log()
        assert peer_cn(port, certs) == "localhost"  # the worker serves on
    finally:
        s.stop()


def test_static_sendfile_over_tls(certs, tmp_path):
    d = tmp_path / "static"
    d.mkdir()
    data = os.urandom(3 << 20)
    (d / "big.bin").write_bytes(data)
    s, port = start(APP_WSGI, certs, tmp_path, args=["--static", f"/s={d}"])
    try:
        r = curl("--cacert", str(certs / "ca.pem"), "--resolve", f"localhost:{port}:127.0.0.1",
                 f"https://localhost:{port}/s/big.bin")
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(data).digest()
        r = curl("--cacert", str(certs / "ca.pem"), "--resolve", f"localhost:{port}:127.0.0.1",
                 "-r", "1000-200999", f"https://localhost:{port}/s/big.bin")
        assert r.stdout == data[1000:201000]
    finally:
        s.stop()


# ---- HUP: new certificates without dropping connections --------------------------------

def test_hup_reloads_the_certificate(certs, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(certs / "server.pem", cert)
    shutil.copy(certs / "server.key", key)
    s, port = start(APP_WSGI, certs, tmp_path, bind_opts=f",certfile={cert},keyfile={key}")
    try:
        assert peer_cn(port, certs) == "localhost"
        old = tls_conn(port, client_ctx(certs))
        assert request(old)[0] == 200
        # a request in flight on the old connection across the reload
        old.sendall(b"GET /slow?1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.2)
        shutil.copy(certs / "server2.pem", cert)  # certbot renewed
        shutil.copy(certs / "server2.key", key)
        s.signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while peer_cn(port, certs) != "localhost second":
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.1)
        buf = b""
        old.settimeout(5)
        while b"\r\n\r\n" not in buf:
            b = old.recv(65536)
            assert b, "the old connection was dropped"
            buf += b
        assert buf.startswith(b"HTTP/1.1 200 ")
        old.close()
        # a broken renewal keeps the certificate that works, new workers too
        cert.write_text("not a certificate\n")
        s.signal(signal.SIGHUP)
        wait_log(s, "keeping the current certificates")
        wait_log(s, "reload complete: generation 3")
        assert peer_cn(port, certs) == "localhost second"
    finally:
        s.stop()


def test_threads_and_concurrent_clients(certs, tmp_path):
    """--threads: request threads write through the TLS transport while the
    loop handshakes with others; every echo comes back whole."""
    import concurrent.futures
    s, port = start(APP_WSGI, certs, tmp_path, args=["--threads", "4"])
    try:
        def one(i):
            body = bytes([i]) * (100000 + i)
            with tls_conn(port, client_ctx(certs)) as c:
                for _ in range(3):
                    st, _, got = request(c, "POST", "/", body)
                    assert st == 200 and got == body
            return i
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert sorted(ex.map(one, range(16))) == list(range(16))
    finally:
        s.stop()


def test_session_resumption_across_workers(certs, tmp_path):
    """The workers share the master's ticket keys: a client resumes its
    session whichever worker takes the next connection."""
    s, port = start(APP_WSGI, certs, tmp_path, workers=2)
    try:
        s.wait_workers(2)
        prev_pid, reused, across = None, 0, 0
        for i in range(40):
            args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                    "localhost", "-CAfile", str(certs / "ca.pem"), "-ign_eof",
                    "-sess_out", str(tmp_path / f"s{i}.pem")]
            if i:
                args += ["-sess_in", str(tmp_path / f"s{i - 1}.pem")]
            r = subprocess.run(args, input=b"GET /pid HTTP/1.0\r\n\r\n", capture_output=True,
                               timeout=10)
            out = r.stdout.decode("latin-1")
            pid = int(re.search(r"\r\n\r\n(\d+)", out).group(1))
            if i:
                assert "Reused, TLSv1.3" in out, out
                across += pid != prev_pid
            prev_pid = pid
            if across >= 2:
                break
        assert across >= 2, "every connection went to one worker"
    finally:
        s.stop()


def test_check_config_loads_the_certificates(certs, tmp_path):
    gallop = os.environ.get("GALLOP_BIN", os.path.join(REPO, "build", "gallop"))
    good = f"127.0.0.1:{free_port()},certfile={certs}/server.pem,keyfile={certs}/server.key"
    r = subprocess.run([gallop, "--check-config", "--bind", good, APP_WSGI], capture_output=True,
                       timeout=20)
    assert r.returncode == 0 and b"configuration OK" in r.stdout, r.stderr
    bad = good.replace("server.key", "server2.key")
    r = subprocess.run([gallop, "--check-config", "--bind", bad, APP_WSGI], capture_output=True,
                       timeout=20)
    assert r.returncode == 2 and b"does not match" in r.stderr, r.stderr


def test_insecure_bind_and_a_root_only_key_with_user(certs, tmp_path):
    """--certfile for every bind but --insecure-bind's; the master reads a
    key only root may read and workers running as nobody serve with it."""
    key = tmp_path / "secret.key"
    shutil.copy(certs / "server.key", key)
    os.chmod(key, 0o600)
    os.chmod(tmp_path, 0o755)
    plain, tport = free_port(), free_port()
    user = ["--user", "nobody", "--group", "nogroup"] if os.geteuid() == 0 else []
    s = Server(APP_WSGI, bind=f"127.0.0.1:{tport}", tmp_path=tmp_path, wait=False,
               args=["--insecure-bind", f"127.0.0.1:{plain}", "--certfile",
                     str(certs / "server.pem"), "--keyfile", str(key), *user])
    try:
        s.port = plain
        s.wait_ready()
        assert "listening at https://127.0.0.1:%d" % tport in s.log()
        assert "listening at http://127.0.0.1:%d" % plain in s.log()
        with tls_conn(tport, client_ctx(certs)) as c:
            assert json.loads(request(c)[2])["wsgi.url_scheme"] == "https"
        if user:
            w = s.workers()[0]
            with open(f"/proc/{w}/status") as f:
                uid = next(ln for ln in f if ln.startswith("Uid:")).split()[1]
            assert int(uid) != 0
    finally:
        s.stop()


# ---- HTTP/2 by ALPN ------------------------------------------------------------------

def alpn_of(port, certs, offer=("h2", "http/1.1")):
    with tls_conn(port, client_ctx(certs, alpn=offer)) as c:
        return c.selected_alpn_protocol()


@pytest.mark.parametrize("app", [APP_WSGI, APP_ASGI])
def test_h2_over_tls_by_alpn(certs, tmp_path, app):
    """A client offering h2 and http/1.1 gets h2 (curl --http2, h2load, openssl
    s_client); the app sees https on HTTP/2; one offering only http/1.1 gets it."""
    s, port = start(app, certs, tmp_path)
    try:
        assert alpn_of(port, certs) == "h2"
        assert alpn_of(port, certs, ("http/1.1",)) == "http/1.1"
        url = f"https://localhost:{port}/"
        r = curl("--http2", "--cacert", str(certs / "ca.pem"), "--resolve",
                 f"localhost:{port}:127.0.0.1", "-w", "\n%{http_version}", url)
        assert r.returncode == 0, r.stderr
        body, _, version = r.stdout.decode().rpartition("\n")
        assert version == "2"
        info = json.loads(body)
        if app == APP_WSGI:
            assert info["wsgi.url_scheme"] == "https" and info["HTTPS"] == "on"
            assert info["SSL_PROTOCOL"] == "TLSv1.3"
        else:
            assert info["scheme"] == "https" and info["tls"]["tls_version"] == 0x0304
        h = subprocess.run(["h2load", "-n", "600", "-c", "3", "-m", "5", url],
                           capture_output=True, timeout=30)
        out = h.stdout.decode()
        assert "Application protocol: h2" in out, out
        assert "600 succeeded, 0 failed, 0 errored" in out, out
        r = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
             "-CAfile", str(certs / "ca.pem"), "-alpn", "h2,http/1.1"],
            input=b"", capture_output=True, timeout=10)
        assert "ALPN protocol: h2" in r.stdout.decode("latin-1")
    finally:
        s.stop()


@pytest.mark.parametrize("app", [APP_WSGI, APP_ASGI])
def test_preload_with_tls_and_h2(certs, tmp_path, app):
    """--preload: the master loaded the bridge, and its forked workers make
    their TLS contexts with the bridge's core/tls (ALPN h2 included), across
    a HUP too; the master maps no second copy (gallop-tls.so)."""
    s, port = start(app, certs, tmp_path, args=["--preload"], workers=2)
    try:
        for _ in range(2):
            assert alpn_of(port, certs) == "h2"
            status, _, body = request(tls_conn(port, client_ctx(certs)), close=True)
            info = json.loads(body)
            assert status == 200
            assert info.get("wsgi.url_scheme", info.get("scheme")) == "https"
            old = set(s.workers())
            os.kill(s.pid, signal.SIGHUP)
            deadline = time.time() + 20
            while not (len(s.workers()) == 2 and not old & set(s.workers())):
                assert time.time() < deadline, "HUP did not replace the workers"
                time.sleep(0.2)
        assert "gallop-tls.so" not in master_maps(s.pid)
    finally:
        s.stop()
    assert "[ERROR]" not in s.log(), s.log()


@pytest.mark.parametrize("args", [["--http", "1"], ["--threads", "2"]])
def test_no_h2_by_alpn_where_http2_is_off(certs, tmp_path, args):
    """--http 1, and request threads (whose HTTP/2 is off, README "HTTP/2"),
    offer http/1.1 alone: a client offering h2 first still speaks HTTP/1.1."""
    s, port = start(APP_WSGI, certs, tmp_path, args=args)
    try:
        assert alpn_of(port, certs) == "http/1.1"
        r = curl("--http2", "--cacert", str(certs / "ca.pem"), "--resolve",
                 f"localhost:{port}:127.0.0.1", "-w", "\n%{http_version}",
                 f"https://localhost:{port}/")
        assert r.returncode == 0 and r.stdout.decode().endswith("\n1.1"), r
    finally:
        s.stop()
