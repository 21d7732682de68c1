/* master: the arbiter. Binds the listeners, forks the workers, watches them
 * through one signalfd loop, replaces the dead and stops them all on TERM/QUIT.
 *
 * Never starts Python: the worker entry point is a callback that runs only in
 * the forked child. */
#ifndef GP_MASTER_H
#define GP_MASTER_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/listen.h"
#include "core/scoreboard.h"

typedef struct {
    int fd; /* -1 with --reuse-port: each worker opens its own */
    gp_addr addr;
    bool inherited; /* from systemd or --fd: not ours to unlink */
    /* --reuse-port round-robin (reuseport.h): once ready, a worker joins its
     * own socket with these two; without, the kernel's hash decides */
    bool balanced;
    int rp_socks_fd, rp_prog_fd;
    int tls_fd; /* TLS: the certificate bundle (core/tlsconf.h) workers build from; <= 0: plain */
} gp_listener;

/* What a worker starts from. A worker executes the interpreter after fork:
 * core/handoff.c carries this struct across as raw bytes (pointers set again
 * on the other side), and every descriptor stays open; a pointer added here
 * needs handling there. */
typedef struct {
    const gp_config *cfg;
    gp_listener *listeners;
    int num_listeners;
    gp_scoreboard *scoreboard;
    int slot;
    unsigned generation;
    pid_t master_pid; /* the parent to outlive: not 1 when the master is PID 1 */
    int wake_fd;      /* eventfd: a write wakes the master (ready, asks to retire) */
    unsigned age;     /* how many workers the master started before this one (gunicorn's age) */
} gp_worker_args;

/* Runs in the forked child; its return value is the child's exit status
 * (main's executes the interpreter, so it returns only on failure). */
typedef int (*gp_worker_entry)(const gp_worker_args *args);

/* Runs the master until it stops; returns the process exit code (config.h). */
int gp_master_run(const gp_config *cfg, gp_worker_entry entry);

/* Blocks the signals the master reads from its signalfd. main calls it
 * first, so threads an app starts in a --preload import inherit the block. */
void gp_master_block_signals(void);

/* Called around every fork when the master hosts an interpreter (--preload). */
void gp_master_set_fork_hooks(void (*before)(void), void (*after_in_parent)(void));

/* With --preload: the server hooks of a Python config file, called by name
 * (on_starting, when_ready, pre_fork, child_exit, on_reload, nworkers_changed,
 * pre_exec, on_exit) with a worker's pid and age, or nworkers_changed's
 * (new, old) in (age, old). */
typedef void (*gp_master_hook)(const char *name, int pid, int age, int old);
void gp_master_set_hook(gp_master_hook hook);

/* Switches the calling worker to --user / --group. Returns 0, or -1 after
 * logging why. */
int gp_master_drop_privileges(const gp_config *cfg);

#endif
