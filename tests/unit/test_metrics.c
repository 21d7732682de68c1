/* Unit tests for core/metrics: the duration buckets, what a worker's counting
 * leaves in its slot, folding a gone worker into the totals, the /proc
 * parsers and the exposition text (cumulative buckets, every family typed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/metrics.h"

static void test_buckets(void **state)
{
    (void)state;
    assert_int_equal(gp_metrics_bucket(0), 0);
    assert_int_equal(gp_metrics_bucket(500), 0); /* le="0.0005" includes 0.5 ms */
    assert_int_equal(gp_metrics_bucket(501), 1);
    assert_int_equal(gp_metrics_bucket(1000), 1);
    assert_int_equal(gp_metrics_bucket(30000000), GP_METRICS_BUCKETS - 2);
    assert_int_equal(gp_metrics_bucket(30000001), GP_METRICS_BUCKETS - 1);
    assert_int_equal(gp_metrics_bucket(UINT64_MAX), GP_METRICS_BUCKETS - 1);
    for (int i = 1; i < GP_METRICS_BUCKETS - 1; i++)
        assert_true(gp_metrics_bounds_us[i] > gp_metrics_bounds_us[i - 1]);
}

static gp_slot *new_slot(void)
{
    gp_slot *s = aligned_alloc(64, sizeof(gp_slot));
    assert_non_null(s);
    memset((void *)s, 0, sizeof *s);
    return s;
}

static void test_counting(void **state)
{
    (void)state;
    gp_slot *s = new_slot();
    uint64_t a = 10000000, b = a + 1000;
    gp_metrics_begin(s, a);
    assert_int_equal(s->m_in_flight, 1);
    assert_true(s->m_busy_since_us == a);
    gp_metrics_begin(s, b); /* a second, concurrent one (ASGI, threads) */
    assert_int_equal(s->m_in_flight, 2);
    assert_true(s->m_busy_since_us == a); /* the busy period started with the first */
    gp_metrics_end(s, b, b + 3000, 404);
    assert_int_equal(s->m_in_flight, 1);
    assert_true(s->m_busy_since_us != 0);
    gp_metrics_end(s, a - 2000000, a + 5000, 200); /* started 2 s before */
    assert_int_equal(s->m_in_flight, 0);
    assert_true(s->m_busy_since_us == 0);
    assert_int_equal(s->m_busy_us, 5000); /* one period, a to its end */
    assert_int_equal(s->m_status[1], 1);
    assert_int_equal(s->m_status[3], 1);
    assert_int_equal(s->m_hist[gp_metrics_bucket(2005000)], 1);
    assert_int_equal(s->m_hist[gp_metrics_bucket(3000)], 1);
    assert_int_equal(s->m_dur_us, 2008000);
    /* a request cut off: out of flight, never counted as answered */
    gp_metrics_begin(s, a);
    gp_metrics_drop(s, a + 10);
    assert_int_equal(s->m_in_flight, 0);
    gp_metrics_drop(s, a + 20); /* never below zero */
    assert_int_equal(s->m_in_flight, 0);
    /* no status (0) or nonsense counts as a 5xx */
    gp_metrics_begin(s, a);
    gp_metrics_end(s, a, a + 1, 0);
    gp_metrics_begin(s, a);
    gp_metrics_end(s, a, a + 1, 999);
    assert_int_equal(s->m_status[4], 2);
    free(s);
}

static void test_busy_by_loop(void **state)
{
    (void)state;
    gp_slot *s = new_slot();
    s->m_busy_loop = 1; /* ASGI: the loop's waits (idle.c) open and close the periods */
    gp_metrics_busy_open(s, 1000);
    gp_metrics_begin(s, 1500);
    gp_metrics_busy_close(s, 2000); /* the loop waits with a request in flight */
    assert_int_equal(s->m_busy_us, 1000);
    assert_true(s->m_busy_since_us == 0);
    gp_metrics_end(s, 1500, 9000, 200); /* no busy period opened or closed by it */
    assert_int_equal(s->m_busy_us, 1000);
    assert_true(s->m_busy_since_us == 0);
    gp_metrics_busy_open(s, 9000);
    gp_metrics_busy_close(s, 9500);
    assert_int_equal(s->m_busy_us, 1500);
    assert_int_equal(s->m_status[1], 1);
    free(s);
}

/* The state a worker shows follows its requests in flight, whichever kind
 * (a call, a task awaiting with the loop idle); a stopping worker keeps
 * saying so. */
static void test_state_follows_in_flight(void **state)
{
    (void)state;
    gp_slot *s = new_slot();
    s->state = GP_WS_IDLE;
    s->m_busy_loop = 1; /* ASGI: busy time is the loop's, the state is the requests' */
    gp_metrics_begin(s, 1000);
    assert_int_equal(s->state, GP_WS_BUSY);
    gp_metrics_begin(s, 1100);
    gp_metrics_end(s, 1000, 2000, 200);
    assert_int_equal(s->state, GP_WS_BUSY); /* one still in flight */
    gp_metrics_drop(s, 2100);
    assert_int_equal(s->state, GP_WS_IDLE);
    s->m_busy_loop = 0;
    gp_metrics_begin(s, 3000);
    assert_int_equal(s->state, GP_WS_BUSY);
    s->state = GP_WS_STOPPING;
    gp_metrics_end(s, 3000, 4000, 200);
    assert_int_equal(s->state, GP_WS_STOPPING);
    gp_metrics_begin(s, 5000); /* a pipelined request served while stopping */
    assert_int_equal(s->state, GP_WS_STOPPING);
    free(s);
}

static void test_read_and_fold(void **state)
{
    (void)state;
    gp_slot *s = new_slot();
    s->pid = 42;
    s->state = GP_WS_BUSY;
    s->m_status[1] = 7;
    s->m_hist[0] = 5;
    s->m_hist[3] = 2;
    s->m_dur_us = 9000;
    s->m_busy_us = 1000000;
    s->m_busy_since_us = 5000000; /* open since t=5 s */
    s->m_in_flight = 1;
    s->rss_kb = 10;
    gp_metrics_worker w;
    gp_metrics_read_slot(s, 7000000, &w);
    assert_int_equal(w.pid, 42);
    assert_int_equal(w.status[1], 7);
    assert_int_equal(w.busy_us, 3000000); /* 1 s closed + 2 s open */
    assert_int_equal(w.in_flight, 1);
    assert_int_equal(w.rss_bytes, 10240);
    assert_int_equal(w.hist[0], 5);
    assert_int_equal(w.hist[3], 2);
    assert_int_equal(w.dur_us, 9000);

    gp_metrics_totals t = {0};
    gp_metrics_fold(&t, s, 1.5);
    gp_metrics_fold(&t, s, 0.5);
    assert_int_equal(t.status[1], 14);
    assert_int_equal(t.hist[0], 10);
    assert_int_equal(t.dur_us, 18000);
    assert_int_equal(t.busy_us, 2000000); /* the dead worker's open period is not counted */
    assert_true(t.cpu_s > 1.99 && t.cpu_s < 2.01);
    free(s);
}

static void test_proc_parsers(void **state)
{
    (void)state;
    double cpu = 0;
    uint64_t rss = 0;
    /* a command name with a space and a ')' in it */
    const char *stat = "1234 (we ird) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
    assert_int_equal(gp_metrics_parse_stat(stat, 100, &cpu), 0);
    assert_true(cpu > 2.99 && cpu < 3.01);
    assert_int_equal(gp_metrics_parse_stat("garbage", 100, &cpu), -1);
    assert_int_equal(gp_metrics_parse_stat("1 (x) S 1 2", 100, &cpu), -1);
    assert_int_equal(gp_metrics_parse_statm("5000 300 100 1 0 200 0\n", 4096, &rss), 0);
    assert_int_equal(rss, 300 * 4096);
    assert_int_equal(gp_metrics_parse_statm("", 4096, &rss), -1);
    /* our own process reads */
    assert_int_equal(gp_metrics_proc(getpid(), &cpu, &rss), 0);
    assert_true(rss > 0);
    assert_int_equal(gp_metrics_proc(0x7ffffff0, &cpu, &rss), -1);
}

/* The value of the first line starting with prefix, or -1. */
static double value_of(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);
    while (p && *p) {
        if (!strncmp(p, prefix, n)) return strtod(p + n, NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

static void test_render(void **state)
{
    (void)state;
    gp_metrics_worker ws[2] = {
        {.pid = 100,
         .state = GP_WS_IDLE,
         .status = {0, 10, 0, 1, 0},
         .busy_us = 1500000,
         .hist = {4, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
         .dur_us = 31000000},
        {.pid = 101, .state = GP_WS_BUSY, .status = {0, 5, 0, 0, 2}, .in_flight = 1},
    };
    gp_metrics_totals gone = {.status = {0, 3}, .busy_us = 250000, .hist = {0, 1}, .dur_us = 800};
    gone.restarts[GP_RESTART_CRASH] = 2;
    gone.restarts[GP_RESTART_RELOAD] = 1;
    gp_metrics_listener ls[2] = {
        {.name = "127.0.0.1:8000", .has_queue = true, .depth = 3, .limit = 2048},
        {.name = "unix:/tmp/s"}};
    gp_metrics_view v = {.workers = ws,
                         .num_workers = 2,
                         .gone = &gone,
                         .listeners = ls,
                         .num_listeners = 2,
                         .workers_current = 2,
                         .workers_target = 3,
                         .version = "9.9"};
    gp_mbuf b = {0};
    assert_int_equal(gp_metrics_render(&v, &b), 0);
    assert_false(b.failed);
    const char *t = b.p;
    assert_true(value_of(t, "gallop_requests_total{worker=\"100\",code=\"2xx\"} ") == 10);
    assert_true(value_of(t, "gallop_requests_total{worker=\"101\",code=\"5xx\"} ") == 2);
    assert_true(value_of(t, "gallop_requests_total{worker=\"exited\",code=\"2xx\"} ") == 3);
    /* cumulative buckets per worker: 4, 4, 6, ... 6, then +Inf 7 */
#define BUCKET(w, le) "gallop_request_duration_seconds_bucket{worker=\"" w "\",le=\"" le "\"} "
    assert_true(value_of(t, BUCKET("100", "0.0005")) == 4);
    assert_true(value_of(t, BUCKET("100", "0.001")) == 4);
    assert_true(value_of(t, BUCKET("100", "0.0025")) == 6);
    assert_true(value_of(t, BUCKET("100", "30")) == 6);
    assert_true(value_of(t, BUCKET("100", "+Inf")) == 7);
    assert_true(value_of(t, "gallop_request_duration_seconds_count{worker=\"100\"} ") == 7);
    assert_true(value_of(t, "gallop_request_duration_seconds_sum{worker=\"100\"} ") == 31);
    assert_true(value_of(t, BUCKET("101", "+Inf")) == 0);
    /* the workers that are gone keep theirs */
    assert_true(value_of(t, BUCKET("exited", "0.0005")) == 0);
    assert_true(value_of(t, BUCKET("exited", "0.001")) == 1);
    assert_true(value_of(t, "gallop_request_duration_seconds_count{worker=\"exited\"} ") == 1);
    assert_true(value_of(t, "gallop_request_duration_seconds_sum{worker=\"exited\"} ") == 0.0008);
#undef BUCKET
    assert_true(value_of(t, "gallop_requests_in_flight{worker=\"101\"} ") == 1);
    assert_true(value_of(t, "gallop_worker_busy_seconds_total{worker=\"100\"} ") == 1.5);
    assert_true(value_of(t, "gallop_worker_busy_seconds_total{worker=\"exited\"} ") == 0.25);
    assert_true(value_of(t, "gallop_worker_restarts_total{reason=\"crash\"} ") == 2);
    assert_true(value_of(t, "gallop_worker_restarts_total{reason=\"reload\"} ") == 1);
    assert_true(value_of(t, "gallop_worker_restarts_total{reason=\"timeout\"} ") == 0);
    assert_true(value_of(t, "gallop_listen_queue_depth{listener=\"127.0.0.1:8000\"} ") == 3);
    assert_true(value_of(t, "gallop_listen_queue_limit{listener=\"127.0.0.1:8000\"} ") == 2048);
    assert_null(strstr(t, "unix:/tmp/s")); /* no queue read for it: no made-up value */
    assert_true(value_of(t, "gallop_workers{kind=\"target\"} ") == 3);
    assert_true(value_of(t, "gallop_worker_state{worker=\"101\",state=\"busy\"} ") == 1);
    assert_true(value_of(t, "gallop_build_info{version=\"9.9\"} ") == 1);
    /* every sample's family has a TYPE line before it */
    for (const char *p = t; *p; p = strchr(p, '\n') + 1) {
        if (*p == '#') continue;
        char fam[128];
        size_t n = strcspn(p, "{ ");
        assert_true(n < sizeof fam);
        memcpy(fam, p, n);
        fam[n] = 0;
        char *suffix = strstr(fam, "_bucket");
        if (!suffix) suffix = strstr(fam, "_sum");
        if (!suffix) suffix = strstr(fam, "_count");
        if (suffix && !strncmp(fam, "gallop_request_duration_seconds", 31)) *suffix = 0;
        char want[160];
        snprintf(want, sizeof want, "# TYPE %s ", fam);
        const char *type = strstr(t, want);
        assert_non_null(type);
        assert_true(type < p);
    }
    gp_mbuf_free(&b);
}

static void test_mbuf_cap(void **state)
{
    (void)state;
    gp_mbuf b = {0};
    char piece[4096];
    memset(piece, 'x', sizeof piece - 1);
    piece[sizeof piece - 1] = 0;
    int rc = 0;
    for (int i = 0; i < 4096 && rc == 0; i++) rc = gp_mbuf_printf(&b, "%s", piece);
    assert_int_equal(rc, -1); /* past the cap: refused, not grown without end */
    assert_true(b.failed);
    assert_true(b.cap <= GP_MSERVE_MAX_BODY);
    assert_int_equal(gp_mbuf_printf(&b, "more"), -1);
    gp_mbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),      cmocka_unit_test(test_counting),
        cmocka_unit_test(test_busy_by_loop), cmocka_unit_test(test_read_and_fold),
        cmocka_unit_test(test_proc_parsers), cmocka_unit_test(test_render),
        cmocka_unit_test(test_mbuf_cap),     cmocka_unit_test(test_state_follows_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
