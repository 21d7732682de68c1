"""Malformed or over-limit requests: each gets its status and the connection is
closed afterwards (recv_all raises socket.timeout if the server keeps it open;
the keep-alive timeout is 30 s so only an explicit close passes)."""
import socket

import pytest
import requests

from conftest import raw_request, read_response, recv_all, status_of


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory("basic:app", "--keep-alive", "30", "--limit-request-body", "1000", workers=1)


H = b"Host: x\r\n"

CASES_400 = {
    "cl_and_te": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "differing_cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "differing_cl_list": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "negative_cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "plus_cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "hex_cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
    "chunked_twice": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "te_on_http10": b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_bad_syntax": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n0\r\n\r\n",
    "bare_lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "bare_lf_in_header": b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare_cr": b"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
    "bare_cr_request_line": b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
    "obs_fold_tab": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\tc\r\n\r\n",
    "ctl_in_name": b"GET / HTTP/1.1\r\nHost: x\r\nX\x01A: b\r\n\r\n",
    "nontoken_in_name": b"GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n",
    "nul_in_value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n",
    "space_before_colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "space_before_colon2": b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n",
    "empty_name": b"GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n",
    "no_colon": b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "relative_target": b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n",
    "space_in_target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "ctl_in_target": b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
    "high_byte_target": b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "empty_target": b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"GET / HTTX/1.1\r\nHost: x\r\n\r\n",
    "lower_version": b"GET / http/1.1\r\nHost: x\r\n\r\n",
    "no_version": b"GET /\r\nHost: x\r\n\r\n",
    "missing_host": b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
    "double_host": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "leading_space_header": b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
    "bad_chunk_size": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_space": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "chunk_ext_ctl": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;\x01\r\nhello\r\n0\r\n\r\n",
    "chunk_ext_empty": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n",
    "chunk_missing_crlf": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    "chunk_bare_lf": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES_400))
def test_rejected_400(srv, name):
    data = raw_request(srv.port, CASES_400[name], timeout=5)
    assert status_of(data) == 400, data[:300]
    # exactly one response, nothing served from the rest of the bytes
    assert data.count(b"HTTP/1.") == 1, data
    head = data.split(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in head


@pytest.mark.parametrize("te", [b"gzip", b"chunked, gzip", b"gzip, chunked", b"deflate", b"identity",
                                b"gzip;q=1, chunked"])
def test_unknown_transfer_coding_501(srv, te):
    data = raw_request(srv.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te +
                       b"\r\n\r\n0\r\n\r\n")
    assert status_of(data) == 501, data[:200]
    assert data.count(b"HTTP/1.") == 1


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"HTTP/0.9"])
def test_unsupported_version_505(srv, version):
    data = raw_request(srv.port, b"GET / " + version + b"\r\nHost: x\r\n\r\n")
    assert status_of(data) == 505, data[:200]


def test_reject_after_good_request_on_same_connection(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n"
                  b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body, rest = read_response(s)
        assert body == b"hello /ok"
        data = rest + recv_all(s, 5)
    assert status_of(data) == 400
    assert b"never" not in data


def test_request_line_too_long_414(srv):
    data = raw_request(srv.port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(data) == 414
    # and before the CRLF arrives
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /" + b"a" * 6000)
        assert status_of(recv_all(s, 5)) == 414
    # just under the limit is fine: "GET " + target + " HTTP/1.1" == 4094
    target = b"/" + b"a" * (4094 - len(b"GET  HTTP/1.1") - 1)
    data = raw_request(srv.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(data) == 200


def test_too_many_headers_431(srv):
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(120))
    data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n")
    assert status_of(data) == 431
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(90))
    data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + hs + b"\r\n")
    assert status_of(data) == 200


def test_header_too_large_431(srv):
    data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n")
    assert status_of(data) == 431
    data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"v" * 8000 +
                       b"\r\n\r\n")
    assert status_of(data) == 200


def test_body_too_large_413_content_length(srv):
    data = raw_request(srv.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000)
    assert status_of(data) == 413
    data = raw_request(srv.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n"
                       + b"x" * 1000)
    assert status_of(data) == 200 and data.endswith(b"x" * 1000)


def test_body_too_large_413_chunked(srv):
    body = b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    data = raw_request(srv.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert status_of(data) == 413, data[:300]
    assert b"HTTP/1.1 200" not in data


def test_413_with_expect_continue_no_100(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        data = recv_all(s, 5)
    assert status_of(data) == 413
    assert b"100 Continue" not in data


def test_server_survives_garbage(srv):
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"\r\n" * 10, b"\x00" * 100, b"GET"):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            try:
                recv_all(s, 5)
            except ConnectionResetError:
                pass
    assert requests.get(srv.url("/alive"), timeout=5).text == "hello /alive"


def test_custom_limits(server_factory):
    srv = server_factory("basic:app", "--limit-request-line", "100", "--limit-request-fields", "5",
                         "--limit-request-field_size", "200")
    assert status_of(raw_request(srv.port, b"GET /" + b"a" * 120 + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(6))
    assert status_of(raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n")) == 431
    assert status_of(raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 300 + b"\r\n\r\n")) == 431
    ok = raw_request(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX: " + b"v" * 150 + b"\r\n\r\n")
    assert status_of(ok) == 200
