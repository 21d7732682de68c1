"""PEP 3333 behaviour of the bridge: environ, wsgi.input, start_response, write,
close(), file_wrapper, errors. Most requests go to the validator-wrapped app."""
import json
import os
import socket
import time
import zlib

import pytest
import requests

from conftest import raw_request, read_response, recv_all, status_of


@pytest.fixture(scope="module")
def close_log(tmp_path_factory):
    p = tmp_path_factory.mktemp("close") / "close.log"
    p.write_text("")
    return p


@pytest.fixture(scope="module")
def srv(module_server_factory, close_log):
    return module_server_factory("basic:app", "--root-path", "/mnt", workers=1,
                                 env={"GALLOP_TEST_CLOSE_LOG": str(close_log)})


@pytest.fixture(scope="module")
def raw(module_server_factory, close_log):
    return module_server_factory("basic:raw", workers=1, env={"GALLOP_TEST_CLOSE_LOG": str(close_log)})


def conn(srv, timeout=5):
    return socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)


def get(srv, path, **kw):
    return requests.get(srv.url(path), timeout=10, **kw)


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_environ_basics(srv):
    with conn(srv) as s:
        s.sendall(b"POST /env?a=1&b=%20x HTTP/1.1\r\nHost: example.com:1234\r\nContent-Type: text/x-test\r\n"
                  b"Content-Length: 0\r\nX-Custom: v1\r\nUser-Agent: ua\r\n\r\n")
        st, _, body, _ = read_response(s)
        local_port = s.getsockname()[1]
    assert st == 200, body
    e = json.loads(body)
    assert e["missing"] == []
    assert e["REQUEST_METHOD"] == "POST"
    assert e["SCRIPT_NAME"] == "/mnt"
    assert e["PATH_INFO"] == "/env"
    assert e["QUERY_STRING"] == "a=1&b=%20x"
    assert e["CONTENT_TYPE"] == "text/x-test"
    assert e["CONTENT_LENGTH"] == "0"
    # PEP 3333 allows either the Host header's or the server's own name/port
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) in (("example.com", "1234"), ("127.0.0.1", str(srv.port)))
    assert e["http"]["HTTP_HOST"] == "example.com:1234"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["REMOTE_ADDR"] == "127.0.0.1" and e["REMOTE_PORT"] == str(local_port)
    assert e["RAW_URI"] == "/env?a=1&b=%20x"
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.version"] == [1, 0] and e["version_is_tuple"]
    assert e["wsgi.multithread"] is False and e["wsgi.multiprocess"] is True and e["wsgi.run_once"] is False
    assert e["has_input"] and e["has_errors"] and e["has_file_wrapper"]
    assert e["http"]["HTTP_X_CUSTOM"] == "v1" and e["http"]["HTTP_USER_AGENT"] == "ua"
    assert "HTTP_CONTENT_TYPE" not in e["http"] and "HTTP_CONTENT_LENGTH" not in e["http"]
    assert all(t == "str" for t in e["types"].values()), e["types"]


def test_environ_without_host_port_and_on_http10(srv):
    with conn(srv) as s:
        s.sendall(b"GET /env HTTP/1.0\r\n\r\n")
        st, _, body, _ = read_response(s)
    e = json.loads(body)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert e["SERVER_NAME"] and e["SERVER_PORT"] == str(srv.port)
    assert "CONTENT_LENGTH" not in e or e["CONTENT_LENGTH"] == ""
    with conn(srv) as s:
        s.sendall(b"GET /env HTTP/1.1\r\nHost: onlyname\r\n\r\n")
        e = json.loads(read_response(s)[2])
    assert e["SERVER_NAME"] in ("onlyname", "127.0.0.1") and e["SERVER_PORT"] == str(srv.port)


def test_repeated_headers_joined_and_underscore_dropped(srv):
    with conn(srv) as s:
        s.sendall(b"GET /env HTTP/1.1\r\nHost: x\r\nX-Rep: a\r\nX-Rep: b\r\nx-rep: c\r\n"
                  b"X_Under: evil\r\nX-Under: good\r\n\r\n")
        e = json.loads(read_response(s)[2])
    assert e["http"]["HTTP_X_REP"] in ("a,b,c", "a, b, c")
    assert e["http"]["HTTP_X_UNDER"] == "good"


def test_path_info_percent_decoded_latin1(srv):
    with conn(srv) as s:
        s.sendall(b"GET /mnt/env/a%20b/%C3%A9/%2Fslash?q=%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body, _ = read_response(s)
    e = json.loads(body)
    # --root-path /mnt: stripped from PATH_INFO when the path starts with it
    assert e["SCRIPT_NAME"] == "/mnt"
    raw = bytes(e["path_info_latin1"])
    assert raw == b"/env/a b/\xc3\xa9//slash"
    assert e["QUERY_STRING"] == "q=%C3%A9"
    assert e["RAW_URI"] == "/mnt/env/a%20b/%C3%A9/%2Fslash?q=%C3%A9"


def test_path_outside_root_path(srv):
    e = get(srv, "/other").text
    assert "/other" in e  # not under /mnt: PATH_INFO is the whole path
    e = json.loads(get(srv, "/env").text)
    assert e["PATH_INFO"] == "/env"


def test_absolute_form_target(srv):
    with conn(srv) as s:
        s.sendall(b"GET http://abs.example:99/env?x=y HTTP/1.1\r\nHost: other\r\n\r\n")
        st, _, body, _ = read_response(s)
    e = json.loads(body)
    assert e["PATH_INFO"] == "/env" and e["QUERY_STRING"] == "x=y"


@pytest.mark.parametrize("mode,expected", [
    ("readline", ["line1\n", "line2\n", "\n", "last"]),
    ("readlines", ["line1\n", "line2\n", "\n", "last"]),
    ("iter", ["line1\n", "line2\n", "\n", "last"]),
    ("readline_n", ["line", "1\n", "line", "2\n", "\n", "last"]),
    ("read", ["lin", "e1\n", "lin", "e2\n", "\nla", "st"]),
])
@pytest.mark.parametrize("chunked", [False, True])
def test_input_modes(srv, mode, expected, chunked):
    body = b"line1\nline2\n\nlast"
    with conn(srv) as s:
        if chunked:
            s.sendall(b"POST /readmodes?mode=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      % mode.encode())
            for i in range(0, len(body), 5):
                piece = body[i:i + 5]
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                time.sleep(0.01)
            s.sendall(b"0\r\n\r\n")
        else:
            s.sendall(b"POST /readmodes?mode=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                      % (mode.encode(), len(body), body))
        st, _, out, _ = read_response(s)
    assert st == 200, out
    d = json.loads(out)
    assert d["parts"] == expected
    assert d["tail"] == ""  # reads after the end give b""


def test_read_without_size_and_after_end(raw):
    body = os.urandom(300000)
    for hdr in (b"Content-Length: %d\r\n" % len(body), b"Transfer-Encoding: chunked\r\n"):
        with conn(raw) as s:
            s.sendall(b"POST /readall HTTP/1.1\r\nHost: x\r\n" + hdr + b"\r\n")
            if b"chunked" in hdr:
                for i in range(0, len(body), 70000):
                    p = body[i:i + 70000]
                    s.sendall(b"%x\r\n" % len(p) + p + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            else:
                s.sendall(body)
            st, _, out, _ = read_response(s, timeout=10)
        d = json.loads(out)
        assert d == {"len": len(body), "crc": zlib.crc32(body), "again": 0}


def test_empty_body_reads(srv):
    r = requests.post(srv.url("/readmodes?mode=read"), data=b"", timeout=5)
    assert r.json() == {"parts": [], "tail": ""}
    with conn(srv) as s:
        s.sendall(b"GET /readmodes?mode=readline HTTP/1.1\r\nHost: x\r\n\r\n")
        assert json.loads(read_response(s)[2]) == {"parts": [], "tail": ""}


def test_write_callable(raw):
    with conn(raw) as s:
        s.sendall(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body, _ = read_response(s)
    assert body == b"written-then-returned"


def test_exc_info_before_headers_replaces_response(raw):
    r = get(raw, "/exc_before")
    assert r.status_code == 503
    assert r.text == "error page"
    assert "X-Second" in r.headers and "X-First" not in r.headers


def test_exc_info_after_headers_reraises(raw, close_log):
    with conn(raw) as s:
        s.sendall(b"GET /exc_after HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_all(s, 5)  # headers were sent: the connection is cut short
    assert data.startswith(b"HTTP/1.1 200")
    assert b"already-sent" in data
    assert b"never" not in data and b"500" not in data.split(b"\r\n")[0]
    assert wait_for(lambda: "reraised:too-late-marker" in close_log.read_text())
    assert "too-late-marker" in raw.log()


def test_start_response_twice_without_exc_info(raw):
    r = get(raw, "/start_twice")
    assert r.text.startswith("refused:")


def test_app_exception_gives_500_and_worker_survives(srv):
    pid_before = get(srv, "/pid").text
    r = get(srv, "/raise")
    assert r.status_code == 500
    assert "boom-marker-in-app" not in r.text  # no traceback leaked to the client
    assert wait_for(lambda: "boom-marker-in-app" in srv.log() and "Traceback" in srv.log())
    assert get(srv, "/pid").text == pid_before
    r = get(srv, "/after-error")
    assert r.status_code == 200


def test_exception_in_iteration_closes_and_logs(raw, close_log):
    with conn(raw) as s:
        s.sendall(b"GET /raise_iter_first HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body, _ = read_response(s)
    assert st == 500  # nothing was sent yet: a clean 500
    with conn(raw) as s:
        s.sendall(b"GET /raise_iter HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_all(s, 5)  # after the first chunk: the response is cut, connection closed
    assert data.startswith(b"HTTP/1.1 200")
    assert not data.endswith(b"0\r\n\r\n")  # not a complete chunked body
    log = close_log.read_text()
    assert wait_for(lambda: "raise_iter_first " in close_log.read_text() and "raise_iter " in close_log.read_text())
    assert "boom-in-iteration-raise_iter" in raw.log()


def test_close_called_on_normal_completion(raw, close_log):
    before = close_log.read_text().count("stream ")
    r = get(raw, "/stream?n=2")
    assert r.text == "part0;part1;"
    assert wait_for(lambda: close_log.read_text().count("stream ") == before + 1)


def test_close_called_when_client_disconnects(raw, close_log):
    s = conn(raw)
    s.sendall(b"GET /slowiter?tag=disc&n=100&d=0.05 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(100)
    s.close()
    assert wait_for(lambda: "disc " in close_log.read_text(), timeout=15)
    assert get(raw, "/alive").status_code == 200


def test_close_called_on_head(raw, close_log):
    before = close_log.read_text().count("stream ")
    with conn(raw) as s:
        s.sendall(b"HEAD /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\nGET /n HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, _, rest = read_response(s, head_only=True)
        assert read_response(s, rest)[2] == b"hello /n"
    assert wait_for(lambda: close_log.read_text().count("stream ") == before + 1)


@pytest.mark.parametrize("kind", ["crlf", "lf", "cr", "name", "colon", "namecrlf", "nonstr"])
def test_bad_header_gives_500_never_split(raw, kind):
    with conn(raw) as s:
        s.sendall(b"GET /badheader?kind=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % kind.encode())
        st, hdrs, body, rest = read_response(s)
        data = rest + recv_all(s, 5)
    assert st == 500
    # the stream stays in sync: at most the pipelined request's own response follows
    assert data == b"" or (data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello /ok"))
    names = [k for k, _ in hdrs]
    assert "injected" not in names and "x-bad" not in names
    assert b"should not be sent" not in body + data
    assert b"Injected" not in body + data


@pytest.mark.parametrize("status", ["abc", "99 Low", "200", "2000 Big", "200 OK\r\nX: y"])
def test_bad_status_gives_500(raw, status):
    from urllib.parse import quote
    with conn(raw) as s:
        s.sendall(b"GET /badstatus?s=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % quote(status).encode())
        data = recv_all(s)
    assert status_of(data) == 500
    assert b"\r\nX: y" not in data


def test_multiple_same_name_response_headers(srv):
    with conn(srv) as s:
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hdrs, body, _ = read_response(s)
    assert [v for k, v in hdrs if k == "x-multi"] == ["1", "2"]


def test_content_length_shorter_than_promised_closes(raw):
    with conn(raw) as s:
        s.sendall(b"GET /cl_mismatch HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_all(s, 5)  # must not hang as a keep-alive connection with a short body
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"short")


@pytest.mark.parametrize("cl", [False, True])
def test_file_wrapper_sendfile(srv, tmp_path, cl):
    f = tmp_path / "data.bin"
    data = os.urandom(3 << 20)
    f.write_bytes(data)
    r = get(srv, "/file?f=%s%s" % (f, "&cl=1" if cl else ""))
    assert r.status_code == 200
    assert r.content == data
    if cl:
        assert r.headers["Content-Length"] == str(len(data))
    with conn(srv) as s:
        s.sendall(b"HEAD /file?f=%s HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n"
                  % str(f).encode())
        st, _, _, rest = read_response(s, head_only=True)
        assert read_response(s, rest)[2] == b"hello /after"


def test_file_wrapper_file_like(srv):
    r = get(srv, "/filelike")
    assert r.content == b"0123456789" * 1000


def test_file_wrapper_sendfile_used(raw, tmp_path):
    # the response must arrive intact also for a pipelined follower, proving the
    # sendfile path keeps the byte stream in order
    f = tmp_path / "d.bin"
    data = os.urandom(200000)
    f.write_bytes(data)
    with conn(raw) as s:
        s.sendall(b"GET /file?f=%s&cl=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /file?f=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /z HTTP/1.1\r\nHost: x\r\n\r\n" % (str(f).encode(), str(f).encode()))
        st, _, b1, rest = read_response(s)
        st, _, b2, rest = read_response(s, rest)
        st, _, b3, rest = read_response(s, rest)
    assert b1 == data and b2 == data and b3 == b"hello /z"


def test_wsgi_errors_goes_to_error_log(srv):
    r = get(srv, "/errors")
    assert r.text == "logged"
    assert wait_for(lambda: "stderr-marker-from-app" in srv.log())


def test_factory(server_factory):
    s = server_factory("basic:factory", "--factory")
    assert requests.get(s.url("/f"), timeout=5).text == "hello /f"


def test_dotted_attribute(server_factory):
    s = server_factory("basic:Holder.inner")  # MODULE:obj.attr
    assert requests.get(s.url("/dotted"), timeout=5).text == "hello /dotted"


def test_not_callable(tmp_path):
    from conftest import run_gallop, free_port, APPS
    r = run_gallop(["--bind", "127.0.0.1:%d" % free_port(), "--workers", "1", "--chdir", APPS, "basic:not_callable"])
    assert r.returncode == 4
    # one log line from the worker, with the usual prefix (cli: errors of workers are log lines)
    lines = [l for l in r.stderr.splitlines() if "not callable" in l]
    assert len(lines) == 1 and "[ERROR] 'basic:not_callable' is not callable" in lines[0], r.stderr


@pytest.mark.parametrize("n", [-1, 1, 7, 100, 5000, 70000])
@pytest.mark.parametrize("how", ["readline", "read"])
def test_input_matches_bytesio(raw, n, how):
    import io
    import random
    rnd = random.Random(n)
    # lines of very different lengths, some longer than any internal buffer
    lines = []
    small = 0 < n < 100  # keep the number of calls bounded
    sizes = [0, 1, 5, 80, 300] if small else [0, 1, 5, 80, 4000, 20000, 150000]
    for i in range(200 if small else 60):
        k = rnd.choice(sizes) if i % 30 else (500 if small else 300000)
        lines.append(bytes([65 + i % 26]) * k + b"\n")
    body = b"".join(lines) + b"tail-without-newline"
    expect = []
    f = io.BytesIO(body)
    while True:
        b = f.readline(n) if how == "readline" else f.read(n)
        expect.append([len(b), zlib.crc32(b)])
        if not b:
            break
    for chunked in (False, True):
        with conn(raw, timeout=30) as s:
            te = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
            s.sendall(b"POST /linesig?n=%d&how=%s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % (n, how.encode(), te))
            if chunked:
                for i in range(0, len(body), 33333):
                    p = body[i:i + 33333]
                    s.sendall(b"%x\r\n%s\r\n" % (len(p), p))
                s.sendall(b"0\r\n\r\n")
            else:
                s.sendall(body)
            st, _, out, _ = read_response(s, timeout=30)
        assert st == 200
        assert json.loads(out) == expect


@pytest.mark.parametrize("kind", ["str", "none", "nostart", "badcl", "unicode"])
def test_invalid_app_results_give_500(raw, kind):
    with conn(raw) as s:
        s.sendall(b"GET /misc?kind=%s HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
                  % kind.encode())
        st, _, body, rest = read_response(s)
        assert st == 500
        assert b"before start_response" not in body
        st, _, body, rest = read_response(s, rest)
        assert body == b"hello /next"


def test_body_longer_than_content_length_is_cut(raw):
    with conn(raw) as s:
        s.sendall(b"GET /misc?kind=longbody HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_all(s, 5)
    # never more bytes than promised on the wire: the client would read "def" as the next response
    assert data.startswith(b"HTTP/1.1 200") and data.split(b"\r\n\r\n", 1)[1].startswith(b"abc")
    assert b"def" not in data


@pytest.mark.parametrize("kind", ["204", "304"])
def test_no_content_length_on_204_304(raw, kind):
    with conn(raw) as s:
        s.sendall(b"GET /misc?kind=%s HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
                  % kind.encode())
        st, hdrs, body, rest = read_response(s)
        assert st == int(kind)
        h = dict(hdrs)
        assert "content-length" not in h and "transfer-encoding" not in h, h
        st, _, body, rest = read_response(s, rest)
        assert body == b"hello /next"
