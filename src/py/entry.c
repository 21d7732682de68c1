/* entry: the Python bridge's exported functions, looked up with dlsym by the
 * master (--preload only) and by each worker after fork. Living in its own
 * shared object keeps libpython out of the master unless it is asked for. */
#include <signal.h>
#include <string.h>

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
