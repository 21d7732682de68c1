/* Unit tests for the WebSocket upgrade on the connection layer (h1.c,
 * ws_conn.c): the 101 swaps the stream's protocol table from HTTP/1.1's to
 * WebSocket's on the same stream, frames then reach the app as messages
 * through that table, and when the app is done HTTP/1.1 takes the stream
 * back to close it. A socketpair stands for the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/proto.h"
#include "core/conn_h1.h" /* the connection's state around the upgrade */
#include "core/worker_env.h"
#include "conn_env.h"
#include "core/ws_conn.h"

static struct {
    gp_config cfg;
    test_conn_env e; /* what a worker would give the connection */
    gp_conn *c;
    int peer;
    char msg[64];
    int messages, closed_code;
} F;

static gp_app_status op_start(void *app, gp_conn *c, const gp_http_request *req)
{
    char accept[29];
    F.c = c;
    assert_int_equal(gp_ws_check(req, accept), 0);
    assert_int_equal(gp_conn_head_begin(c, "101 Switching Protocols", 23), GP_OK);
    assert_int_equal(gp_ws_begin(c, accept), GP_OK);
    return GP_APP_ASYNC;
}

static gp_app_status op_resume(void *app, gp_conn *c)
{
    return GP_APP_ASYNC;
}

static void op_abort(void *app, gp_conn *c) {}

static void op_readable(void *app, gp_conn *c) {}

static void op_ws_message(void *app, gp_conn *c, int binary, const char *data, size_t len)
{
    F.messages++;
    memcpy(F.msg, data, len < sizeof F.msg - 1 ? len : sizeof F.msg - 1);
}

static void op_ws_closed(void *app, gp_conn *c, unsigned code)
{
    F.closed_code = (int)code;
}

static const gp_app_ops ops = {
    .start = op_start,
    .resume = op_resume,
    .abort = op_abort,
    .readable = op_readable,
    .ws_message = op_ws_message,
    .ws_closed = op_ws_closed,
    .runs_as_tasks = true,
};

static int setup(void **state)
{
    memset(&F, 0, sizeof F);
    F.cfg.limit_request_line = 4094;
    F.cfg.limit_request_fields = 100;
    F.cfg.limit_request_field_size = 8190;
    F.cfg.keep_alive = 5;
    F.cfg.header_timeout = 30;
    F.cfg.body_timeout = 30;
    F.cfg.send_timeout = 60;
    F.cfg.ws_max_size = 1 << 20;
    if (test_conn_env_open(&F.e, &F.cfg, &ops, NULL, "Date: x\r\n") < 0) return -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    F.peer = sv[1];
    struct sockaddr_storage ss = {.ss_family = AF_UNIX};
    if (!gp_conn_new(F.e.cs, sv[0], &F.e.lis, &ss, sizeof(sa_family_t))) return -1;
    return 0;
}

static int teardown(void **state)
{
    test_conn_env_close(&F.e);
    close(F.peer);
    return 0;
}

static void pump(void)
{
    for (int i = 0; i < 100; i++) {
        int n = gp_loop_wait(&F.e.loop, i == 0 ? 200 : 0);
        if (n <= 0) break;
        gp_loop_dispatch(&F.e.loop);
    }
}

static size_t peer_read(char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    struct pollfd p = {.fd = F.peer, .events = POLLIN};
    poll(&p, 1, 200);
    while (got < cap && (n = recv(F.peer, buf + got, cap - got, 0)) > 0) got += (size_t)n;
    return got;
}

/* The client asks for the upgrade (RFC 6455's sample key); the loop runs. */
static void upgrade(void)
{
    static const char req[] =
        "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    assert_int_equal(send(F.peer, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    pump();
}

static void test_upgrade_swaps_the_table(void **state)
{
    gp_conn *c = F.e.cs->open;
    assert_string_equal(c->s.proto->name, "http/1.1");
    upgrade();
    assert_ptr_equal(F.c, c);
    /* the same stream, another table */
    assert_string_equal(c->s.proto->name, "websocket");
    char head[512];
    size_t n = peer_read(head, sizeof head - 1);
    head[n] = 0;
    assert_non_null(strstr(head, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(head, "Upgrade: websocket\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));

    /* a masked text frame "hi" reaches the app through the WebSocket table */
    const uint8_t frame[] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
    assert_int_equal(send(F.peer, frame, sizeof frame, 0), (ssize_t)sizeof frame);
    pump();
    assert_int_equal(F.messages, 1);
    assert_string_equal(F.msg, "hi");

    /* a message out, then the app ends: HTTP/1.1 has the stream back and closes it */
    assert_int_equal(gp_ws_send(c, 0, "yo", 2), GP_OK);
    uint8_t out[8];
    assert_int_equal(peer_read((char *)out, sizeof out), 4);
    assert_memory_equal(out, "\x81\x02yo", 4);
    gp_conn_app_done(c);
    assert_string_equal(c->s.proto->name, "http/1.1");
    assert_int_equal(c->state, CS_LINGER);
}

/* A graceful stop reaches the WebSocket through its table: close 1001. */
static void test_stop_goes_through_the_table(void **state)
{
    gp_conn *c = F.e.cs->open;
    upgrade();
    char head[512];
    peer_read(head, sizeof head);
    c->s.proto->on_stop(&c->s); /* what the worker's stop does for each connection */
    assert_int_equal(F.closed_code, 1001);
    uint8_t out[64];
    size_t n = peer_read((char *)out, sizeof out);
    assert_true(n >= 4);
    assert_int_equal(out[0], 0x88); /* a close frame */
    assert_int_equal(out[2] << 8 | out[3], 1001);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upgrade_swaps_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_goes_through_the_table, setup, teardown),
    };
    return cmocka_run_group_tests_name("upgrade", tests, NULL, NULL);
}
