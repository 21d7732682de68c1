/* bufpool: a worker's free list of GP_IO_BUF_SIZE buffers, so that a
 * connection's read and output buffers come and go without malloc on the
 * request path. Locked only once request threads exist (--threads). Knows
 * nothing of connections, sockets or the worker that owns it. */
#ifndef GP_BUFPOOL_H
#define GP_BUFPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define GP_IO_BUF_SIZE 16384 /* initial read buffer and output buffer */
#define GP_BUFPOOL_MAX 64    /* free buffers kept; more are freed */

typedef struct gp_bufpool {
    char **free; /* GP_BUFPOOL_MAX slots */
    int num_free;
    bool locked; /* request threads take and give back buffers too */
    pthread_mutex_t mu;
} gp_bufpool;

/* 0, or -ENOMEM. */
int gp_bufpool_init(gp_bufpool *p);
/* From now on every get and put takes the mutex (call before starting threads). */
void gp_bufpool_lock_on(gp_bufpool *p);
/* Frees the buffers kept. */
void gp_bufpool_free(gp_bufpool *p);
/* A GP_IO_BUF_SIZE buffer, NULL when out of memory. */
char *gp_bufpool_get(gp_bufpool *p);
/* Gives a GP_IO_BUF_SIZE buffer back. */
void gp_bufpool_put(gp_bufpool *p, char *buf);
/* Releases *buf (a pooled one back to the pool, a bigger one freed) and
 * clears *buf and *cap; nothing when *buf is NULL. */
void gp_bufpool_release(gp_bufpool *p, char **buf, size_t *cap);

#endif
