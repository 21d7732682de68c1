/* h2_conn: HTTP/2 on a stream (see h2_conn.h).
 *
 * Owns the session of one connection and the pumping of bytes between it and
 * the stream: input read to EAGAIN and fed whole, output coalesced into the
 * stream's buffer and written with as few writes as the kernel allows. Owns
 * the connection's deadline: idle (no stream open), a client that takes no
 * bytes, a stream's window shut too long. Never parses frames itself (h2.c),
 * never touches the socket but through the stream. */
#include "core/h2_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "core/log.h"

struct gp_h2_conn {
    gp_stream *s;
    gp_h2 *h;
    gp_h2_conn_times times;
    double idle_since;    /* when the last stream closed (or the connection opened) */
    double blocked_since; /* output waiting on the socket since; 0: not waiting */
    size_t blocked_left;  /* bytes that were waiting then */
    bool stopping, eof;
    bool freeing; /* the session's last events run: nothing more is written */
    int in_event; /* inside gp_h2_conn_event (nested by a blocking app call) */
};

static double now(const gp_h2_conn *hc)
{
    return *hc->s->env->now;
}

gp_h2_conn *gp_h2_conn_new(gp_stream *s, const gp_h2_ops *ops, void *host, const gp_h2_limits *lim,
                           const gp_h2_conn_times *times, const char *peer)
{
    gp_h2_conn *hc = calloc(1, sizeof *hc);
    if (!hc) return NULL;
    hc->s = s;
    hc->times = *times;
    hc->h = gp_h2_new(ops, host, lim, peer);
    if (!hc->h) {
        free(hc);
        return NULL;
    }
    hc->idle_since = now(hc);
    return hc;
}

gp_h2 *gp_h2_conn_session(gp_h2_conn *hc)
{
    return hc->h;
}

void gp_h2_conn_free(gp_h2_conn *hc)
{
    if (!hc) return;
    hc->freeing = true;
    gp_h2_free(hc->h);
    free(hc);
}

static size_t output_left(const gp_stream *s)
{
    return (s->out_len - s->out_pos) + s->pend_len;
}

/* The next deadline: the earliest of idle, a blocked write, a stall. */
static void arm(gp_h2_conn *hc, long stall_ms)
{
    double t = 0, n = now(hc);
    if (!gp_h2_open_streams(hc->h) && hc->times.idle > 0) t = hc->idle_since + hc->times.idle;
    if (hc->blocked_since) {
        double b = hc->blocked_since + hc->times.stall;
        if (!t || b < t) t = b;
    }
    if (stall_ms >= 0) {
        double st = n + (double)stall_ms / 1000.0;
        if (!t || st < t) t = st;
    }
    if (!t) t = n + 3600; /* nothing can expire: look again later anyway */
    gp_stream_set_deadline(hc->s, t);
}

/* Moves the session's output into the stream and writes it. nghttp2's own
 * buffer is handed over as caller-owned bytes (pend) when the stream's is
 * full: it stays valid until the next output call, which waits until it
 * was written. */
int gp_h2_conn_pump(gp_h2_conn *hc)
{
    gp_stream *s = hc->s;
    if (s->broken || hc->freeing) return GP_ERROR;
    /* first, so that a stream it resets says so in this output */
    long stall = gp_h2_tick(hc->h, (uint64_t)(now(hc) * 1000), (uint64_t)(hc->times.stall * 1000));
    for (;;) {
        if (s->pend_len) {
            int r = gp_stream_flush(s);
            if (r == GP_ERROR) return GP_ERROR;
            if (r == GP_AGAIN) break;
        }
        const uint8_t *d;
        ssize_t n = gp_h2_output(hc->h, &d);
        if (n < 0) return GP_ERROR;
        if (n == 0) break;
        if (gp_stream_out_reserve(s, (size_t)n) == GP_OK) {
            gp_stream_out_put(s, d, (size_t)n);
            continue;
        }
        gp_stream_queue_ref(s, d, (size_t)n);
    }
    int r = gp_stream_output_pending(s) ? gp_stream_flush(s) : GP_OK;
    if (r == GP_ERROR) return GP_ERROR;
    if (r == GP_AGAIN) {
        size_t left = output_left(s);
        if (!hc->blocked_since || left < hc->blocked_left) hc->blocked_since = now(hc);
        hc->blocked_left = left;
    } else {
        hc->blocked_since = 0;
    }
    if (!gp_h2_open_streams(hc->h) && !hc->idle_since) hc->idle_since = now(hc);
    if (gp_h2_open_streams(hc->h)) hc->idle_since = 0;
    if (r == GP_OK && (gp_h2_done(hc->h) || hc->eof)) return GP_ERROR; /* over: close */
    uint32_t ev = hc->eof ? 0 : EPOLLIN;
    if (r == GP_AGAIN) ev |= EPOLLOUT;
    if (gp_stream_watch(s, ev)) return GP_ERROR;
    arm(hc, stall);
    return GP_OK;
}

/* Reads until the socket is dry, feeding the session as bytes come. */
static int read_all(gp_h2_conn *hc)
{
    gp_stream *s = hc->s;
    if (gp_stream_in_ensure(s)) return GP_ERROR;
    /* bytes before rpos were another protocol's (an upgrade's HTTP/1.1
     * head): gone, so that it does not see them again either */
    if (s->rpos >= s->len) s->rpos = s->len = 0;
    for (;;) {
        if (s->len > s->rpos) {
            int r = gp_h2_feed(hc->h, s->buf + s->rpos, s->len - s->rpos);
            s->rpos = s->len = 0;
            if (r != GP_OK) return GP_ERROR;
        }
        ssize_t n = gp_stream_in_fill(s);
        if (n == -EAGAIN) return GP_OK;
        if (n <= 0) {
            /* the client left: what is in flight can no longer reach it */
            hc->eof = true;
            return GP_ERROR;
        }
    }
}

bool gp_h2_conn_busy(const gp_h2_conn *hc)
{
    return hc->in_event > 0;
}

int gp_h2_conn_event(gp_h2_conn *hc, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        hc->in_event++;
        int r = read_all(hc);
        hc->in_event--;
        if (r != GP_OK) {
            /* a broken session may still have a GOAWAY to say */
            if (!hc->eof) gp_h2_conn_pump(hc);
            return GP_ERROR;
        }
    }
    return gp_h2_conn_pump(hc);
}

int gp_h2_conn_timeout(gp_h2_conn *hc)
{
    double n = now(hc);
    if (hc->blocked_since && n >= hc->blocked_since + hc->times.stall) {
        gp_info("h2: the client took no bytes for %.0f s: closed", hc->times.stall);
        return GP_ERROR;
    }
    if (!gp_h2_open_streams(hc->h) && hc->idle_since && hc->times.idle > 0 &&
        n >= hc->idle_since + hc->times.idle) {
        if (hc->stopping) return GP_ERROR;
        gp_h2_shutdown(hc->h);
        hc->stopping = true;
        /* the GOAWAY goes out; the close follows at once */
        gp_h2_conn_pump(hc);
        return GP_ERROR;
    }
    return gp_h2_conn_pump(hc);
}

int gp_h2_conn_stop(gp_h2_conn *hc)
{
    hc->stopping = true;
    gp_h2_shutdown(hc->h);
    int r = gp_h2_conn_pump(hc);
    if (r == GP_OK && !gp_h2_open_streams(hc->h) && !gp_stream_output_pending(hc->s))
        return GP_ERROR; /* nothing in flight: close now */
    return r;
}
