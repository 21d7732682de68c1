/* Unit tests for core/static: the path check (".", "..", empty segments, NUL),
 * Range parsing (single, open, suffix, unsatisfiable, several, malformed),
 * If-None-Match comparison, Accept-Encoding weights, HTTP-date parsing in its
 * three forms and formatting, opening beneath a directory both ways (openat2
 * RESOLVE_BENEATH and the O_NOFOLLOW walk) against symlinks that stay inside
 * and ones that leave, and gp_static_open's errors; then a connection on a
 * socketpair served through the connection layer's dispatch: a file, a 304, a
 * range, an app request passed on, pipelining, and the file's descriptor
 * closed when the response ends and when a stalled download is cut. Every
 * answer again against the real binary: tests/py/test_static.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <sys/socket.h>

#include "core/static.c"
#include "core/conn_h1.h" /* through the connection: its state */
#include "core/worker_env.h"
#include "conn_env.h"

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
    assert_int_equal(gp_static_parse_range(S("bytes=10-20"), 10, &a, &b), GP_RANGE_UNSATISFIABLE);
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

/* ---- through the connection layer ------------------------------------------------ */

static struct {
    test_conn_env e; /* what a worker would give the connections */
    gp_config cfg;
    int peer;
    int app_starts;
} H;

static gp_app_status app_start(void *app, gp_conn *c, const gp_http_request *req)
{
    H.app_starts++;
    gp_conn_head_begin_status(c, 200);
    gp_conn_head_set_length(c, 3);
    gp_conn_head_end(c);
    gp_conn_write(c, "app", 3);
    gp_conn_end_response(c);
    return GP_APP_DONE;
}

static const gp_app_ops app_ops = {.start = app_start};

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

static int conn_setup(void **state)
{
    if (make_tree(state)) return -1;
    char p[160];
    snprintf(p, sizeof p, "%s/big", root); /* 4 MB: more than a socketpair holds */
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 4096; i++) fprintf(f, "%01023d\n", i);
    fclose(f);
    memset(&H, 0, sizeof H);
    H.cfg.limit_request_line = 4094;
    H.cfg.limit_request_fields = 100;
    H.cfg.limit_request_field_size = 8190;
    H.cfg.keep_alive = 5;
    H.cfg.header_timeout = H.cfg.body_timeout = 30;
    H.cfg.send_timeout = 60;
    H.cfg.static_max_age = -1;
    H.cfg.statics[0].prefix = "/static";
    H.cfg.statics[0].dir = root;
    H.cfg.num_statics = 1;
    if (test_conn_env_open(&H.e, &H.cfg, &app_ops, NULL, "Date: x\r\n") < 0) return -1;
    gp_worker_env *w = H.e.w;
    w->static_serve = gp_static_serve;
    char err[256];
    if (gp_static_open(&H.cfg, &w->statics, err, sizeof err) < 0) return -1;
    H.peer = -1;
    return 0;
}

static int conn_teardown(void **state)
{
    gp_static_free(H.e.w->statics);
    test_conn_env_close(&H.e);
    if (H.peer >= 0) close(H.peer);
    return remove_tree(state);
}

static gp_conn *connect_pair(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    H.peer = sv[1];
    struct sockaddr_storage ss = {.ss_family = AF_UNIX};
    gp_conn *c = gp_stream_conn(gp_conn_new(H.e.cs, sv[0], &H.e.lis, &ss, sizeof(sa_family_t)));
    assert_non_null(c);
    return c;
}

/* Sends req from the client and lets the connection handle it. */
static void feed(gp_conn *c, const char *req)
{
    assert_int_equal(write(H.peer, req, strlen(req)), (ssize_t)strlen(req));
    gp_conn_on_event(&c->s.io, EPOLLIN);
}

static size_t drain(char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(H.peer, buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    return n;
}

static void test_served_through_conn(void **state)
{
    int fds = open_fds();
    gp_conn *c = connect_pair();
    char buf[8192];
    feed(c, "GET /static/f HTTP/1.1\r\nHost: t\r\n\r\n");
    size_t n = drain(buf, sizeof buf);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Content-Length: 6\r\n"));
    assert_non_null(strstr(buf, "Content-Type: application/octet-stream\r\n"));
    assert_non_null(strstr(buf, "Accept-Ranges: bytes\r\n"));
    assert_string_equal(buf + n - 6, "root/f");
    assert_int_equal(c->state, CS_HEAD); /* kept alive, ready for the next */
    assert_int_equal(c->own_fd, -1);
    char *etag = strstr(buf, "ETag: ");
    assert_non_null(etag);
    char tag[64];
    sscanf(etag + 6, "%63[^\r]", tag);
    /* a 304 and a range, pipelined, then the app's request */
    char req[512];
    snprintf(req, sizeof req,
             "GET /static/sub/g HTTP/1.1\r\nHost: t\r\nRange: bytes=5-\r\n\r\n"
             "GET /static/f HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n"
             "GET /other HTTP/1.1\r\nHost: t\r\n\r\n",
             tag);
    feed(c, req);
    n = drain(buf, sizeof buf);
    char *a = strstr(buf, "HTTP/1.1 206 Partial Content\r\n");
    char *b = strstr(buf, "HTTP/1.1 304 Not Modified\r\n");
    char *d = strstr(buf, "HTTP/1.1 200 OK\r\n");
    assert_true(a && b && d && a < b && b < d);
    assert_non_null(strstr(a, "Content-Range: bytes 5-9/10\r\n"));
    assert_non_null(strstr(a, "\r\n\r\nsub/g"));
    assert_string_equal(buf + n - 3, "app");
    assert_int_equal(H.app_starts, 1);
    /* every file was closed with its response */
    assert_int_equal(open_fds(), fds + 2); /* the socketpair */
}

static void test_stalled_download_closes_its_file(void **state)
{
    int fds = open_fds();
    gp_conn *c = connect_pair();
    char buf[4096];
    feed(c, "GET /static/big HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(c->state, CS_FLUSH); /* the socket is full: the rest waits */
    assert_true(c->own_fd >= 0 && c->s.file_left > 0);
    assert_int_equal(open_fds(), fds + 3);
    /* the client takes some: the loop sends more from where it stopped */
    uint64_t left = c->s.file_left;
    size_t got = 0;
    for (ssize_t r; (r = read(H.peer, buf, sizeof buf)) > 0;) got += (size_t)r;
    assert_true(got > 0 && got < 4u << 20);
    gp_conn_on_event(&c->s.io, EPOLLOUT);
    assert_true(c->s.file_left < left);
    gp_conn_close(c);                      /* cut, as --send-timeout does */
    assert_int_equal(open_fds(), fds + 1); /* the client's end only */
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
        cmocka_unit_test_setup_teardown(test_served_through_conn, conn_setup, conn_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_download_closes_its_file, conn_setup,
                                        conn_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
