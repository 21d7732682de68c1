/* ws_conn: a connection after its WebSocket handshake. Frames in, whole
 * messages out to the app (gp_app_ops.ws_message), pings answered, idle
 * peers pinged, the close handshake. Framing itself is core/websocket. No
 * Python here. */
#ifndef GP_WS_CONN_H
#define GP_WS_CONN_H

#include <stddef.h>

#include "core/conn.h"

/* Checks an upgrade request. Returns 0 with accept[] set (the
 * Sec-WebSocket-Accept value), or the HTTP status to answer (400, or 426 for a
 * version other than 13). */
int gp_ws_check(const gp_http_request *req, char accept[29]);

/* Accepts: call after gp_conn_head_begin(c, "101 Switching Protocols") and
 * any gp_conn_head_add of the app's own fields. Completes and sends the 101
 * head, then the connection speaks frames. GP_OK, GP_AGAIN or GP_ERROR as
 * for gp_conn_write. */
int gp_ws_begin(gp_conn *c, const char accept[29]);

/* One message, text or binary. Same return values and rules as
 * gp_conn_write (data stays referenced after GP_AGAIN until resume). */
int gp_ws_send(gp_conn *c, int binary, const void *data, size_t len);

/* Sends a close frame (once); the connection ends when the app is done. */
void gp_ws_close(gp_conn *c, unsigned code, const char *reason, size_t reason_len);

#endif
