/* timer: deadlines in a binary min-heap, for the worker's loop.
 *
 * Each timer is a gp_timer embedded in its owner (a connection, the worker);
 * the heap holds pointers and never allocates per timer, only when it grows.
 * Times are monotonic milliseconds (gp_monotonic_ms). Setting, moving and
 * stopping a timer are O(log n); finding the earliest is O(1). Single-threaded:
 * only the loop's thread may touch a heap and its timers. No I/O here: the
 * worker arms one timerfd at gp_timers_earliest and runs what expired. */
#ifndef GP_TIMER_H
#define GP_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GP_TIMER_NEVER UINT64_MAX

typedef struct gp_timer gp_timer;
typedef void (*gp_timer_cb)(gp_timer *t);

struct gp_timer {
    uint64_t at;    /* when it fires; meaningful while armed */
    size_t slot;    /* heap index + 1; 0 while not armed */
    gp_timer_cb cb; /* run by gp_timers_run */
};

typedef struct {
    gp_timer **heap;
    size_t len, cap;
} gp_timers;

void gp_timers_init(gp_timers *ts);
void gp_timers_free(gp_timers *ts);

/* Arms t to fire at `at`, or moves it there if already armed (earlier or
 * later). Returns 0, or -ENOMEM when the heap cannot grow (t stays as it was). */
int gp_timer_set(gp_timers *ts, gp_timer *t, uint64_t at);

/* Disarms t; harmless when it is not armed. */
void gp_timer_stop(gp_timers *ts, gp_timer *t);

static inline bool gp_timer_armed(const gp_timer *t)
{
    return t->slot != 0;
}

/* When the earliest armed timer fires, GP_TIMER_NEVER when none is. */
uint64_t gp_timers_earliest(const gp_timers *ts);

/* Disarms and returns one timer due at or before now (earliest first), NULL
 * when none is due. */
gp_timer *gp_timers_pop_due(gp_timers *ts, uint64_t now);

/* Runs the callback of every timer due at or before now, earliest first. A
 * callback may set or stop any timer, its own included; one it sets again at
 * or before now runs again in this call. Returns how many ran. */
size_t gp_timers_run(gp_timers *ts, uint64_t now);

#endif
