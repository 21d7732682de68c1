/* Unit tests for core/stream: the output queue reaches the peer whole and in
 * order through a transport that takes little at a time; a transport's
 * handshake runs before the protocol sees any event; bytes the transport
 * holds are handed on although epoll cannot see them; deadlines fire the
 * protocol's on_timeout, and move later without firing; close gives the
 * buffers back. A socketpair stands for the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/proto.h"
#include "core/scoreboard.h"
#include "core/stream.h"

/* ---- a transport over the plain one, stingy and scripted ------------------ */

typedef struct {
    gp_stream *s;
    size_t max_write; /* bytes per writev/sendfile call at most */
    int again_every;  /* every n-th write call answers -EAGAIN (0: never) */
    int calls;
    int handshakes;     /* GP_AGAIN this many times, then done_with */
    int done_with;      /* GP_OK or GP_ERROR */
    int pending_rounds; /* pending() says > 0 this many times */
    bool freed;
} fake_t;

static ssize_t fake_read(void *t, void *buf, size_t n)
{
    fake_t *f = t;
    return gp_transport_plain.read(f->s, buf, n);
}

static ssize_t fake_writev(void *t, const struct iovec *iov, int n, bool more)
{
    fake_t *f = t;
    if (f->again_every && ++f->calls % f->again_every == 0) return -EAGAIN;
    struct iovec one = iov[0];
    if (one.iov_len > f->max_write) one.iov_len = f->max_write;
    return gp_transport_plain.writev(f->s, &one, 1, more);
}

static ssize_t fake_sendfile(void *t, int fd, off_t *off, size_t n)
{
    fake_t *f = t;
    if (f->again_every && ++f->calls % f->again_every == 0) return -EAGAIN;
    return gp_transport_plain.sendfile(f->s, fd, off, n < f->max_write ? n : f->max_write);
}

static int fake_shutdown(void *t)
{
    fake_t *f = t;
    return gp_transport_plain.shutdown(f->s);
}

static int fake_handshake(void *t)
{
    fake_t *f = t;
    if (f->handshakes > 0) {
        f->handshakes--;
        return GP_AGAIN;
    }
    return f->done_with;
}

static uint32_t fake_wants(void *t)
{
    fake_t *f = t;
    return f->handshakes > 0 ? EPOLLOUT : 0;
}

static size_t fake_pending(void *t)
{
    fake_t *f = t;
    return f->pending_rounds > 0 ? (size_t)f->pending_rounds-- : 0;
}

static void fake_free(void *t)
{
    ((fake_t *)t)->freed = true;
}

static const gp_transport fake_transport = {
    .name = "fake",
    .read = fake_read,
    .writev = fake_writev,
    .sendfile = fake_sendfile,
    .shutdown = fake_shutdown,
    .wants = fake_wants,
    .pending = fake_pending,
    .handshake = fake_handshake,
    .free = fake_free,
};

/* ---- a protocol that records what it was told ------------------------------ */

static struct {
    int events, timeouts, stops, closes, readies;
    uint32_t last_events;
} seen;

static void rec_event(gp_stream *s, uint32_t ev)
{
    seen.events++;
    seen.last_events = ev;
}
static void rec_timeout(gp_stream *s)
{
    seen.timeouts++;
}
static void rec_stop(gp_stream *s)
{
    seen.stops++;
}
static void rec_close(gp_stream *s)
{
    seen.closes++;
    gp_stream_close(s);
}
static void rec_ready(gp_stream *s)
{
    seen.readies++;
}

static const gp_proto rec_proto = {"rec", rec_event, rec_timeout, rec_stop, rec_close};

/* ---- fixture ------------------------------------------------------------------ */

static struct {
    gp_loop loop;
    gp_timers timers;
    gp_bufpool bufs;
    double now, send_timeout;
    uint64_t now_ms;
    gp_stream_env env;
    gp_stream s;
    fake_t fake;
    int peer;
} F;

static int setup(void **state)
{
    memset(&F, 0, sizeof F);
    memset(&seen, 0, sizeof seen);
    if (gp_loop_init(&F.loop) < 0 || gp_bufpool_init(&F.bufs) < 0) return -1;
    gp_timers_init(&F.timers);
    F.now_ms = gp_monotonic_ms();
    F.now = (double)F.now_ms / 1000.0;
    F.send_timeout = 60;
    F.env = (gp_stream_env){.loop = &F.loop,
                            .timers = &F.timers,
                            .bufs = &F.bufs,
                            .now = &F.now,
                            .now_ms = &F.now_ms,
                            .send_timeout = &F.send_timeout,
                            .ready = rec_ready};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    F.peer = sv[1];
    gp_stream_init(&F.s, &F.env, sv[0]);
    gp_stream_set_proto(&F.s, &rec_proto);
    F.fake = (fake_t){.s = &F.s, .max_write = 1 << 30, .done_with = GP_OK};
    return 0;
}

static int teardown(void **state)
{
    gp_stream_close(&F.s);
    close(F.peer);
    gp_timers_free(&F.timers);
    gp_bufpool_free(&F.bufs);
    gp_loop_close(&F.loop);
    return 0;
}

static size_t peer_read(char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    while (got < cap && (n = recv(F.peer, buf + got, cap - got, 0)) > 0) got += (size_t)n;
    return got;
}

/* ---- tests -------------------------------------------------------------------- */

/* out, then the caller's bytes, then the file, then the CRLF: whole and in
 * order however little each call takes, with GP_AGAIN in between. */
static void test_queue_order_through_small_writes(void **state)
{
    gp_stream_set_transport(&F.s, &fake_transport, &F.fake);
    F.s.handshaking = false; /* this test is about writes */
    F.fake.max_write = 3;
    F.fake.again_every = 4;
    char path[] = "/tmp/gp-stream-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "0123456789", 10), 10);

    assert_int_equal(gp_stream_out_append(&F.s, "head:", 5), GP_OK);
    static const char body[] = "caller-owned;";
    gp_stream_queue_ref(&F.s, body, sizeof body - 1);
    gp_stream_queue_file(&F.s, fd, 2, 6);
    F.s.crlf_after = true;
    assert_true(gp_stream_output_pending(&F.s));

    int r, agains = 0;
    while ((r = gp_stream_flush(&F.s)) == GP_AGAIN) agains++;
    assert_int_equal(r, GP_OK);
    assert_true(agains >= 2); /* the queue resumed where each GP_AGAIN left it */
    assert_false(gp_stream_output_pending(&F.s));
    assert_int_equal(F.s.file_fd, -1);
    assert_null(F.s.pend);

    char got[64];
    size_t n = peer_read(got, sizeof got);
    static const char want[] = "head:caller-owned;234567\r\n";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(got, want, n);
    /* a write that moved bytes pushed the deadline */
    assert_true(F.s.deadline >= F.now + F.send_timeout - 0.001);
    close(fd);
}

/* A write to a peer that left: GP_ERROR and broken. */
static void test_flush_to_a_closed_peer_breaks(void **state)
{
    close(F.peer);
    F.peer = -1;
    assert_int_equal(gp_stream_out_append(&F.s, "x", 1), GP_OK);
    assert_int_equal(gp_stream_flush(&F.s), GP_ERROR);
    assert_true(F.s.broken);
}

/* The handshake runs first: the protocol sees nothing until it is done, the
 * transport's wants are watched meanwhile, ready runs once, then the
 * protocol gets EPOLLIN. */
static void test_handshake_before_the_protocol(void **state)
{
    F.fake.handshakes = 2;
    gp_stream_set_transport(&F.s, &fake_transport, &F.fake);
    assert_true(F.s.handshaking);
    assert_int_equal(gp_stream_watch(&F.s, EPOLLIN), 0);
    assert_int_equal(F.s.io.events, EPOLLIN | EPOLLOUT); /* the transport wants to write */
    assert_int_equal(F.s.asked, EPOLLIN);

    gp_stream_on_io(&F.s.io, EPOLLOUT);
    assert_int_equal(seen.events, 0);
    gp_stream_on_io(&F.s.io, EPOLLOUT);
    assert_int_equal(seen.events, 0);
    assert_int_equal(seen.readies, 0);
    gp_stream_on_io(&F.s.io, EPOLLOUT);
    assert_false(F.s.handshaking);
    assert_int_equal(seen.readies, 1);
    assert_int_equal(seen.events, 1);
    assert_int_equal(seen.last_events, EPOLLIN);
    assert_int_equal(F.s.io.events, EPOLLIN); /* back to what the protocol asked */
    gp_stream_on_io(&F.s.io, EPOLLIN);
    assert_int_equal(seen.readies, 1);
    assert_int_equal(seen.events, 2);
}

/* A failed handshake is the protocol's to close. */
static void test_handshake_failure_closes(void **state)
{
    F.fake.done_with = GP_ERROR;
    gp_stream_set_transport(&F.s, &fake_transport, &F.fake);
    gp_stream_on_io(&F.s.io, EPOLLIN);
    assert_int_equal(seen.closes, 1);
    assert_int_equal(seen.events, 0);
    assert_true(F.s.closed);
    assert_true(F.fake.freed);
    gp_stream_on_io(&F.s.io, EPOLLIN); /* closed: nothing more */
    assert_int_equal(seen.events, 0);
}

/* Input the transport holds is handed on while the protocol reads, since
 * epoll will not report it; not when the protocol stopped reading. */
static void test_pending_input_is_handed_on(void **state)
{
    gp_stream_set_transport(&F.s, &fake_transport, &F.fake);
    F.s.handshaking = false;
    gp_stream_watch(&F.s, EPOLLIN);
    F.fake.pending_rounds = 3;
    assert_true(gp_stream_has_pending(&F.s));
    F.fake.pending_rounds = 3;
    gp_stream_on_io(&F.s.io, EPOLLIN);
    assert_int_equal(seen.events, 4);
    assert_int_equal(gp_stream_wait(&F.s, POLLIN, 0), 0); /* nothing held, nothing sent */

    memset(&seen, 0, sizeof seen);
    gp_stream_watch(&F.s, EPOLLOUT);
    F.fake.pending_rounds = 3;
    gp_stream_on_io(&F.s.io, EPOLLOUT);
    assert_int_equal(seen.events, 1);
}

/* The timer fires on_timeout once due; a later deadline set meanwhile
 * moves it without firing. */
static void test_deadline(void **state)
{
    gp_stream_set_deadline(&F.s, F.now + 1);
    assert_true(gp_timer_armed(&F.s.timer));
    F.s.deadline = F.now + 5; /* pushed later by a plain store */
    F.now_ms += 1500;
    F.now += 1.5;
    gp_timers_run(&F.timers, F.now_ms);
    assert_int_equal(seen.timeouts, 0);
    assert_true(gp_timer_armed(&F.s.timer)); /* moved to the new deadline */
    F.now_ms += 4000;
    F.now += 4;
    gp_timers_run(&F.timers, F.now_ms);
    assert_int_equal(seen.timeouts, 1);
    /* the protocol left the deadline where it was: looked at again in a second, not spun on */
    assert_true(gp_timer_armed(&F.s.timer));
    assert_true(F.s.timer.at >= F.now_ms + 1000);
}

/* A stream a request thread holds is not timed out under it. */
static void test_no_timeout_off_loop(void **state)
{
    gp_stream_set_deadline(&F.s, F.now + 1);
    F.s.off_loop = true;
    F.now_ms += 2000;
    F.now += 2;
    gp_timers_run(&F.timers, F.now_ms);
    assert_int_equal(seen.timeouts, 0);
    assert_true(gp_timer_armed(&F.s.timer));
}

/* Close: out of the loop, descriptor closed, timer stopped, buffers back to
 * the pool, transport freed; a second close does nothing. */
static void test_close(void **state)
{
    gp_stream_set_transport(&F.s, &fake_transport, &F.fake);
    F.s.handshaking = false;
    gp_stream_watch(&F.s, EPOLLIN);
    assert_int_equal(gp_stream_in_ensure(&F.s), 0);
    assert_int_equal(gp_stream_out_append(&F.s, "x", 1), GP_OK);
    gp_stream_set_deadline(&F.s, F.now + 10);
    int fd = F.s.io.fd;
    gp_stream_close(&F.s);
    assert_true(F.s.closed && F.fake.freed);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_false(gp_timer_armed(&F.s.timer));
    assert_false(F.s.io.registered);
    assert_null(F.s.buf);
    assert_null(F.s.out);
    assert_int_equal(F.bufs.num_free, 2);
    gp_stream_close(&F.s);
    assert_int_equal(F.bufs.num_free, 2);
}

/* The input buffer: filled from the transport, compacted, EOF and EAGAIN
 * as negative errno. */
static void test_input(void **state)
{
    assert_int_equal(gp_stream_in_ensure(&F.s), 0);
    assert_int_equal(F.s.cap, GP_IO_BUF_SIZE);
    assert_int_equal(gp_stream_in_fill(&F.s), -EAGAIN);
    assert_int_equal(send(F.peer, "abcdef", 6, 0), 6);
    assert_int_equal(gp_stream_in_fill(&F.s), 6);
    F.s.rpos = 4;
    gp_stream_in_compact(&F.s);
    assert_int_equal(F.s.len, 2);
    assert_int_equal(F.s.rpos, 0);
    assert_memory_equal(F.s.buf, "ef", 2);
    shutdown(F.peer, SHUT_WR);
    assert_int_equal(gp_stream_in_fill(&F.s), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the worker does: a closed peer is an error, not a death */
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_queue_order_through_small_writes),
        T(test_flush_to_a_closed_peer_breaks),
        T(test_handshake_before_the_protocol),
        T(test_handshake_failure_closes),
        T(test_pending_input_is_handed_on),
        T(test_deadline),
        T(test_no_timeout_off_loop),
        T(test_close),
        T(test_input),
    };
    return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
