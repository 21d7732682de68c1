/* notify: systemd's readiness protocol (sd_notify) without libsystemd.
 *
 * One datagram per call to $NOTIFY_SOCKET (a path, or @name for the abstract
 * namespace); a silent no-op when the variable is unset. */
#ifndef GP_NOTIFY_H
#define GP_NOTIFY_H

/* Sends "READY=1", "STATUS=...", "RELOADING=1" ... (several lines allowed).
 * Returns 1 when sent, 0 when there is no socket to tell, -errno on failure. */
int gp_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
