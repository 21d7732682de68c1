/* h1_log: the record of a request, from its head to its end: the access
 * log's values and line, --log-slow, and the metrics' timing (one clock read
 * at each end, shared by both). For HTTP/1.1's connection (h1.c); another
 * protocol's exchanges get the same through gp_exchange_begin/end
 * (exchange.h), defined here. */
#ifndef GP_H1_LOG_H
#define GP_H1_LOG_H

#include <stdbool.h>

#include "core/conn.h"

/* The head of c's request is in (req as handed to the app): keeps what the
 * log line needs, and starts its timing. Call only when the access log,
 * --log-slow or the metrics are on (env->alog_on || env->count_busy): with
 * all off a request pays that one test. */
void gp_h1_log_begin(gp_conn *c, const gp_http_request *req);
/* complete: the response was written (a line even for a request never
 * dispatched); else it was cut off (a line only if one is pending). Call
 * when env->alog_on, or a timing or a line is pending. */
void gp_h1_log_end(gp_conn *c, bool complete);

#endif
