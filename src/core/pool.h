/* pool: request threads (--threads). The loop queues a job; a thread runs
 * it (the app's code) and queues it back; the loop, woken by an eventfd,
 * finishes it. What a job is and what running it means are the caller's
 * (callbacks), so the pool knows neither connections nor the worker.
 *
 * Never runs a job's done on a request thread, never blocks the loop. */
#ifndef GP_POOL_H
#define GP_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/http_parser.h"
#include "core/loop.h"
#include "core/scoreboard.h"

/* What each request thread is running, for the timeout check. */
typedef struct gp_thread_slot {
    _Atomic uint64_t started_ms; /* when the app's code began running; 0: idle or waiting */
    char what[GP_SLOT_WHAT];
} gp_thread_slot;

/* Embedded in what is queued. */
typedef struct gp_job {
    struct gp_job *qnext;
} gp_job;

typedef struct gp_pool_ops {
    /* Once in each thread before its first job. */
    void (*thread_init)(void *arg);
    /* On a request thread; headers is the thread's own array of
     * GP_HTTP_MAX_HEADERS, ts its slot. */
    void (*run)(gp_job *j, gp_http_header *headers, gp_thread_slot *ts);
    /* On the loop's thread, after run. */
    void (*done)(gp_job *j);
    /* On the loop's thread: every thread is now taken (full), or one is
     * free again (!full). */
    void (*busy)(void *arg, bool full);
} gp_pool_ops;

typedef struct gp_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gp_job *jobs, *jobs_tail, *done;
    int threads, busy;  /* busy: queued or running; written on the loop's thread only */
    gp_io done_io;      /* eventfd */
    bool accept_paused; /* the owner's: it stopped accepting while every thread is taken */
    const gp_pool_ops *ops;
    void *arg;
    gp_thread_slot *slots; /* one per thread */
    atomic_int next_slot;
} gp_pool;

/* Starts threads request threads, watched through loop. NULL on failure
 * (errno set). */
gp_pool *gp_pool_start(gp_loop *loop, int threads, const gp_pool_ops *ops, void *arg);
/* Queues j for a thread (loop thread only). */
void gp_pool_submit(gp_pool *p, gp_job *j);

#endif
