"""App for the adaptive-workers tests: /cpu spends 3 ms of CPU in Python (a
pure loop), /sleep waits 50 ms without CPU; both answer with the pid."""
import os
import time


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/sleep":
        time.sleep(0.05)
    else:
        end = time.thread_time() + 0.003
        while time.thread_time() < end:
            pass
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
