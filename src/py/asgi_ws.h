/* asgi_ws: the ASGI WebSocket protocol on top of the core's WebSocket
 * connection layer (core/ws_conn). Used by asgi.c only, which hands it the
 * upgrade requests and the connection events of its sessions; it calls
 * nothing in asgi.c (the shared pieces are in asgi_common). */
#ifndef GP_PY_ASGI_WS_H
#define GP_PY_ASGI_WS_H

#include <Python.h>
#include <stdbool.h>

#include "core/conn.h"

int gp_asgi_ws_init(PyObject *loop);
/* Adds the WebSocket callbacks to the bridge's ops. */
const gp_app_ops *gp_asgi_ws_patch_ops(gp_app_ops *ops);
bool gp_asgi_ws_is_upgrade(const gp_http_request *req);
/* Answers a WebSocket upgrade request: runs the app with scope (stolen; the
 * fields HTTP and WebSocket share, built by asgi.c; NULL: a 500). */
gp_app_status gp_asgi_ws_start(PyObject *app, int asgi2, gp_conn *c, const gp_http_request *req,
                               PyObject *scope);
/* True when a connection's app state is a WebSocket session. */
bool gp_asgi_ws_owns(void *state);
void gp_asgi_ws_resume(gp_conn *c);
void gp_asgi_ws_readable(gp_conn *c);
void gp_asgi_ws_abort(gp_conn *c);

#endif
