/* autoscale: the adaptive-workers decision; see autoscale.h.
 *
 * Hysteresis, so that it never flaps: growing needs the whole up window
 * measured at the current count with nothing booting or retiring; any change
 * waits out the cool-down after the previous one; one worker at a time. The
 * down window measures the load (busy seconds per second, a count of busy
 * workers) and divides it by the count now, so it may span earlier steps
 * down: an idle server sheds its workers one cool-down apart once the window
 * is idle, while a steady load stops where it keeps the workers busy enough.
 * Shrinking at busy < down_busy over T workers leaves T - 1 workers below
 * down_busy * T / (T - 1) <= 2 x down_busy, under up_busy for the defaults: a
 * step down cannot by itself call for a step up. */
#include "core/autoscale.h"

#include <stdio.h>
#include <string.h>

#define SLACK_S 0.25  /* a window of samples one second apart may fall short by a tick */
#define CPU_SLACK 1.1 /* CPU demand may pass the usable CPUs by this factor before it caps */

static const char *const reason_label[GP_AS_REASONS][2] = {
    {"up", "busy"}, {"up", "backlog"}, {"down", "idle"}, {"capped", "cpu"}, {"capped", "memory"}};

void gp_autoscale_defaults(gp_as_params *p, int min, int max, int cpus)
{
    *p = (gp_as_params){.min = min,
                        .max = max,
                        .cpus = cpus > 0 ? cpus : 1,
                        .up_busy = 0.85,
                        .up_window = 5,
                        .down_busy = 0.30,
                        .down_window = 30,
                        .cooldown = 5,
                        .mem_margin = 1.25};
}

void gp_autoscale_init(gp_autoscale *a, const gp_as_params *p)
{
    memset(a, 0, sizeof *a);
    a->p = *p;
    a->last_change = -1e9;
}

void gp_autoscale_set_bounds(gp_autoscale *a, int min, int max)
{
    a->p.min = min;
    a->p.max = max;
    a->capped_at = 0;
}

void gp_autoscale_changed(gp_autoscale *a, double t)
{
    a->last_change = t;
    a->capped_at = 0;
}

/* The newest samples covering window seconds, summed. */
typedef struct {
    double span, busy, worker_s, cpu;
    double start;     /* t where the first sample's interval begins */
    bool settling;    /* any sample had a worker booting or retiring */
    bool other_count; /* any sample had another worker count than asked */
    uint32_t bl_first, bl_last, bl_min;
} window;

static const gp_as_sample *at(const gp_autoscale *a, int back)
{
    return &a->ring[(a->head - 1 - back + GP_AS_RING) % GP_AS_RING];
}

static void gather(const gp_autoscale *a, double len, int workers, window *w)
{
    memset(w, 0, sizeof *w);
    w->bl_min = UINT32_MAX;
    const gp_as_sample *newest = at(a, 0);
    w->bl_last = newest->backlog;
    w->start = newest->t;
    /* the oldest sample only marks where the next one's interval starts */
    for (int i = 0; i + 1 < a->count && w->span < len - SLACK_S; i++) {
        const gp_as_sample *s = at(a, i), *prev = at(a, i + 1);
        double dt = s->t - prev->t;
        if (dt <= 0) continue;
        w->span += dt;
        w->start = prev->t;
        w->busy += s->busy_s;
        w->cpu += s->cpu_s;
        w->worker_s += dt * s->workers;
        w->settling |= s->settling;
        w->other_count |= s->workers != workers;
        w->bl_first = s->backlog;
        if (s->backlog < w->bl_min) w->bl_min = s->backlog;
    }
}

static double share(double part, double whole)
{
    return whole > 0 ? part / whole : 0;
}

/* Grow, or report the cap that stops it; GP_AS_NONE when not saturated. */
static enum gp_as_action consider_up(gp_autoscale *a, const gp_as_sample *s, int *target,
                                     char *line, int len)
{
    window w;
    gather(a, a->p.up_window, *target, &w);
    if (w.span < a->p.up_window - SLACK_S || w.settling || w.other_count ||
        w.start < a->last_change)
        return GP_AS_NONE;
    double busy = share(w.busy, w.worker_s);
    bool queued = w.bl_min > 0 && w.bl_min != UINT32_MAX && w.bl_last >= w.bl_first;
    if (busy < a->p.up_busy && !queued) return GP_AS_NONE;
    int why = busy >= a->p.up_busy ? GP_AS_BUSY : GP_AS_BACKLOG;
    /* CPU-bound workers (CPU time, with the wait for one, close to busy
     * time) each need a CPU: one more past the usable CPUs only slows all */
    double cpu_per_busy = share(w.cpu, w.busy);
    int cap = 0;
    if (cpu_per_busy * (*target + 1) > a->p.cpus * CPU_SLACK) {
        cap = GP_AS_CPU;
        snprintf(line, (size_t)len,
                 "not scaling up to %d workers: CPU-bound (%.0f%% CPU per busy second), "
                 "%d usable CPU%s",
                 *target + 1, 100 * cpu_per_busy, a->p.cpus, a->p.cpus == 1 ? "" : "s");
    } else if (s->free != UINT64_MAX && s->rss && (double)s->free < s->rss * a->p.mem_margin) {
        cap = GP_AS_MEMORY;
        snprintf(line, (size_t)len,
                 "not scaling up to %d workers: memory (%llu MiB free, a worker needs %llu MiB "
                 "+ %.0f%%)",
                 *target + 1, (unsigned long long)(s->free >> 20),
                 (unsigned long long)(s->rss >> 20), 100 * (a->p.mem_margin - 1));
    }
    if (cap) {
        if (a->capped_at == *target && a->capped_why == cap) return GP_AS_NONE;
        a->capped_at = *target;
        a->capped_why = cap;
        a->decisions[cap]++;
        snprintf(a->last, sizeof a->last, "%s", line);
        return GP_AS_CAPPED;
    }
    ++*target;
    snprintf(line, (size_t)len, "scaling up to %d worker%s: busy %.0f%% over %.0f s, backlog %u",
             *target, *target == 1 ? "" : "s", 100 * busy, a->p.up_window, s->backlog);
    a->decisions[why]++;
    return GP_AS_UP;
}

static enum gp_as_action consider_down(gp_autoscale *a, const gp_as_sample *s, int *target,
                                       char *line, int len)
{
    window w;
    gather(a, a->p.down_window, *target, &w);
    if (w.span < a->p.down_window - SLACK_S || s->backlog) return GP_AS_NONE;
    /* against the count now, not the worker seconds of the window: those
     * counted workers already gone, and would let the count fall under the
     * load that remains */
    double busy = share(w.busy, w.span * *target);
    if (busy >= a->p.down_busy) return GP_AS_NONE;
    --*target;
    snprintf(line, (size_t)len, "scaling down to %d worker%s: busy %.0f%% over %.0f s", *target,
             *target == 1 ? "" : "s", 100 * busy, a->p.down_window);
    a->decisions[GP_AS_IDLE]++;
    return GP_AS_DOWN;
}

enum gp_as_action gp_autoscale_step(gp_autoscale *a, const gp_as_sample *s, int *target, char *line,
                                    int len)
{
    a->ring[a->head] = *s;
    a->head = (a->head + 1) % GP_AS_RING;
    if (a->count < GP_AS_RING) a->count++;
    line[0] = 0;
    if (s->settling || s->t - a->last_change < a->p.cooldown) return GP_AS_NONE;
    enum gp_as_action act = GP_AS_NONE;
    if (*target < a->p.max) act = consider_up(a, s, target, line, len);
    if (act == GP_AS_NONE && *target > a->p.min) act = consider_down(a, s, target, line, len);
    if (act == GP_AS_UP || act == GP_AS_DOWN) {
        gp_autoscale_changed(a, s->t);
        snprintf(a->last, sizeof a->last, "%s", line);
    }
    return act;
}

int gp_autoscale_render(const gp_autoscale *a, int target, gp_mbuf *o)
{
    int rc = 0;
    rc |= gp_mbuf_printf(o,
                         "# HELP gallop_autoscale_workers Adaptive workers: the bounds and the "
                         "count wanted now.\n# TYPE gallop_autoscale_workers gauge\n"
                         "gallop_autoscale_workers{kind=\"min\"} %d\n"
                         "gallop_autoscale_workers{kind=\"max\"} %d\n"
                         "gallop_autoscale_workers{kind=\"target\"} %d\n",
                         a->p.min, a->p.max, target);
    rc |= gp_mbuf_printf(o, "# HELP gallop_autoscale_decisions_total Adaptive workers: changes "
                            "made (up, down) and held back (capped), by reason.\n"
                            "# TYPE gallop_autoscale_decisions_total counter\n");
    for (int r = 0; r < GP_AS_REASONS; r++)
        rc |= gp_mbuf_printf(
            o, "gallop_autoscale_decisions_total{direction=\"%s\",reason=\"%s\"} %llu\n",
            reason_label[r][0], reason_label[r][1], (unsigned long long)a->decisions[r]);
    rc |= gp_mbuf_printf(o, "# HELP gallop_autoscale_last_decision_info Adaptive workers: the log "
                            "line of the last decision.\n"
                            "# TYPE gallop_autoscale_last_decision_info gauge\n");
    if (a->last[0])
        rc |= gp_mbuf_printf(o, "gallop_autoscale_last_decision_info{line=\"%s\"} 1\n", a->last);
    return rc ? -1 : 0;
}
