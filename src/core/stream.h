/* stream: one accepted connection's bytes, below any protocol. Owns the
 * socket's registration in the loop, the input buffer, the output queue (a
 * buffer, then caller-owned bytes, then a file for sendfile), flushing, the
 * deadline timer, shutdown and close. Moves bytes through a transport
 * (plain TCP here, TLS in tls.c), and hands events to the protocol above
 * it through its table (proto.h), never by name.
 *
 * Never parses, never frames, never knows HTTP or the app; never blocks
 * (gp_stream_wait is the one exception, for the bridge's blocking calls). */
#ifndef GP_STREAM_H
#define GP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/bufpool.h"
#include "core/loop.h"
#include "core/retcode.h"
#include "core/timer.h"

typedef struct gp_stream gp_stream;
typedef struct gp_proto gp_proto; /* proto.h */

/* How bytes cross the wire. t is the transport's own state (the plain
 * transport's is the stream itself). Every call is non-blocking; EINTR is
 * retried inside. Returns as noted, never sets errno for the caller. */
typedef struct gp_transport {
    const char *name; /* "tcp", "tls" */
    /* > 0 bytes read, 0 at EOF, -EAGAIN, or another -errno */
    ssize_t (*read)(void *t, void *buf, size_t n);
    /* bytes written (> 0), -EAGAIN, or -errno. more: a file follows at
     * once, so the transport may hold a short write back to coalesce it
     * (MSG_MORE). */
    ssize_t (*writev)(void *t, const struct iovec *iov, int n, bool more);
    /* Up to n bytes of fd from *off (advanced): bytes (> 0), 0 when the file
     * ended early, -EAGAIN or -errno. TLS: kTLS, or a bounded copy. */
    ssize_t (*sendfile)(void *t, int fd, off_t *off, size_t n);
    /* Ends our side (TLS: close_notify, then SHUT_WR). 0 or -errno. */
    int (*shutdown)(void *t);
    /* Epoll events the transport itself needs now, added to the
     * protocol's (TLS: EPOLLOUT while a read needs to write). NULL: none. */
    uint32_t (*wants)(void *t);
    /* Bytes the transport holds that a read returns without the socket
     * (TLS records already decrypted): poll(2) on the fd would not see them.
     * NULL: none ever. */
    size_t (*pending)(void *t);
    /* Runs the handshake on: GP_OK when done, GP_AGAIN (watch wants()),
     * GP_ERROR (the stream is closed by its protocol's on_close). NULL: no
     * handshake. */
    int (*handshake)(void *t);
    /* Releases t; the stream closes the descriptor itself afterwards. */
    void (*free)(void *t);
} gp_transport;

extern const gp_transport gp_transport_plain;

/* What every stream of a worker shares: the loop it is watched by, the
 * timer heap, the buffer pool and the clock. Owned by the worker. */
typedef struct gp_stream_env {
    gp_loop *loop;
    gp_timers *timers;
    gp_bufpool *bufs;
    const double *now;          /* monotonic seconds, the loop's clock */
    const uint64_t *now_ms;     /* the same in milliseconds, as the timers count */
    const double *send_timeout; /* a write that moves bytes pushes the deadline this far */
    /* After a transport's handshake, before the first event reaches the
     * protocol: where the protocol is chosen (ALPN "h2"). NULL: keep it. */
    void (*ready)(gp_stream *s);
} gp_stream_env;

struct gp_stream {
    gp_io io; /* first member: the loop hands this pointer back */
    const gp_transport *tr;
    void *t;
    const gp_proto *proto; /* gets the events (proto.h) */
    gp_stream_env *env;

    /* input: buf[0..len) read, buf[rpos..len) not yet consumed; the
     * protocol consumes (rpos) and compacts */
    char *buf;
    size_t cap, len, rpos;

    /* output, sent in this order: out[out_pos..out_len), pend (bytes the
     * caller keeps alive until drained), file_left bytes of file_fd, then a
     * CRLF when crlf_after (HTTP/1.1's chunk end after a sendfile) */
    char *out;
    size_t out_cap, out_len, out_pos;
    const char *pend;
    size_t pend_len;
    int file_fd; /* -1 when none */
    off_t file_off;
    uint64_t file_left;
    bool crlf_after;

    bool broken;      /* a write failed: the peer is gone or the stream unusable */
    bool handshaking; /* the transport's handshake is not done */
    bool off_loop;    /* a request thread writes: deadlines are stored, not armed */
    bool closed;
    uint32_t asked;  /* the protocol's events (gp_stream_watch), without the transport's */
    double deadline; /* monotonic seconds; see gp_stream_set_deadline */
    gp_timer timer;
};

/* A stream on fd (non-blocking), plain transport, not yet watched, no
 * protocol yet (set one before watching). */
void gp_stream_init(gp_stream *s, gp_stream_env *env, int fd);
/* Puts a transport under the stream (TLS right after accept); with a
 * handshake, it runs before the protocol sees any event. The events watched
 * include the transport's wants from the next gp_stream_watch on: call
 * gp_stream_watch(s, s->asked) after this when the stream is watched already. */
void gp_stream_set_transport(gp_stream *s, const gp_transport *tr, void *t);
/* Who gets the events from now on (an upgrade swaps it). */
void gp_stream_set_proto(gp_stream *s, const gp_proto *p);

/* The loop callback of every stream (io.cb): runs a pending handshake, then
 * the protocol's on_event. */
void gp_stream_on_io(gp_io *io, uint32_t events);

/* Waits for these events (EPOLLIN, EPOLLOUT), plus what the transport
 * wants; 0 takes the stream out of the loop (a registered socket reports
 * hang-ups even with no events asked). 0 or -errno. */
int gp_stream_watch(gp_stream *s, uint32_t events);

/* When the protocol's on_timeout runs (monotonic seconds, as env->now),
 * earlier or later than before. A plain store to s->deadline is honoured
 * only when it is later than what was set before (the timer moves itself
 * when it fires). Loop thread only, unless off_loop. */
void gp_stream_set_deadline(gp_stream *s, double at);

/* ---- input ---- */
/* Reads into dst: > 0 bytes, 0 at EOF, -EAGAIN, -errno. */
ssize_t gp_stream_read(gp_stream *s, void *dst, size_t n);
/* Whether a read would return bytes without the socket (see pending). */
bool gp_stream_has_pending(gp_stream *s);
/* Gives the stream an input buffer (GP_IO_BUF_SIZE, from the pool) when it
 * has none: 0 or -ENOMEM. */
int gp_stream_in_ensure(gp_stream *s);
/* Reads what fits into buf[len..cap): as gp_stream_read, len advanced. */
ssize_t gp_stream_in_fill(gp_stream *s);
/* Moves buf[rpos..len) to the front. */
void gp_stream_in_compact(gp_stream *s);
/* Gives the input buffer back (pool or free). */
void gp_stream_in_release(gp_stream *s);

/* ---- output ---- */
/* Room for n more bytes in out (taken from the pool, grown up to 4 x
 * GP_IO_BUF_SIZE): GP_OK or GP_ERROR. */
int gp_stream_out_reserve(gp_stream *s, size_t n);
/* Appends after gp_stream_out_reserve made room. */
static inline void gp_stream_out_put(gp_stream *s, const void *p, size_t n)
{
    if (n) memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
}
#define GP_STREAM_OUT_LIT(s, lit) gp_stream_out_put(s, lit, sizeof(lit) - 1)
/* Reserve and put: GP_OK or GP_ERROR. */
int gp_stream_out_append(gp_stream *s, const void *p, size_t n);
/* Queues caller-owned bytes after out, kept alive by the caller until the
 * stream drained them. */
static inline void gp_stream_queue_ref(gp_stream *s, const void *p, size_t n)
{
    s->pend = p;
    s->pend_len = n;
}
/* Queues n bytes of fd from off after out and pend. */
static inline void gp_stream_queue_file(gp_stream *s, int fd, off_t off, uint64_t n)
{
    s->file_fd = fd;
    s->file_off = off;
    s->file_left = n;
}
/* Anything not yet written. */
static inline bool gp_stream_output_pending(const gp_stream *s)
{
    return s->out_len > s->out_pos || s->pend_len || s->file_left || s->crlf_after;
}
/* Forgets what is queued (not out's bytes): pend, the file, crlf_after. */
void gp_stream_drop_queued(gp_stream *s);
/* Writes as far as the transport takes: GP_OK (all out), GP_AGAIN (watch
 * EPOLLOUT), GP_ERROR (broken set). Each write that moves bytes pushes the
 * deadline to now + send_timeout. */
int gp_stream_flush(gp_stream *s);
/* Writes p now, around the queue, which must be empty (HTTP/1.1's "100
 * Continue"): bytes written, -EAGAIN or -errno. */
ssize_t gp_stream_write(gp_stream *s, const void *p, size_t n);
/* Gives the output buffer back (pool or free) and empties it. */
void gp_stream_out_release(gp_stream *s);

/* Blocks the calling thread until the socket is ready for events (POLLIN,
 * POLLOUT), at most timeout_ms: poll's result (> 0 ready, 0 timeout, < 0). */
int gp_stream_wait(gp_stream *s, short events, int timeout_ms);

/* Ends our side of the stream (the transport's shutdown). */
void gp_stream_shutdown(gp_stream *s);
/* Out of the loop, transport released, descriptor closed, timer stopped,
 * buffers back to the pool. The memory stays the owner's. Idempotent. */
void gp_stream_close(gp_stream *s);

#endif
