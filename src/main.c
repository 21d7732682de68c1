/* main: gallop's entry point. Parses the command line, sets up the logs and
 * hands over to the master. Workers load the Python bridge (a shared object
 * linked to libpython) only after fork, so the master never maps Python. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/conffile.h"
#include "core/config.h"
#include "core/log.h"
#include "core/master.h"

#ifndef GP_BRIDGE_NAME
#define GP_BRIDGE_NAME "gallop-python.so"
#endif

static char bridge_path[PATH_MAX + 32];

/* The bridge sits next to the binary. */
static int find_bridge(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    slash[1] = 0;
    snprintf(bridge_path, sizeof bridge_path, "%s%s", exe, GP_BRIDGE_NAME);
    if (access(bridge_path, R_OK) != 0) {
        fprintf(stderr, "gallop: error: the Python bridge %s is missing: %s\n", bridge_path,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void *bridge;

static void *bridge_symbol(const char *name)
{
    /* RTLD_GLOBAL: extension modules resolve libpython's symbols through it */
    if (!bridge && !(bridge = dlopen(bridge_path, RTLD_NOW | RTLD_GLOBAL))) {
        fprintf(stderr, "gallop: error: cannot load the Python bridge: %s\n", dlerror());
        return NULL;
    }
    void *sym = dlsym(bridge, name);
    if (!sym) fprintf(stderr, "gallop: error: the Python bridge lacks %s: %s\n", name, dlerror());
    return sym;
}

static int worker_main(const gp_worker_args *args)
{
    if (gp_master_drop_privileges(args->cfg) < 0) return GP_EXIT_BOOT_ERROR;
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
    if (rc == 0) gp_master_set_fork_hooks(before, after);
    if (rc == 0) gp_master_set_hook(hook); /* a Python config file's on_starting, ... */
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
    gp_master_block_signals();
    gp_config cfg;
    int r = gp_config_load(&cfg, argc, argv);
    if (r) return r > 0 ? GP_EXIT_OK : GP_EXIT_USAGE;
    if (find_bridge() < 0) return GP_EXIT_BOOT_ERROR; /* README: 3, no worker could boot */
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
