/* Unit tests for core/body: a request body held in memory up to a bound,
 * then in an unlinked temp file; read back in order, whatever the pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/body.h"

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (char)((i * 31 + seed) & 0xff);
}

/* Reads everything back in pieces of `piece` bytes and compares. */
static void read_back(gp_body *b, const char *want, size_t n, size_t piece)
{
    char *got = malloc(n + 1);
    assert_non_null(got);
    size_t have = 0;
    for (;;) {
        ssize_t r = gp_body_read(b, got + have, piece);
        assert_true(r >= 0);
        if (r == 0) break;
        have += (size_t)r;
        assert_true(have <= n);
    }
    assert_int_equal(have, n);
    assert_memory_equal(got, want, n);
    assert_int_equal(gp_body_left(b), 0);
    assert_int_equal(gp_body_read(b, got, 10), 0); /* after the end: 0 again */
    free(got);
}

static void test_memory_only(void **state)
{
    gp_body b;
    gp_body_init(&b, NULL);
    char data[5000];
    fill(data, sizeof data, 1);
    for (size_t i = 0; i < sizeof data; i += 1000)
        assert_int_equal(gp_body_append(&b, data + i, 1000, 1 << 20), 0);
    assert_int_equal(b.fd, -1);
    assert_int_equal(b.size, sizeof data);
    assert_int_equal(gp_body_left(&b), sizeof data);
    read_back(&b, data, sizeof data, 333);
    gp_body_free(&b);
    assert_null(b.mem);
}

static void test_empty(void **state)
{
    gp_body b;
    gp_body_init(&b, NULL);
    assert_int_equal(gp_body_append(&b, "", 0, 10), 0);
    char x[4];
    assert_int_equal(gp_body_read(&b, x, sizeof x), 0);
    gp_body_free(&b);
}

/* Past the bound everything moves to a file with no name; memory is freed. */
static void test_spills_to_unlinked_file(void **state)
{
    gp_body b;
    gp_body_init(&b, "/tmp");
    static char data[300000];
    fill(data, sizeof data, 7);
    assert_int_equal(gp_body_append(&b, data, 60000, 100000), 0);
    assert_int_equal(b.fd, -1);
    assert_int_equal(gp_body_append(&b, data + 60000, 60000, 100000), 0);
    assert_true(b.fd >= 0);
    assert_null(b.mem);
    struct stat st;
    assert_int_equal(fstat(b.fd, &st), 0);
    assert_int_equal(st.st_nlink, 0); /* nothing to clean up, ever */
    assert_int_equal(gp_body_append(&b, data + 120000, sizeof data - 120000, 100000), 0);
    assert_int_equal(b.size, sizeof data);
    read_back(&b, data, sizeof data, 65536);
    gp_body_free(&b);
    assert_int_equal(b.fd, -1);
}

/* Memory never grows past the bound, however the pieces come. */
static void test_memory_bounded(void **state)
{
    gp_body b;
    gp_body_init(&b, NULL);
    char piece[16384];
    fill(piece, sizeof piece, 3);
    const size_t bound = 50000;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(gp_body_append(&b, piece, sizeof piece, bound), 0);
        assert_true(b.mem_cap <= bound);
    }
    assert_true(b.fd >= 0);
    assert_int_equal(b.size, 100 * sizeof piece);
    char got[16384];
    for (int i = 0; i < 100; i++) {
        size_t have = 0;
        while (have < sizeof got) {
            ssize_t r = gp_body_read(&b, got + have, sizeof got - have);
            assert_true(r > 0);
            have += (size_t)r;
        }
        assert_memory_equal(got, piece, sizeof got);
    }
    assert_int_equal(gp_body_read(&b, got, 1), 0);
    gp_body_free(&b);
}

/* No place for the file: an error code, and what was held stays readable. */
static void test_spill_fails_cleanly(void **state)
{
    gp_body b;
    gp_body_init(&b, "/nonexistent/gallop-test");
    assert_int_equal(gp_body_append(&b, "abcdef", 6, 8), 0);
    int r = gp_body_append(&b, "ghij", 4, 8);
    assert_true(r < 0);
    assert_int_equal(b.fd, -1);
    read_back(&b, "abcdef", 6, 4);
    gp_body_free(&b);
}

/* A zero bound: every byte goes to the file. */
static void test_zero_bound(void **state)
{
    gp_body b;
    gp_body_init(&b, NULL);
    assert_int_equal(gp_body_append(&b, "xyz", 3, 0), 0);
    assert_true(b.fd >= 0);
    read_back(&b, "xyz", 3, 1);
    gp_body_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_only),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_spills_to_unlinked_file),
        cmocka_unit_test(test_memory_bounded),
        cmocka_unit_test(test_spill_fails_cleanly),
        cmocka_unit_test(test_zero_bound),
    };
    return cmocka_run_group_tests_name("body", tests, NULL, NULL);
}
