"""The deployment files of docs/deploy.md (deploy/), tested as they are:
the systemd units are verified by systemd-analyze and their ExecStart is run
under systemd-socket-activate as the unit's User, with NOTIFY_SOCKET read by
the test (READY=1, RELOADING=1 on ExecReload, STOPPING=1 on TERM); the nginx
site runs in front of it as www-data, over the UNIX socket and over TCP. The
Kubernetes Deployment, the Dockerfile and the Procfile are parsed (YAML with
Python's yaml module) and their command lines pass --check-config and serve
the test app (the Dockerfile's as PID 1). Files are templated only for
ports and paths."""
import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import yaml

from conftest import GALLOP_BIN, REPO, free_port
from mastertools import base_env, wait_for

DEPLOY = os.path.join(REPO, "deploy")
DOC = os.path.join(REPO, "docs", "deploy.md")

APP = '''import json, os
def app(environ, start_response):
    keys = ("REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_HOST",
            "PATH_INFO", "wsgi.url_scheme")
    d = {k: environ.get(k) for k in keys}
    d["pid"], d["uid"] = os.getpid(), os.getuid()
    body = json.dumps(d).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def read(rel):
    with open(os.path.join(DEPLOY, rel)) as f:
        return f.read()


def unit(text):
    """A systemd unit file as {section: [(key, value), ...]}."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, [])
            continue
        k, _, v = line.partition("=")
        out[section].append((k.strip(), v.strip()))
    return out


def one(section, key):
    vals = [v for k, v in section if k == key]
    assert len(vals) == 1, (key, vals)
    return vals[0]


def flag(argv, name):
    """The value of --name in argv (either form), or None."""
    for i, a in enumerate(argv):
        if a == name:
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def check_config(argv, cwd):
    r = subprocess.run([GALLOP_BIN, "--check-config", *argv], capture_output=True, text=True,
                       timeout=15, cwd=cwd, env=base_env())
    assert r.returncode == 0, (argv, r.stdout, r.stderr)
    assert r.stdout.startswith("gallop: configuration OK"), r.stdout
    return r


@pytest.fixture
def site():
    """A directory www-data can reach (pytest's tmp_path is root's alone),
    holding the test app in app/ and its static/ files."""
    d = tempfile.mkdtemp(prefix="gallop-deploy-", dir="/tmp")
    os.chmod(d, 0o755)
    os.makedirs(os.path.join(d, "app", "static"))
    with open(os.path.join(d, "app", "app.py"), "w") as f:
        f.write(APP)
    with open(os.path.join(d, "app", "static", "hello.txt"), "w") as f:
        f.write("static hello\n")
    for root, dirs, files in os.walk(d):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
        for x in files:
            os.chmod(os.path.join(root, x), 0o644)
    procs = []
    yield d, procs
    for p in procs:  # after a failure: the process and its children (nginx's workers, gallop's)
        if p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                kids = []
            p.kill()
            p.wait(10)
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
    shutil.rmtree(d, ignore_errors=True)


class Notify:
    """The NOTIFY_SOCKET end systemd would hold."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)  # the service runs as its User=
        self.got = []

    def expect(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.got.append(msg)
            if pred(msg):
                return msg
        raise AssertionError(f"no {what} within {timeout}s; got {self.got}")

    def close(self):
        self.sock.close()


def http_get(host_or_path, port, path="/", headers=None, timeout=10):
    if port is None:
        c = http.client.HTTPConnection("localhost", timeout=timeout)
        c.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.sock.settimeout(timeout)
        c.sock.connect(host_or_path)
    else:
        c = http.client.HTTPConnection(host_or_path, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_systemd_units_verify_and_agree_with_gallop(tmp_path):
    service, sock = read("systemd/gallop.service"), read("systemd/gallop.socket")
    (tmp_path / "gallop.service").write_text(service.replace("/usr/local/bin/gallop", GALLOP_BIN))
    (tmp_path / "gallop.socket").write_text(sock)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "gallop.socket"),
                        str(tmp_path / "gallop.service")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "gallop." not in r.stdout + r.stderr, r.stdout + r.stderr  # no warning about them
    svc = unit(service)["Service"]
    assert one(svc, "Type") == "notify"
    assert one(svc, "KillMode") == "mixed"
    assert one(svc, "ExecReload") == "/bin/kill -s HUP $MAINPID"
    argv = shlex.split(one(svc, "ExecStart"))
    assert argv[0] == "/usr/local/bin/gallop"
    assert flag(argv, "--bind") is None  # the socket comes from gallop.socket
    assert float(one(svc, "TimeoutStopSec")) > float(flag(argv, "--graceful-timeout"))
    check_config(argv[1:], str(tmp_path))


def ipv6():
    """Whether this machine can listen on [::] (a container may have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


def nginx_conf(d, site_text, port):
    """A main nginx.conf around the site file, for a master run as root whose
    workers are www-data, everything else under d."""
    site_path = os.path.join(d, "site.conf")
    with open(site_path, "w") as f:
        f.write(site_text)
    conf = os.path.join(d, "nginx.conf")
    temps = "\n".join(f"    {k}_temp_path {d}/{k}_temp;" for k in
                      ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(conf, "w") as f:
        f.write(f"""user www-data;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/nginx-access.log;
{temps}
    include {site_path};
}}
""")
    return conf


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_systemd_socket_activation_behind_nginx(site, transport):
    d, procs = site
    service = unit(read("systemd/gallop.service"))["Service"]
    sock_text = read("systemd/gallop.socket")
    sock = unit(sock_text)["Socket"]
    site_text = read("nginx/gallop.conf")
    app_dir = os.path.join(d, "app")
    gport, nport = free_port(), free_port()

    # the socket unit, templated for the path or the port
    if transport == "unix":
        listen = one(sock, "ListenStream").replace("/run/gallop.sock", f"{d}/gallop.sock")
        upstream = None
    else:
        tcp = re.search(r"^# or over TCP instead: ListenStream=(\S+)$", sock_text, re.M).group(1)
        listen = tcp.replace(":8000", f":{gport}")
        upstream = re.search(r"^\s*# or over TCP instead: (server 127\.0\.0\.1:8000 .*;)$",
                             site_text, re.M).group(1).replace(":8000", f":{gport}")
    # the service, as systemd would start it: its User, Group, environment and directory
    argv = shlex.split(one(service, "ExecStart").replace("/usr/local/bin/gallop", GALLOP_BIN))
    user, group = one(service, "User"), one(service, "Group")
    notify = Notify(os.path.join(d, "notify.sock"))
    env_flags = [f"--setenv={v}" for k, v in service if k == "Environment"]
    # root makes the socket, as systemd does; the service then runs as User=
    cmd = ["systemd-socket-activate", f"--listen={listen}", f"--setenv=NOTIFY_SOCKET={notify.path}",
           *env_flags, "setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups", *argv]
    log_path = os.path.join(d, "gallop.log")
    log = open(log_path, "wb")
    g = subprocess.Popen(cmd, cwd=one(service, "WorkingDirectory").replace("/srv/app", app_dir),
                         stdout=log, stderr=subprocess.STDOUT, env=base_env(), start_new_session=True)
    procs.append(g)

    def glog():
        with open(log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    try:
        if transport == "unix":
            path = f"{d}/gallop.sock"
            wait_for(lambda: os.path.exists(path), 10, what="the activated socket")
            # what SocketUser=, SocketGroup= and SocketMode= make of it
            shutil.chown(path, one(sock, "SocketUser"), one(sock, "SocketGroup"))
            os.chmod(path, int(one(sock, "SocketMode"), 8))
            target = (path, None)
            upstream_line = f"server unix:{path} fail_timeout=0;"
        else:
            target = ("127.0.0.1", gport)
            upstream_line = upstream

        def connect():
            if transport == "unix":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(target[0])
                return s
            return socket.create_connection(target, timeout=5)
        # the first connection makes systemd-socket-activate exec gallop
        wait_for(lambda: "Listening on" in glog(), 10, what="systemd-socket-activate")
        first = connect()
        notify.expect(lambda m: "READY=1" in m.split("\n"), 30, "READY=1")
        assert f"MAINPID={g.pid}" in notify.got[-1], notify.got
        first.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first.settimeout(10)
        assert first.recv(65536).startswith(b"HTTP/1.1 200 OK"), glog()
        first.close()
        status, _, body = http_get(*target)
        assert status == 200
        app = json.loads(body)
        assert app["uid"] == pwd.getpwnam(user).pw_uid  # the unit's User=
        assert "using 1 socket from systemd" in glog()

        # nginx in front, with the site file
        site = site_text.replace("listen 80;", f"listen {nport};")
        site = site.replace("listen [::]:80;", f"listen [::]:{nport};" if ipv6() else "")
        site = site.replace("alias /srv/app/static/;", f"alias {app_dir}/static/;")
        site = re.sub(r"^\s*server unix:/run/gallop\.sock fail_timeout=0;$",
                      "    " + upstream_line, site, flags=re.M)
        assert upstream_line in site
        conf = nginx_conf(d, site, nport)
        t = subprocess.run(["nginx", "-t", "-e", f"{d}/nginx-error.log", "-c", conf],
                           capture_output=True, text=True, timeout=30)
        assert t.returncode == 0, t.stderr
        ng = subprocess.Popen(["nginx", "-e", f"{d}/nginx-error.log", "-c", conf, "-g", "daemon off;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ng)

        def nginx_up():
            try:
                return http_get("127.0.0.1", nport, "/static/hello.txt", timeout=2)[0] == 200
            except OSError:
                return False
        wait_for(nginx_up, 15, what="nginx")
        workers = [int(x) for x in open(f"/proc/{ng.pid}/task/{ng.pid}/children").read().split()]
        assert workers and all(os.stat(f"/proc/{w}").st_uid == pwd.getpwnam("www-data").pw_uid
                               for w in workers)
        status, _, body = http_get("127.0.0.1", nport, "/static/hello.txt")
        assert (status, body) == (200, b"static hello\n")
        for i in range(5):  # over nginx's kept-alive upstream connections
            status, _, body = http_get("127.0.0.1", nport, f"/via-nginx/{i}",
                                       headers={"Host": "example.test"})
            assert status == 200, body
            app = json.loads(body)
            assert app["PATH_INFO"] == f"/via-nginx/{i}"
            assert app["HTTP_HOST"] == "example.test"
            assert app["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
            assert app["HTTP_X_FORWARDED_PROTO"] == "http"
            # believed (the service's --forwarded-allow-ips): the client's address
            # even over the UNIX socket, where the peer itself has none
            assert app["REMOTE_ADDR"] == "127.0.0.1", app
            assert app["wsgi.url_scheme"] == "http"
        status, _, body = http_get("127.0.0.1", nport, "/", headers={"X-Forwarded-Proto": "https"})
        # nginx sets the header itself: what the client sent is overwritten
        assert json.loads(body)["wsgi.url_scheme"] == "http"
        wait_for(lambda: '"GET /via-nginx/4 HTTP/1.1" 200' in glog(), 5, what="the access log line")
        assert "/static/hello.txt" not in glog()  # nginx served it, not the app

        # ExecReload
        os.kill(g.pid, signal.SIGHUP)
        notify.expect(lambda m: "RELOADING=1" in m, 15, "RELOADING=1")
        notify.expect(lambda m: "READY=1" in m.split("\n"), 30, "READY=1 after the reload")
        assert http_get("127.0.0.1", nport, "/after-reload")[0] == 200

        # systemctl stop: TERM to the main pid
        os.kill(g.pid, signal.SIGTERM)
        notify.expect(lambda m: "STOPPING=1" in m, 15, "STOPPING=1")
        assert g.wait(timeout=40) == 0, glog()
        ng.send_signal(signal.SIGQUIT)
        ng.wait(timeout=15)
    finally:
        notify.close()
        log.close()


def run_and_probe(argv, cwd, port, path="/", env=None, prefix=(), expect_pid1=False, also=None):
    """Runs a documented command line (gallop replaced by build/gallop) and
    checks it serves path, then stops it with TERM: exit 0."""
    e = base_env(env)
    p = subprocess.Popen([*prefix, *argv], cwd=cwd, env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up():
            try:
                return http_get("127.0.0.1", port, path, timeout=2)
            except OSError:
                return None
        def ready():
            r = up()
            return r if r and r[0] == 200 else None
        status, _, body = wait_for(ready, 20, what=f"{argv} to answer 200 at {path}")
        if also:
            assert also()
        target = p.pid
        if expect_pid1:
            kids = wait_for(lambda: open(f"/proc/{p.pid}/task/{p.pid}/children").read().split(),
                            5, what="unshare's child")
            target = int(kids[0])
            with open(f"/proc/{target}/status") as f:
                nspid = [ln.split()[1:] for ln in f if ln.startswith("NSpid:")][0]
            assert nspid[-1] == "1", nspid  # gallop is PID 1 in its namespace
        os.kill(target, signal.SIGTERM)
        assert p.wait(timeout=40) == 0
        return p.stdout.read().decode("utf-8", "replace")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def test_kubernetes_deployment(site):
    d, _ = site
    docs = list(yaml.safe_load_all(read("kubernetes/deployment.yaml")))
    dep = [x for x in docs if x["kind"] == "Deployment"][0]
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    argv = c["command"] + c["args"]
    assert argv[0] == "gallop"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert flag(argv, "--bind") == f"0.0.0.0:{ports['http']}"
    probe = c["readinessProbe"]["httpGet"]
    # readiness from the master's /healthz, on the --metrics-bind port
    assert probe["path"] == "/healthz" and probe["port"] == "metrics"
    assert flag(argv, "--metrics-bind") == f"0.0.0.0:{ports['metrics']}"
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/port"] == str(ports["metrics"])
    assert c["livenessProbe"]["tcpSocket"]["port"] == "http"
    sleep = c["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and float(sleep[1]) > 0
    graceful = float(flag(argv, "--graceful-timeout"))
    # SIGKILL must come only after the preStop sleep and gallop's graceful stop
    assert spec["terminationGracePeriodSeconds"] > float(sleep[1]) + graceful
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    app_dir = os.path.join(d, "app")
    check_config(argv[1:], app_dir)
    http_port, metrics_port = free_port(), free_port()
    real = [GALLOP_BIN] + [a.replace(f":{ports['http']}", f":{http_port}")
                           .replace(f":{ports['metrics']}", f":{metrics_port}") for a in argv[1:]]
    out = run_and_probe(real, app_dir, metrics_port, path=probe["path"],
                        also=lambda: http_get("127.0.0.1", http_port)[0] == 200)
    assert "shutting down" in out


def dockerfile(text):
    """Instructions of a Dockerfile as [(INSTRUCTION, argument text)]."""
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ins, _, rest = line.partition(" ")
            out.append((ins.upper(), rest.strip()))
    return out


def test_dockerfile_runs_gallop_as_pid_1(site):
    d, _ = site
    ins = dockerfile(read("Dockerfile"))
    cmds = [a for i, a in ins if i == "CMD"]
    assert len(cmds) == 1
    argv = json.loads(cmds[0])  # exec form: gallop itself is PID 1, no shell in between
    assert argv[0] == "gallop"
    assert not [a for i, a in ins if i == "ENTRYPOINT"]  # no tini or dumb-init needed
    assert not any(re.search(r"\b(tini|dumb-init)\b", a) for _, a in ins)
    (expose,) = [a for i, a in ins if i == "EXPOSE"]
    assert flag(argv, "--bind") == f"0.0.0.0:{expose}"
    assert [a for i, a in ins if i == "USER"][-1] != "root"
    # docker stop sends TERM, then KILL 10 s later
    assert float(flag(argv, "--graceful-timeout")) < 10
    workdir = [a for i, a in ins if i == "WORKDIR"][-1]
    assert workdir == "/srv/app"
    app_dir = os.path.join(d, "app")
    check_config(argv[1:], app_dir)
    p = free_port()
    real = [GALLOP_BIN] + [a.replace(f":{expose}", f":{p}") for a in argv[1:]]
    out = run_and_probe(real, app_dir, p, prefix=["unshare", "--pid", "--fork", "--mount-proc"],
                        expect_pid1=True)
    assert "[1] [INFO] listening at" in out, out


def test_procfile(site):
    d, _ = site
    lines = [ln for ln in read("Procfile").splitlines() if ln.strip()]
    (web,) = [ln for ln in lines if ln.startswith("web:")]
    command = web.split(":", 1)[1].strip()
    argv = shlex.split(command)
    assert argv[0] == "gallop"
    assert flag(argv, "--bind") == "0.0.0.0:$PORT"
    app_dir = os.path.join(d, "app")
    p = free_port()
    check_config([a.replace("$PORT", str(p)) for a in argv[1:]], app_dir)
    # as Heroku runs it: a shell with $PORT set
    os.symlink(GALLOP_BIN, os.path.join(d, "gallop"))  # gallop on PATH (its bridge: beside the target)
    env = {"PORT": str(p), "PATH": d + ":" + os.environ.get("PATH", "")}
    run_and_probe(["/bin/sh", "-c", "exec " + command], app_dir, p, env=env)


def test_the_doc_shows_each_file_as_it_is():
    with open(DOC) as f:
        doc = f.read()
    for rel in ("systemd/gallop.service", "systemd/gallop.socket", "nginx/gallop.conf",
                "kubernetes/deployment.yaml", "Dockerfile", "Procfile"):
        assert f"deploy/{rel}" in doc, rel
        assert read(rel).strip() in doc, f"docs/deploy.md does not show deploy/{rel} as it is"
    assert "test_master_deploy.py::test_pid1_in_a_new_pid_namespace_keeps_its_workers" in doc


def test_a_flag_gallop_lacks_fails_the_check(site):
    # the check above can fail: a documented flag gallop did not have would
    d, _ = site
    r = subprocess.run([GALLOP_BIN, "--check-config", "--graceful-timeout", "25",
                        "--no-such-flag", "app:app"], capture_output=True, text=True, timeout=15,
                       cwd=d)
    assert r.returncode == 2 and "unknown option '--no-such-flag'" in r.stderr
