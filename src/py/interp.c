/* interp: interpreter start-up and app import; see interp.h. */
#include "py/interp.h"

#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "py/appcall.h"
#include "py/bridge.h"

#ifndef GP_PYTHON
#define GP_PYTHON "/usr/bin/python3"
#endif

static int prepend_path(PyObject *sys_path, const char *dir)
{
    PyObject *s = PyUnicode_DecodeFSDefault(dir);
    if (!s) return -1;
    int r = PyList_Insert(sys_path, 0, s);
    Py_DECREF(s);
    return r;
}

/* The venv's site-packages go first, and through site.addsitedir so its .pth
 * files work, as they would under the venv's own python. */
static int add_venv(const char *venv)
{
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "%s/lib/python%d.%d/site-packages", venv, PY_MAJOR_VERSION,
             PY_MINOR_VERSION);
    if (access(pattern, F_OK) != 0) {
        gp_error("virtual environment '%s' has no %s (built for another Python?)", venv, pattern);
        return -1;
    }
    PyObject *site = PyImport_ImportModule("site");
    PyObject *r = site ? PyObject_CallMethod(site, "addsitedir", "s", pattern) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(site);
    if (!r) return -1;
    PyObject *sys_path = PySys_GetObject("path");
    return sys_path ? prepend_path(sys_path, pattern) : -1;
}

/* What gallop puts first on sys.path, in both interpreters: the working
 * directory, then --pythonpath (and the venv's site-packages when embedded,
 * where no venv python set them up). */
static int add_paths(const gp_config *cfg, const char *venv)
{
    PyObject *sys_path = PySys_GetObject("path");
    if (!sys_path) goto fail;
    if (venv && add_venv(venv) < 0) goto fail;
    for (int i = cfg->num_pythonpath - 1; i >= 0; i--)
        if (prepend_path(sys_path, cfg->pythonpath[i]) < 0) goto fail;
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) && prepend_path(sys_path, cwd) < 0) goto fail;
    return 0;
fail:
    if (PyErr_Occurred()) gp_bridge_print_error();
    return GP_EXIT_BOOT_ERROR;
}

/* In the interpreter a worker executed: it is running already (the venv's
 * own when there is one, so its site-packages and .pth files are set up as
 * that python does). sys.argv becomes what the embedded interpreter has (the
 * -c the worker was started with is none of the app's business) and the ""
 * that -c put first on sys.path goes (the working directory goes in by its
 * full name). */
static int adopt_running(const gp_config *cfg)
{
    PyObject *sys_path = PySys_GetObject("path");
    PyObject *argv = Py_BuildValue("[s]", "gallop");
    int r = argv ? PySys_SetObject("argv", argv) : -1;
    Py_XDECREF(argv);
    if (r < 0 || !sys_path || !PyList_Check(sys_path)) goto fail;
    if (PyList_GET_SIZE(sys_path) > 0) {
        PyObject *first = PyList_GET_ITEM(sys_path, 0);
        if (PyUnicode_Check(first) && PyUnicode_GET_LENGTH(first) == 0 &&
            PySequence_DelItem(sys_path, 0) < 0)
            goto fail;
    }
    return add_paths(cfg, NULL);
fail:
    if (PyErr_Occurred()) gp_bridge_print_error();
    return GP_EXIT_BOOT_ERROR;
}

int gp_py_start(const gp_config *cfg)
{
    if (Py_IsInitialized()) return adopt_running(cfg);
    PyConfig pc;
    PyConfig_InitPythonConfig(&pc);
    pc.install_signal_handlers = 0; /* the worker core owns the signals */
    pc.parse_argv = 0;
    PyStatus st = PyConfig_SetBytesString(&pc, &pc.program_name, GP_PYTHON);
    if (!PyStatus_Exception(st)) {
        char *argv[] = {(char *)"gallop", NULL};
        st = PyConfig_SetBytesArgv(&pc, 1, argv);
    }
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&pc);
    PyConfig_Clear(&pc);
    if (PyStatus_Exception(st)) {
        gp_error("cannot start Python: %s", st.err_msg ? st.err_msg : "unknown");
        return GP_EXIT_BOOT_ERROR;
    }
    return add_paths(cfg, cfg->venv);
}

/* True when the import failed because `module` (or a package above it) does
 * not exist, rather than because the module itself imports something missing. */
static int module_missing(const char *module)
{
    if (!PyErr_ExceptionMatches(PyExc_ModuleNotFoundError)) return 0;
    PyObject *value = gp_bridge_take_error();
    int missing = 0;
    PyObject *name = value ? PyObject_GetAttrString(value, "name") : NULL;
    if (name && PyUnicode_Check(name)) {
        const char *n = PyUnicode_AsUTF8(name);
        size_t k = n ? strlen(n) : 0;
        missing = n && strncmp(module, n, k) == 0 && (module[k] == 0 || module[k] == '.');
    }
    Py_XDECREF(name);
    gp_bridge_restore_error(value);
    return missing;
}

/* The first worker to fail prints why; the others wait until it has, since
 * the master stops every worker as soon as one of them exits with the error
 * (load_error_reported: 0 nobody yet, 1 printing, 2 printed). */
static void report_once(gp_scoreboard *sb, const char *fmt, const char *a, const char *b)
{
    if (sb && atomic_exchange(&sb->load_error_reported, 1)) {
        PyErr_Clear();
        for (int i = 0; i < 200 && atomic_load(&sb->load_error_reported) == 1; i++)
            usleep(10000);
        return;
    }
    /* a log line as the master's, then the traceback's lines */
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, a, b);
    gp_error("%s", msg);
    if (PyErr_Occurred()) gp_bridge_print_error();
    if (sb) atomic_store(&sb->load_error_reported, 2);
}

PyObject *gp_py_load_app(const gp_config *cfg, gp_scoreboard *sb, int *exit_code)
{
    char module[1024];
    const char *colon = strchr(cfg->app, ':');
    const char *attr = colon ? colon + 1 : "app";
    size_t mlen = colon ? (size_t)(colon - cfg->app) : strlen(cfg->app);
    *exit_code = GP_EXIT_APP_ERROR;
    if (mlen >= sizeof module) mlen = sizeof module - 1;
    memcpy(module, cfg->app, mlen);
    module[mlen] = 0;

    PyObject *obj = PyImport_ImportModule(module);
    if (!obj) {
        if (module_missing(module)) {
            PyErr_Clear();
            report_once(sb,
                        "cannot import module '%s': no such module (sys.path[0] is the current "
                        "directory%s)",
                        module, cfg->chdir ? ", set by --chdir" : "; see --chdir and --pythonpath");
        } else {
            report_once(
                sb, "the app module '%s' raised an exception while importing (traceback below)%s",
                module, "");
        }
        return NULL;
    }
    /* dotted attribute path: module:obj.attr, or gunicorn's obj.create_app(args) */
    char path[1024], name[1024];
    snprintf(path, sizeof path, "%s", attr);
    char *call = strchr(path, '(');
    if (call) *call = 0;
    snprintf(name, sizeof name, "%s", path); /* strtok cuts path up */
    for (char *part = strtok(path, "."); part; part = strtok(NULL, ".")) {
        PyObject *next = PyObject_GetAttrString(obj, part);
        Py_DECREF(obj);
        if (!next) {
            PyErr_Clear();
            report_once(sb, "attribute '%s' not found in module '%s'", name, module);
            return NULL;
        }
        obj = next;
    }
    if (call) {
        char why[256];
        PyObject *app = gp_appcall(obj, attr + (call - path), why, sizeof why);
        Py_DECREF(obj);
        if (!app && why[0])
            report_once(sb, "cannot call the app factory in '%s': %s", cfg->app, why);
        else if (!app)
            report_once(sb, "the app factory '%s' raised an exception (traceback below)%s",
                        cfg->app, "");
        if (!app) return NULL;
        obj = app;
    } else if (cfg->factory) {
        PyObject *app = PyObject_CallNoArgs(obj);
        Py_DECREF(obj);
        if (!app) {
            report_once(sb, "the app factory '%s' raised an exception (traceback below)%s",
                        cfg->app, "");
            return NULL;
        }
        obj = app;
    }
    if (!PyCallable_Check(obj)) {
        report_once(sb, "'%s' is not callable (is it the app? use --factory for an app factory)%s",
                    cfg->app, "");
        Py_DECREF(obj);
        return NULL;
    }
    *exit_code = 0;
    return obj;
}

static void flush_stream(const char *name)
{
    PyObject *f = PySys_GetObject(name); /* borrowed */
    PyObject *r = f && f != Py_None ? PyObject_CallMethod(f, "flush", NULL) : NULL;
    if (!r) PyErr_Clear(); /* a closed or replaced stream: nothing to flush */
    Py_XDECREF(r);
}

void gp_py_finish(void)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *r = atexit ? PyObject_CallMethod(atexit, "_run_exitfuncs", NULL) : NULL;
    if (!r) PyErr_Print(); /* the handlers' own errors are printed by atexit */
    Py_XDECREF(r);
    Py_XDECREF(atexit);
    flush_stream("stdout");
    flush_stream("stderr");
    PyGILState_Release(g);
}
