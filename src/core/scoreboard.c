/* scoreboard: a shared mapping of a memfd; see scoreboard.h. */
#include "core/scoreboard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static size_t scoreboard_size(int n)
{
    return sizeof(gp_scoreboard) + (size_t)n * sizeof(gp_slot);
}

gp_scoreboard *gp_scoreboard_create(int num_slots)
{
    size_t size = scoreboard_size(num_slots);
    int fd = memfd_create("gallop-scoreboard", MFD_CLOEXEC);
    if (fd < 0) return NULL;
    gp_scoreboard *sb = MAP_FAILED;
    if (ftruncate(fd, (off_t)size) == 0)
        sb = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sb == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    sb->fd = fd;
    sb->num_slots = num_slots; /* the file starts zeroed: every slot GP_WS_EMPTY */
    return sb;
}

gp_scoreboard *gp_scoreboard_attach(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) return NULL;
    if ((size_t)st.st_size < sizeof(gp_scoreboard)) {
        errno = EINVAL;
        return NULL;
    }
    gp_scoreboard *sb =
        mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sb == MAP_FAILED) return NULL;
    if (sb->num_slots < 1 || scoreboard_size(sb->num_slots) != (size_t)st.st_size ||
        sb->fd != fd) {
        munmap(sb, (size_t)st.st_size);
        errno = EINVAL;
        return NULL;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC); /* the app's own children get none of it */
    return sb;
}

void gp_scoreboard_destroy(gp_scoreboard *sb)
{
    if (!sb) return;
    int fd = sb->fd;
    munmap(sb, scoreboard_size(sb->num_slots));
    close(fd);
}

uint64_t gp_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* req_what is written between these two: a reader that saw an odd or a
 * changed sequence reads again. */
static unsigned what_open(gp_slot *s)
{
    unsigned seq = atomic_load_explicit(&s->what_seq, memory_order_relaxed);
    atomic_store_explicit(&s->what_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    return seq;
}

static void what_close(gp_slot *s, unsigned seq)
{
    atomic_store_explicit(&s->what_seq, seq + 2, memory_order_release);
}

void gp_slot_request_begin(gp_slot *s, uint64_t now_ms, const char *method, size_t mlen,
                           const char *target, size_t tlen)
{
    unsigned seq = what_open(s);
    if (mlen > 16) mlen = 16;
    if (mlen + 1 + tlen >= GP_SLOT_WHAT) tlen = GP_SLOT_WHAT - mlen - 2;
    memcpy(s->req_what, method, mlen);
    s->req_what[mlen] = ' ';
    memcpy(s->req_what + mlen + 1, target, tlen);
    s->req_what[mlen + 1 + tlen] = 0;
    what_close(s, seq);
    atomic_store_explicit(&s->req_start_ms, now_ms ? now_ms : 1, memory_order_relaxed);
}

void gp_slot_task_publish(gp_slot *s, uint64_t start_ms, const char *what)
{
    if (start_ms) {
        unsigned seq = what_open(s);
        snprintf(s->req_what, sizeof s->req_what, "%s", what);
        what_close(s, seq);
    }
    atomic_store_explicit(&s->task_start_ms, start_ms, memory_order_relaxed);
}

void gp_slot_request_end(gp_slot *s, uint64_t bytes, int failed)
{
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
    if (failed) atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
}

static uint64_t read_what(gp_slot *s, _Atomic uint64_t *start_ms, char *what, size_t len)
{
    for (int tries = 0; tries < 8; tries++) {
        unsigned a = atomic_load_explicit(&s->what_seq, memory_order_acquire);
        uint64_t start = atomic_load_explicit(start_ms, memory_order_relaxed);
        if (a & 1) continue;
        size_t n = len < GP_SLOT_WHAT ? len : GP_SLOT_WHAT;
        memcpy(what, s->req_what, n);
        what[n - 1] = 0;
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->what_seq, memory_order_relaxed) == a) return start;
    }
    what[0] = 0;
    return atomic_load_explicit(start_ms, memory_order_relaxed);
}

uint64_t gp_slot_request_read(gp_slot *s, char *what, size_t len)
{
    return read_what(s, &s->req_start_ms, what, len);
}

uint64_t gp_slot_task_read(gp_slot *s, char *what, size_t len)
{
    return read_what(s, &s->task_start_ms, what, len);
}
