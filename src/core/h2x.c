/* h2x: one HTTP/2 stream as one request of the bridge (see h2x.h).
 *
 * Owns an exchange's response state (head fields the server adds, a file
 * sent by bounded copies, the end held back behind that file), its request
 * body when it is read whole before the app runs, and the app's life on the
 * stream (start, resume, readable, abort, done). Never touches a socket and
 * never knows Python. */
#include "core/h2x.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/body.h"
#include "core/log.h"
#include "core/numfmt.h"

#define FILE_PIECE 16384

struct gp_h2x {
    gp_h2_stream *st;
    gp_h2x_env *env;
    gp_conn *c;
    void *app_state;
    gp_body body;
    bool holding;  /* reading the body whole before start */
    bool held;     /* the app reads from body, not the stream */
    bool started, pending, async, write_again, want_input, closed;
    bool core_served; /* answered by the core (--static), not the app */
    bool head_ended, has_date, has_server, has_length, ended, end_after_file;
    int status, body_error;
    uint64_t bytes;
    int file_fd, own_fd;
    off_t file_off;
    uint64_t file_left;
};

static void pump(gp_h2x *x)
{
    x->env->pump(x->env->owner);
}

/* What a flush or a blocking write promises: on the wire now. */
static void flush_now(gp_h2x *x)
{
    (x->env->flush ? x->env->flush : x->env->pump)(x->env->owner);
}

/* The exchange is over for the app: the stream is released (reset when its
 * response did not end), the log told, everything freed. */
static void finish(gp_h2x *x)
{
    gp_h2x_env *env = x->env;
    if (env->done) env->done(env->owner, x, x->status, x->bytes);
    gp_h2_stream_set_data(x->st, NULL);
    gp_h2_stream_release(x->st);
    if (x->held || x->holding) gp_body_free(&x->body);
    if (x->own_fd >= 0) close(x->own_fd);
    free(x);
    env->pump(env->owner);
}

static void after_app(gp_h2x *x, gp_app_status st)
{
    switch (st) {
    case GP_APP_DONE: finish(x); return;
    case GP_APP_PENDING: x->pending = true; break;
    case GP_APP_ASYNC: x->async = true; break;
    }
    pump(x);
}

static void start(gp_h2x *x, const gp_http_request *req)
{
    x->started = true;
    after_app(x, x->env->ops->start(x->env->app, x->c, req));
}

/* Takes in what body arrived while holding it; 1 once it is all in, 0 for
 * more to come, -1 when the exchange was answered and finished. */
static int absorb(gp_h2x *x)
{
    char buf[16384];
    for (;;) {
        ssize_t r = gp_h2_body_read(x->st, buf, sizeof buf);
        if (r > 0) {
            if (gp_body_append(&x->body, buf, (size_t)r, x->env->body_mem) == 0) continue;
            gp_warn("h2: cannot hold a request body: %s", "no memory or disk");
            gp_h2x_send_error(x, 500, 0);
        } else if (r == 0) {
            return 1;
        } else if (r == GP_H2_BODY_AGAIN) {
            gp_h2_stream_continue(x->st);
            pump(x); /* the window reopens by what was taken */
            return 0;
        } else if (r == GP_H2_BODY_TOO_LARGE) {
            gp_h2x_send_error(x, 413, 0);
        }
        finish(x);
        return -1;
    }
}

static void run_held(gp_h2x *x)
{
    gp_http_header hv[GP_HTTP_MAX_HEADERS];
    gp_http_request req;
    gp_h2_stream_request(x->st, &req, hv);
    x->holding = false;
    x->held = true;
    start(x, &req);
}

static void on_request(void *host, gp_h2_stream *st, const gp_http_request *req)
{
    gp_h2x_env *env = host;
    gp_h2x *x = calloc(1, sizeof *x);
    if (!x) {
        gp_h2_stream_release(st);
        return;
    }
    x->st = st;
    x->env = env;
    x->file_fd = x->own_fd = -1;
    gp_h2_stream_set_data(st, x);
    x->c = env->conn_of(env->owner, x, req);
    if (!x->c) {
        gp_h2_stream_set_data(st, NULL);
        gp_h2_stream_release(st); /* reset: out of memory */
        free(x);
        return;
    }
    if (env->serve_static && env->serve_static(env->owner, x->c, req)) {
        /* a file under --static, answered without the app */
        x->started = x->core_served = true;
        if (!x->file_left) finish(x);
        else pump(x);
        return;
    }
    if (env->hold_body && req->body != GP_HTTP_BODY_NONE &&
        !(req->body == GP_HTTP_BODY_LENGTH && req->content_length == 0)) {
        x->holding = true;
        gp_body_init(&x->body, NULL);
        if (absorb(x) == 1) run_held(x);
        return;
    }
    start(x, req);
}

static void on_body(void *host, gp_h2_stream *st)
{
    gp_h2x *x = gp_h2_stream_data(st);
    if (!x) return;
    if (x->holding) {
        if (absorb(x) == 1) run_held(x);
        return;
    }
    if (x->want_input && x->started) x->env->ops->readable(x->env->app, x->c);
}

static int continue_file(gp_h2x *x);

static void on_writable(void *host, gp_h2_stream *st)
{
    gp_h2x *x = gp_h2_stream_data(st);
    if (!x) return;
    int r = x->file_left ? continue_file(x) : GP_OK;
    if (x->core_served) {
        if (r != GP_AGAIN) finish(x);
        return;
    }
    if (r != GP_OK) return;
    if (x->pending) {
        x->pending = false;
        after_app(x, x->env->ops->resume(x->env->app, x->c));
    } else if (x->async && x->write_again) {
        x->write_again = false;
        x->env->ops->resume(x->env->app, x->c);
    }
}

static void on_close(void *host, gp_h2_stream *st, uint32_t code)
{
    gp_h2x *x = gp_h2_stream_data(st);
    if (!x) {
        gp_h2_stream_release(st);
        return;
    }
    x->closed = true;
    if (!x->started || x->core_served) {
        finish(x);
        return;
    }
    if (x->pending || x->async) {
        /* the peer reset it (or the connection went) with the app mid-way */
        x->env->ops->abort(x->env->app, x->c);
        finish(x);
    }
}

const gp_h2_ops gp_h2x_session_ops = {on_request, on_body, on_writable, on_close};

/* ---- the response ---- */

gp_conn *gp_h2x_conn(gp_h2x *x)
{
    return x->c;
}

void *gp_h2x_app_state(gp_h2x *x)
{
    return x->app_state;
}

void gp_h2x_set_app_state(gp_h2x *x, void *state)
{
    x->app_state = state;
}

int gp_h2x_head_begin_status(gp_h2x *x, int status)
{
    if (gp_h2_head_begin(x->st, status)) return GP_ERROR;
    x->status = status;
    return GP_OK;
}

int gp_h2x_head_begin(gp_h2x *x, const char *status, size_t status_len)
{
    if (status_len < 3) return GP_ERROR;
    int code = (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    return gp_h2x_head_begin_status(x, code);
}

int gp_h2x_head_add(gp_h2x *x, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    if (!gp_conn_field_ok(name, name_len, value, value_len)) return GP_ERROR;
    switch (name_len) {
    case 4: x->has_date |= gp_http_token_eq(name, name_len, "date"); break;
    case 6: x->has_server |= gp_http_token_eq(name, name_len, "server"); break;
    case 14: x->has_length |= gp_http_token_eq(name, name_len, "content-length"); break;
    }
    return gp_h2_head_add(x->st, name, name_len, value, value_len);
}

void gp_h2x_head_set_length(gp_h2x *x, uint64_t length)
{
    if (x->has_length) return;
    char v[24];
    size_t n = gp_put_u64(v, length, 10);
    if (gp_h2_head_add(x->st, "content-length", 14, v, n) == GP_OK) x->has_length = true;
}

int gp_h2x_head_end(gp_h2x *x)
{
    if (!x->has_date && x->env->date) {
        size_t n;
        const char *d = x->env->date(x->env->owner, &n);
        if (d && gp_h2_head_add(x->st, "date", 4, d, n)) return GP_ERROR;
    }
    if (!x->has_server && gp_h2_head_add(x->st, "server", 6, "gallop", 6)) return GP_ERROR;
    x->head_ended = true;
    return GP_OK;
}

int gp_h2x_head_sent(gp_h2x *x)
{
    return x->head_ended;
}

int gp_h2x_write(gp_h2x *x, const void *data, size_t len)
{
    if (x->closed) return GP_ERROR;
    int r = gp_h2_write(x->st, data, len);
    if (r != GP_ERROR) x->bytes += len;
    if (r == GP_AGAIN) {
        x->write_again = true;
        flush_now(x);
    }
    /* else the next flush, the end or the app's return sends it: a short
     * reply goes out as HEADERS and one DATA with END_STREAM */
    return r;
}

int gp_h2x_write_all(gp_h2x *x, const void *data, size_t len)
{
    int r = gp_h2x_write(x, data, len);
    /* waits until the peer's windows took it: a slow stream blocks only the
     * thread that writes it, the connection's other streams move meanwhile */
    while (r != GP_ERROR && gp_h2_pending(x->st) && !gp_h2_stream_closed(x->st)) {
        x->env->wait(x->env->owner, 1000);
        flush_now(x);
    }
    if (gp_h2_stream_closed(x->st)) return GP_ERROR;
    x->write_again = false;
    return r == GP_ERROR ? GP_ERROR : GP_OK;
}

/* HTTP/2 frames every DATA byte: a file goes by bounded copies, as far as
 * the stream's buffer takes them. */
static int continue_file(gp_h2x *x)
{
    char buf[FILE_PIECE];
    while (x->file_left) {
        size_t want = x->file_left < sizeof buf ? (size_t)x->file_left : sizeof buf;
        ssize_t n = pread(x->file_fd, buf, want, x->file_off);
        if (n <= 0) {
            gp_h2_reset(x->st, 2 /* INTERNAL_ERROR: the file shrank or failed */);
            x->file_left = 0;
            pump(x);
            return GP_ERROR;
        }
        x->file_off += n;
        x->file_left -= (uint64_t)n;
        int r = gp_h2x_write(x, buf, (size_t)n);
        if (r != GP_OK) return r;
    }
    if (x->end_after_file) {
        x->end_after_file = false;
        gp_h2x_end_response(x);
    }
    return GP_OK;
}

int gp_h2x_sendfile(gp_h2x *x, int fd, off_t offset, uint64_t len)
{
    x->file_fd = fd;
    x->file_off = offset;
    x->file_left = len;
    return continue_file(x);
}

void gp_h2x_adopt_fd(gp_h2x *x, int fd)
{
    x->own_fd = fd;
}

int gp_h2x_flush(gp_h2x *x)
{
    if (x->closed || gp_h2_flush(x->st)) return GP_ERROR;
    flush_now(x);
    return x->write_again ? GP_AGAIN : GP_OK;
}

void gp_h2x_end_response_trailers(gp_h2x *x, const char *fields, size_t len)
{
    if (x->file_left) {
        x->end_after_file = true;
        return;
    }
    if (!x->head_ended) gp_h2x_head_end(x);
    x->ended = true;
    gp_h2_end(x->st, fields, len);
    pump(x);
}

void gp_h2x_end_response(gp_h2x *x)
{
    gp_h2x_end_response_trailers(x, NULL, 0);
}

void gp_h2x_set_close(gp_h2x *x)
{
    /* a response that cannot complete ends its stream only (RST at release) */
}

void gp_h2x_send_error(gp_h2x *x, int status, int close_after)
{
    if (gp_h2_head_begun(x->st)) {
        /* too late for a status: the stream is cut instead */
        gp_h2_reset(x->st, 2 /* INTERNAL_ERROR */);
        x->ended = true;
        pump(x);
        return;
    }
    char body[64];
    size_t bn = (size_t)snprintf(body, sizeof body, "%s\n", gp_http_reason(status));
    if (gp_h2x_head_begin_status(x, status) ||
        gp_h2x_head_add(x, "content-type", 12, "text/plain", 10))
        return;
    gp_h2x_head_set_length(x, bn);
    gp_h2x_head_end(x);
    gp_h2x_write(x, body, bn);
    gp_h2x_end_response(x);
}

/* ---- the request body ---- */

static ssize_t body_code(gp_h2x *x, ssize_t r)
{
    if (r == GP_H2_BODY_TOO_LARGE) {
        x->body_error = 413;
        return GP_BODY_TOO_LARGE;
    }
    if (r == GP_H2_BODY_RESET) return GP_BODY_CLOSED;
    return GP_BODY_AGAIN;
}

ssize_t gp_h2x_body_read_nb(gp_h2x *x, char *dst, size_t n)
{
    if (x->held) {
        ssize_t r = gp_body_read(&x->body, dst, n);
        return r < 0 ? GP_BODY_CLOSED : r;
    }
    ssize_t r = gp_h2_body_read(x->st, dst, n);
    /* WINDOW_UPDATE, or the 100 a client waits for before its body */
    if (r > 0 || (r == GP_H2_BODY_AGAIN && gp_h2_stream_continue(x->st))) pump(x);
    return r >= 0 ? r : body_code(x, r);
}

ssize_t gp_h2x_body_read(gp_h2x *x, char *dst, size_t n)
{
    int waited = 0;
    for (;;) {
        ssize_t r = gp_h2x_body_read_nb(x, dst, n);
        if (r != GP_BODY_AGAIN) return r;
        if (x->env->body_timeout_ms && waited >= x->env->body_timeout_ms) {
            x->body_error = 408;
            return GP_BODY_TIMEOUT;
        }
        x->env->wait(x->env->owner, 100);
        waited += 100;
    }
}

int gp_h2x_body_done(gp_h2x *x)
{
    return x->held ? gp_body_left(&x->body) == 0 : gp_h2_body_done(x->st);
}

int gp_h2x_body_would_block(gp_h2x *x)
{
    return !x->held && !gp_h2_body_buffered(x->st) && !gp_h2_body_done(x->st);
}

int gp_h2x_body_error_status(gp_h2x *x)
{
    return x->body_error;
}

void gp_h2x_wait_input(gp_h2x *x, int on)
{
    x->want_input = on != 0;
}

int gp_h2x_peer_gone(gp_h2x *x)
{
    return x->closed || gp_h2_stream_closed(x->st);
}

void gp_h2x_app_done(gp_h2x *x)
{
    x->async = x->pending = false;
    finish(x);
}
