/* asgi_common: the pieces ASGI HTTP and WebSocket share; see asgi_common.h. */
#include "py/asgi_common.h"

static PyObject *s_set_result, *s_done, *ready_none, *client_disconnected;

/* ---- Ready: an awaitable that is already done ------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *value; /* NULL: None */
} Ready;

static PyObject *Ready_await(PyObject *self)
{
    return Py_NewRef(self);
}

/* Ends the iteration with value as StopIteration's value. */
static PyObject *Ready_next(Ready *r)
{
    if (!r->value) return NULL; /* StopIteration(None) without an exception object */
    if (!PyTuple_Check(r->value) && !PyExceptionInstance_Check(r->value)) {
        PyErr_SetObject(PyExc_StopIteration, r->value);
        return NULL;
    }
    /* a tuple or an exception would be taken for the exception's arguments */
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, r->value);
    if (e) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
    return NULL;
}

static PyObject *Ready_send(Ready *r, PyObject *arg)
{
    return Ready_next(r);
}

static void Ready_dealloc(Ready *r)
{
    Py_XDECREF(r->value);
    PyObject_Free(r);
}

static PyAsyncMethods Ready_async = {.am_await = Ready_await};

static PyMethodDef Ready_methods[] = {
    {"send", (PyCFunction)Ready_send, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Ready_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.Ready",
    .tp_basicsize = sizeof(Ready),
    .tp_dealloc = (destructor)Ready_dealloc,
    .tp_as_async = &Ready_async,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "an awaitable whose result is already known",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Ready_next,
    .tp_methods = Ready_methods,
};

static PyObject *ready_new(PyObject *value)
{
    Ready *r = PyObject_New(Ready, &Ready_Type);
    if (!r) {
        Py_XDECREF(value);
        return NULL;
    }
    r->value = value;
    return (PyObject *)r;
}

PyObject *gp_asgi_ready(PyObject *value)
{
    return value ? ready_new(value) : Py_NewRef(ready_none);
}

/* ---- futures ------------------------------------------------------------ */

void gp_asgi_resolve(PyObject **futp, PyObject *value)
{
    PyObject *fut = *futp;
    *futp = NULL;
    if (fut && gp_asgi_pending(&fut)) {
        PyObject *r = PyObject_CallMethodOneArg(fut, s_set_result, value ? value : Py_None);
        if (!r) PyErr_WriteUnraisable(fut);
        Py_XDECREF(r);
    }
    Py_XDECREF(fut);
    Py_XDECREF(value);
}

bool gp_asgi_pending(PyObject **futp)
{
    if (!*futp) return false;
    PyObject *done = PyObject_CallMethodNoArgs(*futp, s_done);
    bool pending = done == Py_False;
    Py_XDECREF(done);
    PyErr_Clear();
    if (!pending) Py_CLEAR(*futp);
    return pending;
}

/* ---- headers -------------------------------------------------------------- */

PyObject *gp_asgi_check_headers(PyObject *headers)
{
    PyObject *seq = PySequence_Fast(headers, "headers must be an iterable of [name, value] pairs");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    if (!out) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *h = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *pair = PySequence_Fast(h, "each header must be a [name, value] pair");
        if (!pair) goto fail;
        if (PySequence_Fast_GET_SIZE(pair) != 2 ||
            !PyBytes_Check(PySequence_Fast_GET_ITEM(pair, 0)) ||
            !PyBytes_Check(PySequence_Fast_GET_ITEM(pair, 1))) {
            Py_DECREF(pair);
            PyErr_Format(PyExc_TypeError, "header %R must be a pair of bytes", h);
            goto fail;
        }
        PyObject *nm = PySequence_Fast_GET_ITEM(pair, 0), *v = PySequence_Fast_GET_ITEM(pair, 1);
        if (!gp_conn_field_ok(PyBytes_AS_STRING(nm), (size_t)PyBytes_GET_SIZE(nm),
                              PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v))) {
            Py_DECREF(pair);
            PyErr_Format(PyExc_ValueError,
                         "invalid header %R (bad name, or CR, LF or another control byte)", h);
            goto fail;
        }
        PyObject *t = PyTuple_Pack(2, nm, v);
        Py_DECREF(pair);
        if (!t) goto fail;
        PyList_SET_ITEM(out, i, t);
    }
    Py_DECREF(seq);
    return out;
fail:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

int gp_asgi_add_checked(gp_conn *c, PyObject *list)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *t = PyList_GET_ITEM(list, i);
        PyObject *nm = PyTuple_GET_ITEM(t, 0), *v = PyTuple_GET_ITEM(t, 1);
        if (gp_conn_head_add(c, PyBytes_AS_STRING(nm), (size_t)PyBytes_GET_SIZE(nm),
                             PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v)) < 0)
            return -1;
    }
    return 0;
}

int gp_asgi_add_headers(gp_conn *c, PyObject *headers)
{
    if (!headers) return 0;
    PyObject *list = gp_asgi_check_headers(headers);
    int r = list ? gp_asgi_add_checked(c, list) : -1;
    if (list && r < 0) PyErr_SetString(PyExc_ValueError, "the response head is too large");
    Py_XDECREF(list);
    return r;
}

PyObject *gp_asgi_client_gone(const char *what)
{
    PyErr_Format(client_disconnected, "%s: the client has disconnected", what);
    return NULL;
}

/* ---- the app ---------------------------------------------------------------- */

PyObject *gp_asgi_call_app(PyObject *app, int asgi2, PyObject *scope, PyObject *receive,
                           PyObject *send)
{
    if (!receive || !send) return NULL;
    if (!asgi2) return PyObject_CallFunctionObjArgs(app, scope, receive, send, NULL);
    PyObject *inst = PyObject_CallOneArg(app, scope);
    PyObject *coro = inst ? PyObject_CallFunctionObjArgs(inst, receive, send, NULL) : NULL;
    Py_XDECREF(inst);
    return coro;
}

int gp_asgi_common_init(void)
{
    if (ready_none) return 0;
    if (PyType_Ready(&Ready_Type) < 0) return -1;
    s_set_result = PyUnicode_InternFromString("set_result");
    s_done = PyUnicode_InternFromString("done");
    ready_none = ready_new(NULL);
    /* an OSError, as a failed write is: Starlette and others stop on it */
    client_disconnected = PyErr_NewExceptionWithDoc(
        "gallop.ClientDisconnected", "send() after the client has disconnected", PyExc_OSError, NULL);
    return s_set_result && s_done && ready_none && client_disconnected ? 0 : -1;
}
