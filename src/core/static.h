/* static: files served from C under the --static URL_PREFIX=DIR mounts,
 * before the app is called.
 *
 * Owns path resolution (percent-decoding, no "." or ".." segment, no NUL, and
 * an open that cannot leave DIR: openat2 RESOLVE_BENEATH, or a walk of
 * O_NOFOLLOW opens where the kernel has no openat2), the response head
 * (Content-Type from core/mime, ETag, Last-Modified, Cache-Control,
 * Accept-Ranges, Content-Range, Content-Encoding and Vary for precompressed
 * .br/.gz siblings), conditional requests (304) and single byte ranges (206,
 * 416). The body goes out through gp_conn_sendfile, as the socket drains, from
 * a descriptor the connection closes when the response ends. Never blocks,
 * never allocates per request, knows nothing of Python. */
#ifndef GP_STATIC_H
#define GP_STATIC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/config.h"
#include "core/conn.h"
#include "core/http_parser.h"

typedef struct gp_static gp_static;

/* Opens every mount of cfg and loads the MIME table. *out is NULL when cfg
 * has no mounts. Returns 0, or -1 with a one-line reason in err. */
int gp_static_open(const gp_config *cfg, gp_static **out, char *err, size_t cap);
void gp_static_free(gp_static *s);

/* When req's path is under a mount, answers it on c (the response is ended;
 * the caller flushes it) and returns 1; otherwise returns 0 and the app gets
 * the request. */
int gp_static_serve(gp_static *s, gp_conn *c, const gp_http_request *req);

/* ---- pieces, exposed for the unit tests ---------------------------------- */

/* Checks a decoded path below a mount ("css/base.css") for what must never
 * reach the file system: an empty or "." or ".." segment, a NUL. 0 when fine. */
int gp_static_path_ok(const char *rel, size_t len);

/* Range: "bytes=a-b", "bytes=a-", "bytes=-n" against a file of size bytes. */
enum { GP_RANGE_NONE, GP_RANGE_OK, GP_RANGE_UNSATISFIABLE };
int gp_static_parse_range(const char *v, size_t n, uint64_t size, uint64_t *first, uint64_t *last);

/* If-None-Match against our (strong) ETag, by weak comparison (RFC 9110 13.1.2). */
int gp_static_etag_match(const char *list, size_t n, const char *etag, size_t etag_len);

/* The quality Accept-Encoding gives coding ("br", "gzip"), 0 to 1000; 0 when
 * it is refused or not listed (a listed "*" counts for what is not named). */
int gp_static_accepts(const char *v, size_t n, const char *coding);

/* HTTP-date (IMF-fixdate, RFC 850 or asctime form) to seconds; -1 when bad. */
int gp_static_parse_date(const char *v, size_t n, time_t *out);
/* IMF-fixdate of t into dst (30 bytes); returns 29. */
size_t gp_static_format_date(char *dst, time_t t);

#endif
