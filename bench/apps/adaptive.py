"""bench/adaptive.sh's app: 2 ms of Python CPU, then 20 ms waiting (a
database call, say), as a sync WSGI app."""
import time


def app(environ, start_response):
    end = time.thread_time() + 0.002
    while time.thread_time() < end:
        pass
    time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]
