/* asgi_ws: the ASGI WebSocket protocol on top of the core's WebSocket
 * connection layer (core/ws_conn). Used by asgi.c only. */
#ifndef GP_PY_ASGI_WS_H
#define GP_PY_ASGI_WS_H

#include <Python.h>
#include <stdbool.h>

#include "core/conn.h"

int gp_asgi_ws_init(PyObject *loop);
/* Adds the WebSocket callbacks to the bridge's ops. */
const gp_app_ops *gp_asgi_ws_patch_ops(gp_app_ops *ops);
bool gp_asgi_ws_is_upgrade(const gp_http_request *req);
gp_app_status gp_asgi_ws_start(PyObject *app, int asgi2, gp_conn *c, const gp_http_request *req);
/* True when a connection's app state is a WebSocket session. */
bool gp_asgi_ws_owns(void *state);
void gp_asgi_ws_resume(gp_conn *c);
void gp_asgi_ws_readable(gp_conn *c);
void gp_asgi_ws_abort(gp_conn *c);

/* asgi.c: an awaitable already done with value (stolen; NULL: None). */
PyObject *gp_asgi_ready(PyObject *value);

/* asgi.c: completes *futp with value (stolen) unless the app cancelled it. */
void gp_asgi_resolve(PyObject **futp, PyObject *value);
/* asgi.c: whether *futp still waits; one the app cancelled is dropped. */
bool gp_asgi_pending(PyObject **futp);
/* asgi.c: validates ASGI [name, value] headers and adds them to the head;
 * 0, or -1 with an exception. NULL headers add nothing. */
int gp_asgi_add_headers(gp_conn *c, PyObject *headers);

/* asgi.c: the scope fields HTTP and WebSocket share. */
PyObject *gp_asgi_scope(gp_conn *c, const gp_http_request *req, PyObject *type);

#endif
