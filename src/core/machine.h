/* machine: what the machine can still give the workers, for adaptive
 * workers (core/autoscale.h): the memory free to use, and how long a
 * process ran on and waited for a CPU.
 *
 * Reads /proc and the cgroup files only, never writes; the file-system root
 * is a parameter so tests can point it at a fake tree (as core/cpus.h). */
#ifndef GP_MACHINE_H
#define GP_MACHINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes a new process may still take: the smaller of MemAvailable
 * (ROOT/proc/meminfo) and the tightest cgroup limit minus its usage (v2
 * memory.max - memory.current, v1 memory.limit_in_bytes -
 * memory.usage_in_bytes, at our cgroup and each level above it). UINT64_MAX
 * when nothing says. root: "" for the real system. */
uint64_t gp_machine_mem_free(const char *root);

/* Seconds pid's threads have run, and waited runnable for a CPU
 * (ROOT/proc/PID/task/TID/schedstat, summed). Returns 0, or -1 when the
 * kernel does not say. */
int gp_machine_sched(const char *root, pid_t pid, double *run_s, double *wait_s);

/* A /proc or cgroup file, which the kernel hands over in one read, into buf
 * (NUL-terminated, at most len - 1 bytes). Returns 0, or -1 when it cannot
 * be read or is empty. */
int gp_machine_read_text(const char *path, char *buf, size_t len);

#endif
