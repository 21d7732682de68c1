/* log: the error log (time, level, pid on every line) and the access log.
 *
 * One write(2) per line, so lines from several processes never interleave.
 * --log-format json makes each line one JSON object (time, level, pid,
 * logger, message) for log shippers. No Python; the bridge hands Python's
 * tracebacks here (gp_log_lines). */
#ifndef GP_LOG_H
#define GP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
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

/* A block of lines (a traceback): in text, each line a log line of its
 * own; in JSON, one object with the whole block as its message. */
void gp_log_lines(int level, const char *text, size_t len);

/* --log-format: "text" (GP_LOG_TEXT) or "json"; -1 when unknown. */
enum { GP_LOG_TEXT, GP_LOG_JSON };
int gp_log_format_parse(const char *name);
void gp_log_set_format(int format);
bool gp_log_json(void);

/* The time now as an access-log time ("02/Dec/2026:01:12:13 +0000") and as
 * RFC 3339 with milliseconds ("2026-12-02T01:12:13.123+00:00"); either may
 * be NULL. */
void gp_log_times(char clf[40], char iso[40]);

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

/* Copies n bytes of s into dst as the inside of a JSON string: '"', '\\'
 * and control bytes escaped, well-formed UTF-8 as it is, and each byte of
 * invalid UTF-8 as \u00XX (its Latin-1 reading). Writes at most cap bytes,
 * never half an escape or half a character, no terminator. Returns the
 * length written. */
size_t gp_json_escape(char *dst, size_t cap, const char *s, size_t n);

/* A hex digit's value, -1 for anything else. */
int gp_log_hexval(char ch);

#endif
