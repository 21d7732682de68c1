/* Unit tests for core/worker: what needs the worker's own struct, which is
 * private to worker.c (included here for it). The graceful stop's bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "core/worker.c"

static struct {
    gp_worker *w;
    gp_config cfg;
} F;

static int fixture_up(void **state)
{
    memset(&F, 0, sizeof F);
    if (!(F.w = calloc(1, sizeof *F.w))) return -1;
    F.w->env.cfg = &F.cfg;
    return 0;
}

static int fixture_down(void **state)
{
    free(F.w);
    return 0;
}

/* The bound of an ASGI app's lifespan shutdown: the whole graceful timeout
 * before the stop, what is left of it once stopping, never below zero. */
static void test_worker_stop_left(void **state)
{
    F.cfg.graceful_timeout = 5;
    F.w->env.now = 100;
    assert_true(gp_worker_stop_left(F.w) == 5.0);
    F.w->env.stopping = true;
    F.w->stop_deadline = 102.5;
    assert_true(gp_worker_stop_left(F.w) == 2.5);
    F.w->env.now = 103;
    assert_true(gp_worker_stop_left(F.w) == 0.0);
    F.w->env.stopping = false;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fixture_up, fixture_down)
    const struct CMUnitTest tests[] = {
        T(test_worker_stop_left),
    };
#undef T
    return cmocka_run_group_tests_name("worker", tests, NULL, NULL);
}
