/* runner: app calls driven by one Task; see runner.h. */
#include "py/runner.h"

#include "py/bridge.h"

typedef struct {
    PyObject_HEAD
    PyObject *coro, *owner; /* the call running now */
    gp_runner_end end;
    PyObject *next_coro, *next_owner; /* the call queued */
    gp_runner_end next_end;
    PyObject *waiter; /* the future the Task waits on between calls */
    PyObject *ctx;
    bool closed;
} Runner;

static PyTypeObject Runner_Type;
static PyObject *create_future, *s_set_result;

/* A call queued but never started still owes its owner an end. */
static void drop_queued(Runner *r)
{
    PyObject *owner = r->next_owner;
    r->next_owner = NULL;
    Py_CLEAR(r->next_coro);
    if (owner) {
        r->next_end(owner, GP_RUNNER_CANCELLED);
        Py_DECREF(owner);
    }
}

static void drop(Runner *r)
{
    drop_queued(r);
    Py_CLEAR(r->coro);
    Py_CLEAR(r->owner);
    Py_CLEAR(r->next_coro);
    Py_CLEAR(r->next_owner);
    Py_CLEAR(r->waiter);
    Py_CLEAR(r->ctx);
}

/* The running call ended: tell its owner. */
static void call_ended(Runner *r, int how)
{
    PyObject *owner = r->owner;
    r->owner = NULL;
    Py_CLEAR(r->coro);
    if (owner) {
        r->end(owner, how);
        Py_DECREF(owner);
    }
}

/* What the Task sees after the app coroutine stopped with res; *again when
 * the runner should go on to its next call. */
static PySendResult settle(Runner *r, PySendResult res, PyObject **result, bool *again)
{
    *again = false;
    if (res == PYGEN_NEXT) return res;
    if (res == PYGEN_RETURN) {
        Py_CLEAR(*result);
        call_ended(r, GP_RUNNER_RETURNED);
    } else if (PyErr_ExceptionMatches(PyExc_Exception)) {
        call_ended(r, GP_RUNNER_RAISED); /* the hook logs and clears it */
    } else {                             /* CancelledError and the like: the runner ends with it */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        call_ended(r, GP_RUNNER_CANCELLED);
        drop(r);
        r->closed = true;
        PyErr_Restore(t, v, tb);
        return PYGEN_ERROR;
    }
    *again = true;
    return PYGEN_NEXT;
}

/* Between calls: start the queued one, end, or wait for one. Returns
 * PYGEN_NEXT with r->coro set to go on running it. */
static PySendResult next_call(Runner *r, PyObject **result)
{
    if (r->next_coro) {
        r->coro = r->next_coro;
        r->owner = r->next_owner;
        r->end = r->next_end;
        r->next_coro = r->next_owner = NULL;
        Py_XSETREF(r->ctx, PyContext_CopyCurrent());
        return PYGEN_NEXT;
    }
    if (r->closed) {
        drop(r);
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    PyObject *fut = PyObject_CallNoArgs(create_future);
    if (!fut || PyObject_SetAttrString(fut, "_asyncio_future_blocking", Py_True) < 0) {
        Py_XDECREF(fut);
        drop(r);
        return PYGEN_ERROR;
    }
    r->waiter = Py_NewRef(fut);
    *result = fut;
    return PYGEN_NEXT;
}

static PySendResult Runner_am_send(Runner *r, PyObject *arg, PyObject **result)
{
    for (;;) {
        if (!r->coro) {
            PySendResult res = next_call(r, result);
            if (res != PYGEN_NEXT || !r->coro) return res;
            arg = Py_None;
            if (!r->ctx) {
                bool again;
                settle(r, PYGEN_ERROR, result, &again);
                continue;
            }
        }
        PyContext_Enter(r->ctx);
        PySendResult res = PyIter_Send(r->coro, arg, result);
        PyContext_Exit(r->ctx);
        bool again;
        res = settle(r, res, result, &again);
        if (!again) return res;
        arg = Py_None;
    }
}

/* The method forms, for callers that do not use am_send. */
static PyObject *from_send_result(PySendResult res, PyObject *result)
{
    if (res == PYGEN_NEXT) return result;
    if (res == PYGEN_RETURN) {
        if (result == Py_None) PyErr_SetNone(PyExc_StopIteration);
        else gp_bridge_stop_iteration(result);
        Py_DECREF(result);
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
    if (!r->coro) { /* between calls: nothing to hand it to, so the runner ends */
        drop(r);
        r->closed = true;
        if (nargs < 1) return NULL;
        if (PyExceptionClass_Check(args[0]))
            PyErr_SetObject(args[0], nargs > 1 && args[1] != Py_None ? args[1] : NULL);
        else PyErr_SetObject((PyObject *)Py_TYPE(args[0]), args[0]);
        return NULL;
    }
    PyObject *meth = PyObject_GetAttrString(r->coro, "throw");
    if (!meth) return NULL;
    PyContext_Enter(r->ctx);
    PyObject *y = PyObject_Vectorcall(meth, args, (size_t)nargs, NULL);
    PyContext_Exit(r->ctx);
    Py_DECREF(meth);
    if (y) return y; /* the app caught it and waits again */
    PyObject *result = NULL;
    PySendResult res = PYGEN_ERROR;
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyErr_Clear();
        result = Py_NewRef(Py_None);
        res = PYGEN_RETURN;
    }
    bool again;
    res = settle(r, res, &result, &again);
    if (again) res = Runner_am_send(r, Py_None, &result);
    return from_send_result(res, result);
}

static PyObject *Runner_close(Runner *r, PyObject *unused)
{
    PyObject *x = r->coro ? PyObject_CallMethod(r->coro, "close", NULL) : Py_NewRef(Py_None);
    call_ended(r, GP_RUNNER_CANCELLED);
    drop(r);
    r->closed = true;
    return x;
}

static PyObject *Runner_await(PyObject *self)
{
    return Py_NewRef(self);
}

static void Runner_dealloc(Runner *r)
{
    drop(r);
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
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.AppRunner",
    .tp_basicsize = sizeof(Runner),
    .tp_dealloc = (destructor)Runner_dealloc,
    .tp_as_async = &Runner_async,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "runs ASGI app calls one after another for one Task",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Runner_iternext,
    .tp_methods = Runner_methods,
};

int gp_runner_init(PyObject *future_factory)
{
    if (PyType_Ready(&Runner_Type) < 0) return -1;
    create_future = Py_NewRef(future_factory);
    s_set_result = PyUnicode_InternFromString("set_result");
    /* asyncio takes as a coroutine whatever collections.abc.Coroutine does */
    PyObject *abc = PyImport_ImportModule("collections.abc");
    PyObject *co = abc ? PyObject_GetAttrString(abc, "Coroutine") : NULL;
    PyObject *r = co ? PyObject_CallMethod(co, "register", "O", (PyObject *)&Runner_Type) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(co);
    Py_XDECREF(abc);
    return r && s_set_result ? 0 : -1;
}

PyObject *gp_runner_new(void)
{
    Runner *r = PyObject_New(Runner, &Runner_Type);
    if (!r) return NULL;
    memset((char *)r + sizeof(PyObject), 0, sizeof *r - sizeof(PyObject));
    return (PyObject *)r;
}

bool gp_runner_idle(PyObject *runner)
{
    Runner *r = (Runner *)runner;
    return !r->coro && !r->next_coro && !r->closed;
}

static int wake(Runner *r)
{
    PyObject *fut = r->waiter;
    if (!fut) return 0;
    r->waiter = NULL;
    PyObject *x = PyObject_CallMethodOneArg(fut, s_set_result, Py_None);
    Py_DECREF(fut);
    Py_XDECREF(x);
    return x ? 0 : -1;
}

int gp_runner_give(PyObject *runner, PyObject *coro, PyObject *owner, gp_runner_end end)
{
    Runner *r = (Runner *)runner;
    r->next_coro = Py_NewRef(coro);
    r->next_owner = Py_NewRef(owner);
    r->next_end = end;
    return wake(r);
}

void gp_runner_close(PyObject *runner)
{
    Runner *r = (Runner *)runner;
    r->closed = true;
    if (wake(r) < 0) PyErr_Clear();
}
