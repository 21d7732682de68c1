/* entry: the Python bridge's one exported function, looked up with dlsym by
 * the worker after fork. Living in its own shared object keeps libpython out
 * of the master's memory entirely. */
#include "core/master.h"
#include "core/worker.h"
#include "py/interp.h"
#include "py/wsgi.h"

int gp_py_worker_main(const gp_worker_args *args);

int gp_py_worker_main(const gp_worker_args *args)
{
    int rc = gp_py_start(args->cfg);
    if (rc) return rc;
    PyObject *app = gp_py_load_app(args->cfg, args->scoreboard, &rc);
    if (!app) return rc;
    gp_wsgi *w = gp_wsgi_new(app, args->cfg);
    Py_DECREF(app);
    if (!w) {
        PyErr_Print();
        return GP_EXIT_BOOT_ERROR;
    }
    rc = gp_worker_run(args, &gp_wsgi_ops, w);
    fflush(NULL);
    return rc;
}
