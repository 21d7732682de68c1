/* body: a request body held in memory, then in an unlinked temp file; see
 * body.h. Never keeps more than the memory bound in memory, and never leaves
 * a file behind: the file has no name from the moment it exists. */
#include "core/body.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_MEM_MIN 16384

void gp_body_init(gp_body *b, const char *dir)
{
    memset(b, 0, sizeof *b);
    b->fd = -1;
    b->dir = dir;
}

/* O_TMPFILE where the file system has it; else a named file unlinked at once. */
static int open_temp(const char *dir)
{
    if (!dir || !*dir) dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/gallop-body-XXXXXX", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) return -errno;
    unlink(path);
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Moves what memory holds to a new temp file. */
static int spill(gp_body *b)
{
    int fd = open_temp(b->dir);
    if (fd < 0) return fd;
    int r = write_all(fd, b->mem, (size_t)b->size);
    if (r < 0) {
        close(fd);
        return r;
    }
    free(b->mem);
    b->mem = NULL;
    b->mem_cap = 0;
    b->fd = fd;
    return 0;
}

int gp_body_append(gp_body *b, const void *p, size_t n, size_t mem_max)
{
    if (n == 0) return 0;
    if (b->fd < 0 && b->size + n > mem_max) {
        int r = spill(b);
        if (r < 0) return r;
    }
    if (b->fd >= 0) {
        int r = write_all(b->fd, p, n);
        if (r < 0) return r;
        b->size += n;
        return 0;
    }
    size_t need = (size_t)b->size + n;
    if (need > b->mem_cap) {
        size_t cap = b->mem_cap ? b->mem_cap : BODY_MEM_MIN;
        while (cap < need) cap *= 2;
        if (cap > mem_max) cap = mem_max;
        char *m = realloc(b->mem, cap);
        if (!m) return -ENOMEM;
        b->mem = m;
        b->mem_cap = cap;
    }
    memcpy(b->mem + b->size, p, n);
    b->size += n;
    return 0;
}

ssize_t gp_body_read(gp_body *b, void *dst, size_t n)
{
    uint64_t left = b->size - b->pos;
    if (n > left) n = (size_t)left;
    if (n == 0) return 0;
    if (b->fd < 0) {
        memcpy(dst, b->mem + b->pos, n);
        b->pos += n;
        return (ssize_t)n;
    }
    ssize_t r;
    do r = pread(b->fd, dst, n, (off_t)b->pos);
    while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (r == 0) return -EIO; /* the file is shorter than what was written */
    b->pos += (uint64_t)r;
    return r;
}

uint64_t gp_body_left(const gp_body *b)
{
    return b->size - b->pos;
}

void gp_body_free(gp_body *b)
{
    free(b->mem);
    if (b->fd >= 0) close(b->fd);
    gp_body_init(b, b->dir);
}
