/* Unit tests for core/loop: registering, changing and removing watches on
 * pipes and eventfds, the ready count of gp_loop_wait, and which callbacks
 * gp_loop_dispatch runs with which events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"

/* A watched descriptor with a record of its callback runs. gp_io is the first
 * member, so the callback gets back to the record. */
typedef struct {
    gp_io io;
    int calls;
    uint32_t last_events;
    gp_loop *loop; /* for callbacks that change watches */
    gp_io *victim; /* removed by remove_other_cb */
} probe;

static void record_cb(gp_io *io, uint32_t events)
{
    probe *p = (probe *)io;
    p->calls++;
    p->last_events = events;
}

static void probe_init(probe *p, int fd)
{
    memset(p, 0, sizeof *p);
    p->io.fd = fd;
    p->io.cb = record_cb;
}

static void test_init_close(void **state)
{
    gp_loop loop;
    assert_int_equal(gp_loop_init(&loop), 0);
    assert_true(loop.epfd >= 0);
    assert_true(fcntl(loop.epfd, F_GETFD) & FD_CLOEXEC);
    gp_loop_close(&loop);
    assert_int_equal(loop.epfd, -1);
    gp_loop_close(&loop); /* twice is harmless */
    assert_int_equal(loop.epfd, -1);
}

static void test_timeout_zero_nothing_ready(void **state)
{
    gp_loop loop;
    int p[2];
    probe a;
    assert_int_equal(gp_loop_init(&loop), 0);
    assert_int_equal(pipe(p), 0);
    probe_init(&a, p[0]);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 0);
    assert_int_equal(loop.num_ready, 0);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 0);
    /* an empty loop with a short timeout also returns 0 */
    gp_loop empty;
    assert_int_equal(gp_loop_init(&empty), 0);
    assert_int_equal(gp_loop_wait(&empty, 10), 0);
    gp_loop_close(&empty);
    close(p[0]);
    close(p[1]);
    gp_loop_close(&loop);
}

static void test_pipe_readable(void **state)
{
    gp_loop loop;
    int p[2];
    probe a;
    assert_int_equal(gp_loop_init(&loop), 0);
    assert_int_equal(pipe(p), 0);
    probe_init(&a, p[0]);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(a.io.events, EPOLLIN);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(gp_loop_wait(&loop, 1000), 1);
    assert_int_equal(a.calls, 0); /* wait runs nothing */
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.last_events, EPOLLIN);
    /* dispatching again without a wait runs nothing */
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 1);
    /* level-triggered: unread data is reported again */
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 2);
    char ch;
    assert_int_equal(read(p[0], &ch, 1), 1);
    assert_int_equal(gp_loop_wait(&loop, 0), 0);
    close(p[0]);
    close(p[1]);
    gp_loop_close(&loop);
}

static void test_right_callback_right_events(void **state)
{
    gp_loop loop;
    int p1[2], p2[2];
    probe r1, r2, w2, ev;
    assert_int_equal(gp_loop_init(&loop), 0);
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    int efd = eventfd(0, EFD_NONBLOCK);
    assert_true(efd >= 0);
    probe_init(&r1, p1[0]);
    probe_init(&r2, p2[0]);
    probe_init(&w2, p2[1]);
    probe_init(&ev, efd);
    assert_int_equal(gp_loop_watch(&loop, &r1.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_watch(&loop, &r2.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_watch(&loop, &w2.io, EPOLLOUT), 0);
    assert_int_equal(gp_loop_watch(&loop, &ev.io, EPOLLIN), 0);

    /* only the write end is ready */
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(w2.calls, 1);
    assert_int_equal(w2.last_events, EPOLLOUT);
    assert_int_equal(r1.calls + r2.calls + ev.calls, 0);

    /* eventfd and pipe 1 readable, the write end still writable */
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof one), sizeof one);
    assert_int_equal(write(p1[1], "ab", 2), 2);
    assert_int_equal(gp_loop_wait(&loop, 1000), 3);
    gp_loop_dispatch(&loop);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.last_events, EPOLLIN);
    assert_int_equal(ev.calls, 1);
    assert_int_equal(ev.last_events, EPOLLIN);
    assert_int_equal(w2.calls, 2);
    assert_int_equal(r2.calls, 0);

    /* the write end closing: the read end sees HUP */
    close(p2[1]);
    assert_int_equal(gp_loop_watch(&loop, &w2.io, 0), -EBADF); /* closed fd: epoll says EBADF */
    assert_int_equal(gp_loop_wait(&loop, 1000), 3);
    gp_loop_dispatch(&loop);
    assert_int_equal(r2.calls, 1);
    assert_true(r2.last_events & EPOLLHUP);

    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(efd);
    gp_loop_close(&loop);
}

static void test_modify(void **state)
{
    gp_loop loop;
    int efd = eventfd(0, EFD_NONBLOCK);
    probe a;
    assert_true(efd >= 0);
    assert_int_equal(gp_loop_init(&loop), 0);
    probe_init(&a, efd);
    /* writable, not readable */
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 0);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLOUT), 0);
    assert_int_equal(a.io.events, EPOLLOUT);
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.last_events, EPOLLOUT);
    /* both */
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof one), sizeof one);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN | EPOLLOUT), 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 2);
    assert_int_equal(a.last_events, EPOLLIN | EPOLLOUT);
    /* the same events again is a no-op that succeeds */
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN | EPOLLOUT), 0);
    /* back to IN only */
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.last_events, EPOLLIN);
    close(efd);
    gp_loop_close(&loop);
}

static void test_remove_stops_callbacks(void **state)
{
    gp_loop loop;
    int p[2];
    probe a;
    assert_int_equal(gp_loop_init(&loop), 0);
    assert_int_equal(pipe(p), 0);
    probe_init(&a, p[0]);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 1);
    assert_int_equal(gp_loop_watch(&loop, &a.io, 0), 0);
    assert_int_equal(a.io.events, 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 0);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 1);
    /* removing an unregistered watch is a no-op */
    assert_int_equal(gp_loop_watch(&loop, &a.io, 0), 0);
    /* and it can be added back */
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 2);
    close(p[0]);
    close(p[1]);
    gp_loop_close(&loop);
}

static void test_watch_errors(void **state)
{
    gp_loop loop;
    probe a, b;
    int p[2];
    assert_int_equal(gp_loop_init(&loop), 0);
    /* a bad descriptor */
    probe_init(&a, 9999);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), -EBADF);
    assert_int_equal(a.io.events, 0); /* not recorded as registered */
    /* a regular file cannot be polled */
    int f = open("/proc/self/stat", O_RDONLY);
    if (f >= 0) {
        probe_init(&a, f);
        int r = gp_loop_watch(&loop, &a.io, EPOLLIN);
        assert_true(r == -EPERM || r == 0);
        close(f);
    }
    /* the same fd from two gp_io: the second add fails with EEXIST */
    assert_int_equal(pipe(p), 0);
    probe_init(&a, p[0]);
    probe_init(&b, p[0]);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_watch(&loop, &b.io, EPOLLIN), -EEXIST);
    assert_int_equal(b.io.events, 0);
    close(p[0]);
    close(p[1]);
    gp_loop_close(&loop);
}

/* A callback that removes a later descriptor of the same batch and closes it
 * is the case worker.c handles with its dead list: the record itself must
 * still be valid memory, and the loop must still call it (it cannot know). */
static void remove_other_cb(gp_io *io, uint32_t events)
{
    probe *p = (probe *)io;
    p->calls++;
    p->last_events = events;
    if (p->victim && p->victim->events) gp_loop_watch(p->loop, p->victim, 0);
}

static void test_callback_changes_watches(void **state)
{
    gp_loop loop;
    int e1 = eventfd(1, EFD_NONBLOCK), e2 = eventfd(1, EFD_NONBLOCK);
    probe a, b;
    assert_int_equal(gp_loop_init(&loop), 0);
    probe_init(&a, e1);
    probe_init(&b, e2);
    a.io.cb = b.io.cb = remove_other_cb;
    a.loop = b.loop = &loop;
    /* whichever runs first removes the other */
    a.victim = &b.io;
    b.victim = &a.io;
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_watch(&loop, &b.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 2);
    gp_loop_dispatch(&loop);
    /* both were in the batch, so both run once even though the first removed
     * the second (whose callback then removed the first in turn) */
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.io.events, 0);
    assert_int_equal(b.io.events, 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 0);
    /* with one victim only, the remover stays registered */
    a.victim = &b.io;
    b.victim = NULL;
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_watch(&loop, &b.io, EPOLLIN), 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 2);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.io.events, EPOLLIN);
    assert_int_equal(b.io.events, 0);
    assert_int_equal(gp_loop_wait(&loop, 0), 1);
    gp_loop_dispatch(&loop);
    assert_int_equal(a.calls, 3);
    assert_int_equal(b.calls, 2);
    close(e1);
    close(e2);
    gp_loop_close(&loop);
}

/* More ready descriptors than one batch: the rest come on the next wait. */
static void test_more_than_a_batch(void **state)
{
    enum { N = GP_LOOP_BATCH + 10 };
    static probe probes[N];
    gp_loop loop;
    assert_int_equal(gp_loop_init(&loop), 0);
    for (int i = 0; i < N; i++) {
        int fd = eventfd(1, EFD_NONBLOCK);
        assert_true(fd >= 0);
        probe_init(&probes[i], fd);
        assert_int_equal(gp_loop_watch(&loop, &probes[i].io, EPOLLIN), 0);
    }
    assert_int_equal(gp_loop_wait(&loop, 0), GP_LOOP_BATCH);
    gp_loop_dispatch(&loop);
    int called = 0;
    for (int i = 0; i < N; i++) {
        called += probes[i].calls;
        if (probes[i].calls) gp_loop_watch(&loop, &probes[i].io, 0);
    }
    assert_int_equal(called, GP_LOOP_BATCH);
    assert_int_equal(gp_loop_wait(&loop, 0), N - GP_LOOP_BATCH);
    gp_loop_dispatch(&loop);
    for (int i = 0; i < N; i++) {
        assert_int_equal(probes[i].calls, 1);
        close(probes[i].io.fd);
    }
    gp_loop_close(&loop);
}

static void on_alarm(int sig)
{
    (void)sig;
}

/* A wait interrupted by a signal is not an error: it returns 0. */
static void test_wait_interrupted(void **state)
{
    gp_loop loop;
    int p[2];
    probe a;
    assert_int_equal(gp_loop_init(&loop), 0);
    assert_int_equal(pipe(p), 0);
    probe_init(&a, p[0]);
    assert_int_equal(gp_loop_watch(&loop, &a.io, EPOLLIN), 0);
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigaction(SIGALRM, &sa, &old);
    struct itimerval it = {.it_value = {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(gp_loop_wait(&loop, 3000), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 2); /* returned early, on the signal */
    assert_int_equal(loop.num_ready, 0);
    sigaction(SIGALRM, &old, NULL);
    close(p[0]);
    close(p[1]);
    gp_loop_close(&loop);
}

static void test_wait_on_closed_loop(void **state)
{
    gp_loop loop;
    assert_int_equal(gp_loop_init(&loop), 0);
    gp_loop_close(&loop);
    assert_int_equal(gp_loop_wait(&loop, 0), -EBADF);
    assert_int_equal(loop.num_ready, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_close),
        cmocka_unit_test(test_timeout_zero_nothing_ready),
        cmocka_unit_test(test_pipe_readable),
        cmocka_unit_test(test_right_callback_right_events),
        cmocka_unit_test(test_modify),
        cmocka_unit_test(test_remove_stops_callbacks),
        cmocka_unit_test(test_watch_errors),
        cmocka_unit_test(test_callback_changes_watches),
        cmocka_unit_test(test_more_than_a_batch),
        cmocka_unit_test(test_wait_interrupted),
        cmocka_unit_test(test_wait_on_closed_loop),
    };

    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
