/* log: error and access log sinks; see log.h. Never allocates. */
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
} g_log = {GP_LOG_INFO, "", "", -1};

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

void gp_log(int level, const char *fmt, ...)
{
    if (level < g_log.level) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "[%Y-%m-%d %H:%M:%S %z]", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, " [%d] [%s] ", (int)getpid(),
                          level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    n = (m < 0) ? n : (n + (size_t)m >= sizeof line - 1 ? sizeof line - 2 : n + (size_t)m);
    line[n++] = '\n';
    ssize_t w;
    do w = write(STDERR_FILENO, line, n);
    while (w < 0 && errno == EINTR);
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

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

size_t gp_log_basic_user(char *dst, size_t cap, const char *v, size_t n)
{
    dst[0] = 0;
    if (n < 6 || strncasecmp(v, "basic ", 6) != 0) return 0;
    size_t i = 6;
    while (i < n && v[i] == ' ') i++;
    char user[256];
    size_t u = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; i < n && v[i] != '='; i++) {
        int x = b64_value((unsigned char)v[i]);
        if (x < 0) return 0; /* not base64: no user, as gunicorn */
        acc = (acc << 6) | (unsigned)x;
        bits += 6;
        if (bits < 8) continue;
        bits -= 8;
        char ch = (char)((acc >> bits) & 0xff);
        if (ch == ':') return u ? gp_log_escape(dst, cap, user, u) : 0;
        if (u == sizeof user) return 0;
        user[u++] = ch;
    }
    return 0; /* no "user:" */
}
