/* idle: how long the loop thread of an ASGI worker waits for events, so that
 * gallop_worker_busy_seconds_total is the time its event loop was not idle.
 *
 * The wait is not gallop's: asyncio's selector or uvloop's libuv blocks in
 * epoll_wait (or epoll_pwait) on its own descriptor. gp_idle_track points
 * the loaded objects' GOT slots for those two at wrappers that forward to
 * the C library's and, on the tracked thread and for a wait that may block,
 * close the busy period before it and open one after it. Two vDSO clock
 * reads per blocking wait, no system call of its own; what the wait does and
 * returns (errno included) never changes. Nothing is installed unless
 * asked, so without --metrics-bind every call goes straight to the C
 * library as before. */
#ifndef GP_IDLE_H
#define GP_IDLE_H

#include "core/scoreboard.h"

/* From now on the calling thread's blocking epoll waits are the idle time of
 * slot s: its busy counters (m_busy_us, m_busy_since_us) count the rest,
 * starting now, and requests leave them alone (m_busy_loop). Call it once
 * the loop exists (its library loaded). Where the GOT cannot be patched
 * (not x86-64 or AArch64) it does nothing: busy stays the time with a
 * request in progress. */
void gp_idle_track(gp_slot *s);

#endif
