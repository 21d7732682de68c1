/* stream: see stream.h. The plain transport is here too: TCP through
 * recv, writev and sendfile. */
#include "core/stream.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/proto.h"

#define SENDFILE_MAX (1 << 20)

/* ---- the plain transport ---------------------------------------------------- */

static ssize_t plain_read(void *t, void *buf, size_t n)
{
    gp_stream *s = t;
    for (;;) {
        ssize_t r = recv(s->io.fd, buf, n, 0);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

static ssize_t plain_writev(void *t, const struct iovec *iov, int n, bool more)
{
    gp_stream *s = t;
    for (;;) {
        /* a head before a file: MSG_MORE lets the kernel put the two in the
         * same segments instead of sending the head alone */
        ssize_t r = more && n == 1
                        ? send(s->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_MORE | MSG_NOSIGNAL)
                        : writev(s->io.fd, iov, n);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

static ssize_t plain_sendfile(void *t, int fd, off_t *off, size_t n)
{
    gp_stream *s = t;
    for (;;) {
        ssize_t r = sendfile(s->io.fd, fd, off, n);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

static int plain_shutdown(void *t)
{
    gp_stream *s = t;
    return shutdown(s->io.fd, SHUT_WR) < 0 ? -errno : 0;
}

const gp_transport gp_transport_plain = {
    .name = "tcp",
    .read = plain_read,
    .writev = plain_writev,
    .sendfile = plain_sendfile,
    .shutdown = plain_shutdown,
};

/* ---- deadlines -------------------------------------------------------------- */

/* Whole milliseconds, rounded up: a timer never fires before its deadline. */
static uint64_t deadline_ms(double at)
{
    return (uint64_t)(at * 1000.0) + 1;
}

/* The heap key only ever moves earlier here; a later deadline is just stored,
 * and the timer moves itself to it when it fires (on_timer), so pushing the
 * deadline on every request and write costs no heap work. */
void gp_stream_set_deadline(gp_stream *s, double at)
{
    s->deadline = at;
    uint64_t ms = deadline_ms(at);
    if (!gp_timer_armed(&s->timer) || ms < s->timer.at) gp_timer_set(s->env->timers, &s->timer, ms);
}

/* flush may run on a request thread, which must not touch the loop's heap:
 * its store is only read back when the timer fires. */
static void write_deadline(gp_stream *s)
{
    double at = *s->env->now + *s->env->send_timeout;
    if (s->off_loop) s->deadline = at;
    else gp_stream_set_deadline(s, at);
}

static void on_timer(gp_timer *t)
{
    gp_stream *s = (gp_stream *)((char *)t - offsetof(gp_stream, timer));
    gp_timers *timers = s->env->timers;
    uint64_t now_ms = *s->env->now_ms;
    if (s->off_loop) { /* its thread owns it: look again in a second */
        gp_timer_set(timers, t, now_ms + 1000);
        return;
    }
    uint64_t due = deadline_ms(s->deadline);
    if (due > now_ms) { /* postponed since it was armed */
        gp_timer_set(timers, t, due);
        return;
    }
    s->proto->on_timeout(s);
    /* still open with a deadline that did not move: never a busy loop */
    if (!s->closed && !gp_timer_armed(t)) gp_timer_set(timers, t, now_ms + 1000);
}

/* ---- lifetime ----------------------------------------------------------------- */

void gp_stream_init(gp_stream *s, gp_stream_env *env, int fd)
{
    s->io.fd = fd;
    s->io.cb = gp_stream_on_io;
    s->tr = &gp_transport_plain;
    s->t = s;
    s->env = env;
    s->file_fd = -1;
    s->timer.cb = on_timer;
}

void gp_stream_set_transport(gp_stream *s, const gp_transport *tr, void *t)
{
    s->tr = tr;
    s->t = t;
    s->handshaking = tr->handshake != NULL;
}

void gp_stream_set_proto(gp_stream *s, const gp_proto *p)
{
    s->proto = p;
}

int gp_stream_watch(gp_stream *s, uint32_t events)
{
    s->asked = events;
    if (s->tr->wants) events |= s->tr->wants(s->t);
    return events ? gp_loop_watch(s->env->loop, &s->io, events)
                  : gp_loop_unwatch(s->env->loop, &s->io);
}

/* The most times one event is handed on for input the transport already
 * holds, so one stream cannot keep the loop. */
#define PENDING_ROUNDS 16

void gp_stream_on_io(gp_io *io, uint32_t events)
{
    gp_stream *s = (gp_stream *)io;
    if (s->closed) return;
    if (s->handshaking) {
        int r = s->tr->handshake(s->t);
        if (r == GP_AGAIN) {
            if (gp_stream_watch(s, s->asked) < 0) s->proto->on_close(s);
            return;
        }
        if (r != GP_OK) {
            s->proto->on_close(s);
            return;
        }
        s->handshaking = false;
        if (s->env->ready) s->env->ready(s);
        if (s->closed) return;
        gp_stream_watch(s, s->asked); /* without what the handshake wanted */
        events = EPOLLIN;
    }
    s->proto->on_event(s, events);
    /* bytes the transport decrypted ahead are invisible to epoll */
    for (int i = 0; s->tr->pending && i < PENDING_ROUNDS; i++) {
        if (s->closed || !(s->asked & EPOLLIN) || !s->tr->pending(s->t)) break;
        s->proto->on_event(s, EPOLLIN);
    }
}

void gp_stream_shutdown(gp_stream *s)
{
    s->tr->shutdown(s->t);
}

void gp_stream_close(gp_stream *s)
{
    if (s->closed) return;
    s->closed = true;
    /* out of epoll before the close: a child the app forked may hold a copy
     * of the descriptor, and the registration would outlive our close */
    gp_loop_unwatch(s->env->loop, &s->io);
    if (s->tr->free) s->tr->free(s->t);
    close(s->io.fd);
    gp_timer_stop(s->env->timers, &s->timer);
    gp_stream_in_release(s);
    gp_stream_out_release(s);
}

int gp_stream_wait(gp_stream *s, short events, int timeout_ms)
{
    struct pollfd p = {.fd = s->io.fd, .events = events};
    int n;
    if ((events & POLLIN) && gp_stream_has_pending(s)) return 1;
    do n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    return n;
}

/* ---- input -------------------------------------------------------------------- */

ssize_t gp_stream_read(gp_stream *s, void *dst, size_t n)
{
    return s->tr->read(s->t, dst, n);
}

bool gp_stream_has_pending(gp_stream *s)
{
    return s->tr->pending && s->tr->pending(s->t) > 0;
}

int gp_stream_in_ensure(gp_stream *s)
{
    if (s->buf) return 0;
    if (!(s->buf = gp_bufpool_get(s->env->bufs))) return -ENOMEM;
    s->cap = GP_IO_BUF_SIZE;
    s->len = s->rpos = 0;
    return 0;
}

ssize_t gp_stream_in_fill(gp_stream *s)
{
    ssize_t n = s->tr->read(s->t, s->buf + s->len, s->cap - s->len);
    if (n > 0) s->len += (size_t)n;
    return n;
}

void gp_stream_in_compact(gp_stream *s)
{
    if (!s->rpos) return;
    memmove(s->buf, s->buf + s->rpos, s->len - s->rpos);
    s->len -= s->rpos;
    s->rpos = 0;
}

void gp_stream_in_release(gp_stream *s)
{
    gp_bufpool_release(s->env->bufs, &s->buf, &s->cap);
}

/* ---- output ------------------------------------------------------------------- */

int gp_stream_out_reserve(gp_stream *s, size_t n)
{
    if (!s->out) {
        s->out = gp_bufpool_get(s->env->bufs);
        if (!s->out) return GP_ERROR;
        s->out_cap = GP_IO_BUF_SIZE;
        s->out_len = s->out_pos = 0;
    }
    if (s->out_len + n <= s->out_cap) return GP_OK;
    if (s->out_pos) {
        memmove(s->out, s->out + s->out_pos, s->out_len - s->out_pos);
        s->out_len -= s->out_pos;
        s->out_pos = 0;
        if (s->out_len + n <= s->out_cap) return GP_OK;
    }
    size_t want = s->out_cap;
    while (want < s->out_len + n) want *= 2;
    if (want > 4 * GP_IO_BUF_SIZE) return GP_ERROR;
    char *nb = malloc(want);
    if (!nb) return GP_ERROR;
    memcpy(nb, s->out, s->out_len);
    gp_bufpool_release(s->env->bufs, &s->out, &s->out_cap);
    s->out = nb;
    s->out_cap = want;
    return GP_OK;
}

int gp_stream_out_append(gp_stream *s, const void *p, size_t n)
{
    if (gp_stream_out_reserve(s, n)) return GP_ERROR;
    gp_stream_out_put(s, p, n);
    return GP_OK;
}

ssize_t gp_stream_write(gp_stream *s, const void *p, size_t n)
{
    struct iovec v = {(void *)p, n};
    return s->tr->writev(s->t, &v, 1, false);
}

void gp_stream_out_release(gp_stream *s)
{
    gp_bufpool_release(s->env->bufs, &s->out, &s->out_cap);
    s->out_len = s->out_pos = 0;
}

void gp_stream_drop_queued(gp_stream *s)
{
    s->file_fd = -1;
    s->pend_len = s->file_left = 0;
    s->crlf_after = false;
}

/* Writes out, then pend, then the file, as far as the transport takes them. */
int gp_stream_flush(gp_stream *s)
{
    for (;;) {
        size_t out_left = s->out_len - s->out_pos;
        ssize_t n;
        if (out_left || s->pend_len) {
            struct iovec iov[2];
            int cnt = 0;
            if (out_left) iov[cnt++] = (struct iovec){s->out + s->out_pos, out_left};
            if (s->pend_len) iov[cnt++] = (struct iovec){(void *)s->pend, s->pend_len};
            n = s->tr->writev(s->t, iov, cnt, s->file_left != 0);
            if (n < 0) {
                if (n == -EAGAIN) return GP_AGAIN;
                s->broken = true;
                return GP_ERROR;
            }
            write_deadline(s);
            size_t k = (size_t)n;
            size_t from_out = k < out_left ? k : out_left;
            s->out_pos += from_out;
            k -= from_out;
            s->pend += k;
            s->pend_len -= k;
            if (s->out_pos == s->out_len) s->out_pos = s->out_len = 0;
        } else if (s->file_left) {
            size_t want = s->file_left < SENDFILE_MAX ? (size_t)s->file_left : SENDFILE_MAX;
            n = s->tr->sendfile(s->t, s->file_fd, &s->file_off, want);
            if (n < 0) {
                if (n == -EAGAIN) return GP_AGAIN;
                s->broken = true;
                return GP_ERROR;
            }
            if (n == 0) { /* the file shrank under us: the framing is now a lie */
                s->broken = true;
                return GP_ERROR;
            }
            write_deadline(s);
            s->file_left -= (uint64_t)n;
        } else if (s->crlf_after) {
            s->crlf_after = false;
            if (gp_stream_out_reserve(s, 2)) return GP_ERROR;
            GP_STREAM_OUT_LIT(s, "\r\n");
        } else {
            s->pend = NULL;
            s->file_fd = -1;
            return GP_OK;
        }
    }
}
