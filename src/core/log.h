/* log: the error log (time, level, pid on every line) and the access log.
 *
 * One write(2) per line, so lines from several processes never interleave.
 * No Python; the bridge routes Python's tracebacks here through fd 2. */
#ifndef GP_LOG_H
#define GP_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum gp_log_level { GP_LOG_DEBUG, GP_LOG_INFO, GP_LOG_WARNING, GP_LOG_ERROR, GP_LOG_CRITICAL };

/* Parses "debug|info|warning|error|critical" (any case; uvicorn's "trace"
 * is debug); returns -1 when unknown. */
int gp_log_level_parse(const char *name);

/* Sets the minimum level and the error log's path ("-" or NULL: stderr).
 * Opening the file also points fd 2 at it, so anything the app or Python
 * prints to stderr lands in the same log. Returns 0 or -errno. */
int gp_log_setup(int level, const char *error_log);

/* A worker that executed the interpreter takes the master's logs as they
 * are, without opening anything: the error log is already its fd 2, the
 * access log the inherited access_fd (-1: off). The paths are kept for USR1. */
void gp_log_inherit(int level, const char *error_log, const char *access_log, int access_fd);

/* Changes the minimum level only. */
void gp_log_set_level(int level);

/* Reopens the error log file after rotation (USR1). */
int gp_log_reopen(void);

int gp_log_enabled(int level);
void gp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Checked before the arguments are computed: free at info on any path. */
#define gp_debug(...)                                                                              \
    do {                                                                                           \
        if (gp_log_enabled(GP_LOG_DEBUG)) gp_log(GP_LOG_DEBUG, __VA_ARGS__);                       \
    } while (0)
#define gp_info(...) gp_log(GP_LOG_INFO, __VA_ARGS__)
#define gp_warn(...) gp_log(GP_LOG_WARNING, __VA_ARGS__)
#define gp_error(...) gp_log(GP_LOG_ERROR, __VA_ARGS__)

/* --log-level debug: "connection N from ADDR:PORT opened" (what: opened,
 * closed). Callers test gp_log_enabled(GP_LOG_DEBUG) first. */
struct sockaddr_storage;
void gp_log_conn(const char *what, int fd, const struct sockaddr_storage *peer);

/* The access log: "-" for stdout, a path, or NULL for off. */
int gp_access_log_setup(const char *path);
int gp_access_log_fd(void); /* -1 when off */
int gp_access_log_reopen(void);

/* Copies n bytes of s into dst as an access-log field: '"' and '\' get a
 * backslash, control and non-ASCII bytes become \xhh, so a field can
 * neither end early nor forge a line. Stops before an escape that would not
 * fit and always terminates dst (cap >= 1). Returns the length written. */
size_t gp_log_escape(char *dst, size_t cap, const char *s, size_t n);

/* gunicorn's %(u)s: the user of an "Authorization: Basic ..." value,
 * escaped into dst as above. Returns 0 (dst "") when the value is not Basic
 * base64 of "user:password" with a non-empty user. */
size_t gp_log_basic_user(char *dst, size_t cap, const char *v, size_t n);

#endif
