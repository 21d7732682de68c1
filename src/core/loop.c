/* loop: epoll event loop; see loop.h. */
#include "core/loop.h"

#include <errno.h>
#include <unistd.h>

int gp_loop_init(gp_loop *loop)
{
    loop->batch = GP_LOOP_BATCH;
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
    if (io->registered && events == io->events) return 0;
    if (io->registered && (io->events & EPOLLEXCLUSIVE)) {
        if (events == 0) return gp_loop_unwatch(loop, io);
        gp_loop_unwatch(loop, io);
    }
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    io->registered = true;
    io->events = events;
    return 0;
}

int gp_loop_unwatch(gp_loop *loop, gp_io *io)
{
    if (!io->registered) return 0;
    io->registered = false;
    io->events = 0;
    return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0 ? -errno : 0;
}

int gp_loop_wait(gp_loop *loop, int timeout_ms)
{
    int n = epoll_wait(loop->epfd, loop->ready, loop->batch, timeout_ms);
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
