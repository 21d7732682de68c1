"""App for the master (process manager) tests: answers with its pid, and has
routes that sleep, get stuck, or leak memory on purpose."""
import os
import time

LEAK = []  # /leak appends 20 MB per request, never freed


def stuck_in_the_app():
    time.sleep(30)  # the --timeout test expects this frame in the traceback


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    qs = environ.get("QUERY_STRING", "")
    if path == "/sleep":
        time.sleep(float(qs or "0.2"))
    elif path == "/stuck":
        stuck_in_the_app()
    elif path == "/log":
        import sys
        print(f"app-log-line from {os.getpid()} {qs}", file=sys.stderr, flush=True)
    elif path == "/leak":
        LEAK.append(bytearray(b"\x01") * (20 << 20))
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
