#!/usr/bin/python3
"""gallop beside its peers on the same app, one worker each, loopback only.

Suites: wsgi (hello world: nginx's fixed reply, gallop, gunicorn sync and
gthread, uWSGI), static (a 10 KB file: nginx with sendfile beside gallop
--static, both keeping connections alive without a request limit), asgi (hello world: nginx, gallop, uvicorn with uvloop and
httptools, uvicorn with h11, hypercorn) and io (every request awaits 100 ms,
1000 connections: nginx, gallop, uvicorn).

For each server: start it in a new session, warm it up, run wrk against it, and
read the CPU time (user + system, from /proc) that every process of that
session used during the run. CPU microseconds per request is the figure to
compare on a shared VM; req/s is shown but swings with CPU steal. Servers run
in turns, round after round, and the median round is reported.

usage: bench/compare.py [--suite wsgi|static|asgi|io] [--rounds 3] [--seconds 5] [--conns 64] [--only a,b]
Needs: wrk nginx gunicorn uwsgi uwsgi-plugin-python3 python3-uvicorn python3-hypercorn (make deps-bench).
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, "bench", "apps")
PY = "/usr/bin/python3"

NGINX_CONF = """daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port};
  location / {{ default_type text/plain; return 200 "Hello, world!"; }} }} }}
"""
# static suite: the same file from nginx (sendfile, as a site would set it) and gallop --static
STATIC_FILE = "/static/10k.bin"
NGINX_STATIC_CONF = """daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; sendfile on; keepalive_requests 100000000; include /etc/nginx/mime.types;
  server {{ listen 127.0.0.1:{port}; location /static/ {{ alias {tmp}/site/; }} }} }}
"""


def servers(gallop, suite):
    nginx = {"nginx (fixed reply)": ["nginx", "-c", "{tmp}/nginx.conf"]}
    if suite == "static":
        return {"nginx (sendfile)": ["nginx", "-c", "{tmp}/nginx.conf"],
                "gallop --static": [gallop, "--workers", "1", "--bind", "127.0.0.1:{port}",
                                    "--static", "/static={tmp}/site", "hello:app"]}
    if suite == "wsgi":
        return {**nginx,
            "gallop": [gallop, "--workers", "1", "--bind", "127.0.0.1:{port}", "hello:app"],
            "gunicorn sync": [PY, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "hello:app"],
            "gunicorn gthread": [PY, "-m", "gunicorn", "-w", "1", "--threads", "4", "-k", "gthread",
                                 "-b", "127.0.0.1:{port}", "hello:app"],
            "uwsgi": ["uwsgi", "--plugin", "python3", "--http-socket", "127.0.0.1:{port}", "--wsgi-file",
                      "hello.py", "--callable", "app", "--processes", "1", "--master",
                      "--disable-logging", "--die-on-term"],
        }
    app = "hello_asgi:app" if suite == "asgi" else "io_asgi:app"
    uvicorn = [PY, "-m", "uvicorn", "--no-access-log", "--workers", "1", "--port", "{port}"]
    table = {**nginx,
        "gallop": [gallop, "--workers", "1", "--bind", "127.0.0.1:{port}", app],
        "uvicorn (uvloop+httptools)": uvicorn + ["--loop", "uvloop", "--http", "httptools", app],
    }
    if suite == "asgi":
        table["uvicorn (asyncio+h11)"] = uvicorn + ["--loop", "asyncio", "--http", "h11", app]
        table["hypercorn"] = [PY, "-m", "hypercorn", "-w", "1", "-b", "127.0.0.1:{port}", app]
    return table


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(session):
    """User + system CPU of the live processes whose session id is `session`."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def answers(url, deadline):
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def measure(cmd, args, tmp):
    port = free_port()
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write((NGINX_STATIC_CONF if args.suite == "static" else NGINX_CONF).format(tmp=tmp, port=port))
    argv = [a.format(port=port, tmp=tmp) for a in cmd]
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen(argv, cwd=APPS, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}{STATIC_FILE if args.suite == 'static' else '/'}"
    try:
        if not answers(url, time.time() + 20):
            return None
        wrk = ["wrk", f"-t{2 if args.conns > 200 else 1}", f"-c{args.conns}"]
        subprocess.run(wrk + ["-d1s", url], capture_output=True, timeout=30)
        before = cpu_seconds(proc.pid)
        out = subprocess.run(wrk + [f"-d{args.seconds}s", url], capture_output=True, text=True,
                             timeout=args.seconds + 30).stdout
        used = cpu_seconds(proc.pid) - before
        done = int(re.search(r"(\d+) requests in", out).group(1))
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {"rps": done / args.seconds, "cpu_us": used / max(done, 1) * 1e6,
                "non2xx": int(errors.group(1)) if errors else 0}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--suite", choices=["wsgi", "static", "asgi", "io"], default="wsgi")
    ap.add_argument("--conns", type=int, default=0, help="default 64 (io: 1000)")
    ap.add_argument("--gallop", default=os.path.join(ROOT, "build", "gallop"))
    ap.add_argument("--only", help="comma-separated server names")
    args = ap.parse_args()
    args.conns = args.conns or (1000 if args.suite == "io" else 64)
    table = servers(os.path.abspath(args.gallop), args.suite)
    if args.only:
        table = {k: v for k, v in table.items() if k in args.only.split(",")}
    missing = [c[0] for c in table.values() if not shutil.which(c[0])]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (run make deps-bench)")
    results = {name: [] for name in table}
    tmp = tempfile.mkdtemp(prefix="gallop-bench-")
    os.chmod(tmp, 0o755)  # nginx's workers run as www-data when started by root
    os.makedirs(os.path.join(tmp, "site"))
    with open(os.path.join(tmp, "site", "10k.bin"), "wb") as f:
        f.write(os.urandom(10240))
    for _ in range(args.rounds):
        for name, cmd in table.items():
            r = measure(cmd, args, tmp)
            if r:
                results[name].append(r)
    shutil.rmtree(tmp, ignore_errors=True)
    ref = {}
    peer = {"wsgi": "uwsgi", "static": "gallop --static"}.get(args.suite, "uvicorn (uvloop+httptools)")
    print(f"| server | req/s | CPU us/req | vs nginx | vs {peer} |  ({args.suite}, 1 worker, "
          f"{args.conns} connections, median of {args.rounds} x {args.seconds}s)")
    print("|---|---:|---:|---:|---:|")
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in results.items() if rs}
    nginx = med.get("nginx (sendfile)" if args.suite == "static" else "nginx (fixed reply)")
    uwsgi = med.get(peer)
    for name in table:
        if name not in med:
            print(f"| {name} | did not answer | | | |")
            continue
        m = med[name]
        vs_n = f"{m['cpu_us'] / nginx['cpu_us']:.2f}x" if nginx else "-"
        vs_u = f"{m['cpu_us'] / uwsgi['cpu_us']:.0%}" if uwsgi else "-"
        bad = f" ({m['non2xx']:.0f} non-2xx)" if m["non2xx"] else ""
        print(f"| {name} | {m['rps']:.0f}{bad} | {m['cpu_us']:.1f} | {vs_n} | {vs_u} |")
    return ref


if __name__ == "__main__":
    main()
