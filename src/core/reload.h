/* reload: --reload's file watcher, for development. The master owns one:
 * inotify watches over the directory trees (new subdirectories are picked
 * up, editors' write-then-rename saves are seen), uvicorn's include/exclude
 * glob patterns, gunicorn's extra files, and a debounce so a burst of saves
 * asks for one reload.
 *
 * It only says "something changed, reload now"; starting the new
 * generation of workers is the master's. Never opens a file it watches. */
#ifndef GP_RELOAD_H
#define GP_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *const *dirs; /* trees to watch; none: the current directory */
    int num_dirs;
    const char *const *includes; /* glob patterns a changed file must match (plus "*.py") */
    int num_includes;
    const char *const *excludes; /* patterns, or existing directories not to watch */
    int num_excludes;
    const char *const *extra_files; /* watched whatever the patterns say */
    int num_extra_files;
    double delay; /* seconds of quiet before a reload */
} gp_reload_opts;

typedef struct gp_reload gp_reload;

/* Sets up the watches. Returns NULL after writing one line into err
 * (a directory that cannot be watched, no inotify). */
gp_reload *gp_reload_open(const gp_reload_opts *opts, char *err, size_t errlen);
void gp_reload_close(gp_reload *r);

/* The inotify descriptor to poll for POLLIN. */
int gp_reload_fd(const gp_reload *r);

/* Number of directories watched. */
int gp_reload_watched(const gp_reload *r);

/* "/srv/app (12 directories)", for the log; truncated to fit len. */
void gp_reload_describe(const gp_reload *r, char *out, size_t len);

/* Reads every pending event; a change to a wanted file starts or extends
 * the debounce. now is monotonic seconds. Returns the number of wanted
 * changes seen. */
int gp_reload_read(gp_reload *r, double now);

/* Seconds until a reload is due (> 0), 0 when it is due now (the pending
 * change is then consumed and *what names a changed file), or -1 when
 * nothing is pending. */
double gp_reload_due(gp_reload *r, double now, const char **what);

/* pathlib's PurePath(path).match(pattern): a relative pattern matches the
 * last components of path, one fnmatch per component; an absolute one must
 * match all of them. */
bool gp_reload_path_match(const char *path, const char *pattern);

/* The debounce: a reload is due once no change came for delay seconds, or
 * at the latest cap seconds after the first change of a burst, so a file
 * rewritten without pause still reloads. */
typedef struct {
    bool pending;
    double first, last;
} gp_debounce;

void gp_debounce_note(gp_debounce *d, double now);
/* As gp_reload_due: > 0 seconds to wait, 0 due (and reset), -1 idle. */
double gp_debounce_check(gp_debounce *d, double now, double delay, double cap);

#endif
