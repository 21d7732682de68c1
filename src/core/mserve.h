/* mserve: the master's own tiny HTTP responder, for /metrics and /healthz.
 *
 * Runs inside the master's poll loop and must never block it: every socket
 * is non-blocking, a request head is at most GP_MSERVE_HEAD bytes, a client
 * gets GP_MSERVE_TIMEOUT_S seconds in all, at most GP_MSERVE_CLIENTS are
 * served at once (more get a 503 at once), and each response is one GET
 * answered and closed. No Python, no threads. */
#ifndef GP_MSERVE_H
#define GP_MSERVE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#define GP_MSERVE_HEAD 2048
#define GP_MSERVE_CLIENTS 8
#define GP_MSERVE_TIMEOUT_S 5.0
#define GP_MSERVE_MAX_BODY (8u << 20)

/* A growable text buffer, capped at GP_MSERVE_MAX_BODY. */
typedef struct {
    char *p;
    size_t len, cap;
    bool failed; /* an append did not fit: the text is incomplete */
} gp_mbuf;

/* Appends printf-style; returns 0, or -1 (and sets failed) past the cap or
 * without memory. */
int gp_mbuf_printf(gp_mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gp_mbuf_free(gp_mbuf *b);

/* Answers GET path: returns the HTTP status and fills body (and *ctype, a
 * static string). Called from gp_mserve_handle. */
typedef int (*gp_mserve_handler)(void *ctx, const char *path, gp_mbuf *body, const char **ctype);

typedef struct gp_mserve gp_mserve;

/* Opens a listener for each address ("HOST:PORT", "unix:/path", as
 * --bind takes them). Returns NULL with a one-line reason in err. */
gp_mserve *gp_mserve_open(const char *const *addrs, int n, gp_mserve_handler h, void *ctx,
                          char *err, size_t errlen);

/* What to poll: fills at most max entries, returns how many. */
int gp_mserve_pollfds(gp_mserve *ms, struct pollfd *pfd, int max);

/* The most entries gp_mserve_pollfds can fill. */
int gp_mserve_max_pollfds(const gp_mserve *ms);

/* Does what the entries gp_mserve_pollfds filled (n of them) say is ready,
 * and drops clients past their time. now: monotonic seconds. */
void gp_mserve_handle(gp_mserve *ms, const struct pollfd *pfd, int n, double now);

/* In a forked child: closes the descriptors, keeps the socket files. */
void gp_mserve_forget(gp_mserve *ms);

/* Closes everything and removes UNIX socket files. NULL is fine. */
void gp_mserve_close(gp_mserve *ms);

/* The text of listener i ("127.0.0.1:9100", port 0 resolved), or NULL. */
const char *gp_mserve_addr(const gp_mserve *ms, int i);

#endif
