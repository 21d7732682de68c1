/* asgi_ws: placeholder until the WebSocket session lands: upgrades get 501. */
#include "py/asgi_ws.h"

int gp_asgi_ws_init(void) { return 0; }
bool gp_asgi_ws_is_upgrade(const gp_http_request *req) { return false; }
gp_app_status gp_asgi_ws_start(PyObject *app, int asgi2, gp_conn *c, const gp_http_request *req)
{
    gp_conn_send_error(c, 501, 1);
    return GP_APP_DONE;
}
bool gp_asgi_ws_owns(void *state) { return false; }
void gp_asgi_ws_resume(gp_conn *c) {}
void gp_asgi_ws_readable(gp_conn *c) {}
void gp_asgi_ws_abort(gp_conn *c) {}
