/* scoreboard: memory shared by the master and its workers, created before fork.
 *
 * It lives in a memfd so that a worker which executes the Python interpreter
 * after fork (a MAP_SHARED anonymous mapping does not survive exec) maps the
 * same pages again from the inherited descriptor.
 *
 * One slot per worker, written only by that worker (and reset by the master
 * between two workers), read by the master. No locks and no system calls on
 * the request path: single-writer fields with relaxed atomics; the text of the
 * request in progress is guarded by a sequence counter. */
#ifndef GP_SCOREBOARD_H
#define GP_SCOREBOARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum gp_worker_state { GP_WS_EMPTY, GP_WS_BOOTING, GP_WS_IDLE, GP_WS_BUSY, GP_WS_STOPPING };

enum gp_retire_reason { GP_RETIRE_NONE, GP_RETIRE_MAX_REQUESTS, GP_RETIRE_MEMORY };

#define GP_SLOT_WHAT 96
#define GP_METRICS_BUCKETS 16 /* request duration buckets (metrics.c), the last one +Inf */

typedef struct {
    _Atomic pid_t pid;
    _Atomic int state; /* enum gp_worker_state; idle or busy: the in-flight count (metrics.c) */
    _Atomic unsigned generation;
    _Atomic int retire_reason;     /* why the worker is leaving on its own */
    _Atomic uint64_t heartbeat_ms; /* monotonic ms of the loop's last turn */
    _Atomic uint64_t req_start_ms; /* when the request in progress started; 0 when none */
    _Atomic uint64_t requests, bytes, errors;
    _Atomic uint64_t rss_kb;     /* sampled once a second */
    _Atomic uint32_t conns;      /* connections held, and whether it accepts more: */
    _Atomic int accepting;       /* so workers on a shared socket can balance */
    _Atomic uint32_t shed;       /* keep-alive connections to end (master: set; worker: count down) */
    _Atomic unsigned what_seq;   /* odd while req_what is being written */
    char req_what[GP_SLOT_WHAT]; /* "GET /path" of the request in progress */
    /* a worker whose requests run as tasks (ASGI) keeps req_start_ms at 0 (its
     * loop's heartbeat is what --timeout watches) and names instead the oldest
     * request in progress in req_what, refreshed once a second */
    _Atomic uint64_t task_start_ms; /* when that one started; 0 when none */
    /* --metrics-bind (metrics.h): counted by the worker's loop thread, read on a scrape */
    _Atomic uint32_t m_in_flight;                /* requests begun, not yet answered or cut off */
    _Atomic uint64_t m_status[5];                /* answered, by class 1xx .. 5xx */
    _Atomic uint64_t m_hist[GP_METRICS_BUCKETS]; /* answered, per duration bucket */
    _Atomic uint64_t m_dur_us;                   /* sum of their durations */
    _Atomic uint64_t m_busy_us;                  /* closed busy periods (below) */
    _Atomic uint64_t m_busy_since_us;            /* start of the open one; 0 when idle */
    _Atomic int m_busy_loop; /* busy is the event loop's time outside its waits (ASGI,
                                idle.h), not the time with a request in progress */
} __attribute__((aligned(64))) gp_slot;

typedef struct {
    int fd;                         /* the memfd behind the mapping (close-on-exec) */
    atomic_int load_error_reported; /* first worker that fails to load the app prints why: 0, 1 printing, 2 printed */
    atomic_int app_async;           /* set by each worker that starts serving: 1 sync app, 2 async (ASGI) */
    int num_slots;
    gp_slot slots[];
} gp_scoreboard;

gp_scoreboard *gp_scoreboard_create(int num_slots);
void gp_scoreboard_destroy(gp_scoreboard *sb);

/* A worker after exec: maps the scoreboard behind the inherited memfd and
 * makes that descriptor close-on-exec again. NULL (errno set) when fd is not
 * a scoreboard. */
gp_scoreboard *gp_scoreboard_attach(int fd);

/* Monotonic milliseconds on the clock every process of the scoreboard uses
 * (the coarse clock: a vDSO read, never a system call). */
uint64_t gp_monotonic_ms(void);

/* Worker side: the request whose app code starts running now (the caller
 * clears req_start_ms when that code returns), and a request's end. */
void gp_slot_request_begin(gp_slot *s, uint64_t now_ms, const char *method, size_t mlen,
                           const char *target, size_t tlen);
void gp_slot_request_end(gp_slot *s, uint64_t bytes, int failed);

/* Worker side, requests run as tasks: the oldest in progress (start 0: none). */
void gp_slot_task_publish(gp_slot *s, uint64_t start_ms, const char *what);

/* Master side: a consistent copy of the request text and when that request
 * started; 0 when none in progress. task_read: the oldest task's. */
uint64_t gp_slot_request_read(gp_slot *s, char *what, size_t len);
uint64_t gp_slot_task_read(gp_slot *s, char *what, size_t len);

#endif
