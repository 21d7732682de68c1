"""App for the deployment tests (test_master_deploy.py): answers with its
pid, and starts a thread at import as Sentry, OpenTelemetry or a logging
listener would, so a signal the process gets may land on that thread."""
import os
import signal
import subprocess
import threading
import time

THREAD_STARTED = threading.Event()
LEAK = []


def _background():
    THREAD_STARTED.set()
    while True:
        time.sleep(0.05)


threading.Thread(target=_background, name="app-background", daemon=True).start()
THREAD_STARTED.wait(5)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    qs = environ.get("QUERY_STRING", "")
    if path == "/sleep":
        time.sleep(float(qs or "0.2"))
    elif path == "/exit4":
        os._exit(4)  # past the bridge's reach: the process just ends with code 4
    elif path == "/empty":
        start_response("204 No Content", [])
        return [b""]
    elif path == "/over":  # says 5 bytes, produces 10: 5 are sent
        start_response("200 OK", [("Content-Length", "5")])
        return [b"0123456789"]
    elif path == "/leak":
        LEAK.append(bytearray(b"\x01") * (50 << 20))
    elif path == "/children":  # what TERM does to the processes the app starts
        p = subprocess.Popen(["sleep", "30"])
        with open(f"/proc/{p.pid}/status") as f:
            blocked = next(line.split()[1] for line in f if line.startswith("SigBlk:"))
        p.terminate()
        try:
            spawned = p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            spawned = "not stopped by TERM: %s" % p.wait()
        child = os.fork()
        if child == 0:
            time.sleep(30)
            os._exit(0)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        forked = os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit %d" % os.WEXITSTATUS(status)
        body = f"{spawned} {blocked} {forked}".encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    elif path == "/big":
        body = b"x" * int(qs or "1000000")
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
