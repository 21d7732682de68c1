/* asgi: ASGI for the worker core; see asgi.h.
 *
 * Per request: one scope dict, one Request object (which owns the response
 * state), two bound C callables (receive, send) and the app's Task. receive
 * and send return a ready awaitable when they can answer at once, so an
 * `await` does not go through the loop; they return a Future only to wait for
 * the client (body bytes, a drained socket, a disconnect). The control plane
 * (choosing the loop, lifespan, waiting for the stop) is a short Python
 * driver at the bottom of this file. */
#include "py/asgi.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/conn.h"
#include "core/log.h"
#include "core/worker.h"
#include "py/asgi_common.h"
#include "py/asgi_ws.h"
#include "py/bridge.h"
#include "py/runner.h"

#define BODY_CHUNK 65536
#define NAME_CACHE 64

typedef struct {
    char name[40];
    unsigned char len;
    PyObject *bytes; /* lower-case name */
} name_entry;

typedef struct gp_asgi {
    PyObject *app;
    int asgi2;
    const gp_config *cfg;
    gp_worker *worker;
    PyObject *create_future, *create_task;
    PyObject *state; /* lifespan state, copied into each scope */
    PyObject *asgi_info, *extensions;
    PyObject *k_type, *k_body, *k_more_body, *k_status, *k_headers, *k_trailers, *k_path,
        *k_more_trailers;
    PyObject *scope_keys[16];
    PyObject *v_http, *v_https, *v_http10, *v_http11, *v_request, *v_disconnect, *v_empty_bytes,
        *v_root;
    PyObject *msg_disconnect; /* a fresh copy is handed out each time */
    PyObject *s_set_result, *s_done, *s_cancel;
    name_entry names[NAME_CACHE];
    PyObject *http_template, *ws_template;
} gp_asgi;

static gp_asgi *the_asgi; /* one per worker process */

/* ---- Request ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gp_asgi *a;
    gp_conn *conn; /* NULL once detached: response done, client gone, or aborted */
    PyObject *task;
    PyObject *recv_fut, *send_fut;
    PyObject *send_keep; /* bytes the core may still point into */
    PyObject *headers;   /* from http.response.start, until the head goes out */
    PyObject *trailer_buf;
    int status;
    int file_fd;
    bool started, head_sent, complete, disconnected, body_delivered;
    bool trailers, body_ended, draining, send_final, task_done;
    char what[160];
} Request;

static PyTypeObject Request_Type;

static void Request_dealloc(Request *r)
{
    Py_XDECREF(r->task);
    Py_XDECREF(r->recv_fut);
    Py_XDECREF(r->send_fut);
    Py_XDECREF(r->send_keep);
    Py_XDECREF(r->headers);
    Py_XDECREF(r->trailer_buf);
    if (r->file_fd >= 0) close(r->file_fd);
    PyObject_Free(r);
}

static PyTypeObject Request_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.ASGIRequest",
    .tp_basicsize = sizeof(Request),
    .tp_dealloc = (destructor)Request_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

static PyObject *disconnect_msg(gp_asgi *a)
{
    return PyDict_Copy(a->msg_disconnect);
}

/* Lets go of the connection; the core keeps serving it. */
static void detach(Request *r)
{
    if (!r->conn) return;
    gp_conn_set_app_state(r->conn, NULL);
    r->conn = NULL;
    Py_CLEAR(r->send_keep);
    if (r->file_fd >= 0) {
        close(r->file_fd);
        r->file_fd = -1;
    }
    /* a receive() still waiting learns that the request is over */
    if (r->recv_fut) gp_asgi_resolve(&r->recv_fut, disconnect_msg(r->a));
    Py_DECREF(r); /* the connection's reference */
}

/* The response is finished (or abandoned): hand the connection back. */
static void finish(Request *r)
{
    gp_conn *c = r->conn;
    if (!c) return;
    r->complete = true;
    Py_INCREF(r);
    detach(r);
    gp_conn_app_done(c);
    Py_DECREF(r);
}

static void log_error(Request *r, const char *when)
{
    gp_error("Exception in ASGI application, %s (%s)", r->what, when);
    PyErr_PrintEx(0);
}

/* ---- scope ---------------------------------------------------------------- */

static PyObject *lower_name(gp_asgi *a, const char *name, size_t n)
{
    char low[sizeof a->names[0].name];
    if (n >= sizeof low) { /* too long to cache */
        PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        char *d = b ? PyBytes_AS_STRING(b) : NULL;
        for (size_t i = 0; d && i < n; i++) d[i] = (char)tolower((unsigned char)name[i]);
        return b;
    }
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        low[i] = (char)tolower((unsigned char)name[i]);
        h = (h ^ (unsigned char)low[i]) * 16777619u;
    }
    for (unsigned p = 0; p < 4; p++) {
        name_entry *e = &a->names[(h + p) % NAME_CACHE];
        if (!e->bytes) {
            e->bytes = PyBytes_FromStringAndSize(low, (Py_ssize_t)n);
            if (!e->bytes) return NULL;
            memcpy(e->name, low, n);
            e->len = (unsigned char)n;
        }
        if (e->len == n && memcmp(e->name, low, n) == 0) {
            Py_INCREF(e->bytes);
            return e->bytes;
        }
    }
    return PyBytes_FromStringAndSize(low, (Py_ssize_t)n);
}

static PyObject *server_tuple(gp_conn *c)
{
    const gp_bridge_server *sv = gp_bridge_server_of(c);
    return sv ? Py_NewRef(sv->tuple) : NULL;
}

enum {
    SK_TYPE,
    SK_ASGI,
    SK_HTTP_VERSION,
    SK_METHOD,
    SK_SCHEME,
    SK_PATH,
    SK_RAW_PATH,
    SK_QUERY,
    SK_ROOT,
    SK_HEADERS,
    SK_CLIENT,
    SK_SERVER,
    SK_STATE,
    SK_EXTENSIONS,
    SK_SUBPROTOCOLS,
    SK_COUNT
};

/* The parts of the scope HTTP and WebSocket share. */
/* ---- the connection: its client address and its task --------------------
 * One asyncio Task per keep-alive connection runs the app for each request
 * in turn (runner.c), so a request costs a future rather than a Task. A
 * request that arrives while the previous app call is still running
 * (background work after the response) gets a Task of its own. */

typedef struct Conn {
    PyObject_HEAD
    PyObject *client; /* (host, port), built once */
    PyObject *runner; /* what the connection's task drives */
    PyObject *task;
} Conn;

static void Conn_dealloc(Conn *k)
{
    Py_XDECREF(k->client);
    Py_XDECREF(k->runner);
    Py_XDECREF(k->task);
    PyObject_Free(k);
}

static PyTypeObject Conn_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.Connection",
    .tp_basicsize = sizeof(Conn),
    .tp_dealloc = (destructor)Conn_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

static void app_ended(PyObject *owner, int how);

static Conn *conn_state(gp_conn *c)
{
    Conn *k = gp_conn_app_cache(c);
    if (k) return k;
    k = PyObject_New(Conn, &Conn_Type);
    if (!k) return NULL;
    memset((char *)k + sizeof(PyObject), 0, sizeof *k - sizeof(PyObject));
    socklen_t sl;
    if (!(k->client = gp_bridge_addr_tuple(gp_conn_peer(c, &sl)))) {
        Py_DECREF(k);
        return NULL;
    }
    gp_conn_set_app_cache(c, k); /* the connection's reference */
    return k;
}

/* The client address, built once per connection. */
static PyObject *client_tuple(gp_conn *c)
{
    Conn *k = conn_state(c);
    return k ? Py_NewRef(k->client) : NULL;
}

/* The connection closed: its task ends once nothing runs on it. */
static void cache_free(void *app, void *cache)
{
    Conn *k = cache;
    if (k->runner) gp_runner_close(k->runner);
    Py_DECREF(k);
}

/* Hands a request's coroutine to the connection's task, or to a task of its
 * own. Returns 0, or -1 with an exception. */
static int schedule(gp_asgi *a, gp_conn *c, Request *r, PyObject *coro)
{
    Conn *k = conn_state(c);
    if (!k) return -1;
    if (!k->runner && !(k->runner = gp_runner_new())) return -1;
    if (gp_runner_idle(k->runner)) {
        if (gp_runner_give(k->runner, coro, (PyObject *)r, app_ended) < 0) return -1;
        if (!k->task && !(k->task = PyObject_CallOneArg(a->create_task, k->runner))) return -1;
        r->task = Py_NewRef(k->task);
        return 0;
    }
    PyObject *runner = gp_runner_new();
    if (!runner || gp_runner_give(runner, coro, (PyObject *)r, app_ended) < 0) {
        Py_XDECREF(runner);
        return -1;
    }
    gp_runner_close(runner);
    PyObject *task = PyObject_CallOneArg(a->create_task, runner);
    Py_XDECREF(runner);
    if (!task) return -1;
    if (!r->task_done) r->task = task; /* the app may have finished already */
    else Py_DECREF(task);
    return 0;
}

/* A copy of a template that already holds every key: the copy is one block
 * copy, and the values set afterwards replace rather than grow the table. */
static PyObject *scope_for(gp_conn *c, const gp_http_request *req, PyObject *template)
{
    gp_asgi *a = the_asgi;
    PyObject **K = a->scope_keys;
    PyObject *s = PyDict_Copy(template);
    if (!s) return NULL;
    if (!req->version_minor && PyDict_SetItem(s, K[SK_HTTP_VERSION], a->v_http10) < 0) goto fail;
    if (gp_bridge_set_steal(s, K[SK_RAW_PATH],
                  PyBytes_FromStringAndSize(req->path, (Py_ssize_t)req->path_len)) < 0)
        goto fail;
    const char *p;
    size_t under_root; /* ASGI keeps root_path inside path: nothing to strip */
    size_t plen = gp_bridge_path(req, &p, &under_root);
    if (gp_bridge_set_steal(s, K[SK_PATH], PyUnicode_DecodeUTF8(p, (Py_ssize_t)plen, "replace")) < 0)
        goto fail;
    if (gp_bridge_set_steal(s, K[SK_QUERY],
                  req->query ? PyBytes_FromStringAndSize(req->query, (Py_ssize_t)req->query_len)
                             : (Py_INCREF(a->v_empty_bytes), a->v_empty_bytes)) < 0)
        goto fail;
    PyObject *hl = PyList_New((Py_ssize_t)req->num_headers);
    if (!hl) goto fail;
    for (size_t i = 0; i < req->num_headers; i++) {
        const gp_http_header *h = &req->headers[i];
        PyObject *n = lower_name(a, h->name, h->name_len);
        PyObject *v = n ? PyBytes_FromStringAndSize(h->value, (Py_ssize_t)h->value_len) : NULL;
        PyObject *t = v ? PyTuple_Pack(2, n, v) : NULL;
        Py_XDECREF(n);
        Py_XDECREF(v);
        if (!t) {
            Py_DECREF(hl);
            goto fail;
        }
        PyList_SET_ITEM(hl, (Py_ssize_t)i, t);
    }
    if (gp_bridge_set_steal(s, K[SK_HEADERS], hl) < 0) goto fail;
    if (gp_bridge_set_steal(s, K[SK_CLIENT], client_tuple(c)) < 0) goto fail;
    if (gp_bridge_set_steal(s, K[SK_SERVER], server_tuple(c)) < 0) goto fail;
    if (a->state && gp_bridge_set_steal(s, K[SK_STATE], PyDict_Copy(a->state)) < 0) goto fail;
    return s;
fail:
    Py_DECREF(s);
    return NULL;
}

/* ---- receive ----------------------------------------------------------------- */

#define AGAIN_SENTINEL ((PyObject *)&Request_Type)

static PyObject *request_msg(gp_asgi *a, PyObject *body, bool more)
{
    PyObject *m = PyDict_New();
    if (!m || PyDict_SetItem(m, a->k_type, a->v_request) < 0 ||
        PyDict_SetItem(m, a->k_body, body) < 0 ||
        PyDict_SetItem(m, a->k_more_body, more ? Py_True : Py_False) < 0) {
        Py_XDECREF(m);
        m = NULL;
    }
    Py_DECREF(body);
    return m;
}

static void send_error_and_finish(Request *r, int status)
{
    if (!r->conn) return;
    if (!r->started) gp_conn_send_error(r->conn, status, 1);
    else gp_conn_set_close(r->conn);
    r->started = true;
    finish(r);
}

/* The next message for receive(), or AGAIN_SENTINEL to wait. */
static PyObject *try_receive(Request *r)
{
    gp_asgi *a = r->a;
    gp_conn *c = r->conn;
    if (!c || r->complete || r->disconnected) return disconnect_msg(a);
    if (!r->body_delivered) {
        PyObject *b = PyBytes_FromStringAndSize(NULL, BODY_CHUNK);
        if (!b) return NULL;
        ssize_t n = gp_conn_body_read_nb(c, PyBytes_AS_STRING(b), BODY_CHUNK);
        if (n == GP_BODY_AGAIN) {
            Py_DECREF(b);
            return AGAIN_SENTINEL;
        }
        if (n < 0) {
            Py_DECREF(b);
            int status = gp_conn_body_error_status(c);
            r->disconnected = true;
            if (n != GP_BODY_CLOSED) send_error_and_finish(r, status ? status : 400);
            return disconnect_msg(a);
        }
        if (gp_bridge_bytes_resize(&b, n, n) < 0) return NULL;
        bool more = n > 0 && !gp_conn_body_done(c);
        if (!more) r->body_delivered = true;
        return request_msg(a, b, more);
    }
    if (gp_conn_peer_gone(c)) {
        r->disconnected = true;
        return disconnect_msg(a);
    }
    return AGAIN_SENTINEL;
}

static PyObject *asgi_receive(PyObject *self, PyObject *unused)
{
    Request *r = (Request *)self;
    /* a receive() the app cancelled (wait_for, a task group) no longer counts */
    if (gp_asgi_pending(&r->recv_fut)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "receive() called again before the previous one completed");
        return NULL;
    }
    PyObject *m = try_receive(r);
    if (m != AGAIN_SENTINEL) return m ? gp_asgi_ready(m) : NULL;
    PyObject *fut = PyObject_CallNoArgs(r->a->create_future);
    if (!fut) return NULL;
    Py_INCREF(fut);
    r->recv_fut = fut;
    gp_conn_wait_input(r->conn, 1);
    return fut;
}

static PyMethodDef receive_def = {"receive", asgi_receive, METH_NOARGS, "ASGI receive()"};

/* ---- send --------------------------------------------------------------------- */

static PyObject *msg_get(PyObject *msg, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(msg, key);
    return v; /* borrowed; NULL without error when absent */
}

static int send_head(Request *r, long long known_length)
{
    gp_conn *c = r->conn;
    if (gp_conn_head_begin_status(c, r->status) < 0 || gp_asgi_add_checked(c, r->headers) < 0) goto bad;
    if (known_length >= 0 && !r->trailers) gp_conn_head_set_length(c, (uint64_t)known_length);
    if (gp_conn_head_end(c) < 0) goto bad;
    r->head_sent = true;
    Py_CLEAR(r->headers);
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError,
                    "invalid response head (a bad content-length, or the head is too large)");
    return -1;
}

/* After the last body bytes: end now, or wait for the trailers message. */
static void body_complete(Request *r)
{
    r->body_ended = true;
    if (r->trailers) return;
    gp_conn_end_response(r->conn);
    finish(r);
}

static PyObject *send_wait(Request *r, bool final)
{
    PyObject *fut = PyObject_CallNoArgs(r->a->create_future);
    if (!fut) return NULL;
    Py_INCREF(fut);
    r->send_fut = fut;
    r->draining = true;
    r->send_final = final;
    return fut;
}

static PyObject *ready_none(gp_asgi *a)
{
    return gp_asgi_ready(NULL);
}

static PyObject *send_body(Request *r, PyObject *msg)
{
    gp_asgi *a = r->a;
    if (!r->started) {
        PyErr_SetString(PyExc_RuntimeError, "http.response.body sent before http.response.start");
        return NULL;
    }
    if (r->body_ended) {
        PyErr_SetString(PyExc_RuntimeError, "http.response.body sent after the body ended");
        return NULL;
    }
    PyObject *body = msg_get(msg, a->k_body);
    PyObject *more_o = msg_get(msg, a->k_more_body);
    if (PyErr_Occurred()) return NULL;
    if (body && !PyBytes_Check(body)) {
        if (PyByteArray_Check(body) || PyMemoryView_Check(body)) {
            body = PyBytes_FromObject(body);
            if (!body) return NULL;
        } else {
            PyErr_Format(PyExc_TypeError, "http.response.body 'body' must be bytes, not %.80s",
                         Py_TYPE(body)->tp_name);
            return NULL;
        }
    } else if (body) {
        Py_INCREF(body);
    }
    int more = more_o ? PyObject_IsTrue(more_o) : 0;
    if (more < 0) goto fail;
    Py_ssize_t n = body ? PyBytes_GET_SIZE(body) : 0;
    if (!r->head_sent && send_head(r, more ? -1 : (long long)n) < 0) goto fail;
    if (n) {
        int rc = gp_conn_write(r->conn, PyBytes_AS_STRING(body), (size_t)n);
        if (rc == GP_OK && more) rc = gp_conn_flush(r->conn); /* out before the app's next await */
        if (rc == GP_AGAIN) {
            Py_XSETREF(r->send_keep, body);
            return send_wait(r, !more);
        }
        if (rc == GP_ERROR) {
            Py_XDECREF(body);
            r->disconnected = true;
            finish(r);
            return ready_none(a);
        }
    }
    Py_XDECREF(body);
    if (!more) body_complete(r);
    return ready_none(a);
fail:
    Py_XDECREF(body);
    return NULL;
}

static PyObject *send_pathsend(Request *r, PyObject *msg)
{
    gp_asgi *a = r->a;
    if (!r->started || r->body_ended) {
        PyErr_SetString(PyExc_RuntimeError,
                        "http.response.pathsend must follow http.response.start, alone");
        return NULL;
    }
    PyObject *path = msg_get(msg, a->k_path);
    if (!path) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "path");
        return NULL;
    }
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(path, &fs)) return NULL;
    int fd = open(PyBytes_AS_STRING(fs), O_RDONLY | O_CLOEXEC);
    Py_DECREF(fs);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        PyErr_Format(PyExc_FileNotFoundError, "http.response.pathsend: cannot send %R", path);
        return NULL;
    }
    if (!r->head_sent && send_head(r, (long long)st.st_size) < 0) {
        close(fd);
        return NULL;
    }
    r->file_fd = fd;
    int rc = gp_conn_sendfile(r->conn, fd, 0, (uint64_t)st.st_size);
    if (rc == GP_AGAIN) return send_wait(r, true);
    if (rc == GP_ERROR) {
        r->disconnected = true;
        finish(r);
        return ready_none(a);
    }
    body_complete(r);
    return ready_none(a);
}

static PyObject *send_trailers(Request *r, PyObject *msg)
{
    gp_asgi *a = r->a;
    if (!r->trailers || !r->body_ended) {
        PyErr_SetString(PyExc_RuntimeError,
                        "http.response.trailers needs trailers=True in the start message "
                        "and comes after the last body message");
        return NULL;
    }
    PyObject *hs = msg_get(msg, a->k_headers);
    PyObject *more_o = msg_get(msg, a->k_more_trailers);
    if (PyErr_Occurred()) return NULL;
    PyObject *list = hs ? gp_asgi_check_headers(hs) : PyList_New(0);
    if (!list) return NULL;
    if (!r->trailer_buf && !(r->trailer_buf = PyByteArray_FromStringAndSize(NULL, 0))) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *t = PyList_GET_ITEM(list, i);
        PyObject *line = PyBytes_FromFormat("%s: %s\r\n", PyBytes_AS_STRING(PyTuple_GET_ITEM(t, 0)),
                                            PyBytes_AS_STRING(PyTuple_GET_ITEM(t, 1)));
        if (!line) goto fail;
        PyObject *x = PySequence_InPlaceConcat(r->trailer_buf, line);
        Py_DECREF(line);
        if (!x) goto fail;
        Py_DECREF(x);
    }
    Py_DECREF(list);
    int more = more_o ? PyObject_IsTrue(more_o) : 0;
    if (more < 0) return NULL;
    if (!more) {
        gp_conn_end_response_trailers(r->conn, PyByteArray_AS_STRING(r->trailer_buf),
                                      (size_t)PyByteArray_GET_SIZE(r->trailer_buf));
        finish(r);
    }
    return ready_none(a);
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *send_start(Request *r, PyObject *msg)
{
    gp_asgi *a = r->a;
    if (r->started) {
        PyErr_SetString(PyExc_RuntimeError, "http.response.start sent twice");
        return NULL;
    }
    PyObject *st = msg_get(msg, a->k_status);
    if (!st) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "'status' missing from http.response.start");
        return NULL;
    }
    long status = PyLong_AsLong(st);
    if (status == -1 && PyErr_Occurred()) return NULL;
    if (status < 100 || status > 999) {
        PyErr_Format(PyExc_ValueError, "invalid HTTP status %ld", status);
        return NULL;
    }
    PyObject *hs = msg_get(msg, a->k_headers);
    PyObject *tr = msg_get(msg, a->k_trailers);
    if (PyErr_Occurred()) return NULL;
    PyObject *list = hs ? gp_asgi_check_headers(hs) : PyList_New(0);
    if (!list) return NULL;
    int trailers = tr ? PyObject_IsTrue(tr) : 0;
    if (trailers < 0) {
        Py_DECREF(list);
        return NULL;
    }
    r->status = (int)status;
    Py_XSETREF(r->headers, list);
    r->trailers = trailers;
    r->started = true;
    return ready_none(a);
}

static PyObject *asgi_send(PyObject *self, PyObject *msg)
{
    Request *r = (Request *)self;
    gp_asgi *a = r->a;
    if (!PyDict_Check(msg)) {
        PyErr_SetString(PyExc_TypeError, "send() takes a dict message");
        return NULL;
    }
    PyObject *type = msg_get(msg, a->k_type);
    if (!type || !PyUnicode_Check(type)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "the message has no 'type' str");
        return NULL;
    }
    if (!r->conn) {
        if (r->complete && !r->disconnected) {
            PyErr_Format(PyExc_RuntimeError,
                         "unexpected ASGI message %R after the response completed", type);
            return NULL;
        }
        return ready_none(a); /* the client is gone: sending is a no-op */
    }
    if (r->draining) {
        PyErr_SetString(PyExc_RuntimeError, "send() called before the previous send() completed");
        return NULL;
    }
    const char *t = PyUnicode_AsUTF8(type);
    if (!t) return NULL;
    if (strcmp(t, "http.response.body") == 0) return send_body(r, msg);
    if (strcmp(t, "http.response.start") == 0) return send_start(r, msg);
    if (strcmp(t, "http.response.pathsend") == 0) return send_pathsend(r, msg);
    if (strcmp(t, "http.response.trailers") == 0) return send_trailers(r, msg);
    PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message type %R for an HTTP request", type);
    return NULL;
}

static PyMethodDef send_def = {"send", asgi_send, METH_O, "ASGI send(message)"};

/* ---- the task ending ------------------------------------------------------- */

static void app_ended(PyObject *owner, int how)
{
    Request *r = (Request *)owner;
    r->task_done = true;
    if (how == GP_RUNNER_RAISED) log_error(r, "in the app");
    if (r->conn && !r->draining) {
        if (!r->started) {
            gp_conn_send_error(r->conn, 500, 0); /* no response at all */
            r->started = true;
        } else if (!r->complete) {
            gp_conn_set_close(r->conn); /* a body cut short */
        }
        finish(r);
    }
    Py_CLEAR(r->task);
}

/* ---- callbacks from the core ------------------------------------------------- */

static gp_app_status asgi_start(void *app, gp_conn *c, const gp_http_request *req)
{
    gp_asgi *a = app;
    if (req->upgrade && gp_asgi_ws_is_upgrade(req))
        return gp_asgi_ws_start(a->app, a->asgi2, c, req, scope_for(c, req, a->ws_template));
    Request *r = PyObject_New(Request, &Request_Type);
    if (!r) goto oom;
    memset((char *)r + sizeof(PyObject), 0, sizeof *r - sizeof(PyObject));
    r->a = a;
    r->conn = c;
    r->file_fd = -1;
    gp_conn_describe(r->what, sizeof r->what, req);
    gp_conn_set_app_state(c, r); /* the connection's reference */

    PyObject *scope = scope_for(c, req, a->http_template);
    if (!scope) goto fail;
    PyObject **K = a->scope_keys;
    if (gp_bridge_set_steal(scope, K[SK_METHOD], gp_bridge_method(req->method, req->method_len)) < 0) {
        Py_DECREF(scope);
        goto fail;
    }
    PyObject *receive = PyCFunction_New(&receive_def, (PyObject *)r);
    PyObject *send = PyCFunction_New(&send_def, (PyObject *)r);
    PyObject *coro = gp_asgi_call_app(a->app, a->asgi2, scope, receive, send);
    Py_XDECREF(receive);
    Py_XDECREF(send);
    Py_DECREF(scope);
    if (!coro) goto fail;
    int sc = schedule(a, c, r, coro);
    Py_DECREF(coro);
    if (sc < 0) goto fail;
    return GP_APP_ASYNC;
fail:
    log_error(r, "starting the app");
    r->started = true;
    detach(r);
    gp_conn_send_error(c, 500, 0);
    return GP_APP_DONE;
oom:
    PyErr_Clear();
    gp_conn_send_error(c, 500, 1);
    return GP_APP_DONE;
}

static void asgi_resume(void *app, gp_conn *c)
{
    Request *r = gp_conn_app_state(c);
    if (!r) return;
    if (gp_asgi_ws_owns(r)) {
        gp_asgi_ws_resume(c);
        return;
    }
    r->draining = false;
    Py_CLEAR(r->send_keep);
    Py_INCREF(r);
    if (gp_conn_peer_gone(c)) {
        r->disconnected = true;
        finish(r);
    } else if (r->send_final) {
        if (r->file_fd >= 0) {
            close(r->file_fd);
            r->file_fd = -1;
        }
        body_complete(r);
    } else if (r->task_done) {
        if (!r->complete) gp_conn_set_close(c);
        finish(r);
    }
    gp_asgi_resolve(&r->send_fut, NULL);
    Py_DECREF(r);
}

static void asgi_readable(void *app, gp_conn *c)
{
    Request *r = gp_conn_app_state(c);
    if (!r) return;
    if (gp_asgi_ws_owns(r)) {
        gp_asgi_ws_readable(c);
        return;
    }
    /* cancelled by the app (a timeout): keep the bytes for its next receive() */
    if (!gp_asgi_pending(&r->recv_fut)) {
        gp_conn_wait_input(c, 0);
        return;
    }
    PyObject *m = try_receive(r);
    if (m == AGAIN_SENTINEL) return;
    if (r->conn) gp_conn_wait_input(r->conn, 0);
    if (!m) {
        PyObject *fut = r->recv_fut;
        r->recv_fut = NULL;
        PyErr_WriteUnraisable(fut);
        Py_DECREF(fut);
        return;
    }
    gp_asgi_resolve(&r->recv_fut, m);
}

/* The core is closing the connection under the app (stop timeout, error). */
static void asgi_abort(void *app, gp_conn *c)
{
    Request *r = gp_conn_app_state(c);
    if (!r) return;
    if (gp_asgi_ws_owns(r)) {
        gp_asgi_ws_abort(c);
        return;
    }
    gp_asgi *a = r->a;
    Py_INCREF(r);
    r->disconnected = true;
    r->draining = false;
    gp_conn_set_app_state(c, NULL);
    r->conn = NULL;
    Py_CLEAR(r->send_keep);
    Py_DECREF(r); /* the connection's reference */
    gp_asgi_resolve(&r->recv_fut, disconnect_msg(a));
    gp_asgi_resolve(&r->send_fut, NULL);
    if (r->task && !r->task_done) {
        PyObject *x = PyObject_CallMethodNoArgs(r->task, a->s_cancel);
        Py_XDECREF(x);
        PyErr_Clear();
    }
    Py_DECREF(r);
}

const gp_app_ops gp_asgi_ops = {
    .runs_as_tasks = true,
    .start = asgi_start,
    .resume = (gp_app_status(*)(void *, gp_conn *))NULL,
    .abort = asgi_abort,
    .readable = asgi_readable,
};

/* The core's resume has the WSGI signature; the async bridge needs no status. */
static gp_app_status asgi_resume_status(void *app, gp_conn *c)
{
    asgi_resume(app, c);
    return GP_APP_ASYNC;
}

static gp_app_ops asgi_ops;

/* ---- set-up ---------------------------------------------------------------------- */

static int init_asgi(gp_asgi *a, PyObject *app, int asgi2, const gp_config *cfg, PyObject *loop)
{
    a->app = app;
    Py_INCREF(app);
    a->asgi2 = asgi2;
    a->cfg = cfg;
    a->create_future = PyObject_GetAttrString(loop, "create_future");
    a->create_task = PyObject_GetAttrString(loop, "create_task");
    if (!a->create_future || !a->create_task) return -1;
    static const char *const sk[] = {"type",      "asgi",       "http_version", "method",
                                     "scheme",    "path",       "raw_path",     "query_string",
                                     "root_path", "headers",    "client",       "server",
                                     "state",     "extensions", "subprotocols"};
    for (int i = 0; i < SK_COUNT; i++)
        if (!(a->scope_keys[i] = gp_bridge_intern(sk[i]))) return -1;
    a->scope_keys[SK_COUNT] = gp_bridge_intern("ws");
    a->k_type = a->scope_keys[SK_TYPE];
    a->k_headers = a->scope_keys[SK_HEADERS];
    a->k_path = a->scope_keys[SK_PATH];
    a->k_body = gp_bridge_intern("body");
    a->k_more_body = gp_bridge_intern("more_body");
    a->k_status = gp_bridge_intern("status");
    a->k_trailers = gp_bridge_intern("trailers");
    a->k_more_trailers = gp_bridge_intern("more_trailers");
    a->v_http = gp_bridge_intern("http");
    a->v_http10 = gp_bridge_intern("1.0");
    a->v_http11 = gp_bridge_intern("1.1");
    a->v_request = gp_bridge_intern("http.request");
    a->v_disconnect = gp_bridge_intern("http.disconnect");
    a->v_empty_bytes = PyBytes_FromStringAndSize("", 0);
    a->s_set_result = gp_bridge_intern("set_result");
    a->s_done = gp_bridge_intern("done");
    a->s_cancel = gp_bridge_intern("cancel");
    a->v_root = Py_NewRef(gp_bridge_root_str());
    a->asgi_info =
        Py_BuildValue("{s:s,s:s}", "version", asgi2 ? "2.0" : "3.0", "spec_version", "2.4");
    a->extensions = Py_BuildValue("{s:{},s:{},s:{}}", "http.response.pathsend",
                                  "http.response.trailers", "websocket.http.response");
    a->msg_disconnect = Py_BuildValue("{s:s}", "type", "http.disconnect");
    if (!a->v_root || !a->asgi_info || !a->extensions || !a->msg_disconnect ||
        !a->v_empty_bytes)
        return -1;
    /* every key a scope has, in the order apps print them */
    for (int kind = 0; kind < 2; kind++) {
        PyObject *t = PyDict_New();
        PyObject **K = a->scope_keys;
        if (!t) return -1;
        PyObject *vals[SK_COUNT] = {
            [SK_TYPE] = kind ? gp_bridge_intern("websocket") : a->v_http,
            [SK_ASGI] = a->asgi_info,
            [SK_HTTP_VERSION] = a->v_http11,
            [SK_METHOD] = gp_bridge_intern("GET"),
            [SK_SCHEME] = kind ? a->scope_keys[SK_COUNT] : a->v_http,
            [SK_PATH] = a->v_root,
            [SK_RAW_PATH] = a->v_empty_bytes,
            [SK_QUERY] = a->v_empty_bytes,
            [SK_ROOT] = a->v_root,
            [SK_HEADERS] = Py_None,
            [SK_CLIENT] = Py_None,
            [SK_SERVER] = Py_None,
            [SK_STATE] = Py_None,
            [SK_EXTENSIONS] = a->extensions,
            [SK_SUBPROTOCOLS] = Py_None,
        };
        for (int i = 0; i < SK_COUNT; i++) {
            if (i == SK_METHOD && kind) continue;
            if ((i == SK_SUBPROTOCOLS && !kind) || (i == SK_STATE && !a->state)) continue;
            if (!vals[i] || PyDict_SetItem(t, K[i], vals[i]) < 0) return -1;
        }
        if (kind) a->ws_template = t;
        else a->http_template = t;
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* ---- for the driver (asgi_driver.c) ------------------------------------------ */

gp_worker *gp_asgi_bridge(const gp_worker_args *args, PyObject *app, int asgi2, PyObject *loop,
                          PyObject **state)
{
    if (gp_asgi_common_init() < 0 || PyType_Ready(&Request_Type) < 0 ||
        PyType_Ready(&Conn_Type) < 0)
        return NULL;
    gp_asgi *a = PyMem_Calloc(1, sizeof *a);
    if (a) a->state = PyDict_New();
    if (!a || init_asgi(a, app, asgi2, args->cfg, loop) < 0 || gp_asgi_ws_init(loop) < 0 ||
        gp_runner_init(a->create_future) < 0)
        return NULL;
    the_asgi = a;
    asgi_ops = gp_asgi_ops;
    asgi_ops.resume = asgi_resume_status;
    asgi_ops.cache_free = cache_free;
    gp_asgi_ws_patch_ops(&asgi_ops);
    a->worker = gp_worker_create(args, &asgi_ops, a);
    *state = a->state;
    return a->worker;
}

int gp_asgi_turn(PyObject *done)
{
    gp_asgi *a = the_asgi;
    if (gp_worker_turn(a->worker, 0)) return 0;
    PyObject *d = PyObject_CallMethodNoArgs(done, a->s_done);
    PyObject *r = d == Py_False ? PyObject_CallMethodOneArg(done, a->s_set_result, Py_None)
                                : Py_NewRef(Py_None);
    Py_XDECREF(d);
    Py_XDECREF(r);
    return r ? 0 : -1;
}
