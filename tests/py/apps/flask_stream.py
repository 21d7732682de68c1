"""A Flask view that streams with stream_with_context, one piece a second
(tests/py/test_wsgi_misbehave.py)."""
import time

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)


@app.route("/__ready")
def ready():
    return "ready"


@app.route("/stream")
def stream():
    pause = float(request.args.get("pause", "1"))

    @stream_with_context
    def pieces():
        for i in range(3):
            if i:
                time.sleep(pause)
            yield f"piece {i} of {request.path}\n"

    return Response(pieces(), mimetype="text/plain")
