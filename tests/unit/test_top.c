/* Unit tests for core/top: reading /workers and /metrics text into a
 * snapshot, and the quantile of an interval's bucket counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/top.c"

static void test_parse(void **state)
{
    (void)state;
    static top_snap s;
    memset(&s, 0, sizeof s);
    char workers[] = "10 busy 5 1200 3 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\tGET /slow?x=1\n"
                     "11 idle 7 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2\t\n"
                     "garbage\n";
    parse_workers(&s, workers);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.w[0].pid, 10);
    assert_string_equal(s.w[0].state, "busy");
    assert_true(s.w[0].running_ms == 1200);
    assert_string_equal(s.w[0].what, "GET /slow?x=1");
    assert_int_equal(s.w[0].hist[0], 3);
    assert_int_equal(s.w[1].hist[GP_METRICS_BUCKETS - 1], 2);
    assert_int_equal(s.hist[0], 3);
    char metrics[] = "# TYPE gallop_requests_total counter\n"
                     "gallop_requests_total{worker=\"10\",code=\"2xx\"} 4\n"
                     "gallop_requests_total{worker=\"10\",code=\"5xx\"} 1\n"
                     "gallop_requests_total{worker=\"exited\",code=\"2xx\"} 100\n"
                     "gallop_requests_in_flight{worker=\"10\"} 1\n"
                     "gallop_worker_busy_seconds_total{worker=\"11\"} 2.5\n"
                     "gallop_worker_resident_memory_bytes{worker=\"11\"} 1048576\n"
                     "gallop_listen_queue_depth{listener=\"127.0.0.1:8000\"} 3\n"
                     "gallop_listen_queue_depth{listener=\"[::1]:8000\"} 2\n"
                     "gallop_workers{kind=\"current\"} 2\n"
                     "gallop_workers{kind=\"target\"} 3\n";
    parse_metrics(&s, metrics);
    assert_true(s.w[0].requests == 5);
    assert_true(s.total == 105);
    assert_true(s.w[0].in_flight == 1);
    assert_true(s.w[1].busy_s == 2.5);
    assert_true(s.w[1].rss == 1048576);
    assert_true(s.depth == 5);
    assert_true(s.current == 2 && s.target == 3);
}

static void test_quantile(void **state)
{
    (void)state;
    uint64_t now[GP_METRICS_BUCKETS] = {0}, before[GP_METRICS_BUCKETS] = {0};
    char out[16];
    quantile(now, NULL, 0.5, out, sizeof out);
    assert_string_equal(out, "-");
    now[0] = 90; /* <= 0.5 ms */
    now[8] = 10; /* <= 250 ms */
    quantile(now, NULL, 0.5, out, sizeof out);
    assert_string_equal(out, "0.5ms");
    quantile(now, NULL, 0.99, out, sizeof out);
    assert_string_equal(out, "250ms");
    /* only the interval counts: the 90 fast ones were before it */
    before[0] = 90;
    quantile(now, before, 0.5, out, sizeof out);
    assert_string_equal(out, "250ms");
    now[GP_METRICS_BUCKETS - 1] = 1000;
    quantile(now, before, 0.5, out, sizeof out);
    assert_string_equal(out, ">30s");
    now[GP_METRICS_BUCKETS - 1] = 0;
    now[11] = 1000; /* <= 2.5 s */
    quantile(now, before, 0.5, out, sizeof out);
    assert_string_equal(out, "2.5s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
