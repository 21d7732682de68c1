/* runner: wraps an ASGI app's coroutine so the bridge learns the moment it
 * ends, without a done-callback round trip through the event loop. The Task
 * drives the runner exactly as it would the coroutine (send, throw, close);
 * an exception is logged and swallowed, cancellation propagates. */
#ifndef GP_PY_RUNNER_H
#define GP_PY_RUNNER_H

#include <Python.h>

enum { GP_RUNNER_RETURNED, GP_RUNNER_RAISED, GP_RUNNER_CANCELLED };

/* Called once when the coroutine ends. With GP_RUNNER_RAISED the exception
 * is still set: the callback logs it (PyErr_PrintEx) which clears it. */
typedef void (*gp_runner_end)(PyObject *owner, int how);

int gp_runner_init(void);
/* Makes asyncio take objects of a C type as coroutines. */
int gp_runner_register(PyTypeObject *type);
PyObject *gp_runner_new(PyObject *coro, PyObject *owner, gp_runner_end end);

#endif
