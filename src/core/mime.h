/* mime: file name extension -> Content-Type value, for static files.
 *
 * Loaded once at worker start from a mime.types file (Debian's
 * /etc/mime.types: "type ext ext ..." a line, '#' comments) over a small
 * built-in table, so a machine without the file still serves the web's
 * common types. Lookups are case-insensitive, allocate nothing and never fail:
 * an unknown extension is application/octet-stream. Text types get
 * "; charset=utf-8" (see mime.c). */
#ifndef GP_MIME_H
#define GP_MIME_H

#include <stddef.h>

typedef struct gp_mime gp_mime;

/* The built-in table plus path's entries (path NULL or unreadable: built-ins
 * only; the first entry for an extension in the file wins over a later one and
 * over the built-in). NULL only when out of memory. */
gp_mime *gp_mime_load(const char *path);
void gp_mime_free(gp_mime *m);

/* The Content-Type for a file name (the part after its last '.' of the last
 * path segment), as a NUL-terminated string owned by m; *len gets its length. */
const char *gp_mime_type(const gp_mime *m, const char *name, size_t name_len, size_t *len);

#endif
