/* timer: a binary min-heap of deadlines; see timer.h. */
#include "core/timer.h"

#include <errno.h>
#include <stdlib.h>

void gp_timers_init(gp_timers *ts)
{
    ts->heap = NULL;
    ts->len = ts->cap = 0;
}

void gp_timers_free(gp_timers *ts)
{
    for (size_t i = 0; i < ts->len; i++) ts->heap[i]->slot = 0;
    free(ts->heap);
    gp_timers_init(ts);
}

static void place(gp_timers *ts, size_t i, gp_timer *t)
{
    ts->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(gp_timers *ts, size_t i)
{
    gp_timer *t = ts->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (ts->heap[parent]->at <= t->at) break;
        place(ts, i, ts->heap[parent]);
        i = parent;
    }
    place(ts, i, t);
}

static void sift_down(gp_timers *ts, size_t i)
{
    gp_timer *t = ts->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= ts->len) break;
        if (child + 1 < ts->len && ts->heap[child + 1]->at < ts->heap[child]->at) child++;
        if (t->at <= ts->heap[child]->at) break;
        place(ts, i, ts->heap[child]);
        i = child;
    }
    place(ts, i, t);
}

int gp_timer_set(gp_timers *ts, gp_timer *t, uint64_t at)
{
    if (t->slot) {
        uint64_t old = t->at;
        t->at = at;
        if (at < old) sift_up(ts, t->slot - 1);
        else if (at > old) sift_down(ts, t->slot - 1);
        return 0;
    }
    if (ts->len == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 64;
        gp_timer **h = realloc(ts->heap, cap * sizeof *h);
        if (!h) return -ENOMEM;
        ts->heap = h;
        ts->cap = cap;
    }
    t->at = at;
    place(ts, ts->len++, t);
    sift_up(ts, ts->len - 1);
    return 0;
}

void gp_timer_stop(gp_timers *ts, gp_timer *t)
{
    if (!t->slot) return;
    size_t i = t->slot - 1;
    t->slot = 0;
    gp_timer *last = ts->heap[--ts->len];
    if (last == t) return;
    place(ts, i, last);
    /* the moved timer may belong above or below its new place */
    if (i > 0 && ts->heap[(i - 1) / 2]->at > last->at) sift_up(ts, i);
    else sift_down(ts, i);
}

uint64_t gp_timers_earliest(const gp_timers *ts)
{
    return ts->len ? ts->heap[0]->at : GP_TIMER_NEVER;
}

gp_timer *gp_timers_pop_due(gp_timers *ts, uint64_t now)
{
    if (!ts->len || ts->heap[0]->at > now) return NULL;
    gp_timer *t = ts->heap[0];
    gp_timer_stop(ts, t);
    return t;
}

size_t gp_timers_run(gp_timers *ts, uint64_t now)
{
    size_t n = 0;
    gp_timer *t;
    while ((t = gp_timers_pop_due(ts, now))) {
        n++;
        t->cb(t);
    }
    return n;
}
