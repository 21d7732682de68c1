/* loadgen: an HTTP/1.1 load generator for `gallop tune`, on gallop's own
 * event loop (core/loop) and timer heap (core/timer).
 *
 * It owns keep-alive client connections to one address, sends pre-built
 * requests on them and reads the responses (Content-Length, chunked, or up
 * to close), and keeps a latency histogram and counts of status classes and
 * errors. Two modes: closed loop (each connection sends its next request as
 * soon as the last answer is in: fixed concurrency) and open loop (requests
 * are due on a fixed schedule, at most `connections` in flight; latency runs
 * from the time a request was due, not from when a connection was free, so a
 * slow server cannot hide its queue: no coordinated omission).
 *
 * A client only: no server internals, no Python, no threads. One run blocks
 * its caller until it ends. */
#ifndef GP_LOADGEN_H
#define GP_LOADGEN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Log-linear latency buckets in microseconds: exact below 32 us, then 16
 * linear steps per power of two (about 3% relative error), up to ~2^37 us. */
#define GP_LG_SUB 16
#define GP_LG_BUCKETS (GP_LG_SUB * 35)

typedef struct {
    uint64_t counts[GP_LG_BUCKETS];
    uint64_t total, max_us, sum_us;
} gp_lg_hist;

void gp_lg_hist_add(gp_lg_hist *h, uint64_t us);

/* The latency (us, midpoint of its bucket) below which a fraction q of the
 * samples fall; 0 when there is none. */
uint64_t gp_lg_hist_quantile(const gp_lg_hist *h, double q);

/* A response head as gp_lg_parse_head reads it. */
typedef struct {
    int status; /* 100..999 */
    int minor;  /* HTTP/1.0 or 1.1 */
    bool chunked, has_length;
    bool close; /* the connection ends after this response */
    uint64_t length;
} gp_lg_head;

#define GP_LG_MAX_HEAD 32768

/* Reads one response head from b[0..len), a pure function. Returns its
 * length (final CRLF included), 0 when incomplete (and under
 * GP_LG_MAX_HEAD), -1 when malformed: a bare CR or LF, no status line, a
 * field that is not `token: value` (or holds a control byte other than
 * HTAB), a bad or repeated Content-Length, or
 * Content-Length with Transfer-Encoding. */
int gp_lg_parse_head(const char *b, size_t len, gp_lg_head *h);

typedef struct {
    const char *data; /* the whole request, head and body */
    size_t len;
    bool head; /* a HEAD request: its response has no body */
} gp_lg_req;

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const gp_lg_req *reqs; /* sent in turn */
    int num_reqs;
    int connections;               /* closed loop: the concurrency; open loop: most in flight */
    double rate;                   /* > 0: open loop, requests per second; 0: closed loop */
    double warmup_s;               /* responses before this are not counted */
    double duration_s;             /* the measured window after the warm-up */
    uint64_t max_requests;         /* > 0: end after this many counted responses */
    double timeout_s;              /* a response slower than this is an error (0: 10 s) */
    void (*on_measure)(void *ctx); /* called when the measured window opens */
    void *ctx;
    volatile sig_atomic_t *stop; /* ends the run when it becomes nonzero (may be NULL) */
} gp_lg_opts;

typedef struct {
    uint64_t responses; /* complete responses in the window */
    uint64_t status[6]; /* [1]..[5]: 1xx..5xx responses in the window */
    uint64_t errors;    /* connects refused, resets, timeouts, malformed responses */
    int last_status;
    double elapsed_s; /* length of the measured window */
    gp_lg_hist hist;
    char error[160]; /* the first error seen, "" when none */
} gp_lg_result;

/* Runs the load described by o; fills r. Returns 0, or -errno when it could
 * not set up (no loop, no memory, bad options). Errors of single connections
 * are counted in r, not returned. */
int gp_lg_run(const gp_lg_opts *o, gp_lg_result *r);

#endif
