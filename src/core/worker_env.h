/* worker_env: what a worker hands each of its connections once, at
 * creation: the stream environment (loop, timers, buffers, clock), the
 * configuration, the app, the request limits, the Date line, the access
 * log's settings and the --static hook. The connections keep a pointer and
 * read it on every request, so nothing here costs a call.
 *
 * The worker (worker.c) fills and updates it; the connection layer only
 * reads it, except the clock, which it may refresh (gp_worker_env_clock)
 * after a sync app ran long. Everything else about the worker (listeners,
 * accept, balancing, timers' timerfd, signals) stays in worker.c. */
#ifndef GP_WORKER_ENV_H
#define GP_WORKER_ENV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/conn.h"
#include "core/http_parser.h"
#include "core/pool.h"
#include "core/scoreboard.h"
#include "core/stream.h"

/* the head, body and write timeouts are --header-timeout, --body-timeout and
 * --send-timeout (env->cfg) */
#define GP_LINGER_S 2.0 /* read and discard before closing, at most */
#define GP_LINGER_MAX (1 << 20)
#define GP_STOP_IDLE_S 1.0 /* on stop, idle keep-alive connections close after this */

struct gp_static;
struct gp_alog_format;
struct gp_h2_entry;

typedef struct gp_worker_env {
    gp_stream_env stream; /* what every stream of the worker shares */
    double now;           /* the loop's clock (stream.now points here) */
    uint64_t now_ms;      /* the same in milliseconds (stream.now_ms) */
    gp_slot *slot;        /* the worker's scoreboard slot */
    const gp_config *cfg;
    const gp_app_ops *ops;
    void *app;
    const struct gp_h2_entry *h2; /* HTTP/2's ways in (h2_proto.h); NULL: HTTP/1.1 only */
    gp_pool *pool;                /* request threads; NULL without --threads */
    gp_http_limits limits;
    size_t head_cap;        /* largest request head we buffer */
    bool stopping;          /* graceful stop: every next response says Connection: close */
    char date_lines[2][48]; /* "Date: Thu, 26 Nov 2026 20:42:13 GMT\r\n", double-buffered */
    atomic_int date_idx;    /* for request threads that read it while the loop ticks */
    size_t date_len;
    /* the access log or --log-slow on: requests are recorded (accesslog.h) */
    bool alog_on;
    int access_fd;
    const struct gp_alog_format *alog_fmt; /* --access-log-format, compiled */
    uint64_t log_slow_us;                  /* --log-slow in microseconds; 0: off */
    /* requests and busy time counted into the slot: they feed /metrics and
     * the adaptive workers' decisions */
    bool count_busy;
    int pid;                   /* getpid() is a system call each time */
    struct gp_static *statics; /* --static mounts, NULL when none (static.c) */
    /* gp_static_serve, called through this: static.c answers through conn.h,
     * so the connection layer naming it would make a circle */
    int (*static_serve)(struct gp_static *s, gp_conn *c, const gp_http_request *req);
} gp_worker_env;

/* Points e's stream environment at the worker's loop, timers and buffers
 * and at e's own clock; cfg must be set. */
static inline void gp_worker_env_init(gp_worker_env *e, gp_loop *loop, gp_timers *timers,
                                      gp_bufpool *bufs)
{
    e->stream.loop = loop;
    e->stream.timers = timers;
    e->stream.bufs = bufs;
    e->stream.now = &e->now;
    e->stream.now_ms = &e->now_ms;
    e->stream.send_timeout = &e->cfg->send_timeout;
}

/* Reads the clock into e->now and e->now_ms, and beats the heartbeat. */
static inline void gp_worker_env_clock(gp_worker_env *e)
{
    e->now_ms = gp_monotonic_ms();
    e->now = (double)e->now_ms / 1000.0;
    atomic_store_explicit(&e->slot->heartbeat_ms, e->now_ms, memory_order_relaxed);
}

static inline double gp_now(void)
{
    return (double)gp_monotonic_ms() / 1000.0;
}

#endif
