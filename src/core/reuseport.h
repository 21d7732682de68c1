/* reuseport: even spreading of --reuse-port connections over the workers.
 *
 * With one SO_REUSEPORT socket per worker the kernel picks a socket for each
 * new connection by a hash of its addresses, so 64 connections split like
 * coin tosses (26 to 38 of 64 to one of 2 workers). This module loads a small
 * SK_REUSEPORT eBPF program per listening address that hands connections out
 * round-robin over the workers the master lists as serving, and that also
 * moves a closing socket's queued connections to the others (instead of the
 * kernel resetting them).
 *
 * The master creates it before forking (it needs CAP_BPF and CAP_NET_ADMIN;
 * without them create fails and the kernel's hash stays in charge) and keeps
 * the serving list; each worker joins with its own socket once ready. No
 * Python, no event loop, nothing on the request path: the program runs in the
 * kernel, once per new connection. */
#ifndef GP_REUSEPORT_H
#define GP_REUSEPORT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gp_reuseport gp_reuseport;

/* Creates the maps and one program per listener (0..listeners-1), for worker
 * slots 0..slots-1. Returns 0 with *out set, or a negative errno (-EPERM when
 * eBPF is not permitted) with a one-line reason in why. */
int gp_reuseport_create(int listeners, int slots, gp_reuseport **out, char *why, size_t whylen);

/* Whether a closing socket's queued connections go to the other workers
 * (kernel 5.14 and later) rather than being reset. */
bool gp_reuseport_migrates(const gp_reuseport *rp);

/* Closes the maps and programs (a group that runs a program keeps it). */
void gp_reuseport_destroy(gp_reuseport *rp);

/* The two descriptors a worker joins listener's group with (they are all
 * it needs, so they may cross fork and exec as plain numbers). */
void gp_reuseport_listener_fds(const gp_reuseport *rp, int listener, int *socks_fd, int *prog_fd);

/* Worker, its app ready: puts its own listening socket fd into its slot of
 * socks_fd and makes prog_fd the program of fd's SO_REUSEPORT group
 * (replacing a previous master's after USR2). The slot empties by itself
 * when fd closes. Returns 0 or a negative errno. */
int gp_reuseport_join(int socks_fd, int prog_fd, int slot, int fd);

/* Worker: takes its socket out of the rotation while it cannot take more
 * connections (--worker-connections, out of descriptors); its turns go to
 * the others until it joins again. Returns 0 or a negative errno. */
int gp_reuseport_leave(int socks_fd, int slot);

/* Master: the slots of the workers that may take new connections, in
 * rotation order: every live worker that is not retiring, booting ones too
 * (a slot counts only once its worker joined, so a worker gets its turn the
 * moment it is ready, with no wait for the master). n may be 0: the kernel's
 * hash then picks. Writes the kernel's copy only when it changed. Returns 0
 * or a negative errno. */
int gp_reuseport_set_order(gp_reuseport *rp, const int *slots, int n);

#endif
