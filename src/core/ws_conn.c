/* ws_conn: the WebSocket session of a connection; see ws_conn.h.
 *
 * A protocol of its own (proto.h): the upgrade swaps the stream's table to
 * ws_proto, and HTTP/1.1 keeps the exchange (the app runs as a task) and
 * calls the hooks below (gp_upgrade_hooks). Reaches the connection only
 * through the stream (stream.h) and conn's calls, never its struct.
 *
 * Messages are handed to the app whole: a single-frame message straight from
 * the read buffer, a fragmented one assembled (up to --ws-max-size, which the
 * frame parser enforces from the headers before any data is kept). */
#include "core/ws_conn.h"

#include <stdlib.h>
#include <string.h>

#include "core/proto.h"
#include "core/websocket.h"
#include "core/h1.h"

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
    double ping_interval, ping_timeout;
};

static inline struct gp_ws_session *ws_of(gp_conn *c)
{
    return gp_conn_upgrade_state(c);
}

static inline double now_of(gp_conn *c)
{
    return *gp_conn_stream(c)->env->now;
}

/* The next keep-alive event: a ping once the peer has been silent for the
 * interval, or, with one out, the close when its pong is late. A deadline
 * set while output waits is the write timeout's, and is left alone. */
static double keepalive_at(gp_conn *c)
{
    struct gp_ws_session *ws = ws_of(c);
    if (ws->ping_interval <= 0 || ws->close_sent) return now_of(c) + 1e9;
    return ws->ping_out ? ws->ping_at + ws->ping_timeout : ws->heard_at + ws->ping_interval;
}

static void ws_rearm(gp_conn *c)
{
    if (gp_stream_output_pending(gp_conn_stream(c))) return;
    double at = keepalive_at(c);
    if (at != gp_conn_stream(c)->deadline) gp_conn_set_deadline(c, at);
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
    struct gp_ws_session *ws = ws_of(c);
    if (!ws || ws->closed_notified) return;
    ws->closed_notified = true;
    void *app;
    const gp_app_ops *ops = gp_conn_app_ops(c, &app);
    if (ops->ws_closed) ops->ws_closed(app, c, code);
}

/* Control frames must not cut into a data frame the app has half written. */
static void send_control(gp_conn *c, const uint8_t *frame, size_t n)
{
    struct gp_ws_session *ws = ws_of(c);
    if (gp_conn_stream(c)->pend_len || gp_conn_stream(c)->file_left || ws->ctl_len) {
        if (ws->ctl_len + n <= CTL_QUEUE) {
            memcpy(ws->ctl + ws->ctl_len, frame, n);
            ws->ctl_len += n;
        }
        return;
    }
    if (gp_stream_out_append(gp_conn_stream(c), frame, n) == GP_OK) gp_conn_flush(c);
}

static int ws_on_drained(gp_conn *c)
{
    struct gp_ws_session *ws = ws_of(c);
    if (!ws->ctl_len) {
        ws_rearm(c);
        return GP_OK;
    }
    int r = gp_stream_out_append(gp_conn_stream(c), ws->ctl, ws->ctl_len);
    ws->ctl_len = 0;
    r = r == GP_OK ? gp_conn_flush(c) : r;
    if (r == GP_OK) ws_rearm(c);
    return r;
}

static const gp_proto ws_proto;
static const gp_upgrade_hooks ws_hooks;

int gp_ws_begin(gp_conn *c, const char accept[29])
{
    struct gp_ws_session *ws = calloc(1, sizeof *ws);
    if (!ws) return GP_ERROR;
    const gp_config *cfg = gp_conn_config(c);
    ws->parser.max_message = cfg->ws_max_size;
    ws->ping_interval = cfg->ws_ping_interval;
    ws->ping_timeout = cfg->ws_ping_timeout;
    /* from the 101's end the stream is frames, not an HTTP body */
    gp_conn_upgrade(c, &ws_proto, &ws_hooks, ws);
    if (gp_conn_head_add(c, "Sec-WebSocket-Accept", 20, accept, 28) < 0 || gp_conn_head_end(c) < 0)
        return GP_ERROR;
    gp_conn_upgrade_begin(c);
    ws->heard_at = now_of(c);
    int r = gp_conn_flush(c);
    ws_rearm(c); /* after the flush: it set the write deadline */
    return r;
}

int gp_ws_send(gp_conn *c, int binary, const void *data, size_t len)
{
    struct gp_ws_session *ws = ws_of(c);
    if (!ws || ws->close_sent || gp_conn_stream(c)->broken) return GP_ERROR;
    uint8_t hdr[10];
    size_t hl = gp_ws_frame_header(hdr, binary ? GP_WS_OP_BINARY : GP_WS_OP_TEXT, true, len);
    if (gp_stream_out_append(gp_conn_stream(c), hdr, hl) < 0) return GP_ERROR;
    int r = len ? gp_conn_write(c, data, len) : GP_OK;
    /* a small frame is only copied: out now, as the app may send from a timer
     * with no core event to come (GP_AGAIN: resume tells when it drained) */
    if (r == GP_OK) r = gp_conn_flush(c);
    if (r == GP_OK) ws_rearm(c); /* the write moved the deadline */
    return r;
}

void gp_ws_close(gp_conn *c, unsigned code, const char *reason, size_t reason_len)
{
    struct gp_ws_session *ws = ws_of(c);
    if (!ws || ws->close_sent) return;
    uint8_t frame[127];
    size_t n = gp_ws_close_frame(frame, (uint16_t)code, reason, reason_len);
    ws->close_sent = true;
    send_control(c, frame, n);
}

static void deliver(gp_conn *c, int binary, const char *data, size_t len)
{
    ws_of(c)->ping_out = false; /* a live peer */
    void *app;
    gp_conn_app_ops(c, &app)->ws_message(app, c, binary, data, len);
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

static void ws_on_input(gp_conn *c)
{
    struct gp_ws_session *ws = ws_of(c);
    size_t had = gp_conn_stream(c)->len - gp_conn_stream(c)->rpos;
    while (gp_conn_reading(c) && ws_of(c) == ws && !ws->closed_notified && gp_conn_stream(c)->rpos < gp_conn_stream(c)->len) {
        gp_ws_event ev;
        size_t used = 0;
        int t = gp_ws_parse(&ws->parser, (uint8_t *)gp_conn_stream(c)->buf + gp_conn_stream(c)->rpos, gp_conn_stream(c)->len - gp_conn_stream(c)->rpos, &used, &ev);
        gp_conn_stream(c)->rpos += used;
        switch (t) {
        case GP_WS_EV_NEED_MORE:
            if (gp_conn_stream(c)->rpos) {
                memmove(gp_conn_stream(c)->buf, gp_conn_stream(c)->buf + gp_conn_stream(c)->rpos, gp_conn_stream(c)->len - gp_conn_stream(c)->rpos);
                gp_conn_stream(c)->len -= gp_conn_stream(c)->rpos;
                gp_conn_stream(c)->rpos = 0;
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
    if (gp_conn_stream(c)->rpos >= gp_conn_stream(c)->len && gp_conn_stream(c)->buf) gp_conn_stream(c)->rpos = gp_conn_stream(c)->len = 0;
out:
    if (!gp_conn_in_app(c) || ws_of(c) != ws) return;
    if (gp_conn_stream(c)->len - gp_conn_stream(c)->rpos != had) { /* frames came in: the peer is alive */
        ws->heard_at = now_of(c);
        ws->ping_out = false;
        ws_rearm(c);
    }
    gp_conn_async_rewatch(c); /* room again in the buffer */
    if (gp_conn_input_gone(c)) notify_closed(c, 1006);
}

static void ws_on_tick(gp_conn *c)
{
    struct gp_ws_session *ws = ws_of(c);
    double now = now_of(c);
    if (ws->ping_interval > 0 && !ws->close_sent) {
        if (ws->ping_out && now - ws->ping_at >= ws->ping_timeout) {
            gp_ws_close(c, GP_WS_CLOSE_INTERNAL, "keepalive ping timeout", 22);
            notify_closed(c, GP_WS_CLOSE_INTERNAL);
        } else if (!ws->ping_out && now - ws->heard_at >= ws->ping_interval) {
            uint8_t frame[127];
            size_t n = gp_ws_control_frame(frame, GP_WS_OP_PING, (const uint8_t *)"gallop", 6);
            send_control(c, frame, n);
            ws->ping_out = true;
            ws->ping_at = now;
        }
    }
    if (gp_conn_closed(c) || ws_of(c) != ws) return;
    /* a deadline that is still the write timeout's (output stuck) moves to
     * the keep-alive one too: the ping timeout then ends a dead peer */
    gp_conn_set_deadline(c, keepalive_at(c));
}

static void ws_free(gp_conn *c)
{
    struct gp_ws_session *ws = ws_of(c);
    free(ws->msg);
    free(ws);
}

static const gp_upgrade_hooks ws_hooks = {
    .on_input = ws_on_input,
    .on_drained = ws_on_drained,
    .free = ws_free,
};

/* ---- the protocol table ------------------------------------------------- */

static void ws_on_timeout(gp_stream *s)
{
    ws_on_tick(gp_stream_conn(s));
}

static void ws_on_stop(gp_stream *s)
{
    gp_conn *c = gp_stream_conn(s);
    gp_ws_close(c, GP_WS_CLOSE_GOING_AWAY, "server shutting down", 20);
    notify_closed(c, GP_WS_CLOSE_GOING_AWAY);
}

static void ws_on_close(gp_stream *s)
{
    gp_conn_close(gp_stream_conn(s));
}

static const gp_proto ws_proto = {
    .name = "websocket",
    .on_event = gp_conn_async_event,
    .on_timeout = ws_on_timeout,
    .on_stop = ws_on_stop,
    .on_close = ws_on_close,
};
