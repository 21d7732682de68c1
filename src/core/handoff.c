/* handoff: a worker's state across exec, in a memfd; see handoff.h.
 *
 * Layout: a fixed header, the listeners as they are in memory (the same
 * build reads them, so a raw copy is exact), then NUL-terminated strings:
 * the worker count's reason, the config file ("" for none), the directory
 * the master parsed in, and the arguments to parse. */
#include "core/handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HANDOFF_MAGIC 0x676c6f70u /* "glop" */
#define HANDOFF_MAX (16u << 20)

typedef struct {
    uint32_t magic;
    uint32_t listener_size; /* sizeof(gp_listener): a mismatched build is refused */
    int32_t slot;
    uint32_t generation;
    int32_t master_pid, wake_fd, scoreboard_fd, access_fd;
    int32_t num_listeners, workers, argc, has_config_file;
    uint32_t strings_len;
} wire_header;

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The arguments the master's settings came from. */
static char **source_args(const gp_config *cfg, int *argc)
{
    if (!cfg->file_args) {
        *argc = cfg->argc;
        return cfg->argv;
    }
    int n = 0;
    while (cfg->file_args[n]) n++;
    *argc = n;
    return cfg->file_args;
}

int gp_handoff_write(const gp_worker_args *a, int access_fd)
{
    const gp_config *cfg = a->cfg;
    int argc;
    char **argv = source_args(cfg, &argc);
    const char *strs[3] = {cfg->workers_why, cfg->config_file ? cfg->config_file : "",
                           cfg->parse_dir};
    size_t slen = strlen(strs[0]) + strlen(strs[1]) + strlen(strs[2]) + 3;
    for (int i = 0; i < argc; i++) slen += strlen(argv[i]) + 1;
    if (slen > HANDOFF_MAX || a->num_listeners < 0 || a->num_listeners > GP_MAX_BINDS)
        return -E2BIG;
    wire_header h = {
        .magic = HANDOFF_MAGIC,
        .listener_size = sizeof(gp_listener),
        .slot = a->slot,
        .generation = a->generation,
        .master_pid = (int32_t)a->master_pid,
        .wake_fd = a->wake_fd,
        .scoreboard_fd = a->scoreboard->fd,
        .access_fd = access_fd,
        .num_listeners = a->num_listeners,
        .workers = cfg->workers,
        .argc = argc,
        .has_config_file = cfg->config_file != NULL,
        .strings_len = (uint32_t)slen,
    };
    int fd = memfd_create("gallop-worker", 0); /* no MFD_CLOEXEC: it crosses the exec */
    if (fd < 0) return -errno;
    int bad = write_all(fd, &h, sizeof h) ||
              write_all(fd, a->listeners, (size_t)a->num_listeners * sizeof *a->listeners);
    for (int i = 0; i < 3 && !bad; i++) bad = write_all(fd, strs[i], strlen(strs[i]) + 1);
    for (int i = 0; i < argc && !bad; i++) bad = write_all(fd, argv[i], strlen(argv[i]) + 1);
    if (bad || lseek(fd, 0, SEEK_SET) != 0) {
        int e = errno ? errno : EIO;
        close(fd);
        return -e;
    }
    return fd;
}

static int keep_fd(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0) return -errno;
    return 0;
}

int gp_handoff_keep(const gp_worker_args *a, int access_fd)
{
    int r = 0;
    for (int i = 0; i < a->num_listeners && !r; i++)
        if (a->listeners[i].fd >= 0) r = keep_fd(a->listeners[i].fd);
    if (!r && a->wake_fd >= 0) r = keep_fd(a->wake_fd);
    if (!r) r = keep_fd(a->scoreboard->fd);
    if (!r && access_fd > 2) r = keep_fd(access_fd);
    return r;
}

/* The settings parsed again, in the directory the master parsed them in
 * (a relative --static DIR is resolved then), and silently: the master
 * printed any warning once. */
static int parse_quietly(gp_config *cfg, int argc, char **argv, const char *dir)
{
    int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool moved = here >= 0 && dir[0] && chdir(dir) == 0;
    fflush(stderr);
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved >= 0 && null >= 0) dup2(null, STDERR_FILENO);
    if (null >= 0) close(null);
    int r = gp_config_parse(cfg, argc, argv);
    fflush(stderr);
    if (saved >= 0) {
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
    if (moved && fchdir(here) < 0) r = -1;
    if (here >= 0) close(here);
    return r;
}

/* The next NUL-terminated string at *p within end, or NULL. */
static char *next_string(char **p, char *end)
{
    char *s = *p, *z = s < end ? memchr(s, 0, (size_t)(end - s)) : NULL;
    if (!z) return NULL;
    *p = z + 1;
    return s;
}

int gp_handoff_read(int fd, gp_handoff *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    struct stat st;
    wire_header w;
    const char *why = "cannot read the worker's state";
    char *p, *end;
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof w || st.st_size > (off_t)HANDOFF_MAX * 2)
        goto fail;
    h->blob = malloc((size_t)st.st_size);
    if (!h->blob) goto fail;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, h->blob + got, (size_t)st.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
        got += (size_t)n;
    }
    close(fd);
    fd = -1;
    memcpy(&w, h->blob, sizeof w);
    errno = 0;
    why = "the worker's state is not from this build of gallop";
    if (w.magic != HANDOFF_MAGIC || w.listener_size != sizeof(gp_listener) ||
        w.num_listeners < 0 || w.num_listeners > GP_MAX_BINDS || w.argc < 1 ||
        sizeof w + (size_t)w.num_listeners * sizeof(gp_listener) + w.strings_len !=
            (size_t)st.st_size)
        goto fail;
    p = h->blob + sizeof w;
    memcpy(h->listeners, p, (size_t)w.num_listeners * sizeof(gp_listener));
    p += (size_t)w.num_listeners * sizeof(gp_listener);
    end = h->blob + st.st_size;
    char *workers_why = next_string(&p, end), *config_file = next_string(&p, end);
    char *parse_dir = next_string(&p, end);
    if (!(h->argv = calloc((size_t)w.argc + 1, sizeof *h->argv))) goto fail;
    for (int i = 0; i < w.argc; i++)
        if (!(h->argv[i] = next_string(&p, end))) goto fail;
    if (!workers_why || !config_file || !parse_dir || p != end) goto fail;
    why = "the settings do not parse in the worker";
    errno = 0;
    if (parse_quietly(&h->cfg, w.argc, h->argv, parse_dir) != 0) goto fail;
    h->cfg.workers = w.workers;
    snprintf(h->cfg.workers_why, sizeof h->cfg.workers_why, "%s", workers_why);
    h->cfg.config_file = w.has_config_file ? config_file : NULL;
    h->access_fd = w.access_fd;
    why = "cannot map the scoreboard";
    errno = 0;
    gp_scoreboard *sb = gp_scoreboard_attach(w.scoreboard_fd);
    if (!sb || w.slot < 0 || w.slot >= sb->num_slots) goto fail;
    h->args = (gp_worker_args){
        .cfg = &h->cfg,
        .listeners = h->listeners,
        .num_listeners = w.num_listeners,
        .scoreboard = sb,
        .slot = w.slot,
        .generation = w.generation,
        .master_pid = (pid_t)w.master_pid,
        .wake_fd = w.wake_fd,
    };
    /* the app's own children get none of these */
    for (int i = 0; i < w.num_listeners; i++)
        if (h->listeners[i].fd >= 0) fcntl(h->listeners[i].fd, F_SETFD, FD_CLOEXEC);
    if (w.wake_fd >= 0) fcntl(w.wake_fd, F_SETFD, FD_CLOEXEC);
    if (w.access_fd > 2) fcntl(w.access_fd, F_SETFD, FD_CLOEXEC);
    return 0;
fail:
    snprintf(err, errlen, "%s%s%s", why, errno ? ": " : "", errno ? strerror(errno) : "");
    if (fd >= 0) close(fd);
    free(h->argv);
    free(h->blob);
    h->argv = NULL;
    h->blob = NULL;
    return -1;
}
