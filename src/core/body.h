/* body: a request body held whole before the app runs (request buffering,
 * as nginx does in front of gunicorn).
 *
 * The decoded bytes go to memory up to a bound, then to an unlinked temp
 * file, so a sync worker never waits on a slow uploader and its memory
 * stays flat however big the upload. Knows nothing of sockets or framing:
 * conn_body.c decodes, h1.c appends, the app reads back in order. */
#ifndef GP_BODY_H
#define GP_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    char *mem;       /* bytes while they fit the memory bound */
    size_t mem_cap;  /* allocated */
    int fd;          /* the temp file once past it, -1 before */
    uint64_t size;   /* bytes held */
    uint64_t pos;    /* bytes read back */
    const char *dir; /* where the temp file goes; NULL: $TMPDIR, else /tmp */
} gp_body;

void gp_body_init(gp_body *b, const char *dir);

/* Appends n bytes. The first byte past mem_max moves everything to a temp
 * file. Returns 0, or -errno (ENOMEM, ENOSPC, EACCES...). */
int gp_body_append(gp_body *b, const void *p, size_t n, size_t mem_max);

/* Reads the next bytes: returns the count (> 0), 0 at the end, or -errno. */
ssize_t gp_body_read(gp_body *b, void *dst, size_t n);

/* Bytes not read back yet. */
uint64_t gp_body_left(const gp_body *b);

/* Frees the memory and closes the file (which then disappears). */
void gp_body_free(gp_body *b);

#endif
