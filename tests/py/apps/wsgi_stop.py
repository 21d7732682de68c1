"""A WSGI app for test_asgi_lifespan_stop.py: prints on each request (stdout
block-buffered) and registers an atexit handler writing a file in
STOP_TEST_DIR."""
import atexit
import os

OUT = os.environ.get("STOP_TEST_DIR", "/tmp")


def _mark():
    with open(os.path.join(OUT, f"atexit-{os.getpid()}"), "w") as f:
        f.write("x")


atexit.register(_mark)


def app(environ, start_response):
    print(f"served {environ['PATH_INFO']} in {os.getpid()}")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
