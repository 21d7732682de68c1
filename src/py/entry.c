/* entry: the ways into the Python bridge.
 *
 * A worker forks from the master and executes the real interpreter (the one
 * gallop was built for, or the venv's), which imports this shared object as
 * the extension module _gallop and calls _gallop.worker(fd): the statically
 * linked, optimised python3 runs the app faster than an embedder linked to
 * libpython.so does. With --preload the master dlopens the same object (after
 * libpython) and calls gp_py_preload; its workers fork without exec and enter
 * through gp_py_worker_main. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/handoff.h"
#include "core/log.h"
#include "core/master.h"
#include "core/worker.h"
#include "py/asgi.h"
#include "py/bridge.h"
#include "py/hooks.h"
#include "py/interp.h"
#include "py/wsgi.h"

int gp_py_worker_main(const gp_worker_args *args);
int gp_py_preload(const gp_config *cfg);
void gp_py_before_fork(void);
void gp_py_after_fork_parent(void);

static PyObject *preloaded_app;

int gp_py_preload(const gp_config *cfg)
{
    int rc = gp_py_start(cfg);
    if (rc) return rc;
    if ((rc = gp_hooks_load(cfg))) return rc; /* the master's hooks run from here on */
    preloaded_app = gp_py_load_app(cfg, NULL, &rc);
    if (!preloaded_app) return rc;
    gp_info("app %s preloaded in the master", cfg->app);
    return 0;
}

void gp_py_before_fork(void)
{
    PyOS_BeforeFork();
}

void gp_py_after_fork_parent(void)
{
    PyOS_AfterFork_Parent();
}

/* A stuck worker's tracebacks, on the master's SIGUSR2, from a C signal
 * handler that needs no GIL: faulthandler.register. */
static void register_traceback_dump(void)
{
    PyObject *fh = PyImport_ImportModule("faulthandler");
    PyObject *r =
        fh ? PyObject_CallMethod(fh, "register", "iOO", SIGUSR2, PySys_GetObject("stderr"), Py_True)
           : NULL;
    if (!r) {
        PyErr_Clear();
        gp_warn("faulthandler unavailable: no tracebacks on timeout");
    }
    Py_XDECREF(r);
    Py_XDECREF(fh);
}

int gp_py_worker_main(const gp_worker_args *args)
{
    int rc = 0;
    PyObject *app = NULL;
    if (preloaded_app) {
        PyOS_AfterFork_Child();
        app = preloaded_app;
        Py_INCREF(app);
    } else {
        if ((rc = gp_py_start(args->cfg))) return rc;
        if ((rc = gp_hooks_load(args->cfg))) return rc;
    }
    if ((rc = gp_hooks_worker_start(args))) { /* post_fork */
        Py_XDECREF(app);
        return rc;
    }
    if (!preloaded_app) {
        if (!(app = gp_py_load_app(args->cfg, args->scoreboard, &rc))) return rc;
    }
    register_traceback_dump();
    if (gp_bridge_init(args->cfg) < 0) {
        PyErr_Print();
        Py_DECREF(app);
        return GP_EXIT_BOOT_ERROR;
    }
    const char *iface = args->cfg->interface;
    int is_asgi = strcmp(iface, "asgi") == 0 || strcmp(iface, "asgi2") == 0;
    if (strcmp(iface, "auto") == 0) is_asgi = gp_asgi_detect(app) > 0;
    int asgi2 = strcmp(iface, "asgi2") == 0;
    PyObject *wrapped = gp_hooks_wrap_app(app, is_asgi, asgi2); /* pre/post_request */
    if (wrapped != app) asgi2 = 0; /* the wrapper is ASGI 3 */
    Py_DECREF(app);
    if (!(app = wrapped)) {
        PyErr_Print();
        return GP_EXIT_BOOT_ERROR;
    }
    gp_hooks_post_worker_init();
    if (is_asgi) {
        rc = gp_asgi_run(args, app, asgi2);
        Py_DECREF(app);
        gp_hooks_worker_exit();
        gp_py_finish();
        fflush(NULL);
        return rc;
    }
    gp_wsgi *w = gp_wsgi_new(app, args->cfg);
    Py_DECREF(app);
    if (!w) {
        PyErr_Print();
        return GP_EXIT_BOOT_ERROR;
    }
    if (args->cfg->threads > 1) {
        PyEval_SaveThread(); /* the loop's thread never runs Python again */
        rc = gp_worker_run(args, &gp_wsgi_threaded_ops, w);
    } else {
        rc = gp_worker_run(args, &gp_wsgi_ops, w);
    }
    gp_hooks_worker_exit();
    gp_py_finish();
    fflush(NULL);
    return rc;
}

/* _gallop.worker(fd): the worker's life, in the interpreter it executed. It
 * never returns: the worker ends with _exit, as a forked one does, so no
 * interpreter finalization waits on the app's threads. */
static PyObject *worker(PyObject *self, PyObject *arg)
{
    (void)self;
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    static gp_handoff h; /* the worker's args, settings and listeners, for its whole life */
    char err[256];
    if (fd < 0 || fd > 1 << 20 || gp_handoff_read((int)fd, &h, err, sizeof err) < 0) {
        fprintf(stderr, "gallop: error: worker %d: %s\n", (int)getpid(),
                fd < 0 ? "no state descriptor" : err);
        fflush(stderr);
        _exit(GP_EXIT_BOOT_ERROR);
    }
    gp_log_inherit(h.cfg.log_level, h.cfg.error_log, h.cfg.access_log, h.access_fd);
    gp_log_set_format(h.cfg.log_format); /* --log-format json */
    int rc = gp_py_worker_main(&h.args);
    fflush(NULL);
    _exit(rc);
}

static PyMethodDef module_methods[] = {
    {"worker", worker, METH_O, "Runs a gallop worker from the state in descriptor fd; never returns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_gallop", "gallop's worker, inside the interpreter it executed.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gallop(void);
PyMODINIT_FUNC PyInit__gallop(void)
{
    return PyModule_Create(&module_def);
}
