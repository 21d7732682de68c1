/* reload: the --reload file watcher; see reload.h.
 *
 * Which files count follows uvicorn: a file is wanted when it matches an
 * include pattern ("*.py" unless excluded) and no exclude pattern (".*",
 * ".py[cod]", ".sw.*", "~*" unless included); an include pattern that is
 * the file's literal name wins over the excludes. An exclude that names an
 * existing directory keeps that tree unwatched. Directories nobody edits
 * code in are not walked: VCS and tool caches, __pycache__, node_modules,
 * site-packages, virtual environments (a pyvenv.cfg inside), names an
 * exclude pattern matches (so ".*" skips hidden ones), and /proc, /sys, /dev. */
#include "core/reload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#define MAX_DEPTH 64
#define MAX_WATCHES 65536
#define DIR_EVENTS                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB)

static const char *const default_includes[] = {"*.py"};
static const char *const default_excludes[] = {".*", ".py[cod]", ".sw.*", "~*"};
static const char *const skipped_dirs[] = {
    "__pycache__", ".git",        ".hg",          ".svn",         ".tox",
    ".nox",        ".venv",       ".idea",        ".mypy_cache",  ".pytest_cache",
    ".ruff_cache", ".hypothesis", "node_modules", "site-packages"};

typedef struct {
    int wd;
    bool tree; /* part of a watched tree, not only an extra file's directory */
    char *path;
} watch;

struct gp_reload {
    int fd;
    watch *w;
    int nw, cap;
    const char **inc, **exc; /* patterns */
    int ninc, nexc;
    char **top;       /* the trees, absolute */
    char **skip_dirs; /* excluded directories, absolute */
    char **extra;     /* extra files, absolute */
    int ntop, nskip, nextra;
    double delay;
    gp_debounce deb;
    bool warned_limit;
    char what[PATH_MAX];
};

/* ---- pattern matching -------------------------------------------------- */

/* The component of s that ends at end (exclusive), skipping empty ones:
 * returns its start, or NULL when there is none. */
static const char *prev_component(const char *s, const char **end)
{
    const char *e = *end;
    while (e > s && e[-1] == '/') e--;
    if (e == s) return NULL;
    const char *b = e;
    while (b > s && b[-1] != '/') b--;
    *end = b;
    return b;
}

static bool component_match(const char *pat, size_t plen, const char *name, size_t nlen)
{
    char p[NAME_MAX + 1], n[NAME_MAX + 1];
    if (plen > NAME_MAX || nlen > NAME_MAX) return false;
    memcpy(p, pat, plen);
    p[plen] = 0;
    memcpy(n, name, nlen);
    n[nlen] = 0;
    /* Python's fnmatch has no escapes, and its '*' takes a leading dot */
    return fnmatch(p, n, FNM_NOESCAPE) == 0;
}

bool gp_reload_path_match(const char *path, const char *pattern)
{
    bool absolute = pattern[0] == '/';
    const char *pe = pattern + strlen(pattern), *se = path + strlen(path);
    const char *pend = pe, *send = se;
    bool any = false;
    for (;;) {
        const char *pb = prev_component(pattern, &pe);
        if (!pb) break;
        size_t plen = (size_t)(pend - pb);
        while (plen && pb[plen - 1] == '/') plen--;
        const char *sb = prev_component(path, &se);
        if (!sb) return false; /* the pattern is longer than the path */
        size_t slen = (size_t)(send - sb);
        while (slen && sb[slen - 1] == '/') slen--;
        if (!component_match(pb, plen, sb, slen)) return false;
        any = true;
        pend = pe;
        send = se;
    }
    if (!any) return false; /* an empty pattern matches nothing */
    if (!absolute) return true;
    const char *end = se;
    return path[0] == '/' && !prev_component(path, &end);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* uvicorn's FileFilter: included, and not excluded unless literally named. */
static bool wanted(const gp_reload *r, const char *path)
{
    for (int i = 0; i < r->ninc; i++) {
        if (!gp_reload_path_match(path, r->inc[i])) continue;
        if (ends_with(path, r->inc[i])) return true;
        for (int j = 0; j < r->nexc; j++)
            if (gp_reload_path_match(path, r->exc[j])) return false;
        return true;
    }
    return false;
}

static bool is_extra(const gp_reload *r, const char *path)
{
    for (int i = 0; i < r->nextra; i++)
        if (strcmp(r->extra[i], path) == 0) return true;
    return false;
}

/* Directories not walked; path is absolute, name its last component. */
static bool skip_dir(const gp_reload *r, const char *path, const char *name)
{
    for (size_t i = 0; i < sizeof skipped_dirs / sizeof *skipped_dirs; i++)
        if (strcmp(name, skipped_dirs[i]) == 0) return true;
    for (int i = 0; i < r->nexc; i++)
        if (!strchr(r->exc[i], '/') && fnmatch(r->exc[i], name, FNM_NOESCAPE) == 0) return true;
    for (int i = 0; i < r->nskip; i++)
        if (strcmp(r->skip_dirs[i], path) == 0) return true;
    /* the kernel's trees, for a --reload run from / (a container's WORKDIR) */
    if (strcmp(path, "/proc") == 0 || strcmp(path, "/sys") == 0 || strcmp(path, "/dev") == 0)
        return true;
    char cfg[PATH_MAX];
    if ((size_t)snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", path) < sizeof cfg &&
        access(cfg, F_OK) == 0)
        return true; /* a virtual environment */
    return false;
}

/* ---- debounce ---------------------------------------------------------- */

void gp_debounce_note(gp_debounce *d, double now)
{
    if (!d->pending) {
        d->pending = true;
        d->first = now;
    }
    d->last = now;
}

double gp_debounce_check(gp_debounce *d, double now, double delay, double cap)
{
    if (!d->pending) return -1;
    double due = d->last + delay;
    if (d->first + cap < due) due = d->first + cap;
    if (now >= due) {
        d->pending = false;
        return 0;
    }
    return due - now;
}

/* ---- watches ------------------------------------------------------------ */

static watch *find_watch(gp_reload *r, int wd)
{
    for (int i = 0; i < r->nw; i++)
        if (r->w[i].wd == wd) return &r->w[i];
    return NULL;
}

static void drop_watch(gp_reload *r, int i)
{
    free(r->w[i].path);
    r->w[i] = r->w[--r->nw];
}

/* Adds (or refreshes) a watch on the directory path. Returns 0, or -errno. */
static int add_watch(gp_reload *r, const char *path, bool tree, bool follow)
{
    if (r->nw >= MAX_WATCHES) return -ENOSPC;
    uint32_t mask = DIR_EVENTS | IN_ONLYDIR | (follow ? 0 : IN_DONT_FOLLOW);
    int wd = inotify_add_watch(r->fd, path, mask);
    if (wd < 0) return -errno;
    watch *w = find_watch(r, wd);
    if (w) { /* the same directory again (a rescan, or a name it moved to) */
        char *p = strdup(path);
        if (!p) return -ENOMEM;
        free(w->path);
        w->path = p;
        w->tree |= tree;
        return 0;
    }
    if (r->nw == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        watch *more = realloc(r->w, (size_t)cap * sizeof *more);
        if (!more) return -ENOMEM;
        r->w = more;
        r->cap = cap;
    }
    char *p = strdup(path);
    if (!p) return -ENOMEM;
    r->w[r->nw++] = (watch){.wd = wd, .tree = tree, .path = p};
    return 0;
}

static void limit_warning(gp_reload *r, int err, const char *path)
{
    if (r->warned_limit) return;
    r->warned_limit = true;
    gp_warn("--reload: cannot watch %s: %s%s; changes below it are missed", path, strerror(-err),
            err == -ENOSPC ? " (raise fs.inotify.max_user_watches, or --reload-exclude it)" : "");
}

/* Watches path (of length len, in a PATH_MAX buffer) and every directory
 * below it. Returns the number of wanted files found, for a directory that
 * appeared after we started (its files may have been written before its
 * watch existed), or -errno when path itself cannot be watched. */
static int add_tree(gp_reload *r, char *path, size_t len, int depth, bool top)
{
    int rc = add_watch(r, path, true, top);
    if (rc < 0) {
        if (!top) limit_warning(r, rc, path);
        return rc;
    }
    DIR *d = opendir(path);
    if (!d) return 0;
    int found = 0;
    size_t at = len == 1 && path[0] == '/' ? 0 : len; /* where the '/' before a name goes */
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t n = strlen(e->d_name);
        if (at + 1 + n >= PATH_MAX) continue;
        path[at] = '/';
        memcpy(path + at + 1, e->d_name, n + 1);
        bool dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            dir = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
        }
        if (dir) {
            if (depth < MAX_DEPTH && !skip_dir(r, path, e->d_name)) {
                int sub = add_tree(r, path, at + 1 + n, depth + 1, false);
                if (sub > 0) found += sub;
            }
        } else if (wanted(r, path) || is_extra(r, path)) {
            found++;
        }
        path[len] = 0;
    }
    closedir(d);
    return found;
}

/* The watches of dir and of every directory below it go (it moved away). */
static int drop_tree(gp_reload *r, const char *dir)
{
    size_t n = strlen(dir);
    int dropped = 0;
    for (int i = r->nw - 1; i >= 0; i--) {
        const char *p = r->w[i].path;
        if (strncmp(p, dir, n) == 0 && (p[n] == 0 || p[n] == '/') && r->w[i].tree) {
            inotify_rm_watch(r->fd, r->w[i].wd);
            drop_watch(r, i);
            dropped++;
        }
    }
    return dropped;
}

static void note(gp_reload *r, const char *path, double now)
{
    if (!r->deb.pending) snprintf(r->what, sizeof r->what, "%s", path);
    gp_debounce_note(&r->deb, now);
}

/* An absolute, resolved copy of path; for a file that may not exist yet,
 * its directory is resolved. */
static char *absolute(const char *path, bool dir_only)
{
    char buf[PATH_MAX];
    if (!dir_only) return realpath(path, NULL);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *slash = strrchr(tmp, '/');
    const char *base = slash ? slash + 1 : tmp;
    if (slash) *slash = 0;
    if (!realpath(slash ? (tmp[0] ? tmp : "/") : ".", buf) || !*base) return NULL;
    size_t need = strlen(buf) + strlen(base) + 2;
    char *out = malloc(need);
    if (out) snprintf(out, need, "%s%s%s", buf, strcmp(buf, "/") ? "/" : "", base);
    return out;
}

static bool listed(const char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0) return true;
    return false;
}

/* The pattern lists as uvicorn builds them: defaults a user pattern of the
 * other list names are dropped; an exclude naming a directory is a tree. */
static int build_filters(gp_reload *r, const gp_reload_opts *o, char *err, size_t errlen)
{
    size_t ni = 1 + (size_t)o->num_includes, ne = 4 + (size_t)o->num_excludes;
    r->inc = calloc(ni, sizeof *r->inc);
    r->exc = calloc(ne, sizeof *r->exc);
    r->skip_dirs = calloc((size_t)o->num_excludes + 1, sizeof *r->skip_dirs);
    if (!r->inc || !r->exc || !r->skip_dirs) goto oom;
    for (size_t i = 0; i < 1; i++)
        if (!listed(o->excludes, o->num_excludes, default_includes[i]))
            r->inc[r->ninc++] = default_includes[i];
    for (int i = 0; i < o->num_includes; i++)
        if (!listed(r->inc, r->ninc, o->includes[i])) r->inc[r->ninc++] = o->includes[i];
    for (size_t i = 0; i < 4; i++)
        if (!listed(o->includes, o->num_includes, default_excludes[i]))
            r->exc[r->nexc++] = default_excludes[i];
    for (int i = 0; i < o->num_excludes; i++) {
        struct stat st;
        if (stat(o->excludes[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (!(r->skip_dirs[r->nskip] = realpath(o->excludes[i], NULL))) goto oom;
            r->nskip++;
        } else if (!listed(r->exc, r->nexc, o->excludes[i])) {
            r->exc[r->nexc++] = o->excludes[i];
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "--reload: out of memory");
    return -1;
}

gp_reload *gp_reload_open(const gp_reload_opts *o, char *err, size_t errlen)
{
    static const char *const here[] = {"."};
    gp_reload *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "--reload: out of memory");
        return NULL;
    }
    r->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    r->delay = o->delay;
    if (r->fd < 0) {
        snprintf(err, errlen, "--reload: inotify: %s", strerror(errno));
        goto fail;
    }
    if (build_filters(r, o, err, errlen) < 0) goto fail;
    const char *const *dirs = o->num_dirs ? o->dirs : here;
    int ndirs = o->num_dirs ? o->num_dirs : 1;
    r->top = calloc((size_t)ndirs, sizeof *r->top);
    r->extra = calloc((size_t)o->num_extra_files + 1, sizeof *r->extra);
    if (!r->top || !r->extra) {
        snprintf(err, errlen, "--reload: out of memory");
        goto fail;
    }
    for (int i = 0; i < ndirs; i++) {
        struct stat st;
        char *abs = realpath(dirs[i], NULL);
        if (!abs || stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "--reload-dir '%s': %s", dirs[i],
                     abs ? "not a directory" : strerror(errno));
            free(abs);
            goto fail;
        }
        r->top[r->ntop++] = abs;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s", abs);
        int rc = add_tree(r, path, strlen(path), 0, true);
        if (rc < 0) {
            snprintf(err, errlen, "--reload-dir '%s': cannot watch it: %s", dirs[i], strerror(-rc));
            goto fail;
        }
    }
    for (int i = 0; i < o->num_extra_files; i++) {
        char *abs = absolute(o->extra_files[i], true);
        if (!abs) {
            snprintf(err, errlen, "--reload-extra-file '%s': its directory: %s", o->extra_files[i],
                     strerror(errno ? errno : ENOENT));
            goto fail;
        }
        r->extra[r->nextra++] = abs;
        /* its directory, so a save by rename is seen too */
        char *slash = strrchr(abs, '/');
        *slash = 0;
        int rc = add_watch(r, slash == abs ? "/" : abs, false, true);
        *slash = '/';
        if (rc < 0) {
            snprintf(err, errlen, "--reload-extra-file '%s': cannot watch its directory: %s",
                     o->extra_files[i], strerror(-rc));
            goto fail;
        }
    }
    return r;
fail:
    gp_reload_close(r);
    return NULL;
}

void gp_reload_close(gp_reload *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    for (int i = 0; i < r->nw; i++) free(r->w[i].path);
    for (int i = 0; i < r->ntop; i++) free(r->top[i]);
    for (int i = 0; i < r->nskip; i++) free(r->skip_dirs[i]);
    for (int i = 0; i < r->nextra; i++) free(r->extra[i]);
    free(r->w);
    free(r->top);
    free(r->skip_dirs);
    free(r->extra);
    free(r->inc);
    free(r->exc);
    free(r);
}

int gp_reload_fd(const gp_reload *r)
{
    return r->fd;
}

int gp_reload_watched(const gp_reload *r)
{
    return r->nw;
}

void gp_reload_describe(const gp_reload *r, char *out, size_t len)
{
    size_t off = 0;
    out[0] = 0;
    for (int i = 0; i < r->ntop && off < len; i++)
        off += (size_t)snprintf(out + off, len - off, "%s%s", i ? ", " : "", r->top[i]);
    if (off < len)
        snprintf(out + off, len - off, " (%d director%s)", r->nw, r->nw == 1 ? "y" : "ies");
}

/* One event of directory w. Returns 1 when it is a wanted change. */
static int handle_event(gp_reload *r, watch *w, const struct inotify_event *ev, double now)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", strcmp(w->path, "/") ? w->path : "",
                         ev->name) >= sizeof path)
        return 0;
    if (ev->mask & IN_ISDIR) {
        if (!w->tree) return 0;
        const char *name = ev->name;
        if (ev->mask & IN_MOVED_FROM && drop_tree(r, path) > 0) {
            note(r, path, now); /* whatever code was in it is gone */
            return 1;
        }
        if (ev->mask & (IN_CREATE | IN_MOVED_TO) && !skip_dir(r, path, name)) {
            int found = add_tree(r, path, strlen(path), 1, false);
            if (found > 0) {
                note(r, path, now);
                return 1;
            }
        }
        return 0;
    }
    if (is_extra(r, path) || (w->tree && wanted(r, path))) {
        note(r, path, now);
        return 1;
    }
    return 0;
}

/* The kernel's queue overflowed: events (new directories among them) were
 * lost, so walk the trees again and count it as a change. */
static void rescan(gp_reload *r, double now)
{
    for (int i = 0; i < r->ntop; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s", r->top[i]);
        add_tree(r, path, strlen(path), 0, true);
    }
    note(r, "(inotify queue overflowed)", now);
}

int gp_reload_read(gp_reload *r, double now)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    int changes = 0;
    for (;;) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                rescan(r, now);
                changes++;
                continue;
            }
            watch *w = find_watch(r, ev->wd);
            if (!w) continue;
            if (ev->mask & IN_IGNORED) { /* the directory is gone */
                drop_watch(r, (int)(w - r->w));
                continue;
            }
            if (ev->len) changes += handle_event(r, w, ev, now);
        }
    }
    return changes;
}

double gp_reload_due(gp_reload *r, double now, const char **what)
{
    double wait = gp_debounce_check(&r->deb, now, r->delay, 8 * r->delay + 1.0);
    if (wait == 0 && what) *what = r->what;
    return wait;
}
