/* h1_thread: an HTTP/1.1 connection's request on a request thread
 * (--threads): queueing it for one (the loop's side), and what the thread
 * does with it (gp_conn_job_run, through the pool's table). The thread's
 * return to the loop (gp_conn_job_done) is h1.c's, as the response cycle is.
 * Part of the connection's owner (conn_h1.h).
 *
 * A request thread runs the app's code and nothing else: start, then resume
 * each time the socket drained, and abort. Its writes never wait for the
 * socket (but see below): a GP_AGAIN makes the app return GP_APP_PENDING, as
 * on the loop, and the connection goes back to the loop in CS_APP_WAIT. The
 * loop flushes what is queued (the output buffer, the app's piece in place,
 * or the file for sendfile) without blocking, and once it is all out hands
 * the connection to a thread again to resume. So a slow reader holds neither
 * a thread nor the loop between pieces, the worker keeps accepting, and the
 * --timeout clock (gp_thread_slot.started_ms) runs only while app code does.
 *
 * Python stays on the threads: each holds the GIL while it runs the app; the
 * loop thread only sends bytes the app's state keeps alive (immutable while
 * the response waits) and never releases them: resume or abort does, on a
 * thread. The thread's last flush after the app returned does not wait
 * either (it has given the GIL up; the blocking hook would need it): what
 * the socket does not take then, the loop sends.
 *
 * Two waits stay on the thread, because the app's call stack is live there:
 * WSGI's write() callable and request body reads. They wait through the
 * blocking hook with the GIL dropped, and a write's wait for the client does
 * not count towards --timeout. */
#include "core/h1_thread.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "core/conn_h1.h"
#include "core/loop.h"
#include "core/pool.h"

void gp_h1_to_thread(gp_conn *c, enum gp_thread_job job)
{
    c->state = CS_THREAD;
    c->s.off_loop = true; /* its writes must not touch the loop's timers */
    c->thread_job = (unsigned char)job;
    gp_loop_unwatch(c->env->stream.loop, &c->s.io); /* fails only when it was not watched */
    gp_pool_submit(c->env->pool, &c->job);
}

static gp_app_status thread_start(gp_conn *c, gp_http_header *headers, gp_thread_slot *ts)
{
    gp_worker_env *e = c->env;
    gp_http_request req;
    req.headers = headers;
    req.num_headers = e->cfg->limit_request_fields;
    /* the head is parsed again into this thread's array: the loop's is shared */
    if (gp_http_parse_request(c->s.buf, c->head_len, &req, &e->limits) != (int)c->head_len) {
        gp_conn_send_error(c, 500, 1);
        return GP_APP_DONE;
    }
    gp_conn_describe(ts->what, sizeof ts->what, &req);
    atomic_store_explicit(&ts->started_ms, gp_monotonic_ms(), memory_order_release);
    gp_app_status st = e->ops->start(e->app, c, &req);
    /* the head may be gone once the body was read: keep the text for resumes */
    if (st == GP_APP_PENDING) memcpy(c->what, ts->what, sizeof c->what);
    return st;
}

/* On a request thread: runs what c was queued for, then tries the rest of
 * the response once without waiting. gp_conn_job_done takes it from there. */
void gp_conn_job_run(gp_job *j, gp_http_header *headers, gp_thread_slot *ts)
{
    gp_conn *c = (gp_conn *)((char *)j - offsetof(gp_conn, job));
    gp_worker_env *e = c->env;
    gp_app_status st = GP_APP_DONE;
    c->tslot = ts;
    switch (c->thread_job) {
    case GP_JOB_START: st = thread_start(c, headers, ts); break;
    case GP_JOB_RESUME:
        memcpy(ts->what, c->what, sizeof ts->what);
        atomic_store_explicit(&ts->started_ms, gp_monotonic_ms(), memory_order_release);
        st = e->ops->resume(e->app, c);
        break;
    case GP_JOB_ABORT: e->ops->abort(e->app, c); break;
    }
    atomic_store_explicit(&ts->started_ms, 0, memory_order_release);
    if (st == GP_APP_DONE && !c->s.broken) {
        if (!c->resp_ended) gp_conn_send_error(c, 500, 0);
        gp_conn_flush_queued(c);
    }
    c->tslot = NULL; /* after the last flush: it must not arm the loop's timers */
    c->thread_st = st;
}
