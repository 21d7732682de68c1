/* hooks: gunicorn's server hooks; see hooks.h.
 *
 * The objects the hooks receive are made by a little Python (below) that
 * executes the config file as gunicorn does. Requests go through a wrapper
 * only when pre_request or post_request is defined. */
#include "py/hooks.h"

#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/worker.h"
#include "py/bridge.h"

static const char helper_src[] =
    "import logging, os, sys, time, types\n"
    "HOOKS = ('on_starting', 'on_reload', 'when_ready', 'pre_fork', 'post_fork',\n"
    "         'post_worker_init', 'worker_int', 'worker_abort', 'pre_exec', 'pre_request',\n"
    "         'post_request', 'child_exit', 'worker_exit', 'nworkers_changed', 'on_exit')\n"
    "def logger(level):\n"
    "    log = logging.getLogger('gunicorn.error')\n"
    "    if not log.handlers:\n"
    "        h = logging.StreamHandler(sys.stderr)\n"
    "        h.setFormatter(logging.Formatter('%(asctime)s [%(process)d] [%(levelname)s] "
    "%(message)s', '[%Y-%m-%d %H:%M:%S %z]'))\n"
    "        log.addHandler(h)\n"
    "        log.propagate = False\n"
    "    log.setLevel(level)\n"
    "    return log\n"
    "def load(path, level):\n"
    "    mod = types.ModuleType('__config__')\n"
    "    mod.__file__ = path\n"
    "    sys.modules['__config__'] = mod\n"
    "    with open(path, 'rb') as f: code = compile(f.read(), path, 'exec')\n"
    "    exec(code, vars(mod))\n"
    "    hooks = {n: getattr(mod, n) for n in HOOKS if callable(getattr(mod, n, None))}\n"
    "    cfg = types.SimpleNamespace(**{k: v for k, v in vars(mod).items()\n"
    "        if not k.startswith('_') and not isinstance(v, types.ModuleType)})\n"
    "    log = logger(level)\n"
    "    server = types.SimpleNamespace(pid=os.getpid(), cfg=cfg, log=log, app=None,\n"
    "        num_workers=getattr(cfg, 'workers', 1), WORKERS={})\n"
    "    return hooks, server\n"
    "class Worker:\n"
    "    def __init__(self, server, pid, ppid, age, timeout, max_requests):\n"
    "        self.pid, self.ppid, self.age = pid, ppid, age\n"
    "        self.log, self.cfg, self.timeout = server.log, server.cfg, timeout\n"
    "        self.max_requests, self.nr, self.alive, self.booted = max_requests, 0, True, False\n"
    "        self.aborted, self.app, self.tmp, self.sockets = False, None, None, []\n"
    "    def __repr__(self): return '<Worker %s>' % self.pid\n"
    "class Request:\n"
    "    def __init__(self, method, uri, path, query, version, headers, scheme, peer):\n"
    "        self.method, self.uri, self.path, self.query = method, uri, path, query\n"
    "        self.version, self.headers, self.scheme = version, headers, scheme\n"
    "        self.peer_addr, self.remote_addr, self.fragment, self.trailers = peer, peer, '', []\n"
    "        self.body = None\n"
    "    def __repr__(self): return '<Request %s %s>' % (self.method, self.uri)\n"
    "class Response:\n"
    "    __slots__ = ('req', 'status', 'status_code', 'headers', 'sent', 'response_length',\n"
    "                 'chunked')\n"
    "    version = property(lambda self: self.req.version)\n"
    "    def __init__(self, req):\n"
    "        self.req, self.status, self.status_code = req, None, None\n"
    "        self.headers, self.sent, self.response_length, self.chunked = [], 0, None, False\n"
    "class WsgiRequest:\n"
    "    # gunicorn's Request, read from the environ only when a hook looks\n"
    "    __slots__ = ('env', '_headers')\n"
    "    fragment, body, trailers = '', None, ()\n"
    "    def __init__(self, env): self.env, self._headers = env, None\n"
    "    method = property(lambda self: self.env['REQUEST_METHOD'])\n"
    "    query = property(lambda self: self.env.get('QUERY_STRING', ''))\n"
    "    scheme = property(lambda self: self.env.get('wsgi.url_scheme', 'http'))\n"
    "    peer_addr = remote_addr = property(lambda self: (self.env.get('REMOTE_ADDR'),\n"
    "                                                     self.env.get('REMOTE_PORT')))\n"
    "    @property\n"
    "    def uri(self):\n"
    "        e = self.env\n"
    "        raw = e.get('RAW_URI')\n"
    "        if raw: return raw\n"
    "        path, q = e.get('SCRIPT_NAME', '') + e.get('PATH_INFO', ''), e.get('QUERY_STRING')\n"
    "        return path + '?' + q if q else path\n"
    "    path = property(lambda self: self.uri.split('?', 1)[0])\n"
    "    @property\n"
    "    def version(self):\n"
    "        p = self.env.get('SERVER_PROTOCOL', 'HTTP/1.1')\n"
    "        return (int(p[5]), int(p[7])) if len(p) == 8 else (1, 1)\n"
    "    @property\n"
    "    def headers(self):\n"
    "        if self._headers is None:\n"
    "            e = self.env\n"
    "            h = [(k[5:].replace('_', '-'), v) for k, v in e.items() if "
    "k.startswith('HTTP_')]\n"
    "            for k in ('CONTENT_TYPE', 'CONTENT_LENGTH'):\n"
    "                if e.get(k): h.append((k.replace('_', '-'), e[k]))\n"
    "            self._headers = h\n"
    "        return self._headers\n"
    "    def __repr__(self): return '<Request %s %s>' % (self.method, self.uri)\n"
    "def asgi_request(scope):\n"
    "    headers = [(k.decode('latin-1').upper(), v.decode('latin-1')) for k, v in "
    "scope.get('headers', ())]\n"
    "    hv = scope.get('http_version', '1.1')\n"
    "    version = (int(hv[0]), int(hv[2])) if len(hv) == 3 else (1, 1)\n"
    "    query = scope.get('query_string', b'').decode('latin-1')\n"
    "    raw = scope.get('raw_path')\n"
    "    path = raw.decode('latin-1') if raw else scope.get('path', '')\n"
    "    return Request(scope.get('method', 'GET'), path + ('?' + query if query else ''), path,\n"
    "                   query, version, headers, scope.get('scheme', 'http'), "
    "scope.get('client'))\n"
    "def arm_abort(worker, hook):\n"
    "    # the master's timeout signal: faulthandler dumps the tracebacks, then\n"
    "    # chains to this handler, which runs once the main thread is in Python\n"
    "    import faulthandler, signal\n"
    "    def on_abort(signum, frame):\n"
    "        worker.aborted = True\n"
    "        try: hook(worker)\n"
    "        except Exception: worker.log.exception('Exception in worker_abort hook')\n"
    "    faulthandler.unregister(signal.SIGUSR2)\n"
    "    signal.signal(signal.SIGUSR2, on_abort)\n"
    "    faulthandler.register(signal.SIGUSR2, file=sys.stderr, all_threads=True, chain=True)\n"
    "def call_post(worker, post, req, environ, resp):\n"
    "    try: post(worker, req, environ, resp)\n"
    "    except Exception: worker.log.exception('Exception in post_request hook')\n"
    "class Body:\n"
    "    def __init__(self, result, done):\n"
    "        self.result, self.done = result, done\n"
    "    def __iter__(self):\n"
    "        resp = self.done[4]\n"
    "        for chunk in self.result:\n"
    "            resp.sent += len(chunk)\n"
    "            yield chunk\n"
    "    def close(self):\n"
    "        done, self.done = self.done, None\n"
    "        try:\n"
    "            close = getattr(self.result, 'close', None)\n"
    "            if close is not None: close()\n"
    "        finally:\n"
    "            if done: call_post(*done)\n"
    "def wrap_wsgi(app, worker, pre, post):\n"
    "    def application(environ, start_response):\n"
    "        req = WsgiRequest(environ)\n"
    "        worker.nr += 1\n"
    "        if pre is not None: pre(worker, req)\n"
    "        if post is None: return app(environ, start_response)\n"
    "        resp = Response(req)\n"
    "        def sr(status, headers, exc_info=None):\n"
    "            resp.status, resp.headers = status, headers\n"
    "            resp.status_code = int(status.split(None, 1)[0])\n"
    "            return start_response(status, headers, exc_info)\n"
    "        result = app(environ, sr)\n"
    "        if (type(result) in (list, tuple) and len(result) == 1 and type(resp.headers) is "
    "list\n"
    "                and resp.status_code not in (204, 304) and isinstance(result[0], bytes)\n"
    "                and not any(k.lower() == 'content-length' for k, v in resp.headers)):\n"
    "            # what gallop adds to a one-piece body, which it cannot see through Body\n"
    "            resp.headers.append(('Content-Length', str(len(result[0]))))\n"
    "        return Body(result, (worker, post, req, environ, resp))\n"
    "    return application\n"
    "def wrap_asgi(app, asgi2, worker, pre, post):\n"
    "    async def application(scope, receive, send):\n"
    "        if asgi2:\n"
    "            inner = app(scope)\n"
    "            call = lambda r, s: inner(r, s)\n"
    "        else:\n"
    "            call = lambda r, s: app(scope, r, s)\n"
    "        if scope['type'] != 'http': return await call(receive, send)\n"
    "        req = asgi_request(scope)\n"
    "        worker.nr += 1\n"
    "        if pre is not None: pre(worker, req)\n"
    "        if post is None: return await call(receive, send)\n"
    "        resp = Response(req)\n"
    "        def send2(msg):\n"
    "            t = msg.get('type')\n"
    "            if t == 'http.response.start':\n"
    "                resp.status_code = msg['status']\n"
    "                resp.status = str(msg['status'])\n"
    "                resp.headers = [(k.decode('latin-1'), v.decode('latin-1')) for k, v in "
    "msg.get('headers', ())]\n"
    "            elif t == 'http.response.body':\n"
    "                resp.sent += len(msg.get('body', b''))\n"
    "            return send(msg)\n"
    "        try: return await call(receive, send2)\n"
    "        finally: call_post(worker, post, req, scope, resp)\n"
    "    return application\n";

static struct {
    PyObject *ns;     /* the helper's globals */
    PyObject *hooks;  /* name -> function, from the config file */
    PyObject *server; /* gunicorn's Arbiter, as far as hooks look at it */
    PyObject *worker; /* in a worker: gunicorn's Worker */
} g;

/* Calls hook name with args (a new tuple, stolen) when defined. Returns 0,
 * or -1 when it raised (logged with its traceback). */
static int call_hook(const char *name, PyObject *args)
{
    PyObject *fn = g.hooks && args ? PyDict_GetItemString(g.hooks, name) : NULL; /* borrowed */
    if (!fn) {
        Py_XDECREF(args);
        return 0;
    }
    PyObject *r = PyObject_Call(fn, args, NULL);
    Py_DECREF(args);
    if (r) {
        Py_DECREF(r);
        return 0;
    }
    gp_error("Exception in %s hook", name);
    gp_bridge_print_error();
    return -1;
}

static PyObject *helper(const char *name)
{
    return PyDict_GetItemString(g.ns, name); /* borrowed */
}

int gp_hooks_load(const gp_config *cfg)
{
    if (!cfg->hooks_file || g.hooks) return 0;
    g.ns = PyDict_New();
    if (!g.ns || PyDict_SetItemString(g.ns, "__builtins__", PyEval_GetBuiltins()) < 0) goto fail;
    PyObject *r = PyRun_String(helper_src, Py_file_input, g.ns, g.ns);
    if (!r) goto fail;
    Py_DECREF(r);
    static const char *const levels[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
    int lv = cfg->log_level >= 0 && cfg->log_level <= 4 ? cfg->log_level : 1;
    PyObject *loaded = PyObject_CallFunction(helper("load"), "ss", cfg->hooks_file, levels[lv]);
    if (!loaded) {
        gp_error("config file %s raised in the worker (traceback below)", cfg->hooks_file);
        gp_bridge_print_error(); /* log lines, as every worker error */
        return GP_EXIT_BOOT_ERROR;
    }
    g.hooks = Py_NewRef(PyTuple_GET_ITEM(loaded, 0));
    g.server = Py_NewRef(PyTuple_GET_ITEM(loaded, 1));
    Py_DECREF(loaded);
    return 0;
fail:
    gp_bridge_print_error();
    return GP_EXIT_BOOT_ERROR;
}

int gp_hooks_worker_start(const gp_worker_args *args)
{
    if (!g.hooks) return 0;
    /* in a worker, the server object describes the master */
    PyObject *mp = PyLong_FromLong((long)args->master_pid);
    if (!mp || PyObject_SetAttrString(g.server, "pid", mp) < 0) {
        Py_XDECREF(mp);
        goto fail;
    }
    Py_DECREF(mp);
    Py_XSETREF(g.worker, PyObject_CallFunction(helper("Worker"), "Ollldk", g.server, (long)getpid(),
                                               (long)args->master_pid, (long)args->age,
                                               args->cfg->timeout, args->cfg->max_requests));
    if (!g.worker) goto fail;
    call_hook("post_fork", PyTuple_Pack(2, g.server, g.worker));
    return 0;
fail:
    gp_bridge_print_error();
    return GP_EXIT_BOOT_ERROR;
}

PyObject *gp_hooks_wrap_app(PyObject *app, int asgi, int asgi2)
{
    PyObject *pre = g.hooks ? PyDict_GetItemString(g.hooks, "pre_request") : NULL;
    PyObject *post = g.hooks ? PyDict_GetItemString(g.hooks, "post_request") : NULL;
    if (!g.worker || (!pre && !post)) return Py_NewRef(app);
    if (asgi)
        return PyObject_CallFunction(helper("wrap_asgi"), "OOOOO", app, asgi2 ? Py_True : Py_False,
                                     g.worker, pre ? pre : Py_None, post ? post : Py_None);
    return PyObject_CallFunction(helper("wrap_wsgi"), "OOOO", app, g.worker, pre ? pre : Py_None,
                                 post ? post : Py_None);
}

static void worker_int(void)
{
    PyGILState_STATE st = PyGILState_Ensure();
    call_hook("worker_int", PyTuple_Pack(1, g.worker));
    PyGILState_Release(st);
}

void gp_hooks_post_worker_init(void)
{
    if (!g.worker) return;
    PyObject_SetAttrString(g.worker, "booted", Py_True);
    call_hook("post_worker_init", PyTuple_Pack(1, g.worker));
    if (PyDict_GetItemString(g.hooks, "worker_int")) gp_worker_set_int_hook(worker_int);
    PyObject *abort_hook = PyDict_GetItemString(g.hooks, "worker_abort");
    PyObject *r = abort_hook
                      ? PyObject_CallFunction(helper("arm_abort"), "OO", g.worker, abort_hook)
                      : Py_NewRef(Py_None);
    if (!r) {
        gp_error("cannot arm the worker_abort hook");
        gp_bridge_print_error();
    }
    Py_XDECREF(r);
}

void gp_hooks_worker_exit(void)
{
    if (!g.worker) return;
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject_SetAttrString(g.worker, "alive", Py_False);
    call_hook("worker_exit", PyTuple_Pack(2, g.server, g.worker));
    PyGILState_Release(st);
}

void gp_hooks_master(const char *name, int pid, int age, int old)
{
    if (!g.hooks || !PyDict_GetItemString(g.hooks, name)) return;
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject *args;
    if (strcmp(name, "nworkers_changed") == 0) {
        args = Py_BuildValue("(Oii)", g.server, age, old); /* (server, new_value, old_value) */
    } else if (strcmp(name, "pre_fork") == 0 || strcmp(name, "child_exit") == 0) {
        /* pre_fork's worker has no pid yet, as in gunicorn */
        PyObject *p = pid ? PyLong_FromLong(pid) : Py_NewRef(Py_None);
        PyObject *w = p ? PyObject_CallFunction(helper("Worker"), "OOlldk", g.server, p,
                                                (long)getpid(), (long)age, 0.0, 0ul)
                        : NULL;
        args = w ? PyTuple_Pack(2, g.server, w) : NULL;
        Py_XDECREF(w);
        Py_XDECREF(p);
    } else {
        args = PyTuple_Pack(1, g.server);
    }
    if (!args) gp_bridge_print_error();
    call_hook(name, args);
    PyGILState_Release(st);
}
