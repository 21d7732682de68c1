/* tune_internal: what tune.c (running the sweep) and tune_verdict.c (choosing
 * and reporting) share: the measurements of each configuration and the run's
 * settings. Not for other modules: gp_tune_main is tune's whole surface. */
#ifndef GP_TUNE_INTERNAL_H
#define GP_TUNE_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "core/cpus.h"

#define TUNE_MAX_POINTS 32
#define TUNE_MAX_W 256 /* workers sampled per configuration */
#define TUNE_MAX_PATHS 16
#define TUNE_MAX_PASS 128
#define TUNE_MAX_THREADS 64
#define TUNE_GAIN 0.05      /* less than this much more req/s: no better */
#define TUNE_CPU_BOUND 0.60 /* CPU per busy second at or above: CPU-bound */
#define TUNE_MIN_DURATION 0.5
#define TUNE_MEM_MARGIN 0.9 /* of the memory available, what workers may take */
#define TUNE_NOISY 0.15     /* runqueue wait over wall time: other processes are in the way */

enum { TUNE_USAGE = 2, TUNE_FAILED = 1, TUNE_INTERRUPTED = 130 };

typedef struct {
    int workers, threads, concurrency, nw;
    double rps, p50_ms, p99_ms, cpu_ms_per_req, cpu_busy, rss_mb, elapsed_s, loadgen_cpu;
    double cpu[TUNE_MAX_W], rss[TUNE_MAX_W]; /* each worker: CPU / wall, MB */
    double busy[TUNE_MAX_W];                 /* each worker: CPU / (wall - waiting for a CPU) */
    double wait[TUNE_MAX_W];                 /* each worker: runqueue wait / wall */
    uint64_t responses, errors, status[6];
    char error[160];
} tune_point;

typedef struct {
    const char *app;
    const char *paths[TUNE_MAX_PATHS];
    int num_paths;
    const char *method, *body_file, *plot, *interface;
    char *body;
    size_t body_len;
    double duration, rate, memory_mb; /* memory_mb: --memory, 0 for what the machine has */
    int concurrency;
    bool json;
    const char *pass[TUNE_MAX_PASS];
    int num_pass;
    /* found out */
    char exe[PATH_MAX];
    gp_cpus cpus;
    double mem_mb;
    char mem_why[96];
    bool asgi, interface_known;
    tune_point pts[TUNE_MAX_POINTS];
    int num_pts;
    FILE *out; /* the table and the verdict: stdout, stderr under --json */
    double t0;
    int runs;
    bool remeasuring;
    /* the configuration being measured */
    pid_t master;
    int num_w;
    pid_t wpid[TUNE_MAX_W];
    double wcpu0[TUNE_MAX_W], wwait0[TUNE_MAX_W];
    struct rusage self0;
} tune;

/* A worker on the CPU this much of the time it could run has no idle time
 * for a thread or an extra worker to fill: a gain measured there is noise. */
#define TUNE_ALL_CPU 0.90

typedef struct {
    int k;
    bool cpu_bound;
    double busy;
    double contention; /* the 1x1 worker's runqueue wait over the wall time */
    bool unclassified; /* open loop that one worker carried: it was not kept busy */
    char line[400], verdict[600], memory[200], noisy[300];
} tune_verdict;

/* tune_verdict.c: choosing, from t->pts, and saying so. */

/* The best req/s of the configurations that count (no more than 1% failed,
 * fit in memory). */
double gp_tunev_best_rps(const tune *t);

/* The smallest configuration within TUNE_GAIN of the best throughput among
 * those with at most max_w workers and max_t threads (fewer workers first,
 * then fewer threads; open loop: any that kept up with the rate); -1: none. */
int gp_tunev_pick(const tune *t, int max_w, int max_t);

/* The 1-worker, 1-thread run's CPU per busy second, 0 before it ran. */
double gp_tunev_busy_of_one(const tune *t);

/* The pick, the classification and the lines that say them. */
void gp_tunev_decide(const tune *t, tune_verdict *v);

void gp_tunev_print_table(const tune *t, int pick);
void gp_tunev_print_json(const tune *t, const tune_verdict *v); /* on stdout */
int gp_tunev_write_plot(const tune *t, const tune_verdict *v);  /* 0 or an exit code */

#endif
