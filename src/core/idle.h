/* idle: how long the loop thread of an ASGI worker waits for events, so that
 * gallop_worker_busy_seconds_total is the time its event loop was not idle.
 *
 * The wait is not gallop's: asyncio's selector or uvloop's libuv blocks in
 * epoll_wait (or epoll_pwait) on its own descriptor. This module defines
 * those two functions in the binary (exported with -rdynamic, so the
 * interpreter's select module and libuv bind to them); each forwards to the
 * C library's and, on a thread that asked (gp_idle_track) and for a wait that
 * may block, closes the busy period before it and opens one after it. Two
 * vDSO clock reads per blocking wait, no system call of its own. It never
 * changes what the wait does or returns (errno included). */
#ifndef GP_IDLE_H
#define GP_IDLE_H

#include "core/scoreboard.h"

/* From now on the calling thread's blocking epoll waits are the idle time of
 * slot s: its busy counters (m_busy_us, m_busy_since_us) count the rest,
 * starting now. NULL stops tracking. */
void gp_idle_track(gp_slot *s);

#endif
