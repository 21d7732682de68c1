/* h1: the HTTP/1.1 connection (conn.c frames its exchanges, h1.c runs it),
 * the protocol every accepted stream starts with. What the worker and the
 * protocols a connection is handed to (WebSocket, HTTP/2) may call; the
 * struct itself is private to the files that own it (conn_h1.h).
 *
 * The worker makes connections with gp_conn_new from a gp_conns set and
 * from then on reaches each only through its stream (gp_conns_first/next)
 * and the stream's protocol table (proto.h). */
#ifndef GP_H1_H
#define GP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/conn.h"
#include "core/listen.h"
#include "core/pool.h"
#include "core/stream.h"
#include "core/worker_env.h"

struct gp_proto;
struct gp_tls_ctx;

/* The connections of one worker (h1.c owns them: their memory, recycled;
 * the list of open ones; what they share and change, such as the count of
 * async apps under --limit-concurrency). */
typedef struct gp_conns gp_conns;

gp_conns *gp_conns_new(gp_worker_env *env);
/* Closes what is open and frees every connection (tests; a worker exits). */
void gp_conns_free(gp_conns *cs);
/* Open connections, as a counter the caller keeps and reads (every turn of
 * the worker reads it: a load, not a call). */
const size_t *gp_conns_counter(const gp_conns *cs);
/* The open connections' streams, newest first. A stream's protocol may
 * close it (on_stop, on_close): take the next one before calling it. */
gp_stream *gp_conns_first(gp_conns *cs);
gp_stream *gp_conns_next(gp_stream *s);
/* Recycles the memory of what closed during this turn (after the batch of
 * events that may still name it). */
void gp_conns_recycle(gp_conns *cs);
/* The exchange whose app has run longest as a task, and since when (ms);
 * NULL when none (gallop top, once a second). */
gp_conn *gp_conns_oldest_task(gp_conns *cs, uint64_t *since_ms);

/* What a connection keeps of the listener it came from. */
typedef struct gp_conn_listener {
    const gp_addr *addr;
    struct gp_tls_ctx *tls; /* TLS listener (core/tls.h); NULL: plain */
    bool proxy;             /* --proxy-protocol: each connection starts with a PROXY header */
} gp_conn_listener;

/* A connection on the accepted socket fd, watched, HTTP/1.1 on its stream;
 * NULL (fd left open) when refused or out of memory. l outlives it. */
gp_stream *gp_conn_new(gp_conns *cs, int fd, const gp_conn_listener *l,
                       const struct sockaddr_storage *peer, socklen_t peer_len);

/* The stream of a connection, and back: the stream is its first member. */
static inline gp_stream *gp_conn_stream(gp_conn *c)
{
    return (gp_stream *)c;
}
static inline gp_conn *gp_stream_conn(gp_stream *s)
{
    return (gp_conn *)s;
}
/* When c times out: gp_stream_set_deadline. */
static inline void gp_conn_set_deadline(gp_conn *c, double at)
{
    gp_stream_set_deadline(gp_conn_stream(c), at);
}

/* The request-thread job of a connection (gp_pool_ops.run and .done). */
void gp_conn_job_run(gp_job *j, gp_http_header *headers, gp_thread_slot *ts);
void gp_conn_job_done(gp_job *j);
/* After a TLS handshake (gp_stream_env.ready): the protocol ALPN chose
 * ("h2": HTTP/2 takes the stream; anything else stays HTTP/1.1). */
void gp_conn_tls_ready(gp_stream *s);

void gp_conn_close(gp_conn *c);
void gp_conn_on_event(gp_io *io, uint32_t events);
void gp_conn_on_timeout(gp_conn *c);
void gp_conn_on_stop(gp_conn *c);
/* What the worker gave the connection. */
const gp_worker_env *gp_conn_env(gp_conn *c);
const gp_config *gp_conn_config(gp_conn *c);
const gp_app_ops *gp_conn_app_ops(gp_conn *c, void **app);

/* ---- handing the stream to another protocol ----
 * The exchange stays HTTP/1.1's while its app runs as a task (CS_ASYNC);
 * the stream's events go to the new protocol's table (whose on_event is
 * usually gp_conn_async_event), and HTTP/1.1 calls these hooks. When the
 * app is done, HTTP/1.1 takes the stream back to close it. */
typedef struct gp_upgrade_hooks {
    void (*on_input)(gp_conn *c);  /* bytes in the stream's buffer, or the peer left */
    int (*on_drained)(gp_conn *c); /* all written: GP_AGAIN when it queued more */
    void (*free)(gp_conn *c);      /* the connection closes */
} gp_upgrade_hooks;
/* Before gp_conn_head_end of the 101: the head says "Upgrade: p->name", and
 * from head_end on writes are the new protocol's bytes, unframed. */
void gp_conn_upgrade(gp_conn *c, const struct gp_proto *p, const gp_upgrade_hooks *h, void *state);
/* After the 101 went out: the stream's events go to p. */
void gp_conn_upgrade_begin(gp_conn *c);
void *gp_conn_upgrade_state(gp_conn *c);
/* HTTP/1.1's handling of a stream event while the app runs as a task. */
void gp_conn_async_event(gp_stream *s, uint32_t events);
/* Input stays watched while the app runs: the events asked again after the
 * buffer or the output changed. */
void gp_conn_async_rewatch(gp_conn *c);
bool gp_conn_in_app(gp_conn *c);     /* open, the app running as a task */
bool gp_conn_reading(gp_conn *c);    /* and it asked for input */
bool gp_conn_input_gone(gp_conn *c); /* the peer closed or reset */
bool gp_conn_closed(gp_conn *c);

#endif
