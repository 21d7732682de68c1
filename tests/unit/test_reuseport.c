/* Unit tests for core/reuseport: the program's shape (no privileges needed),
 * the serving list's checks, and, where the kernel lets this process load
 * eBPF (root, or CAP_BPF + CAP_NET_ADMIN), the real thing on loopback: the
 * exact round-robin split, an empty slot skipped, a closing socket's queue
 * moved to the others, and a second program (USR2's new master) taking over.
 * Where eBPF is not permitted, create must say so with -EPERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include "core/config.h"
#include "core/reuseport.c"

/* ---- shape: every form the loader may try ---------------------------------- */

static void check_shape(bool fetch)
{
    struct bpf_insn p[RP_MAX_INSNS];
    int n = build_prog(p, 3, 1, 4, 5, 256, fetch);

    assert_true(n > 10 && n <= RP_MAX_INSNS);
    assert_int_equal(p[n - 1].code, BPF_JMP | BPF_EXIT);
    assert_int_equal(p[n - 2].code, BPF_ALU64 | BPF_MOV | BPF_K);
    assert_int_equal(p[n - 2].imm, SK_PASS);
    int maps = 0, selects = 0, atomics = 0;
    for (int i = 0; i < n; i++) {
        uint8_t cls = BPF_CLASS(p[i].code), op = BPF_OP(p[i].code);
        if (p[i].code == (BPF_LD | BPF_DW | BPF_IMM)) {
            /* a 64-bit load is two slots; the second is all zero */
            assert_int_equal(p[i].src_reg, BPF_PSEUDO_MAP_FD);
            assert_true(p[i].imm >= 3 && p[i].imm <= 5);
            assert_true(i + 1 < n);
            assert_int_equal(p[i + 1].code, 0);
            maps++;
            i++;
            continue;
        }
        if (cls == BPF_JMP && op == BPF_CALL) {
            selects += p[i].imm == BPF_FUNC_sk_select_reuseport;
            continue;
        }
        if (cls == BPF_JMP && op != BPF_EXIT) {
            int to = i + 1 + p[i].off;
            assert_true(p[i].off >= 0); /* no loops: the verifier needs none */
            assert_true(to > i && to < n);
            assert_int_not_equal(p[to].code, 0); /* never into a 64-bit load's tail */
        }
        if (cls == BPF_STX && BPF_MODE(p[i].code) == BPF_ATOMIC) {
            assert_int_equal(p[i].imm, fetch ? (BPF_ADD | BPF_FETCH) : BPF_ADD);
            atomics++;
        }
    }
    assert_int_equal(maps, 2 + RP_TRIES);
    assert_int_equal(atomics, RP_TRIES);
    assert_int_equal(selects, RP_TRIES);
}

static void test_prog_shape(void **state)
{
    check_shape(true);
    check_shape(false);
}

/* ---- the serving list without a kernel map ---------------------------------- */

static void test_order_checks(void **state)
{
    gp_reuseport rp = {.slots = 4, .ctr_fd = -1, .order_fd = -1};
    uint32_t order[5] = {0};
    rp.order = order;

    assert_int_equal(gp_reuseport_set_order(&rp, (int[]){0, 4}, 2), -EINVAL);
    assert_int_equal(gp_reuseport_set_order(&rp, (int[]){-1}, 1), -EINVAL);
    assert_int_equal(gp_reuseport_set_order(&rp, (int[]){0}, 5), -EINVAL);
    assert_int_equal(gp_reuseport_set_order(&rp, NULL, -1), -EINVAL);
    /* unchanged: no write at all (the map fd is bad, so a write would fail) */
    assert_int_equal(gp_reuseport_set_order(&rp, NULL, 0), 0);
    /* changed: written, and a failed write is tried again next time */
    assert_int_equal(gp_reuseport_set_order(&rp, (int[]){1, 0}, 2), -EBADF);
    assert_int_equal(gp_reuseport_set_order(&rp, (int[]){1, 0}, 2), -EBADF);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 0);
    int socks, prog;
    gp_reuseport_listener_fds(&rp, 0, &socks, &prog); /* no such listener */
    assert_int_equal(socks, -1);
    assert_int_equal(prog, -1);
    assert_int_equal(gp_reuseport_join(socks, prog, 0, 0), -EBADF);
    assert_int_equal(gp_reuseport_join(socks, prog, -1, 0), -EINVAL);
}

/* ---- the kernel ------------------------------------------------------------- */

static int listener_on(unsigned short port, unsigned short *bound)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;

    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 128), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    if (bound) *bound = ntohs(sin.sin_port);
    return fd;
}

/* Opens n connections (kept in out[]) and waits until the handshakes are done. */
static void connect_n(unsigned short port, int *out, int n)
{
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) {
        out[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(out[i] >= 0);
        if (connect(out[i], (struct sockaddr *)&sin, sizeof sin) != 0)
            fail_msg("connection %d refused: %s", i, strerror(errno));
    }
}

static void close_n(int *fds, int n)
{
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* Accepts (and closes) what waits on fd; returns how many. */
static int drain(int fd)
{
    int n = 0, c;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    poll(&p, 1, 50);
    while ((c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        close(c);
        n++;
    }
    return n;
}

static int join_on(const gp_reuseport *rp, int listener, int slot, int fd)
{
    int socks, prog;
    gp_reuseport_listener_fds(rp, listener, &socks, &prog);
    return gp_reuseport_join(socks, prog, slot, fd);
}

static int join(const gp_reuseport *rp, int slot, int fd)
{
    return join_on(rp, 0, slot, fd);
}

/* Opens n connections; a must get want_a of them, b want_b. */
static void expect_split(unsigned short port, int n, int a, int want_a, int b, int want_b)
{
    int c[64];
    assert_true(n <= 64);
    connect_n(port, c, n);
    assert_int_equal(drain(a), want_a);
    assert_int_equal(drain(b), want_b);
    close_n(c, n);
}

/* The rp to test with, or NULL where eBPF is not permitted (checked). */
static gp_reuseport *make_slots(int listeners, int slots)
{
    gp_reuseport *rp;
    char why[200] = "";
    int rc = gp_reuseport_create(listeners, slots, &rp, why, sizeof why);
    if (rc == -EPERM || rc == -EACCES) {
        assert_null(rp);
        assert_non_null(strstr(why, strerror(-rc)));
        print_message("(eBPF not permitted here: %s; kernel part not run)\n", why);
        return NULL;
    }
    if (rc != 0) fail_msg("create: %s", why);
    return rp;
}

static gp_reuseport *make(int listeners)
{
    return make_slots(listeners, 8);
}

/* The most slots the master asks for (--workers 1024) and GP_MAX_BINDS
 * listeners still load. */
static void test_largest(void **state)
{
    gp_reuseport *rp = make_slots(GP_MAX_BINDS, 2 * GP_MAX_WORKERS + 64);
    if (!rp) return;
    int order[2 * GP_MAX_WORKERS + 64];
    for (int i = 0; i < 2 * GP_MAX_WORKERS + 64; i++) order[i] = i;
    assert_int_equal(gp_reuseport_set_order(rp, order, 2 * GP_MAX_WORKERS + 64), 0);
    gp_reuseport_destroy(rp);
}

static void test_round_robin(void **state)
{
    gp_reuseport *rp = make(1);
    if (!rp) return;
    unsigned short port;
    int a = listener_on(0, &port), b = listener_on(port, NULL), c[64];

    assert_int_equal(join(rp, 8, a), -E2BIG); /* past the slots */
    assert_int_equal(join(rp, 0, a), 0);
    assert_int_equal(join(rp, 5, b), 0);
    assert_int_equal(gp_reuseport_set_order(rp, (int[]){0, 5}, 2), 0);
    expect_split(port, 64, a, 32, b, 32);

    /* no one listed: the kernel's hash, nothing refused */
    assert_int_equal(gp_reuseport_set_order(rp, NULL, 0), 0);
    connect_n(port, c, 20);
    assert_int_equal(drain(a) + drain(b), 20);
    close_n(c, 20);

    /* b closes (its worker died) while still listed: a takes everything,
     * then b's replacement in the same slot gets its half again */
    assert_int_equal(gp_reuseport_set_order(rp, (int[]){0, 5}, 2), 0);
    close(b);
    connect_n(port, c, 20);
    assert_int_equal(drain(a), 20);
    close_n(c, 20);
    b = listener_on(port, NULL);
    assert_int_equal(join(rp, 5, b), 0);
    expect_split(port, 20, a, 10, b, 10);

    /* b leaves while full (twice is no error), then joins again */
    int socks, prog;
    gp_reuseport_listener_fds(rp, 0, &socks, &prog);
    assert_int_equal(gp_reuseport_leave(socks, 5), 0);
    assert_int_equal(gp_reuseport_leave(socks, 5), 0);
    expect_split(port, 10, a, 10, b, 0);
    assert_int_equal(join(rp, 5, b), 0);
    expect_split(port, 10, a, 5, b, 5);

    /* listed slots whose workers have not joined yet (booting) pass their
     * turn on: the two that joined still alternate */
    assert_int_equal(gp_reuseport_set_order(rp, (int[]){1, 0, 2, 3, 5, 6, 7}, 7), 0);
    expect_split(port, 40, a, 20, b, 20);
    close(a);
    close(b);
    gp_reuseport_destroy(rp);
}

/* A socket that closes with connections in its queue (a worker killed with
 * -9) hands them to the others instead of the kernel resetting them. */
static void test_queue_moves_on_close(void **state)
{
    gp_reuseport *rp = make(1);
    if (!rp) return;
    if (!gp_reuseport_migrates(rp)) {
        print_message("(kernel older than 5.14: a closing socket's queue is reset)\n");
        gp_reuseport_destroy(rp);
        return;
    }
    unsigned short port;
    int a = listener_on(0, &port), b = listener_on(port, NULL), c[10];

    assert_int_equal(join(rp, 0, a), 0);
    assert_int_equal(join(rp, 1, b), 0);
    assert_int_equal(gp_reuseport_set_order(rp, (int[]){0, 1}, 2), 0);
    connect_n(port, c, 10); /* 5 wait on each */
    close(b);
    assert_int_equal(drain(a), 10);
    for (int i = 0; i < 10; i++) { /* and they are alive: a write goes through */
        assert_int_equal(send(c[i], "x", 1, MSG_NOSIGNAL), 1);
    }
    close_n(c, 10);
    close(a);
    gp_reuseport_destroy(rp);
}

/* Two ports used in turn: each keeps its own rotation, so both of its
 * workers get half of it (one counter for both would send each port's
 * connections to one worker). */
static void test_listeners_rotate_apart(void **state)
{
    gp_reuseport *rp = make(2);
    if (!rp) return;
    unsigned short p1, p2;
    int a1 = listener_on(0, &p1), b1 = listener_on(p1, NULL);
    int a2 = listener_on(0, &p2), b2 = listener_on(p2, NULL), c[40];

    assert_int_equal(join_on(rp, 0, 0, a1), 0);
    assert_int_equal(join_on(rp, 0, 1, b1), 0);
    assert_int_equal(join_on(rp, 1, 0, a2), 0);
    assert_int_equal(join_on(rp, 1, 1, b2), 0);
    assert_int_equal(gp_reuseport_set_order(rp, (int[]){0, 1}, 2), 0);
    for (int i = 0; i < 40; i += 2) {
        connect_n(p1, c + i, 1);
        connect_n(p2, c + i + 1, 1);
    }
    assert_int_equal(drain(a1), 10);
    assert_int_equal(drain(b1), 10);
    assert_int_equal(drain(a2), 10);
    assert_int_equal(drain(b2), 10);
    close_n(c, 40);
    close(a1);
    close(b1);
    close(a2);
    close(b2);
    gp_reuseport_destroy(rp);
}

/* USR2: the new master's program, joined by its first ready worker, decides
 * from then on, with its own list. */
static void test_second_program_takes_over(void **state)
{
    gp_reuseport *old = make(1), *fresh;
    if (!old) return;
    fresh = make(1);
    assert_non_null(fresh);
    unsigned short port;
    int a = listener_on(0, &port), b = listener_on(port, NULL);

    assert_int_equal(join(old, 0, a), 0);
    assert_int_equal(gp_reuseport_set_order(old, (int[]){0}, 1), 0);
    expect_split(port, 12, a, 12, b, 0);
    assert_int_equal(join(fresh, 0, b), 0);
    assert_int_equal(gp_reuseport_set_order(fresh, (int[]){0}, 1), 0);
    expect_split(port, 12, b, 12, a, 0);
    close(a);
    close(b);
    gp_reuseport_destroy(old);
    gp_reuseport_destroy(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prog_shape),
        cmocka_unit_test(test_order_checks),
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_queue_moves_on_close),
        cmocka_unit_test(test_listeners_rotate_apart),
        cmocka_unit_test(test_largest),
        cmocka_unit_test(test_second_program_takes_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
