/* cpus: owns the "how many CPUs may we use" answer behind --workers auto:
 * the affinity mask, then the cgroup CPU bandwidth limit (v2 cpu.max, else
 * v1 cfs quota/period), walking up the cgroup tree because an ancestor's
 * limit binds a nested group too. Everything is read relative to a root so
 * tests can fake /proc and /sys. */
#include "core/cpus.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A limit as read from one cgroup level; quota/period kept as integers so
 * that ceil() of an exact multiple cannot round up through float error. */
typedef struct {
    long long quota, period; /* quota <= 0: no limit */
} cg_limit;

static int count_affinity(void)
{
    /* Start at glibc's default set size and grow: sched_getaffinity fails
     * with EINVAL when the kernel's mask is larger than ours. */
    for (int n = CPU_SETSIZE; n <= (1 << 22); n *= 2) {
        cpu_set_t *set = CPU_ALLOC(n);
        size_t size = CPU_ALLOC_SIZE(n);
        int count;

        if (!set) break;
        if (sched_getaffinity(0, size, set) == 0) {
            count = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return count > 0 ? count : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL) break;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)(online > INT_MAX ? INT_MAX : online) : 1;
}

/* Reads a small file into buf (NUL-terminated). Returns 0 or -1. */
static int read_small(const char *path, char *buf, size_t size)
{
    size_t used = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) return -1;
    while (used < size - 1 && (n = read(fd, buf + used, size - 1 - used)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    return 0;
}

/* Parses one integer followed by whitespace or the end; anything else is
 * garbage, which the caller treats as "no limit". */
static int parse_ll(const char *s, char **end, long long *v)
{
    errno = 0;
    *v = strtoll(s, end, 10);
    if (*end == s || errno != 0) return -1;
    if (**end != '\0' && **end != ' ' && **end != '\t' && **end != '\n') return -1;
    return 0;
}

static int only_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    return *s == '\0';
}

/* v2: "max PERIOD" or "QUOTA PERIOD" in DIR/cpu.max. Returns 1 when the file
 * was read (lim set, possibly unlimited), 0 when absent. */
static int read_v2(const char *dir, cg_limit *lim)
{
    char path[PATH_MAX], buf[128], *end;
    long long q, p;

    lim->quota = lim->period = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/cpu.max", dir) >= sizeof(path)) return 0;
    if (read_small(path, buf, sizeof(buf)) != 0) return 0;
    if (parse_ll(buf, &end, &q) != 0) return 1; /* "max ..." or garbage */
    if (parse_ll(end, &end, &p) != 0 || !only_space(end)) return 1;
    if (q > 0 && p > 0) {
        lim->quota = q;
        lim->period = p;
    }
    return 1;
}

/* v1: DIR/cpu.cfs_quota_us and DIR/cpu.cfs_period_us, quota -1 = no limit.
 * Same return convention as read_v2. */
static int read_v1(const char *dir, cg_limit *lim)
{
    char path[PATH_MAX], buf[64], *end;
    long long q, p;

    lim->quota = lim->period = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir) >= sizeof(path) ||
        read_small(path, buf, sizeof(buf)) != 0)
        return 0;
    if (parse_ll(buf, &end, &q) != 0 || !only_space(end)) return 1;
    if ((size_t)snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir) >= sizeof(path) ||
        read_small(path, buf, sizeof(buf)) != 0)
        return 1;
    if (parse_ll(buf, &end, &p) != 0 || !only_space(end)) return 1;
    if (q > 0 && p > 0) {
        lim->quota = q;
        lim->period = p;
    }
    return 1;
}

/* a stricter than b? Compares q_a/p_a < q_b/p_b without overflow. */
static int stricter(const cg_limit *a, const cg_limit *b)
{
    if (a->quota <= 0) return 0;
    if (b->quota <= 0) return 1;
    return (long double)a->quota * b->period < (long double)b->quota * a->period;
}

/* Reads the limit at MOUNT/CGPATH and every ancestor up to MOUNT itself and
 * keeps the strictest. Levels that do not exist are skipped: inside a
 * container the host-side path in /proc/self/cgroup is usually not mounted,
 * while the container's own limit sits at the mount root. Returns 1 if any
 * level had the file. */
static int walk_up(const char *mount, const char *cgpath, int (*reader)(const char *, cg_limit *),
                   cg_limit *best)
{
    char dir[PATH_MAX];
    cg_limit lim;
    int found = 0;
    size_t mlen;

    best->quota = best->period = 0;
    /* The kernel shows "/.." paths for a cgroup outside our cgroup
     * namespace; only the mount root means anything then. */
    if (strstr(cgpath, "/..") || cgpath[0] != '/') cgpath = "/";
    if ((size_t)snprintf(dir, sizeof(dir), "%s%s", mount, cgpath) >= sizeof(dir))
        snprintf(dir, sizeof(dir), "%s", mount);
    mlen = strlen(mount);
    for (;;) {
        size_t len = strlen(dir);

        while (len > mlen && dir[len - 1] == '/') dir[--len] = '\0';
        if (reader(dir, &lim)) {
            found = 1;
            if (stricter(&lim, best)) *best = lim;
        }
        if (len <= mlen) break;
        char *slash = strrchr(dir + mlen, '/');
        if (!slash) break;
        *slash = '\0';
    }
    return found;
}

/* Does the comma-separated controller list name "cpu" itself? */
static int has_cpu_controller(const char *list, size_t len)
{
    const char *p = list, *end = list + len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);

        if (n == 3 && memcmp(p, "cpu", 3) == 0) return 1;
        p += n + 1;
    }
    return 0;
}

static int dir_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Looks at ROOT/proc/self/cgroup and fills *lim and *version (2 or 1; 0
 * when no limit is found). */
static void cgroup_limit(const char *root, cg_limit *lim, int *version)
{
    char path[PATH_MAX], v2path[PATH_MAX] = "", v1path[PATH_MAX] = "", v1ctl[256] = "";
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int have_v2 = 0, have_v1 = 0;
    FILE *f;

    lim->quota = lim->period = 0;
    *version = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/proc/self/cgroup", root) >= sizeof(path)) return;
    f = fopen(path, "re");
    if (!f) return;
    /* Lines are "ID:CONTROLLERS:PATH"; v2 is "0::PATH". */
    while ((n = getline(&line, &cap, f)) > 0) {
        char *c1, *c2;

        if (line[n - 1] == '\n') line[--n] = '\0';
        c1 = strchr(line, ':');
        c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        if (c1 == line + 1 && line[0] == '0' && c2 == c1 + 1) {
            have_v2 = (size_t)snprintf(v2path, sizeof(v2path), "%s", c2 + 1) < sizeof(v2path);
        } else if (!have_v1 && has_cpu_controller(c1 + 1, (size_t)(c2 - c1 - 1))) {
            have_v1 = (size_t)snprintf(v1path, sizeof(v1path), "%s", c2 + 1) < sizeof(v1path) &&
                      (size_t)(c2 - c1 - 1) < sizeof(v1ctl);
            if (have_v1) {
                memcpy(v1ctl, c1 + 1, (size_t)(c2 - c1 - 1));
                v1ctl[c2 - c1 - 1] = '\0';
            }
        }
    }
    free(line);
    fclose(f);

    /* v2 wins when its files exist; in hybrid mode the unified tree carries
     * no cpu controller, so cpu.max is absent and v1 is used. */
    if (have_v2) {
        snprintf(path, sizeof(path), "%s/sys/fs/cgroup", root);
        if (walk_up(path, v2path, read_v2, lim)) {
            *version = lim->quota > 0 ? 2 : 0;
            return;
        }
    }
    if (have_v1) {
        /* The mount point is named after the controller list as the kernel
         * prints it, but distributions also link "cpu" and "cpu,cpuacct". */
        const char *mounts[] = {v1ctl, "cpu,cpuacct", "cpu"};

        for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
            if ((size_t)snprintf(path, sizeof(path), "%s/sys/fs/cgroup/%s", root, mounts[i]) >=
                    sizeof(path) ||
                !dir_exists(path))
                continue;
            if (walk_up(path, v1path, read_v1, lim)) {
                *version = lim->quota > 0 ? 1 : 0;
                return;
            }
        }
    }
}

void gp_cpus_detect(gp_cpus *out, const char *root, int affinity_override)
{
    cg_limit lim;
    int version;

    memset(out, 0, sizeof(*out));
    out->affinity = affinity_override > 0 ? affinity_override : count_affinity();
    out->usable = out->affinity;
    cgroup_limit(root ? root : "", &lim, &version);

    if (version == 0) {
        snprintf(out->why, sizeof(out->why), "%d usable CPUs: affinity %d, no cgroup limit",
                 out->usable, out->affinity);
        return;
    }
    out->quota = (double)lim.quota / (double)lim.period;
    long long ceil_cpus = lim.quota / lim.period + (lim.quota % lim.period != 0);
    if (ceil_cpus < out->usable) out->usable = (int)ceil_cpus;
    if (out->usable < 1) out->usable = 1;
    snprintf(out->why, sizeof(out->why), "%d usable CPUs: affinity %d, cgroup %s %.2f CPUs",
             out->usable, out->affinity, version == 2 ? "v2 cpu.max" : "v1 cfs quota", out->quota);
}
