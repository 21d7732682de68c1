/* worker_internal: the structs shared by worker.c (loop, accept, timers) and
 * conn.c (one connection's protocol work). Nothing else includes this. */
#ifndef GP_WORKER_INTERNAL_H
#define GP_WORKER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/body.h"
#include "core/bufpool.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/loop.h"
#include "core/proxyproto.h"
#include "core/pool.h"
#include "core/scoreboard.h"
#include "core/stream.h"
#include "core/timer.h"

/* the head, body and write timeouts are --header-timeout, --body-timeout and
 * --send-timeout (w->cfg) */
#define GP_LINGER_S 2.0 /* read and discard before closing, at most */
#define GP_LINGER_MAX (1 << 20)
#define GP_STOP_IDLE_S 1.0 /* on stop, idle keep-alive connections close after this */

typedef struct gp_worker gp_worker;

enum gp_conn_state {
    CS_HEAD,     /* waiting for / parsing a request head */
    CS_BODY,     /* reading the request body before the app runs (body.h) */
    CS_APP_WAIT, /* app response pending on a full socket */
    CS_FLUSH,    /* response ended, output still draining */
    CS_LINGER,   /* shut down for writing, discarding input until EOF */
    CS_THREAD,   /* handed to a request thread: the loop does not touch it */
    CS_ASYNC,    /* the app runs as a task elsewhere and calls back in */
};

struct gp_conn {
    gp_stream s; /* first member: the loop hands us back this pointer; the
                  * socket, its buffers, the output queue and the deadline */
    gp_worker *w;
    const struct gp_exchange_ops *xops; /* NULL: HTTP/1.1's own; else another protocol's (exchange.h) */
    void *xstate;
    struct gp_tls *xtls; /* another protocol's exchange: the TLS session of its connection */
    gp_conn *prev, *next;
    gp_job job; /* request-thread queues (pool.h) */
    enum gp_conn_state state;
    bool dead;                /* closed this turn; freed after the batch */
    bool want_input;          /* CS_ASYNC: the app waits for body bytes or a disconnect */
    /* upgraded (WebSocket, ws_conn.c): its hooks, protocol and state */
    const struct gp_upgrade_hooks *up;
    const struct gp_proto *up_proto;
    void *up_state;
    bool peer_gone;           /* CS_ASYNC: the client closed or reset */
    bool keep_alive;
    int listener;
    struct sockaddr_storage peer; /* the client: after a PROXY header, the one it names */
    socklen_t peer_len;
    bool fwd_trusted; /* peer is in --forwarded-allow-ips: its proxy headers count */
    bool proxy_wait;  /* a PROXY header must come before the first request */
    gp_pp_state pp;

    /* input is s.buf[0..s.len); the current head is s.buf[0..head_len) */
    size_t head_len;
    gp_http_head_state head; /* how far the parser got in a head still arriving */

    /* request body */
    enum gp_http_body body_kind;
    uint64_t body_left;  /* LENGTH: bytes still to come */
    uint64_t body_total; /* decoded bytes handed out, for the body limit */
    gp_chunked chunked;
    bool body_done, expect_continue, continue_sent;
    int body_error;  /* HTTP status for a body error, 0 when none */
    bool body_held;  /* the app reads the body from held, not the socket */
    bool body_late;  /* CS_ASYNC: no body byte within --body-timeout */
    gp_body held;    /* CS_BODY and after: the body read ahead of the app */
    char *held_head; /* a copy of the head, parsed again when the body is in */
    size_t held_head_len;

    /* response */
    int version_minor;
    bool head_method, head_sent, chunked_out, no_body, resp_has_length, resp_ended;
    bool has_date, has_server;
    uint64_t resp_left;  /* with Content-Length: body bytes still allowed */
    uint64_t resp_bytes; /* body bytes queued for the client (clipped; none for HEAD) */
    int status;
    int own_fd;     /* a file the core opened for this response (static.c), -1: none */
    void *app_state;
    void *app_cache;

    /* access log and --log-slow: what the request leaves for its line
     * (accesslog.h), kept at dispatch; allocated once per connection */
    struct gp_alog_rec *alog;
    bool alog_pending; /* dispatched, its line not written yet */
    uint64_t m_start_us; /* --metrics-bind: when this request's head was in; 0: none counted */
    uint64_t task_ms;    /* runs_as_tasks: when the app's task for this request began */

    /* --threads (conn.c's request-thread section) */
    struct gp_thread_slot *tslot; /* while a request thread runs the app for it */
    unsigned char thread_job;     /* enum gp_thread_job: what that thread is to do */
    gp_app_status thread_st;      /* what the app answered there, for the loop */
    char what[GP_SLOT_WHAT];      /* "GET /path", kept while the response waits on the socket */
};

struct gp_worker {
    gp_loop loop;
    const gp_config *cfg;
    const gp_app_ops *ops;
    void *app;
    const struct gp_h2_entry *h2; /* HTTP/2's ways in (h2_proto.h); NULL: HTTP/1.1 only */
    void *h2_soon; /* HTTP/2 connections whose output waits for the app's ready tasks (h2_proto.c) */
    gp_http_limits limits;
    size_t head_cap; /* largest request head we buffer */
    struct gp_listen_io {
        gp_io io; /* first member */
        gp_worker *w;
        int index;
        const gp_addr *addr;
        bool own; /* --reuse-port: this worker's socket, its queue is ours alone */
        int rp_socks_fd, rp_prog_fd; /* own: where it joins the round-robin; -1: hash */
        bool proxy; /* --proxy-protocol: each connection starts with a PROXY header */
        gp_tls_ctx *tls; /* TLS listener (core/tls.h); NULL: plain */
    } listeners[GP_MAX_BINDS];
    int num_listeners;
    bool rp_out; /* our own sockets left the round-robin: we cannot take more */
    gp_io signal_io, timer_io;
    gp_timers timers;   /* every deadline: connections' and the worker's own */
    gp_io deadline_io;  /* one-shot timerfd, armed at the earliest timer */
    uint64_t armed_ms;  /* when deadline_io fires; GP_TIMER_NEVER: disarmed */
    /* accepting (worker.c) */
    bool accepting; /* the listeners are watched */
    struct gp_fresh {
        gp_conn *c;
        uint64_t until_ms;
    } * fresh; /* accepted, no byte handled yet: one per free thread */
    int num_fresh;
    int fifo_turns; /* turns left of waiting for one event at a time (worker.c, pace_batch) */
    uint64_t accept_resume_ms; /* after EMFILE: not before this */
    uint64_t emfile_warned_ms;
    gp_timer accept_timer;        /* ends a pause */
    gp_scoreboard *sb;            /* the other workers' slots, for balancing */
    size_t share_conns;           /* num_conns as last published */
    bool share_open;              /* open_to_accept as last published */
    bool at_conn_limit;           /* holds --worker-connections (logged at debug) */
    bool share_recheck;           /* read the others' slots again */
    bool stand_aside;             /* holding clearly more than another open worker */
    gp_conn *conns; /* every live connection */
    gp_conn *dead;  /* closed during this turn, freed after it */
    gp_conn *free_conns;
    gp_bufpool bufs;    /* read and output buffers for reuse */
    gp_stream_env env;  /* what every stream of this worker shares */
    size_t num_conns;
    bool stopping;
    double stop_deadline; /* when stopping: cut what is still open */
    int active_async;     /* requests whose app runs as a task (ASGI) */
    int spare_fd;
    gp_slot *slot;
    double now;
    uint64_t now_ms;
    uint64_t max_requests;  /* this worker's --max-requests plus its jitter; 0: none */
    char date_lines[2][48]; /* "Date: Thu, 26 Nov 2026 20:42:13 GMT\r\n", double-buffered */
    atomic_int date_idx;    /* for request threads that read it while the loop ticks */
    size_t date_len;
    gp_pool *pool; /* request threads; NULL without --threads */
    int access_fd;
    bool access_log_failed; /* warned once; quiet until a line is written again */
    /* the access log or --log-slow on: requests are recorded (accesslog.h) */
    bool alog_on;
    const struct gp_alog_format *alog_fmt; /* --access-log-format, compiled */
    uint64_t log_slow_us;                  /* --log-slow in microseconds; 0: off */
    /* requests and busy time counted into the slot: they feed /metrics and
     * the adaptive workers' decisions */
    bool count_busy;
    int pid;                               /* getpid() is a system call each time */
    pid_t master_pid;       /* orphaned when getppid() differs */
    int wake_fd;            /* the master's eventfd, -1 when none */
    bool retire_asked;      /* the master was asked for a replacement */
    struct gp_static *statics; /* --static mounts, NULL when none (static.c) */
    /* gp_static_serve, called through this: static.c answers through conn.h,
     * so conn.c naming it would make a circle */
    int (*static_serve)(struct gp_static *s, gp_conn *c, const gp_http_request *req);
    double proxy_warned;    /* last warning about an untrusted peer on a PROXY listener */
    gp_http_header headers[GP_HTTP_MAX_HEADERS];
};

/* An exchange of another protocol (exchange.h) is handed to its table; an
 * HTTP/1.1 connection pays one predictable branch per call (conn.c, h1.c). */
#define XRET(c, call)                                                                              \
    do {                                                                                           \
        if (__builtin_expect((c)->xops != NULL, 0)) return (c)->xops->call;                        \
    } while (0)
#define XVOID(c, call)                                                                             \
    do {                                                                                           \
        if (__builtin_expect((c)->xops != NULL, 0)) {                                              \
            (c)->xops->call;                                                                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* conn.c, for h1.c: the exchange's output and its async watching */
/* Writes what is queued: gp_stream_flush, and an async app's idle deadline
 * once all is out. GP_OK, GP_AGAIN, GP_ERROR. */
int gp_conn_flush_queued(gp_conn *c);
/* An async exchange with no output waiting: --body-timeout while its app
 * waits for body bytes, else no deadline. */
void gp_conn_async_idle_deadline(gp_conn *c);

/* h1.c, for worker.c */
/* What a request thread does with a connection it is handed. */
enum gp_thread_job { GP_JOB_START, GP_JOB_RESUME, GP_JOB_ABORT };
/* The request-thread job of a connection (gp_pool_ops.run and .done). */
void gp_conn_job_run(gp_job *j, gp_http_header *headers, gp_thread_slot *ts);
void gp_conn_job_done(gp_job *j);
int gp_conn_out_append(gp_conn *c, const void *p, size_t n);
void gp_conn_async_rewatch(gp_conn *c);
/* h1.c, for a protocol an HTTP/1.1 exchange upgrades to (ws_conn.c). The
 * exchange stays HTTP/1.1's while its app runs as a task (CS_ASYNC); the
 * stream's events go to the new protocol's table (whose on_event is
 * usually gp_conn_async_event), and HTTP/1.1 calls these hooks. When the
 * app is done, HTTP/1.1 takes the stream back to close it. */
typedef struct gp_upgrade_hooks {
    void (*on_input)(gp_conn *c);  /* bytes in s.buf, or the peer left */
    int (*on_drained)(gp_conn *c); /* all written: GP_AGAIN when it queued more */
    void (*free)(gp_conn *c);      /* the connection closes */
} gp_upgrade_hooks;
/* Before gp_conn_head_end of the 101: the head says "Upgrade: p->name", and
 * from head_end on writes are the new protocol's bytes, unframed. */
void gp_conn_upgrade(gp_conn *c, const struct gp_proto *p, const gp_upgrade_hooks *h, void *state);
/* After the 101 went out: the stream's events go to p. */
void gp_conn_upgrade_begin(gp_conn *c);
void *gp_conn_upgrade_state(gp_conn *c);
/* After a TLS handshake: the protocol ALPN chose ("h2": HTTP/2 takes the
 * stream; anything else stays HTTP/1.1). */
void gp_conn_tls_ready(gp_stream *s);
/* HTTP/1.1's handling of a stream event while the app runs as a task. */
void gp_conn_async_event(gp_stream *s, uint32_t events);
/* The stream of a connection, and back (every accepted stream is a gp_conn's). */
static inline gp_stream *gp_conn_stream(gp_conn *c)
{
    return &c->s;
}
static inline gp_conn *gp_stream_conn(gp_stream *s)
{
    return (gp_conn *)((char *)s - offsetof(gp_conn, s));
}
bool gp_conn_in_app(gp_conn *c);     /* open, the app running as a task */
bool gp_conn_reading(gp_conn *c);    /* and it asked for input */
bool gp_conn_input_gone(gp_conn *c); /* the peer closed or reset */
bool gp_conn_closed(gp_conn *c);
const gp_config *gp_conn_config(gp_conn *c);
const gp_app_ops *gp_conn_app_ops(gp_conn *c, void **app);
/* worker.c, for h1.c */
gp_conn *gp_conn_new(gp_worker *w, int fd, int listener, const struct sockaddr_storage *peer,
                     socklen_t peer_len);
void gp_conn_close(gp_conn *c);
void gp_conn_on_event(gp_io *io, uint32_t events);
void gp_conn_on_timeout(gp_conn *c);
/* When c times out: gp_stream_set_deadline. */
static inline void gp_conn_set_deadline(gp_conn *c, double at)
{
    gp_stream_set_deadline(&c->s, at);
}
void gp_conn_on_stop(gp_conn *c);
static inline double gp_now(void)
{
    return (double)gp_monotonic_ms() / 1000.0;
}
/* Reads the clock into w->now and w->now_ms, and beats the heartbeat. */
static inline void gp_worker_update_clock(gp_worker *w)
{
    w->now_ms = gp_monotonic_ms();
    w->now = (double)w->now_ms / 1000.0;
    atomic_store_explicit(&w->slot->heartbeat_ms, w->now_ms, memory_order_relaxed);
}
/* Graceful stop: no more accepting; idle connections close soon, busy ones
 * after their response. */
void gp_worker_stop(gp_worker *w);
/* Asks the master for a replacement, recording why (enum gp_retire_reason);
 * the worker serves on until the master's TERM, once the new one is ready. */
void gp_worker_retire(gp_worker *w, int reason);

/* The stream environment of w, from its loop, timers, buffers and clock. */
static inline void gp_worker_env_init(gp_worker *w)
{
    w->env.loop = &w->loop;
    w->env.timers = &w->timers;
    w->env.bufs = &w->bufs;
    w->env.now = &w->now;
    w->env.now_ms = &w->now_ms;
    w->env.send_timeout = &w->cfg->send_timeout;
}

#endif
