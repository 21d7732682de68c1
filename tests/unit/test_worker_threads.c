/* Unit tests for core/worker's request threads (--threads) with core/conn:
 * a real worker (gp_worker_create with a fake app that has thread_init) on a
 * loopback listener, driven turn by turn from the test. Covers a response
 * that waits on a client that does not read going back to the loop (its
 * thread is free for another request meanwhile, and resume runs on a request
 * thread, never the loop's), and accept pacing (a burst of connects is taken
 * only up to the free threads while another worker is lighter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/worker.h"
#include "core/worker.c" /* the worker's own struct: its connection count */

#define BIG (4 << 20)

static struct {
    gp_config cfg;
    gp_listener lis;
    gp_scoreboard *sb;
    gp_worker *w;
    pthread_t loop_thread;
    char *big;
    atomic_int on_loop_thread; /* app code that ran on the loop's thread */
    atomic_int starts, resumes;
} F;

typedef struct {
    size_t pos;
} big_state;

static void note_thread(void)
{
    if (pthread_equal(pthread_self(), F.loop_thread)) atomic_fetch_add(&F.on_loop_thread, 1);
}

/* Writes the rest of the big body until the socket is full. */
static gp_app_status big_pump(gp_conn *c)
{
    big_state *st = gp_conn_app_state(c);
    while (st->pos < BIG) {
        size_t n = BIG - st->pos < 65536 ? BIG - st->pos : 65536;
        int r = gp_conn_write(c, F.big + st->pos, n);
        st->pos += n;
        if (r == GP_AGAIN) return GP_APP_PENDING;
        if (r == GP_ERROR) break;
    }
    free(st);
    gp_conn_set_app_state(c, NULL);
    gp_conn_end_response(c);
    return GP_APP_DONE;
}

static gp_app_status op_start(void *app, gp_conn *c, const gp_http_request *req)
{
    note_thread();
    atomic_fetch_add(&F.starts, 1);
    bool big = req->target_len == 4 && memcmp(req->target, "/big", 4) == 0;
    gp_conn_head_begin(c, "200 OK", 6);
    gp_conn_head_set_length(c, big ? BIG : 4);
    gp_conn_head_end(c);
    if (!big) {
        gp_conn_write(c, "fast", 4);
        gp_conn_end_response(c);
        return GP_APP_DONE;
    }
    gp_conn_set_app_state(c, calloc(1, sizeof(big_state)));
    return big_pump(c);
}

static gp_app_status op_resume(void *app, gp_conn *c)
{
    note_thread();
    atomic_fetch_add(&F.resumes, 1);
    return big_pump(c);
}

static void op_abort(void *app, gp_conn *c)
{
    note_thread();
    free(gp_conn_app_state(c));
    gp_conn_set_app_state(c, NULL);
}

static void op_thread_init(void *app) {}

static const gp_app_ops ops = {
    .start = op_start,
    .resume = op_resume,
    .abort = op_abort,
    .thread_init = op_thread_init,
};

static int setup_workers(int threads, int slots)
{
    memset(&F, 0, sizeof F);
    F.cfg.threads = threads;
    F.cfg.workers = 1;
    F.cfg.limit_request_line = 4094;
    F.cfg.limit_request_fields = 100;
    F.cfg.limit_request_field_size = 8190;
    F.cfg.keep_alive = 5;
    F.cfg.graceful_timeout = 1;
    F.cfg.backlog = 64;
    F.cfg.worker_connections = 1000;
    F.cfg.header_timeout = F.cfg.body_timeout = 30;
    F.cfg.send_timeout = 60;
    F.cfg.body_buffer_size = 65536;
    char err[256];
    if (gp_addr_parse("127.0.0.1:0", &F.lis.addr, err, sizeof err) < 0) return -1;
    F.lis.fd = gp_listen_open(&F.lis.addr, 64, 0, err, sizeof err);
    if (F.lis.fd < 0) return -1;
    F.sb = gp_scoreboard_create(slots);
    if (!F.sb) return -1;
    F.big = malloc(BIG);
    if (!F.big) return -1;
    memset(F.big, 'b', BIG);
    F.loop_thread = pthread_self();
    gp_worker_args a = {&F.cfg, &F.lis, 1, F.sb, 0, 0, getppid(), -1};
    F.w = gp_worker_create(&a, &ops, NULL);
    if (!F.w || gp_worker_accept(F.w) < 0) return -1;
    return 0;
}

static int setup2(void **state)
{
    return setup_workers(2, 1);
}

static int setup_paced(void **state)
{
    return setup_workers(2, 2);
}

static int teardown(void **state)
{
    /* the worker's threads are detached and park on their queue; the test
     * process ends with them */
    close(F.lis.fd);
    free(F.big);
    return 0;
}

static int port_of(void)
{
    const char *colon = strrchr(F.lis.addr.text, ':');
    return atoi(colon + 1);
}

static int client(const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of())};
    sa.sin_addr.s_addr = htonl(0x7f000001);
    int small = 16384;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (req) assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    return fd;
}

/* Loop turns for about ms milliseconds, or until *flag. */
static void turns(int ms, atomic_int *flag)
{
    for (int i = 0; i < ms / 5 && !(flag && atomic_load(flag)); i++) gp_worker_turn(F.w, 5);
}

static void test_slow_reader_holds_no_thread(void **state)
{
    /* two clients that do not read take a 4 MB body each: with two threads,
     * a third request must still be answered */
    int slow1 = client("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    int slow2 = client("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(300, NULL);
    assert_int_equal(atomic_load(&F.starts), 2);
    int fast = client("GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[4096] = "";
    size_t got = 0;
    for (int i = 0; i < 200 && !strstr(buf, "\r\n\r\nfast"); i++) {
        turns(5, NULL);
        ssize_t n = recv(fast, buf + got, sizeof buf - 1 - got, MSG_DONTWAIT);
        if (n > 0) got += (size_t)n;
        buf[got] = 0;
    }
    assert_non_null(strstr(buf, "\r\n\r\nfast"));
    close(fast);

    /* then the slow ones read: their bodies arrive whole, resumed on threads */
    static char sink[1 << 16];
    size_t total[2] = {0, 0};
    int fds[2] = {slow1, slow2};
    size_t want = BIG + 60; /* the head is under 100 bytes: read it all */
    for (int i = 0; i < 4000 && (total[0] < want || total[1] < want); i++) {
        turns(5, NULL);
        for (int k = 0; k < 2; k++) {
            ssize_t n;
            while ((n = recv(fds[k], sink, sizeof sink, MSG_DONTWAIT)) > 0) total[k] += (size_t)n;
        }
    }
    assert_true(total[0] >= want && total[1] >= want);
    assert_true(atomic_load(&F.resumes) >= 2);
    assert_int_equal(atomic_load(&F.on_loop_thread), 0);
    close(slow1);
    close(slow2);
    turns(50, NULL);
}

static void test_burst_is_paced_while_another_worker_is_lighter(void **state)
{
    /* slot 1 plays an idle second worker that accepts and holds nothing */
    atomic_store(&F.sb->slots[1].state, GP_WS_IDLE);
    atomic_store(&F.sb->slots[1].accepting, 1);
    atomic_store(&F.sb->slots[1].conns, 0);
    int fds[5];
    for (int i = 0; i < 5; i++) fds[i] = client(NULL); /* connects, says nothing yet */
    turns(20, NULL);
    assert_int_equal((*F.w->num_conns), 2); /* one per free thread; the rest wait */
    /* once the fresh connections' grace is over the threads are free again,
     * but it stands aside for the lighter worker soon */
    turns(250, NULL);
    assert_true((*F.w->num_conns) > 2 && (*F.w->num_conns) < 5);
    /* with the other worker full and heavier, the whole backlog comes in */
    atomic_store(&F.sb->slots[1].accepting, 0);
    atomic_store(&F.sb->slots[1].conns, 1000);
    turns(400, NULL);
    assert_int_equal((*F.w->num_conns), 5);
    for (int i = 0; i < 5; i++) close(fds[i]);
    turns(50, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_reader_holds_no_thread, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_burst_is_paced_while_another_worker_is_lighter,
                                        setup_paced, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
