#!/usr/bin/python3
"""Full TLS handshakes per second: gallop beside nginx, one worker each, loopback.

Each round starts every server in its own session and runs `openssl s_time
-new` against it (a new connection and a full handshake each time: no session
resumption; -www / fetches the hello world once per connection), and reads
the CPU time (user + system, /proc) of every process of the server's session.
Reported per server, median of the rounds: handshakes per second as s_time
counts them, server CPU microseconds per handshake (the steadier figure on a
shared VM) and both relative to nginx.

usage: bench/tls_handshakes.py [--gallop build/gallop] [--rounds 3] [--seconds 5] [--key rsa|ec] [--only a,b]
Needs: nginx-light, openssl.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import TICK, cpu_ticks, free_port, self_signed, stat_fields, stop_session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, "bench", "apps")

NGINX_CONF = """daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port} ssl;
  ssl_certificate {cert}; ssl_certificate_key {key};
  {session}
  location / {{ default_type text/plain; return 200 "Hello, world!"; }} }} }}
"""


def session_cpu(sid):
    """User + system seconds of every process in session sid."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = stat_fields(f.read())
        except OSError:
            continue
        if int(fields[3]) == sid:
            total += cpu_ticks(fields)
    return total / TICK


def wait_tls(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}"],
                           input=b"", capture_output=True, timeout=5)
        if b"BEGIN CERTIFICATE" in r.stdout or b"Cipher is" in r.stdout:
            return
        time.sleep(0.2)
    raise SystemExit(f"no TLS server on port {port}")


def one(name, cmd, port, seconds):
    p = subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=APPS, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_tls(port)
        time.sleep(0.5)
        c0 = session_cpu(p.pid)
        r = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new",
                            "-time", str(seconds), "-www", "/"], capture_output=True, timeout=seconds + 30)
        cpu = session_cpu(p.pid) - c0
        out = r.stdout.decode()
        m = re.search(r"(\d+) connections in ([\d.]+) real seconds", out)
        if not m:
            raise SystemExit(f"{name}: s_time said:\n{out}\n{r.stderr.decode()}")
        n, real = int(m.group(1)), float(m.group(2))
        return n / real, cpu * 1e6 / n
    finally:
        stop_session(p, timeout=20)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gallop", default=os.path.join(ROOT, "build", "gallop"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--key", choices=["rsa", "ec"], default="rsa")
    ap.add_argument("--only", help="comma-separated server names (nginx, gallop-wsgi)")
    ap.add_argument("--nginx-tickets", action="store_true",
                    help="nginx issues session tickets as gallop does (its default); else none")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="gallop-tlsbench-")
    cert, key = self_signed(tmp, a.key)
    servers = {}
    port = free_port()
    with open(f"{tmp}/nginx.conf", "w") as f:
        session = "" if a.nginx_tickets else "ssl_session_cache off; ssl_session_tickets off;"
        f.write(NGINX_CONF.format(tmp=tmp, port=port, cert=cert, key=key, session=session))
    servers["nginx"] = (f"nginx -c {tmp}/nginx.conf", port)
    port = free_port()
    servers["gallop-wsgi"] = (f"{a.gallop} --workers 1 --bind 127.0.0.1:{port} --certfile {cert} "
                              f"--keyfile {key} hello:app", port)
    if a.only:
        servers = {n: v for n, v in servers.items() if n in a.only.split(",")}
    res = {n: [] for n in servers}
    for r in range(a.rounds):
        for name, (cmd, port) in servers.items():
            res[name].append(one(name, cmd, port, a.seconds))
            print(f"round {r + 1} {name}: {res[name][-1][0]:.0f} handshakes/s, "
                  f"{res[name][-1][1]:.0f} us CPU each", file=sys.stderr)
    base = None
    print(f"{'server':14} {'handshakes/s':>13} {'cpu us/hs':>10} {'x nginx hs/s':>13} {'x nginx cpu':>12}")
    for name in servers:
        hs = statistics.median(x[0] for x in res[name])
        cpu = statistics.median(x[1] for x in res[name])
        base = base or (hs, cpu)
        print(f"{name:14} {hs:13.0f} {cpu:10.0f} {hs / base[0]:13.2f} {cpu / base[1]:12.2f}")


if __name__ == "__main__":
    main()
