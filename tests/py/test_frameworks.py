"""Real frameworks on gallop: Flask and a small Django project."""
import json
import os
import subprocess

import pytest
import requests

from conftest import APPS


@pytest.fixture(scope="module")
def flask_srv(module_server_factory):
    return module_server_factory("flaskapp:app", "--root-path", "/pre", workers=2)


@pytest.fixture(scope="module", params=["chdir", "pythonpath"])
def django_srv(module_server_factory, request):
    proj = os.path.join(APPS, "djproj")
    if request.param == "chdir":
        return module_server_factory("djproj.wsgi:application", chdir=proj, workers=2)
    return module_server_factory("djproj.wsgi:application", "--pythonpath", proj, chdir=None, workers=1)


def test_flask_index(flask_srv):
    r = requests.get(flask_srv.url("/"), timeout=10)
    assert r.status_code == 200 and r.text == "flask index"
    assert r.headers["Server"] == "gallop"


def test_flask_json_and_form(flask_srv):
    r = requests.post(flask_srv.url("/json"), json={"a": [1, 2], "b": "ü"}, timeout=10)
    assert r.json() == {"got": {"a": [1, 2], "b": "ü"}, "method": "POST"}
    r = requests.post(flask_srv.url("/form"), data={"x": "1", "y": "two words"}, timeout=10)
    assert r.json() == {"x": "1", "y": "two words"}
    # chunked body through a framework
    r = requests.put(flask_srv.url("/upload"), data=(b"z" * 1000 for _ in range(100)), timeout=10)
    assert r.json() == {"size": 100000}


def test_flask_routing_and_root_path(flask_srv):
    r = requests.get(flask_srv.url("/pre/user/J%C3%BCrgen?k=v"), timeout=10)
    assert r.status_code == 200
    assert r.json() == {"name": "Jürgen", "args": {"k": "v"}, "script_root": "/pre", "path": "/user/Jürgen"}


def test_flask_404_and_500(flask_srv):
    assert requests.get(flask_srv.url("/nope"), timeout=10).status_code == 404
    r = requests.get(flask_srv.url("/fail"), timeout=10)
    assert r.status_code == 500
    assert requests.get(flask_srv.url("/"), timeout=10).status_code == 200


def test_flask_with_curl(flask_srv):
    out = subprocess.run(["curl", "-sS", "-m", "10", "-H", "Content-Type: application/json", "-d", '{"k": 3}',
                          flask_srv.url("/json")], capture_output=True, timeout=15)
    assert json.loads(out.stdout) == {"got": {"k": 3}, "method": "POST"}


def test_django_index(django_srv):
    r = requests.get(django_srv.url("/"), timeout=10)
    assert r.status_code == 200 and r.text == "django index"


def test_django_info(django_srv):
    r = requests.get(django_srv.url("/info/?a=1&b=x%20y"), timeout=10, headers={"Host": "example.org"})
    assert r.json() == {"path": "/info/", "path_info": "/info/", "script_name": "", "get": {"a": "1", "b": "x y"},
                        "host": "example.org"}


def test_django_append_slash_redirect(django_srv):
    r = requests.get(django_srv.url("/info"), timeout=10, allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"].endswith("/info/")


def test_django_post_form_and_json(django_srv):
    r = requests.post(django_srv.url("/echo/"), data={"name": "gallop", "n": "5"}, timeout=10)
    assert r.status_code == 200 and r.json() == {"form": {"name": "gallop", "n": "5"}}
    r = requests.post(django_srv.url("/echo/"), json={"x": [1, {"y": None}]}, timeout=10)
    assert r.json() == {"json": {"x": [1, {"y": None}]}}
    big = {"data": "q" * 500000}
    r = requests.post(django_srv.url("/echo/"), json=big, timeout=20)
    assert r.json() == {"json": big}


def test_django_csrf_enforced_and_404(django_srv):
    assert requests.post(django_srv.url("/protected/"), data={"a": "b"}, timeout=10).status_code == 403
    assert requests.get(django_srv.url("/missing/"), timeout=10).status_code == 404
    assert requests.get(django_srv.url("/protected/"), timeout=10).status_code == 200


def test_django_root_path(server_factory):
    srv = server_factory("djproj.wsgi:application", "--root-path", "/app", chdir=os.path.join(APPS, "djproj"))
    r = requests.get(srv.url("/app/info/"), timeout=10)
    d = r.json()
    assert d["script_name"] == "/app" and d["path"] == "/app/info/" and d["path_info"] == "/info/"
