/* hooks: gunicorn's server hooks from a Python config file (--config-hooks).
 *
 * The worker's interpreter executes the config file again (the master only
 * read its settings) and calls post_fork(server, worker) before the app is
 * imported, post_worker_init(worker) once it is, pre_request(worker, req) and
 * post_request(worker, req, environ, resp) around each request, and
 * worker_int(worker) when it takes INT, worker_abort(worker) on the master's
 * timeout signal, worker_exit(server, worker) when the worker ends, with
 * objects shaped like
 * gunicorn's (worker.pid, .ppid, .age, .log, ...). With --preload the master
 * runs on_starting, when_ready, pre_fork, child_exit, on_reload and on_exit.
 * Nothing here runs, and requests cost nothing more, when no hook is defined. */
#ifndef GP_PY_HOOKS_H
#define GP_PY_HOOKS_H

#include <Python.h>

#include "core/master.h"

/* Executes cfg->hooks_file (no-op without one). Returns 0, or
 * GP_EXIT_BOOT_ERROR after printing why. Needs the GIL. */
int gp_hooks_load(const gp_config *cfg);

/* In a worker, once Python runs: the worker object, then post_fork. */
int gp_hooks_worker_start(const gp_worker_args *args);

/* Returns app itself, or (pre_request / post_request defined) a wrapper
 * that calls them: an ASGI 3 app when asgi, whatever asgi2 says. New
 * reference, NULL with an error set. */
PyObject *gp_hooks_wrap_app(PyObject *app, int asgi, int asgi2);

/* post_worker_init(worker); worker_exit(server, worker) (takes the GIL). */
void gp_hooks_post_worker_init(void);
void gp_hooks_worker_exit(void);

/* A master hook (--preload), called through gp_master_set_hook: with a
 * worker (pid, age) when pid != 0; nworkers_changed gets (new, old) in
 * (age, old). Takes the GIL and logs what the hook raised. */
void gp_hooks_master(const char *name, int pid, int age, int old);

#endif
