#!/usr/bin/python3
"""HTTP/2 hello world side by side: CPU per request of each server's whole
process tree (user+system time from /proc) under h2load, over TLS (h2 by
ALPN) or cleartext (h2c with prior knowledge).

    /usr/bin/python3 bench/h2_bench.py build/gallop [--tls] [--rounds 3] [-n 100000]
        [SERVER ...]   (default: nginx gallop-wsgi gallop-asgi hypercorn)

One worker each, 10 connections x 10 streams (h2load -c 10 -m 10), after a
warm-up; servers interleaved round by round, the median reported. nginx
answers a fixed reply (the ceiling); the apps are ../shared/bench/apps'
hello_wsgi and hello_asgi. Session resumption plays no part (10 connections
per run). Loopback only; every server runs in its own session and is stopped
by its process group."""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import TICK, cpu_ticks, free_port, self_signed, stat_fields, stop_session

HERE = os.path.dirname(os.path.abspath(__file__))


def find_apps():
    """../shared/bench/apps beside the checkout (a worktree sits one level deeper)."""
    d = os.path.dirname(HERE)
    while d != os.path.dirname(d):
        d = os.path.dirname(d)
        apps = os.path.join(d, "shared", "bench", "apps")
        if os.path.isdir(apps):
            return apps
    raise SystemExit("h2_bench: no shared/bench/apps above " + HERE)


APPS = find_apps()

NGINX_CONF = """daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000000;
  server {{ listen 127.0.0.1:{port} {listen};
    {tls}
    location / {{ default_type text/plain; return 200 "Hello, world!"; }} }} }}
"""


def tree_cpu(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = stat_fields(f.read())
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            continue
        total += cpu_ticks(fields)
    return total / TICK


def command(name, gallop, port, tls, d):
    cert, key = f"{d}/cert.pem", f"{d}/key.pem"
    if name == "nginx":
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(
                d=d, port=port, listen="ssl http2" if tls else "http2",
                tls=f"ssl_certificate {cert}; ssl_certificate_key {key}; ssl_session_tickets off;"
                if tls else ""))
        return f"exec nginx -c {d}/nginx.conf -p {d}"
    if name.startswith("gallop-"):
        app = "hello_wsgi:app" if name == "gallop-wsgi" else "hello_asgi:app"
        t = f" --certfile {cert} --keyfile {key}" if tls else ""
        return f"exec {gallop} -w 1 -b 127.0.0.1:{port}{t} --chdir {APPS} {app}"
    if name == "hypercorn":
        t = f" --certfile {cert} --keyfile {key}" if tls else ""
        return f"cd {APPS} && exec hypercorn -w 1 -b 127.0.0.1:{port}{t} hello_asgi:app"
    raise SystemExit(f"h2_bench: unknown server {name!r}")


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def one(name, gallop, tls, n, d):
    port = free_port()
    p = subprocess.Popen(command(name, gallop, port, tls, d), shell=True, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            return None
        time.sleep(1.0 if name != "hypercorn" else 2.0)
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
        if name == "hypercorn":
            n = max(n // 20, 2000)
        subprocess.run(["h2load", "-n", str(max(n // 10, 1000)), "-c", "10", "-m", "10", url],
                       capture_output=True, timeout=120)
        c0 = tree_cpu(p.pid)
        r = subprocess.run(["h2load", "-n", str(n), "-c", "10", "-m", "10", url],
                           capture_output=True, text=True, timeout=300)
        c1 = tree_cpu(p.pid)
        ok = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", r.stdout)
        rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", r.stdout)
        proto = re.search(r"Application protocol: (\S+)", r.stdout)
        if not ok or int(ok.group(1)) != n:
            print(f"{name}: h2load: {r.stdout[-400:]}", file=sys.stderr)
            return None
        return (c1 - c0) / n * 1e6, float(rate.group(1)), proto.group(1) if proto else "?"
    finally:
        stop_session(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gallop")
    ap.add_argument("servers", nargs="*", default=["nginx", "gallop-wsgi", "gallop-asgi", "hypercorn"])
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=100000)
    a = ap.parse_args()
    gallop = os.path.abspath(a.gallop)
    with tempfile.TemporaryDirectory(prefix="h2bench-") as d:
        self_signed(d, "ec", "localhost")
        res = {s: [] for s in a.servers}
        for _ in range(a.rounds):
            for s in a.servers:
                r = one(s, gallop, a.tls, a.n, d)
                if r:
                    res[s].append(r)
        base = None
        print(f"{'server':<14} {'proto':<6} {'req/s':>9} {'cpu us/req':>11} {'x first':>8}  runs (cpu us/req)")
        for s in a.servers:
            if not res[s]:
                print(f"{s:<14} failed")
                continue
            cpu = statistics.median(x[0] for x in res[s])
            rps = statistics.median(x[1] for x in res[s])
            base = base or cpu
            runs = " / ".join(f"{x[0]:.1f}" for x in res[s])
            print(f"{s:<14} {res[s][0][2]:<6} {rps:>9.0f} {cpu:>11.2f} {cpu / base:>8.2f}  {runs}")


if __name__ == "__main__":
    main()
