/* h1_thread: HTTP/1.1's request threads (--threads), for h1.c. The job a
 * thread runs (gp_conn_job_run) is declared in h1.h, for the worker's pool
 * table. */
#ifndef GP_H1_THREAD_H
#define GP_H1_THREAD_H

#include "core/conn.h"

enum gp_thread_job;

/* Queues c for a request thread to start, resume or abort its app; the
 * loop leaves c alone (CS_THREAD, out of the loop) until gp_conn_job_done. */
void gp_h1_to_thread(gp_conn *c, enum gp_thread_job job);

#endif
