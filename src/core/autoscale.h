/* autoscale: decides when adaptive workers (--workers-min/--workers-max)
 * grow or shrink by one, from samples the master takes once a second.
 *
 * A pure function of the samples: no clock, no I/O, no process control. The
 * master measures (scoreboard busy time, /proc CPU time and run-queue wait,
 * RSS, the listen queue, free memory), feeds gp_autoscale_step and applies
 * what it returns through its usual spawn and retire paths. */
#ifndef GP_AUTOSCALE_H
#define GP_AUTOSCALE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/mserve.h"

/* What the workers did since the previous sample. */
typedef struct {
    double t;         /* monotonic seconds, when taken */
    int workers;      /* live workers that have booted (retiring ones included) */
    bool settling;    /* a worker is booting or retiring, or a reload is under way */
    double busy_s;    /* seconds with a request in progress, all workers together */
    double cpu_s;     /* CPU seconds they used, plus seconds they waited for a CPU */
    uint32_t backlog; /* connections waiting in the accept queues now */
    uint64_t rss;     /* the largest worker's resident bytes; 0: unknown */
    uint64_t free;    /* bytes the machine can still give; UINT64_MAX: unknown */
} gp_as_sample;

typedef struct {
    int min, max;       /* the bounds: the target stays within them */
    int cpus;           /* usable CPUs (core/cpus.h) */
    double up_busy;     /* grow when busy above this share ... */
    double up_window;   /* ... over this many seconds */
    double down_busy;   /* shrink when busy below this share ... */
    double down_window; /* ... over this many seconds */
    double cooldown;    /* seconds after a change before the next decision */
    double mem_margin;  /* a new worker needs free memory of its RSS times this */
} gp_as_params;

/* The defaults: 85% over 5 s up, 30% over 30 s down, 5 s apart, RSS x 1.25. */
void gp_autoscale_defaults(gp_as_params *p, int min, int max, int cpus);

enum gp_as_action { GP_AS_NONE, GP_AS_UP, GP_AS_DOWN, GP_AS_CAPPED };

enum gp_as_reason {
    GP_AS_BUSY,    /* up: busy above the threshold */
    GP_AS_BACKLOG, /* up: connections kept waiting in the accept queue */
    GP_AS_IDLE,    /* down */
    GP_AS_CPU,     /* capped: CPU-bound workers at the usable CPUs */
    GP_AS_MEMORY,  /* capped: no memory for one more */
    GP_AS_REASONS
};

#define GP_AS_RING 64 /* samples kept: past the longest window at one a second */

typedef struct {
    gp_as_params p;
    gp_as_sample ring[GP_AS_RING];
    int head, count;
    double last_change; /* t of the last change; -1e9 before any */
    int capped_at;      /* the target a cap was last reported at; 0: none */
    int capped_why;     /* and why (enum gp_as_reason) */
    uint64_t decisions[GP_AS_REASONS];
    char last[160]; /* the last decision's log line */
} gp_autoscale;

void gp_autoscale_init(gp_autoscale *a, const gp_as_params *p);

/* New bounds (TTIN/TTOU, a re-read config): the decision windows carry on. */
void gp_autoscale_set_bounds(gp_autoscale *a, int min, int max);

/* A change made from outside (a signal): the cool-down starts again. */
void gp_autoscale_changed(gp_autoscale *a, double t);

/* Takes one sample with the current target; returns what to do. For UP and
 * DOWN *target is the new count and line the log line ("scaling up to 3
 * workers: busy 96% over 5 s, backlog 41"); for CAPPED, line says why it
 * does not grow (reported once per target and cause). */
enum gp_as_action gp_autoscale_step(gp_autoscale *a, const gp_as_sample *s, int *target, char *line,
                                    int len);

/* Appends the Prometheus families: the bounds, decisions by direction and
 * reason, and the last decision. Returns 0 or -1 when out of memory. */
int gp_autoscale_render(const gp_autoscale *a, int target, gp_mbuf *out);

#endif
