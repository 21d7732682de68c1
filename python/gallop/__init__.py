"""gallop: a pre-fork application server for Python web apps, written in C.

This package only finds the gallop binary that pip installed beside the
interpreter (`python -m gallop ...` runs it); the server itself is the
binary, its bridge and its TLS module: bin/gallop, bin/gallop-python.so and
bin/gallop-tls.so."""
import os
import sys
import sysconfig

__version__ = "0.1.0"


def binary():
    """The path of the installed gallop binary, or None."""
    dirs = [sysconfig.get_path("scripts")]
    user = sysconfig.get_preferred_scheme("user") if hasattr(sysconfig, "get_preferred_scheme") else None
    if user:
        dirs.append(sysconfig.get_path("scripts", user))
    dirs += os.environ.get("PATH", "").split(os.pathsep)
    for d in dirs:
        exe = os.path.join(d, "gallop")
        if d and os.access(exe, os.X_OK) and os.path.isfile(exe):
            return exe
    return None


def main(argv=None):
    """Replaces this process with the gallop binary, run with argv (default
    sys.argv[1:]). In a virtual environment the workers run this
    environment's python, as if it were activated."""
    exe = binary()
    if not exe:
        sys.stderr.write("gallop: error: the gallop binary is not installed beside this Python "
                         f"({sysconfig.get_path('scripts')}); reinstall the package\n")
        return 3
    env = dict(os.environ)
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    args = sys.argv[1:] if argv is None else list(argv)
    os.execve(exe, [exe] + args, env)
    return 3  # not reached
