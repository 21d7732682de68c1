/* conn_body: an HTTP/1.1 exchange's request body as the bridge reads it
 * (conn.h): Content-Length or chunked, from what the input buffer holds and
 * then the socket, "100 Continue" when the client waits for it,
 * --limit-request-body, --body-timeout, and a body h1.c read whole before a
 * sync app ran (held). Another protocol's exchange is handed to its table.
 * Part of the connection's owner (conn_h1.h).
 *
 * Blocks only in gp_conn_body_read, the WSGI contract, and never past
 * --body-timeout (or three quarters of --timeout). */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "core/conn_h1.h"

static ssize_t body_fail(gp_conn *c, int code, int status)
{
    c->keep_alive = false;
    c->s.broken = code == GP_BODY_CLOSED;
    c->body_error = status;
    c->body_done = true;
    return code;
}

/* Waits for input. Returns 1 when readable, or a GP_BODY_* code. Gives up
 * before --timeout would kill the worker over this wait. */
static int wait_readable(gp_conn *c)
{
    const gp_config *cfg = c->env->cfg;
    double s = cfg->body_timeout;
    if (cfg->timeout > 0 && s > cfg->timeout * 0.75) s = cfg->timeout * 0.75;
    int n = gp_conn_wait_fd(c, POLLIN, (int)(s * 1000));
    if (n == 0) return GP_BODY_TIMEOUT;
    return n < 0 ? GP_BODY_CLOSED : 1;
}

static ssize_t recv_some(gp_conn *c, char *dst, size_t n)
{
    for (;;) {
        ssize_t r = gp_stream_read(&c->s, dst, n);
        if (r > 0) return r;
        if (r != -EAGAIN) return GP_BODY_CLOSED;
        int wr = wait_readable(c);
        if (wr < 0) return wr;
    }
}

static void send_continue(gp_conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->continue_sent = true;
    gp_stream_write(&c->s, msg, sizeof msg - 1);
}

static ssize_t check_body_limit(gp_conn *c, size_t got)
{
    c->body_total += got;
    unsigned long long lim = c->env->cfg->limit_request_body;
    if (lim && c->body_total > lim) return body_fail(c, GP_BODY_TOO_LARGE, 413);
    return (ssize_t)got;
}

/* recv for the body: waits (block) or answers GP_BODY_AGAIN. */
static ssize_t body_recv(gp_conn *c, char *dst, size_t n, bool block)
{
    if (block) return recv_some(c, dst, n);
    ssize_t r = gp_stream_read(&c->s, dst, n);
    if (r > 0) return r;
    if (r == -EAGAIN) return GP_BODY_AGAIN;
    c->peer_gone = true;
    return GP_BODY_CLOSED;
}

static ssize_t body_read(gp_conn *c, char *dst, size_t n, bool block)
{
    if (c->body_held) {
        ssize_t r = gp_body_read(&c->held, dst, n);
        return r < 0 ? body_fail(c, GP_BODY_BAD, 500) : r;
    }
    if (c->body_done || n == 0) return 0;
    if (c->body_late) return body_fail(c, GP_BODY_TIMEOUT, 408);
    if (c->expect_continue && !c->continue_sent && !c->head_sent && c->s.rpos == c->s.len)
        send_continue(c);
    if (c->body_kind == GP_HTTP_BODY_LENGTH) {
        if (n > c->body_left) n = (size_t)c->body_left;
        size_t avail = c->s.len - c->s.rpos;
        ssize_t got;
        if (avail) {
            got = (ssize_t)(avail < n ? avail : n);
            memcpy(dst, c->s.buf + c->s.rpos, (size_t)got);
            c->s.rpos += (size_t)got;
            /* all taken: the room is free again (an async app's loop reads
             * into it while the app runs, and stops once it is full) */
            if (c->s.rpos == c->s.len) c->s.rpos = c->s.len = c->head_len = 0;
        } else {
            got = body_recv(c, dst, n, block);
            if (got == GP_BODY_AGAIN) return got;
            if (got < 0) return body_fail(c, (int)got, got == GP_BODY_TIMEOUT ? 408 : 400);
        }
        c->body_left -= (uint64_t)got;
        if (c->body_left == 0) c->body_done = true;
        return check_body_limit(c, (size_t)got);
    }
    /* chunked: decode what is buffered, read more raw bytes when that gives nothing */
    for (;;) {
        size_t used = 0, outn = n;
        int r = GP_CHUNKED_MORE;
        if (c->s.len > c->s.rpos)
            r = gp_chunked_decode(&c->chunked, c->s.buf + c->s.rpos, c->s.len - c->s.rpos, &used,
                                  dst, &outn);
        else outn = 0;
        c->s.rpos += used;
        if (r == GP_CHUNKED_ERROR) return body_fail(c, GP_BODY_BAD, 400);
        if (r == GP_CHUNKED_DONE) c->body_done = true;
        if (outn || c->body_done) return check_body_limit(c, outn);
        /* all buffered input consumed: make room and read more */
        if (c->s.rpos == c->s.len) c->s.rpos = c->s.len = c->head_len = 0;
        if (c->s.len == c->s.cap) {
            memmove(c->s.buf, c->s.buf + c->s.rpos, c->s.len - c->s.rpos);
            c->s.len -= c->s.rpos;
            c->s.rpos = c->head_len = 0;
        }
        ssize_t got = body_recv(c, c->s.buf + c->s.len, c->s.cap - c->s.len, block);
        if (got == GP_BODY_AGAIN) return got;
        if (got < 0) return body_fail(c, (int)got, got == GP_BODY_TIMEOUT ? 408 : 400);
        c->s.len += (size_t)got;
    }
}

ssize_t gp_conn_body_read(gp_conn *c, char *dst, size_t n)
{
    XRET(c, body_read(c, dst, n, true));
    return body_read(c, dst, n, true);
}

ssize_t gp_conn_body_read_nb(gp_conn *c, char *dst, size_t n)
{
    XRET(c, body_read(c, dst, n, false));
    return body_read(c, dst, n, false);
}

int gp_conn_body_done(gp_conn *c)
{
    XRET(c, body_done(c));
    return c->body_held ? gp_body_left(&c->held) == 0 : c->body_done;
}

int gp_conn_body_would_block(gp_conn *c)
{
    XRET(c, body_would_block(c));
    return !c->body_held && !c->body_done && c->s.rpos == c->s.len;
}

int gp_conn_body_error_status(gp_conn *c)
{
    XRET(c, body_error_status(c));
    return c->body_error;
}
