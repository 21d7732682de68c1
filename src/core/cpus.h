/* cpus: how many CPUs this process may really use, for --workers auto.
 *
 * Reads the affinity mask and the cgroup CPU quota (v2 cpu.max, else v1
 * cpu.cfs_quota_us / cpu.cfs_period_us). Pure C, no Python; the file-system
 * root is a parameter so tests can point it at a fake /sys/fs/cgroup tree. */
#ifndef GP_CPUS_H
#define GP_CPUS_H

#include <stddef.h>

typedef struct {
    int affinity;  /* CPUs in sched_getaffinity's mask (>= 1) */
    double quota;  /* cgroup limit in CPUs (quota / period), 0 when unlimited */
    int usable;    /* min(affinity, ceil(quota)) when quota > 0, else affinity; >= 1 */
    char why[160]; /* e.g. "2 usable CPUs: affinity 2, no cgroup limit" or
                      "1 usable CPUs: affinity 2, cgroup v2 cpu.max 0.50 CPUs" */
} gp_cpus;

/* Fills out. root is "" for the real system, or a test directory containing
 * proc/self/cgroup and sys/fs/cgroup/... laid out as on Linux. affinity_override
 * > 0 replaces the sched_getaffinity count (for tests). Never fails: unreadable
 * cgroup files mean "no cgroup limit". */
void gp_cpus_detect(gp_cpus *out, const char *root, int affinity_override);

#endif
