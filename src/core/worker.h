/* worker: one worker process's event loop. Accepts on the inherited listeners,
 * reads and parses requests, hands them to the app bridge, writes responses as
 * sockets drain, and stops gracefully on TERM. Knows nothing of Python. */
#ifndef GP_WORKER_H
#define GP_WORKER_H

#include "core/conn.h"
#include "core/master.h"

typedef struct gp_worker gp_worker;

/* Serves until stopped; returns the exit status for the worker process. */
int gp_worker_run(const gp_worker_args *args, const gp_app_ops *ops, void *app);

/* The same, in pieces, for a bridge that drives the loop from its own (an
 * asyncio loop watching gp_worker_fd): create, run the app's start-up, then
 * accept, then a turn (timeout 0) each time the fd is readable until
 * gp_worker_turn returns 0. */
gp_worker *gp_worker_create(const gp_worker_args *args, const gp_app_ops *ops, void *app);
int gp_worker_fd(gp_worker *w);
int gp_worker_accept(gp_worker *w);
int gp_worker_turn(gp_worker *w, int timeout_ms);
int gp_worker_done(gp_worker *w);
/* Called (on the loop's thread) when the worker takes SIGINT, before it
 * stops gracefully: gunicorn's worker_int hook. */
void gp_worker_set_int_hook(void (*hook)(void));

/* Seconds left of the graceful timeout once stopping; the whole timeout before. */
double gp_worker_stop_left(const gp_worker *w);

#endif
