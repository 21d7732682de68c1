"""What the bench scripts share: a free loopback port, a process's CPU time
from /proc, a throw-away self-signed certificate, and stopping a server
started in its own session. Standard library only; nothing here measures."""
import os
import signal
import socket
import subprocess

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(text):
    """The fields of a /proc/PID/stat line after the command name (which may
    hold spaces and parentheses): [0] is the state, [3] the session id, [11]
    and [12] utime and stime in clock ticks."""
    return text[text.rindex(")") + 2:].split()


def cpu_ticks(fields):
    return int(fields[11]) + int(fields[12])


def cpu_s(pid):
    """User + system seconds of one process; OSError once it is gone."""
    with open(f"/proc/{pid}/stat") as f:
        return cpu_ticks(stat_fields(f.read())) / TICK


def self_signed(d, key="ec", cn="127.0.0.1"):
    """A certificate and its key (RSA 2048 or ECDSA P-256) in folder d, for two
    days: the paths (cert, key)."""
    cert, keyfile = f"{d}/cert.pem", f"{d}/key.pem"
    newkey = (["-newkey", "rsa:2048"] if key == "rsa"
              else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", keyfile, "-out", cert,
                    "-days", "2", "-subj", f"/CN={cn}"], check=True, capture_output=True)
    return cert, keyfile


def stop_session(p, timeout=None):
    """TERM to the process group of p (started with start_new_session), then wait."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    p.wait(timeout=timeout)
