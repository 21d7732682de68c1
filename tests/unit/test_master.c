/* Unit tests for core/master: gp_master_run with fake C worker entries (no
 * Python). Each master runs in a forked child of the test, so its signal mask
 * and its children never reach cmocka; the workers count themselves in a
 * MAP_SHARED page. Every child carries an alarm() so nothing can hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/master.h"
#include "core/scoreboard.h"

#define CHILD_ALARM_S 20

typedef struct {
    atomic_int spawns;    /* entries started */
    atomic_int ready;     /* entries waiting for TERM */
    atomic_int term_seen; /* entries that got their SIGTERM */
    atomic_int bad_args;  /* entries that found something wrong in their args */
    atomic_int pids[64];
    char listen_text[128];
} shared_t;

static shared_t *SH;
static char log_path[64];

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    SH = mmap(NULL, sizeof *SH, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (SH == MAP_FAILED) return -1;
    snprintf(log_path, sizeof log_path, "/tmp/gp_test_master_XXXXXX");
    int fd = mkstemp(log_path);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    munmap(SH, sizeof *SH);
    unlink(log_path);
    return 0;
}

/* ---- fake worker entries (they run in the master's forked children) ------- */

static int record_spawn(const gp_worker_args *a)
{
    alarm(CHILD_ALARM_S);
    int n = atomic_fetch_add(&SH->spawns, 1) + 1;
    if (n <= 64) atomic_store(&SH->pids[n - 1], (int)getpid());
    if (a->cfg == NULL || a->scoreboard == NULL || a->slot < 0 ||
        a->slot >= a->scoreboard->num_slots)
        atomic_fetch_add(&SH->bad_args, 1);
    else if (atomic_load(&a->scoreboard->slots[a->slot].pid) != getpid())
        atomic_fetch_add(&SH->bad_args, 1);
    return n;
}

/* What a real worker does once it serves: the master counts it as booted. */
static void mark_booted(const gp_worker_args *a)
{
    atomic_store(&a->scoreboard->slots[a->slot].state, GP_WS_IDLE);
}

static int wait_for_term(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    atomic_fetch_add(&SH->ready, 1);
    if (sigwait(&set, &sig) == 0 && sig == SIGTERM) atomic_fetch_add(&SH->term_seen, 1);
    return 0;
}

static void block_term(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static int entry_app_error(const gp_worker_args *a)
{
    record_spawn(a);
    return GP_EXIT_APP_ERROR;
}

static int entry_boot_error(const gp_worker_args *a)
{
    record_spawn(a);
    return GP_EXIT_BOOT_ERROR;
}

static int entry_wait_term(const gp_worker_args *a)
{
    block_term();
    int n = record_spawn(a);
    if (n == 1) {
        if (a->num_listeners != 1 || a->listeners[0].fd < 0) atomic_fetch_add(&SH->bad_args, 1);
        else snprintf(SH->listen_text, sizeof SH->listen_text, "%s", a->listeners[0].addr.text);
    }
    mark_booted(a);
    return wait_for_term();
}

/* The first three exit 0 at once after booting; later ones serve until TERM. */
static int entry_flaky(const gp_worker_args *a)
{
    block_term();
    int n = record_spawn(a);
    mark_booted(a);
    if (n <= 3) return 0;
    return wait_for_term();
}

/* Ignores TERM entirely: only the graceful timeout's SIGKILL ends it. */
static int entry_ignore_term(const gp_worker_args *a)
{
    block_term();
    record_spawn(a);
    mark_booted(a);
    atomic_fetch_add(&SH->ready, 1);
    while (atomic_load(&SH->spawns) > 0) pause();
    return 0;
}

/* The first asks to retire (as --max-requests does) and serves on until its
 * TERM; it records how many workers had started by then. */
static int entry_asks_to_retire(const gp_worker_args *a)
{
    block_term();
    int n = record_spawn(a);
    if (a->master_pid != getppid() || a->wake_fd < 0) atomic_fetch_add(&SH->bad_args, 1);
    mark_booted(a);
    if (n == 1) {
        atomic_store(&a->scoreboard->slots[a->slot].retire_reason, GP_RETIRE_MAX_REQUESTS);
        uint64_t one = 1;
        if (write(a->wake_fd, &one, sizeof one) != sizeof one) atomic_fetch_add(&SH->bad_args, 1);
        int r = wait_for_term();
        atomic_store(&SH->pids[63], atomic_load(&SH->spawns));
        return r;
    }
    return wait_for_term();
}

/* The first exits 4 after it was ready (the app's own sys.exit(4)); the rest
 * serve until TERM. */
static int entry_exit4_after_ready(const gp_worker_args *a)
{
    block_term();
    int n = record_spawn(a);
    mark_booted(a);
    if (n == 1) {
        sleep_ms(300); /* the master sees it ready first */
        return GP_EXIT_APP_ERROR;
    }
    return wait_for_term();
}

/* ---- running a master ----------------------------------------------------- */

typedef struct {
    int workers;
    double graceful;
    const char *bind;
} master_opts;

static pid_t start_master(gp_worker_entry entry, master_opts o)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("GALLOP_FDS");
        unsetenv("GALLOP_OLD_MASTER");
        unsetenv("NOTIFY_SOCKET");
        /* the log, and fd 2 with it, go to a file the test can read */
        if (gp_log_setup(GP_LOG_INFO, log_path) < 0) _exit(99);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1);
        static gp_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.binds[0] = o.bind ? o.bind : "127.0.0.1:0";
        cfg.num_binds = 1;
        cfg.backlog = 16;
        cfg.workers = o.workers;
        snprintf(cfg.workers_why, sizeof cfg.workers_why, "from the test");
        cfg.graceful_timeout = o.graceful > 0 ? o.graceful : 5;
        cfg.keep_alive = 5;
        cfg.timeout = 0;
        cfg.threads = 1;
        cfg.umask = -1;
        cfg.log_level = GP_LOG_INFO;
        _exit(gp_master_run(&cfg, entry));
    }
    return pid;
}

/* Waits for the master to exit; returns its exit code (or 128 + signal). */
static int wait_master(pid_t pid, double timeout_s, double *elapsed)
{
    double t0 = mono();
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        assert_true(r == 0);
        if (mono() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("master %d still running after %.1fs", (int)pid, timeout_s);
        }
        sleep_ms(5);
    }
    if (elapsed) *elapsed = mono() - t0;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

static void wait_until(atomic_int *v, int at_least, double timeout_s, pid_t master)
{
    double t0 = mono();
    while (atomic_load(v) < at_least) {
        if (mono() - t0 > timeout_s) {
            kill(master, SIGKILL);
            waitpid(master, NULL, 0);
            fail_msg("counter at %d, wanted %d within %.1fs", atomic_load(v), at_least, timeout_s);
        }
        sleep_ms(5);
    }
}

static int log_has(const char *needle)
{
    static char buf[65536];
    int fd = open(log_path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return strstr(buf, needle) != NULL;
}

/* No worker may outlive its master (they all had alarm guards anyway). */
static void assert_workers_gone(void)
{
    int n = atomic_load(&SH->spawns);
    for (int i = 0; i < n && i < 64; i++) {
        int pid = atomic_load(&SH->pids[i]);
        if (pid <= 0) continue;
        for (int k = 0; k < 200 && kill(pid, 0) == 0; k++) sleep_ms(5);
        /* a zombie of the dead master is reparented and reaped by init */
        if (kill(pid, 0) == 0) {
            char path[64], st[256] = "";
            snprintf(path, sizeof path, "/proc/%d/stat", pid);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) {
                ssize_t r = read(fd, st, sizeof st - 1);
                st[r > 0 ? r : 0] = 0;
                close(fd);
            }
            char *p = strrchr(st, ')');
            if (!(p && p[1] == ' ' && p[2] == 'Z')) fail_msg("worker %d outlived its master", pid);
        }
    }
}

/* ---- tests ------------------------------------------------------------------ */

static void test_app_error_exits_4(void **state)
{
    double elapsed;
    pid_t m = start_master(entry_app_error, (master_opts){.workers = 2});
    int rc = wait_master(m, 10, &elapsed);
    assert_int_equal(rc, GP_EXIT_APP_ERROR);
    assert_true(elapsed < 3.0);
    /* no respawning: at most the two first workers ever ran */
    int spawns = atomic_load(&SH->spawns);
    assert_true(spawns >= 1 && spawns <= 2);
    assert_int_equal(atomic_load(&SH->bad_args), 0);
    assert_true(log_has("worker failed to load the app; shutting down (exit 4)"));
    assert_true(log_has("shutting down after an error"));
    assert_workers_gone();
}

static void test_boot_error_exits_3(void **state)
{
    double elapsed;
    pid_t m = start_master(entry_boot_error, (master_opts){.workers = 1});
    int rc = wait_master(m, 15, &elapsed);
    assert_int_equal(rc, GP_EXIT_BOOT_ERROR);
    /* retried with backoff (0.1 + 0.2 + 0.4 + 0.8 + 1.6 s), then gave up */
    assert_int_equal(atomic_load(&SH->spawns), 6);
    assert_true(elapsed > 2.5);
    assert_true(elapsed < 8.0);
    assert_true(log_has("no worker could boot (6 tries, the last ended with exit code 3)"));
    assert_true(log_has("next try in 0.1s"));
    assert_true(log_has("next try in 1.6s"));
}

static void test_term_stops_cleanly(void **state)
{
    double elapsed;
    pid_t m = start_master(entry_wait_term, (master_opts){.workers = 2});
    wait_until(&SH->ready, 2, 10, m);
    assert_int_equal(kill(m, SIGTERM), 0);
    int rc = wait_master(m, 10, &elapsed);
    assert_int_equal(rc, GP_EXIT_OK);
    assert_true(elapsed < 3.0);
    assert_int_equal(atomic_load(&SH->spawns), 2);
    assert_int_equal(atomic_load(&SH->term_seen), 2); /* each worker got its TERM */
    assert_int_equal(atomic_load(&SH->bad_args), 0);
    /* the workers got the listener, its port 0 resolved */
    assert_int_equal(strncmp(SH->listen_text, "127.0.0.1:", 10), 0);
    assert_true(atoi(SH->listen_text + 10) > 0);
    assert_true(log_has("handling signal: term; stopping gracefully"));
    assert_true(log_has("starting 2 workers (from the test)"));
    assert_workers_gone();
}

static void test_int_stops_cleanly(void **state)
{
    pid_t m = start_master(entry_wait_term, (master_opts){.workers = 1});
    wait_until(&SH->ready, 1, 10, m);
    assert_int_equal(kill(m, SIGINT), 0);
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_OK);
    assert_int_equal(atomic_load(&SH->term_seen), 1);
    assert_true(log_has("handling signal: int; stopping gracefully"));
}

static void test_quit_stops_now(void **state)
{
    double elapsed;
    pid_t m = start_master(entry_wait_term, (master_opts){.workers = 2});
    wait_until(&SH->ready, 2, 10, m);
    assert_int_equal(kill(m, SIGQUIT), 0);
    int rc = wait_master(m, 10, &elapsed);
    assert_int_equal(rc, GP_EXIT_OK);
    assert_true(elapsed < 3.0);
    assert_int_equal(atomic_load(&SH->term_seen), 0); /* QUIT, not TERM, ended them */
    assert_true(log_has("handling signal: quit; stopping now"));
    assert_workers_gone();
}

static void test_unexpected_exit_respawned(void **state)
{
    pid_t m = start_master(entry_flaky, (master_opts){.workers = 1});
    /* three quick exits, each replaced, then a fourth that stays */
    wait_until(&SH->ready, 1, 10, m);
    assert_int_equal(atomic_load(&SH->spawns), 4);
    assert_int_equal(kill(m, SIGTERM), 0);
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_OK);
    assert_int_equal(atomic_load(&SH->spawns), 4); /* > workers, and no more after TERM */
    assert_true(log_has("died unexpectedly (exit code 0); replacing it"));
    assert_workers_gone();
}

static void test_killed_worker_respawned(void **state)
{
    pid_t m = start_master(entry_wait_term, (master_opts){.workers = 2});
    wait_until(&SH->ready, 2, 10, m);
    int victim = atomic_load(&SH->pids[0]);
    assert_true(victim > 0);
    assert_int_equal(kill(victim, SIGKILL), 0);
    wait_until(&SH->ready, 3, 10, m);
    assert_int_equal(atomic_load(&SH->spawns), 3);
    assert_int_equal(kill(m, SIGTERM), 0);
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_OK);
    assert_int_equal(atomic_load(&SH->term_seen), 2);
    assert_true(log_has("was killed by signal 9 (SIGKILL) that the master did not send"));
}

static void test_graceful_timeout_kills(void **state)
{
    double elapsed;
    pid_t m = start_master(entry_ignore_term, (master_opts){.workers = 1, .graceful = 0.3});
    wait_until(&SH->ready, 1, 10, m);
    double t0 = mono();
    assert_int_equal(kill(m, SIGTERM), 0);
    int rc = wait_master(m, 10, &elapsed);
    assert_int_equal(rc, GP_EXIT_OK);
    elapsed = mono() - t0;
    assert_true(elapsed >= 0.25);
    assert_true(elapsed < 3.0);
    assert_true(log_has("workers still alive after the graceful timeout; killing them"));
    assert_workers_gone();
}

static void test_ttin_ttou(void **state)
{
    pid_t m = start_master(entry_wait_term, (master_opts){.workers = 1});
    wait_until(&SH->ready, 1, 10, m);
    assert_int_equal(kill(m, SIGTTIN), 0);
    wait_until(&SH->ready, 2, 10, m);
    assert_int_equal(atomic_load(&SH->spawns), 2);
    assert_int_equal(kill(m, SIGTTOU), 0);
    wait_until(&SH->term_seen, 1, 10, m); /* one retired */
    assert_int_equal(kill(m, SIGTERM), 0);
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_OK);
    assert_int_equal(atomic_load(&SH->spawns), 2);
    assert_int_equal(atomic_load(&SH->term_seen), 2);
    assert_true(log_has("handling signal: ttin; 2 workers wanted"));
    assert_true(log_has("handling signal: ttou; 1 workers wanted"));
}

static void test_bad_bind_exits_1(void **state)
{
    pid_t m = start_master(entry_wait_term, (master_opts){.workers = 1, .bind = "127.0.0.1:99999"});
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_ERROR);
    assert_int_equal(atomic_load(&SH->spawns), 0);
    assert_true(log_has("gallop: error: "));
}

static void test_retire_waits_for_the_replacement(void **state)
{
    pid_t m = start_master(entry_asks_to_retire, (master_opts){.workers = 1});
    wait_until(&SH->term_seen, 1, 10, m);         /* the first was retired... */
    assert_true(atomic_load(&SH->pids[63]) >= 2); /* ...after its replacement started */
    wait_until(&SH->ready, 2, 10, m);
    assert_int_equal(kill(m, SIGTERM), 0);
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_OK);
    assert_int_equal(atomic_load(&SH->spawns), 2);
    assert_int_equal(atomic_load(&SH->bad_args), 0);
    assert_true(log_has("--max-requests reached; its replacement is ready"));
}

static void test_exit_4_after_ready_is_replaced(void **state)
{
    pid_t m = start_master(entry_exit4_after_ready, (master_opts){.workers = 1});
    wait_until(&SH->ready, 1, 10, m); /* the second serves: no halt */
    assert_int_equal(atomic_load(&SH->spawns), 2);
    assert_int_equal(kill(m, SIGTERM), 0);
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_OK);
    assert_true(log_has("died unexpectedly (exit code 4); replacing it"));
    assert_false(log_has("failed to load the app"));
}

/* A worker retired by TTOU that ignores its TERM is killed at the graceful
 * timeout, as on a stop, instead of holding its slot forever. */
static void test_retiring_worker_killed_at_graceful_timeout(void **state)
{
    pid_t m = start_master(entry_ignore_term, (master_opts){.workers = 2, .graceful = 0.5});
    wait_until(&SH->ready, 2, 10, m);
    assert_int_equal(kill(m, SIGTTOU), 0);
    double t0 = mono();
    while (!log_has("after its TERM (--graceful-timeout); killing it") && mono() - t0 < 5)
        sleep_ms(20);
    assert_true(log_has("still running 0.5s after its TERM (--graceful-timeout); killing it"));
    assert_true(mono() - t0 >= 0.4);
    sleep_ms(200);
    assert_int_equal(atomic_load(&SH->spawns), 2); /* one fewer wanted: no replacement */
    assert_int_equal(kill(m, SIGQUIT), 0);
    assert_int_equal(wait_master(m, 10, NULL), GP_EXIT_OK);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_app_error_exits_4),
        T(test_boot_error_exits_3),
        T(test_term_stops_cleanly),
        T(test_int_stops_cleanly),
        T(test_quit_stops_now),
        T(test_unexpected_exit_respawned),
        T(test_killed_worker_respawned),
        T(test_graceful_timeout_kills),
        T(test_ttin_ttou),
        T(test_bad_bind_exits_1),
        T(test_retire_waits_for_the_replacement),
        T(test_exit_4_after_ready_is_replaced),
        T(test_retiring_worker_killed_at_graceful_timeout),
    };
#undef T
    return cmocka_run_group_tests_name("master", tests, NULL, NULL);
}
