/* scoreboard: memory shared by the master and its workers, created before fork.
 *
 * One slot per worker, written only by that worker, read by the master. No
 * locks: single-writer fields, read with relaxed atomics. */
#ifndef GP_SCOREBOARD_H
#define GP_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

enum gp_worker_state { GP_WS_EMPTY, GP_WS_BOOTING, GP_WS_IDLE, GP_WS_BUSY, GP_WS_STOPPING };

typedef struct {
    _Atomic pid_t pid;
    _Atomic int state;
    _Atomic uint64_t requests;
} gp_slot;

typedef struct {
    atomic_int load_error_reported; /* first worker that fails to load the app prints why */
    int num_slots;
    gp_slot slots[];
} gp_scoreboard;

gp_scoreboard *gp_scoreboard_create(int num_slots);
void gp_scoreboard_destroy(gp_scoreboard *sb);

#endif
