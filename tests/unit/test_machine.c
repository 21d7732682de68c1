/* Unit tests for core/machine: fake /proc and /sys/fs/cgroup trees in a
 * fresh mkdtemp directory, then the real system's answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/machine.h"
#include "fake_tree.h"

#define MIB (1ull << 20)

static const char meminfo[] = "MemTotal:        8000000 kB\n"
                              "MemFree:          100000 kB\n"
                              "MemAvailable:     2048000 kB\n"
                              "Buffers:           10000 kB\n";

static void test_meminfo_only(void **state)
{
    put(*state, "proc/meminfo", meminfo);
    assert_true(gp_machine_mem_free(*state) == 2048000ull * 1024);
}

static void test_nothing_says(void **state)
{
    assert_true(gp_machine_mem_free(*state) == UINT64_MAX);
    put(*state, "proc/meminfo", "MemTotal: 1 kB\n"); /* a kernel before MemAvailable */
    assert_true(gp_machine_mem_free(*state) == UINT64_MAX);
}

static void test_v2_limit_tighter_than_meminfo(void **state)
{
    put(*state, "proc/meminfo", meminfo);
    put(*state, "proc/self/cgroup", "0::/app.slice/web\n");
    put(*state, "sys/fs/cgroup/app.slice/web/memory.max", "1073741824\n");
    put(*state, "sys/fs/cgroup/app.slice/web/memory.current", "805306368\n");
    assert_true(gp_machine_mem_free(*state) == 256 * MIB);
}

static void test_v2_unlimited_and_parent_limit(void **state)
{
    put(*state, "proc/meminfo", meminfo);
    put(*state, "proc/self/cgroup", "0::/app.slice/web\n");
    put(*state, "sys/fs/cgroup/app.slice/web/memory.max", "max\n");
    put(*state, "sys/fs/cgroup/app.slice/web/memory.current", "100\n");
    put(*state, "sys/fs/cgroup/app.slice/memory.max", "536870912\n");
    put(*state, "sys/fs/cgroup/app.slice/memory.current", "268435456\n");
    assert_true(gp_machine_mem_free(*state) == 256 * MIB);
}

static void test_v2_container_root_and_over_limit(void **state)
{
    put(*state, "proc/meminfo", meminfo);
    /* the host's path is not mounted here: the limit sits at the mount root */
    put(*state, "proc/self/cgroup", "0::/kubepods/pod1/abc\n");
    put(*state, "sys/fs/cgroup/memory.max", "1000\n");
    put(*state, "sys/fs/cgroup/memory.current", "4000\n");
    assert_true(gp_machine_mem_free(*state) == 0);
}

static void test_v1(void **state)
{
    put(*state, "proc/meminfo", meminfo);
    put(*state, "proc/self/cgroup", "5:cpu,cpuacct:/\n4:memory:/docker/x\n0::/\n");
    put(*state, "sys/fs/cgroup/memory/docker/x/memory.limit_in_bytes", "2147483648\n");
    put(*state, "sys/fs/cgroup/memory/docker/x/memory.usage_in_bytes", "1073741824\n");
    assert_true(gp_machine_mem_free(*state) == 1024 * MIB);
    /* v1 says "no limit" with a huge number */
    put(*state, "sys/fs/cgroup/memory/docker/x/memory.limit_in_bytes", "9223372036854771712\n");
    assert_true(gp_machine_mem_free(*state) == 2048000ull * 1024);
}

static void test_garbage_is_no_limit(void **state)
{
    put(*state, "proc/meminfo", meminfo);
    put(*state, "proc/self/cgroup", "0::/a\n");
    put(*state, "sys/fs/cgroup/a/memory.max", "lots\n");
    put(*state, "sys/fs/cgroup/a/memory.current", "1\n");
    assert_true(gp_machine_mem_free(*state) == 2048000ull * 1024);
}

static void test_sched_sums_threads(void **state)
{
    put(*state, "proc/42/task/42/schedstat", "1500000000 250000000 10\n");
    put(*state, "proc/42/task/43/schedstat", "500000000 750000000 3\n");
    put(*state, "proc/42/task/44/schedstat", "garbage\n");
    double run, wait;
    assert_int_equal(gp_machine_sched(*state, 42, &run, &wait), 0);
    assert_true(run > 1.999 && run < 2.001);
    assert_true(wait > 0.999 && wait < 1.001);
    assert_int_equal(gp_machine_sched(*state, 7, &run, &wait), -1);
}

static void test_real_system(void **state)
{
    uint64_t free_bytes = gp_machine_mem_free("");
    assert_true(free_bytes > 0);
    double run0, wait0, run1, wait1;
    assert_int_equal(gp_machine_sched("", getpid(), &run0, &wait0), 0);
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    while ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec) < 50e6);
    assert_int_equal(gp_machine_sched("", getpid(), &run1, &wait1), 0);
    /* 50 ms on the CPU (by the thread's own clock, whatever else the machine
     * runs): the scheduler's run time shows it, less the part of a tick it
     * has not accounted yet */
    assert_true(run1 - run0 > 0.035);
    assert_true(wait1 >= wait0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_meminfo_only, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_nothing_says, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_limit_tighter_than_meminfo, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_unlimited_and_parent_limit, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_v2_container_root_and_over_limit, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_v1, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_no_limit, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_sched_sums_threads, tree_setup, tree_teardown),
        cmocka_unit_test(test_real_system),
    };
    return cmocka_run_group_tests_name("machine", tests, NULL, NULL);
}
