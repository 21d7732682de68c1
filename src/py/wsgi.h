/* wsgi: the PEP 3333 bridge between the worker core and a WSGI app.
 *
 * Builds the environ in C from the parsed request, runs the app once per
 * request, and feeds the response iterable to the core as the socket drains.
 * Provides wsgi.input (streaming the body), start_response with exc_info, the
 * write() callable and wsgi.file_wrapper (sendfile). */
#ifndef GP_PY_WSGI_H
#define GP_PY_WSGI_H

#include <Python.h>

#include "core/config.h"
#include "core/conn.h"

typedef struct gp_wsgi gp_wsgi;

extern const gp_app_ops gp_wsgi_ops;          /* one request at a time, on the loop's thread */
extern const gp_app_ops gp_wsgi_threaded_ops; /* --threads: requests on their own threads */

/* Takes a new reference to app. Returns NULL with a Python error set. */
gp_wsgi *gp_wsgi_new(PyObject *app, const gp_config *cfg);

#endif
