/* exchange: how a protocol other than HTTP/1.1 gives the bridge requests.
 *
 * An exchange is one request and its response: what the bridge holds as a
 * gp_conn and drives through conn.h. HTTP/1.1 (conn.c) has one exchange per
 * connection at a time and does the work of every conn.h call itself. A
 * protocol with many exchanges on one stream (HTTP/2: one per h2 stream)
 * makes a gp_conn per exchange with gp_exchange_new and a table of its own:
 * every conn.h call that frames, writes or reads the request body is then
 * handed to that table, so the bridge sees what it sees today. What is not
 * the protocol's (the client's address, the listener, proxy headers, the
 * bridge's app_state and app_cache slots) works the same on every exchange.
 *
 * The protocol starts the app with env->ops->start(env->app, x, &req) (as
 * HTTP/1.1 does), resumes it with ops->resume once output drained after
 * GP_AGAIN / GP_APP_PENDING, and aborts with ops->abort when the peer
 * resets the exchange. It frees the exchange with gp_exchange_free once the
 * app is done (app_done, or start/resume returned GP_APP_DONE) or aborted.
 * Every call is on the loop's thread (an HTTP/2 protocol leaves --threads to
 * HTTP/1.1: a table whose calls must run on the loop cannot serve a request
 * thread). WebSocket upgrades (gp_ws_begin) are HTTP/1.1's only. */
#ifndef GP_EXCHANGE_H
#define GP_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/conn.h"
#include "core/stream.h"

struct gp_worker_env;

/* The conn.h calls an exchange's protocol implements; each has the
 * meaning and return values of the conn.h call of the same name. */
typedef struct gp_exchange_ops {
    int (*head_begin)(gp_conn *x, const char *status, size_t status_len);
    int (*head_add)(gp_conn *x, const char *name, size_t name_len, const char *value,
                    size_t value_len);
    void (*head_set_length)(gp_conn *x, uint64_t length);
    int (*head_end)(gp_conn *x);
    int (*head_sent)(gp_conn *x);
    int (*write)(gp_conn *x, const void *data, size_t len);
    int (*write_all)(gp_conn *x, const void *data, size_t len);
    int (*sendfile)(gp_conn *x, int fd, off_t offset, uint64_t len);
    int (*flush)(gp_conn *x);
    /* end_response and end_response_trailers (fields NULL, len 0: none) */
    void (*end_response)(gp_conn *x, const char *fields, size_t len);
    void (*set_close)(gp_conn *x);
    void (*send_error)(gp_conn *x, int status, int close_after);
    /* body_read (block) and body_read_nb (!block) */
    ssize_t (*body_read)(gp_conn *x, char *dst, size_t n, bool block);
    int (*body_done)(gp_conn *x);
    int (*body_would_block)(gp_conn *x);
    int (*body_error_status)(gp_conn *x);
    void (*wait_input)(gp_conn *x, int on);
    int (*peer_gone)(gp_conn *x);
    void (*app_done)(gp_conn *x);
    void (*adopt_fd)(gp_conn *x, int fd);
} gp_exchange_ops;

/* A new exchange on the connection whose stream is parent (its peer,
 * listener and proxy trust are copied), handled by ops, with the
 * protocol's state. NULL when out of memory. Loop thread only. */
gp_conn *gp_exchange_new(gp_stream *parent, const gp_exchange_ops *ops, void *state);
/* The protocol's state given to gp_exchange_new. */
void *gp_exchange_state(gp_conn *x);
/* What the worker gave the exchange's connection (worker_env.h: its ops,
 * app, cfg). */
struct gp_worker_env *gp_exchange_env(gp_conn *x);
/* The request of x began (req as handed to the app): its access-log record
 * and metrics start, as HTTP/1.1's do. */
void gp_exchange_begin(gp_conn *x, const gp_http_request *req);
/* Its response is over (ended, cut or reset): the access-log line, the
 * worker's request count (--max-requests) and metrics, with the status and
 * the body bytes sent. */
void gp_exchange_end(gp_conn *x, int status, uint64_t bytes);
/* Releases the exchange (its access-log record and the bridge's cache,
 * through gp_app_ops.cache_free). x must not be used afterwards. */
void gp_exchange_free(gp_conn *x);

#endif
