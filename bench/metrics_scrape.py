#!/usr/bin/python3
"""Does scraping /metrics change a worker's CPU per request?

One gallop worker (--metrics-bind on) under a wrk keep-alive load (-t1
-c8), per app: with nobody reading /metrics, and with a scraper that GETs
/metrics (and /workers, as gallop top does) every second. The two modes
alternate in --rounds rounds each, --seconds in all per mode, so that a
neighbour's load on a shared machine falls on both alike. For each mode:
requests served (wrk's count), the worker's CPU (utime + stime of
/proc/PID/stat) divided by them, and the master's CPU.

usage: bench/metrics_scrape.py BUILD/gallop [--seconds 60] [--rounds 6] [--hz 1] [--apps wsgi,asgi]
Loopback only; run it on a machine as quiet as you can get.
"""
import argparse
import http.client
import os
import re
import subprocess
import threading
import time

from benchlib import cpu_s, free_port

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
APP = {"wsgi": "hello:app", "asgi": "hello_asgi:app"}


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    body = c.getresponse().read()
    c.close()
    return body


def scraper(mport, hz, stop, count):
    while not stop.wait(1.0 / hz):
        get(mport, "/metrics")
        get(mport, "/workers")
        count[0] += 1


def one_round(port, mport, worker, master, seconds, hz):
    stop = threading.Event()
    count = [0]
    t = threading.Thread(target=scraper, args=(mport, hz, stop, count)) if hz else None
    w0, m0 = cpu_s(worker), cpu_s(master)
    if t:
        t.start()
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    stop.set()
    if t:
        t.join()
    w1, m1 = cpu_s(worker), cpu_s(master)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    return n, (w1 - w0) / n * 1e6, m1 - m0, count[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gallop")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--hz", type=float, default=1.0)
    ap.add_argument("--apps", default="wsgi,asgi")
    a = ap.parse_args()
    print(f"{'app':5} {'scraper':>8} {'requests':>9} {'worker cpu us/req':>18} "
          f"{'master cpu s':>13} {'scrapes':>8}")
    for kind in a.apps.split(","):
        port, mport = free_port(), free_port()
        log = open(f"/tmp/metrics_scrape_{os.getpid()}.log", "w")
        srv = subprocess.Popen([a.gallop, "--workers", "1", "--bind", f"127.0.0.1:{port}",
                                "--metrics-bind", f"127.0.0.1:{mport}", "--chdir", APPS, APP[kind]],
                               stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                try:
                    if get(mport, "/healthz") == b"ok\n":
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            with open(f"/proc/{srv.pid}/task/{srv.pid}/children") as f:
                (worker,) = [int(p) for p in f.read().split()]
            get(port, "/")
            tot = {0: [0, 0.0, 0.0, 0], a.hz: [0, 0.0, 0.0, 0]}
            for _ in range(a.rounds):
                for hz in (0, a.hz):
                    n, us, mcpu, scrapes = one_round(port, mport, worker, srv.pid,
                                                     max(1, a.seconds // a.rounds), hz)
                    t = tot[hz]
                    t[0] += n
                    t[1] += us * n / 1e6
                    t[2] += mcpu
                    t[3] += scrapes
            for hz, (n, wcpu, mcpu, scrapes) in tot.items():
                print(f"{kind:5} {('%g Hz' % hz) if hz else 'none':>8} {n:9d} "
                      f"{wcpu / n * 1e6:18.2f} {mcpu:13.2f} {scrapes:8d}", flush=True)
        finally:
            srv.terminate()
            srv.wait(30)
            log.close()


if __name__ == "__main__":
    main()
