/* asgi: ASGI for the worker core; see asgi.h.
 *
 * Per request: one scope dict, one Request object (which owns the response
 * state), two bound C callables (receive, send) and the app's own Task
 * (runner.c). receive() and send() return a Call: a small C coroutine that
 * does nothing until it is awaited or scheduled (asyncio takes it wherever a
 * coroutine goes), then answers at once when it can, so an `await` does not
 * go through the loop, and waits on a future only for the client (body
 * bytes, a drained socket, a disconnect). Several receive() may wait at
 * once: each message goes to the oldest, a disconnect to all. Streamed body
 * pieces are flushed when the request's Task is about to wait, so the
 * pieces sent in one step of the app leave in one write. The control plane
 * (choosing the loop, lifespan, waiting for the stop) is asgi_driver.c. */
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
    PyObject *loop, *task_type, *get_task_factory, *task_kwnames;
    PyObject *state; /* lifespan state, copied into each scope */
    PyObject *asgi_info, *extensions;
    PyObject *k_type, *k_body, *k_more_body, *k_status, *k_headers, *k_trailers, *k_path,
        *k_more_trailers;
    PyObject *scope_keys[16];
    PyObject *v_http, *v_https, *v_http10, *v_http11, *v_http2, *v_request, *v_disconnect, *v_empty_bytes,
        *v_root;
    PyObject *v_wss, *k_host; /* for proxy headers */
    PyObject *k_tls;          /* the "tls" extension */
    PyObject *msg_disconnect; /* a fresh copy is handed out each time */
    PyObject *s_set_result, *s_done, *s_cancel;
    name_entry names[NAME_CACHE];
    PyObject *http_template, *ws_template;
    PyObject *client_gone; /* the OSError subclass send() raises once the client left */
    PyObject *s_result, *s_set_exception, *s_blocking;
    PyObject *call_soon, *run_soon; /* loop.call_soon, and the callback it is given */
    void (*soon_fn)(void *);        /* what run_soon runs; NULL: nothing asked */
    void *soon_arg;
} gp_asgi;

static gp_asgi *the_asgi; /* one per worker process */

/* ---- Request ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gp_asgi *a;
    gp_conn *conn; /* NULL once detached: response done, client gone, or aborted */
    PyObject *task, *runner; /* until the app call ends */
    PyObject *recv_waiters;  /* futures of the receive() calls waiting, oldest first */
    PyObject *send_fut;
    PyObject *send_keep; /* bytes the core may still point into */
    PyObject *trailer_buf;
    int status;
    int file_fd;
    bool started, head_sent, complete, disconnected, body_delivered;
    bool trailers, body_ended, draining, send_final, task_done;
    bool unflushed; /* streamed bytes wait in the core's buffer for the step's end */
    char what[160];
} Request;

static PyTypeObject Request_Type;

static void Request_dealloc(Request *r)
{
    Py_XDECREF(r->task);
    Py_XDECREF(r->runner);
    Py_XDECREF(r->recv_waiters);
    Py_XDECREF(r->send_fut);
    Py_XDECREF(r->send_keep);
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

/* Fails a waiting future with the app's view of a departed client. */
static void fail_gone(PyObject **futp)
{
    PyObject *fut = *futp;
    *futp = NULL;
    if (fut && gp_asgi_pending(&fut)) {
        PyObject *e = PyObject_CallFunction(the_asgi->client_gone, "s", "the client has gone");
        PyObject *x = e ? PyObject_CallMethodOneArg(fut, the_asgi->s_set_exception, e) : NULL;
        if (!x) PyErr_WriteUnraisable(fut);
        Py_XDECREF(x);
        Py_XDECREF(e);
    }
    Py_XDECREF(fut);
}

/* The oldest receive() still waiting (one the app cancelled is dropped), or
 * NULL; borrowed. */
static PyObject *first_waiter(Request *r)
{
    PyObject *w = r->recv_waiters;
    while (w && PyList_GET_SIZE(w)) {
        PyObject *fut = Py_NewRef(PyList_GET_ITEM(w, 0));
        bool pending = gp_asgi_pending(&fut);
        if (pending) {
            Py_DECREF(fut);
            return PyList_GET_ITEM(w, 0);
        }
        if (PySequence_DelItem(w, 0) < 0) {
            PyErr_Clear();
            return NULL;
        }
    }
    return NULL;
}

/* Hands m (stolen, or NULL with an exception) to the oldest waiter. */
static void answer_first(Request *r, PyObject *m)
{
    PyObject *fut = Py_NewRef(PyList_GET_ITEM(r->recv_waiters, 0));
    if (PySequence_DelItem(r->recv_waiters, 0) < 0) PyErr_Clear();
    if (m) {
        gp_asgi_resolve(&fut, m);
        return;
    }
    PyObject *e = gp_bridge_take_error();
    PyObject *x = e ? PyObject_CallMethodOneArg(fut, r->a->s_set_exception, e) : NULL;
    if (!x) PyErr_WriteUnraisable(fut);
    Py_XDECREF(x);
    Py_XDECREF(e);
    Py_DECREF(fut);
}

/* Every receive() waiting learns that the request is over. */
static void disconnect_waiters(Request *r)
{
    while (first_waiter(r)) answer_first(r, disconnect_msg(r->a));
    Py_CLEAR(r->recv_waiters);
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
    disconnect_waiters(r);
    if (r->disconnected) fail_gone(&r->send_fut);
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
    gp_bridge_print_error();
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

/* ---- the connection: its client address ------------------------------------ */

typedef struct Conn {
    PyObject_HEAD
    PyObject *client; /* (host, port), built once */
} Conn;

static void Conn_dealloc(Conn *k)
{
    Py_XDECREF(k->client);
    PyObject_Free(k);
}

static PyTypeObject Conn_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.Connection",
    .tp_basicsize = sizeof(Conn),
    .tp_dealloc = (destructor)Conn_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* The client address, built once per connection. */
static PyObject *client_tuple(gp_conn *c)
{
    Conn *k = gp_conn_app_cache(c);
    if (!k) {
        k = PyObject_New(Conn, &Conn_Type);
        if (!k) return NULL;
        socklen_t sl;
        if (!(k->client = gp_bridge_addr_tuple(gp_conn_peer(c, &sl)))) {
            PyObject_Free(k);
            return NULL;
        }
        gp_conn_set_app_cache(c, k); /* the connection's reference */
    }
    return Py_NewRef(k->client);
}

static void cache_free(void *app, void *cache)
{
    Py_DECREF((PyObject *)cache);
}

/* A fresh copy of a template dict of dicts (the scope's extensions), so that
 * what one request writes into it is not seen by the next. */
static PyObject *fresh_dicts(PyObject *tmpl)
{
    PyObject *d = PyDict_Copy(tmpl);
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (d && PyDict_Next(tmpl, &pos, &k, &v))
        if (gp_bridge_set_steal(d, k, PyDict_New()) < 0) Py_CLEAR(d);
    return d;
}

/* The Host a trusted proxy forwarded replaces the request's in the headers. */
static int set_host(PyObject *hl, const gp_http_request *req, const gp_fwd *f)
{
    PyObject *v = PyBytes_FromStringAndSize(f->host, (Py_ssize_t)f->host_len);
    PyObject *t = v ? PyTuple_Pack(2, the_asgi->k_host, v) : NULL;
    Py_XDECREF(v);
    if (!t) return -1;
    for (size_t i = 0; i < req->num_headers; i++)
        if (gp_http_token_eq(req->headers[i].name, req->headers[i].name_len, "host"))
            return PyList_SetItem(hl, (Py_ssize_t)i, t); /* steals t */
    int r = PyList_Append(hl, t);
    Py_DECREF(t);
    return r;
}

/* The client, scheme and root_path a trusted proxy said (core/forwarded.h). */
static int set_forwarded(PyObject *s, const gp_fwd *f, bool ws)
{
    gp_asgi *a = the_asgi;
    PyObject **K = a->scope_keys;
    if ((f->set & GP_FWD_FOR) &&
        gp_bridge_set_steal(s, K[SK_CLIENT], Py_BuildValue("(si)", f->client, f->client_port)) < 0)
        return -1;
    PyObject *ws_scheme = f->secure ? a->v_wss : K[SK_COUNT]; /* "wss", "ws" */
    PyObject *scheme = ws ? ws_scheme : f->secure ? a->v_https : a->v_http;
    if ((f->set & GP_FWD_PROTO) && PyDict_SetItem(s, K[SK_SCHEME], scheme) < 0) return -1;
    if (f->set & GP_FWD_PREFIX) {
        PyObject *pre = PyUnicode_DecodeLatin1(f->prefix, (Py_ssize_t)f->prefix_len, NULL);
        PyObject *root = pre ? PyUnicode_Concat(pre, a->v_root) : NULL;
        Py_XDECREF(pre);
        if (gp_bridge_set_steal(s, K[SK_ROOT], root) < 0) return -1;
    }
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
    if (req->version_minor != 1 &&
        PyDict_SetItem(s, K[SK_HTTP_VERSION],
                       req->version_minor == GP_HTTP_VERSION_2 ? a->v_http2 : a->v_http10) < 0)
        goto fail;
    if (gp_bridge_set_steal(s, K[SK_RAW_PATH],
                  PyBytes_FromStringAndSize(req->path, (Py_ssize_t)req->path_len)) < 0)
        goto fail;
    const char *p;
    size_t under_root; /* ASGI keeps root_path inside path: nothing to strip */
    size_t plen = gp_bridge_path(req, &p, &under_root);
    if (gp_bridge_set_steal(s, K[SK_PATH], PyUnicode_DecodeUTF8(p, (Py_ssize_t)plen, "replace")) < 0)
        goto fail;
    /* the template's values stand for no query and GET */
    if (req->query && gp_bridge_set_steal(s, K[SK_QUERY], PyBytes_FromStringAndSize(
                                                     req->query, (Py_ssize_t)req->query_len)) < 0)
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
    gp_fwd fwd;
    bool fw = req->proxy_headers && gp_conn_forwarded(c, req, &fwd);
    if (fw && (fwd.set & GP_FWD_HOST) && set_host(hl, req, &fwd) < 0) {
        Py_DECREF(hl);
        goto fail;
    }
    if (gp_bridge_set_steal(s, K[SK_HEADERS], hl) < 0) goto fail;
    if (gp_bridge_set_steal(s, K[SK_CLIENT], client_tuple(c)) < 0) goto fail;
    gp_tls *tls = gp_conn_tls(c);
    if (tls && PyDict_SetItem(s, K[SK_SCHEME], template == a->ws_template ? a->v_wss : a->v_https) < 0)
        goto fail;
    if (fw && set_forwarded(s, &fwd, template == a->ws_template) < 0) goto fail;
    if (gp_bridge_set_steal(s, K[SK_SERVER], server_tuple(c)) < 0) goto fail;
    if (gp_bridge_set_steal(s, K[SK_ASGI], PyDict_Copy(a->asgi_info)) < 0 ||
        gp_bridge_set_steal(s, K[SK_EXTENSIONS], fresh_dicts(a->extensions)) < 0)
        goto fail;
    if (tls && gp_bridge_set_steal(PyDict_GetItem(s, K[SK_EXTENSIONS]), a->k_tls,
                                   gp_bridge_tls_extension(tls)) < 0)
        goto fail;
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

/* A receive() taking effect: 0 with the message in *out, 1 with a future to
 * wait on (the oldest waiter gets the next message), -1 with an exception. */
static int receive_now(Request *r, PyObject **out)
{
    PyObject *m = try_receive(r);
    if (m != AGAIN_SENTINEL) {
        *out = m;
        return m ? 0 : -1;
    }
    PyObject *fut = PyObject_CallNoArgs(r->a->create_future);
    if (!fut) return -1;
    if ((!r->recv_waiters && !(r->recv_waiters = PyList_New(0))) ||
        PyList_Append(r->recv_waiters, fut) < 0) {
        Py_DECREF(fut);
        return -1;
    }
    gp_conn_wait_input(r->conn, 1);
    *out = fut;
    return 1;
}

/* ---- send --------------------------------------------------------------------- */

static PyObject *msg_get(PyObject *msg, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(msg, key);
    return v; /* borrowed; NULL without error when absent */
}

static const char bad_head[] =
    "invalid response head (a bad content-length, or the head is too large)";

/* The start message's headers go straight into the head the core builds
 * (nothing goes out before the first body message, and an error response
 * starts the head afresh): no copy of the list. 0, or -1 with an exception. */
static int begin_head(Request *r, int status, PyObject *headers)
{
    gp_conn *c = r->conn;
    if (gp_conn_head_begin_status(c, status) < 0) {
        PyErr_SetString(PyExc_ValueError, bad_head);
        return -1;
    }
    if (!headers) return 0;
    PyObject *seq = PySequence_Fast(headers, "headers must be an iterable of [name, value] pairs");
    if (!seq) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *h = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *pair = PySequence_Fast(h, "each header must be a [name, value] pair");
        if (!pair) {
            rc = -1;
            break;
        }
        PyObject *nm = PySequence_Fast_GET_SIZE(pair) == 2 ? PySequence_Fast_GET_ITEM(pair, 0) : NULL;
        PyObject *v = nm ? PySequence_Fast_GET_ITEM(pair, 1) : NULL;
        if (!nm || !PyBytes_Check(nm) || !PyBytes_Check(v)) {
            PyErr_Format(PyExc_TypeError, "header %R must be a pair of bytes", h);
            rc = -1;
        } else if (gp_conn_head_add(c, PyBytes_AS_STRING(nm), (size_t)PyBytes_GET_SIZE(nm),
                                    PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v)) < 0) {
            if (!gp_conn_field_ok(PyBytes_AS_STRING(nm), (size_t)PyBytes_GET_SIZE(nm),
                                  PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v)))
                PyErr_Format(PyExc_ValueError,
                             "invalid header %R (bad name, or CR, LF or another control byte)", h);
            else PyErr_SetString(PyExc_ValueError, bad_head);
            rc = -1;
        }
        Py_DECREF(pair);
    }
    Py_DECREF(seq);
    return rc;
}

static int send_head(Request *r, long long known_length)
{
    gp_conn *c = r->conn;
    if (known_length >= 0 && !r->trailers) gp_conn_head_set_length(c, (uint64_t)known_length);
    if (gp_conn_head_end(c) < 0) goto bad;
    r->head_sent = true;
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

/* The send() that found the client gone. */
static PyObject *client_gone(Request *r)
{
    r->disconnected = true;
    finish(r);
    PyErr_SetString(r->a->client_gone, "the client has gone");
    return NULL;
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
        if (rc == GP_AGAIN) {
            Py_XSETREF(r->send_keep, body);
            return send_wait(r, !more);
        }
        if (rc == GP_ERROR) {
            Py_XDECREF(body);
            return client_gone(r);
        }
    }
    Py_XDECREF(body);
    if (!more) {
        body_complete(r);
    } else if (gp_runner_running(r->runner)) {
        r->unflushed = true; /* goes out when the app's Task waits */
    } else if (gp_conn_flush(r->conn) == GP_ERROR) { /* sent from another task: now */
        return client_gone(r);
    }
    return Py_NewRef(Py_None);
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
    if (rc == GP_ERROR) return client_gone(r);
    body_complete(r);
    return Py_NewRef(Py_None);
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
    return Py_NewRef(Py_None);
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
    int trailers = tr ? PyObject_IsTrue(tr) : 0;
    if (trailers < 0 || begin_head(r, (int)status, hs) < 0) return NULL;
    r->status = (int)status;
    r->trailers = trailers;
    r->started = true;
    return Py_NewRef(Py_None);
}

/* A send() taking effect: None once done, a future to wait on (the socket is
 * full), or NULL with an exception. */
static PyObject *send_now(Request *r, PyObject *msg)
{
    gp_asgi *a = r->a;
    PyObject *type = msg_get(msg, a->k_type);
    if (!type || !PyUnicode_Check(type)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "the message has no 'type' str");
        return NULL;
    }
    if (!r->conn) {
        if (r->disconnected) {
            PyErr_SetString(a->client_gone, "the client has gone");
            return NULL;
        }
        if (r->complete) {
            PyErr_Format(PyExc_RuntimeError,
                         "unexpected ASGI message %R after the response completed", type);
            return NULL;
        }
        return Py_NewRef(Py_None);
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

/* ---- Call: what receive() and send() return ---------------------------------
 * A coroutine in all but type: nothing happens until it is awaited or a Task
 * steps it; then it answers at once, or yields the future it waits on. */

enum { CALL_NEW, CALL_WAITING, CALL_DONE };

typedef struct {
    PyObject_HEAD
    Request *r;
    PyObject *msg; /* send's message; NULL for receive */
    PyObject *fut; /* while waiting */
    int state;
} Call;

static PyTypeObject Call_Type;

/* Two Calls a hello-world request: kept for reuse rather than freed. */
#define CALL_SPARE 16
static Call *call_spare[CALL_SPARE];
static int n_call_spare;

static PyObject *call_new(Request *r, PyObject *msg)
{
    Call *k = n_call_spare ? (Call *)PyObject_Init((PyObject *)call_spare[--n_call_spare], &Call_Type)
                           : PyObject_New(Call, &Call_Type);
    if (!k) return NULL;
    k->r = (Request *)Py_NewRef(r);
    k->msg = Py_XNewRef(msg);
    k->fut = NULL;
    k->state = CALL_NEW;
    return (PyObject *)k;
}

/* Stops waiting; a message not yet taken stays for the next receive(). */
static void call_drop(Call *k)
{
    k->state = CALL_DONE;
    PyObject *fut = k->fut;
    k->fut = NULL;
    if (fut && gp_asgi_pending(&fut)) {
        PyObject *x = PyObject_CallMethodNoArgs(fut, k->r->a->s_cancel);
        if (!x) PyErr_WriteUnraisable(fut);
        Py_XDECREF(x);
    }
    Py_XDECREF(fut);
    Py_CLEAR(k->msg);
}

static PySendResult yield_future(Call *k, PyObject **result)
{
    if (PyObject_SetAttr(k->fut, k->r->a->s_blocking, Py_True) < 0) {
        call_drop(k);
        return PYGEN_ERROR;
    }
    *result = Py_NewRef(k->fut);
    return PYGEN_NEXT;
}

static PySendResult Call_am_send(Call *k, PyObject *arg, PyObject **result)
{
    if (k->state == CALL_NEW) {
        PyObject *out = NULL;
        int rc;
        if (k->msg) {
            out = send_now(k->r, k->msg);
            rc = !out ? -1 : out == Py_None ? 0 : 1;
        } else {
            rc = receive_now(k->r, &out);
        }
        if (rc <= 0) {
            call_drop(k);
            *result = out;
            return rc ? PYGEN_ERROR : PYGEN_RETURN;
        }
        k->fut = out;
        k->state = CALL_WAITING;
        return yield_future(k, result);
    }
    if (k->state == CALL_WAITING) {
        PyObject *fut = Py_NewRef(k->fut);
        if (gp_asgi_pending(&fut)) { /* stepped before its future is done */
            Py_DECREF(fut);
            return yield_future(k, result);
        }
        PyObject *res = PyObject_CallMethodNoArgs(k->fut, k->r->a->s_result);
        call_drop(k);
        *result = res;
        return res ? PYGEN_RETURN : PYGEN_ERROR;
    }
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
    return PYGEN_ERROR;
}

static PyObject *Call_throw(Call *k, PyObject *const *args, Py_ssize_t nargs)
{
    call_drop(k);
    gp_runner_set_thrown(args, nargs);
    return NULL;
}

static PyObject *Call_close(Call *k, PyObject *unused)
{
    call_drop(k);
    Py_RETURN_NONE;
}

static void Call_dealloc(Call *k)
{
    if (k->state == CALL_WAITING) call_drop(k);
    Py_XDECREF(k->fut);
    Py_XDECREF(k->msg);
    Py_DECREF(k->r);
    if (n_call_spare < CALL_SPARE) call_spare[n_call_spare++] = k;
    else PyObject_Free(k);
}

static PyTypeObject Call_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.ASGICall",
    .tp_basicsize = sizeof(Call),
    .tp_dealloc = (destructor)Call_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "an ASGI receive() or send() that takes effect when awaited",
};

/* ---- Endpoint: the receive and send callables of one request ----------------
 * Two per request: small vectorcall objects kept for reuse, rather than bound
 * builtin methods (which are allocated and garbage-collector tracked). */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Request *r;
} Endpoint;

static PyTypeObject Endpoint_Type;
#define ENDPOINT_SPARE 16
static Endpoint *endpoint_spare[ENDPOINT_SPARE];
static int n_endpoint_spare;

static PyObject *asgi_receive(PyObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) || kwnames) {
        PyErr_SetString(PyExc_TypeError, "receive() takes no arguments");
        return NULL;
    }
    return call_new(((Endpoint *)self)->r, NULL);
}

static PyObject *asgi_send(PyObject *self, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "send() takes one message");
        return NULL;
    }
    if (!PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "send() takes a dict message");
        return NULL;
    }
    return call_new(((Endpoint *)self)->r, args[0]);
}

static PyObject *endpoint_new(Request *r, vectorcallfunc f)
{
    Endpoint *e = n_endpoint_spare
                      ? (Endpoint *)PyObject_Init((PyObject *)endpoint_spare[--n_endpoint_spare],
                                                  &Endpoint_Type)
                      : PyObject_New(Endpoint, &Endpoint_Type);
    if (!e) return NULL;
    e->vectorcall = f;
    e->r = (Request *)Py_NewRef(r);
    return (PyObject *)e;
}

static void Endpoint_dealloc(Endpoint *e)
{
    Py_DECREF(e->r);
    if (n_endpoint_spare < ENDPOINT_SPARE) endpoint_spare[n_endpoint_spare++] = e;
    else PyObject_Free(e);
}

static PyObject *Endpoint_repr(Endpoint *e)
{
    return PyUnicode_FromFormat("<ASGI %s of %s>", e->vectorcall == asgi_send ? "send" : "receive",
                                e->r->what);
}

static PyTypeObject Endpoint_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.ASGIEndpoint",
    .tp_basicsize = sizeof(Endpoint),
    .tp_dealloc = (destructor)Endpoint_dealloc,
    .tp_vectorcall_offset = offsetof(Endpoint, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)Endpoint_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "ASGI receive() or send(message) of one request",
};

/* The app's Task is about to wait: what it streamed goes out now. */
static void request_yielded(PyObject *owner)
{
    Request *r = (Request *)owner;
    if (!r->unflushed || !r->conn) return;
    r->unflushed = false;
    gp_conn_flush(r->conn); /* a client gone shows at the next send() */
}

/* ---- the task ending ------------------------------------------------------- */

static void app_ended(PyObject *owner, int how)
{
    Request *r = (Request *)owner;
    r->task_done = true;
    if (how == GP_RUNNER_RAISED) {
        /* the app let send()'s own signal through: nothing to report */
        if (r->disconnected && PyErr_ExceptionMatches(r->a->client_gone)) PyErr_Clear();
        else log_error(r, "in the app");
    }
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
    Py_CLEAR(r->runner);
}

/* ---- callbacks from the core ------------------------------------------------- */

/* loop.create_task(runner), with the request's path as the Task's name: without a
 * task factory the Task is built directly, which spares the generic
 * "Task-<n>" formatting (a tenth of a hello-world request). */
static PyObject *new_task(gp_asgi *a, PyObject *runner, PyObject *name)
{
    PyObject *factory = PyObject_CallNoArgs(a->get_task_factory);
    if (!factory) return NULL;
    bool plain = factory == Py_None;
    Py_DECREF(factory);
    if (!plain) return PyObject_CallOneArg(a->create_task, runner);
    PyObject *args[] = {runner, a->loop, name};
    return PyObject_Vectorcall(a->task_type, args, 1, a->task_kwnames);
}

static const char *asgi_describe(void *app, gp_conn *c)
{
    Request *r = gp_conn_app_state(c);
    return r && Py_IS_TYPE(r, &Request_Type) ? r->what : NULL;
}

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
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    if (!get && gp_bridge_set_steal(scope, K[SK_METHOD],
                                    gp_bridge_method(req->method, req->method_len)) < 0) {
        Py_DECREF(scope);
        goto fail;
    }
    PyObject *receive = endpoint_new(r, asgi_receive);
    PyObject *send = receive ? endpoint_new(r, asgi_send) : NULL;
    PyObject *coro = gp_asgi_call_app(a->app, a->asgi2, scope, receive, send);
    Py_XDECREF(receive);
    Py_XDECREF(send);
    PyObject *name = PyDict_GetItemWithError(scope, K[SK_PATH]);
    if (!name || !PyUnicode_Check(name)) { /* the app replaced it */
        PyErr_Clear();
        name = a->v_root;
    }
    Py_INCREF(name);
    Py_DECREF(scope);
    if (!coro) {
        Py_DECREF(name);
        goto fail;
    }
    /* a Task of its own, as uvicorn gives each request */
    PyObject *runner = gp_runner_new();
    if (!runner || gp_runner_give(runner, coro, (PyObject *)r, app_ended) < 0) {
        Py_XDECREF(runner);
        Py_DECREF(coro);
        Py_DECREF(name);
        goto fail;
    }
    Py_DECREF(coro);
    gp_runner_on_yield(runner, request_yielded);
    r->runner = runner;
    Py_INCREF(r);
    PyObject *task = new_task(a, runner, name);
    Py_DECREF(name);
    if (!task && !gp_runner_disarm(runner)) {
        /* a task factory ran the call and then failed: the call answered */
        log_error(r, "creating its task");
        Py_DECREF(r);
        return GP_APP_DONE;
    }
    if (!task) {
        Py_CLEAR(r->runner);
        Py_DECREF(r);
        goto fail;
    }
    if (!r->task_done) r->task = task;
    else Py_DECREF(task);
    /* an eager task may have answered already */
    gp_app_status st = r->conn ? GP_APP_ASYNC : GP_APP_DONE;
    Py_DECREF(r);
    return st;
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
        finish(r); /* a send() waiting raises */
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
    Py_INCREF(r);
    /* each waiting receive() in turn gets the next message; one the app
     * cancelled (a timeout) is skipped, so the bytes stay for the next */
    while (first_waiter(r)) {
        PyObject *m = try_receive(r);
        if (m == AGAIN_SENTINEL) break;
        answer_first(r, m);
    }
    if (r->conn && !first_waiter(r)) {
        gp_conn_wait_input(r->conn, 0);
        if (gp_conn_peer_gone(c) && !r->draining) { /* nobody listens: the next send() raises */
            r->disconnected = true;
            finish(r);
        }
    }
    Py_DECREF(r);
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
    disconnect_waiters(r);
    fail_gone(&r->send_fut);
    if (r->task && !r->task_done) {
        PyObject *x = PyObject_CallMethodNoArgs(r->task, a->s_cancel);
        Py_XDECREF(x);
        PyErr_Clear();
    }
    Py_DECREF(r);
}

/* The core's work that waited for the tasks ready in this loop turn. */
static PyObject *run_soon(PyObject *self, PyObject *unused)
{
    gp_asgi *a = the_asgi;
    void (*fn)(void *) = a->soon_fn;
    a->soon_fn = NULL; /* fn may ask again */
    if (fn) fn(a->soon_arg);
    Py_RETURN_NONE;
}

static PyMethodDef run_soon_def = {"_gallop_run_soon", run_soon, METH_NOARGS, NULL};

static int asgi_soon(void *app, void (*fn)(void *), void *arg)
{
    gp_asgi *a = app;
    if (a->soon_fn) return -1; /* one at a time */
    PyObject *h = PyObject_CallOneArg(a->call_soon, a->run_soon);
    if (!h) {
        PyErr_Clear();
        return -1;
    }
    Py_DECREF(h);
    a->soon_fn = fn;
    a->soon_arg = arg;
    return 0;
}

const gp_app_ops gp_asgi_ops = {
    .runs_as_tasks = true,
    .describe = asgi_describe,
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
    a->get_task_factory = PyObject_GetAttrString(loop, "get_task_factory");
    a->loop = Py_NewRef(loop);
    a->call_soon = PyObject_GetAttrString(loop, "call_soon");
    a->run_soon = PyCFunction_New(&run_soon_def, NULL);
    PyObject *aio = PyImport_ImportModule("asyncio");
    a->task_type = aio ? PyObject_GetAttrString(aio, "Task") : NULL;
    Py_XDECREF(aio);
    a->task_kwnames = Py_BuildValue("(ss)", "loop", "name");
    if (!a->create_future || !a->create_task || !a->get_task_factory || !a->task_type ||
        !a->task_kwnames || !a->call_soon || !a->run_soon)
        return -1;
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
    a->v_https = gp_bridge_intern("https");
    a->v_wss = gp_bridge_intern("wss");
    a->k_tls = gp_bridge_intern("tls");
    a->k_host = PyBytes_FromString("host");
    a->v_http10 = gp_bridge_intern("1.0");
    a->v_http11 = gp_bridge_intern("1.1");
    a->v_http2 = gp_bridge_intern("2");
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
    a->client_gone = PyErr_NewExceptionWithDoc(
        "gallop.ClientDisconnected", "send() after the client left (ASGI spec 2.4)",
        PyExc_OSError, NULL);
    a->s_result = gp_bridge_intern("result");
    a->s_set_exception = gp_bridge_intern("set_exception");
    a->s_blocking = gp_bridge_intern("_asyncio_future_blocking");
    if (!a->v_root || !a->asgi_info || !a->extensions || !a->msg_disconnect ||
        !a->client_gone ||
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
        PyType_Ready(&Conn_Type) < 0 || PyType_Ready(&Endpoint_Type) < 0 ||
        gp_runner_coroutine_type(&Call_Type, (sendfunc)Call_am_send,
                                 (PyCFunction)(void (*)(void))Call_throw,
                                 (PyCFunction)Call_close) < 0)
        return NULL;
    gp_asgi *a = PyMem_Calloc(1, sizeof *a);
    if (a) a->state = PyDict_New();
    if (!a || init_asgi(a, app, asgi2, args->cfg, loop) < 0 || gp_asgi_ws_init(loop) < 0 ||
        gp_runner_init() < 0)
        return NULL;
    the_asgi = a;
    asgi_ops = gp_asgi_ops;
    asgi_ops.resume = asgi_resume_status;
    asgi_ops.cache_free = cache_free;
    asgi_ops.soon = asgi_soon;
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
