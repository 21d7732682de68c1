/* loop: a minimal epoll event loop.
 *
 * Each watched descriptor is a gp_io embedded in its owner; the owner's
 * callback gets the ready events. Level-triggered, so a callback that leaves
 * data unread is called again on the next turn. No timers here: owners that
 * need them watch a timerfd. */
#ifndef GP_LOOP_H
#define GP_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

typedef struct gp_io gp_io;
typedef void (*gp_io_cb)(gp_io *io, uint32_t events);

struct gp_io {
    int fd;
    uint32_t events; /* what is registered now; 0 when not registered */
    gp_io_cb cb;
};

#define GP_LOOP_BATCH 64

typedef struct {
    int epfd;
    int num_ready;
    struct epoll_event ready[GP_LOOP_BATCH];
} gp_loop;

int gp_loop_init(gp_loop *loop);
void gp_loop_close(gp_loop *loop);

/* Registers, changes or removes io->fd; events 0 removes. Returns 0 or -errno. */
int gp_loop_watch(gp_loop *loop, gp_io *io, uint32_t events);

/* Waits up to timeout_ms (-1: forever) for ready descriptors, without running
 * anything, so a caller can drop a lock around the wait alone. Returns the
 * number ready, or -errno (EINTR is not an error: 0). */
int gp_loop_wait(gp_loop *loop, int timeout_ms);

/* Runs the callbacks of what the last wait found ready. */
void gp_loop_dispatch(gp_loop *loop);

#endif
