/* static: files under --static mounts, answered from C; see static.h.
 *
 * Decisions, each in the README's "Static files" section:
 * - Anything not servable is 404, escapes included (a ".." or "." segment,
 *   an encoded one, NUL, a symlink out of DIR, a directory, a device); only a
 *   file the worker may not read is 403. Nothing tells an attacker what
 *   exists outside DIR.
 * - A symlink inside DIR is followed when it stays inside DIR (openat2
 *   RESOLVE_BENEATH refuses absolute targets and ".." out); without openat2
 *   (kernels before 5.6, some seccomp filters) no symlink is followed.
 * - Several ranges in one Range header get the whole file (200), as RFC
 *   9110 14.2 allows; a bad Range header is ignored the same way.
 * - ETag is nginx's: hex mtime and size, "-br"/"-gz" added for a sibling. */
#include "core/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/mime.h"
#include "core/numfmt.h"

#define MIME_TYPES_FILE "/etc/mime.types"
#define PATH_CAP 4096

typedef struct {
    const char *prefix; /* decoded, without its trailing '/'; "" for "/" */
    size_t prefix_len;
    int dirfd; /* O_PATH */
} static_mount;

struct gp_static {
    static_mount mounts[GP_MAX_STATIC]; /* longest prefix first */
    int num_mounts;
    gp_mime *mime;
    bool openat2;           /* else the O_NOFOLLOW walk */
    char cache_control[64]; /* "Cache-Control" value, "" for none */
    size_t cache_control_len;
    time_t lm_time; /* the last Last-Modified formatted, kept for the next */
    char lm[32];
};

/* ---- opening files beneath a directory ------------------------------------- */

static int open_beneath(const gp_static *s, int dirfd, const char *rel)
{
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (s->openat2) {
        struct open_how how = {.flags = (uint64_t)flags,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        int fd;
        do fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        while (fd < 0 && errno == EINTR);
        return fd;
    }
    /* one segment at a time, no symlink anywhere: segments were checked to
     * have no "." or "..", so nothing can climb out */
    int cur = dirfd;
    const char *p = rel;
    for (;;) {
        const char *slash = strchr(p, '/');
        if (!slash) break;
        char seg[NAME_MAX + 1];
        size_t n = (size_t)(slash - p);
        if (n > NAME_MAX) {
            errno = ENAMETOOLONG;
            goto fail;
        }
        memcpy(seg, p, n);
        seg[n] = 0;
        int next = openat(cur, seg, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cur != dirfd) close(cur);
        if (next < 0) return -1;
        cur = next;
        p = slash + 1;
    }
    int fd = openat(cur, p, flags | O_NOFOLLOW);
    if (cur != dirfd) {
        int e = errno;
        close(cur);
        errno = e;
    }
    return fd;
fail:
    if (cur != dirfd) close(cur);
    return -1;
}

/* ---- set-up ------------------------------------------------------------------ */

static int cmp_mount(const void *a, const void *b)
{
    const static_mount *x = a, *y = b;
    return x->prefix_len < y->prefix_len ? 1 : x->prefix_len > y->prefix_len ? -1 : 0;
}

int gp_static_open(const gp_config *cfg, gp_static **out, char *err, size_t cap)
{
    *out = NULL;
    if (!cfg->num_statics) return 0;
    gp_static *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "--static: out of memory");
        return -1;
    }
    for (int i = 0; i < GP_MAX_STATIC; i++) s->mounts[i].dirfd = -1;
    for (int i = 0; i < cfg->num_statics; i++) {
        static_mount *m = &s->mounts[s->num_mounts];
        m->prefix = cfg->statics[i].prefix;
        m->prefix_len = strlen(m->prefix);
        m->dirfd = open(cfg->statics[i].dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (m->dirfd < 0) {
            snprintf(err, cap, "--static %s=%s: cannot open the directory: %s",
                     m->prefix_len ? m->prefix : "/", cfg->statics[i].dir, strerror(errno));
            gp_static_free(s);
            return -1;
        }
        s->num_mounts++;
    }
    qsort(s->mounts, (size_t)s->num_mounts, sizeof *s->mounts, cmp_mount);
    /* ENOSYS: a kernel before 5.6; EPERM: a seccomp filter that does not know it */
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH};
    int probe = (int)syscall(SYS_openat2, s->mounts[0].dirfd, ".", &how, sizeof how);
    s->openat2 = probe >= 0;
    if (probe >= 0) close(probe);
    if (cfg->static_max_age >= 0)
        s->cache_control_len = (size_t)snprintf(s->cache_control, sizeof s->cache_control,
                                                "max-age=%ld", cfg->static_max_age);
    s->lm_time = (time_t)-1;
    if (!(s->mime = gp_mime_load(MIME_TYPES_FILE))) {
        snprintf(err, cap, "--static: out of memory loading %s", MIME_TYPES_FILE);
        gp_static_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void gp_static_free(gp_static *s)
{
    if (!s) return;
    for (int i = 0; i < s->num_mounts; i++)
        if (s->mounts[i].dirfd >= 0) close(s->mounts[i].dirfd);
    gp_mime_free(s->mime);
    free(s);
}

/* ---- pure helpers -------------------------------------------------------------- */

int gp_static_path_ok(const char *rel, size_t len)
{
    if (len == 0) return -1;
    size_t seg = 0; /* where the current segment starts */
    for (size_t i = 0; i <= len; i++) {
        if (i < len && rel[i] == 0) return -1;
        if (i == len || rel[i] == '/') {
            size_t n = i - seg;
            if (n == 0) return -1; /* "a//b", a trailing '/': a directory */
            if (rel[seg] == '.' && (n == 1 || (n == 2 && rel[seg + 1] == '.'))) return -1;
            seg = i + 1;
        }
    }
    return 0;
}

static int parse_u64(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0 || n > 19) return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

int gp_static_parse_range(const char *v, size_t n, uint64_t size, uint64_t *first, uint64_t *last)
{
    /* RFC 9110 14.1.1: "bytes" "=" range-spec; the unit is case-insensitive */
    if (n < 7 || !gp_http_token_eq(v, 5, "bytes") || v[5] != '=') return GP_RANGE_NONE;
    v += 6;
    n -= 6;
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (memchr(v, ',', n)) return GP_RANGE_NONE; /* several ranges: the whole file */
    const char *dash = memchr(v, '-', n);
    if (!dash) return GP_RANGE_NONE;
    size_t a_len = (size_t)(dash - v), b_len = n - a_len - 1;
    uint64_t a, b;
    if (a_len == 0) { /* suffix: the last b bytes */
        if (parse_u64(dash + 1, b_len, &b)) return GP_RANGE_NONE;
        if (b == 0 || size == 0) return GP_RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return GP_RANGE_OK;
    }
    if (parse_u64(v, a_len, &a)) return GP_RANGE_NONE;
    if (b_len == 0) b = UINT64_MAX;
    else if (parse_u64(dash + 1, b_len, &b) || b < a) return GP_RANGE_NONE;
    if (a >= size) return GP_RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return GP_RANGE_OK;
}

static void trim(const char **p, const char **end)
{
    while (*p < *end && (**p == ' ' || **p == '\t')) (*p)++;
    while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t')) (*end)--;
}

int gp_static_etag_match(const char *list, size_t n, const char *etag, size_t etag_len)
{
    const char *p = list, *end = list + n;
    /* ours is strong, so the weak comparison only drops a W/ from theirs */
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end, *s = p;
        trim(&s, &e);
        if (e - s == 1 && *s == '*') return 1;
        if (e - s > 2 && s[0] == 'W' && s[1] == '/') s += 2;
        if ((size_t)(e - s) == etag_len && memcmp(s, etag, etag_len) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* q-value of "q=0.5" style text, in thousandths; -1 when malformed. */
static int parse_q(const char *s, const char *e)
{
    if (e - s < 1 || (*s != '0' && *s != '1')) return -1;
    int q = (*s - '0') * 1000, scale = 100;
    s++;
    if (s < e) {
        if (*s++ != '.') return -1;
        for (int k = 0; s < e; k++, s++) {
            if (k == 3 || *s < '0' || *s > '9') return -1;
            q += (*s - '0') * scale;
            scale /= 10;
        }
    }
    return q > 1000 ? -1 : q;
}

int gp_static_accepts(const char *v, size_t n, const char *coding)
{
    size_t cl = strlen(coding);
    int named = -1, star = -1;
    const char *p = v, *end = v + n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end, *s = p;
        const char *semi = memchr(s, ';', (size_t)(e - s));
        const char *te = semi ? semi : e;
        trim(&s, &te);
        int q = 1000;
        if (semi) { /* ";q=0.5", weight only (RFC 9110 12.4.2) */
            const char *ps = semi + 1, *pe = e;
            trim(&ps, &pe);
            if (pe - ps >= 2 && (ps[0] == 'q' || ps[0] == 'Q') && ps[1] == '=')
                q = parse_q(ps + 2, pe);
            if (q < 0) q = 0;
        }
        size_t tl = (size_t)(te - s);
        if (tl == cl && gp_http_token_eq(s, tl, coding)) named = q;
        else if (tl == 6 && strcmp(coding, "gzip") == 0 && gp_http_token_eq(s, tl, "x-gzip"))
            named = named < 0 ? q : named;
        else if (tl == 1 && *s == '*') star = q;
        if (!comma) break;
        p = comma + 1;
    }
    if (named >= 0) return named;
    return star > 0 ? star : 0;
}

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int month_of(const char *s)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(s, months[i], 3) == 0) return i;
    return -1;
}

/* n digits at s, or -1. */
static int digits(const char *s, int n)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    return x;
}

static int parse_clock(const char *s, struct tm *tm)
{
    if (s[2] != ':' || s[5] != ':') return -1;
    tm->tm_hour = digits(s, 2);
    tm->tm_min = digits(s + 3, 2);
    tm->tm_sec = digits(s + 6, 2);
    return tm->tm_hour < 0 || tm->tm_min < 0 || tm->tm_sec < 0 || tm->tm_hour > 23 ||
                   tm->tm_min > 59 || tm->tm_sec > 60
               ? -1
               : 0;
}

int gp_static_parse_date(const char *v, size_t n, time_t *out)
{
    char b[40];
    if (n >= sizeof b) return -1;
    memcpy(b, v, n);
    b[n] = 0;
    struct tm tm = {0};
    const char *comma = strchr(b, ',');
    if (comma && n == 29 && comma - b == 3) { /* Sun, 06 Nov 1994 08:49:37 GMT */
        const char *s = b + 5;
        if (s[2] != ' ' || s[6] != ' ' || s[11] != ' ' || strcmp(s + 20, " GMT")) return -1;
        tm.tm_mday = digits(s, 2);
        tm.tm_mon = month_of(s + 3);
        tm.tm_year = digits(s + 7, 4) - 1900;
        if (parse_clock(s + 12, &tm)) return -1;
    } else if (comma) { /* Sunday, 06-Nov-94 08:49:37 GMT */
        const char *s = comma + 2;
        if (comma[1] != ' ' || strlen(s) != 22 || s[2] != '-' || s[6] != '-' || s[9] != ' ' ||
            strcmp(s + 18, " GMT"))
            return -1;
        tm.tm_mday = digits(s, 2);
        tm.tm_mon = month_of(s + 3);
        int yy = digits(s + 7, 2);
        if (yy < 0) return -1;
        tm.tm_year = yy < 70 ? yy + 100 : yy; /* RFC 9110 5.6.7: 50 years ahead at most */
        if (parse_clock(s + 10, &tm)) return -1;
    } else if (n == 24) { /* Sun Nov  6 08:49:37 1994 */
        if (b[3] != ' ' || b[7] != ' ' || b[10] != ' ' || b[19] != ' ') return -1;
        tm.tm_mon = month_of(b + 4);
        tm.tm_mday = b[8] == ' ' ? digits(b + 9, 1) : digits(b + 8, 2);
        tm.tm_year = digits(b + 20, 4) - 1900;
        if (parse_clock(b + 11, &tm)) return -1;
    } else {
        return -1;
    }
    if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_year < 70) return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    *out = t;
    return 0;
}

size_t gp_static_format_date(char *dst, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    memcpy(dst, wdays[tm.tm_wday], 3);
    dst[3] = ',';
    dst[4] = ' ';
    dst[5] = (char)('0' + tm.tm_mday / 10);
    dst[6] = (char)('0' + tm.tm_mday % 10);
    dst[7] = ' ';
    memcpy(dst + 8, months[tm.tm_mon], 3);
    dst[11] = ' ';
    int y = tm.tm_year + 1900;
    if (y < 0 || y > 9999) y = 9999;
    for (int i = 3; i >= 0; i--, y /= 10) dst[12 + i] = (char)('0' + y % 10);
    dst[16] = ' ';
    dst[17] = (char)('0' + tm.tm_hour / 10);
    dst[18] = (char)('0' + tm.tm_hour % 10);
    dst[19] = ':';
    dst[20] = (char)('0' + tm.tm_min / 10);
    dst[21] = (char)('0' + tm.tm_min % 10);
    dst[22] = ':';
    dst[23] = (char)('0' + tm.tm_sec / 10);
    dst[24] = (char)('0' + tm.tm_sec % 10);
    memcpy(dst + 25, " GMT", 5);
    return 29;
}

/* ---- answering ------------------------------------------------------------------- */

typedef struct {
    const gp_http_header *range, *if_range, *if_none_match, *if_modified_since, *accept_encoding;
} wanted_fields;

static void scan_fields(const gp_http_request *req, wanted_fields *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < req->num_headers; i++) {
        const gp_http_header *h = &req->headers[i];
        switch (h->name_len) {
        case 5:
            if (gp_http_token_eq(h->name, 5, "range")) f->range = h;
            break;
        case 8:
            if (gp_http_token_eq(h->name, 8, "if-range")) f->if_range = h;
            break;
        case 13:
            if (gp_http_token_eq(h->name, 13, "if-none-match")) f->if_none_match = h;
            break;
        case 15:
            if (gp_http_token_eq(h->name, 15, "accept-encoding")) f->accept_encoding = h;
            break;
        case 17:
            if (gp_http_token_eq(h->name, 17, "if-modified-since")) f->if_modified_since = h;
            break;
        }
    }
}

#define ADD(c, name, v, n) gp_conn_head_add(c, name, sizeof(name) - 1, v, n)
#define ADD_LIT(c, name, v) gp_conn_head_add(c, name, sizeof(name) - 1, v, sizeof(v) - 1)

/* A short text/plain answer with one extra field (Allow, Content-Range). */
static void answer_plain(gp_conn *c, int status, const char *name, const char *value, size_t n)
{
    const char *why = gp_http_reason(status);
    char body[64];
    size_t bn = strlen(why);
    memcpy(body, why, bn);
    body[bn++] = '\n';
    if (gp_conn_head_begin_status(c, status) || gp_conn_head_add(c, name, strlen(name), value, n) ||
        ADD_LIT(c, "Content-Type", "text/plain")) {
        gp_conn_send_error(c, 500, 1);
        return;
    }
    gp_conn_head_set_length(c, bn);
    gp_conn_head_end(c);
    gp_conn_write(c, body, bn);
    gp_conn_end_response(c);
}

static const static_mount *find_mount(const gp_static *s, const char *p, size_t n)
{
    for (int i = 0; i < s->num_mounts; i++) {
        const static_mount *m = &s->mounts[i];
        if (n >= m->prefix_len && memcmp(p, m->prefix, m->prefix_len) == 0 &&
            (n == m->prefix_len || p[m->prefix_len] == '/'))
            return m;
    }
    return NULL;
}

/* Whether If-Range lets the Range apply: a strong ETag equal to ours, or the
 * exact Last-Modified date. */
static int if_range_holds(const gp_http_header *h, const char *etag, size_t etag_len, time_t mtime)
{
    if (h->value_len &&
        (h->value[0] == '"' || (h->value_len > 1 && h->value[0] == 'W' && h->value[1] == '/')))
        return h->value_len == etag_len && memcmp(h->value, etag, etag_len) == 0;
    time_t t;
    return gp_static_parse_date(h->value, h->value_len, &t) == 0 && t == mtime;
}

static const struct {
    const char *coding, *suffix;
} siblings[] = {{"br", ".br"}, {"gzip", ".gz"}};

int gp_static_serve(gp_static *s, gp_conn *c, const gp_http_request *req)
{
    if (req->path_len == 0 || req->path[0] != '/') return 0;
    char path[PATH_CAP + 8]; /* room for a sibling's suffix and the NUL */
    size_t len;
    if (req->path_len > PATH_CAP) { /* longer than any file we would open */
        if (!find_mount(s, req->path, req->path_len)) return 0;
        gp_conn_send_error(c, 404, 0);
        return 1;
    }
    /* the app's requests pay for a prefix check only, not a decoded copy */
    bool encoded = memchr(req->path, '%', req->path_len) != NULL;
    if (!encoded && !find_mount(s, req->path, req->path_len)) return 0;
    len = gp_http_percent_decode(path, req->path, req->path_len);
    const static_mount *m = find_mount(s, path, len);
    if (!m) return 0;
    bool head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    if (!get && !head) {
        answer_plain(c, 405, "Allow", "GET, HEAD", 9);
        return 1;
    }
    char *rel = path + m->prefix_len;
    size_t rl = len - m->prefix_len;
    if (rl) rel++, rl--; /* the '/' after the prefix */
    if (gp_static_path_ok(rel, rl)) {
        gp_conn_send_error(c, 404, 0);
        return 1;
    }
    rel[rl] = 0;
    wanted_fields f;
    scan_fields(req, &f);

    int fd = -1, sib = -1;
    struct stat st;
    if (f.accept_encoding) {
        for (int i = 0; i < 2 && fd < 0; i++) {
            if (gp_static_accepts(f.accept_encoding->value, f.accept_encoding->value_len,
                                  siblings[i].coding) <= 0)
                continue;
            memcpy(rel + rl, siblings[i].suffix, 4);
            fd = open_beneath(s, m->dirfd, rel);
            if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
                close(fd);
                fd = -1;
            }
            if (fd >= 0) sib = i;
        }
        rel[rl] = 0;
    }
    if (fd < 0) {
        fd = open_beneath(s, m->dirfd, rel);
        if (fd < 0) {
            /* EXDEV, ELOOP: out of DIR; ENOENT, ENOTDIR: missing */
            int e = errno;
            gp_conn_send_error(c, e == EACCES ? 403 : e == EMFILE || e == ENFILE ? 503 : 404, 0);
            return 1;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) { /* a directory, a FIFO, a device */
            close(fd);
            gp_conn_send_error(c, 404, 0);
            return 1;
        }
    }

    uint64_t size = (uint64_t)st.st_size;
    char etag[64];
    size_t el = 0;
    etag[el++] = '"';
    el += gp_put_u64(etag + el, (uint64_t)st.st_mtime, 16);
    etag[el++] = '-';
    el += gp_put_u64(etag + el, size, 16);
    if (sib >= 0) {
        etag[el++] = '-';
        memcpy(etag + el, siblings[sib].suffix + 1, 2);
        el += 2;
    }
    etag[el++] = '"';
    if (st.st_mtime != s->lm_time) {
        gp_static_format_date(s->lm, st.st_mtime);
        s->lm_time = st.st_mtime;
    }

    int status = 200;
    if (f.if_none_match) {
        if (gp_static_etag_match(f.if_none_match->value, f.if_none_match->value_len, etag, el))
            status = 304;
    } else if (f.if_modified_since) {
        time_t t;
        if (gp_static_parse_date(f.if_modified_since->value, f.if_modified_since->value_len, &t) ==
                0 &&
            st.st_mtime <= t)
            status = 304;
    }
    uint64_t first = 0, last = size ? size - 1 : 0;
    if (status == 200 && get && f.range &&
        (!f.if_range || if_range_holds(f.if_range, etag, el, st.st_mtime))) {
        int r = gp_static_parse_range(f.range->value, f.range->value_len, size, &first, &last);
        if (r == GP_RANGE_UNSATISFIABLE) {
            close(fd);
            char cr[32] = "bytes */";
            size_t n = 8 + gp_put_u64(cr + 8, size, 10);
            answer_plain(c, 416, "Content-Range", cr, n);
            return 1;
        }
        if (r == GP_RANGE_OK) status = 206;
    }

    size_t tl;
    const char *type = gp_mime_type(s->mime, rel, rl, &tl);
    int bad = gp_conn_head_begin_status(c, status);
    if (status != 304) bad |= ADD(c, "Content-Type", type, tl);
    bad |= ADD(c, "Last-Modified", s->lm, 29);
    bad |= ADD(c, "ETag", etag, el);
    if (s->cache_control_len)
        bad |= ADD(c, "Cache-Control", s->cache_control, s->cache_control_len);
    if (sib >= 0) {
        bad |= ADD_LIT(c, "Vary", "Accept-Encoding");
        if (status != 304)
            bad |= ADD(c, "Content-Encoding", siblings[sib].coding, strlen(siblings[sib].coding));
    }
    if (status != 304) bad |= ADD_LIT(c, "Accept-Ranges", "bytes");
    if (status == 206) {
        char cr[80] = "bytes ";
        size_t n = 6 + gp_put_u64(cr + 6, first, 10);
        cr[n++] = '-';
        n += gp_put_u64(cr + n, last, 10);
        cr[n++] = '/';
        n += gp_put_u64(cr + n, size, 10);
        bad |= ADD(c, "Content-Range", cr, n);
    }
    if (bad) {
        close(fd);
        gp_conn_send_error(c, 500, 1);
        return 1;
    }
    uint64_t body = status == 304 ? 0 : size ? last - first + 1 : 0;
    if (status != 304) gp_conn_head_set_length(c, body);
    gp_conn_head_end(c);
    if (status == 304 || head || body == 0) {
        close(fd);
    } else {
        gp_conn_adopt_fd(c, fd);
        gp_conn_sendfile(c, fd, (off_t)first, body);
    }
    gp_conn_end_response(c);
    return 1;
}
