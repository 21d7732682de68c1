/* Unit tests for core/timer: ordering, moving timers both ways, stopping
 * from anywhere in the heap, callbacks that re-arm or stop timers, and a
 * randomised run checked against a brute-force model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

typedef struct {
    gp_timer t; /* first member */
    int id, fired;
    gp_timers *ts;
    uint64_t rearm_at; /* callback sets itself again here when nonzero */
    gp_timer *victim;  /* callback stops this one when set */
} probe;

static int order[64], num_order;

static void probe_cb(gp_timer *t)
{
    probe *p = (probe *)t;
    p->fired++;
    if (num_order < 64) order[num_order++] = p->id;
    if (p->rearm_at) {
        uint64_t at = p->rearm_at;
        p->rearm_at = 0;
        assert_int_equal(gp_timer_set(p->ts, t, at), 0);
    }
    if (p->victim) gp_timer_stop(p->ts, p->victim);
}

static void probe_init(probe *p, int id, gp_timers *ts)
{
    memset(p, 0, sizeof *p);
    p->id = id;
    p->ts = ts;
    p->t.cb = probe_cb;
}

static void test_empty(void **state)
{
    gp_timers ts;
    gp_timers_init(&ts);
    assert_true(gp_timers_earliest(&ts) == GP_TIMER_NEVER);
    assert_null(gp_timers_pop_due(&ts, 1000));
    assert_int_equal(gp_timers_run(&ts, UINT64_MAX - 1), 0);
    gp_timers_free(&ts);
}

static void test_fires_in_order_and_only_when_due(void **state)
{
    gp_timers ts;
    gp_timers_init(&ts);
    probe p[5];
    uint64_t at[5] = {500, 100, 300, 200, 400};
    for (int i = 0; i < 5; i++) {
        probe_init(&p[i], i, &ts);
        assert_int_equal(gp_timer_set(&ts, &p[i].t, at[i]), 0);
        assert_true(gp_timer_armed(&p[i].t));
    }
    assert_true(gp_timers_earliest(&ts) == 100);
    num_order = 0;
    assert_int_equal(gp_timers_run(&ts, 99), 0);
    assert_int_equal(gp_timers_run(&ts, 300), 3); /* at == now is due */
    assert_int_equal(num_order, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 2);
    assert_false(gp_timer_armed(&p[1].t));
    assert_true(gp_timer_armed(&p[0].t));
    assert_true(gp_timers_earliest(&ts) == 400);
    assert_int_equal(gp_timers_run(&ts, 1000), 2);
    assert_int_equal(order[3], 4);
    assert_int_equal(order[4], 0);
    assert_true(gp_timers_earliest(&ts) == GP_TIMER_NEVER);
    gp_timers_free(&ts);
}

static void test_move_earlier_and_later(void **state)
{
    gp_timers ts;
    gp_timers_init(&ts);
    probe a, b, c;
    probe_init(&a, 0, &ts);
    probe_init(&b, 1, &ts);
    probe_init(&c, 2, &ts);
    gp_timer_set(&ts, &a.t, 100);
    gp_timer_set(&ts, &b.t, 200);
    gp_timer_set(&ts, &c.t, 300);
    gp_timer_set(&ts, &c.t, 50); /* earlier: now the first */
    assert_true(gp_timers_earliest(&ts) == 50);
    gp_timer_set(&ts, &c.t, 1000); /* later: now the last */
    gp_timer_set(&ts, &a.t, 250);
    assert_true(gp_timers_earliest(&ts) == 200);
    gp_timer_set(&ts, &b.t, 200); /* same time: a no-op */
    assert_int_equal(ts.len, 3);  /* setting an armed timer never adds it twice */
    num_order = 0;
    gp_timers_run(&ts, 2000);
    assert_int_equal(num_order, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 2);
    gp_timers_free(&ts);
}

static void test_stop_anywhere(void **state)
{
    gp_timers ts;
    gp_timers_init(&ts);
    probe p[8];
    for (int i = 0; i < 8; i++) {
        probe_init(&p[i], i, &ts);
        gp_timer_set(&ts, &p[i].t, (uint64_t)(10 * (i + 1)));
    }
    gp_timer_stop(&ts, &p[0].t); /* the root */
    gp_timer_stop(&ts, &p[7].t); /* the last slot */
    gp_timer_stop(&ts, &p[3].t); /* the middle */
    gp_timer_stop(&ts, &p[3].t); /* twice is harmless */
    assert_false(gp_timer_armed(&p[3].t));
    assert_int_equal(ts.len, 5);
    num_order = 0;
    gp_timers_run(&ts, 1000);
    int want[] = {1, 2, 4, 5, 6};
    assert_int_equal(num_order, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(order[i], want[i]);
    for (int i = 0; i < 8; i++) assert_int_equal(p[i].fired, i == 0 || i == 3 || i == 7 ? 0 : 1);
    gp_timers_free(&ts);
}

static void test_callback_rearms_and_stops(void **state)
{
    gp_timers ts;
    gp_timers_init(&ts);
    probe a, b, c;
    probe_init(&a, 0, &ts);
    probe_init(&b, 1, &ts);
    probe_init(&c, 2, &ts);
    gp_timer_set(&ts, &a.t, 10);
    gp_timer_set(&ts, &b.t, 20);
    gp_timer_set(&ts, &c.t, 30);
    a.rearm_at = 25; /* runs again in the same call, after b */
    b.victim = &c.t; /* c never runs */
    num_order = 0;
    assert_int_equal(gp_timers_run(&ts, 40), 3);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 0);
    assert_int_equal(c.fired, 0);
    /* set again in the future: waits for a later call */
    a.rearm_at = 100;
    gp_timer_set(&ts, &a.t, 50);
    assert_int_equal(gp_timers_run(&ts, 60), 1);
    assert_true(gp_timer_armed(&a.t));
    assert_true(gp_timers_earliest(&ts) == 100);
    gp_timers_free(&ts);
    assert_false(gp_timer_armed(&a.t)); /* free disarms what was left */
}

/* Many random sets, moves and stops, checked against a plain array. */
static void test_random_against_model(void **state)
{
    enum { N = 300 };
    gp_timers ts;
    gp_timers_init(&ts);
    static probe p[N];
    uint64_t model[N]; /* 0: not armed */
    for (int i = 0; i < N; i++) {
        probe_init(&p[i], i, &ts);
        model[i] = 0;
    }
    srandom(7);
    uint64_t now = 0;
    for (int step = 0; step < 20000; step++) {
        int i = (int)(random() % N);
        switch (random() % 4) {
        case 0:
        case 1: {
            uint64_t at = now + 1 + (uint64_t)(random() % 1000);
            assert_int_equal(gp_timer_set(&ts, &p[i].t, at), 0);
            model[i] = at;
            break;
        }
        case 2:
            gp_timer_stop(&ts, &p[i].t);
            model[i] = 0;
            break;
        default: {
            now += (uint64_t)(random() % 50);
            gp_timer *t;
            uint64_t last = 0;
            while ((t = gp_timers_pop_due(&ts, now))) {
                probe *q = (probe *)t;
                assert_true(model[q->id] != 0 && model[q->id] <= now);
                assert_true(t->at >= last); /* earliest first */
                last = t->at;
                model[q->id] = 0;
            }
            for (int k = 0; k < N; k++) assert_true(model[k] == 0 || model[k] > now);
        }
        }
        uint64_t min = GP_TIMER_NEVER;
        size_t armed = 0;
        for (int k = 0; k < N; k++) {
            if (model[k] && model[k] < min) min = model[k];
            if (model[k]) armed++;
            assert_int_equal(gp_timer_armed(&p[k].t), model[k] != 0);
        }
        assert_true(gp_timers_earliest(&ts) == min);
        assert_int_equal(ts.len, armed);
    }
    gp_timers_free(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_fires_in_order_and_only_when_due),
        cmocka_unit_test(test_move_earlier_and_later),
        cmocka_unit_test(test_stop_anywhere),
        cmocka_unit_test(test_callback_rearms_and_stops),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
