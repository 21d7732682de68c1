"""App for the metrics tests: answers with its pid; /status?N answers N,
/sleep?S sleeps S seconds first."""
import os
import time


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    qs = environ.get("QUERY_STRING", "")
    status = "200 OK"
    if path == "/status":
        status = f"{int(qs or '200')} Whatever"
    elif path == "/sleep":
        time.sleep(float(qs or "0.2"))
    body = f"{os.getpid()}\n".encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
