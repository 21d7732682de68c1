"""What the interpreter a worker runs in looks like from the app (test_interp):
the executable, argv, sys.path, the prefix, the libraries mapped, and
multiprocessing with the spawn start method."""
import json
import multiprocessing
import os
import sys


def square(x):
    return x * x


def _mapped():
    with open("/proc/self/maps") as f:
        return sorted({ln.split()[-1] for ln in f if "/" in ln.split()[-1]})


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/spawn":
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            out = {"squares": pool.map(square, [1, 2, 3]), "pid": os.getpid()}
    else:
        out = {
            "executable": sys.executable,
            "argv": sys.argv,
            "path": sys.path,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "mapped": _mapped(),
            "script_name": environ.get("SCRIPT_NAME", ""),
            "pid": os.getpid(),
            "user_env": os.environ.get("GALLOP_TEST_MARK", ""),
        }
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
