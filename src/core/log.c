/* log: error and access log sinks, as text or JSON lines; see log.h. Never
 * allocates, except for a JSON record too long for the stack (a traceback). */
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};

static struct {
    int level;
    char error_path[512]; /* empty: stderr */
    char access_path[512];
    int access_fd;
    bool json; /* --log-format json */
} g_log = {GP_LOG_INFO, "", "", -1, false};

int gp_log_level_parse(const char *name)
{
    for (int i = 0; i <= GP_LOG_CRITICAL; i++)
        if (strcasecmp(name, level_names[i]) == 0) return i;
    if (strcasecmp(name, "trace") == 0) return GP_LOG_DEBUG; /* uvicorn's, below debug */
    return -1;
}

static int open_append(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int gp_log_reopen(void)
{
    if (!g_log.error_path[0]) return 0;
    int fd = open_append(g_log.error_path);
    if (fd < 0) return -errno;
    if (fd != STDERR_FILENO) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    return 0;
}

int gp_log_setup(int level, const char *error_log)
{
    g_log.level = level;
    if (error_log && strcmp(error_log, "-") != 0) {
        snprintf(g_log.error_path, sizeof g_log.error_path, "%s", error_log);
        return gp_log_reopen();
    }
    g_log.error_path[0] = 0;
    return 0;
}

void gp_log_inherit(int level, const char *error_log, const char *access_log, int access_fd)
{
    g_log.level = level;
    snprintf(g_log.error_path, sizeof g_log.error_path, "%s",
             error_log && strcmp(error_log, "-") != 0 ? error_log : "");
    snprintf(g_log.access_path, sizeof g_log.access_path, "%s",
             access_log && strcmp(access_log, "-") != 0 ? access_log : "");
    g_log.access_fd = access_fd;
}

void gp_log_set_level(int level)
{
    g_log.level = level;
}

int gp_log_enabled(int level)
{
    return level >= g_log.level;
}

/* "2026-12-02T01:12:13.123+00:00", RFC 3339: the offset with a colon. */
static size_t iso_time(char *dst, size_t cap, const struct timespec *ts)
{
    struct tm tm;
    localtime_r(&ts->tv_sec, &tm);
    char zone[8];
    strftime(zone, sizeof zone, "%z", &tm); /* +0000 */
    size_t n = strftime(dst, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(dst + n, cap - n, ".%03ld%.3s:%s", ts->tv_nsec / 1000000, zone, zone + 3);
    return m < 0 ? n : n + (size_t)m;
}

/* The access log's times, formatted once a second per thread: localtime
 * and strftime cost more than the rest of a line. */
static __thread struct {
    time_t sec;
    char clf[40];
    char iso[32]; /* up to the seconds */
    char zone[8]; /* "+00:00" */
} tcache = {-1, "", "", ""};

void gp_log_times(char clf[40], char iso[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != tcache.sec) {
        struct tm tm;
        char z[8];
        localtime_r(&ts.tv_sec, &tm);
        strftime(tcache.clf, sizeof tcache.clf, "%d/%b/%Y:%H:%M:%S %z", &tm);
        strftime(tcache.iso, sizeof tcache.iso, "%Y-%m-%dT%H:%M:%S", &tm);
        strftime(z, sizeof z, "%z", &tm);
        snprintf(tcache.zone, sizeof tcache.zone, "%.3s:%.2s", z, z + 3);
        tcache.sec = ts.tv_sec;
    }
    if (clf) memcpy(clf, tcache.clf, sizeof tcache.clf);
    if (iso) {
        unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
        size_t n = strlen(tcache.iso);
        memcpy(iso, tcache.iso, n);
        iso[n++] = '.';
        iso[n++] = (char)('0' + ms / 100);
        iso[n++] = (char)('0' + ms / 10 % 10);
        iso[n++] = (char)('0' + ms % 10);
        memcpy(iso + n, tcache.zone, 7); /* with its NUL */
    }
}

static void write_line(const char *line, size_t n)
{
    ssize_t w;
    do w = write(STDERR_FILENO, line, n);
    while (w < 0 && errno == EINTR);
}

/* One JSON object for msg (any bytes, newlines too), in one write. */
static void log_json(int level, const char *msg, size_t len)
{
    char stack[16384], *line = stack;
    size_t cap = sizeof stack, need = len * 6 + 128;
    if (need > cap && (line = malloc(need))) cap = need;
    else if (need > cap) line = stack; /* no memory: the message is cut */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = (size_t)snprintf(line, cap, "{\"time\":\"");
    n += iso_time(line + n, cap - n, &ts);
    n += (size_t)snprintf(line + n, cap - n,
                          "\",\"level\":\"%s\",\"pid\":%d,\"logger\":\"error\","
                          "\"message\":\"",
                          level_names[level], (int)getpid());
    n += gp_json_escape(line + n, cap - n - 3, msg, len);
    memcpy(line + n, "\"}\n", 3);
    write_line(line, n + 3);
    if (line != stack) free(line);
}

/* The text line: time, pid and level, then msg (cut to the line). */
static void log_text(int level, const char *msg, size_t len)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "[%Y-%m-%d %H:%M:%S %z]", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, " [%d] [%s] ", (int)getpid(),
                          level_names[level]);
    if (len > sizeof line - 1 - n) len = sizeof line - 1 - n;
    memcpy(line + n, msg, len);
    n += len;
    line[n++] = '\n';
    write_line(line, n);
}

void gp_log(int level, const char *fmt, ...)
{
    if (level < g_log.level) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? 0 : (size_t)m >= sizeof msg ? sizeof msg - 1 : (size_t)m;
    if (g_log.json) log_json(level, msg, len);
    else log_text(level, msg, len);
}

void gp_log_lines(int level, const char *text, size_t len)
{
    if (level < g_log.level) return;
    while (len && text[len - 1] == '\n') len--;
    if (g_log.json) {
        log_json(level, text, len);
        return;
    }
    for (const char *end = text + len; text < end;) {
        const char *nl = memchr(text, '\n', (size_t)(end - text));
        size_t n = (size_t)((nl ? nl : end) - text);
        log_text(level, text, n);
        text += n + (nl != NULL);
    }
}

int gp_log_format_parse(const char *name)
{
    if (strcmp(name, "text") == 0) return GP_LOG_TEXT;
    if (strcmp(name, "json") == 0) return GP_LOG_JSON;
    return -1;
}

void gp_log_set_format(int format)
{
    g_log.json = format == GP_LOG_JSON;
}

bool gp_log_json(void)
{
    return g_log.json;
}

void gp_log_conn(const char *what, int fd, const struct sockaddr_storage *peer)
{
    char host[INET6_ADDRSTRLEN] = "unix";
    unsigned port = 0;
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    if (port) gp_log(GP_LOG_DEBUG, "connection %d from %s:%u %s", fd, host, port, what);
    else gp_log(GP_LOG_DEBUG, "connection %d from %s %s", fd, host, what);
}

int gp_access_log_reopen(void)
{
    if (!g_log.access_path[0]) return 0;
    int fd = open_append(g_log.access_path);
    if (fd < 0) return -errno;
    if (g_log.access_fd >= 0) {
        dup2(fd, g_log.access_fd);
        close(fd);
    } else {
        g_log.access_fd = fd;
    }
    return 0;
}

int gp_access_log_setup(const char *path)
{
    g_log.access_path[0] = 0;
    if (!path) {
        g_log.access_fd = -1;
        return 0;
    }
    if (strcmp(path, "-") == 0) {
        g_log.access_fd = STDOUT_FILENO;
        return 0;
    }
    snprintf(g_log.access_path, sizeof g_log.access_path, "%s", path);
    return gp_access_log_reopen();
}

int gp_access_log_fd(void)
{
    return g_log.access_fd;
}

size_t gp_log_escape(char *dst, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            if (o + 1 >= cap) break;
            dst[o++] = (char)ch;
        } else if (ch == '"' || ch == '\\') {
            if (o + 2 >= cap) break;
            dst[o++] = '\\';
            dst[o++] = (char)ch;
        } else {
            if (o + 4 >= cap) break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        }
    }
    dst[o] = 0;
    return o;
}

int gp_log_hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), 0 when there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

size_t gp_json_escape(char *dst, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char ch = u[i];
        char two = 0;
        switch (ch) {
        case '"': two = '"'; break;
        case '\\': two = '\\'; break;
        case '\n': two = 'n'; break;
        case '\r': two = 'r'; break;
        case '\t': two = 't'; break;
        case '\b': two = 'b'; break;
        case '\f': two = 'f'; break;
        }
        if (two) {
            if (o + 2 > cap) break;
            dst[o++] = '\\';
            dst[o++] = two;
            i++;
        } else if (ch >= 0x20 && ch < 0x7f) {
            if (o + 1 > cap) break;
            dst[o++] = (char)ch;
            i++;
        } else {
            size_t len = ch >= 0x80 ? utf8_seq(u + i, n - i) : 0;
            if (len) { /* well-formed: as it is */
                if (o + len > cap) break;
                memcpy(dst + o, u + i, len);
                o += len;
                i += len;
                continue;
            }
            /* a control byte, DEL, or a byte of no UTF-8 sequence: \u00XX,
             * the code point of its Latin-1 reading */
            if (o + 6 > cap) break;
            memcpy(dst + o, "\\u00", 4);
            dst[o + 4] = hex[ch >> 4];
            dst[o + 5] = hex[ch & 15];
            o += 6;
            i++;
        }
    }
    return o;
}
