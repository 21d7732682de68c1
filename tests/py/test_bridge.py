"""What WSGI and ASGI share (src/py/bridge.c): one root path with one meaning
(--root-path, else $SCRIPT_NAME, trailing '/' trimmed), and the same server
and peer addresses, method names and decoded path in environ and scope."""
import json
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgitools import Gallop  # noqa: E402
from conftest import read_response  # noqa: E402


def get_json(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"PATCH {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n".encode())
        st, _, body, _ = read_response(s)
        local = s.getsockname()
    assert st == 200, body
    return json.loads(body), local


@pytest.mark.parametrize("args,env", [
    (("--root-path", "/mnt/"), {}),
    ((), {"SCRIPT_NAME": "/mnt//"}),
    (("--root-path", "/mnt"), {"SCRIPT_NAME": "/other"}),
])
def test_root_path_same_for_wsgi_and_asgi(server_factory, tmp_path, args, env):
    w = server_factory("basic:app", *args, env=env)
    e, local = get_json(w.port, "/mnt/env/a%20b")
    assert e["SCRIPT_NAME"] == "/mnt"
    assert e["PATH_INFO"] == "/env/a b"
    assert e["REQUEST_METHOD"] == "PATCH"
    assert e["SERVER_NAME"] == "127.0.0.1" and e["SERVER_PORT"] == str(w.port)
    assert e["REMOTE_ADDR"] == "127.0.0.1" and e["REMOTE_PORT"] == str(local[1])
    with Gallop("asgi_raw:app", *args, env=env, log_dir=tmp_path) as a:
        sc, local = get_json(a.port, "/mnt/scope/a%20b")
    assert sc["root_path"] == "/mnt"
    assert sc["path"] == "/mnt/scope/a b"  # ASGI keeps the root inside path
    assert sc["method"] == "PATCH"
    assert sc["server"] == {"tuple": ["127.0.0.1", a.port]}
    assert sc["client"] == {"tuple": ["127.0.0.1", local[1]]}


def test_long_header_names_lowercased_in_asgi(tmp_path):
    stem = "X-Long-" + "A" * 300
    with Gallop("asgi_raw:app", log_dir=tmp_path) as a:
        with socket.create_connection(("127.0.0.1", a.port), timeout=10) as s:
            s.sendall(f"GET /scope HTTP/1.1\r\nHost: h\r\n{stem}-1: one\r\n{stem}-2: two\r\n\r\n".encode())
            st, _, body, _ = read_response(s)
    assert st == 200
    names = [h["tuple"][0]["bytes"] for h in json.loads(body)["headers"]]
    assert names == ["host", stem.lower() + "-1", stem.lower() + "-2"]
