/* runner: the coroutine an asyncio Task drives to run one ASGI app call.
 *
 * Each request (and each WebSocket session) gets an asyncio Task of its own,
 * as under uvicorn, so asyncio.current_task() and the Task's context belong
 * to that request alone. The Task drives a runner rather than the app's
 * coroutine so that the bridge hears the moment the app ends (no done
 * callback through the loop) and each time it is about to wait (to flush
 * what it sent). An exception from the app, SystemExit and
 * KeyboardInterrupt included, goes to the end hook and ends the Task
 * normally; only cancellation propagates. */
#ifndef GP_PY_RUNNER_H
#define GP_PY_RUNNER_H

#include <Python.h>
#include <stdbool.h>

enum { GP_RUNNER_RETURNED, GP_RUNNER_RAISED, GP_RUNNER_CANCELLED };

/* Called once when an app call ends, if it ever started. With
 * GP_RUNNER_RAISED the exception is still set: the hook logs it with
 * gp_bridge_print_error, which clears it. */
typedef void (*gp_runner_end)(PyObject *owner, int how);
/* Called each time the app's coroutine suspends (it waits for the loop). */
typedef void (*gp_runner_yield)(PyObject *owner);

int gp_runner_init(void);

PyObject *gp_runner_new(void);

/* Hands the runner its app call. 0, or -1 with an exception. */
int gp_runner_give(PyObject *runner, PyObject *coro, PyObject *owner, gp_runner_end end);
void gp_runner_on_yield(PyObject *runner, gp_runner_yield yielded);

/* Kept for the callers that queue one call and close: a runner runs one. */
void gp_runner_close(PyObject *runner);

/* True while the runner's app coroutine is being stepped: code running now
 * runs in that call's Task. */
bool gp_runner_running(PyObject *runner);

/* Creating the Task failed: the end hook will not run. Returns false when
 * it has run already (a task factory that stepped the runner). */
bool gp_runner_disarm(PyObject *runner);

/* Makes a C type a coroutine: its own awaitable, stepped by am_send (send()
 * and next() too), with its own throw() (METH_FASTCALL) and close(); then
 * readies it and registers it with collections.abc.Coroutine, which is what
 * asyncio.iscoroutine (create_task, ensure_future, gather) checks. The type
 * gives its name, size, flags and dealloc; the rest is filled here.
 * 0, or -1 with an exception. */
int gp_runner_coroutine_type(PyTypeObject *type, sendfunc am_send, PyCFunction throw_fn,
                             PyCFunction close_fn);
/* Raises what a coroutine's throw(type[, value[, tb]]) was given. */
void gp_runner_set_thrown(PyObject *const *args, Py_ssize_t nargs);

#endif
