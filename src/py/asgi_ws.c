/* asgi_ws: the ASGI WebSocket protocol over core/ws_conn; see asgi_ws.h.
 *
 * One Session per WebSocket: it holds the app's Task, a short queue of
 * received messages (reading pauses when it is full, so a flooding client
 * cannot grow it) and the close state. receive/send follow the same rule as
 * for HTTP: a ready awaitable when possible, a future only to wait. */
#include "py/asgi_ws.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/websocket.h"
#include "core/ws_conn.h"
#include "py/asgi_common.h"
#include "py/bridge.h"
#include "py/runner.h"

#define QUEUE_MAX 16

enum { WS_CONNECTING, WS_ACCEPTED, WS_DENIED, WS_CLOSED };

typedef struct {
    PyObject_HEAD
    gp_conn *conn; /* NULL once detached */
    PyObject *task;
    PyObject *recv_fut, *send_fut, *send_keep;
    PyObject *queue; /* list of messages not yet received */
    PyObject *denial_headers;
    int denial_status;
    int state;
    unsigned close_code;
    bool connect_delivered, draining, task_done, denial_started;
    bool denial_final; /* the last denial bytes wait for the socket */
    bool peer_left;    /* the client closed or vanished: sends raise */
    char accept[29];
    char what[160];
} Session;

static PyTypeObject Session_Type;

static struct {
    PyObject *create_future, *create_task;
    PyObject *k_type, *k_text, *k_bytes, *k_code, *k_reason, *k_subprotocol, *k_headers, *k_status,
        *k_body, *k_more_body;
    PyObject *v_receive;
    PyObject *s_cancel;
    PyObject *extensions;
} G;

static void Session_dealloc(Session *s)
{
    Py_XDECREF(s->task);
    Py_XDECREF(s->recv_fut);
    Py_XDECREF(s->send_fut);
    Py_XDECREF(s->send_keep);
    Py_XDECREF(s->queue);
    Py_XDECREF(s->denial_headers);
    PyObject_Free(s);
}

static PyTypeObject Session_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.WebSocketSession",
    .tp_basicsize = sizeof(Session),
    .tp_dealloc = (destructor)Session_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

bool gp_asgi_ws_owns(void *state)
{
    return state && Py_IS_TYPE((PyObject *)state, &Session_Type);
}

static PyObject *disconnect_msg(Session *s)
{
    return Py_BuildValue("{s:s,s:I}", "type", "websocket.disconnect", "code",
                         s->close_code ? s->close_code : 1005);
}

/* Gives the connection back to the core, which closes it gracefully. */
static void finish(Session *s)
{
    gp_conn *c = s->conn;
    if (!c || s->draining) return; /* after a pending send: resume finishes */
    gp_conn_set_app_state(c, NULL);
    s->conn = NULL;
    gp_conn_app_done(c);
    Py_DECREF(s); /* the connection's reference */
}

/* ---- receive -------------------------------------------------------------- */

static PyObject *next_message(Session *s)
{
    if (!s->connect_delivered) {
        s->connect_delivered = true;
        return Py_BuildValue("{s:s}", "type", "websocket.connect");
    }
    if (PyList_GET_SIZE(s->queue)) {
        PyObject *m = PyList_GET_ITEM(s->queue, 0);
        Py_INCREF(m);
        if (PySequence_DelItem(s->queue, 0) < 0) {
            Py_DECREF(m);
            return NULL;
        }
        if (s->conn && s->state == WS_ACCEPTED && PyList_GET_SIZE(s->queue) < QUEUE_MAX / 2)
            gp_conn_wait_input(s->conn, 1);
        return m;
    }
    if (!s->conn || s->state == WS_CLOSED || s->state == WS_DENIED) return disconnect_msg(s);
    return NULL; /* wait */
}

static PyObject *ws_receive(PyObject *self, PyObject *unused)
{
    Session *s = (Session *)self;
    gp_asgi_pending(&s->recv_fut); /* drops one the app cancelled */
    if (s->recv_fut) {
        PyErr_SetString(PyExc_RuntimeError,
                        "receive() called again before the previous one completed");
        return NULL;
    }
    PyObject *m = next_message(s);
    if (m || PyErr_Occurred()) return m ? gp_asgi_ready(m) : NULL;
    PyObject *fut = PyObject_CallNoArgs(G.create_future);
    if (!fut) return NULL;
    Py_INCREF(fut);
    s->recv_fut = fut;
    if (s->conn && s->state == WS_ACCEPTED) gp_conn_wait_input(s->conn, 1);
    return fut;
}

static PyMethodDef receive_def = {"receive", ws_receive, METH_NOARGS, "ASGI receive()"};

/* ---- send -------------------------------------------------------------------- */

static PyObject *get(PyObject *msg, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(msg, key);
    return v == Py_None ? NULL : v;
}

static PyObject *send_wait(Session *s, PyObject *keep)
{
    PyObject *fut = PyObject_CallNoArgs(G.create_future);
    if (!fut) return NULL;
    Py_INCREF(fut);
    s->send_fut = fut;
    Py_XINCREF(keep);
    Py_XSETREF(s->send_keep, keep);
    s->draining = true;
    return fut;
}

static PyObject *send_accept(Session *s, PyObject *msg)
{
    gp_conn *c = s->conn;
    if (s->state != WS_CONNECTING) {
        PyErr_SetString(PyExc_RuntimeError, "websocket.accept sent twice, or after close");
        return NULL;
    }
    PyObject *sub = get(msg, G.k_subprotocol), *headers = get(msg, G.k_headers);
    if (PyErr_Occurred()) return NULL;
    if (gp_conn_head_begin_status(c, 101) < 0) goto bad;
    if (sub) {
        Py_ssize_t n;
        const char *p = PyUnicode_Check(sub) ? PyUnicode_AsUTF8AndSize(sub, &n) : NULL;
        if (!p || gp_conn_head_add(c, "Sec-WebSocket-Protocol", 22, p, (size_t)n) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "invalid subprotocol");
            return NULL;
        }
    }
    if (gp_asgi_add_headers(c, headers) < 0) return NULL;
    s->state = WS_ACCEPTED;
    int r = gp_ws_begin(c, s->accept);
    if (r == GP_ERROR) goto bad;
    if (r == GP_AGAIN) return send_wait(s, NULL);
    return gp_asgi_ready(NULL);
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "could not send the WebSocket handshake");
    return NULL;
}

static PyObject *send_message(Session *s, PyObject *msg)
{
    if (s->state != WS_ACCEPTED) {
        PyErr_SetString(PyExc_RuntimeError,
                        "websocket.send before websocket.accept, or after close");
        return NULL;
    }
    PyObject *text = get(msg, G.k_text), *bytes = get(msg, G.k_bytes);
    if (PyErr_Occurred()) return NULL;
    PyObject *data;
    int binary;
    if (bytes && PyBytes_Check(bytes)) {
        data = bytes;
        Py_INCREF(data);
        binary = 1;
    } else if (text && PyUnicode_Check(text)) {
        data = PyUnicode_AsUTF8String(text);
        if (!data) return NULL;
        binary = 0;
    } else {
        PyErr_SetString(PyExc_TypeError, "websocket.send needs 'bytes' (bytes) or 'text' (str)");
        return NULL;
    }
    int r = gp_conn_peer_gone(s->conn)
                ? GP_ERROR
                : gp_ws_send(s->conn, binary, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    if (r == GP_ERROR) s->peer_left = true;
    PyObject *out = r == GP_AGAIN   ? send_wait(s, data)
                    : r == GP_ERROR ? gp_asgi_client_gone("websocket.send")
                                    : gp_asgi_ready(NULL);
    Py_DECREF(data);
    return out;
}

static PyObject *send_close(Session *s, PyObject *msg)
{
    PyObject *code_o = get(msg, G.k_code), *reason = get(msg, G.k_reason);
    if (PyErr_Occurred()) return NULL;
    long code = code_o ? PyLong_AsLong(code_o) : 1000;
    if (code == -1 && PyErr_Occurred()) return NULL;
    if (code < 0 || code > 65535 || !gp_ws_close_code_valid((unsigned)code)) {
        /* 1005 and 1006 only report a close that had no code, or no frame */
        PyErr_Format(PyExc_RuntimeError,
                     "websocket.close code %ld may not be sent (RFC 6455 7.4: 1000-1003, "
                     "1007-1014 or 3000-4999)",
                     code);
        return NULL;
    }
    if (reason && !PyUnicode_Check(reason)) {
        PyErr_SetString(PyExc_TypeError, "websocket.close 'reason' must be a str");
        return NULL;
    }
    if (s->state == WS_CONNECTING) { /* refused before accepting: a plain 403 */
        s->state = WS_DENIED;
        gp_conn_send_error(s->conn, 403, 1);
        finish(s);
        return gp_asgi_ready(NULL);
    }
    if (s->state != WS_ACCEPTED) return gp_asgi_ready(NULL);
    Py_ssize_t rl = 0;
    const char *r = reason ? PyUnicode_AsUTF8AndSize(reason, &rl) : "";
    if (!r) return NULL;
    gp_ws_close(s->conn, (unsigned)code, r, (size_t)rl);
    s->state = WS_CLOSED;
    s->close_code = (unsigned)code;
    finish(s);
    return gp_asgi_ready(NULL);
}

/* websocket.http.response.*: an HTTP answer instead of the handshake. */
static PyObject *send_denial(Session *s, PyObject *msg, bool start)
{
    gp_conn *c = s->conn;
    if (s->state != WS_CONNECTING && s->state != WS_DENIED) {
        PyErr_SetString(PyExc_RuntimeError, "websocket.http.response after websocket.accept");
        return NULL;
    }
    if (start) {
        if (s->denial_started) {
            PyErr_SetString(PyExc_RuntimeError, "websocket.http.response.start sent twice");
            return NULL;
        }
        PyObject *st = PyDict_GetItemWithError(msg, G.k_status);
        long status = st ? PyLong_AsLong(st) : -1;
        if (status < 100 || status > 999) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "invalid status");
            return NULL;
        }
        s->denial_status = (int)status;
        PyObject *h = get(msg, G.k_headers);
        Py_XINCREF(h);
        Py_XSETREF(s->denial_headers, h);
        s->denial_started = true;
        s->state = WS_DENIED;
        return gp_asgi_ready(NULL);
    }
    if (!s->denial_started) {
        PyErr_SetString(PyExc_RuntimeError, "websocket.http.response.body before its start");
        return NULL;
    }
    PyObject *body = get(msg, G.k_body), *more_o = get(msg, G.k_more_body);
    if (PyErr_Occurred()) return NULL;
    if (body && !PyBytes_Check(body)) {
        PyErr_Format(PyExc_TypeError, "websocket.http.response.body 'body' must be bytes, not %.80s",
                     Py_TYPE(body)->tp_name);
        return NULL;
    }
    int more = more_o ? PyObject_IsTrue(more_o) : 0;
    if (more < 0) return NULL;
    Py_ssize_t n = body ? PyBytes_GET_SIZE(body) : 0;
    if (!gp_conn_head_sent(c)) {
        if (gp_conn_head_begin_status(c, s->denial_status) < 0 ||
            gp_asgi_add_headers(c, s->denial_headers) < 0)
            return NULL;
        if (!more) gp_conn_head_set_length(c, (uint64_t)n);
        gp_conn_set_close(c);
        gp_conn_head_end(c);
    }
    int r = n ? gp_conn_write(c, PyBytes_AS_STRING(body), (size_t)n) : GP_OK;
    if (r == GP_ERROR) {
        s->peer_left = true;
        finish(s);
        return gp_asgi_ready(NULL);
    }
    if (r == GP_AGAIN) { /* not blocking the loop: resume ends it */
        s->denial_final = !more;
        return send_wait(s, body);
    }
    if (!more) {
        gp_conn_end_response(c);
        finish(s);
    }
    return gp_asgi_ready(NULL);
}

static PyObject *ws_send(PyObject *self, PyObject *msg)
{
    Session *s = (Session *)self;
    if (!PyDict_Check(msg)) {
        PyErr_SetString(PyExc_TypeError, "send() takes a dict message");
        return NULL;
    }
    PyObject *type = PyDict_GetItemWithError(msg, G.k_type);
    const char *t = type && PyUnicode_Check(type) ? PyUnicode_AsUTF8(type) : NULL;
    if (!t) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "the message has no 'type' str");
        return NULL;
    }
    if (!s->conn || s->state == WS_CLOSED) {
        if (strcmp(t, "websocket.close") == 0) return gp_asgi_ready(NULL); /* already closed */
        if (s->peer_left) return gp_asgi_client_gone(t);
        PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message %R after the WebSocket ended",
                     type);
        return NULL;
    }
    if (s->draining) {
        PyErr_SetString(PyExc_RuntimeError, "send() called before the previous send() completed");
        return NULL;
    }
    if (strcmp(t, "websocket.send") == 0) return send_message(s, msg);
    if (strcmp(t, "websocket.accept") == 0) return send_accept(s, msg);
    if (strcmp(t, "websocket.close") == 0) return send_close(s, msg);
    if (strcmp(t, "websocket.http.response.start") == 0) return send_denial(s, msg, true);
    if (strcmp(t, "websocket.http.response.body") == 0) return send_denial(s, msg, false);
    PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message type %R for a WebSocket", type);
    return NULL;
}

static PyMethodDef send_def = {"send", ws_send, METH_O, "ASGI send(message)"};

/* ---- the task ending ------------------------------------------------------------ */

static void app_ended(PyObject *owner, int how)
{
    Session *s = (Session *)owner;
    s->task_done = true;
    bool failed = how == GP_RUNNER_RAISED;
    if (failed) {
        gp_error("Exception in ASGI application, WebSocket %s", s->what);
        gp_bridge_print_error(); /* never exits on SystemExit */
    }
    if (s->conn) {
        if (s->state == WS_CONNECTING) {
            gp_conn_send_error(s->conn, failed ? 500 : 403, 1); /* never accepted */
        } else if (s->state == WS_DENIED && !gp_conn_head_sent(s->conn)) {
            gp_conn_send_error(s->conn, 500, 1);
        } else if (s->state == WS_ACCEPTED) {
            gp_ws_close(s->conn, failed ? 1011 : 1000, NULL, 0);
        }
        s->state = WS_CLOSED;
        finish(s);
    }
    Py_CLEAR(s->task);
}

/* ---- from the core -------------------------------------------------------------- */

static void ws_message(void *app, gp_conn *c, int binary, const char *data, size_t len)
{
    Session *s = gp_conn_app_state(c);
    if (!s) return;
    PyObject *payload =
        binary ? PyBytes_FromStringAndSize(data, (Py_ssize_t)len)
               : PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "strict"); /* validated in C */
    PyObject *m = payload ? PyDict_New() : NULL;
    if (!m || PyDict_SetItem(m, G.k_type, G.v_receive) < 0 ||
        PyDict_SetItem(m, binary ? G.k_bytes : G.k_text, payload) < 0) {
        Py_XDECREF(m);
        Py_XDECREF(payload);
        PyErr_WriteUnraisable(NULL);
        return;
    }
    Py_DECREF(payload);
    if (gp_asgi_pending(&s->recv_fut)) { /* else keep the message for the next receive() */
        gp_asgi_resolve(&s->recv_fut, m);
        return;
    }
    PyList_Append(s->queue, m);
    Py_DECREF(m);
    if (PyList_GET_SIZE(s->queue) >= QUEUE_MAX)
        gp_conn_wait_input(c, 0); /* the app is behind: stop reading */
}

static void ws_closed(void *app, gp_conn *c, unsigned code)
{
    Session *s = gp_conn_app_state(c);
    if (!s) return;
    if (s->state != WS_CLOSED) s->close_code = code;
    s->state = WS_CLOSED;
    s->peer_left = true;
    Py_INCREF(s);
    if (s->recv_fut && PyList_GET_SIZE(s->queue) == 0)
        gp_asgi_resolve(&s->recv_fut, disconnect_msg(s));
    finish(s);
    Py_DECREF(s);
}

void gp_asgi_ws_resume(gp_conn *c)
{
    Session *s = gp_conn_app_state(c);
    if (!s) return;
    Py_INCREF(s);
    s->draining = false;
    Py_CLEAR(s->send_keep);
    bool gone = gp_conn_peer_gone(c), denied = s->denial_final;
    s->denial_final = false;
    if (gone) {
        s->state = WS_CLOSED;
        s->peer_left = true;
    } else if (denied) {
        gp_conn_end_response(c);
    }
    if (gone || denied || s->state == WS_CLOSED || s->task_done) finish(s);
    gp_asgi_resolve(&s->send_fut, NULL);
    Py_DECREF(s);
}

/* Before the handshake completes the core reports only a client that left. */
void gp_asgi_ws_readable(gp_conn *c)
{
    if (gp_conn_peer_gone(c)) ws_closed(NULL, c, 1006);
}

void gp_asgi_ws_abort(gp_conn *c)
{
    Session *s = gp_conn_app_state(c);
    if (!s) return;
    Py_INCREF(s);
    gp_conn_set_app_state(c, NULL);
    s->conn = NULL;
    s->draining = false;
    Py_CLEAR(s->send_keep);
    if (s->state != WS_CLOSED) s->close_code = 1006;
    s->state = WS_CLOSED;
    s->peer_left = true;
    Py_DECREF(s); /* the connection's reference */
    gp_asgi_resolve(&s->recv_fut, disconnect_msg(s));
    gp_asgi_resolve(&s->send_fut, NULL);
    if (s->task && !s->task_done) {
        PyObject *x = PyObject_CallMethodNoArgs(s->task, G.s_cancel);
        Py_XDECREF(x);
        PyErr_Clear();
    }
    Py_DECREF(s);
}

/* ---- start ----------------------------------------------------------------------- */

bool gp_asgi_ws_is_upgrade(const gp_http_request *req)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (gp_http_token_eq(req->headers[i].name, req->headers[i].name_len, "upgrade"))
            return req->headers[i].value_len == 9 &&
                   gp_http_token_eq(req->headers[i].value, 9, "websocket");
    return false;
}

gp_app_status gp_asgi_ws_start(PyObject *app, int asgi2, gp_conn *c, const gp_http_request *req,
                               PyObject *scope)
{
    char accept[29];
    int status = gp_ws_check(req, accept);
    if (status) {
        Py_XDECREF(scope);
        if (status == 426 && !gp_conn_head_sent(c)) {
            gp_conn_head_begin_status(c, 426);
            gp_conn_head_add(c, "Sec-WebSocket-Version", 21, "13", 2);
            gp_conn_head_set_length(c, 0);
            gp_conn_set_close(c);
            gp_conn_head_end(c);
            gp_conn_end_response(c);
        } else {
            gp_conn_send_error(c, status, 1);
        }
        return GP_APP_DONE;
    }
    Session *s = PyObject_New(Session, &Session_Type);
    if (!s) {
        Py_XDECREF(scope);
        PyErr_Clear();
        gp_conn_send_error(c, 500, 1);
        return GP_APP_DONE;
    }
    memset((char *)s + sizeof(PyObject), 0, sizeof *s - sizeof(PyObject));
    s->conn = c;
    memcpy(s->accept, accept, sizeof accept);
    gp_conn_describe(s->what, sizeof s->what, req);
    s->queue = PyList_New(0);
    gp_conn_set_app_state(c, s); /* the connection's reference */

    PyObject *protos = NULL;
    if (scope) {
        gp_ws_token toks[32];
        const char *pv = NULL;
        size_t pl = 0;
        for (size_t i = 0; i < req->num_headers; i++)
            if (gp_http_token_eq(req->headers[i].name, req->headers[i].name_len,
                                 "sec-websocket-protocol"))
                pv = req->headers[i].value, pl = req->headers[i].value_len;
        int n = pv ? gp_ws_split_protocols(pv, pl, toks, 32) : 0;
        protos = PyList_New(0);
        for (int i = 0; protos && i < n && i < 32; i++) {
            PyObject *t = PyUnicode_DecodeLatin1(toks[i].ptr, (Py_ssize_t)toks[i].len, NULL);
            if (!t || PyList_Append(protos, t) < 0) Py_CLEAR(protos);
            Py_XDECREF(t);
        }
        gp_tls *tls = gp_conn_tls(c);
        PyObject *ext = tls ? PyDict_Copy(G.extensions) : Py_NewRef(G.extensions);
        PyObject *tx = tls && ext ? gp_bridge_tls_extension(tls) : NULL;
        if (tls && (!tx || PyDict_SetItemString(ext, "tls", tx) < 0)) Py_CLEAR(ext);
        Py_XDECREF(tx);
        if (!protos || !ext || PyDict_SetItemString(scope, "subprotocols", protos) < 0 ||
            PyDict_SetItemString(scope, "extensions", ext) < 0)
            Py_CLEAR(scope);
        Py_XDECREF(ext);
    }
    Py_XDECREF(protos);
    PyObject *coro = NULL;
    if (scope && s->queue) {
        PyObject *receive = PyCFunction_New(&receive_def, (PyObject *)s);
        PyObject *send = PyCFunction_New(&send_def, (PyObject *)s);
        coro = gp_asgi_call_app(app, asgi2, scope, receive, send);
        Py_XDECREF(receive);
        Py_XDECREF(send);
    }
    Py_XDECREF(scope);
    PyObject *runner = coro ? gp_runner_new() : NULL;
    int given = runner ? gp_runner_give(runner, coro, (PyObject *)s, app_ended) : -1;
    Py_XDECREF(coro);
    if (runner) gp_runner_close(runner);
    PyObject *task = given == 0 ? PyObject_CallOneArg(G.create_task, runner) : NULL;
    Py_XDECREF(runner);
    if (!task) {
        gp_error("Exception in ASGI application, WebSocket %s (starting the app)", s->what);
        gp_bridge_print_error(); /* never exits on SystemExit */
        Py_XDECREF(task);
        gp_conn_set_app_state(c, NULL);
        s->conn = NULL;
        Py_DECREF(s);
        gp_conn_send_error(c, 500, 1);
        return GP_APP_DONE;
    }
    if (!s->task_done) s->task = task; /* it may have ended already */
    else Py_DECREF(task);
    return GP_APP_ASYNC;
}

int gp_asgi_ws_init(PyObject *loop)
{
    if (PyType_Ready(&Session_Type) < 0) return -1;
    G.create_future = PyObject_GetAttrString(loop, "create_future");
    G.create_task = PyObject_GetAttrString(loop, "create_task");
    G.k_type = gp_bridge_intern("type");
    G.k_text = gp_bridge_intern("text");
    G.k_bytes = gp_bridge_intern("bytes");
    G.k_code = gp_bridge_intern("code");
    G.k_reason = gp_bridge_intern("reason");
    G.k_subprotocol = gp_bridge_intern("subprotocol");
    G.k_headers = gp_bridge_intern("headers");
    G.k_status = gp_bridge_intern("status");
    G.k_body = gp_bridge_intern("body");
    G.k_more_body = gp_bridge_intern("more_body");
    G.v_receive = gp_bridge_intern("websocket.receive");
    G.s_cancel = gp_bridge_intern("cancel");
    G.extensions = Py_BuildValue("{s:{}}", "websocket.http.response");
    return G.create_future && G.create_task && G.extensions && !PyErr_Occurred() ? 0 : -1;
}

const gp_app_ops *gp_asgi_ws_patch_ops(gp_app_ops *ops)
{
    ops->ws_message = ws_message;
    ops->ws_closed = ws_closed;
    return ops;
}
