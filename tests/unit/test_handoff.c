/* Unit tests for core/handoff and the scoreboard's memfd: a worker's state
 * written by the child of fork reads back the same after exec (the settings
 * parsed again from the master's argument list, what was resolved outside
 * the parser carried as is, gp_worker_args as it was); every descriptor
 * crosses the exec and gets its close-on-exec back after it; a state that is not ours is refused with a reason, never trusted;
 * the scoreboard maps again from its descriptor and is shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/handoff.h"
#include "core/scoreboard.h"

static bool cloexec(int fd)
{
    return fcntl(fd, F_GETFD) & FD_CLOEXEC;
}

typedef struct {
    gp_config cfg;
    gp_listener listeners[2];
    gp_scoreboard *sb;
    gp_worker_args args;
    char *argv[8];
} fixture;

static void make_fixture(fixture *f)
{
    static char *argv[] = {"gallop", "--bind", "127.0.0.1:0", "--workers", "3", "--keep-alive",
                           "7",      "--access-log", "-", "pkg.mod:app", NULL};
    assert_int_equal(gp_config_parse(&f->cfg, 10, argv), 0);
    /* as a HUP or the environment may leave it: only the handoff knows */
    f->cfg.workers = 5;
    snprintf(f->cfg.workers_why, sizeof f->cfg.workers_why, "from somewhere else");
    f->cfg.config_file = "/etc/gallop.conf.py";
    memset(f->listeners, 0, sizeof f->listeners);
    f->listeners[0].fd = eventfd(0, EFD_CLOEXEC); /* any descriptor will do */
    snprintf(f->listeners[0].addr.text, sizeof f->listeners[0].addr.text, "127.0.0.1:8123");
    f->listeners[0].addr.kind = GP_ADDR_TCP;
    f->listeners[1].fd = -1; /* --reuse-port: the worker opens its own */
    snprintf(f->listeners[1].addr.text, sizeof f->listeners[1].addr.text, "unix:/tmp/x.sock");
    f->sb = gp_scoreboard_create(4);
    assert_non_null(f->sb);
    f->args = (gp_worker_args){.cfg = &f->cfg,
                               .listeners = f->listeners,
                               .num_listeners = 2,
                               .scoreboard = f->sb,
                               .slot = 3,
                               .generation = 9,
                               .master_pid = 4242,
                               .wake_fd = eventfd(0, EFD_CLOEXEC)};
}

static void free_fixture(fixture *f)
{
    close(f->listeners[0].fd);
    close(f->args.wake_fd);
    gp_scoreboard_destroy(f->sb);
}

static void test_round_trip(void **state)
{
    fixture f;
    make_fixture(&f);
    int other = eventfd(0, EFD_CLOEXEC); /* what some other module gave the workers */
    int plain = eventfd(0, 0);            /* already inherited by the app's children */
    int fd = gp_handoff_prepare(&f.args, 1);
    assert_true(fd >= 0);
    assert_false(cloexec(fd)); /* it must cross the exec, and so must every other one */
    assert_false(cloexec(f.listeners[0].fd));
    assert_false(cloexec(f.args.wake_fd));
    assert_false(cloexec(f.sb->fd));
    assert_false(cloexec(other));

    static gp_handoff h;
    char err[256] = "";
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), 0);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* read and closed */
    const gp_worker_args *a = &h.args;
    assert_int_equal(a->slot, 3);
    assert_int_equal(a->generation, 9);
    assert_int_equal(a->master_pid, 4242);
    assert_int_equal(a->wake_fd, f.args.wake_fd);
    assert_int_equal(a->num_listeners, 2);
    assert_int_equal(a->listeners[0].fd, f.listeners[0].fd);
    assert_int_equal(a->listeners[1].fd, -1);
    assert_string_equal(a->listeners[1].addr.text, "unix:/tmp/x.sock");
    assert_ptr_equal(a->cfg, &h.cfg);
    /* parsed again */
    assert_string_equal(h.cfg.app, "pkg.mod:app");
    assert_true(h.cfg.keep_alive == 7);
    assert_string_equal(h.cfg.binds[0], "127.0.0.1:0");
    assert_string_equal(h.cfg.access_log, "-");
    /* carried */
    assert_int_equal(h.cfg.workers, 5);
    assert_string_equal(h.cfg.workers_why, "from somewhere else");
    assert_string_equal(h.cfg.config_file, "/etc/gallop.conf.py");
    assert_int_equal(h.access_fd, 1);
    /* the app's children get none of them */
    assert_true(cloexec(f.listeners[0].fd));
    assert_true(cloexec(f.args.wake_fd));
    assert_true(cloexec(f.sb->fd));
    assert_true(cloexec(other));
    assert_false(cloexec(plain)); /* as it was */
    close(other);
    close(plain);
    /* the scoreboard is the same memory */
    atomic_store(&a->scoreboard->slots[3].requests, 77);
    assert_int_equal(atomic_load(&f.sb->slots[3].requests), 77);
    assert_int_equal(a->scoreboard->num_slots, 4);
    free_fixture(&f);
}

/* The master's settings came from a config file: file_args is what counts. */
static void test_file_args_win(void **state)
{
    fixture f;
    make_fixture(&f);
    static char *merged[] = {"gallop", "--threads=4", "--bind", "127.0.0.1:0", "other:app", NULL};
    f.cfg.file_args = merged;
    int fd = gp_handoff_prepare(&f.args, -1);
    assert_true(fd >= 0);
    static gp_handoff h;
    char err[256];
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), 0);
    assert_int_equal(h.cfg.threads, 4);
    assert_string_equal(h.cfg.app, "other:app");
    assert_int_equal(h.access_fd, -1);
    free_fixture(&f);
}

/* A relative --static DIR resolved where the master parsed it, although the
 * worker runs elsewhere (--chdir). */
static void test_parsed_where_the_master_parsed(void **state)
{
    char dir[] = "/tmp/gp_test_handoff_XXXXXX", sub[64], here[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/files", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_non_null(getcwd(here, sizeof here));
    assert_int_equal(chdir(dir), 0);
    fixture f;
    make_fixture(&f);
    static char *argv[] = {"gallop", "--static", "/s=files", "a:app", NULL};
    assert_int_equal(gp_config_parse(&f.cfg, 4, argv), 0);
    f.cfg.workers = 1;
    int fd = gp_handoff_prepare(&f.args, -1);
    free((void *)f.cfg.statics[0].prefix); /* the parser's strings live as long as a config */
    free((void *)f.cfg.statics[0].dir);
    assert_int_equal(chdir("/"), 0);
    static gp_handoff h;
    char err[256] = "";
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), 0);
    assert_string_equal(h.cfg.statics[0].dir, sub);
    char now[4096];
    assert_string_equal(getcwd(now, sizeof now), "/"); /* back where it was */
    assert_int_equal(chdir(here), 0);
    rmdir(sub);
    rmdir(dir);
    free_fixture(&f);
}

static int write_fd(const void *p, size_t n)
{
    int fd = memfd_create("t", 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    return fd;
}

static void test_foreign_state_refused(void **state)
{
    static gp_handoff h;
    char err[256];
    char junk[200];
    memset(junk, 'x', sizeof junk);
    int fd = write_fd(junk, sizeof junk);
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "not from this build"));
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed all the same */

    fd = write_fd("ab", 2); /* shorter than a header */
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read"));

    /* a real state cut short by one byte */
    fixture f;
    make_fixture(&f);
    int good = gp_handoff_prepare(&f.args, -1);
    char buf[65536];
    ssize_t n = read(good, buf, sizeof buf);
    close(good);
    assert_true(n > 10);
    fd = write_fd(buf, (size_t)n - 1);
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), -1);
    /* an argument list without its terminator */
    buf[n - 1] = 'z';
    fd = write_fd(buf, (size_t)n);
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), -1);
    /* an argument list that no longer parses */
    memcpy(buf + n - 1 - strlen("pkg.mod:app"), "--nonsense!", strlen("pkg.mod:app"));
    buf[n - 1] = 0;
    fd = write_fd(buf, (size_t)n);
    assert_int_equal(gp_handoff_read(fd, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "do not parse"));

    assert_int_equal(gp_handoff_read(-1, &h, err, sizeof err), -1);
    free_fixture(&f);
}

/* A process that executes another program maps the scoreboard again. */
static void test_scoreboard_survives_exec(void **state)
{
    gp_scoreboard *sb = gp_scoreboard_create(2);
    assert_non_null(sb);
    assert_true(cloexec(sb->fd));
    pid_t pid = fork();
    if (pid == 0) {
        fcntl(sb->fd, F_SETFD, 0);
        char arg[32];
        snprintf(arg, sizeof arg, "%d", sb->fd);
        /* the test binary itself, in attach mode (see main) */
        execl("/proc/self/exe", "test_handoff", "--attach", arg, (char *)NULL);
        _exit(99);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(atomic_load(&sb->slots[1].requests), 5);
    assert_int_equal(gp_scoreboard_attach(open("/dev/null", O_RDONLY)), NULL);
    gp_scoreboard_destroy(sb);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--attach") == 0) {
        gp_scoreboard *sb = gp_scoreboard_attach(atoi(argv[2]));
        if (!sb || sb->num_slots != 2 || !cloexec(atoi(argv[2]))) return 1;
        atomic_store(&sb->slots[1].requests, 5);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_file_args_win),
        cmocka_unit_test(test_parsed_where_the_master_parsed),
        cmocka_unit_test(test_foreign_state_refused),
        cmocka_unit_test(test_scoreboard_survives_exec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
