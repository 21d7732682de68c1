"""Apps for test_cli_compat: app factories called as gunicorn's
`module:create_app('x', debug=True)` or uvicorn's `--factory`, a Flask
factory, and a FastAPI app."""
import os


def create_app(name="default", debug=False, *rest, **kw):
    """WSGI factory: the app echoes the arguments it was built with."""
    text = "%s|%r|%r|%r|%d" % (name, debug, rest, sorted(kw.items()), os.getpid())

    def app(environ, start_response):
        body = ("%s|%s" % (text, environ.get("SCRIPT_NAME", ""))).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def exploding_factory(why):
    raise RuntimeError("factory-exploded-" + why)


def create_flask(config_name="production", testing=False):
    from flask import Flask

    flask_app = Flask(__name__)
    flask_app.config["TESTING"] = testing

    @flask_app.route("/")
    def index():
        return {"config": config_name, "testing": flask_app.config["TESTING"]}

    return flask_app


def make_fastapi():
    from fastapi import FastAPI, Request

    api = FastAPI()

    @api.get("/")
    async def root(request: Request):
        return {"hello": "world", "root_path": request.scope.get("root_path", ""), "pid": os.getpid()}

    return api
