/* Unit tests for core/listen: address parsing (every accepted form and every
 * error) and opening real sockets on loopback and in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/listen.h"

static unsigned port_of(const gp_addr *a)
{
    if (a->sa.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

static void parse_ok(const char *in, const char *text, int family, unsigned port)
{
    char err[256] = "";
    gp_addr a;

    if (gp_addr_parse(in, &a, err, sizeof(err)) != 0) fail_msg("'%s' rejected: %s", in, err);
    assert_string_equal(a.text, text);
    assert_int_equal(a.sa.ss_family, family);
    if (family == AF_UNIX) {
        assert_int_equal(a.kind, GP_ADDR_UNIX);
    } else {
        assert_int_equal(a.kind, GP_ADDR_TCP);
        assert_int_equal(port_of(&a), port);
        assert_int_equal(a.sa_len, family == AF_INET ? sizeof(struct sockaddr_in)
                                                     : sizeof(struct sockaddr_in6));
    }
}

/* Expects a failure whose one-line message contains each of the needles. */
static void parse_err(const char *in, const char *needle1, const char *needle2)
{
    char err[256] = "";
    gp_addr a;

    if (gp_addr_parse(in, &a, err, sizeof(err)) != -1)
        fail_msg("'%s' accepted as '%s'", in, a.text);
    assert_null(strchr(err, '\n'));
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("'%s': message '%s' lacks '%s' / '%s'", in, err, needle1, needle2 ? needle2 : "");
}

static void test_parse_accepted(void **state)
{
    parse_ok("127.0.0.1:8000", "127.0.0.1:8000", AF_INET, 8000);
    parse_ok("0.0.0.0:80", "0.0.0.0:80", AF_INET, 80);
    parse_ok("10.1.2.3:65535", "10.1.2.3:65535", AF_INET, 65535);
    parse_ok("127.0.0.1:0", "127.0.0.1:0", AF_INET, 0);
    parse_ok("[::1]:8000", "[::1]:8000", AF_INET6, 8000);
    parse_ok("[::]:8000", "[::]:8000", AF_INET6, 8000);
    parse_ok("[0:0::1]:9", "[::1]:9", AF_INET6, 9);
    parse_ok("localhost:8000", "127.0.0.1:8000", AF_INET, 8000);
    parse_ok(":8000", "0.0.0.0:8000", AF_INET, 8000);
    /* a bare port is loopback, never every interface */
    parse_ok("8000", "127.0.0.1:8000", AF_INET, 8000);
    parse_ok("9001", "127.0.0.1:9001", AF_INET, 9001);
    /* no port: gunicorn's 8000 */
    parse_ok("127.0.0.1", "127.0.0.1:8000", AF_INET, 8000);
    parse_ok("0.0.0.0", "0.0.0.0:8000", AF_INET, 8000);
    parse_ok("localhost", "127.0.0.1:8000", AF_INET, 8000);
    parse_ok("[::1]", "[::1]:8000", AF_INET6, 8000);
    /* gunicorn's scheme prefixes */
    parse_ok("tcp://127.0.0.1:8000", "127.0.0.1:8000", AF_INET, 8000);
    parse_ok("tcp://[::1]:9", "[::1]:9", AF_INET6, 9);
    parse_ok("tcp://0.0.0.0", "0.0.0.0:8000", AF_INET, 8000);
    parse_ok("tcp://:81", "0.0.0.0:81", AF_INET, 81);
    parse_ok("unix:///tmp/x.sock", "unix:/tmp/x.sock", AF_UNIX, 0);
    parse_ok("unix://rel.sock", "unix:rel.sock", AF_UNIX, 0);
    parse_ok("unix:/tmp/x.sock", "unix:/tmp/x.sock", AF_UNIX, 0);
}

static void test_parse_hostname(void **state)
{
    char err[256] = "", in[160];
    gp_addr a, again;

    /* "localhost" resolves offline on every Debian (/etc/hosts), so a
     * failure here is gp_addr_parse's, not the machine's. */
    snprintf(in, sizeof(in), "%s:81", "localhost");
    if (gp_addr_parse(in, &a, err, sizeof(err)) != 0) fail_msg("%s: %s", in, err);
    assert_int_equal(a.kind, GP_ADDR_TCP);
    assert_true(a.sa.ss_family == AF_INET || a.sa.ss_family == AF_INET6);
    assert_int_equal(port_of(&a), 81);
    /* Canonical text is the numeric address, which parses to itself. */
    assert_int_equal(gp_addr_parse(a.text, &again, err, sizeof(err)), 0);
    assert_string_equal(again.text, a.text);
    assert_memory_equal(&again.sa, &a.sa, a.sa_len);
}

static void test_parse_unix_sun_path(void **state)
{
    char err[256] = "", in[160];
    struct sockaddr_un *sun;
    size_t max = sizeof(sun->sun_path) - 1;
    gp_addr a;

    /* The longest path that fits, with its NUL, in sun_path. */
    strcpy(in, "unix:/");
    memset(in + 6, 'p', max - 1);
    in[5 + max] = '\0';
    assert_int_equal(gp_addr_parse(in, &a, err, sizeof(err)), 0);
    sun = (struct sockaddr_un *)&a.sa;
    assert_int_equal(strlen(sun->sun_path), max);
    assert_string_equal(a.text, in);
    assert_int_equal(a.sa_len, offsetof(struct sockaddr_un, sun_path) + max + 1);

    /* One byte more does not. */
    strcpy(in + 5 + max, "q");
    parse_err(in, "too long", "unix:/ppp");
}

static void test_parse_errors(void **state)
{
    char err[64];
    gp_addr a;

    assert_int_equal(gp_addr_parse("", &a, err, sizeof(err)), -1);
    assert_string_equal(err, "empty bind address");

    parse_err("127.0.0.1:", "missing port", "'127.0.0.1:'");
    parse_err("tcp://127.0.0.1:x", "invalid port 'x'", "'127.0.0.1:x'");
    parse_err("tcp://", "empty bind address 'tcp://'", NULL);
    parse_err("unix://", "empty unix socket path", "'unix://'");
    parse_err("127.0.0.1:http", "invalid port 'http'", "'127.0.0.1:http'");
    parse_err("127.0.0.1:65536", "invalid port '65536'", "'127.0.0.1:65536'");
    parse_err("127.0.0.1:99999999999", "invalid port", "'127.0.0.1:99999999999'");
    parse_err("127.0.0.1:-1", "invalid port", "'127.0.0.1:-1'");
    parse_err("127.0.0.1:+80", "invalid port", "'127.0.0.1:+80'");
    parse_err("127.0.0.1: 80", "invalid port", "'127.0.0.1: 80'");
    parse_err("70000", "invalid port '70000'", "'70000'");
    parse_err("[::1]:x", "invalid port 'x'", "'[::1]:x'");
    parse_err("[::1:8000", "missing ']'", "'[::1:8000'");
    parse_err("[::1]8000", "expected ':'", "'[::1]8000'");
    parse_err("[]:8000", "invalid IPv6", "'[]:8000'");
    parse_err("[nothex]:8000", "invalid IPv6", "'[nothex]:8000'");
    parse_err("[127.0.0.1]:8000", "invalid IPv6", "'[127.0.0.1]:8000'");
    parse_err("::1:8000", "brackets", "'::1:8000'");
    parse_err("::1", "brackets", "'::1'");
    parse_err("nosuchhost.invalid:8000", "cannot resolve host 'nosuchhost.invalid'",
              "'nosuchhost.invalid:8000'");
    parse_err("unix:", "empty unix socket path", "'unix:'");
}

static void test_parse_error_truncates(void **state)
{
    char err[16];
    gp_addr a;

    /* A small buffer still gets a terminated, truncated message. */
    memset(err, 'x', sizeof(err));
    assert_int_equal(gp_addr_parse("127.0.0.1:bad", &a, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
}

static int open_text(const char *text, gp_addr *a, int reuse_port, char *err, size_t errlen)
{
    if (gp_addr_parse(text, a, err, errlen) != 0) fail_msg("parse '%s': %s", text, err);
    return gp_listen_open(a, 16, reuse_port, err, errlen);
}

static void assert_listening_flags(int fd)
{
    int type = 0;
    socklen_t len = sizeof(type);

    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
    assert_int_equal(type, SOCK_STREAM);
}

static void connect_ok(const gp_addr *a, int lfd)
{
    int c = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), s;

    assert_true(c >= 0);
    if (connect(c, (const struct sockaddr *)&a->sa, a->sa_len) != 0)
        fail_msg("connect to %s: %s", a->text, strerror(errno));
    /* The connection is queued, so the non-blocking accept returns it. */
    s = accept(lfd, NULL, NULL);
    assert_true(s >= 0);
    close(s);
    close(c);
}

static void test_open_tcp_port0(void **state)
{
    char err[256] = "", want[64];
    int fd, one = 0;
    socklen_t len = sizeof(one);
    gp_addr a;

    fd = open_text("127.0.0.1:0", &a, 0, err, sizeof(err));
    if (fd < 0) fail_msg("%s", err);
    assert_listening_flags(fd);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, &len), 0);
    assert_true(one);
    assert_int_not_equal(port_of(&a), 0);
    snprintf(want, sizeof(want), "127.0.0.1:%u", port_of(&a));
    assert_string_equal(a.text, want);
    connect_ok(&a, fd);
    gp_listen_close(fd, &a);
}

static void test_open_tcp_in_use(void **state)
{
    char err[256] = "", want[256];
    int fd1, fd2;
    gp_addr a, b;

    fd1 = open_text("127.0.0.1:0", &a, 0, err, sizeof(err));
    if (fd1 < 0) fail_msg("%s", err);
    fd2 = open_text(a.text, &b, 0, err, sizeof(err));
    assert_int_equal(fd2, -1);
    snprintf(want, sizeof(want), "cannot bind %s: Address already in use", a.text);
    assert_string_equal(err, want);
    gp_listen_close(fd1, &a);
}

static void test_open_tcp_reuse_port(void **state)
{
    char err[256] = "";
    int fd1, fd2, on = 0;
    socklen_t len = sizeof(on);
    gp_addr a, b;

    fd1 = open_text("127.0.0.1:0", &a, 1, err, sizeof(err));
    if (fd1 < 0) fail_msg("%s", err);
    assert_int_equal(getsockopt(fd1, SOL_SOCKET, SO_REUSEPORT, &on, &len), 0);
    assert_true(on);
    /* Both with SO_REUSEPORT (same user): the second bind is allowed. */
    fd2 = open_text(a.text, &b, 1, err, sizeof(err));
    if (fd2 < 0) fail_msg("%s", err);
    assert_string_equal(a.text, b.text);
    gp_listen_close(fd2, &b);
    gp_listen_close(fd1, &a);
}

static void test_open_tcp6(void **state)
{
    char err[256] = "", want[64];
    int fd, probe, v6only = 0;
    socklen_t len = sizeof(v6only);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    gp_addr a;

    /* The pytest suite serves on [::1] too: a machine without IPv6
     * loopback fails here with the reason, rather than passing unseen. */
    probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0 || bind(probe, (struct sockaddr *)&lo, sizeof(lo)) != 0)
        fail_msg("no IPv6 loopback: %s", strerror(errno));
    close(probe);

    fd = open_text("[::1]:0", &a, 0, err, sizeof(err));
    if (fd < 0) fail_msg("%s", err);
    assert_listening_flags(fd);
    assert_int_equal(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
    assert_true(v6only);
    assert_int_not_equal(port_of(&a), 0);
    snprintf(want, sizeof(want), "[::1]:%u", port_of(&a));
    assert_string_equal(a.text, want);
    connect_ok(&a, fd);
    gp_listen_close(fd, &a);
}

static int setup_dir(void **state)
{
    char *dir = strdup("/tmp/gp_test_listen.XXXXXX");

    if (!dir || !mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    char path[256];
    char *dir = *state;

    /* Only the names the tests use; anything else makes rmdir fail loudly. */
    snprintf(path, sizeof(path), "%s/s.sock", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/file", dir);
    unlink(path);
    if (rmdir(dir) != 0) print_error("cannot remove %s: %s\n", dir, strerror(errno));
    free(dir);
    return 0;
}

static void test_open_unix(void **state)
{
    char text[256], err[256] = "", want[300];
    int fd1, fd2, fd3;
    struct stat st;
    gp_addr a, b, c;

    snprintf(text, sizeof(text), "unix:%s/s.sock", (char *)*state);
    fd1 = open_text(text, &a, 0, err, sizeof(err));
    if (fd1 < 0) fail_msg("%s", err);
    assert_listening_flags(fd1);
    assert_string_equal(a.text, text);
    connect_ok(&a, fd1);

    /* Someone listens: the file must be left alone. */
    fd2 = open_text(text, &b, 0, err, sizeof(err));
    assert_int_equal(fd2, -1);
    snprintf(want, sizeof(want), "cannot bind %s: Address already in use", text);
    assert_string_equal(err, want);
    assert_int_equal(lstat(text + 5, &st), 0);

    /* Crash without cleanup: the socket file stays, nobody listens. */
    close(fd1);
    assert_int_equal(lstat(text + 5, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    fd3 = open_text(text, &c, 0, err, sizeof(err));
    if (fd3 < 0) fail_msg("stale socket not replaced: %s", err);
    connect_ok(&c, fd3);

    gp_listen_close(fd3, &c);
    assert_int_equal(lstat(text + 5, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_open_unix_not_a_socket(void **state)
{
    char text[256], err[256] = "";
    struct stat st;
    gp_addr a;
    int fd;

    snprintf(text, sizeof(text), "unix:%s/file", (char *)*state);
    fd = open(text + 5, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);

    fd = open_text(text, &a, 0, err, sizeof(err));
    assert_int_equal(fd, -1);
    assert_non_null(strstr(err, text));
    assert_non_null(strstr(err, "not a socket"));
    /* The regular file survives, even a close that names its path. */
    gp_listen_close(-1, &a);
    assert_int_equal(lstat(text + 5, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepted),
        cmocka_unit_test(test_parse_hostname),
        cmocka_unit_test(test_parse_unix_sun_path),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_error_truncates),
        cmocka_unit_test(test_open_tcp_port0),
        cmocka_unit_test(test_open_tcp_in_use),
        cmocka_unit_test(test_open_tcp_reuse_port),
        cmocka_unit_test(test_open_tcp6),
        cmocka_unit_test_setup_teardown(test_open_unix, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_open_unix_not_a_socket, setup_dir, teardown_dir),
    };

    return cmocka_run_group_tests_name("listen", tests, NULL, NULL);
}
