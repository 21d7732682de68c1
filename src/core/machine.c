/* machine: free memory and CPU wait from /proc and the cgroup files; see
 * machine.h. */
#include "core/machine.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NO_LIMIT (1ull << 62) /* v1 shows "no limit" as a huge page-rounded number */

int gp_machine_read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return 0;
}

/* One number in a file; "max" (v2's no limit) and garbage are -1. */
static int read_u64(const char *dir, const char *name, uint64_t *v)
{
    char path[PATH_MAX], buf[64], *end;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
        gp_machine_read_text(path, buf, sizeof buf) < 0)
        return -1;
    unsigned long long x = strtoull(buf, &end, 10);
    if (end == buf || (*end && *end != '\n')) return -1;
    *v = x;
    return 0;
}

static uint64_t meminfo_available(const char *root)
{
    char path[PATH_MAX], buf[4096];
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    if (gp_machine_read_text(path, buf, sizeof buf) < 0) return UINT64_MAX;
    const char *p = strstr(buf, "MemAvailable:");
    if (!p) return UINT64_MAX;
    return strtoull(p + 13, NULL, 10) * 1024; /* kB */
}

/* The tightest limit - usage at MOUNT/CGPATH and each level up to MOUNT:
 * inside a container the host's path is often not mounted and the limit
 * sits at the mount root, as core/cpus.c finds too. */
static uint64_t cgroup_room(const char *mount, const char *cgpath, const char *limit_file,
                            const char *usage_file)
{
    char dir[PATH_MAX];
    uint64_t best = UINT64_MAX;
    if (strstr(cgpath, "/..") || cgpath[0] != '/') cgpath = "/";
    if ((size_t)snprintf(dir, sizeof dir, "%s%s", mount, cgpath) >= sizeof dir)
        snprintf(dir, sizeof dir, "%s", mount);
    size_t mlen = strlen(mount);
    for (;;) {
        size_t len = strlen(dir);
        while (len > mlen && dir[len - 1] == '/') dir[--len] = 0;
        uint64_t lim, use;
        if (read_u64(dir, limit_file, &lim) == 0 && lim < NO_LIMIT &&
            read_u64(dir, usage_file, &use) == 0) {
            uint64_t room = lim > use ? lim - use : 0;
            if (room < best) best = room;
        }
        char *slash = len > mlen ? strrchr(dir + mlen, '/') : NULL;
        if (!slash) break;
        *slash = 0;
    }
    return best;
}

uint64_t gp_machine_mem_free(const char *root)
{
    char path[PATH_MAX], buf[4096], mount[PATH_MAX];
    uint64_t best = meminfo_available(root);
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    if (gp_machine_read_text(path, buf, sizeof buf) < 0) return best;
    for (char *save, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        uint64_t room = UINT64_MAX;
        const char *p;
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(mount, sizeof mount, "%s/sys/fs/cgroup", root);
            room = cgroup_room(mount, line + 3, "memory.max", "memory.current");
        } else if ((p = strstr(line, ":memory:"))) {
            snprintf(mount, sizeof mount, "%s/sys/fs/cgroup/memory", root);
            room = cgroup_room(mount, p + 8, "memory.limit_in_bytes", "memory.usage_in_bytes");
        }
        if (room < best) best = room;
    }
    return best;
}

int gp_machine_sched(const char *root, pid_t pid, double *run_s, double *wait_s)
{
    char path[PATH_MAX], buf[128];
    snprintf(path, sizeof path, "%s/proc/%d/task", root, (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    unsigned long long run = 0, wait = 0;
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        unsigned long long r, w;
        if ((size_t)snprintf(path, sizeof path, "%s/proc/%d/task/%s/schedstat", root, (int)pid,
                             e->d_name) >= sizeof path ||
            gp_machine_read_text(path, buf, sizeof buf) < 0 ||
            sscanf(buf, "%llu %llu", &r, &w) != 2)
            continue;
        run += r;
        wait += w;
        found++;
    }
    closedir(d);
    if (!found) return -1;
    *run_s = (double)run / 1e9;
    *wait_s = (double)wait / 1e9;
    return 0;
}
