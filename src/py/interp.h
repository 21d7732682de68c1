/* interp: starting the embedded interpreter in a worker and importing the app.
 *
 * Runs in a worker (the master stays free of Python unless --preload). Failures print one
 * clear line (or, for an app that raised, its traceback once across all
 * workers) and give the exit code the master acts on. */
#ifndef GP_PY_INTERP_H
#define GP_PY_INTERP_H

#include <Python.h>

#include "core/config.h"
#include "core/scoreboard.h"

/* Starts Python (--preload: in the master): program name, venv, --pythonpath,
 * the current directory on sys.path. In a worker that executed the
 * interpreter, Python runs already and only the sys.path entries are added.
 * Returns 0 or GP_EXIT_BOOT_ERROR. */
int gp_py_start(const gp_config *cfg);

/* Imports MODULE[:ATTRIBUTE] (dotted attributes allowed), calling it when
 * --factory. Returns a new reference, or NULL with *exit_code set. */
PyObject *gp_py_load_app(const gp_config *cfg, gp_scoreboard *sb, int *exit_code);

/* The end of a worker that served: the app's atexit handlers run and
 * sys.stdout and sys.stderr are flushed, as at interpreter exit (the worker
 * then _exits: a full finalization could wait on the app's threads). Takes
 * the GIL itself. */
void gp_py_finish(void);

#endif
