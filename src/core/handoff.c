/* handoff: a worker's state across exec, in a memfd; see handoff.h.
 *
 * Layout: a fixed header; gp_worker_args and the listeners as they are in
 * memory (the same build reads them, so a raw copy is exact, and a field
 * someone adds travels without a change here; the pointers are set again on
 * the other side); the descriptors whose close-on-exec was cleared; then
 * NUL-terminated strings: the worker count's reason, the config file (""
 * for none), the directory the master parsed in, and the arguments. */
#include "core/handoff.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define HANDOFF_MAGIC 0x676c6f70u /* "glop" */
#define HANDOFF_MAX (16u << 20)

#define MAX_KEPT 4096 /* descriptors a worker may hold across the exec */

typedef struct {
    uint32_t magic;
    uint32_t args_size, listener_size; /* a mismatched build is refused */
    int32_t scoreboard_fd, access_fd;
    int32_t num_listeners, num_kept, workers, argc, has_config_file;
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

/* Clears close-on-exec on every descriptor above 2 that has it, so the
 * exec'd worker holds what a forked one does; their numbers go in kept.
 * Descriptors at or past the soft limit are not ours to pass on: valgrind
 * keeps its own there, and the valgrind in the exec'd worker needs that
 * range free (cost.py runs gallop under it). Returns how many, or -errno. */
static int keep_all(int *kept, int cap)
{
    struct rlimit rl;
    long limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < LONG_MAX ? (long)rl.rlim_cur
                                                                              : LONG_MAX;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -errno;
    int n = 0, self = dirfd(d), r = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd <= 2 || fd == self || fd >= limit) continue;
        int fl = fcntl((int)fd, F_GETFD);
        if (fl < 0 || !(fl & FD_CLOEXEC)) continue;
        if (n == cap) {
            r = -EMFILE;
            break;
        }
        if (fcntl((int)fd, F_SETFD, fl & ~FD_CLOEXEC) < 0) {
            r = -errno;
            break;
        }
        kept[n++] = (int)fd;
    }
    closedir(d);
    return r < 0 ? r : n;
}

int gp_handoff_prepare(const gp_worker_args *a, int access_fd)
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
    int fd = memfd_create("gallop-worker", 0); /* no MFD_CLOEXEC: it crosses the exec */
    if (fd < 0) return -errno;
    static int kept[MAX_KEPT];
    int num_kept = keep_all(kept, MAX_KEPT);
    if (num_kept < 0) {
        close(fd);
        return num_kept;
    }
    wire_header h = {
        .magic = HANDOFF_MAGIC,
        .args_size = sizeof *a,
        .listener_size = sizeof(gp_listener),
        .scoreboard_fd = a->scoreboard->fd,
        .access_fd = access_fd,
        .num_listeners = a->num_listeners,
        .num_kept = num_kept,
        .workers = cfg->workers,
        .argc = argc,
        .has_config_file = cfg->config_file != NULL,
        .strings_len = (uint32_t)slen,
    };
    int bad = write_all(fd, &h, sizeof h) || write_all(fd, a, sizeof *a) ||
              write_all(fd, a->listeners, (size_t)a->num_listeners * sizeof *a->listeners) ||
              write_all(fd, kept, (size_t)num_kept * sizeof *kept);
    for (int i = 0; i < 3 && !bad; i++) bad = write_all(fd, strs[i], strlen(strs[i]) + 1);
    for (int i = 0; i < argc && !bad; i++) bad = write_all(fd, argv[i], strlen(argv[i]) + 1);
    if (bad || lseek(fd, 0, SEEK_SET) != 0) {
        int e = errno ? errno : EIO;
        close(fd);
        return -e;
    }
    return fd;
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
    if (w.magic != HANDOFF_MAGIC || w.args_size != sizeof h->args ||
        w.listener_size != sizeof(gp_listener) || w.num_listeners < 0 ||
        w.num_listeners > GP_MAX_BINDS || w.num_kept < 0 || w.num_kept > MAX_KEPT || w.argc < 1 ||
        sizeof w + sizeof h->args + (size_t)w.num_listeners * sizeof(gp_listener) +
                (size_t)w.num_kept * sizeof(int) + w.strings_len !=
            (size_t)st.st_size)
        goto fail;
    p = h->blob + sizeof w;
    memcpy(&h->args, p, sizeof h->args);
    p += sizeof h->args;
    memcpy(h->listeners, p, (size_t)w.num_listeners * sizeof(gp_listener));
    p += (size_t)w.num_listeners * sizeof(gp_listener);
    int *kept = (int *)(void *)p; /* malloc'ed, at an offset that is a multiple of 4 */
    p += (size_t)w.num_kept * sizeof(int);
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
    if (!sb || h->args.slot < 0 || h->args.slot >= sb->num_slots) goto fail;
    h->args.cfg = &h->cfg;
    h->args.listeners = h->listeners;
    h->args.num_listeners = w.num_listeners;
    h->args.scoreboard = sb;
    /* close-on-exec again where the master had it: the app's children get none */
    for (int i = 0; i < w.num_kept; i++) fcntl(kept[i], F_SETFD, FD_CLOEXEC);
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
