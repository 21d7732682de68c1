/* main: gallop's entry point. Parses the command line, sets up the logs and
 * hands over to the master; the worker entry point below is the only place
 * the core meets the Python bridge. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/master.h"
#include "core/worker.h"
#include "py/interp.h"
#include "py/wsgi.h"

static int worker_main(const gp_worker_args *args)
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

int main(int argc, char **argv)
{
    gp_config cfg;
    int r = gp_config_parse(&cfg, argc, argv);
    if (r) return r > 0 ? GP_EXIT_OK : GP_EXIT_USAGE;
    if (cfg.chdir && chdir(cfg.chdir) < 0) {
        fprintf(stderr, "gallop: error: cannot change directory to '%s': %s\n", cfg.chdir, strerror(errno));
        return GP_EXIT_ERROR;
    }
    if (gp_log_setup(cfg.log_level, cfg.error_log) < 0) {
        fprintf(stderr, "gallop: error: cannot open error log '%s': %s\n", cfg.error_log, strerror(errno));
        return GP_EXIT_ERROR;
    }
    if (gp_access_log_setup(cfg.access_log) < 0) {
        fprintf(stderr, "gallop: error: cannot open access log '%s': %s\n", cfg.access_log, strerror(errno));
        return GP_EXIT_ERROR;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    return gp_master_run(&cfg, worker_main);
}
