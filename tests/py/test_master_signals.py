"""The master's signals under load: chaos (SIGKILLed workers), HUP rolling
reload, USR2 upgrade in place, TTIN/TTOU, and the log line for a worker
killed by someone else.

Clients (mastertools.Load): "new" clients open a connection per request, so
any error at all is a failure; "keep-alive" clients retry, once, a request
that fails on a reused connection before any byte of the response came back
(the server closed an idle keep-alive connection as the request was sent),
as urllib3/requests do; every other error is a failure."""
import os
import random
import shutil
import re
import signal
import time

from mastertools import GALLOP_BIN, Load, gallop, get, get_pid, pid_alive, wait_for  # noqa: F401 (gallop: fixture)


def test_chaos_sigkill_a_worker_every_second(gallop):
    g = gallop(["--workers", "3"])
    g.wait_workers(3)
    g.wait_serving()
    clients = 4
    kills, restore_times = [], []
    rng = random.Random(1234)
    with Load(g.port, threads=clients, timeout=5.0) as load:
        end = time.monotonic() + 20.0
        while time.monotonic() < end:
            tick = time.monotonic()
            ws = g.workers()
            assert pid_alive(g.pid), "the master died"
            if len(ws) == 3:
                victim = rng.choice(ws)
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)

                def restored():
                    now = g.workers()
                    log = g.log()
                    return (len(now) == 3 and victim not in now
                            and all(f"worker {p} ready" in log for p in now))
                wait_for(restored, 3.0, what=f"3 ready workers again after killing {victim}")
                restore_times.append(time.monotonic() - tick)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        time.sleep(0.5)
    assert pid_alive(g.pid) and g.proc.poll() is None
    summary = load.summary()
    print(f"kills={len(kills)} restore={max(restore_times):.2f}s {summary}")
    assert len(kills) >= 12, (kills, summary)
    # restored each time within a couple of seconds (waits above are bounded by 3 s)
    assert max(restore_times) < 3.0, restore_times
    # only requests in flight on a killed worker may fail
    assert load.failed <= len(kills) * clients, summary
    assert load.ok >= 200, summary
    log = g.log()
    for v in kills:
        assert re.search(rf"worker {v} was killed by signal 9 \(SIGKILL\) that the master did not send", log), v
    # still serving, with 3 workers
    g.wait_workers(3)
    assert get_pid(g.port) in g.workers()


def test_sigkill_of_a_worker_is_logged_as_a_signal_we_did_not_send(gallop):
    # no OOM kill was counted in the cgroup: no guess that memory ran out
    g = gallop(["--workers", "2"])
    ws = g.wait_workers(2)
    g.wait_serving()
    os.kill(ws[0], signal.SIGKILL)
    g.wait_log(rf"\[ERROR\] worker {ws[0]} was killed by signal 9 \(SIGKILL\) that the master did not send; "
               r"replacing it")
    assert "out of memory" not in g.log() and "OOM" not in g.log()
    now = g.wait_workers(2)
    assert ws[0] not in now and ws[1] in now
    assert g.proc.poll() is None


def test_hup_under_load_rolls_every_worker_without_errors(gallop):
    g = gallop(["--workers", "3"])
    before = set(g.wait_workers(3))
    g.wait_serving()
    with Load(g.port, threads=4) as fresh, Load(g.port, threads=2, keepalive=True) as ka:
        time.sleep(3.0)
        t_hup = time.monotonic()
        g.kill(signal.SIGHUP)
        g.wait_log(r"reload complete: generation 2 serving with 3 workers", timeout=15)
        t_done = time.monotonic()
        time.sleep(3.0)
    after = set(g.wait_workers(3))
    print("HUP", fresh.summary(), ka.summary(), f"reload took {t_done - t_hup:.2f}s")
    log = g.log()
    assert "handling signal: hup; starting worker generation 2" in log
    assert fresh.failed == 0, fresh.summary()
    assert ka.failed == 0, ka.summary()
    assert fresh.ok >= 100 and ka.ok >= 100, (fresh.summary(), ka.summary())
    assert before.isdisjoint(after), (before, after)
    for p in before:
        assert f"retiring worker {p} (replaced by the new generation)" in log
        assert not pid_alive(p)
    # requests were served before, during and after the reload
    for load in (fresh, ka):
        times = [t for t, _ in load.timeline]
        assert any(t < t_hup for t in times) and any(t > t_done + 1 for t in times)
        late = {p for t, p in load.timeline if t > t_done + 1.5}
        assert late and late <= after, (late, after)
    assert g.proc.poll() is None


def test_usr2_upgrade_under_load(gallop, tmp_path):
    pidfile = tmp_path / "gallop.pid"
    g = gallop(["--workers", "2", "--pid", pidfile])
    old_workers = set(g.wait_workers(2))
    g.wait_serving()
    old = g.pid
    assert int(pidfile.read_text()) == old
    with Load(g.port, threads=4) as fresh, Load(g.port, threads=2, keepalive=True) as ka:
        time.sleep(2.0)
        g.kill(signal.SIGUSR2)
        new = int(g.wait_log(r"handling signal: usr2; started new master (\d+) from ")[0])
        g.adopt_master(new)
        # while both run, the new master is the old one's child
        rc = g.wait_exit(timeout=20)
        assert rc == 0, g.log()[-4000:]
        new_workers = set(g.wait_workers(2))
        time.sleep(2.0)
    print("USR2", fresh.summary(), ka.summary())
    log = g.log()
    assert f"upgrade: this master is ready; retiring the old master {old}" in log
    assert fresh.failed == 0, fresh.summary()
    assert ka.failed == 0, ka.summary()
    assert fresh.ok >= 50 and ka.ok >= 50, (fresh.summary(), ka.summary())
    assert not pid_alive(old)
    assert pid_alive(new)
    assert int(pidfile.read_text()) == new
    assert not os.path.exists(str(pidfile) + ".oldbin")
    assert old_workers.isdisjoint(new_workers)
    for p in old_workers:
        assert not pid_alive(p)
    assert get_pid(g.port) in new_workers
    # the new master works as a master: TERM stops it, removing the pid file
    os.kill(new, signal.SIGTERM)
    wait_for(lambda: not pid_alive(new), 10, what="the new master to exit")
    assert not pidfile.exists()


def test_usr2_new_master_is_a_child_of_the_old_until_it_exits(gallop):
    g = gallop(["--workers", "1"])
    g.wait_workers(1)
    g.wait_serving()
    old = g.pid
    g.kill(signal.SIGUSR2)
    new = int(g.wait_log(r"started new master (\d+) from ")[0])
    with open(f"/proc/{new}/stat") as f:
        st = f.read()
    ppid = int(st[st.rindex(")") + 2:].split()[1])
    # if the old master already exited, the new one was reparented
    assert ppid == old or not pid_alive(old), (ppid, old)
    g.adopt_master(new)
    assert g.wait_exit(timeout=20) == 0
    g.wait_workers(1, master=new)
    g.wait_serving()


def test_ttin_ttou_change_the_worker_count(gallop):
    g = gallop(["--workers", "2"])
    g.wait_workers(2)
    g.wait_serving()
    n_in = n_out = 0

    def send(sig, want_count):
        nonlocal n_in, n_out
        g.kill(sig)
        if sig == signal.SIGTTIN:
            n_in += 1
            g.wait_log(r"handling signal: ttin;", count=n_in)
        else:
            n_out += 1
            g.wait_log(r"handling signal: ttou;", count=n_out)
        return g.wait_workers(want_count)

    send(signal.SIGTTIN, 3)
    send(signal.SIGTTIN, 4)
    send(signal.SIGTTOU, 3)
    send(signal.SIGTTOU, 2)
    one = send(signal.SIGTTOU, 1)
    # never below one
    send(signal.SIGTTOU, 1)
    send(signal.SIGTTOU, 1)
    time.sleep(1.5)
    assert g.wait_workers(1) == one
    assert g.log().count("handling signal: ttou; 1 workers wanted") == 3
    assert get_pid(g.port) == one[0]
    send(signal.SIGTTIN, 2)
    assert g.proc.poll() is None


GOOD_APP = '''
import os
VERSION = "%s"
def app(environ, start_response):
    body = f"{os.getpid()} {VERSION}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def _version(port):
    status, body = get(port, "/", timeout=5)
    assert status == 200
    return body.split()[1]


def test_hup_with_a_broken_app_keeps_the_old_workers(gallop, tmp_path):
    """HUP loads the code again; if the new code cannot load, the old
    generation keeps serving and the master stays up. Fixed code then reloads."""
    appdir = tmp_path / "app"
    appdir.mkdir()
    mod = appdir / "master_reload_app.py"
    mod.write_text(GOOD_APP % "v1")
    g = gallop(["--workers", "2"], app="master_reload_app:app", chdir=str(appdir))
    old = set(g.wait_workers(2))
    g.wait_serving()
    assert _version(g.port) == "v1"
    mod.write_text("raise RuntimeError('broken release')\n")
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload failed: the new generation cannot load the app; keeping the old workers", timeout=15)
    time.sleep(1.5)
    assert g.proc.poll() is None, g.log()[-4000:]
    assert set(g.wait_workers(2)) == old
    for _ in range(5):
        assert _version(g.port) == "v1"
    mod.write_text(GOOD_APP % "v2")
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload complete: generation \d+ serving with 2 workers", timeout=15)
    new = set(g.wait_workers(2))
    assert new.isdisjoint(old)
    assert _version(g.port) == "v2"


def test_usr2_twice_upgrades_the_upgraded_master(gallop, tmp_path):
    pidfile = tmp_path / "g.pid"
    g = gallop(["--workers", "1", "--pid", pidfile])
    g.wait_workers(1)
    g.wait_serving()
    masters = [g.pid]
    for round_ in (1, 2):
        g.kill(signal.SIGUSR2)
        new = int(g.wait_log(r"handling signal: usr2; started new master (\d+) from ", count=round_)[-1])
        old = g.pid
        g.adopt_master(new)
        wait_for(lambda: not pid_alive(old), 20, what=f"old master {old} to exit")
        wait_for(lambda: pidfile.exists() and pidfile.read_text() == f"{new}\n", 5, what="the new pid file")
        w = g.wait_workers(1, master=new)
        assert get_pid(g.port) == w[0]
        masters.append(new)
    assert len(set(masters)) == 3
    assert not os.path.exists(str(pidfile) + ".oldbin")


def test_usr2_that_cannot_exec_keeps_the_old_master(gallop, tmp_path):
    """The binary is gone (a botched deploy): the old master serves on, and
    the pid file it had renamed to .oldbin is put back."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "gallop"
    shutil.copy2(GALLOP_BIN, exe)
    shutil.copy2(os.path.join(os.path.dirname(GALLOP_BIN), "gallop-python.so"), bindir)
    pidfile = tmp_path / "g.pid"
    g = gallop(["--workers", "1", "--pid", pidfile], binary=str(exe))
    (w,) = g.wait_workers(1)
    g.wait_serving()
    exe.unlink()
    g.kill(signal.SIGUSR2)
    g.wait_log(r"the upgraded master \d+ exited \(exit code 1\); this master keeps serving", timeout=10)
    assert "cannot execute" in g.log()
    assert pidfile.read_text() == f"{g.pid}\n"
    assert not os.path.exists(str(pidfile) + ".oldbin")
    assert g.workers() == [w] and get_pid(g.port) == w
    g.kill(signal.SIGTERM)
    assert g.wait_exit(15) == 0
    assert not pidfile.exists()


def test_usr1_reopens_the_logs_of_master_and_workers(gallop, tmp_path):
    logf = tmp_path / "error.log"
    g = gallop(["--workers", "2", "--error-log", logf])
    wait_for(lambda: logf.exists() and logf.read_text().count(" ready") >= 2, 15, what="2 workers ready")
    g.wait_serving()
    rotated = tmp_path / "error.log.1"
    os.rename(logf, rotated)
    g.kill(signal.SIGUSR1)
    wait_for(lambda: logf.exists() and "log files reopened" in logf.read_text(), 10, what="the reopened log")
    time.sleep(0.5)  # the workers got USR1 from the master just before its log line
    # the app's stderr (the worker's fd 2) now goes to the new file, in every worker
    for i in range(40):
        get_pid(g.port, f"/log?n{i}")
    new = logf.read_text()
    old = rotated.read_text()
    for i in range(40):
        assert f" n{i}\n" in new, (i, new[-2000:])
    assert "app-log-line" not in old
    assert "log files reopened" not in old and "starting 2 workers" in old


def test_hup_rereads_the_config_file(gallop, tmp_path):
    conf = tmp_path / "gallop.conf"
    conf.write_text("# settings\nworkers = 2\nmax_requests = 1000  # generous\n")
    g = gallop(["-c", str(conf)])
    g.wait_workers(2)
    g.wait_serving()
    old = set(g.workers())
    conf.write_text("workers = 3\n")
    g.kill(signal.SIGHUP)
    g.wait_log(r"reload: 3 workers")
    new = g.wait_workers(3)
    assert not old & set(new)
    # a broken file keeps the running configuration
    conf.write_text("workers = lots\n")
    g.kill(signal.SIGHUP)
    g.wait_log(r"the configuration has an error")
    g.wait_log(r"reload complete", count=2)
    assert len(g.wait_workers(3)) == 3
