/* asgi_driver: the control plane of an ASGI worker. Chooses the event loop,
 * runs lifespan start-up, lets the loop watch the core's epoll descriptor,
 * waits for the stop, runs lifespan shutdown. Once per worker, never per
 * request: the few lines of it that are easier in Python are a short driver
 * compiled at start. The request path is asgi.c. */
#include "py/asgi.h"

#include "core/log.h"
#include "core/worker.h"
#include "py/bridge.h"

static gp_worker *worker;

/* The loop's reader callback for the core's epoll descriptor: one turn of
 * the core; once the worker has stopped, done gets its result. */
static PyObject *py_turn(PyObject *self, PyObject *done)
{
    if (gp_asgi_turn(done) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_accept(PyObject *self, PyObject *unused)
{
    if (gp_worker_accept(worker) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *py_log(PyObject *self, PyObject *args)
{
    int level;
    const char *msg;
    if (!PyArg_ParseTuple(args, "is", &level, &msg)) return NULL;
    level = level / 10 - 1; /* the logging module's numbers */
    /* a message of several lines (a traceback) stays one record in JSON */
    gp_log_lines(level < GP_LOG_DEBUG      ? GP_LOG_DEBUG
                 : level > GP_LOG_CRITICAL ? GP_LOG_CRITICAL
                                           : level,
                 msg, strlen(msg));
    Py_RETURN_NONE;
}

/* Seconds left of the graceful timeout once the worker stops (the whole
 * timeout before it does): the bound of the app's lifespan shutdown. */
static PyObject *py_stop_left(PyObject *self, PyObject *unused)
{
    return PyFloat_FromDouble(gp_worker_stop_left(worker));
}

static PyMethodDef driver_methods[] = {
    {"turn", py_turn, METH_O, NULL},
    {"accept", py_accept, METH_NOARGS, NULL},
    {"log", py_log, METH_VARARGS, NULL},
    {"stop_left", py_stop_left, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static const char driver_src[] =
    "import asyncio, traceback\n"
    "\n"
    "deadline = None  # loop time at which the master kills, once stopping\n"
    "\n"
    "class Lifespan:\n"
    "    def __init__(self, app, asgi2, state, log):\n"
    "        self.app, self.asgi2, self.state, self.log = app, asgi2, state, log\n"
    "        self.queue = asyncio.Queue()\n"
    "        loop = asyncio.get_running_loop()\n"
    "        self.started = loop.create_future()\n"
    "        self.stopped = loop.create_future()\n"
    "        self.sent_any = self.reported = self.cut = False\n"
    "\n"
    "    async def receive(self):\n"
    "        return await self.queue.get()\n"
    "\n"
    "    async def send(self, message):\n"
    "        self.sent_any = True\n"
    "        t = message['type']\n"
    "        if t in ('lifespan.startup.failed', 'lifespan.shutdown.failed'):\n"
    "            self.reported = True  # its message is the app's own report (Starlette: a traceback)\n"
    "        done = {'lifespan.startup.complete': (self.started, None),\n"
    "                'lifespan.startup.failed': (self.started, 'failed'),\n"
    "                'lifespan.shutdown.complete': (self.stopped, None),\n"
    "                'lifespan.shutdown.failed': (self.stopped, 'failed')}.get(t)\n"
    "        if done and not done[0].done():\n"
    "            if done[1] and not self.cut:\n"
    "                what = 'start-up' if done[0] is self.started else 'shutdown'\n"
    "                self.log(40, 'application %s failed: %s' % (what, message.get('message') or '(no message)'))\n"
    "            done[0].set_result(done[1])\n"
    "\n"
    "    async def run(self, mode):\n"
    "        scope = {'type': 'lifespan', 'asgi': {'version': '2.0' if self.asgi2 else '3.0',\n"
    "                 'spec_version': '2.0'}, 'state': self.state}\n"
    "        try:\n"
    "            if self.asgi2:\n"
    "                await self.app(scope)(self.receive, self.send)\n"
    "            else:\n"
    "                await self.app(scope, self.receive, self.send)\n"
    "        except asyncio.CancelledError:\n"
    "            raise\n"
    "        except BaseException as e:\n"
    "            if not self.started.done() and mode == 'auto' and not self.sent_any:\n"
    "                self.log(20, \"ASGI 'lifespan' protocol appears unsupported (%s: %s); running without it\"\n"
    "                         % (type(e).__name__, e))\n"
    "                self.started.set_result('unsupported')\n"
    "                return\n"
    "            if not self.reported:  # the traceback once, from the app's frames on\n"
    "                what = 'shutdown' if self.started.done() else 'start-up'\n"
    "                self.log(40, 'application %s failed: the lifespan protocol raised\\n' % what + ''.join(\n"
    "                    traceback.format_exception(type(e), e, e.__traceback__.tb_next)).rstrip())\n"
    "            for f in (self.started, self.stopped):\n"
    "                if not f.done():\n"
    "                    f.set_result('raised')\n"
    "        finally:\n"
    "            if not self.started.done():\n"
    "                self.log(20, \"the app returned from the 'lifespan' scope without answering start-up; \"\n"
    "                         \"running without lifespan\")\n"
    "                self.started.set_result('unsupported')\n"
    "            if not self.stopped.done():\n"
    "                self.stopped.set_result(None)\n"
    "\n"
    "async def serve(app, asgi2, mode, state, fd, turn, accept, log, stop_left):\n"
    "    loop = asyncio.get_running_loop()\n"
    "    life = None\n"
    "    if mode != 'off':\n"
    "        life = Lifespan(app, asgi2, state, log)\n"
    "        task = loop.create_task(life.run(mode))\n"
    "        life.queue.put_nowait({'type': 'lifespan.startup'})\n"
    "        why = await life.started\n"
    "        if why == 'unsupported':\n"
    "            life = None\n"
    "        elif why is not None:\n"
    "            return 4\n"
    "    done = loop.create_future()\n"
    "    loop.add_reader(fd, turn, done)\n"
    "    accept()\n"
    "    await done\n"
    "    loop.remove_reader(fd)\n"
    "    # the master kills at the end of --graceful-timeout: the shutdown and the\n"
    "    # clean-up after it fit in what is left\n"
    "    global deadline\n"
    "    deadline = loop.time() + stop_left()\n"
    "    if life is not None:\n"
    "        life.queue.put_nowait({'type': 'lifespan.shutdown'})\n"
    "        bound = max(deadline - loop.time() - 0.3, 0.05)\n"
    "        try:\n"
    "            await asyncio.wait_for(asyncio.shield(life.stopped), bound)\n"
    "        except asyncio.TimeoutError:\n"
    "            log(30, 'application shutdown did not finish within %.2gs (--graceful-timeout); '\n"
    "                'cancelling it' % bound)\n"
    "            life.cut = True  # what it reports as it is cancelled is no news\n"
    "            task.cancel()\n"
    "    return 0\n"
    "\n"
    "async def cancel_left(loop, log):\n"
    "    \"\"\"Cancels the tasks still on the loop (the app's background work), as asyncio.run does.\"\"\"\n"
    "    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]\n"
    "    for t in tasks:\n"
    "        t.cancel()\n"
    "    if tasks:\n"
    "        left = 1.0 if deadline is None else min(max(deadline - loop.time() - 0.1, 0.05), 1.0)\n"
    "        _, pending = await asyncio.wait(tasks, timeout=left)\n"
    "        if pending:\n"
    "            log(30, '%d task(s) ignored cancellation at exit' % len(pending))\n"
    "    for t in tasks:\n"
    "        if t.done() and not t.cancelled() and t.exception() is not None:\n"
    "            loop.call_exception_handler({'message': 'unhandled exception in a task at exit',\n"
    "                                         'exception': t.exception(), 'task': t})\n"
    "\n"
    "def make_loop(loop_name):\n"
    "    if loop_name in ('auto', 'uvloop'):\n"
    "        try:\n"
    "            import uvloop\n"
    "            return uvloop.new_event_loop()\n"
    "        except ImportError:\n"
    "            if loop_name == 'uvloop':\n"
    "                raise SystemExit('uvloop is not installed (Debian: python3-uvloop)')\n"
    "    return asyncio.new_event_loop()\n"
    "\n"
    "def run(loop, app, asgi2, mode, state, fd, turn, accept, log, stop_left):\n"
    "    asyncio.set_event_loop(loop)\n"
    "    try:\n"
    "        return loop.run_until_complete(serve(app, asgi2, mode, state, fd, turn, accept, log,\n"
    "                                             stop_left))\n"
    "    finally:\n"
    "        try:\n"
    "            loop.run_until_complete(cancel_left(loop, log))\n"
    "            loop.run_until_complete(loop.shutdown_asyncgens())\n"
    "        finally:\n"
    "            asyncio.set_event_loop(None)\n"
    "            loop.close()\n";

int gp_asgi_detect(PyObject *app)
{
    PyObject *inspect = PyImport_ImportModule("inspect");
    if (!inspect) return -1;
    PyObject *isco = PyObject_GetAttrString(inspect, "iscoroutinefunction");
    Py_DECREF(inspect);
    if (!isco) return -1;
    int result = 0;
    PyObject *r = PyObject_CallOneArg(isco, app);
    if (r && PyObject_IsTrue(r)) result = 1;
    Py_XDECREF(r);
    if (!result && r && !PyFunction_Check(app)) {
        PyObject *call = PyObject_GetAttrString(app, "__call__");
        if (call) {
            PyObject *r2 = PyObject_CallOneArg(isco, call);
            if (r2 && PyObject_IsTrue(r2)) result = 1;
            Py_XDECREF(r2);
            Py_DECREF(call);
        }
    }
    Py_DECREF(isco);
    if (PyErr_Occurred()) {
        PyErr_Clear();
    }
    return result;
}

int gp_asgi_run(const gp_worker_args *args, PyObject *app, int asgi2)
{
    const gp_config *cfg = args->cfg;
    gp_bridge_json_stderr();
    PyObject *globals = PyDict_New();
    if (!globals || PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto pyfail;
    /* a name, so that the driver's frames in a traceback say where they are */
    PyObject *code = Py_CompileString(driver_src, "<gallop asgi driver>", Py_file_input);
    PyObject *res = code ? PyEval_EvalCode(code, globals, globals) : NULL;
    Py_XDECREF(code);
    if (!res) goto pyfail;
    Py_DECREF(res);
    PyObject *make_loop = PyDict_GetItemString(globals, "make_loop");
    PyObject *run = PyDict_GetItemString(globals, "run");
    PyObject *drv = PyModule_New("_gallop_asgi");
    if (!drv || PyModule_AddFunctions(drv, driver_methods) < 0) goto pyfail;
    PyObject *turn = PyObject_GetAttrString(drv, "turn"),
             *accept = PyObject_GetAttrString(drv, "accept"),
             *logf = PyObject_GetAttrString(drv, "log"),
             *stop_left = PyObject_GetAttrString(drv, "stop_left");
    if (!turn || !accept || !logf || !stop_left) goto pyfail;
    PyObject *loop = PyObject_CallFunction(make_loop, "s", cfg->loop);
    if (!loop) goto pyfail;

    PyObject *state = NULL;
    worker = gp_asgi_bridge(args, app, asgi2, loop, &state);
    if (!worker) {
        if (PyErr_Occurred()) goto pyfail;
        return GP_EXIT_BOOT_ERROR;
    }
    PyObject *loop_mod = PyObject_GetAttrString((PyObject *)Py_TYPE(loop), "__module__");
    const char *lm = loop_mod && PyUnicode_Check(loop_mod) ? PyUnicode_AsUTF8(loop_mod) : NULL;
    if (!lm) PyErr_Clear();
    /* module-qualified: the bare tp_name of uvloop's loop is just "Loop" */
    gp_info("ASGI %s app on the %s%s%s loop", asgi2 ? "2" : "3", lm ? lm : "", lm ? "." : "",
            Py_TYPE(loop)->tp_name);
    Py_XDECREF(loop_mod);
    PyObject *rc = PyObject_CallFunction(run, "OOisOiOOOO", loop, app, asgi2, cfg->lifespan, state,
                                         gp_worker_fd(worker), turn, accept, logf, stop_left);
    if (!rc) goto pyfail;
    int exit_code = (int)PyLong_AsLong(rc);
    Py_DECREF(rc);
    return exit_code == 4 ? GP_EXIT_APP_ERROR : exit_code;
pyfail:
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *s = v ? PyObject_Str(v) : NULL;
        gp_error("%s", s ? PyUnicode_AsUTF8(s) : "exit");
        Py_XDECREF(s);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        return GP_EXIT_BOOT_ERROR;
    }
    PyErr_Print();
    return GP_EXIT_BOOT_ERROR;
}
