"""tools/callgraph.py, the check behind `make check-cycles`: it fails on
modules that call each other in a circle, names the symbols, and passes a
layered set. Objects compiled here with cc, as the build compiles the core."""
import os
import subprocess
import sys

from conftest import REPO

TOOL = os.path.join(REPO, "tools", "callgraph.py")


def objects(tmp_path, sources):
    objs = []
    for name, text in sources.items():
        c = tmp_path / (name + ".c")
        c.write_text(text)
        o = tmp_path / (name + ".o")
        subprocess.run(["cc", "-c", "-o", str(o), str(c)], check=True)
        objs.append(str(o))
    return objs


def run(objs):
    return subprocess.run([sys.executable, TOOL, *objs], capture_output=True, text=True)


def test_a_cycle_fails_with_its_symbols(tmp_path):
    objs = objects(tmp_path, {
        "conn": "void ws_input(void); void conn_flush(void) {} void conn_event(void) { ws_input(); }",
        "ws": "void conn_flush(void); void ws_input(void) { conn_flush(); }",
        "loop": "void loop_run(void) {}",
    })
    r = run(objs)
    assert r.returncode == 1, r.stdout
    assert "call cycle among: conn, ws" in r.stdout
    assert "conn -> ws  (ws_input)" in r.stdout and "ws -> conn  (conn_flush)" in r.stdout
    assert "loop" not in r.stdout


def test_a_longer_cycle_is_found(tmp_path):
    objs = objects(tmp_path, {
        "a": "void b(void); void a(void) { b(); }",
        "b": "void c(void); void b(void) { c(); }",
        "c": "void a(void); void c(void) { a(); }",
    })
    r = run(objs)
    assert r.returncode == 1 and "call cycle among: a, b, c" in r.stdout


def test_layers_pass_and_a_table_is_no_edge(tmp_path):
    # the lower layer calls the upper one only through a pointer it was given
    objs = objects(tmp_path, {
        "stream": "void (*on_event)(void); void stream_io(void) { on_event(); } void stream_flush(void) {}",
        "h1": "void stream_flush(void); extern void (*on_event)(void);"
              "static void h1_event(void) { stream_flush(); } void h1_init(void) { on_event = h1_event; }",
    })
    r = run(objs)
    assert r.returncode == 0, r.stdout
    assert "no call cycles among 2 objects (1 edges)" in r.stdout
