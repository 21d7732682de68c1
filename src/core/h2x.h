/* h2x: one HTTP/2 stream as the bridge sees a request (an "exchange"): the
 * calls of conn.h (head, write, flush, sendfile, end with trailers, body
 * reads, app done, error responses) done over a gp_h2_stream, and the
 * running of the app (gp_app_ops) per stream: start once the head is in
 * (and, for an app that reads its body without waiting, once the body is
 * in too), resume when the stream's buffer drained, readable when body
 * bytes came, abort when the peer reset it.
 *
 * The exchange layer that gives the bridge a gp_conn for each of these
 * calls gp_h2x_* from its gp_conn_* functions; the owner of the connection
 * (h2_conn) passes gp_h2x_session_ops to the session. Never knows Python,
 * never touches a socket: output goes out through the owner's pump. */
#ifndef GP_H2X_H
#define GP_H2X_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/conn.h"
#include "core/h2.h"

typedef struct gp_h2x gp_h2x;

/* What every exchange of one connection shares (owned by the connection). */
typedef struct {
    const gp_app_ops *ops;
    void *app;
    void *owner;
    /* The gp_conn the bridge is handed for x (the exchange layer's), whose
     * request req begins. */
    gp_conn *(*conn_of)(void *owner, gp_h2x *x, const gp_http_request *req);
    /* The session has something to say (the app wrote, ended, read): it
     * goes out now, or with what the other streams say in the same turn. */
    void (*pump)(void *owner);
    /* A blocking call (write_all, a body read) waits: runs the connection's
     * I/O without starting other streams' requests, at most ms. */
    void (*wait)(void *owner, int ms);
    /* "date: ..." value for responses, and its length. */
    const char *(*date)(void *owner, size_t *len);
    /* The response is over (ended or not): status, body bytes, for the log. */
    void (*done)(void *owner, gp_h2x *x, int status, uint64_t bytes);
    /* --static: answers req on c when its path is under a mount (1), before
     * the app; NULL: none. */
    int (*serve_static)(void *owner, gp_conn *c, const gp_http_request *req);
    size_t body_mem;  /* --body-buffer-size: held in memory up to this, then a file */
    bool hold_body;   /* the app reads the body without waiting: read it whole first */
    int body_timeout_ms;
    /* Writes what the session has to say now: a flush, a blocking write.
     * NULL: pump does. */
    void (*flush)(void *owner);
} gp_h2x_env;

/* The session callbacks that make each stream an exchange (host: the env). */
extern const gp_h2_ops gp_h2x_session_ops;

/* The gp_conn conn_of gave for x (the owner frees it in done). */
gp_conn *gp_h2x_conn(gp_h2x *x);

/* The conn.h calls, on an exchange (same meanings and return values). */
void *gp_h2x_app_state(gp_h2x *x);
void gp_h2x_set_app_state(gp_h2x *x, void *state);
int gp_h2x_head_begin(gp_h2x *x, const char *status, size_t status_len);
int gp_h2x_head_begin_status(gp_h2x *x, int status);
int gp_h2x_head_add(gp_h2x *x, const char *name, size_t name_len, const char *value,
                    size_t value_len);
void gp_h2x_head_set_length(gp_h2x *x, uint64_t length);
int gp_h2x_head_end(gp_h2x *x);
int gp_h2x_head_sent(gp_h2x *x);
int gp_h2x_write(gp_h2x *x, const void *data, size_t len);
int gp_h2x_write_all(gp_h2x *x, const void *data, size_t len);
int gp_h2x_sendfile(gp_h2x *x, int fd, off_t offset, uint64_t len);
void gp_h2x_adopt_fd(gp_h2x *x, int fd);
int gp_h2x_flush(gp_h2x *x);
void gp_h2x_end_response(gp_h2x *x);
void gp_h2x_end_response_trailers(gp_h2x *x, const char *fields, size_t len);
void gp_h2x_set_close(gp_h2x *x);
void gp_h2x_send_error(gp_h2x *x, int status, int close_after);
ssize_t gp_h2x_body_read(gp_h2x *x, char *dst, size_t n);
ssize_t gp_h2x_body_read_nb(gp_h2x *x, char *dst, size_t n);
int gp_h2x_body_done(gp_h2x *x);
int gp_h2x_body_would_block(gp_h2x *x);
int gp_h2x_body_error_status(gp_h2x *x);
void gp_h2x_wait_input(gp_h2x *x, int on);
int gp_h2x_peer_gone(gp_h2x *x);
void gp_h2x_app_done(gp_h2x *x);

#endif
