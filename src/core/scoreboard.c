/* scoreboard: shared anonymous mapping; see scoreboard.h. */
#include "core/scoreboard.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>

static size_t scoreboard_size(int n)
{
    return sizeof(gp_scoreboard) + (size_t)n * sizeof(gp_slot);
}

gp_scoreboard *gp_scoreboard_create(int num_slots)
{
    gp_scoreboard *sb = mmap(NULL, scoreboard_size(num_slots), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sb == MAP_FAILED) return NULL;
    sb->num_slots = num_slots; /* the mapping starts zeroed: every slot GP_WS_EMPTY */
    return sb;
}

void gp_scoreboard_destroy(gp_scoreboard *sb)
{
    if (sb) munmap(sb, scoreboard_size(sb->num_slots));
}

uint64_t gp_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void gp_slot_request_begin(gp_slot *s, uint64_t now_ms, const char *method, size_t mlen,
                           const char *target, size_t tlen)
{
    unsigned seq = atomic_load_explicit(&s->what_seq, memory_order_relaxed);
    atomic_store_explicit(&s->what_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (mlen > 16) mlen = 16;
    if (mlen + 1 + tlen >= GP_SLOT_WHAT) tlen = GP_SLOT_WHAT - mlen - 2;
    memcpy(s->req_what, method, mlen);
    s->req_what[mlen] = ' ';
    memcpy(s->req_what + mlen + 1, target, tlen);
    s->req_what[mlen + 1 + tlen] = 0;
    atomic_store_explicit(&s->what_seq, seq + 2, memory_order_release);
    atomic_store_explicit(&s->req_start_ms, now_ms ? now_ms : 1, memory_order_relaxed);
    atomic_store_explicit(&s->state, GP_WS_BUSY, memory_order_relaxed);
}

void gp_slot_request_end(gp_slot *s, uint64_t bytes, int failed)
{
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
    if (failed) atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
}

uint64_t gp_slot_request_read(gp_slot *s, char *what, size_t len)
{
    for (int tries = 0; tries < 8; tries++) {
        unsigned a = atomic_load_explicit(&s->what_seq, memory_order_acquire);
        uint64_t start = atomic_load_explicit(&s->req_start_ms, memory_order_relaxed);
        if (a & 1) continue;
        size_t n = len < GP_SLOT_WHAT ? len : GP_SLOT_WHAT;
        memcpy(what, s->req_what, n);
        what[n - 1] = 0;
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->what_seq, memory_order_relaxed) == a) return start;
    }
    what[0] = 0;
    return atomic_load_explicit(&s->req_start_ms, memory_order_relaxed);
}
