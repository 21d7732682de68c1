/* runner: the coroutine an asyncio Task drives to run ASGI app calls.
 *
 * A runner runs app coroutines one after another, each in a fresh copy of the
 * context (as a Task of its own would), and tells the bridge the moment each
 * ends, with no done-callback round trip through the loop. Between calls it
 * waits on a future, so a keep-alive connection keeps one Task for all its
 * requests. An exception from the app is handed to the end hook and
 * swallowed; cancellation propagates and ends the runner. */
#ifndef GP_PY_RUNNER_H
#define GP_PY_RUNNER_H

#include <Python.h>
#include <stdbool.h>

enum { GP_RUNNER_RETURNED, GP_RUNNER_RAISED, GP_RUNNER_CANCELLED };

/* Called once when an app call ends. With GP_RUNNER_RAISED the exception is
 * still set: the hook logs it (PyErr_PrintEx), which clears it. */
typedef void (*gp_runner_end)(PyObject *owner, int how);

/* create_future: the loop's bound method. */
int gp_runner_init(PyObject *create_future);

PyObject *gp_runner_new(void);

/* True when the runner has nothing running or queued, so give() may be called. */
bool gp_runner_idle(PyObject *runner);

/* Queues the next app call (wakes the runner if it waits). 0, or -1 with an
 * exception. */
int gp_runner_give(PyObject *runner, PyObject *coro, PyObject *owner, gp_runner_end end);

/* No more calls: the runner ends once the queued one has. */
void gp_runner_close(PyObject *runner);

#endif
