/* runner: one app call driven by its own Task; see runner.h. */
#include "py/runner.h"

#include "py/bridge.h"

typedef struct {
    PyObject_HEAD
    PyObject *coro, *owner; /* owner NULL: the end was told, or disarmed */
    gp_runner_end end;
    gp_runner_yield yielded;
    bool started, running;
} Runner;

static PyTypeObject Runner_Type;
#define RUNNER_SPARE 16
static Runner *spare[RUNNER_SPARE];
static int n_spare;
static PyObject *cancelled_error;


/* The call ended: tell its owner, once. */
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

/* What the Task sees once the app's coroutine stopped with res. */
static PySendResult settle(Runner *r, PySendResult res, PyObject **result)
{
    if (res == PYGEN_NEXT) {
        if (r->yielded && r->owner) r->yielded(r->owner);
        return res;
    }
    if (res == PYGEN_RETURN) {
        Py_CLEAR(*result);
        call_ended(r, GP_RUNNER_RETURNED);
    } else if (!PyErr_ExceptionMatches(cancelled_error)) {
        call_ended(r, GP_RUNNER_RAISED); /* the hook logs and clears it */
        PyErr_Clear();
    } else { /* cancelled: the Task ends cancelled */
        PyObject *e = gp_bridge_take_error();
        call_ended(r, GP_RUNNER_CANCELLED);
        gp_bridge_restore_error(e);
        return PYGEN_ERROR;
    }
    *result = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PySendResult Runner_am_send(Runner *r, PyObject *arg, PyObject **result)
{
    if (!r->coro) {
        PyErr_SetString(PyExc_RuntimeError, "the app call has ended");
        return PYGEN_ERROR;
    }
    r->started = r->running = true;
    PySendResult res = PyIter_Send(r->coro, arg, result);
    r->running = false;
    return settle(r, res, result);
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

/* What every C coroutine type of the bridge shares (gp_runner_coroutine_type):
 * it is its own awaitable, and send() and next() step it through am_send. */
static PyObject *coro_send(PyObject *self, PyObject *arg)
{
    PyObject *result = NULL;
    PySendResult res = Py_TYPE(self)->tp_as_async->am_send(self, arg, &result);
    return from_send_result(res, result);
}

static PyObject *coro_iternext(PyObject *self)
{
    return coro_send(self, Py_None);
}

static PyObject *coro_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *Runner_throw(Runner *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (!r->coro) {
        gp_runner_set_thrown(args, nargs);
        return NULL;
    }
    PyObject *meth = PyObject_GetAttrString(r->coro, "throw");
    if (!meth) return NULL;
    r->started = r->running = true;
    PyObject *y = PyObject_Vectorcall(meth, args, (size_t)nargs, NULL);
    r->running = false;
    Py_DECREF(meth);
    PyObject *result = y;
    PySendResult res = PYGEN_NEXT;
    if (!y) {
        res = PYGEN_ERROR;
        if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyObject *e = gp_bridge_take_error();
            PyObject *v = e ? PyObject_GetAttrString(e, "value") : NULL;
            Py_XDECREF(e);
            if (v) {
                result = v;
                res = PYGEN_RETURN;
            }
        }
    }
    /* settle() may replace result: read it only after (argument order is
     * unspecified, and gcc read the stale NULL first) */
    res = settle(r, res, &result);
    return from_send_result(res, result);
}

/* A runner closed before it ran (a task factory that gave up) tells nobody:
 * whoever created the Task answers for the call. */
static PyObject *Runner_close(Runner *r, PyObject *unused)
{
    PyObject *x = r->coro ? PyObject_CallMethod(r->coro, "close", NULL) : Py_NewRef(Py_None);
    if (r->started) {
        PyObject *e = gp_bridge_take_error();
        call_ended(r, GP_RUNNER_CANCELLED);
        gp_bridge_restore_error(e);
    } else {
        Py_CLEAR(r->coro);
        Py_CLEAR(r->owner);
    }
    return x;
}

static void Runner_dealloc(Runner *r)
{
    /* a Task dropped mid-call (the loop closing) still owes the owner its end */
    if (r->started && r->owner) {
        PyObject *e = gp_bridge_take_error();
        call_ended(r, GP_RUNNER_CANCELLED);
        gp_bridge_restore_error(e);
    }
    Py_XDECREF(r->coro);
    Py_XDECREF(r->owner);
    if (n_spare < RUNNER_SPARE) spare[n_spare++] = r; /* one a request: reused */
    else PyObject_Free(r);
}

static PyTypeObject Runner_Type = {
    .ob_base = {PyObject_HEAD_INIT(NULL) 0},
    .tp_name = "gallop.AppRunner",
    .tp_basicsize = sizeof(Runner),
    .tp_dealloc = (destructor)Runner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "runs one ASGI app call for its Task",
};

int gp_runner_init(void)
{
    if (gp_runner_coroutine_type(&Runner_Type, (sendfunc)Runner_am_send,
                                 (PyCFunction)(void (*)(void))Runner_throw,
                                 (PyCFunction)Runner_close) < 0)
        return -1;
    PyObject *aio = PyImport_ImportModule("asyncio");
    cancelled_error = aio ? PyObject_GetAttrString(aio, "CancelledError") : NULL;
    Py_XDECREF(aio);
    return cancelled_error ? 0 : -1;
}

int gp_runner_coroutine_type(PyTypeObject *type, sendfunc am_send, PyCFunction throw_fn,
                             PyCFunction close_fn)
{
    if (type->tp_as_async) return 0; /* made already */
    /* the type's tables live as long as the type: once per process */
    PyAsyncMethods *am = PyMem_Calloc(1, sizeof *am);
    PyMethodDef *methods = PyMem_Calloc(4, sizeof *methods);
    if (!am || !methods) {
        PyMem_Free(am);
        PyMem_Free(methods);
        PyErr_NoMemory();
        return -1;
    }
    am->am_await = coro_await;
    am->am_send = am_send;
    methods[0] = (PyMethodDef){"send", coro_send, METH_O, NULL};
    methods[1] = (PyMethodDef){"throw", throw_fn, METH_FASTCALL, NULL};
    methods[2] = (PyMethodDef){"close", close_fn, METH_NOARGS, NULL};
    type->tp_as_async = am;
    type->tp_iter = PyObject_SelfIter;
    type->tp_iternext = coro_iternext;
    type->tp_methods = methods;
    if (PyType_Ready(type) < 0) return -1;
    /* asyncio takes as a coroutine whatever collections.abc.Coroutine does */
    PyObject *abc = PyImport_ImportModule("collections.abc");
    PyObject *co = abc ? PyObject_GetAttrString(abc, "Coroutine") : NULL;
    PyObject *r = co ? PyObject_CallMethod(co, "register", "O", (PyObject *)type) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(co);
    Py_XDECREF(abc);
    return r ? 0 : -1;
}

void gp_runner_set_thrown(PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "throw expected at least 1 argument");
        return;
    }
    if (PyExceptionClass_Check(args[0]))
        PyErr_SetObject(args[0], nargs > 1 && args[1] != Py_None ? args[1] : NULL);
    else PyErr_SetObject((PyObject *)Py_TYPE(args[0]), args[0]);
}

PyObject *gp_runner_new(void)
{
    Runner *r = n_spare ? (Runner *)PyObject_Init((PyObject *)spare[--n_spare], &Runner_Type)
                        : PyObject_New(Runner, &Runner_Type);
    if (!r) return NULL;
    memset((char *)r + sizeof(PyObject), 0, sizeof *r - sizeof(PyObject));
    return (PyObject *)r;
}

int gp_runner_give(PyObject *runner, PyObject *coro, PyObject *owner, gp_runner_end end)
{
    Runner *r = (Runner *)runner;
    if (r->coro) {
        PyErr_SetString(PyExc_RuntimeError, "a runner runs one app call");
        return -1;
    }
    r->coro = Py_NewRef(coro);
    r->owner = Py_NewRef(owner);
    r->end = end;
    return 0;
}

void gp_runner_on_yield(PyObject *runner, gp_runner_yield yielded)
{
    ((Runner *)runner)->yielded = yielded;
}

void gp_runner_close(PyObject *runner)
{
}

bool gp_runner_running(PyObject *runner)
{
    return runner && ((Runner *)runner)->running;
}

bool gp_runner_disarm(PyObject *runner)
{
    Runner *r = (Runner *)runner;
    bool armed = r->owner != NULL;
    Py_CLEAR(r->owner);
    if (r->coro) {
        PyObject *x = PyObject_CallMethod(r->coro, "close", NULL);
        if (!x) PyErr_Clear();
        Py_XDECREF(x);
        Py_CLEAR(r->coro);
    }
    return armed;
}
