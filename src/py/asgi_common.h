/* asgi_common: what the ASGI HTTP (asgi.c) and WebSocket (asgi_ws.c) files
 * both need: the already-done awaitable, completing the futures an app
 * waits on, checking the headers of a message, and calling the app. It
 * depends on neither of them, so they do not call each other in a circle. */
#ifndef GP_PY_ASGI_COMMON_H
#define GP_PY_ASGI_COMMON_H

#include <Python.h>
#include <stdbool.h>

#include "core/conn.h"

/* Once per worker, before anything else here. 0, or -1 with an exception. */
int gp_asgi_common_init(void);

/* An awaitable already done with value (stolen; NULL: None), so an await
 * does not go through the loop. */
PyObject *gp_asgi_ready(PyObject *value);

/* Completes *futp with value (stolen) unless the app cancelled it; *futp is
 * cleared either way. */
void gp_asgi_resolve(PyObject **futp, PyObject *value);
/* Whether *futp still waits; one the app cancelled is dropped. */
bool gp_asgi_pending(PyObject **futp);

/* Checks ASGI [name, value] headers: a new list of (bytes, bytes) tuples,
 * or NULL with an exception. */
PyObject *gp_asgi_check_headers(PyObject *headers);
/* Adds a list gp_asgi_check_headers built to the head; 0, or -1 (too large). */
int gp_asgi_add_checked(gp_conn *c, PyObject *list);
/* Both, for headers straight from a message; 0, or -1 with an exception.
 * NULL headers add nothing. */
int gp_asgi_add_headers(gp_conn *c, PyObject *headers);

/* Raises gallop.ClientDisconnected, an OSError (uvicorn's name): a send
 * after the client left. what says which message. Returns NULL. */
PyObject *gp_asgi_client_gone(const char *what);

/* The app's coroutine for one scope, ASGI 3 (app(scope, receive, send)) or
 * 2 (app(scope)(receive, send)); NULL with an exception. */
PyObject *gp_asgi_call_app(PyObject *app, int asgi2, PyObject *scope, PyObject *receive,
                           PyObject *send);

#endif
