/* What a worker hands its HTTP/1.1 connections (worker_env.h), built by
 * hand for the connection layer's unit tests: a loop, timers, buffers, a
 * connection set, a listener at 127.0.0.1:8000 and a one-slot scoreboard.
 * Included by one test file each (static functions). */
#ifndef TEST_CONN_ENV_H
#define TEST_CONN_ENV_H

#include <stdlib.h>
#include <string.h>

#include "core/h1.h"
#include "core/scoreboard.h"
#include "core/worker_env.h"

typedef struct {
    gp_worker_env *w;
    gp_conns *cs;
    gp_loop loop;
    gp_timers timers;
    gp_bufpool bufs;
    gp_conn_listener lis;
    gp_addr local;
    gp_scoreboard *sb;
} test_conn_env;

/* Limits from cfg, a head cap of 64 KB, no access log, the clock read now,
 * date ("Date: ...\r\n") as both halves of the Date line. 0 or -1. */
static int test_conn_env_open(test_conn_env *t, const gp_config *cfg, const gp_app_ops *ops,
                              void *app, const char *date)
{
    gp_worker_env *w = calloc(1, sizeof *w);
    if (!w || gp_loop_init(&t->loop) < 0) return -1;
    t->w = w;
    w->cfg = cfg;
    w->ops = ops;
    w->app = app;
    w->limits.max_request_line = cfg->limit_request_line;
    w->limits.max_fields = cfg->limit_request_fields;
    w->limits.max_field_size = cfg->limit_request_field_size;
    w->head_cap = 65536;
    gp_worker_env_init(w, &t->loop, &t->timers, &t->bufs);
    if (gp_bufpool_init(&t->bufs) < 0) return -1;
    gp_timers_init(&t->timers);
    w->access_fd = -1;
    size_t n = strlen(date);
    memcpy(w->date_lines[0], date, n);
    memcpy(w->date_lines[1], date, n);
    w->date_len = n;
    w->now = gp_now();
    char err[128];
    if (gp_addr_parse("127.0.0.1:8000", &t->local, err, sizeof err) < 0) return -1;
    t->lis.addr = &t->local;
    if (!(t->cs = gp_conns_new(w))) return -1;
    if (!(t->sb = gp_scoreboard_create(1))) return -1;
    w->slot = &t->sb->slots[0];
    return 0;
}

static void test_conn_env_close(test_conn_env *t)
{
    gp_conns_free(t->cs);
    gp_bufpool_free(&t->bufs);
    gp_timers_free(&t->timers);
    gp_loop_close(&t->loop);
    free(t->w);
    gp_scoreboard_destroy(t->sb);
}

#endif
