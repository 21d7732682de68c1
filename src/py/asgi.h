/* asgi: the ASGI 3 (and 2) bridge between the worker core and an async app.
 *
 * The worker core's epoll descriptor is watched by the asyncio loop; each
 * request's scope is built in C and the app runs as an asyncio Task, with
 * receive and send implemented in C: they complete at once when they can and
 * park on a future only to wait for the client. Lifespan start-up and
 * shutdown bracket the serving. */
#ifndef GP_PY_ASGI_H
#define GP_PY_ASGI_H

#include <Python.h>

#include "core/master.h"

/* Runs the worker with an ASGI app until it stops; returns the exit code. */
int gp_asgi_run(const gp_worker_args *args, PyObject *app, int asgi2);

/* For the driver (asgi_driver.c): builds the bridge and the worker core it
 * serves through; returns the worker, or NULL (with a Python error set, or
 * after logging). *state is the lifespan state dict. */
typedef struct gp_worker gp_worker;
gp_worker *gp_asgi_bridge(const gp_worker_args *args, PyObject *app, int asgi2, PyObject *loop,
                          PyObject **state);
/* The loop's reader callback: one turn of the core; done gets its result once
 * the worker has stopped. 0, or -1 with a Python error. */
int gp_asgi_turn(PyObject *done);

/* True when app looks like an ASGI 3 app: a coroutine function, or an object
 * whose __call__ is one. -1 with an exception set on error. */
int gp_asgi_detect(PyObject *app);

#endif
