/* Unit tests for core/static: the path check (".", "..", empty segments, NUL),
 * Range parsing (single, open, suffix, unsatisfiable, several, malformed),
 * If-None-Match comparison, Accept-Encoding weights, HTTP-date parsing in its
 * three forms and formatting, opening beneath a directory both ways (openat2
 * RESOLVE_BENEATH and the O_NOFOLLOW walk) against symlinks that stay inside
 * and ones that leave, and gp_static_open's errors. The answers themselves are
 * tested against the real binary in tests/py/test_static.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/static.c"

#define S(x) x, sizeof(x) - 1

static void test_path_ok(void **state)
{
    assert_int_equal(gp_static_path_ok(S("css/base.css")), 0);
    assert_int_equal(gp_static_path_ok(S("a")), 0);
    assert_int_equal(gp_static_path_ok(S(".hidden")), 0);
    assert_int_equal(gp_static_path_ok(S("a/...")), 0);
    assert_int_equal(gp_static_path_ok(S("a/..b")), 0);
    assert_int_equal(gp_static_path_ok(S("")), -1);
    assert_int_equal(gp_static_path_ok(S("..")), -1);
    assert_int_equal(gp_static_path_ok(S("../etc/passwd")), -1);
    assert_int_equal(gp_static_path_ok(S("a/../../b")), -1);
    assert_int_equal(gp_static_path_ok(S("a/..")), -1);
    assert_int_equal(gp_static_path_ok(S("./a")), -1);
    assert_int_equal(gp_static_path_ok(S("a/./b")), -1);
    assert_int_equal(gp_static_path_ok(S("a//b")), -1);
    assert_int_equal(gp_static_path_ok(S("/etc/passwd")), -1);
    assert_int_equal(gp_static_path_ok(S("dir/")), -1);
    assert_int_equal(gp_static_path_ok(S("a\0b")), -1);
}

static void test_range(void **state)
{
    uint64_t a = 99, b = 99;
    assert_int_equal(gp_static_parse_range(S("bytes=0-0"), 10, &a, &b), GP_RANGE_OK);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    assert_int_equal(gp_static_parse_range(S("bytes=2-5"), 10, &a, &b), GP_RANGE_OK);
    assert_int_equal(a, 2);
    assert_int_equal(b, 5);
    assert_int_equal(gp_static_parse_range(S("BYTES=3-"), 10, &a, &b), GP_RANGE_OK);
    assert_int_equal(a, 3);
    assert_int_equal(b, 9);
    assert_int_equal(gp_static_parse_range(S("bytes=8-100"), 10, &a, &b), GP_RANGE_OK);
    assert_int_equal(a, 8);
    assert_int_equal(b, 9);
    assert_int_equal(gp_static_parse_range(S("bytes=-4"), 10, &a, &b), GP_RANGE_OK);
    assert_int_equal(a, 6);
    assert_int_equal(b, 9);
    assert_int_equal(gp_static_parse_range(S("bytes=-400"), 10, &a, &b), GP_RANGE_OK);
    assert_int_equal(a, 0);
    assert_int_equal(b, 9);
    assert_int_equal(gp_static_parse_range(S("bytes= 1-2 "), 10, &a, &b), GP_RANGE_OK);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    /* unsatisfiable: starts past the end, empty suffix, empty file */
    assert_int_equal(gp_static_parse_range(S("bytes=10-"), 10, &a, &b), GP_RANGE_UNSATISFIABLE);
    assert_int_equal(gp_static_parse_range(S("bytes=10-20"), 10, &a, &b),
                     GP_RANGE_UNSATISFIABLE);
    assert_int_equal(gp_static_parse_range(S("bytes=-0"), 10, &a, &b), GP_RANGE_UNSATISFIABLE);
    assert_int_equal(gp_static_parse_range(S("bytes=0-"), 0, &a, &b), GP_RANGE_UNSATISFIABLE);
    assert_int_equal(gp_static_parse_range(S("bytes=-5"), 0, &a, &b), GP_RANGE_UNSATISFIABLE);
    /* ignored: several ranges, other units, nonsense */
    assert_int_equal(gp_static_parse_range(S("bytes=0-1,3-4"), 10, &a, &b), GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("items=0-1"), 10, &a, &b), GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("bytes=5-2"), 10, &a, &b), GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("bytes=a-b"), 10, &a, &b), GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("bytes=-"), 10, &a, &b), GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("bytes=1"), 10, &a, &b), GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("bytes=+1-2"), 10, &a, &b), GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("bytes=99999999999999999999-"), 10, &a, &b),
                     GP_RANGE_NONE);
    assert_int_equal(gp_static_parse_range(S("bytes"), 10, &a, &b), GP_RANGE_NONE);
}

static void test_etag_match(void **state)
{
    const char tag[] = "\"5f-2800\"";
    size_t n = sizeof tag - 1;
    assert_true(gp_static_etag_match(S("\"5f-2800\""), tag, n));
    assert_true(gp_static_etag_match(S("W/\"5f-2800\""), tag, n));
    assert_true(gp_static_etag_match(S("\"x\", \"5f-2800\""), tag, n));
    assert_true(gp_static_etag_match(S("\"x\",W/\"5f-2800\" "), tag, n));
    assert_true(gp_static_etag_match(S("*"), tag, n));
    assert_false(gp_static_etag_match(S("\"5f-2801\""), tag, n));
    assert_false(gp_static_etag_match(S("5f-2800"), tag, n));
    assert_false(gp_static_etag_match(S(""), tag, n));
    assert_false(gp_static_etag_match(S("\"5f-2800"), tag, n));
}

static void test_accepts(void **state)
{
    assert_int_equal(gp_static_accepts(S("gzip, deflate, br"), "br"), 1000);
    assert_int_equal(gp_static_accepts(S("gzip, deflate, br"), "gzip"), 1000);
    assert_int_equal(gp_static_accepts(S("gzip;q=0.5, br;q=0"), "br"), 0);
    assert_int_equal(gp_static_accepts(S("gzip;q=0.5, br;q=0"), "gzip"), 500);
    assert_int_equal(gp_static_accepts(S("GZIP ; Q=0.25"), "gzip"), 250);
    assert_int_equal(gp_static_accepts(S("x-gzip"), "gzip"), 1000);
    assert_int_equal(gp_static_accepts(S("identity"), "gzip"), 0);
    assert_int_equal(gp_static_accepts(S(""), "gzip"), 0);
    assert_int_equal(gp_static_accepts(S("*"), "br"), 1000);
    assert_int_equal(gp_static_accepts(S("*;q=0"), "br"), 0);
    assert_int_equal(gp_static_accepts(S("br;q=0, *"), "br"), 0);
    assert_int_equal(gp_static_accepts(S("gzip;q=0.000"), "gzip"), 0);
    assert_int_equal(gp_static_accepts(S("gzip;q=1.0"), "gzip"), 1000);
    assert_int_equal(gp_static_accepts(S("gzip;q=2"), "gzip"), 0);
    assert_int_equal(gp_static_accepts(S("gzip;q=bad"), "gzip"), 0);
    assert_int_equal(gp_static_accepts(S("gzipper, brotli"), "gzip"), 0);
    assert_int_equal(gp_static_accepts(S("gzipper, brotli"), "br"), 0);
}

static void test_dates(void **state)
{
    time_t t;
    assert_int_equal(gp_static_parse_date(S("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(gp_static_parse_date(S("Sunday, 06-Nov-94 08:49:37 GMT"), &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(gp_static_parse_date(S("Sun Nov  6 08:49:37 1994"), &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(gp_static_parse_date(S("Thu, 01 Jan 2026 00:00:00 GMT"), &t), 0);
    assert_int_equal(t, 1767225600);
    assert_int_equal(gp_static_parse_date(S("Sun, 06 Nov 1994 08:49:37 UTC"), &t), -1);
    assert_int_equal(gp_static_parse_date(S("Sun, 06 Foo 1994 08:49:37 GMT"), &t), -1);
    assert_int_equal(gp_static_parse_date(S("Sun, 06 Nov 1994 25:49:37 GMT"), &t), -1);
    assert_int_equal(gp_static_parse_date(S("Sun, 6 Nov 1994 08:49:37 GMT"), &t), -1);
    assert_int_equal(gp_static_parse_date(S("yesterday"), &t), -1);
    assert_int_equal(gp_static_parse_date(S(""), &t), -1);
    char b[32];
    assert_int_equal(gp_static_format_date(b, 784111777), 29);
    b[29] = 0;
    assert_string_equal(b, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(gp_static_format_date(b, 1767225600), 29);
    b[29] = 0;
    assert_string_equal(b, "Thu, 01 Jan 2026 00:00:00 GMT");
    assert_int_equal(gp_static_parse_date(b, 29, &t), 0);
    assert_int_equal(t, 1767225600);
}

/* A tree: root/{f, sub/g, in -> sub/g, abs -> /etc/hostname, out -> ../secret,
 * subout -> sub/../../secret, dirlink -> sub}, and secret beside root. */
static char top[64], root[96];

static int make_tree(void **state)
{
    char p[160];
    snprintf(top, sizeof top, "/tmp/gp_test_static_XXXXXX");
    if (!mkdtemp(top)) return -1;
    snprintf(root, sizeof root, "%s/root", top);
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/sub", root);
    mkdir(p, 0755);
    const char *files[] = {"root/f", "root/sub/g", "secret"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", top, files[i]);
        FILE *f = fopen(p, "w");
        if (!f) return -1;
        fputs(files[i], f);
        fclose(f);
    }
    const char *links[][2] = {{"sub/g", "in"},
                              {"/etc/hostname", "abs"},
                              {"../secret", "out"},
                              {"sub/../../secret", "subout"},
                              {"sub", "dirlink"}};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", root, links[i][1]);
        if (symlink(links[i][0], p) < 0) return -1;
    }
    return 0;
}

static int remove_tree(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", top);
    return system(cmd) == 0 ? 0 : -1;
}

/* What open_beneath gives for rel: the file's first bytes, or "-errno". */
static const char *opened(gp_static *s, int dirfd, const char *rel, char *buf)
{
    int fd = open_beneath(s, dirfd, rel);
    if (fd < 0) {
        snprintf(buf, 32, "-%d", errno);
        return buf;
    }
    ssize_t n = read(fd, buf, 31);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

static void test_open_beneath(void **state)
{
    char buf[32], err[64];
    int dirfd = open(root, O_PATH | O_DIRECTORY);
    assert_true(dirfd >= 0);
    gp_static s = {.openat2 = true};
    struct open_how how = {.flags = O_PATH, .resolve = RESOLVE_BENEATH};
    int probe = (int)syscall(SYS_openat2, dirfd, ".", &how, sizeof how);
    assert_true(probe >= 0); /* this kernel has it: the first pass tests it for real */
    close(probe);
    for (int pass = 0; pass < 2; pass++) {
        s.openat2 = pass == 0;
        assert_string_equal(opened(&s, dirfd, "f", buf), "root/f");
        assert_string_equal(opened(&s, dirfd, "sub/g", buf), "root/sub/g");
        snprintf(err, sizeof err, "-%d", ENOENT);
        assert_string_equal(opened(&s, dirfd, "missing", buf), err);
        assert_string_equal(opened(&s, dirfd, "sub/missing", buf), err);
        /* out of root, by a relative link, through a directory, or absolute */
        assert_true(opened(&s, dirfd, "out", buf)[0] == '-');
        assert_true(opened(&s, dirfd, "subout", buf)[0] == '-');
        assert_true(opened(&s, dirfd, "abs", buf)[0] == '-');
        /* a link inside: followed with openat2, refused by the walk */
        if (s.openat2) {
            assert_string_equal(opened(&s, dirfd, "in", buf), "root/sub/g");
            assert_string_equal(opened(&s, dirfd, "dirlink/g", buf), "root/sub/g");
        } else {
            assert_true(opened(&s, dirfd, "in", buf)[0] == '-');
            assert_true(opened(&s, dirfd, "dirlink/g", buf)[0] == '-');
        }
    }
    close(dirfd);
}

static void test_open_mounts(void **state)
{
    gp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.static_max_age = -1;
    gp_static *s = (gp_static *)1;
    char err[256];
    assert_int_equal(gp_static_open(&cfg, &s, err, sizeof err), 0);
    assert_null(s);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", root);
    cfg.statics[0].prefix = "/static";
    cfg.statics[0].dir = root;
    cfg.statics[1].prefix = "/static/deeper";
    cfg.statics[1].dir = sub;
    cfg.statics[2].prefix = "";
    cfg.statics[2].dir = root;
    cfg.num_statics = 3;
    cfg.static_max_age = 3600;
    assert_int_equal(gp_static_open(&cfg, &s, err, sizeof err), 0);
    assert_non_null(s);
    assert_true(s->openat2);
    assert_string_equal(s->cache_control, "max-age=3600");
    /* longest prefix first; whole segments only */
    assert_string_equal(find_mount(s, S("/static/deeper/g"))->prefix, "/static/deeper");
    assert_string_equal(find_mount(s, S("/static/deeperx"))->prefix, "/static");
    assert_string_equal(find_mount(s, S("/static"))->prefix, "/static");
    assert_string_equal(find_mount(s, S("/staticx"))->prefix, "");
    gp_static_free(s);

    cfg.num_statics = 1;
    cfg.statics[0].dir = "/nonexistent/dir";
    assert_int_equal(gp_static_open(&cfg, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_ok),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_etag_match),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_dates),
        cmocka_unit_test_setup_teardown(test_open_beneath, make_tree, remove_tree),
        cmocka_unit_test_setup_teardown(test_open_mounts, make_tree, remove_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
