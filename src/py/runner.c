/* runner: a coroutine wrapper with an end hook; see runner.h. */
#include "py/runner.h"

typedef struct {
    PyObject_HEAD
    PyObject *coro;
    PyObject *owner; /* NULL once ended */
    gp_runner_end end;
} Runner;

static PyTypeObject Runner_Type;

static void ended(Runner *r, int how)
{
    PyObject *owner = r->owner;
    r->owner = NULL;
    if (owner) {
        r->end(owner, how);
        Py_DECREF(owner);
    }
}

/* Turns what the inner coroutine did into what the Task should see. */
static PySendResult settle(Runner *r, PySendResult res, PyObject **result)
{
    if (res == PYGEN_NEXT) return res;
    if (res == PYGEN_RETURN) {
        ended(r, GP_RUNNER_RETURNED);
        return res;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) { /* CancelledError and the like */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        ended(r, GP_RUNNER_CANCELLED);
        PyErr_Restore(t, v, tb);
        return PYGEN_ERROR;
    }
    ended(r, GP_RUNNER_RAISED);
    PyErr_Clear();
    Py_INCREF(Py_None);
    *result = Py_None;
    return PYGEN_RETURN;
}

static PySendResult Runner_am_send(Runner *r, PyObject *arg, PyObject **result)
{
    return settle(r, PyIter_Send(r->coro, arg, result), result);
}

/* The method forms, for callers that do not use am_send. */
static PyObject *from_send_result(PySendResult res, PyObject *result)
{
    if (res == PYGEN_NEXT) return result;
    if (res == PYGEN_RETURN) {
        if (result == Py_None) {
            Py_DECREF(result);
            PyErr_SetNone(PyExc_StopIteration);
        } else {
            _PyGen_SetStopIterationValue(result);
            Py_DECREF(result);
        }
    }
    return NULL;
}

static PyObject *Runner_send(Runner *r, PyObject *arg)
{
    PyObject *result = NULL;
    PySendResult res = Runner_am_send(r, arg, &result);
    return from_send_result(res, result);
}

static PyObject *Runner_iternext(Runner *r)
{
    return Runner_send(r, Py_None);
}

static PyObject *Runner_throw(Runner *r, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *meth = PyObject_GetAttrString(r->coro, "throw");
    if (!meth) return NULL;
    PyObject *y = PyObject_Vectorcall(meth, args, (size_t)nargs, NULL);
    Py_DECREF(meth);
    if (y) return y; /* the coroutine caught it and yielded again */
    PyObject *result = NULL;
    PySendResult res;
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        result = v ? PyObject_GetAttrString(v, "value") : NULL;
        if (!result) {
            PyErr_Clear();
            result = Py_NewRef(Py_None);
        }
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        res = PYGEN_RETURN;
    } else {
        res = PYGEN_ERROR;
    }
    res = settle(r, res, &result);
    return from_send_result(res, result);
}

static PyObject *Runner_close(Runner *r, PyObject *unused)
{
    PyObject *x = PyObject_CallMethod(r->coro, "close", NULL);
    if (r->owner) ended(r, GP_RUNNER_CANCELLED);
    return x;
}

static PyObject *Runner_await(PyObject *self)
{
    return Py_NewRef(self);
}

static void Runner_dealloc(Runner *r)
{
    Py_XDECREF(r->coro);
    Py_XDECREF(r->owner);
    PyObject_Free(r);
}

static PyAsyncMethods Runner_async = {
    .am_await = Runner_await,
    .am_send = (sendfunc)Runner_am_send,
};

static PyMethodDef Runner_methods[] = {
    {"send", (PyCFunction)Runner_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))Runner_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)Runner_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Runner_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gallop.AppRunner",
    .tp_basicsize = sizeof(Runner),
    .tp_dealloc = (destructor)Runner_dealloc,
    .tp_as_async = &Runner_async,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "an ASGI app's coroutine, watched for its end",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Runner_iternext,
    .tp_methods = Runner_methods,
};

int gp_runner_register(PyTypeObject *type)
{
    /* asyncio accepts as a coroutine whatever collections.abc.Coroutine does */
    PyObject *abc = PyImport_ImportModule("collections.abc");
    PyObject *co = abc ? PyObject_GetAttrString(abc, "Coroutine") : NULL;
    PyObject *r = co ? PyObject_CallMethod(co, "register", "O", (PyObject *)type) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(co);
    Py_XDECREF(abc);
    return r ? 0 : -1;
}

int gp_runner_init(void)
{
    if (PyType_Ready(&Runner_Type) < 0) return -1;
    return gp_runner_register(&Runner_Type);
}

PyObject *gp_runner_new(PyObject *coro, PyObject *owner, gp_runner_end end)
{
    Runner *r = PyObject_New(Runner, &Runner_Type);
    if (!r) return NULL;
    r->coro = Py_NewRef(coro);
    r->owner = Py_NewRef(owner);
    r->end = end;
    return (PyObject *)r;
}
