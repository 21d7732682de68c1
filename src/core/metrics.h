/* metrics: what the workers count for --metrics-bind, and the Prometheus text
 * the master makes of it.
 *
 * Worker side (gp_metrics_begin/end/drop): a few relaxed stores into the
 * worker's own scoreboard slot at clock reads the caller makes; never
 * a system call, an allocation or a lock. Master side: a snapshot of the
 * slots, plus the totals of workers that are gone, rendered as text
 * exposition format 0.0.4. Nothing here does I/O but gp_metrics_proc. */
#ifndef GP_METRICS_H
#define GP_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/mserve.h"
#include "core/scoreboard.h"

/* Upper bounds of the duration buckets, in microseconds (0.5 ms .. 30 s);
 * the last bucket, past 30 s, is +Inf. */
extern const uint64_t gp_metrics_bounds_us[GP_METRICS_BUCKETS - 1];

/* The bucket a duration falls in, 0 .. GP_METRICS_BUCKETS - 1. */
int gp_metrics_bucket(uint64_t dur_us);

/* Microseconds on CLOCK_MONOTONIC (a vDSO read): durations need better than
 * the coarse clock's ticks of several milliseconds. Inline: on the request
 * path, a call into the bridge's copy of the core goes through its PLT. */
static inline uint64_t gp_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The same clock in seconds, for the commands that watch a server (top, tune). */
static inline double gp_metrics_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Worker side, loop thread only, each at now (gp_metrics_now_us, read by
 * the caller, which shares it with the access log). begin: a request
 * starts, the caller keeps now as its start; end counts a response with its
 * status; drop forgets a request cut off before its response was complete. */
void gp_metrics_begin(gp_slot *s, uint64_t now);
void gp_metrics_end(gp_slot *s, uint64_t start_us, uint64_t now, int status);
void gp_metrics_drop(gp_slot *s, uint64_t now);

/* A busy period opens or closes at now_us: with m_busy_loop set, the loop's
 * waits (idle.c) do this instead of begin and end. */
void gp_metrics_busy_open(gp_slot *s, uint64_t now_us);
void gp_metrics_busy_close(gp_slot *s, uint64_t now_us);

enum gp_restart_reason {
    GP_RESTART_CRASH,
    GP_RESTART_TIMEOUT,
    GP_RESTART_MAX_REQUESTS,
    GP_RESTART_MEMORY,
    GP_RESTART_RELOAD,
    GP_RESTART_REASONS
};

/* Counters that outlive the worker that made them: the master folds a slot
 * in when its worker is reaped, so totals never drop. */
typedef struct {
    uint64_t status[5];
    uint64_t hist[GP_METRICS_BUCKETS];
    uint64_t dur_us, busy_us;
    double cpu_s;
    uint64_t restarts[GP_RESTART_REASONS];
} gp_metrics_totals;

void gp_metrics_fold(gp_metrics_totals *t, const gp_slot *s, double cpu_s);

/* One live worker as a scrape sees it. */
typedef struct {
    pid_t pid;
    unsigned generation;
    int state; /* enum gp_worker_state */
    uint64_t status[5];
    uint64_t in_flight, busy_us, conns, rss_bytes;
    double cpu_s, age_s;
    uint64_t req_ms; /* how long the request in progress has run; 0: none */
    char what[GP_SLOT_WHAT];
    uint64_t hist[GP_METRICS_BUCKETS]; /* answered, per duration bucket (not cumulative) */
    uint64_t dur_us;                   /* their durations' sum */
} gp_metrics_worker;

/* A consistent enough copy of a slot: counters are read so that none is
 * behind one read before it; busy time includes the open period. */
void gp_metrics_read_slot(const gp_slot *s, uint64_t now_us, gp_metrics_worker *out);

typedef struct {
    const char *name; /* canonical address text */
    bool has_queue;   /* read from the kernel (gp_metrics_listen_queue) */
    uint32_t depth, limit;
} gp_metrics_listener;

typedef struct {
    const gp_metrics_worker *workers;
    int num_workers;
    const gp_metrics_totals *gone; /* workers that exited */
    const gp_metrics_listener *listeners;
    int num_listeners;
    int workers_current, workers_target;
    const char *version;
} gp_metrics_view;

/* Appends the exposition text. Returns 0, or -1 when out of memory. */
int gp_metrics_render(const gp_metrics_view *v, gp_mbuf *out);

/* /proc/PID/stat and statm contents parsed: CPU seconds (user + system) and
 * resident bytes. Return 0, or -1 when the text does not parse. */
int gp_metrics_parse_stat(const char *text, long ticks_per_s, double *cpu_s);
int gp_metrics_parse_statm(const char *text, long page_size, uint64_t *rss_bytes);

/* The accept queue of a listening socket, read from the kernel (TCP_INFO,
 * or sock_diag for a UNIX socket): connections waiting and the limit.
 * Returns 0, or -1 when the kernel does not say. */
int gp_metrics_listen_queue(int fd, bool unix_socket, uint32_t *depth, uint32_t *limit);

/* Reads both for pid (the master, on a scrape). Returns 0 or -1. */
int gp_metrics_proc(pid_t pid, double *cpu_s, uint64_t *rss_bytes);

#endif
