/* ws_conn: the WebSocket session of a connection; see ws_conn.h.
 *
 * Messages are handed to the app whole: a single-frame message straight from
 * the read buffer, a fragmented one assembled (up to --ws-max-size, which the
 * frame parser enforces from the headers before any data is kept). */
#include "core/ws_conn.h"

#include <stdlib.h>
#include <string.h>

#include "core/websocket.h"
#include "core/worker_internal.h"

#define CTL_QUEUE 512

struct gp_ws_session {
    gp_ws_parser parser;
    char *msg;
    size_t msg_len, msg_cap;
    uint8_t ctl[CTL_QUEUE]; /* control frames waiting behind the app's pending data */
    size_t ctl_len;
    bool close_sent, closed_notified, ping_out;
    double ping_at;
    double heard_at; /* when the peer last sent anything: pings fill silences only */
};

/* The next keep-alive event: a ping once the peer has been silent for the
 * interval, or, with one out, the close when its pong is late. A deadline
 * set while output waits is the write timeout's, and is left alone. */
static double keepalive_at(gp_conn *c)
{
    struct gp_ws_session *ws = c->ws;
    const gp_config *cfg = c->w->cfg;
    if (cfg->ws_ping_interval <= 0 || ws->close_sent) return c->w->now + 1e9;
    return ws->ping_out ? ws->ping_at + cfg->ws_ping_timeout : ws->heard_at + cfg->ws_ping_interval;
}

static void ws_rearm(gp_conn *c)
{
    if (c->out_len > c->out_pos || c->pend_len || c->file_left) return;
    double at = keepalive_at(c);
    if (at != c->deadline) gp_conn_set_deadline(c, at);
}

static const char *find_header(const gp_http_request *req, const char *lower, size_t *len)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (gp_http_token_eq(req->headers[i].name, req->headers[i].name_len, lower)) {
            *len = req->headers[i].value_len;
            return req->headers[i].value;
        }
    *len = 0;
    return NULL;
}

int gp_ws_check(const gp_http_request *req, char accept[29])
{
    gp_ws_handshake h = {
        .method = req->method, .method_len = req->method_len, .version_minor = req->version_minor};
    h.upgrade = find_header(req, "upgrade", &h.upgrade_len);
    h.version = find_header(req, "sec-websocket-version", &h.version_len);
    h.key = find_header(req, "sec-websocket-key", &h.key_len);
    h.protocol = find_header(req, "sec-websocket-protocol", &h.protocol_len);
    /* Connection may come on several lines: any with the token will do */
    for (size_t i = 0; i < req->num_headers; i++) {
        const gp_http_header *hd = &req->headers[i];
        if (gp_http_token_eq(hd->name, hd->name_len, "connection") &&
            gp_ws_has_token(hd->value, hd->value_len, "upgrade")) {
            h.connection = "upgrade";
            h.connection_len = 7;
        }
    }
    return gp_ws_check_handshake(&h, accept);
}

static void notify_closed(gp_conn *c, unsigned code)
{
    if (!c->ws || c->ws->closed_notified) return;
    c->ws->closed_notified = true;
    if (c->w->ops->ws_closed) c->w->ops->ws_closed(c->w->app, c, code);
}

/* Control frames must not cut into a data frame the app has half written. */
static void send_control(gp_conn *c, const uint8_t *frame, size_t n)
{
    struct gp_ws_session *ws = c->ws;
    if (c->pend_len || c->file_left || ws->ctl_len) {
        if (ws->ctl_len + n <= CTL_QUEUE) {
            memcpy(ws->ctl + ws->ctl_len, frame, n);
            ws->ctl_len += n;
        }
        return;
    }
    if (gp_conn_out_append(c, frame, n) == GP_OK) gp_conn_flush(c);
}

int gp_ws_on_drained(gp_conn *c)
{
    struct gp_ws_session *ws = c->ws;
    if (!ws->ctl_len) {
        ws_rearm(c);
        return GP_OK;
    }
    int r = gp_conn_out_append(c, ws->ctl, ws->ctl_len);
    ws->ctl_len = 0;
    r = r == GP_OK ? gp_conn_flush(c) : r;
    if (r == GP_OK) ws_rearm(c);
    return r;
}

int gp_ws_begin(gp_conn *c, const char accept[29])
{
    struct gp_ws_session *ws = calloc(1, sizeof *ws);
    if (!ws) return GP_ERROR;
    ws->parser.max_message = c->w->cfg->ws_max_size;
    c->ws = ws;
    if (gp_conn_head_add(c, "Sec-WebSocket-Accept", 20, accept, 28) < 0 || gp_conn_head_end(c) < 0)
        return GP_ERROR;
    /* from here the stream is frames, not an HTTP body */
    c->no_body = c->chunked_out = c->resp_has_length = false;
    c->resp_ended = true;
    c->keep_alive = false;
    c->want_input = true;
    ws->heard_at = c->w->now;
    int r = gp_conn_flush(c);
    ws_rearm(c); /* after the flush: it set the write deadline */
    return r;
}

int gp_ws_send(gp_conn *c, int binary, const void *data, size_t len)
{
    if (!c->ws || c->ws->close_sent || c->broken) return GP_ERROR;
    uint8_t hdr[10];
    size_t hl = gp_ws_frame_header(hdr, binary ? GP_WS_OP_BINARY : GP_WS_OP_TEXT, true, len);
    if (gp_conn_out_append(c, hdr, hl) < 0) return GP_ERROR;
    int r = len ? gp_conn_write(c, data, len) : GP_OK;
    /* a small frame is only copied: out now, as the app may send from a timer
     * with no core event to come (GP_AGAIN: resume tells when it drained) */
    if (r == GP_OK) r = gp_conn_flush(c);
    if (r == GP_OK) ws_rearm(c); /* the write moved the deadline */
    return r;
}

void gp_ws_close(gp_conn *c, unsigned code, const char *reason, size_t reason_len)
{
    if (!c->ws || c->ws->close_sent) return;
    uint8_t frame[127];
    size_t n = gp_ws_close_frame(frame, (uint16_t)code, reason, reason_len);
    c->ws->close_sent = true;
    send_control(c, frame, n);
}

static void deliver(gp_conn *c, int binary, const char *data, size_t len)
{
    c->ws->ping_out = false; /* a live peer */
    c->w->ops->ws_message(c->w->app, c, binary, data, len);
}

static int append(struct gp_ws_session *ws, const uint8_t *data, size_t len)
{
    if (ws->msg_len + len > ws->msg_cap) {
        size_t cap = ws->msg_cap ? ws->msg_cap : 4096;
        while (cap < ws->msg_len + len) cap *= 2;
        char *m = realloc(ws->msg, cap);
        if (!m) return -1;
        ws->msg = m;
        ws->msg_cap = cap;
    }
    memcpy(ws->msg + ws->msg_len, data, len);
    ws->msg_len += len;
    return 0;
}

void gp_ws_on_input(gp_conn *c)
{
    struct gp_ws_session *ws = c->ws;
    size_t had = c->len - c->rpos;
    while (!c->dead && c->ws == ws && c->state == CS_ASYNC && c->want_input &&
           !ws->closed_notified && c->rpos < c->len) {
        gp_ws_event ev;
        size_t used = 0;
        int t = gp_ws_parse(&ws->parser, (uint8_t *)c->buf + c->rpos, c->len - c->rpos, &used, &ev);
        c->rpos += used;
        switch (t) {
        case GP_WS_EV_NEED_MORE:
            if (c->rpos) {
                memmove(c->buf, c->buf + c->rpos, c->len - c->rpos);
                c->len -= c->rpos;
                c->rpos = 0;
            }
            goto out;
        case GP_WS_EV_TEXT:
        case GP_WS_EV_BINARY:
            if (ev.fin && ws->msg_len == 0) {
                deliver(c, t == GP_WS_EV_BINARY, (const char *)ev.data, ev.len);
            } else if (append(ws, ev.data, ev.len) < 0) {
                gp_ws_close(c, GP_WS_CLOSE_TOO_BIG, NULL, 0);
                notify_closed(c, GP_WS_CLOSE_TOO_BIG);
            } else if (ev.fin) {
                size_t n = ws->msg_len;
                ws->msg_len = 0; /* the app copies the message before we touch it again */
                deliver(c, t == GP_WS_EV_BINARY, ws->msg, n);
            }
            break;
        case GP_WS_EV_PING: {
            uint8_t frame[127];
            size_t n = gp_ws_control_frame(frame, GP_WS_OP_PONG, ev.data, ev.len);
            if (!ws->close_sent && n) send_control(c, frame, n);
            break;
        }
        case GP_WS_EV_PONG: ws->ping_out = false; break;
        case GP_WS_EV_CLOSE:
            gp_ws_close(c, ev.code == GP_WS_CLOSE_NO_STATUS ? 0 : ev.code, NULL, 0); /* echo */
            notify_closed(c, ev.code);
            break;
        default: /* GP_WS_EV_ERROR */
            gp_ws_close(c, ev.code, NULL, 0);
            notify_closed(c, ev.code);
            break;
        }
    }
    if (c->rpos >= c->len && c->buf) c->rpos = c->len = 0;
out:
    if (c->dead || c->ws != ws || c->state != CS_ASYNC) return;
    if (c->len - c->rpos != had) { /* frames came in: the peer is alive */
        ws->heard_at = c->w->now;
        ws->ping_out = false;
        ws_rearm(c);
    }
    gp_conn_async_rewatch(c); /* room again in the buffer */
    if (c->peer_gone) notify_closed(c, 1006);
}

void gp_ws_on_tick(gp_conn *c)
{
    struct gp_ws_session *ws = c->ws;
    const gp_config *cfg = c->w->cfg;
    double now = c->w->now;
    if (cfg->ws_ping_interval > 0 && !ws->close_sent) {
        if (ws->ping_out && now - ws->ping_at >= cfg->ws_ping_timeout) {
            gp_ws_close(c, GP_WS_CLOSE_INTERNAL, "keepalive ping timeout", 22);
            notify_closed(c, GP_WS_CLOSE_INTERNAL);
        } else if (!ws->ping_out && now - ws->heard_at >= cfg->ws_ping_interval) {
            uint8_t frame[127];
            size_t n = gp_ws_control_frame(frame, GP_WS_OP_PING, (const uint8_t *)"gallop", 6);
            send_control(c, frame, n);
            ws->ping_out = true;
            ws->ping_at = now;
        }
    }
    if (c->dead || c->ws != ws) return;
    /* a deadline that is still the write timeout's (output stuck) moves to
     * the keep-alive one too: the ping timeout then ends a dead peer */
    gp_conn_set_deadline(c, keepalive_at(c));
}

void gp_ws_on_stop(gp_conn *c)
{
    gp_ws_close(c, GP_WS_CLOSE_GOING_AWAY, "server shutting down", 20);
    notify_closed(c, GP_WS_CLOSE_GOING_AWAY);
}

void gp_ws_session_free(gp_conn *c)
{
    if (!c->ws) return;
    free(c->ws->msg);
    free(c->ws);
    c->ws = NULL;
}
