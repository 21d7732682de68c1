/* loop: a minimal epoll event loop.
 *
 * Each watched descriptor is a gp_io embedded in its owner; the owner's
 * callback gets the ready events. Level-triggered, so a callback that leaves
 * data unread is called again on the next turn. No timers here: owners that
 * need them watch a timerfd. */
#ifndef GP_LOOP_H
#define GP_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

typedef struct gp_io gp_io;
typedef void (*gp_io_cb)(gp_io *io, uint32_t events);

struct gp_io {
    int fd;
    uint32_t events; /* what is asked for now */
    bool registered; /* known to epoll (perhaps with no events) */
    gp_io_cb cb;
};

#define GP_LOOP_BATCH 64

typedef struct {
    int epfd;
    int num_ready;
    int batch; /* the most events one wait returns: GP_LOOP_BATCH, or fewer */
    struct epoll_event ready[GP_LOOP_BATCH];
} gp_loop;

int gp_loop_init(gp_loop *loop);
void gp_loop_close(gp_loop *loop);

/* Registers io->fd or changes what it waits for (an EPOLLEXCLUSIVE
 * registration, which cannot be modified, is removed and added again).
 * events 0 keeps the fd registered; hang-ups are still reported then.
 * Returns 0 or -errno. Unwatch before close(): a process the app forked may
 * share the descriptor, and the registration lives as long as any copy. */
int gp_loop_watch(gp_loop *loop, gp_io *io, uint32_t events);

/* Removes io->fd from the loop. */
int gp_loop_unwatch(gp_loop *loop, gp_io *io);

/* Waits up to timeout_ms (-1: forever) for ready descriptors, without running
 * anything, so a caller can drop a lock around the wait alone. Returns the
 * number ready, or -errno (EINTR is not an error: 0). At most loop->batch
 * are returned: with 1, the kernel's ready list (each level-triggered fd
 * queues again at its tail once reported) orders the work by readiness. */
int gp_loop_wait(gp_loop *loop, int timeout_ms);

/* Runs the callbacks of what the last wait found ready. */
void gp_loop_dispatch(gp_loop *loop);

#endif
