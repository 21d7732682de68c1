/* conn: one exchange (a request and its response), as the app bridge sees it.
 *
 * The worker core owns the socket, the buffers and the HTTP framing; the
 * bridge (WSGI, ASGI) gets a parsed request through gp_app_ops.start, pulls
 * the body with gp_conn_body_read, and hands the response over with the head
 * and write calls below. Nothing here knows Python.
 *
 * A gp_conn is an HTTP/1.1 connection's exchange (conn.c frames it, h1.c
 * runs the connection), or an exchange of another protocol on a shared
 * stream (one per HTTP/2 stream): that protocol makes it with
 * gp_exchange_new and a gp_exchange_ops table, and every call below that
 * frames, writes or reads the body goes to that table (exchange.h says how
 * a protocol provides exchanges). The bridge cannot tell them apart. */
#ifndef GP_CONN_H
#define GP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "core/forwarded.h"
#include "core/http_parser.h"
#include "core/listen.h"
#include "core/retcode.h" /* GP_OK, GP_AGAIN, GP_ERROR: the write and app calls' codes */

typedef struct gp_conn gp_conn;


/* What the bridge tells the core after start or resume. */
typedef enum {
    GP_APP_DONE,    /* the response was ended (gp_conn_end_response) or abandoned */
    GP_APP_PENDING, /* a write returned GP_AGAIN: call resume once the socket drained */
    GP_APP_ASYNC,   /* the app runs on after start returns (a task on another loop); it
                       ends with gp_conn_app_done, or the core calls abort */
} gp_app_status;

typedef struct {
    /* A request head arrived. req points into the connection's buffer and is
     * valid only during this call. */
    gp_app_status (*start)(void *app, gp_conn *c, const gp_http_request *req);
    /* The socket drained after GP_APP_PENDING, or after a GP_AGAIN write of
     * an async app: produce more of the response. */
    gp_app_status (*resume)(void *app, gp_conn *c);
    /* The connection died while the app's response was pending: release it. */
    void (*abort)(void *app, gp_conn *c);
    /* Around the loop's wait, so the app's threads can run (the GIL). */
    void (*before_wait)(void *app);
    void (*after_wait)(void *app);
    /* Around any wait that blocks the calling thread inside start or resume
     * (a body read, a blocking write): entering 1, then 0. */
    void (*blocking)(void *app, int entering);
    /* With request threads (--threads): called once in each thread before its
     * first request; start, resume and abort are then called on those
     * threads, never on the loop's. Writes return GP_AGAIN there as on the
     * loop (gp_conn_write_all still waits), and a GP_APP_PENDING response
     * is sent by the loop, then resumed on a thread. */
    void (*thread_init)(void *app);
    /* Async apps: input arrived (or the peer left) after gp_conn_wait_input. */
    void (*readable)(void *app, gp_conn *c);
    /* WebSocket (core/ws_conn): a whole message; data is valid during the call. */
    void (*ws_message)(void *app, gp_conn *c, int binary, const char *data, size_t len);
    /* WebSocket: the peer closed (its code, 1005 for none), broke the protocol
     * (the code we closed with), vanished (1006), or the worker is stopping
     * (1001). The app should end; call gp_conn_app_done when it has. */
    void (*ws_closed)(void *app, gp_conn *c, unsigned code);
    /* start only schedules the app (GP_APP_ASYNC): the core then keeps no
     * per-request record for --timeout, whose loop heartbeat covers it. */
    bool runs_as_tasks;
    /* Releases what gp_conn_set_app_cache stored. */
    void (*cache_free)(void *app, void *cache);
    /* runs_as_tasks: "GET /path" of the request c's app runs now, or NULL
     * (gallop top names the oldest; called once a second, on the loop). */
    const char *(*describe)(void *app, gp_conn *c);
    /* runs_as_tasks: calls fn(arg) once the tasks ready to run now have run
     * (asyncio: call_soon), so that the core sends what they answer
     * together (HTTP/2: the replies of a connection's streams in one write).
     * The core asks again only after fn ran. 0, or -1 when it cannot (the
     * core then does the work at once). NULL: the core never waits. */
    int (*soon)(void *app, void (*fn)(void *arg), void *arg);
} gp_app_ops;

/* Per-connection slot for something the bridge keeps for the connection's
 * whole life (the client address as a Python object, say); released through
 * gp_app_ops.cache_free when the connection closes. */
void *gp_conn_app_cache(gp_conn *c);
void gp_conn_set_app_cache(gp_conn *c, void *cache);

/* Per-connection slot for the bridge's state of the response in progress. */
void *gp_conn_app_state(gp_conn *c);
void gp_conn_set_app_state(gp_conn *c, void *state);

/* "GET /path" of a request, cut to fit cap bytes with its NUL, for logs. */
void gp_conn_describe(char *dst, size_t cap, const gp_http_request *req);

/* Who and where. */
const struct sockaddr *gp_conn_peer(gp_conn *c, socklen_t *len);
/* The connection's TLS (core/tls.h: version, client certificate); NULL: plain. */
struct gp_tls *gp_conn_tls(gp_conn *c);
const gp_addr *gp_conn_local(gp_conn *c);

/* What a trusted peer's proxy headers say about this request (README "Behind
 * a proxy"; req as given to start). False when nothing applies. Callers test
 * req->proxy_headers first: without such a field there is nothing to call
 * for. Any thread. */
bool gp_conn_forwarded(gp_conn *c, const gp_http_request *req, gp_fwd *out);

/* Request body. A sync app (no --threads, not run as tasks) gets it from
 * what the core read whole before start (--body-buffer-size), without
 * waiting. Otherwise blocks (up to --body-timeout) when nothing is buffered;
 * sends "100 Continue" first when the client asked for it. Returns bytes read
 * into dst (> 0), 0 at the end of the body, or a negative code below after
 * which the connection will close. */
enum {
    GP_BODY_CLOSED = -1,
    GP_BODY_BAD = -2,
    GP_BODY_TOO_LARGE = -3,
    GP_BODY_TIMEOUT = -4,
    GP_BODY_AGAIN = -5
};
ssize_t gp_conn_body_read(gp_conn *c, char *dst, size_t n);
/* The HTTP status matching a body error code (400, 413, 408), 0 when none. */
int gp_conn_body_error_status(gp_conn *c);

/* True once the whole request body has been read. */
int gp_conn_body_done(gp_conn *c);

/* True when no request-body bytes are buffered, so a body read may block. */
int gp_conn_body_would_block(gp_conn *c);

/* Whether a header would be accepted by gp_conn_head_add (token name; value
 * without CR, LF or other control bytes). */
int gp_conn_field_ok(const char *name, size_t name_len, const char *value, size_t value_len);

/* Response head. status is "200 OK" as the app wrote it (already validated to
 * start with 3 digits and a space). add_header validates the bytes (token
 * name; no CR, LF or other control byte in the value) and returns GP_ERROR when
 * they are bad, or when the head outgrows its buffer. Content-Length sets the
 * framing; hop-by-hop fields (Connection, Transfer-Encoding, Keep-Alive) are
 * the server's business and are not passed through. */
int gp_conn_head_begin(gp_conn *c, const char *status, size_t status_len);
/* The same from a status code, with the standard reason phrase. */
int gp_conn_head_begin_status(gp_conn *c, int status);
int gp_conn_head_add(gp_conn *c, const char *name, size_t name_len, const char *value,
                     size_t value_len);
/* Sets Content-Length when the app gave none and the body is known in full. */
void gp_conn_head_set_length(gp_conn *c, uint64_t length);
/* Completes the head (Date, Server, framing). Nothing is sent before the first
 * write or the end of the response. */
int gp_conn_head_end(gp_conn *c);
int gp_conn_head_sent(gp_conn *c); /* head_end was called */

/* Body bytes. GP_OK: consumed (copied or written). GP_AGAIN: the socket is
 * full; data may still be referenced by the core, so keep it alive and do not
 * write again before resume. GP_ERROR: the client is gone. */
int gp_conn_write(gp_conn *c, const void *data, size_t len);
/* Same, blocking until written to the socket, what was buffered before it
 * included (for WSGI's write() callable, whose pieces stream). */
int gp_conn_write_all(gp_conn *c, const void *data, size_t len);
/* Sends len bytes of fd from offset with sendfile(2). Same return values; fd
 * must stay open until the response ends or is aborted. */
int gp_conn_sendfile(gp_conn *c, int fd, off_t offset, uint64_t len);
/* The core closes fd once the response ends or the connection closes (a
 * file the core itself opened to send, as static.c does). */
void gp_conn_adopt_fd(gp_conn *c, int fd);
/* Writes what is buffered now, so a piece the app handed over reaches the
 * client before the app waits for something else (a generator that sleeps, an
 * await): streamed replies call it after each piece. The head goes out with
 * the first piece. Same return values as gp_conn_write: GP_AGAIN means the
 * socket is full and resume comes once it drained (a request thread waits
 * instead). */
int gp_conn_flush(gp_conn *c);
/* Ends the response (last chunk when chunked). The core flushes what is left. */
void gp_conn_end_response(gp_conn *c);
/* The same with trailer fields ("Name: value\r\n" lines, already validated),
 * sent only when the body is chunked. */
void gp_conn_end_response_trailers(gp_conn *c, const char *fields, size_t len);
/* The response cannot complete properly (app error mid-body): close after it. */
void gp_conn_set_close(gp_conn *c);

/* Async apps (GP_APP_ASYNC). The body without blocking: GP_BODY_AGAIN when
 * nothing is buffered (then gp_conn_wait_input(c, 1) and wait for readable). */
ssize_t gp_conn_body_read_nb(gp_conn *c, char *dst, size_t n);
void gp_conn_wait_input(gp_conn *c, int on);
int gp_conn_peer_gone(gp_conn *c);
/* The app is done with this response (ended or not): the core finishes it
 * and moves on to the next request. c must not be used after this call. */
void gp_conn_app_done(gp_conn *c);

/* A complete error response (status 400, 413, 500, 503, ...) in place of the
 * app's, when no head was sent yet. close_after forces Connection: close. */
void gp_conn_send_error(gp_conn *c, int status, int close_after);

#endif
