"""WSGI apps for test_bodies.py: a Flask upload that calls request.get_data(),
a streaming hash of wsgi.input (for uploads too big to hold), and a
generator that pauses between pieces."""
import hashlib
import os
import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.route("/__ready")
def ready():
    return "ready"


@app.route("/")
def index():
    return "index"


@app.route("/upload", methods=["POST", "PUT"])
def upload():
    data = request.get_data()
    return jsonify(size=len(data), sha256=hashlib.sha256(data).hexdigest())


@app.route("/fds")
def fds():
    """What this worker's descriptors point to (to find the body's temp file)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink("/proc/self/fd/" + fd))
        except OSError:
            pass
    return jsonify(fds=out)


@app.route("/stream")
def stream():
    def gen():
        yield b"first\n"
        time.sleep(1.0)
        yield b"second\n"
    return Response(gen(), mimetype="text/plain")


def hasher(environ, start_response):
    """Raw WSGI: reads wsgi.input in 64 KB pieces, never holding the body
    (and /write streams through write())."""
    if environ["PATH_INFO"] == "/__ready":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"ready"]
    if environ["PATH_INFO"] == "/write":  # the old write() callable streams too
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first\n")
        time.sleep(1.0)
        return [b"second\n"]
    h = hashlib.sha256()
    n = 0
    inp = environ["wsgi.input"]
    while True:
        b = inp.read(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    body = ("%d %s" % (n, h.hexdigest())).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
