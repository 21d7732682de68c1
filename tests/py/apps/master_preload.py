"""Appends os.getpid() to $GALLOP_TEST_IMPORT_LOG each time it is imported."""
import os

with open(os.environ["GALLOP_TEST_IMPORT_LOG"], "a") as f:
    f.write(f"{os.getpid()}\n")


def app(environ, start_response):
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
