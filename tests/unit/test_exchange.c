/* Unit tests for core/exchange: an exchange of another protocol gets every
 * conn.h call that frames, writes or reads the body through its table, with
 * the arguments the bridge gave; what is not the protocol's (the client's
 * address, the listener, proxy trust, the bridge's slots) comes from the
 * connection it was made on; freeing it releases the bridge's cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exchange.h"
#include "core/conn_h1.h" /* a parent connection made by hand */
#include "core/worker_env.h"

static struct {
    char log[512]; /* "name(args) " per call */
    size_t len;
    int cache_freed;
} R;

static void note(const char *s)
{
    size_t n = strlen(s);
    memcpy(R.log + R.len, s, n);
    R.len += n;
    R.log[R.len] = 0;
}

static int x_head_begin(gp_conn *x, const char *st, size_t n)
{
    note("head_begin(");
    R.len += (size_t)snprintf(R.log + R.len, sizeof R.log - R.len, "%.*s) ", (int)n, st);
    return GP_OK;
}
static int x_head_add(gp_conn *x, const char *name, size_t nl, const char *v, size_t vl)
{
    R.len += (size_t)snprintf(R.log + R.len, sizeof R.log - R.len, "head_add(%.*s=%.*s) ", (int)nl,
                              name, (int)vl, v);
    return GP_OK;
}
static void x_head_set_length(gp_conn *x, uint64_t n)
{
    note("set_length ");
}
static int x_head_end(gp_conn *x)
{
    note("head_end ");
    return GP_OK;
}
static int x_head_sent(gp_conn *x)
{
    return 7;
}
static int x_write(gp_conn *x, const void *d, size_t n)
{
    R.len += (size_t)snprintf(R.log + R.len, sizeof R.log - R.len, "write(%.*s) ", (int)n,
                              (const char *)d);
    return GP_AGAIN;
}
static int x_write_all(gp_conn *x, const void *d, size_t n)
{
    note("write_all ");
    return GP_OK;
}
static int x_sendfile(gp_conn *x, int fd, off_t off, uint64_t n)
{
    R.len += (size_t)snprintf(R.log + R.len, sizeof R.log - R.len, "sendfile(%d,%lld,%llu) ", fd,
                              (long long)off, (unsigned long long)n);
    return GP_OK;
}
static int x_flush(gp_conn *x)
{
    note("flush ");
    return GP_OK;
}
static void x_end(gp_conn *x, const char *f, size_t n)
{
    R.len +=
        (size_t)snprintf(R.log + R.len, sizeof R.log - R.len, "end(%.*s) ", (int)n, f ? f : "");
}
static void x_set_close(gp_conn *x)
{
    note("set_close ");
}
static void x_send_error(gp_conn *x, int st, int close_after)
{
    R.len += (size_t)snprintf(R.log + R.len, sizeof R.log - R.len, "send_error(%d,%d) ", st,
                              close_after);
}
static ssize_t x_body_read(gp_conn *x, char *dst, size_t n, bool block)
{
    note(block ? "body_read(block) " : "body_read(nb) ");
    return block ? 3 : GP_BODY_AGAIN;
}
static int x_body_done(gp_conn *x)
{
    return 11;
}
static int x_body_would_block(gp_conn *x)
{
    return 12;
}
static int x_body_error_status(gp_conn *x)
{
    return 413;
}
static void x_wait_input(gp_conn *x, int on)
{
    note(on ? "wait_input(1) " : "wait_input(0) ");
}
static int x_peer_gone(gp_conn *x)
{
    return 13;
}
static void x_app_done(gp_conn *x)
{
    note("app_done ");
}
static void x_adopt_fd(gp_conn *x, int fd)
{
    note("adopt_fd ");
}

static const gp_exchange_ops xops = {
    x_head_begin, x_head_add,  x_head_set_length,  x_head_end,
    x_head_sent,  x_write,     x_write_all,        x_sendfile,
    x_flush,      x_end,       x_set_close,        x_send_error,
    x_body_read,  x_body_done, x_body_would_block, x_body_error_status,
    x_wait_input, x_peer_gone, x_app_done,         x_adopt_fd,
};

static void cache_free(void *app, void *cache)
{
    R.cache_freed++;
}

static void test_calls_go_to_the_table(void **state)
{
    gp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    gp_app_ops ops = {.cache_free = cache_free};
    gp_worker_env *w = calloc(1, sizeof *w);
    gp_conn *parent = calloc(1, sizeof *parent);
    assert_non_null(w);
    assert_non_null(parent);
    w->cfg = &cfg;
    w->ops = &ops;
    gp_addr local;
    memset(&local, 0, sizeof local);
    gp_conn_listener lis = {.addr = &local};
    parent->env = w;
    parent->listener = &lis;
    struct sockaddr_in *sin = (struct sockaddr_in *)&parent->peer;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(4242);
    parent->peer_len = sizeof *sin;
    int token;

    gp_conn *x = gp_exchange_new(&parent->s, &xops, &token);
    assert_non_null(x);
    assert_ptr_equal(gp_exchange_state(x), &token);
    assert_ptr_equal(gp_exchange_env(x), w);

    assert_int_equal(gp_conn_head_begin_status(x, 404), GP_OK);
    assert_int_equal(gp_conn_head_add(x, "A", 1, "b", 1), GP_OK);
    gp_conn_head_set_length(x, 5);
    assert_int_equal(gp_conn_head_end(x), GP_OK);
    assert_int_equal(gp_conn_head_sent(x), 7);
    assert_int_equal(gp_conn_write(x, "hello", 5), GP_AGAIN);
    assert_int_equal(gp_conn_write_all(x, "x", 1), GP_OK);
    assert_int_equal(gp_conn_sendfile(x, 9, 10, 11), GP_OK);
    assert_int_equal(gp_conn_flush(x), GP_OK);
    gp_conn_end_response_trailers(x, "T: 1\r\n", 6);
    gp_conn_end_response(x);
    gp_conn_set_close(x);
    gp_conn_send_error(x, 503, 1);
    char buf[8];
    assert_int_equal(gp_conn_body_read(x, buf, sizeof buf), 3);
    assert_int_equal(gp_conn_body_read_nb(x, buf, sizeof buf), GP_BODY_AGAIN);
    assert_int_equal(gp_conn_body_done(x), 11);
    assert_int_equal(gp_conn_body_would_block(x), 12);
    assert_int_equal(gp_conn_body_error_status(x), 413);
    gp_conn_wait_input(x, 1);
    assert_int_equal(gp_conn_peer_gone(x), 13);
    gp_conn_adopt_fd(x, 3);
    gp_conn_app_done(x);
    assert_string_equal(R.log, "head_begin(404 Not Found) head_add(A=b) set_length head_end "
                               "write(hello) write_all sendfile(9,10,11) flush end(T: 1\r\n) "
                               "end() set_close send_error(503,1) body_read(block) "
                               "body_read(nb) wait_input(1) adopt_fd app_done ");

    /* the connection's facts, not the protocol's */
    socklen_t len;
    const struct sockaddr_in *p = (const struct sockaddr_in *)gp_conn_peer(x, &len);
    assert_int_equal(len, sizeof *sin);
    assert_int_equal(ntohs(p->sin_port), 4242);
    assert_ptr_equal(gp_conn_local(x), &local);
    gp_conn_set_app_state(x, &token);
    assert_ptr_equal(gp_conn_app_state(x), &token);
    gp_conn_set_app_cache(x, &token);
    assert_ptr_equal(gp_conn_app_cache(x), &token);
    gp_exchange_free(x);
    assert_int_equal(R.cache_freed, 1);
    free(parent);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_go_to_the_table),
    };
    return cmocka_run_group_tests_name("exchange", tests, NULL, NULL);
}
