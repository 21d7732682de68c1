"""What users do after the connection-layer redesign: real clients and real
frameworks against the real binary, each test a thing that once broke."""
import subprocess

from conftest import GALLOP_BIN


def test_tune_shows_the_traceback_of_an_app_that_does_not_import(tmp_path):
    """tune's error says "(traceback below)": the traceback must follow it,
    or the user cannot tell which import of the app failed."""
    (tmp_path / "badimport.py").write_text("import no_such_dependency_xyz\n")
    p = subprocess.run([GALLOP_BIN, "tune", "badimport:app", "--chdir", str(tmp_path),
                        "--duration", "0.5"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    err = p.stderr
    assert "raised an exception while importing (traceback below)" in err, err
    below = err[err.index("(traceback below)"):]
    assert "Traceback (most recent call last):" in below, err
    assert 'badimport.py", line 1' in below, err
    assert "ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in below, err
    # only the worker's traceback, not the master's own lines
    assert "shutting down" not in below, err
