/* conn_h1: the struct of an HTTP/1.1 connection and its exchange, private
 * to its one owner, which is split over five files by job: conn.c (the
 * exchange's conn.h calls: head, framing, writes; other protocols'
 * exchanges), conn_body.c (the request body), h1.c (the connection: heads,
 * dispatch, the response cycle, async apps, upgrades, the conns set),
 * h1_log.c (each request's log line and timing) and h1_thread.c (request
 * threads). No other file includes this (make check-api fails if one does:
 * CONN_H1_OWNERS); others use h1.h, conn.h and exchange.h. */
#ifndef GP_CONN_H1_H
#define GP_CONN_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/body.h"
#include "core/conn.h"
#include "core/exchange.h"
#include "core/h1.h"
#include "core/proxyproto.h"
#include "core/scoreboard.h"
#include "core/stream.h"
#include "core/worker_env.h"

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
    gp_stream s;        /* first member: the loop hands us back this pointer; the
                         * socket, its buffers, the output queue and the deadline */
    gp_worker_env *env; /* the worker's, read on every request */
    gp_conns *cs;       /* the set it belongs to */
    const struct gp_exchange_ops
        *xops; /* NULL: HTTP/1.1's own; else another protocol's (exchange.h) */
    void *xstate;
    struct gp_tls *xtls;  /* another protocol's exchange: the TLS session of its connection */
    gp_conn *prev, *next; /* in cs->open, or a free list */
    gp_job job;           /* request-thread queues (pool.h) */
    enum gp_conn_state state;
    bool dead;       /* closed this turn; freed after the batch */
    bool want_input; /* CS_ASYNC: the app waits for body bytes or a disconnect */
    /* upgraded (WebSocket, ws_conn.c): its hooks, protocol and state */
    const struct gp_upgrade_hooks *up;
    const struct gp_proto *up_proto;
    void *up_state;
    bool peer_gone; /* CS_ASYNC: the client closed or reset */
    bool keep_alive;
    const gp_conn_listener *listener;
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
    int own_fd; /* a file the core opened for this response (static.c), -1: none */
    void *app_state;
    void *app_cache;

    /* access log and --log-slow: what the request leaves for its line
     * (accesslog.h), kept at dispatch; allocated once per connection */
    struct gp_alog_rec *alog;
    bool alog_pending;   /* dispatched, its line not written yet */
    uint64_t m_start_us; /* --metrics-bind: when this request's head was in; 0: none counted */
    uint64_t task_ms;    /* runs_as_tasks: when the app's task for this request began */

    /* --threads (h1_thread.c) */
    struct gp_thread_slot *tslot; /* while a request thread runs the app for it */
    unsigned char thread_job;     /* enum gp_thread_job: what that thread is to do */
    gp_app_status thread_st;      /* what the app answered there, for the loop */
    char what[GP_SLOT_WHAT];      /* "GET /path", kept while the response waits on the socket */
};
_Static_assert(offsetof(struct gp_conn, s) == 0, "h1.h casts between a gp_conn and its stream");

/* The connections of one worker (h1.h). */
struct gp_conns {
    gp_worker_env *env;
    gp_conn *open; /* every live connection */
    gp_conn *dead; /* closed during this turn, freed after it */
    gp_conn *free_conns;
    size_t count;           /* open */
    int active_async;       /* requests whose app runs as a task (ASGI) */
    double proxy_warned;    /* last warning about an untrusted peer on a PROXY listener */
    bool access_log_failed; /* warned once; quiet until a line is written again */
    gp_http_header headers[GP_HTTP_MAX_HEADERS]; /* the loop's parse of a head */
};

/* An exchange of another protocol (exchange.h) is handed to its table; an
 * HTTP/1.1 connection pays one predictable branch per call (conn.c,
 * conn_body.c, h1.c). */
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

/* conn.c, for the other owner files: the exchange's output, its async
 * watching, a blocking wait */
/* Writes what is queued: gp_stream_flush, and an async app's idle deadline
 * once all is out. GP_OK, GP_AGAIN, GP_ERROR. */
int gp_conn_flush_queued(gp_conn *c);
/* Blocks the calling thread until the socket is ready for events (POLLIN,
 * POLLOUT), at most timeout_ms; the app's blocking hook lets its other
 * threads run meanwhile. Returns poll's result (conn.c, for conn_body.c). */
int gp_conn_wait_fd(gp_conn *c, short events, int timeout_ms);
/* An async exchange with no output waiting: --body-timeout while its app
 * waits for body bytes, else no deadline. */
void gp_conn_async_idle_deadline(gp_conn *c);

/* What a request thread does with a connection it is handed (h1_thread.c). */
enum gp_thread_job { GP_JOB_START, GP_JOB_RESUME, GP_JOB_ABORT };

#endif
