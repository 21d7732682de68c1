/* fake_tree: a fresh mkdtemp directory per test, standing in for the
 * file-system root of code that reads /proc and /sys/fs/cgroup (cpus,
 * machine), with put() to lay files in it. Include after cmocka.h. */
#ifndef GP_TEST_FAKE_TREE_H
#define GP_TEST_FAKE_TREE_H

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* *state: the directory, /tmp/gp_PROGRAM.XXXXXX */
static int tree_setup(void **state)
{
    char *dir = NULL;
    if (asprintf(&dir, "/tmp/gp_%s.XXXXXX", program_invocation_short_name) < 0) return -1;
    if (!mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int tree_teardown(void **state)
{
    char *dir = *state;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
    return 0;
}

/* Writes ROOT/rel with content, creating parent directories. */
static void put(const char *root, const char *rel, const char *content)
{
    char path[PATH_MAX];
    assert_true((size_t)snprintf(path, sizeof path, "%s/%s", root, rel) < sizeof path);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

#endif
