/* Unit tests for core/loadgen: the histogram's buckets and quantiles, the
 * strict response-head reader, and whole runs against a small threaded
 * server in this test (keep-alive, chunked, Connection: close, a slow
 * server under the open loop, malformed answers, a refused port). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/loadgen.c"

/* ---- histogram ---- */

static void test_hist_exact_and_relative(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < 32; v++) {
        gp_lg_hist h = {0};
        gp_lg_hist_add(&h, v);
        assert_int_equal(gp_lg_hist_quantile(&h, 0.5), v);
    }
    uint64_t vals[] = {33, 100, 1000, 12345, 999999, 30000000};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        gp_lg_hist h = {0};
        gp_lg_hist_add(&h, vals[i]);
        gp_lg_hist_add(&h, vals[i] + 1000000000); /* max above: the midpoint is not clipped */
        uint64_t q = gp_lg_hist_quantile(&h, 0.5);
        double err = (double)q / (double)vals[i] - 1;
        assert_true(err < 0.04 && err > -0.04);
    }
    gp_lg_hist h = {0};
    assert_int_equal(gp_lg_hist_quantile(&h, 0.99), 0);
    gp_lg_hist_add(&h, UINT64_MAX / 2); /* past the last bucket: kept in it */
    assert_int_equal(h.total, 1);
}

static void test_hist_quantiles(void **state)
{
    (void)state;
    gp_lg_hist h = {0};
    for (int i = 0; i < 990; i++) gp_lg_hist_add(&h, 1000);
    for (int i = 0; i < 10; i++) gp_lg_hist_add(&h, 50000);
    uint64_t p50 = gp_lg_hist_quantile(&h, 0.5), p99 = gp_lg_hist_quantile(&h, 0.99);
    uint64_t p999 = gp_lg_hist_quantile(&h, 0.999);
    assert_true(p50 > 960 && p50 < 1040);
    assert_true(p99 > 960 && p99 < 1040); /* the 990th of 1000 is still 1 ms */
    assert_true(p999 > 48000 && p999 <= 50000);
    assert_int_equal(h.max_us, 50000);
}

/* ---- response heads ---- */

static int head(const char *s, gp_lg_head *h)
{
    return gp_lg_parse_head(s, strlen(s), h);
}

static void test_head_good(void **state)
{
    (void)state;
    gp_lg_head h;
    const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
    assert_int_equal(head(a, &h), (int)strlen(a) - 5);
    assert_int_equal(h.status, 200);
    assert_true(h.has_length && h.length == 5 && !h.chunked && !h.close);
    assert_true(head("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &h) > 0);
    assert_true(h.chunked && !h.has_length && h.status == 404);
    assert_true(head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n\r\n", &h) > 0);
    assert_true(h.close);
    assert_true(head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &h) > 0);
    assert_true(h.close); /* 1.0 without keep-alive */
    assert_true(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", &h) > 0);
    assert_false(h.close);
    assert_true(head("HTTP/1.1 204\r\n\r\n", &h) > 0);
    assert_int_equal(h.status, 204);
    assert_true(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &h) > 0);
    assert_true(h.close && !h.chunked); /* framed by close */
    assert_true(head("HTTP/1.1 200 OK\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", &h) > 0);
}

static void test_head_incomplete_and_bad(void **state)
{
    (void)state;
    gp_lg_head h;
    assert_int_equal(head("HTTP/1.1 200 OK\r\nContent-Len", &h), 0);
    assert_int_equal(head("", &h), 0);
    const char *bad[] = {
        "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",    /* bare LF */
        "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",            /* bare CR */
        "HTTP/2.0 200 OK\r\n\r\n",                       /* version */
        "HTTP/1.1 2x0 OK\r\n\r\n",                       /* status */
        "HTTP/1.1 099 OK\r\n\r\n",                       /* status */
        "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",           /* field */
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",       /* field */
        "HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n",        /* space in name */
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", /* length */
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",   /* length */
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "garbage\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", /* DEL */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(head(bad[i], &h), -1);
    /* a NUL in a value: refused, and the literal compared against is never overrun */
    static const char nul[] = "HTTP/1.0 204\r\nConnection: close\0\0\0&\r\n\r\n";
    assert_int_equal(gp_lg_parse_head(nul, sizeof nul - 1, &h), -1);
    char big[GP_LG_MAX_HEAD + 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    assert_int_equal(gp_lg_parse_head(big, sizeof big, &h), -1); /* no end in sight */
}

/* ---- a small server: one thread per connection, keep-alive ---- */

static int srv_fd;
static int srv_port;
static volatile int srv_accepted;
static volatile long srv_answered; /* responses the server wrote (all threads) */

static void reply(int fd, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return;
        off += (size_t)w;
    }
}

/* Answers by path: /len, /chunk, /close, /slow (50 ms), /bad, /500, /extra. */
static void *srv_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    size_t len = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
            ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
            if (n <= 0) goto done;
            len += (size_t)n;
        }
        size_t used = (size_t)(end - buf) + 4;
        bool is_head = !strncmp(buf, "HEAD ", 5);
        char path[64] = "";
        sscanf(strchr(buf, ' ') + 1, "%63s", path);
        len -= used;
        memmove(buf, buf + used, len);
        if (!strcmp(path, "/chunk")) {
            reply(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                      "6;x=y\r\n world\r\n0\r\n\r\n");
        } else if (!strcmp(path, "/close")) {
            reply(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            goto done;
        } else if (!strcmp(path, "/slow")) {
            usleep(50000);
            reply(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        } else if (!strcmp(path, "/bad")) {
            reply(fd, "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok");
        } else if (!strcmp(path, "/500")) {
            reply(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
        } else if (!strcmp(path, "/extra")) {
            reply(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
        } else if (!strcmp(path, "/count")) {
            reply(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            __atomic_add_fetch(&srv_answered, 1, __ATOMIC_SEQ_CST);
        } else if (is_head) {
            reply(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        } else {
            reply(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"
                      "hello world");
        }
    }
done:
    close(fd);
    return NULL;
}

static void *srv_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(srv_fd, NULL, NULL);
        if (fd < 0) return NULL;
        srv_accepted++;
        pthread_t th;
        pthread_create(&th, NULL, srv_conn, (void *)(intptr_t)fd);
        pthread_detach(th);
    }
}

static int srv_setup(void **state)
{
    (void)state;
    srv_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(srv_fd, (struct sockaddr *)&sa, sizeof sa) || listen(srv_fd, 128)) return -1;
    getsockname(srv_fd, (struct sockaddr *)&sa, &sl);
    srv_port = ntohs(sa.sin_port);
    pthread_t th;
    pthread_create(&th, NULL, srv_main, NULL);
    pthread_detach(th);
    return 0;
}

static gp_lg_req reqs[4];
static char req_text[4][128];

static void opts_for(gp_lg_opts *o, const char *const *paths, int n)
{
    memset(o, 0, sizeof *o);
    struct sockaddr_in *sa = (struct sockaddr_in *)&o->addr;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)srv_port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    o->addr_len = sizeof *sa;
    for (int i = 0; i < n; i++) {
        bool is_head = paths[i][0] == 'H';
        const char *p = is_head ? paths[i] + 1 : paths[i];
        snprintf(req_text[i], sizeof req_text[i], "%s %s HTTP/1.1\r\nHost: t\r\n\r\n",
                 is_head ? "HEAD" : "GET", p);
        reqs[i] = (gp_lg_req){.data = req_text[i], .len = strlen(req_text[i]), .head = is_head};
    }
    o->reqs = reqs;
    o->num_reqs = n;
    o->connections = 4;
    o->duration_s = 0.3;
    o->timeout_s = 2;
}

static int measured;

static void on_measure(void *ctx)
{
    (void)ctx;
    measured++;
}

static void test_run_keepalive_mixed(void **state)
{
    (void)state;
    const char *paths[] = {"/len", "/chunk", "H/head"};
    gp_lg_opts o;
    opts_for(&o, paths, 3);
    o.warmup_s = 0.1;
    o.on_measure = on_measure;
    int before = srv_accepted;
    gp_lg_result r;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_int_equal(measured, 1);
    assert_true(r.responses > 100);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.status[2], r.responses);
    assert_true(r.elapsed_s > 0.25 && r.elapsed_s < 0.6);
    assert_int_equal(r.hist.total, r.responses);
    /* keep-alive: one connection each, however many requests */
    assert_int_equal(srv_accepted - before, 4);
}

/* Every response the server wrote is counted once: none twice, and none
 * lost but the ones in flight when the window closed. */
static void test_run_counts_exactly(void **state)
{
    (void)state;
    const char *paths[] = {"/count"};
    gp_lg_opts o;
    opts_for(&o, paths, 1);
    o.duration_s = 0.4;
    srv_answered = 0;
    gp_lg_result r;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    long served = __atomic_load_n(&srv_answered, __ATOMIC_SEQ_CST);
    assert_true(r.responses > 100);
    assert_true((long)r.responses <= served && served <= (long)r.responses + o.connections);
}

static void test_run_close_reconnects(void **state)
{
    (void)state;
    const char *paths[] = {"/close"};
    gp_lg_opts o;
    opts_for(&o, paths, 1);
    o.max_requests = 50;
    o.duration_s = 5;
    int before = srv_accepted;
    gp_lg_result r;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_int_equal(r.responses, 50); /* four connections, but not one more counted */
    assert_int_equal(r.errors, 0);
    assert_true(srv_accepted - before >= 50);
    assert_true(r.elapsed_s < 4);
}

static void test_run_statuses_and_errors(void **state)
{
    (void)state;
    const char *paths[] = {"/500"};
    gp_lg_opts o;
    opts_for(&o, paths, 1);
    o.max_requests = 1;
    o.connections = 1;
    gp_lg_result r;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_int_equal(r.responses, 1);
    assert_int_equal(r.status[5], 1);
    assert_int_equal(r.last_status, 500);

    const char *bad[] = {"/bad"};
    opts_for(&o, bad, 1);
    o.duration_s = 0.2;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_int_equal(r.responses, 0);
    assert_true(r.errors > 0);
    assert_string_equal(r.error, "malformed response head");

    const char *extra[] = {"/extra"};
    opts_for(&o, extra, 1);
    o.duration_s = 0.2;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_true(r.errors > 0);
    assert_true(r.responses >= r.errors); /* each counted, then refused */
    assert_string_equal(r.error, "bytes after a response");
}

static void test_run_refused(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd); /* nobody listens there now */
    const char *paths[] = {"/len"};
    gp_lg_opts o;
    opts_for(&o, paths, 1);
    ((struct sockaddr_in *)&o.addr)->sin_port = sa.sin_port;
    o.duration_s = 0.2;
    gp_lg_result r;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_int_equal(r.responses, 0);
    assert_true(r.errors >= 4 && r.errors < 200); /* retried, but not in a busy loop */
    assert_non_null(strstr(r.error, "refused"));
    o.connections = 0;
    assert_int_equal(gp_lg_run(&o, &r), -EINVAL);
}

/* Open loop against a server that takes 50 ms per request on one connection:
 * it can answer 20 a second of the 100 due, so the latency measured from the
 * schedule grows with the queue, where a closed loop would see 50 ms. */
static void test_open_loop_no_coordinated_omission(void **state)
{
    (void)state;
    const char *paths[] = {"/slow"};
    gp_lg_opts o;
    opts_for(&o, paths, 1);
    o.connections = 1;
    o.rate = 100;
    o.duration_s = 0.6;
    gp_lg_result r;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_true(r.responses >= 6 && r.responses <= 14);
    assert_true(gp_lg_hist_quantile(&r.hist, 0.99) > 200000);

    /* with capacity to spare, the open loop sends at the rate, no faster */
    const char *fast[] = {"/len"};
    opts_for(&o, fast, 1);
    o.rate = 200;
    o.duration_s = 0.5;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_true(r.responses >= 80 && r.responses <= 112);
    assert_true(gp_lg_hist_quantile(&r.hist, 0.5) < 20000);
}

static void test_stop_flag(void **state)
{
    (void)state;
    static volatile sig_atomic_t stop = 1;
    const char *paths[] = {"/len"};
    gp_lg_opts o;
    opts_for(&o, paths, 1);
    o.duration_s = 30;
    o.stop = &stop;
    gp_lg_result r;
    assert_int_equal(gp_lg_run(&o, &r), 0);
    assert_true(r.elapsed_s < 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_exact_and_relative),
        cmocka_unit_test(test_hist_quantiles),
        cmocka_unit_test(test_head_good),
        cmocka_unit_test(test_head_incomplete_and_bad),
        cmocka_unit_test(test_run_keepalive_mixed),
        cmocka_unit_test(test_run_counts_exactly),
        cmocka_unit_test(test_run_close_reconnects),
        cmocka_unit_test(test_run_statuses_and_errors),
        cmocka_unit_test(test_run_refused),
        cmocka_unit_test(test_open_loop_no_coordinated_omission),
        cmocka_unit_test(test_stop_flag),
    };
    return cmocka_run_group_tests(tests, srv_setup, NULL);
}
