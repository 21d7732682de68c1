/* bufpool: see bufpool.h. A stack of free buffers; the mutex is taken only
 * once request threads share the pool. */
#include "core/bufpool.h"

#include <errno.h>
#include <stdlib.h>

int gp_bufpool_init(gp_bufpool *p)
{
    p->num_free = 0;
    p->locked = false;
    p->free = calloc(GP_BUFPOOL_MAX, sizeof *p->free);
    return p->free ? 0 : -ENOMEM;
}

void gp_bufpool_lock_on(gp_bufpool *p)
{
    pthread_mutex_init(&p->mu, NULL);
    p->locked = true;
}

void gp_bufpool_free(gp_bufpool *p)
{
    for (int i = 0; i < p->num_free; i++) free(p->free[i]);
    free(p->free);
    p->free = NULL;
    p->num_free = 0;
}

char *gp_bufpool_get(gp_bufpool *p)
{
    char *b = NULL;
    if (p->locked) pthread_mutex_lock(&p->mu);
    if (p->num_free) b = p->free[--p->num_free];
    if (p->locked) pthread_mutex_unlock(&p->mu);
    return b ? b : malloc(GP_IO_BUF_SIZE);
}

void gp_bufpool_put(gp_bufpool *p, char *buf)
{
    if (p->locked) pthread_mutex_lock(&p->mu);
    if (p->num_free < GP_BUFPOOL_MAX) p->free[p->num_free++] = buf, buf = NULL;
    if (p->locked) pthread_mutex_unlock(&p->mu);
    free(buf);
}

void gp_bufpool_release(gp_bufpool *p, char **buf, size_t *cap)
{
    if (!*buf) return;
    if (*cap == GP_IO_BUF_SIZE) gp_bufpool_put(p, *buf);
    else free(*buf);
    *buf = NULL;
    *cap = 0;
}
