/* Unit tests for core/cpus: each test builds a fake /proc + /sys/fs/cgroup
 * tree in a fresh mkdtemp directory and points gp_cpus_detect at it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cpus.h"
#include "fake_tree.h"

static void detect(void **state, int affinity, gp_cpus *c)
{
    gp_cpus_detect(c, *state, affinity);
}

static void test_v2_unlimited(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/user.slice\n");
    put(*state, "sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.affinity, 4);
    assert_int_equal(c.usable, 4);
    assert_true(c.quota == 0.0);
    assert_string_equal(c.why, "4 usable CPUs: affinity 4, no cgroup limit");
}

static void test_v2_one_and_a_half(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/app\n");
    put(*state, "sys/fs/cgroup/app/cpu.max", "150000 100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 2);
    assert_true(c.quota > 1.499 && c.quota < 1.501);
    assert_string_equal(c.why, "2 usable CPUs: affinity 4, cgroup v2 cpu.max 1.50 CPUs");
}

static void test_v2_half(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/app\n");
    put(*state, "sys/fs/cgroup/app/cpu.max", "50000 100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 1);
    assert_string_equal(c.why, "1 usable CPUs: affinity 4, cgroup v2 cpu.max 0.50 CPUs");
}

static void test_v2_exact_multiple(void **state)
{
    gp_cpus c;

    /* 3.0 CPUs must not round up to 4. */
    put(*state, "proc/self/cgroup", "0::/app\n");
    put(*state, "sys/fs/cgroup/app/cpu.max", "300000 100000\n");
    detect(state, 8, &c);
    assert_int_equal(c.usable, 3);
}

static void test_v2_affinity_is_lower(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/app\n");
    put(*state, "sys/fs/cgroup/app/cpu.max", "800000 100000\n");
    detect(state, 2, &c);
    assert_int_equal(c.usable, 2);
    assert_string_equal(c.why, "2 usable CPUs: affinity 2, cgroup v2 cpu.max 8.00 CPUs");
}

static void test_v2_nested_parent_stricter(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/a/b/c\n");
    put(*state, "sys/fs/cgroup/a/b/c/cpu.max", "max 100000\n");
    put(*state, "sys/fs/cgroup/a/b/cpu.max", "400000 100000\n");
    put(*state, "sys/fs/cgroup/a/cpu.max", "100000 50000\n"); /* 2.0 */
    put(*state, "sys/fs/cgroup/cpu.max", "max 100000\n");
    detect(state, 8, &c);
    assert_int_equal(c.usable, 2);
    assert_string_equal(c.why, "2 usable CPUs: affinity 8, cgroup v2 cpu.max 2.00 CPUs");
}

static void test_v2_nested_child_stricter(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/a/b\n");
    put(*state, "sys/fs/cgroup/a/b/cpu.max", "120000 100000\n");
    put(*state, "sys/fs/cgroup/a/cpu.max", "400000 100000\n");
    detect(state, 8, &c);
    assert_int_equal(c.usable, 2);
    assert_string_equal(c.why, "2 usable CPUs: affinity 8, cgroup v2 cpu.max 1.20 CPUs");
}

static void test_v2_container_root(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/\n");
    put(*state, "sys/fs/cgroup/cpu.max", "200000 100000\n");
    detect(state, 16, &c);
    assert_int_equal(c.usable, 2);
    assert_string_equal(c.why, "2 usable CPUs: affinity 16, cgroup v2 cpu.max 2.00 CPUs");
}

static void test_v2_host_path_not_mounted(void **state)
{
    gp_cpus c;

    /* Without a cgroup namespace the host path is shown but not visible. */
    put(*state, "proc/self/cgroup", "0::/system.slice/docker-abc.scope\n");
    put(*state, "sys/fs/cgroup/cpu.max", "100000 100000\n");
    detect(state, 16, &c);
    assert_int_equal(c.usable, 1);
    assert_string_equal(c.why, "1 usable CPUs: affinity 16, cgroup v2 cpu.max 1.00 CPUs");
}

static void test_v2_outside_namespace(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/../../other\n");
    put(*state, "sys/fs/cgroup/cpu.max", "250000 100000\n");
    detect(state, 16, &c);
    assert_int_equal(c.usable, 3);
}

static void test_v1_quota(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup",
        "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 1);
    assert_true(c.quota > 0.499 && c.quota < 0.501);
    assert_string_equal(c.why, "1 usable CPUs: affinity 4, cgroup v1 cfs quota 0.50 CPUs");
}

static void test_v1_unlimited(void **state)
{
    gp_cpus c;

    put(*state, "proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 4);
    assert_true(c.quota == 0.0);
    assert_string_equal(c.why, "4 usable CPUs: affinity 4, no cgroup limit");
}

static void test_v1_mount_root_only(void **state)
{
    gp_cpus c;

    /* Inside a container the cgroup path is not visible under the mount. */
    put(*state, "proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 2);
    assert_string_equal(c.why, "2 usable CPUs: affinity 4, cgroup v1 cfs quota 1.50 CPUs");
}

static void test_v1_cpu_mount(void **state)
{
    gp_cpus c;

    /* Separate "cpu" and "cpuacct" hierarchies. */
    put(*state, "proc/self/cgroup", "2:cpuacct:/x\n1:cpu:/x\n");
    put(*state, "sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "300000\n");
    put(*state, "sys/fs/cgroup/cpu/x/cpu.cfs_period_us", "100000\n");
    detect(state, 8, &c);
    assert_int_equal(c.usable, 3);
}

static void test_hybrid_uses_v1(void **state)
{
    gp_cpus c;

    /* Hybrid: a v2 line exists but the cpu controller lives on v1. */
    put(*state, "proc/self/cgroup", "4:cpu,cpuacct:/s\n0::/s\n");
    put(*state, "sys/fs/cgroup/unified/s/cgroup.procs", "");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/s/cpu.cfs_quota_us", "100000\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/s/cpu.cfs_period_us", "100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 1);
    assert_string_equal(c.why, "1 usable CPUs: affinity 4, cgroup v1 cfs quota 1.00 CPUs");
}

static void test_no_cgroup_files(void **state)
{
    gp_cpus c;

    detect(state, 3, &c);
    assert_int_equal(c.usable, 3);
    assert_true(c.quota == 0.0);
    assert_string_equal(c.why, "3 usable CPUs: affinity 3, no cgroup limit");

    /* /proc/self/cgroup present, limit files missing. */
    put(*state, "proc/self/cgroup", "0::/a\n");
    detect(state, 3, &c);
    assert_int_equal(c.usable, 3);
    assert_string_equal(c.why, "3 usable CPUs: affinity 3, no cgroup limit");
}

static void test_garbage_is_unlimited(void **state)
{
    static const char *bad[] = {
        "hello world\n", "",           "150000\n",     "150000 abc\n",     "0 100000\n",
        "-5 100000\n",   "150000 0\n", "1.5 100000\n", "150000 100000 7\n"};
    gp_cpus c;

    put(*state, "proc/self/cgroup", "0::/\n");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put(*state, "sys/fs/cgroup/cpu.max", bad[i]);
        detect(state, 4, &c);
        assert_int_equal(c.usable, 4);
        assert_true(c.quota == 0.0);
        assert_string_equal(c.why, "4 usable CPUs: affinity 4, no cgroup limit");
    }

    put(*state, "proc/self/cgroup", "4:cpu,cpuacct:/\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "lots\n");
    put(*state, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 4);
    assert_string_equal(c.why, "4 usable CPUs: affinity 4, no cgroup limit");

    /* Garbage in /proc/self/cgroup itself. */
    put(*state, "proc/self/cgroup", "\n:::\nnonsense\n0:\n");
    detect(state, 4, &c);
    assert_int_equal(c.usable, 4);
}

static void test_real_affinity_count(void **state)
{
    cpu_set_t set;
    gp_cpus c;

    /* Empty fake root: only the affinity mask matters. */
    gp_cpus_detect(&c, *state, 0);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) assert_int_equal(c.affinity, CPU_COUNT(&set));
    assert_true(c.affinity >= 1);
}

static void test_real_system(void **state)
{
    gp_cpus c;

    gp_cpus_detect(&c, "", 0);
    print_message("    real system: %s\n", c.why);
    assert_true(c.affinity >= 1);
    assert_true(c.usable >= 1);
    assert_true(c.usable <= c.affinity);
    assert_true(c.why[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_unlimited, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_one_and_a_half, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_half, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_exact_multiple, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_affinity_is_lower, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_nested_parent_stricter, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_nested_child_stricter, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_container_root, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_host_path_not_mounted, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_outside_namespace, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v1_quota, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v1_unlimited, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v1_mount_root_only, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v1_cpu_mount, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_hybrid_uses_v1, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_no_cgroup_files, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_unlimited, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_real_affinity_count, tree_setup, tree_teardown),
        cmocka_unit_test(test_real_system),
    };

    return cmocka_run_group_tests_name("cpus", tests, NULL, NULL);
}
