/* loop: epoll event loop; see loop.h. */
#include "core/loop.h"

#include <errno.h>
#include <unistd.h>

int gp_loop_init(gp_loop *loop)
{
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    return loop->epfd < 0 ? -errno : 0;
}

void gp_loop_close(gp_loop *loop)
{
    if (loop->epfd >= 0) close(loop->epfd);
    loop->epfd = -1;
}

int gp_loop_watch(gp_loop *loop, gp_io *io, uint32_t events)
{
    if (events == io->events) return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op = events == 0 ? EPOLL_CTL_DEL : io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0) return -errno;
    io->events = events;
    return 0;
}

int gp_loop_wait(gp_loop *loop, int timeout_ms)
{
    int n = epoll_wait(loop->epfd, loop->ready, GP_LOOP_BATCH, timeout_ms);
    loop->num_ready = n > 0 ? n : 0;
    if (n < 0) return errno == EINTR ? 0 : -errno;
    return n;
}

void gp_loop_dispatch(gp_loop *loop)
{
    for (int i = 0; i < loop->num_ready; i++) {
        gp_io *io = loop->ready[i].data.ptr;
        io->cb(io, loop->ready[i].events);
    }
    loop->num_ready = 0;
}
