/* main: gallop's entry point. Parses the command line, sets up the logs, finds
 * the Python bridge and the interpreter, and hands over to the master.
 *
 * The master never maps Python: each worker, once forked, executes the real
 * interpreter (the statically linked python3 runs the app faster than an
 * embedder of libpython.so), which imports the bridge as an extension module
 * and reads the worker's state from a memfd (core/handoff.h). Only --preload
 * loads libpython and the bridge into the master; its workers fork without
 * exec. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/conffile.h"
#include "core/config.h"
#include "core/handoff.h"
#include "core/log.h"
#include "core/master.h"
#include "core/tlsconf.h"
#include "core/top.h"
#include "core/tune.h"

#ifndef GP_BRIDGE_NAME
#define GP_BRIDGE_NAME "gallop-python.so"
#endif
/* core/tls alone, for the master's TLS bundles (core/tlsconf.h) */
#define GP_TLSLIB_NAME "gallop-tls.so"
/* Set by the build from the Python it built for. */
#ifndef GP_PYTHON
#define GP_PYTHON "/usr/bin/python3"
#endif
#ifndef GP_PY_VERSION
#define GP_PY_VERSION "3.11"
#endif
#ifndef GP_LIBPYTHON
#define GP_LIBPYTHON "libpython3.11.so.1.0"
#endif

/* What a worker runs in the interpreter: load the bridge by its path as the
 * extension module _gallop and enter it with the state descriptor. */
#define WORKER_CODE                                                                                \
    "import sys,importlib.util as u;s=u.spec_from_file_location('_gallop',sys.argv[1]);"          \
    "m=u.module_from_spec(s);s.loader.exec_module(m);m.worker(int(sys.argv[2]))"

static char bridge_path[PATH_MAX + 32];
static char interpreter[PATH_MAX + 32];
static bool preloaded;

/* The directory of the running binary, with its trailing '/'. */
static int exe_dir(char *dir, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    if (n <= 0) return -1;
    dir[n] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash) return -1;
    slash[1] = 0;
    return 0;
}

/* The bridge sits next to the binary. */
static int find_bridge(const char *dir)
{
    snprintf(bridge_path, sizeof bridge_path, "%s%s", dir, GP_BRIDGE_NAME);
    if (access(bridge_path, R_OK) != 0) {
        fprintf(stderr, "gallop: error: the Python bridge %s is missing: %s\n", bridge_path,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* The "version = X.Y.Z" of a venv's pyvenv.cfg is for the Python gallop was
 * built for. Returns 1 (yes), 0 (another one, *found says which) or -1 (no
 * such line). */
static int venv_version_matches(const char *venv, char *found, size_t len)
{
    char path[PATH_MAX + 16], line[512];
    snprintf(path, sizeof path, "%s/pyvenv.cfg", venv);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    int r = -1;
    while (r < 0 && fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        /* "version" (3.11) or "version_info" (3.12+) */
        if (strncmp(p, "version", 7) != 0) continue;
        p += 7;
        if (strncmp(p, "_info", 5) == 0) p += 5;
        while (*p == ' ' || *p == '\t') p++;
        if (*p++ != '=') continue;
        while (*p == ' ' || *p == '\t') p++;
        p[strcspn(p, " \t\r\n")] = 0;
        size_t k = strlen(GP_PY_VERSION);
        snprintf(found, len, "%s", p);
        r = strncmp(p, GP_PY_VERSION, k) == 0 && (p[k] == '.' || p[k] == 0);
    }
    fclose(f);
    return r;
}

/* A virtual environment's own python runs the workers, so its site-packages
 * and .pth files work as they would under it. A stale one (gone, not a venv,
 * or for another Python) is refused once, here, rather than by every worker. */
static int use_venv(const char *venv, const char *from)
{
    struct stat st;
    char version[64];
    errno = 0;
    if (stat(venv, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "gallop: error: virtual environment '%s' (%s) %s; activate an existing one or "
                "pass --venv\n",
                venv, from, errno == ENOENT || !errno ? "does not exist" : strerror(errno));
        return -1;
    }
    snprintf(interpreter, sizeof interpreter, "%s/bin/python", venv);
    int v = venv_version_matches(venv, version, sizeof version);
    if (v < 0 || access(interpreter, X_OK) != 0) {
        fprintf(stderr,
                "gallop: error: '%s' (%s) is not a virtual environment: no pyvenv.cfg with a "
                "version, or no bin/python\n",
                venv, from);
        return -1;
    }
    if (v == 0) {
        fprintf(stderr,
                "gallop: error: virtual environment '%s' (%s) is for Python %s, but gallop was "
                "built for Python " GP_PY_VERSION " (rebuild it with that venv's python)\n",
                venv, from, version);
        return -1;
    }
    return 0;
}

/* A gallop that pip installed into a venv runs as if that venv were active
 * (unless another one is): its workers, and the interpreter that reads a
 * Python config file, are the venv's python. */
static void adopt_install_venv(const char *dir)
{
    char cfgfile[PATH_MAX + 32], python[PATH_MAX + 32];
    snprintf(cfgfile, sizeof cfgfile, "%s../pyvenv.cfg", dir);
    snprintf(python, sizeof python, "%spython", dir);
    const char *active = getenv("VIRTUAL_ENV");
    if ((active && *active) || access(cfgfile, R_OK) != 0 || access(python, X_OK) != 0) return;
    char venv[PATH_MAX];
    snprintf(venv, sizeof venv, "%s", dir);
    venv[strlen(venv) - 1] = 0; /* dir ends with "/bin/" and is a real path */
    char *slash = strrchr(venv, '/');
    if (!slash || slash == venv) return;
    *slash = 0;
    setenv("VIRTUAL_ENV", venv, 1);
}

/* The interpreter the workers execute: the venv's (--venv, $VIRTUAL_ENV, or
 * the one gallop is installed in), else the Python gallop was built for. */
static int find_interpreter(const gp_config *cfg)
{
    if (cfg->venv) {
        const char *env = getenv("VIRTUAL_ENV");
        bool flag = false;
        for (int i = 1; i < cfg->argc && !flag; i++)
            flag = strncmp(cfg->argv[i], "--venv", 6) == 0;
        bool from_env = !flag && env && strcmp(env, cfg->venv) == 0;
        return use_venv(cfg->venv, from_env ? "from $VIRTUAL_ENV" : "from --venv");
    }
    snprintf(interpreter, sizeof interpreter, "%s", GP_PYTHON);
    if (access(interpreter, X_OK) != 0) {
        fprintf(stderr,
                "gallop: error: the Python interpreter %s that gallop was built for is missing: "
                "%s\n",
                interpreter, strerror(errno));
        return -1;
    }
    return 0;
}

static void *bridge;

static void *bridge_symbol(const char *name)
{
    /* the bridge is an extension module and not linked to libpython: load
     * libpython first, RTLD_GLOBAL, for it and the app's extension modules */
    if (!bridge && !dlopen(GP_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL)) {
        fprintf(stderr, "gallop: error: --preload needs %s: %s\n", GP_LIBPYTHON, dlerror());
        return NULL;
    }
    if (!bridge && !(bridge = dlopen(bridge_path, RTLD_NOW | RTLD_GLOBAL))) {
        fprintf(stderr, "gallop: error: cannot load the Python bridge: %s\n", dlerror());
        return NULL;
    }
    void *sym = dlsym(bridge, name);
    if (!sym) fprintf(stderr, "gallop: error: the Python bridge lacks %s: %s\n", name, dlerror());
    return sym;
}

/* The forked child: as the worker's user, become the interpreter. */
static int exec_worker(const gp_worker_args *args)
{
    int access_fd = gp_access_log_fd();
    int fd = gp_handoff_prepare(args, access_fd);
    if (fd < 0) {
        gp_error("worker: cannot hand its state over: %s", strerror(-fd));
        return GP_EXIT_BOOT_ERROR;
    }
    char fd_arg[16];
    snprintf(fd_arg, sizeof fd_arg, "%d", fd);
    char *argv[] = {interpreter, (char *)"-c", (char *)WORKER_CODE, bridge_path, fd_arg, NULL};
#ifdef GP_WORKER_PRELOAD
    /* sanitizer builds: the runtime must come first in the interpreter too */
    setenv("LD_PRELOAD", GP_WORKER_PRELOAD, 1);
#endif
    execv(interpreter, argv);
    gp_error("worker: cannot execute the Python interpreter %s: %s", interpreter, strerror(errno));
    return GP_EXIT_BOOT_ERROR;
}

static int worker_main(const gp_worker_args *args)
{
    if (gp_master_drop_privileges(args->cfg) < 0) return GP_EXIT_BOOT_ERROR;
    if (!preloaded) return exec_worker(args);
    int (*entry)(const gp_worker_args *) =
        (int (*)(const gp_worker_args *))bridge_symbol("gp_py_worker_main");
    return entry ? entry(args) : GP_EXIT_BOOT_ERROR;
}

/* --preload: the master imports the app once; workers inherit it. */
static int preload(const gp_config *cfg)
{
    int (*load)(const gp_config *) = (int (*)(const gp_config *))bridge_symbol("gp_py_preload");
    void (*before)(void) = (void (*)(void))bridge_symbol("gp_py_before_fork");
    void (*after)(void) = (void (*)(void))bridge_symbol("gp_py_after_fork_parent");
    gp_master_hook hook = (gp_master_hook)bridge_symbol("gp_hooks_master");
    if (!load || !before || !after || !hook) return GP_EXIT_BOOT_ERROR;
    int rc = load(cfg);
    if (rc == 0) {
        gp_master_set_fork_hooks(before, after);
        gp_master_set_hook(hook); /* a Python config file's on_starting, ... */
        preloaded = true;
    }
    return rc;
}

/* Thousands of idle keep-alive connections need descriptors: take the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "top")) return gp_top_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "tune")) return gp_tune_main(argc - 1, argv + 1);
    gp_master_block_signals();
    char dir[PATH_MAX];
    bool have_dir = exe_dir(dir, sizeof dir) == 0;
    if (have_dir) adopt_install_venv(dir);
    char tlslib[PATH_MAX + 32];
    snprintf(tlslib, sizeof tlslib, "%s%s", have_dir ? dir : "", GP_TLSLIB_NAME);
    gp_tlsconf_set_library(tlslib);
    gp_config cfg;
    int r = gp_config_load(&cfg, argc, argv);
    if (r) return r > 0 ? GP_EXIT_OK : GP_EXIT_USAGE;
    /* README: 3, no worker could boot */
    if (!have_dir || find_bridge(dir) < 0 || find_interpreter(&cfg) < 0) return GP_EXIT_BOOT_ERROR;
    gp_conffile_apply_env(&cfg); /* raw_env / --env: the workers inherit them */
    raise_fd_limit();
    if (cfg.chdir && chdir(cfg.chdir) < 0) {
        fprintf(stderr, "gallop: error: cannot change directory to '%s': %s\n", cfg.chdir,
                strerror(errno));
        return GP_EXIT_ERROR;
    }
    if (gp_log_setup(cfg.log_level, cfg.error_log) < 0) {
        fprintf(stderr, "gallop: error: cannot open error log '%s': %s\n", cfg.error_log,
                strerror(errno));
        return GP_EXIT_ERROR;
    }
    gp_log_set_format(cfg.log_format); /* --log-format json */
    if (gp_access_log_setup(cfg.access_log) < 0) {
        fprintf(stderr, "gallop: error: cannot open access log '%s': %s\n", cfg.access_log,
                strerror(errno));
        return GP_EXIT_ERROR;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (cfg.preload && (r = preload(&cfg)) != 0) return r;
    return gp_master_run(&cfg, worker_main);
}
