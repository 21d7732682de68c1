/* Unit tests for core/mserve: the master's responder over real loopback
 * sockets, driven by a poll loop here as the master drives it. Good and bad
 * requests get their status; a silent client is dropped at its deadline; a
 * ninth client gets 503 at once; nothing ever blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mserve.h"

static int calls;

static int handler(void *ctx, const char *path, gp_mbuf *body, const char **ctype)
{
    (void)ctx;
    calls++;
    if (!strcmp(path, "/metrics")) {
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        gp_mbuf_printf(body, "x_total 1\n");
        return 200;
    }
    if (!strcmp(path, "/healthz")) {
        gp_mbuf_printf(body, "starting\n");
        return 503;
    }
    return 404;
}

static gp_mserve *open_ms(int *port)
{
    char err[256];
    const char *addrs[] = {"127.0.0.1:0"};
    gp_mserve *ms = gp_mserve_open(addrs, 1, handler, NULL, err, sizeof err);
    assert_non_null(ms);
    const char *a = gp_mserve_addr(ms, 0);
    assert_non_null(a);
    *port = atoi(strrchr(a, ':') + 1);
    assert_true(*port > 0);
    return ms;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* A few turns of the master's loop, each polling briefly. */
static void turns(gp_mserve *ms, int n, double now)
{
    for (int i = 0; i < n; i++) {
        struct pollfd pfd[32];
        int k = gp_mserve_pollfds(ms, pfd, 32);
        assert_true(k <= gp_mserve_max_pollfds(ms));
        int r = poll(pfd, (nfds_t)k, 20);
        assert_true(r >= 0);
        gp_mserve_handle(ms, pfd, k, now);
    }
}

/* What the server sent until it closed ("" if it has not, yet). */
static char *reply(int fd)
{
    static char buf[8192];
    size_t len = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    return buf;
}

static char *ask(gp_mserve *ms, int port, const char *req)
{
    int fd = connect_to(port);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    turns(ms, 4, 0);
    char *r = reply(fd);
    close(fd);
    return r;
}

static void test_requests(void **state)
{
    (void)state;
    int port;
    gp_mserve *ms = open_ms(&port);
    char *r = ask(ms, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(r, "Content-Length: 10\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nx_total 1\n"));
    r = ask(ms, port, "GET /metrics?x=1 HTTP/1.0\n\n"); /* query ignored, bare LF heads too */
    assert_non_null(strstr(r, "200 OK"));
    r = ask(ms, port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "Content-Length: 10\r\n"));
    assert_null(strstr(r, "x_total"));
    r = ask(ms, port, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(r, "starting\n"));
    r = ask(ms, port, "GET /nope HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 "));
    r = ask(ms, port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 405 "));
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    r = ask(ms, port, "\x16\x03\x01 garbage\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 400 "));
    r = ask(ms, port, "GET metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 400 "));
    r = ask(ms, port, "GET /metrics SPDY/3\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 400 "));
    gp_mserve_close(ms);
}

static void test_huge_head(void **state)
{
    (void)state;
    int port;
    gp_mserve *ms = open_ms(&port);
    int fd = connect_to(port);
    char big[GP_MSERVE_HEAD * 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    calls = 0;
    assert_int_equal(send(fd, big, sizeof big, 0), (ssize_t)sizeof big);
    turns(ms, 4, 0);
    char *r = reply(fd);
    assert_non_null(strstr(r, "HTTP/1.1 431 "));
    assert_int_equal(calls, 0);
    close(fd);
    gp_mserve_close(ms);
}

static void test_silent_clients(void **state)
{
    (void)state;
    int port;
    gp_mserve *ms = open_ms(&port);
    int idle[GP_MSERVE_CLIENTS];
    for (int i = 0; i < GP_MSERVE_CLIENTS; i++) idle[i] = connect_to(port);
    turns(ms, 3, 0);
    /* every place is held by a client that sends nothing: the next one hears 503 at once */
    char *r = ask(ms, port, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 "));
    for (int i = 0; i < GP_MSERVE_CLIENTS; i++) assert_string_equal(reply(idle[i]), "");
    /* past their deadline they are dropped (EOF), and scrapes are served again */
    turns(ms, 1, GP_MSERVE_TIMEOUT_S + 0.1);
    for (int i = 0; i < GP_MSERVE_CLIENTS; i++) {
        char c;
        fcntl(idle[i], F_SETFL, 0);
        assert_int_equal(recv(idle[i], &c, 1, 0), 0);
        close(idle[i]);
    }
    r = ask(ms, port, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "200 OK"));
    /* a client that leaves mid-head frees its place */
    int fd = connect_to(port);
    send(fd, "GET /met", 8, 0);
    turns(ms, 2, 0);
    close(fd);
    turns(ms, 2, 0);
    gp_mserve_close(ms);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    char err[256] = "";
    const char *bad[] = {"127.0.0.1:99999"};
    assert_null(gp_mserve_open(bad, 1, handler, NULL, err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
    /* a port in use */
    int port;
    gp_mserve *ms = open_ms(&port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s, 1), 0);
    socklen_t len = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &len);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    const char *taken[] = {addr};
    assert_null(gp_mserve_open(taken, 1, handler, NULL, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    close(s);
    gp_mserve_close(ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_huge_head),
        cmocka_unit_test(test_silent_clients),
        cmocka_unit_test(test_bad_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
