/* listen: owns the --bind address syntax (parsing and canonical text) and the
 * creation of listening sockets, including the stale-UNIX-socket check. The
 * master opens everything here before forking; nothing in this file runs in
 * a worker. */
#include "core/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define UNIX_PREFIX "unix:"
#define DEFAULT_PORT 8000 /* gunicorn's, for an address given without one */

/* Digits only: strtol would also take "+80", " 80" and "0x50". */
static int parse_port(const char *s, size_t len, unsigned *port)
{
    unsigned v = 0;

    if (len == 0) return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
        if (v > 65535) return -1;
    }
    *port = v;
    return 0;
}

/* Writes "IP:PORT" or "[IP6]:PORT" from out->sa into out->text. getnameinfo
 * rather than inet_ntop so that an IPv6 scope ("fe80::1%eth0") survives. */
static int format_tcp(gp_addr *out)
{
    char host[NI_MAXHOST];
    unsigned port;
    int n;

    if (getnameinfo((struct sockaddr *)&out->sa, out->sa_len, host, sizeof(host), NULL, 0,
                    NI_NUMERICHOST) != 0)
        return -1;
    if (out->sa.ss_family == AF_INET6) {
        port = ntohs(((struct sockaddr_in6 *)&out->sa)->sin6_port);
        n = snprintf(out->text, sizeof(out->text), "[%s]:%u", host, port);
    } else {
        port = ntohs(((struct sockaddr_in *)&out->sa)->sin_port);
        n = snprintf(out->text, sizeof(out->text), "%s:%u", host, port);
    }
    return n < 0 || (size_t)n >= sizeof(out->text) ? -1 : 0;
}

static void set_port(gp_addr *out, unsigned port)
{
    if (out->sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&out->sa)->sin6_port = htons((uint16_t)port);
    else ((struct sockaddr_in *)&out->sa)->sin_port = htons((uint16_t)port);
}

/* Resolves host (already split from the port) into out->sa. flags carries
 * AI_NUMERICHOST for bracketed literals so that they never hit DNS. */
static int resolve(const char *host, int family, int flags, gp_addr *out)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) return rc;
    if (!res || res->ai_addrlen > sizeof(out->sa)) {
        freeaddrinfo(res);
        return EAI_FAIL;
    }
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->sa_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int parse_unix(const char *text, const char *path, gp_addr *out, char *err, size_t errlen)
{
    size_t len = strlen(path);
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->sa;

    if (len == 0) {
        snprintf(err, errlen, "empty unix socket path in '%s'", text);
        return -1;
    }
    /* sun_path needs room for the terminating NUL: we bind by path name. */
    if (len >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "unix socket path too long in '%s' (%zu bytes, at most %zu)", text,
                 len, sizeof(sun->sun_path) - 1);
        return -1;
    }
    out->kind = GP_ADDR_UNIX;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, len + 1);
    out->sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    /* "unix:" plus at most 107 bytes always fits text[128]. */
    snprintf(out->text, sizeof(out->text), UNIX_PREFIX "%s", path);
    return 0;
}

int gp_addr_parse(const char *text, gp_addr *out, char *err, size_t errlen)
{
    char host[NI_MAXHOST];
    const char *port_s, *colon;
    size_t host_len;
    unsigned port;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!text || !*text) {
        snprintf(err, errlen, "empty bind address");
        return -1;
    }
    /* gunicorn's URL-like spellings: unix://PATH (unix:///abs), tcp://HOST:PORT */
    if (strncmp(text, "unix://", 7) == 0) return parse_unix(text, text + 7, out, err, errlen);
    if (strncmp(text, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0)
        return parse_unix(text, text + strlen(UNIX_PREFIX), out, err, errlen);
    if (strncmp(text, "tcp://", 6) == 0 && !*(text += 6)) {
        snprintf(err, errlen, "empty bind address 'tcp://'");
        return -1;
    }

    out->kind = GP_ADDR_TCP;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (!close) {
            snprintf(err, errlen, "missing ']' in IPv6 address '%s'", text);
            return -1;
        }
        host_len = (size_t)(close - text - 1);
        if (host_len == 0 || host_len >= sizeof(host)) {
            snprintf(err, errlen, "invalid IPv6 address in '%s'", text);
            return -1;
        }
        if (close[1] != ':' && close[1] != '\0') {
            snprintf(err, errlen, "expected ':' after ']' in '%s'", text);
            return -1;
        }
        port_s = close[1] ? close + 2 : "";
        memcpy(host, text + 1, host_len);
        host[host_len] = '\0';
        port = DEFAULT_PORT; /* "[::1]" */
        if (*port_s && parse_port(port_s, strlen(port_s), &port) != 0) goto bad_port;
        if (resolve(host, AF_INET6, AI_NUMERICHOST, out) != 0) {
            snprintf(err, errlen, "invalid IPv6 address '%s' in '%s'", host, text);
            return -1;
        }
        goto done;
    }

    colon = strrchr(text, ':');
    if (!colon) {
        /* A bare number is a port on loopback (never every interface by
         * accident; gunicorn takes it for a host and fails); anything else is
         * a host on port 8000, as gunicorn has it. */
        port_s = text;
        if (strspn(text, "0123456789") == strlen(text)) {
            if (parse_port(text, strlen(text), &port) != 0) goto bad_port;
            strcpy(host, "localhost");
        } else {
            if (strlen(text) >= sizeof(host)) {
                snprintf(err, errlen, "host name too long in '%s'", text);
                return -1;
            }
            strcpy(host, text);
            port = DEFAULT_PORT;
        }
    } else {
        host_len = (size_t)(colon - text);
        port_s = colon + 1;
        if (memchr(text, ':', host_len)) {
            snprintf(err, errlen, "IPv6 address must be in brackets in '%s', e.g. [::1]:8000",
                     text);
            return -1;
        }
        if (*port_s == '\0') {
            snprintf(err, errlen, "missing port in '%s'", text);
            return -1;
        }
        if (host_len >= sizeof(host)) {
            snprintf(err, errlen, "host name too long in '%s'", text);
            return -1;
        }
        memcpy(host, text, host_len);
        host[host_len] = '\0';
        if (parse_port(port_s, strlen(port_s), &port) != 0) goto bad_port;
    }

    /* Empty host and "localhost" are fixed to IPv4 so that the result does
     * not depend on /etc/hosts ordering (which may list ::1 first). */
    if (host[0] == '\0' || strcmp(host, "localhost") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;

        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(host[0] ? INADDR_LOOPBACK : INADDR_ANY);
        out->sa_len = sizeof(*sin);
    } else if ((rc = resolve(host, AF_UNSPEC, 0, out)) != 0) {
        snprintf(err, errlen, "cannot resolve host '%s' in '%s': %s", host, text,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }

done:
    set_port(out, port);
    if (format_tcp(out) != 0) {
        snprintf(err, errlen, "cannot format address '%s'", text);
        return -1;
    }
    return 0;

bad_port:
    snprintf(err, errlen, "invalid port '%s' in '%s'", port_s, text);
    return -1;
}

/* Decides whether an existing path may be replaced by our socket. Returns 0
 * when the path is free (absent, or a socket nobody listens on, now removed),
 * or -1 with err set. */
static int clear_stale_unix(const gp_addr *addr, char *err, size_t errlen)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&addr->sa;
    struct stat st;
    int fd, rc, e;

    if (lstat(sun->sun_path, &st) != 0) {
        if (errno == ENOENT) return 0;
        e = errno;
        snprintf(err, errlen, "cannot bind %s: %s", addr->text, strerror(e));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "cannot bind %s: path exists and is not a socket", addr->text);
        return -1;
    }
    /* Non-blocking so that a live server with a full backlog answers EAGAIN
     * instead of stalling us; any answer other than "refused" means alive. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        e = errno;
        snprintf(err, errlen, "cannot create socket for %s: %s", addr->text, strerror(e));
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)&addr->sa, addr->sa_len);
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
        snprintf(err, errlen, "cannot bind %s: %s", addr->text, strerror(EADDRINUSE));
        return -1;
    }
    if (e == ENOENT) return 0; /* vanished meanwhile */
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "cannot bind %s: %s", addr->text, strerror(e));
        return -1;
    }
    if (unlink(sun->sun_path) != 0 && errno != ENOENT) {
        e = errno;
        snprintf(err, errlen, "cannot remove stale socket %s: %s", addr->text, strerror(e));
        return -1;
    }
    return 0;
}

int gp_listen_open(gp_addr *addr, int backlog, int reuse_port, char *err, size_t errlen)
{
    int fd = -1, one = 1, e, family = addr->sa.ss_family;
    const char *what;

    if (addr->kind == GP_ADDR_UNIX && clear_stale_unix(addr, err, errlen) != 0) return -1;

    what = "cannot create socket for";
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    if (addr->kind == GP_ADDR_TCP) {
        what = "cannot set SO_REUSEADDR on";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) goto fail;
        /* Without V6ONLY, [::]:80 would also grab 0.0.0.0:80 and a separate
         * IPv4 bind of the same port would fail. */
        what = "cannot set IPV6_V6ONLY on";
        if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
            goto fail;
    }
    what = "cannot set SO_REUSEPORT on";
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) goto fail;
    what = "cannot bind";
    if (bind(fd, (struct sockaddr *)&addr->sa, addr->sa_len) != 0) goto fail;
    what = "cannot listen on";
    if (listen(fd, backlog) != 0) goto fail;

    if (addr->kind == GP_ADDR_TCP) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        gp_addr real = *addr;

        what = "cannot read bound address of";
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) goto fail;
        /* Only the port can change (port 0); keep the rest as parsed so that
         * the text keeps e.g. an IPv6 scope name. */
        set_port(&real, family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port));
        if (format_tcp(&real) == 0) *addr = real;
    }
    return fd;

fail:
    e = errno; /* close() must not clobber the reason */
    if (fd >= 0) close(fd);
    snprintf(err, errlen, "%s %s: %s", what, addr->text, strerror(e));
    return -1;
}

void gp_listen_close(int fd, const gp_addr *addr)
{
    struct stat st;

    if (fd >= 0) close(fd);
    /* Only remove a socket: if someone replaced the path with a regular file
     * since we bound, it is not ours. */
    if (addr && addr->kind == GP_ADDR_UNIX) {
        const char *path = ((const struct sockaddr_un *)&addr->sa)->sun_path;

        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
    }
}

int gp_addr_from_sockaddr(gp_addr *addr)
{
    const struct sockaddr *sa = (const struct sockaddr *)&addr->sa;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        addr->kind = GP_ADDR_TCP;
        return format_tcp(addr);
    }
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
        addr->kind = GP_ADDR_UNIX;
        snprintf(addr->text, sizeof(addr->text), UNIX_PREFIX "%.100s",
                 su->sun_path[0] ? su->sun_path : "@");
        return 0;
    }
    return -1;
}
