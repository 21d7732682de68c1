/* worker: one worker process's event loop. Accepts on the inherited listeners,
 * reads and parses requests, hands them to the app bridge, writes responses as
 * sockets drain, and stops gracefully on TERM. Knows nothing of Python. */
#ifndef GP_WORKER_H
#define GP_WORKER_H

#include "core/conn.h"
#include "core/master.h"

/* Serves until stopped; returns the exit status for the worker process. */
int gp_worker_run(const gp_worker_args *args, const gp_app_ops *ops, void *app);

#endif
