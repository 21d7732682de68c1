"""The build half of pyproject.toml: make builds build/pip/gallop and its
bridge gallop-python.so for the Python running this (so for the venv that pip
installs into), and both are installed as "scripts", into that venv's bin/.
The wheel is tagged for this Python and platform, as it holds machine code."""
import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.dist import Distribution
from distutils.command.build_scripts import build_scripts  # setuptools' own copy, after setuptools

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join("build", "pip")  # relative: setuptools wants relative script paths


class make_binaries(build_scripts):
    """Runs make, then copies the two files as they are (build_scripts would
    read them as text to fix a #! line, which an ELF file does not have)."""

    def run(self):
        shutil.rmtree(os.path.join(HERE, OUT), ignore_errors=True)
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        subprocess.check_call(["make", "-C", HERE, "--no-print-directory", f"-j{jobs}",
                               f"PYTHON={sys.executable}", f"BUILD={OUT}", "all"])
        self.mkpath(self.build_dir)
        for script in self.scripts:
            out = os.path.join(self.build_dir, os.path.basename(script))
            self.copy_file(os.path.join(HERE, script), out)
            os.chmod(out, 0o755)


class MachineCode(Distribution):
    def has_ext_modules(self):
        return True  # a cp311-cp311-linux_x86_64 wheel, not py3-none-any


setup(
    scripts=[os.path.join(OUT, name) for name in ("gallop", "gallop-python.so", "gallop-tls.so")],
    cmdclass={"build_scripts": make_binaries},
    distclass=MachineCode,
)
