/* handoff: what a forked worker carries across exec into the Python interpreter.
 *
 * A worker forks from the master, then executes the real interpreter (which
 * loads the bridge as an extension module), so everything it knew as memory
 * is gone on the other side. The child of fork writes its gp_worker_args and
 * the master's settings into a memfd; the exec'd worker reads them back.
 *
 * Settings travel as the argument list the master parsed them from (the
 * command line with the config file's lines first, cfg->file_args) and are
 * parsed again by the same parser, plus what the master resolved outside the
 * parser (the worker count and its reason, the config file found by itself).
 * So the worker has exactly the master's configuration, even after a HUP
 * changed it, and never evaluates a config file again.
 *
 * Descriptors keep their numbers across exec: every one the forked child
 * holds crosses it (listeners, the master's wake eventfd, the scoreboard
 * memfd, the access log, whatever another module gave the workers), with
 * close-on-exec restored after it. gp_worker_args and gp_listener travel as
 * raw bytes, so a field added to them needs no change here. No Python. */
#ifndef GP_HANDOFF_H
#define GP_HANDOFF_H

#include <stddef.h>

#include "core/config.h"
#include "core/master.h"

typedef struct {
    gp_worker_args args; /* cfg, listeners and scoreboard point into this struct */
    gp_config cfg;
    gp_listener listeners[GP_MAX_BINDS];
    int access_fd; /* the access log's descriptor, -1 when off */
    char *blob;    /* the strings argv and cfg point into */
    char **argv;
} gp_handoff;

/* Child of fork, before exec: every descriptor of the process stays open
 * across the exec (close-on-exec cleared; the worker sets it again on the
 * same ones, so it holds what a forked worker would), and a memfd holds a's
 * state and access_fd. Returns the memfd (not close-on-exec, offset 0), or
 * -errno. */
int gp_handoff_prepare(const gp_worker_args *a, int access_fd);

/* Worker after exec: reads fd (then closes it), parses the settings again
 * and attaches the scoreboard. 0, or -1 with a one-line reason in err. On
 * success h->args is ready for gp_worker_run; h stays allocated for the
 * worker's life. */
int gp_handoff_read(int fd, gp_handoff *h, char *err, size_t errlen);

#endif
