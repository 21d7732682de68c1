"""What users do after the connection-layer redesign: real clients and real
frameworks against the real binary, each test a thing that once broke."""
import http.client
import socket
import subprocess
import time

from conftest import GALLOP_BIN, recv_all


def test_tune_shows_the_traceback_of_an_app_that_does_not_import(tmp_path):
    """tune's error says "(traceback below)": the traceback must follow it,
    or the user cannot tell which import of the app failed."""
    (tmp_path / "badimport.py").write_text("import no_such_dependency_xyz\n")
    p = subprocess.run([GALLOP_BIN, "tune", "badimport:app", "--chdir", str(tmp_path),
                        "--duration", "0.5"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    err = p.stderr
    assert "raised an exception while importing (traceback below)" in err, err
    below = err[err.index("(traceback below)"):]
    assert "Traceback (most recent call last):" in below, err
    assert 'badimport.py", line 1' in below, err
    assert "ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in below, err
    # only the worker's traceback, not the master's own lines
    assert "shutting down" not in below, err


def test_head_of_a_flask_stream_claims_no_empty_body(server_factory):
    """Flask answers HEAD with no body at all; gallop must not turn that into
    "Content-Length: 0" (a cache or client would take the GET to be empty).
    gunicorn sends no length; the same keep-alive connection then GETs the
    whole stream."""
    srv = server_factory("flask_stream:app")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("HEAD", "/stream?pause=0")
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Length") is None, r.getheaders()
    assert r.read() == b""
    conn.request("GET", "/stream?pause=0")
    r = conn.getresponse()
    assert r.status == 200
    assert r.read() == b"".join(b"piece %d of /stream\n" % i for i in range(3))
    conn.close()


BIG_ASGI = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"50000000")]})
        for i in range(50):
            await send({"type": "http.response.body", "body": b"x" * 1000000,
                        "more_body": i < 49})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
'''


def test_asgi_download_cut_off_by_the_client_keeps_the_worker(server_factory, tmp_path):
    """A client that closes during a large ASGI response makes send() raise
    into the app, which lets it propagate (most apps do): the worker crashed
    there (SIGSEGV in the runner's throw) and every other client of it lost
    its connection. It must live on and answer."""
    (tmp_path / "bigasgi.py").write_text(BIG_ASGI)
    srv = server_factory("bigasgi:app", "--interface", "asgi", chdir=str(tmp_path))
    workers = srv.wait_workers(1)
    for _ in range(3):
        socks = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200 ")
            socks.append(s)
        time.sleep(0.3)
        for s in socks:
            s.close()
        time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert recv_all(s).endswith(b"\r\n\r\nok")
    assert srv.workers() == workers
    assert "died unexpectedly" not in srv.log(), srv.log()


H2_LONG_STREAM = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] != "/long":
        await send({"type": "http.response.body", "body": b"ok"})
        return
    chunk = b"x" * 65536
    for _ in range(1536):  # 96 MiB
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
'''


def test_h2_long_stream_read_steadily_keeps_the_worker_small(server_factory, tmp_path):
    """A client that reads a long HTTP/2 download as it comes (the app
    refills the stream's buffer before it ever drains to empty) grew the
    stream's buffer by every byte sent: 200 MB of RSS for a 200 MB file.
    What a stream holds must stay near its high-water mark."""
    import h2.config
    import h2.connection
    import h2.events
    from conftest import proc_status
    (tmp_path / "h2long.py").write_text(H2_LONG_STREAM)
    srv = server_factory("h2long:app", "--interface", "asgi", chdir=str(tmp_path))
    wpid = srv.wait_workers(1)[0]
    before = proc_status(wpid)["VmRSS"]
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.increment_flow_control_window(1 << 30)
    c.send_headers(1, [(":method", "GET"), (":path", "/long"), (":scheme", "http"),
                       (":authority", "t")], end_stream=True)
    s.sendall(c.data_to_send())
    got, done, peak = 0, False, before
    deadline = time.monotonic() + 60
    while not done and time.monotonic() < deadline:
        d = s.recv(16384)
        assert d, "the server closed the connection"
        for e in c.receive_data(d):
            if isinstance(e, h2.events.DataReceived):
                got += len(e.data)
                c.acknowledge_received_data(e.flow_controlled_length, 1)
            elif isinstance(e, h2.events.StreamEnded):
                done = True
        s.sendall(c.data_to_send())
        peak = max(peak, proc_status(wpid)["VmRSS"])
    s.close()
    assert done and got == 96 << 20, got
    assert peak - before < 24 << 10, (before, peak)
