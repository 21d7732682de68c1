/* listen: parsing --bind addresses and opening the listening sockets.
 *
 * The master calls this before forking; workers only inherit the descriptors.
 * No Python, no event loop. Errors come back as one human-readable line. */
#ifndef GP_LISTEN_H
#define GP_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

enum gp_addr_kind { GP_ADDR_TCP = 1, GP_ADDR_UNIX = 2 };

typedef struct {
    enum gp_addr_kind kind;
    struct sockaddr_storage sa; /* filled for TCP (AF_INET / AF_INET6) and UNIX */
    socklen_t sa_len;
    char text[128]; /* canonical text: "127.0.0.1:8000", "[::1]:8000", "unix:/p" */
} gp_addr;

/* Parses "HOST:PORT", "[V6]:PORT", ":PORT" (all interfaces, 0.0.0.0), "PORT"
 * (127.0.0.1), "HOST" / "[V6]" (port 8000), "localhost:PORT" (127.0.0.1),
 * "unix:/path", and gunicorn's "tcp://" and "unix://" prefixes. HOST is a
 * numeric IPv4/IPv6 address or a name resolved with getaddrinfo (first
 * result). PORT is 0..65535.
 * Returns 0, or -1 with a one-line reason in err ("invalid port 'x' in '...'"). */
int gp_addr_parse(const char *text, gp_addr *out, char *err, size_t errlen);

/* Opens a non-blocking, close-on-exec listening socket bound to addr:
 * SO_REUSEADDR for TCP (IPV6_V6ONLY on v6); for UNIX, an existing socket file is
 * removed first only if nothing listens on it. reuse_port sets SO_REUSEPORT.
 * Returns the fd, or -1 with a one-line reason in err, e.g.
 * "cannot bind 127.0.0.1:8000: Address already in use". A TCP port 0 is resolved
 * and written back into addr->text. */
int gp_listen_open(gp_addr *addr, int backlog, int reuse_port, char *err, size_t errlen);

/* Fills kind and text from addr->sa (a socket we were handed, not one we
 * parsed). Returns 0, or -1 for a family we do not serve. */
int gp_addr_from_sockaddr(gp_addr *addr);

/* Closes fd and, for a UNIX address, removes its socket file. */
void gp_listen_close(int fd, const gp_addr *addr);

#endif
