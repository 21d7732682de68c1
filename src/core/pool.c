/* pool: see pool.h. One queue under a mutex; finished jobs come back
 * through an eventfd the loop watches. */
#include "core/pool.h"

#include <stddef.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

void gp_pool_submit(gp_pool *p, gp_job *j)
{
    pthread_mutex_lock(&p->mu);
    j->qnext = NULL;
    if (p->jobs_tail) p->jobs_tail->qnext = j;
    else p->jobs = j;
    p->jobs_tail = j;
    p->busy++;
    bool full = p->busy >= p->threads;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (full) p->ops->busy(p->arg, true);
}

static void *pool_thread(void *arg)
{
    gp_pool *p = arg;
    gp_http_header *headers = calloc(GP_HTTP_MAX_HEADERS, sizeof *headers);
    gp_thread_slot *ts = &p->slots[atomic_fetch_add(&p->next_slot, 1)];
    if (p->ops->thread_init) p->ops->thread_init(p->arg);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->jobs) pthread_cond_wait(&p->cv, &p->mu);
        gp_job *j = p->jobs;
        p->jobs = j->qnext;
        if (!p->jobs) p->jobs_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        p->ops->run(j, headers, ts);

        pthread_mutex_lock(&p->mu);
        j->qnext = p->done;
        p->done = j;
        pthread_mutex_unlock(&p->mu);
        uint64_t one = 1;
        ssize_t r = write(p->done_io.fd, &one, sizeof one);
        (void)r;
    }
    return NULL;
}

static void on_pool_done(gp_io *io, uint32_t events)
{
    gp_pool *p = (gp_pool *)((char *)io - offsetof(gp_pool, done_io));
    uint64_t n;
    ssize_t r = read(io->fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&p->mu);
    gp_job *done = p->done;
    p->done = NULL;
    for (gp_job *j = done; j; j = j->qnext) p->busy--;
    bool room = p->busy < p->threads;
    pthread_mutex_unlock(&p->mu);
    while (done) {
        gp_job *j = done;
        done = j->qnext;
        p->ops->done(j);
    }
    if (room) p->ops->busy(p->arg, false);
}

gp_pool *gp_pool_start(gp_loop *loop, int threads, const gp_pool_ops *ops, void *arg)
{
    gp_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = threads;
    p->ops = ops;
    p->arg = arg;
    p->slots = calloc((size_t)threads, sizeof *p->slots);
    if (!p->slots) return NULL;
    p->done_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->done_io.cb = on_pool_done;
    if (p->done_io.fd < 0 || gp_loop_watch(loop, &p->done_io, EPOLLIN) < 0) return NULL;
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, pool_thread, p) != 0) return NULL;
        pthread_detach(t);
    }
    return p;
}
