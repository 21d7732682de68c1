/* mime: extension -> Content-Type table; see mime.h.
 *
 * Charset: text types are served as UTF-8 ("; charset=utf-8" on text types and on
 * JavaScript, JSON and XML types, +json and +xml included), as Django and
 * whitenoise do, because a browser left to guess takes windows-1252. nginx
 * adds no charset unless told to; the README says what we do. */
#include "core/mime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXT_MAX 31
#define DEFAULT_TYPE "application/octet-stream"

typedef struct {
    char ext[EXT_MAX + 1]; /* lower case; "" for a free slot */
    const char *type;      /* one of m->types */
    size_t type_len;
} mime_slot;

struct gp_mime {
    mime_slot *slots;
    size_t mask; /* number of slots - 1 (a power of two - 1) */
    size_t used;
    char **types; /* the Content-Type strings, one allocation each */
    size_t num_types, cap_types;
};

/* What a machine without /etc/mime.types still needs for a web site. */
static const char *const builtin[][2] = {
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"js", "text/javascript"},
    {"mjs", "text/javascript"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"webmanifest", "application/manifest+json"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"zip", "application/zip"},
};

static uint64_t hash_ext(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Whether a type is text that we declare UTF-8. */
static int wants_charset(const char *t, size_t n)
{
    static const char *const apps[] = {"application/javascript", "application/json",
                                       "application/xml", "application/ecmascript"};
    if (n > 5 && memcmp(t, "text/", 5) == 0) return 1;
    for (size_t i = 0; i < sizeof apps / sizeof *apps; i++)
        if (strlen(apps[i]) == n && memcmp(t, apps[i], n) == 0) return 1;
    return (n > 5 && memcmp(t + n - 5, "+json", 5) == 0) ||
           (n > 4 && memcmp(t + n - 4, "+xml", 4) == 0);
}

/* Lower-cases ext into dst (EXT_MAX + 1 bytes); 0 when too long or empty. */
static size_t lower_ext(char *dst, const char *ext, size_t n)
{
    if (n == 0 || n > EXT_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = ext[i];
        dst[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    dst[n] = 0;
    return n;
}

static mime_slot *find_slot(const gp_mime *m, const char *key, size_t n)
{
    size_t i = (size_t)hash_ext(key, n) & m->mask;
    for (;;) {
        mime_slot *s = &m->slots[i];
        if (!s->ext[0] || (strncmp(s->ext, key, n) == 0 && s->ext[n] == 0)) return s;
        i = (i + 1) & m->mask;
    }
}

static int grow(gp_mime *m)
{
    size_t n = (m->mask + 1) * 2;
    mime_slot *old = m->slots;
    size_t old_n = m->mask + 1;
    if (!(m->slots = calloc(n, sizeof *m->slots))) {
        m->slots = old;
        return -1;
    }
    m->mask = n - 1;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].ext[0]) *find_slot(m, old[i].ext, strlen(old[i].ext)) = old[i];
    free(old);
    return 0;
}

/* The Content-Type string for a type name, with its charset when text. */
static const char *intern_type(gp_mime *m, const char *t, size_t n, size_t *len)
{
    for (size_t i = m->num_types; i-- > 0;) { /* a file's lines repeat the last type */
        const char *s = m->types[i];
        if (strncmp(s, t, n) == 0 && (s[n] == 0 || s[n] == ';')) {
            *len = strlen(s);
            return s;
        }
    }
    if (m->num_types == m->cap_types) {
        size_t cap = m->cap_types ? m->cap_types * 2 : 256;
        char **more = realloc(m->types, cap * sizeof *more);
        if (!more) return NULL;
        m->types = more;
        m->cap_types = cap;
    }
    static const char cs[] = "; charset=utf-8";
    int text = wants_charset(t, n);
    char *s = malloc(n + sizeof cs);
    if (!s) return NULL;
    memcpy(s, t, n);
    if (text) memcpy(s + n, cs, sizeof cs);
    else s[n] = 0;
    m->types[m->num_types++] = s;
    *len = strlen(s);
    return s;
}

/* Adds ext -> type unless ext has one already. */
static int add(gp_mime *m, const char *ext, size_t ext_len, const char *type, size_t type_len)
{
    char key[EXT_MAX + 1];
    size_t n = lower_ext(key, ext, ext_len);
    if (!n) return 0;
    if ((m->used + 1) * 2 > m->mask + 1 && grow(m) < 0) return -1;
    mime_slot *s = find_slot(m, key, n);
    if (s->ext[0]) return 0;
    size_t tl;
    const char *t = intern_type(m, type, type_len, &tl);
    if (!t) return -1;
    memcpy(s->ext, key, n + 1);
    s->type = t;
    s->type_len = tl;
    m->used++;
    return 0;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static int load_file(gp_mime *m, FILE *f)
{
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *p = line, *hash = strchr(line, '#');
        if (hash) *hash = 0;
        while (is_space(*p)) p++;
        char *type = p;
        while (*p && !is_space(*p)) p++;
        size_t type_len = (size_t)(p - type);
        if (!type_len || !memchr(type, '/', type_len)) continue;
        for (;;) {
            while (is_space(*p)) p++;
            if (!*p) break;
            char *ext = p;
            while (*p && !is_space(*p)) p++;
            if (add(m, ext, (size_t)(p - ext), type, type_len) < 0) return -1;
        }
    }
    return 0;
}

gp_mime *gp_mime_load(const char *path)
{
    gp_mime *m = calloc(1, sizeof *m);
    if (!m || !(m->slots = calloc(64, sizeof *m->slots))) goto fail;
    m->mask = 63;
    FILE *f = path ? fopen(path, "re") : NULL;
    if (f) {
        int r = load_file(m, f);
        fclose(f);
        if (r < 0) goto fail;
    }
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
        if (add(m, builtin[i][0], strlen(builtin[i][0]), builtin[i][1], strlen(builtin[i][1])) < 0)
            goto fail;
    return m;
fail:
    gp_mime_free(m);
    return NULL;
}

void gp_mime_free(gp_mime *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->num_types; i++) free(m->types[i]);
    free(m->types);
    free(m->slots);
    free(m);
}

const char *gp_mime_type(const gp_mime *m, const char *name, size_t name_len, size_t *len)
{
    size_t i = name_len;
    while (i > 0 && name[i - 1] != '.' && name[i - 1] != '/') i--;
    char key[EXT_MAX + 1];
    size_t n = i > 0 && name[i - 1] == '.' ? lower_ext(key, name + i, name_len - i) : 0;
    if (n) {
        const mime_slot *s = find_slot(m, key, n);
        if (s->ext[0]) {
            *len = s->type_len;
            return s->type;
        }
    }
    *len = sizeof DEFAULT_TYPE - 1;
    return DEFAULT_TYPE;
}
