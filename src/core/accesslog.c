/* accesslog: the access-log format program and its lines; see accesslog.h. */
#include "core/accesslog.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

/* ---- compiling a format ------------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned char atom;
    bool numeric; /* takes %(x)d too */
} atom_names[] = {
    {"h", GP_AL_HOST, false},     {"l", GP_AL_IDENT, false},   {"u", GP_AL_USER, false},
    {"t", GP_AL_TIME, false},     {"r", GP_AL_REQUEST, false}, {"s", GP_AL_STATUS, true},
    {"m", GP_AL_METHOD, false},   {"U", GP_AL_PATH, false},    {"q", GP_AL_QUERY, false},
    {"H", GP_AL_PROTOCOL, false}, {"b", GP_AL_BYTES, true},    {"B", GP_AL_BYTES_B, true},
    {"f", GP_AL_REFERER, false},  {"a", GP_AL_AGENT, false},   {"T", GP_AL_SECONDS, true},
    {"D", GP_AL_MICROS, true},    {"M", GP_AL_MILLIS, true},   {"L", GP_AL_DECIMAL, false},
    {"p", GP_AL_PID, false},
};

static int bad(char *err, size_t errlen, const char *fmt, const char *a, size_t alen)
{
    snprintf(err, errlen, fmt, (int)alen, a);
    return -1;
}

static int add_piece(gp_alog_format *f, unsigned char atom, unsigned char slot, size_t off,
                     size_t len, char *err, size_t errlen)
{
    if (f->num_pieces == GP_ALOG_MAX_PIECES)
        return bad(err, errlen, "too many pieces%.*s (at most 64 atoms and texts)", "", 0);
    f->pieces[f->num_pieces++] = (gp_alog_piece){atom, slot, (uint16_t)off, (uint16_t)len};
    f->atoms |= 1u << atom;
    return 0;
}

static int add_text(gp_alog_format *f, const char *s, size_t n, bool lower, size_t *off)
{
    if (f->text_len + n > sizeof f->text) return -1;
    *off = f->text_len;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        f->text[f->text_len++] = lower && ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    return 0;
}

/* A literal run, merged with the one before when adjacent. */
static int add_literal(gp_alog_format *f, const char *s, size_t n, char *err, size_t errlen)
{
    size_t off;
    if (!n) return 0;
    if (add_text(f, s, n, false, &off) < 0)
        return bad(err, errlen, "the format is too long%.*s (at most 1024 bytes of text)", "", 0);
    gp_alog_piece *last = f->num_pieces ? &f->pieces[f->num_pieces - 1] : NULL;
    if (last && last->atom == GP_AL_LIT && last->off + last->len == off) {
        last->len = (uint16_t)(last->len + n);
        return 0;
    }
    return add_piece(f, GP_AL_LIT, 0, off, n, err, errlen);
}

/* {name}i or {name}o: the slot of that header, shared by repeats. */
static int header_slot(gp_alog_format *f, bool out, const char *name, size_t n, char *err,
                       size_t errlen)
{
    int *count = out ? &f->num_out : &f->num_in;
    __typeof__(f->in[0]) *list = out ? f->out : f->in;
    for (int i = 0; i < *count; i++)
        if (list[i].len == n && strncasecmp(f->text + list[i].off, name, n) == 0) return i;
    if (*count == GP_ALOG_MAX_HEADERS)
        return bad(err, errlen, "too many %%({header}%.*s)s atoms (at most 16)", out ? "o" : "i",
                   1);
    size_t off;
    if (add_text(f, name, n, true, &off) < 0)
        return bad(err, errlen, "the format is too long%.*s (at most 1024 bytes of text)", "", 0);
    list[*count].off = (uint16_t)off;
    list[*count].len = (uint16_t)n;
    return (*count)++;
}

int gp_alog_compile(gp_alog_format *f, const char *fmt, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    const char *s = fmt, *lit = fmt;
    while ((s = strchr(s, '%'))) {
        if (add_literal(f, lit, (size_t)(s - lit), err, errlen) < 0) return -1;
        if (s[1] == '%') { /* "%%" is one '%' */
            if (add_literal(f, s, 1, err, errlen) < 0) return -1;
            lit = s += 2;
            continue;
        }
        if (s[1] != '(')
            return bad(err, errlen,
                       "'%.*s' in the access log format: write atoms as %%(NAME)s, and %%%% for "
                       "a '%%'",
                       s, s[1] ? 2 : 1);
        /* Python's %(...) counts nested parentheses */
        const char *name = s + 2, *e = name;
        for (int depth = 1; *e; e++) {
            if (*e == '(') depth++;
            else if (*e == ')' && --depth == 0) break;
        }
        if (!*e) return bad(err, errlen, "unclosed '%.*s' in the access log format", s, strlen(s));
        size_t n = (size_t)(e - name);
        char conv = e[1];
        if (conv != 's' && conv != 'd')
            return bad(err, errlen,
                       "'%.*s' in the access log format: atoms end in 's' (or 'd' for numbers)", s,
                       (size_t)(e - s) + (conv ? 2 : 1));
        int r = -1;
        if (n >= 3 && name[0] == '{' && name[n - 2] == '}' &&
            (name[n - 1] == 'i' || name[n - 1] == 'o') && conv == 's') {
            bool out = name[n - 1] == 'o';
            if (n == 3) return bad(err, errlen, "empty header name in '%.*s'", s, n + 4);
            int slot = header_slot(f, out, name + 1, n - 3, err, errlen);
            if (slot < 0) return -1;
            r = add_piece(f, out ? GP_AL_OUT : GP_AL_IN, (unsigned char)slot, 0, 0, err, errlen);
        } else if (n >= 3 && name[0] == '{' && name[n - 2] == '}' && name[n - 1] == 'e') {
            return bad(err, errlen,
                       "'%.*s': WSGI environ atoms ({NAME}e) are not supported: gallop formats "
                       "the log in C (use %%({header}i)s for a request header)",
                       s, n + 4);
        } else {
            size_t i = 0;
            while (i < sizeof atom_names / sizeof *atom_names &&
                   (strlen(atom_names[i].name) != n || memcmp(atom_names[i].name, name, n) != 0))
                i++;
            if (i == sizeof atom_names / sizeof *atom_names)
                return bad(err, errlen,
                           "unknown atom '%.*s' in the access log format (h l u t r s m U q H b "
                           "B f a T D M L p, {header}i, {header}o)",
                           s, n + 4);
            if (conv == 'd' && !atom_names[i].numeric)
                return bad(err, errlen, "'%.*s' is not a number: use s", s, n + 4);
            r = add_piece(f, atom_names[i].atom, 0, 0, 0, err, errlen);
        }
        if (r < 0) return -1;
        lit = s = e + 2;
    }
    return add_literal(f, lit, strlen(lit), err, errlen);
}

/* ---- what a request leaves for its line ------------------------------------------------ */

size_t gp_alog_rec_size(const gp_alog_format *f)
{
    return sizeof(gp_alog_rec) + (size_t)(GP_ALOG_SLOTS + f->num_in + f->num_out) * GP_ALOG_FIELD;
}

static void keep(gp_alog_rec *r, int slot, const char *v, size_t n)
{
    if (n > GP_ALOG_FIELD - 1) n = GP_ALOG_FIELD - 1;
    memcpy(r->data[slot], v, n);
    r->len[slot] = (uint16_t)n;
}

void gp_alog_capture(gp_alog_rec *r, const gp_alog_format *f, const gp_http_request *req)
{
    r->num_slots = (uint8_t)(GP_ALOG_SLOTS + f->num_in + f->num_out);
    for (int i = 0; i < r->num_slots; i++) r->len[i] = GP_ALOG_ABSENT;
    /* the request line: method, target and " HTTP/1.x", as received; an
     * HTTP/2 request has no line, its pieces are apart (core/h2) */
    if (req->version_minor == GP_HTTP_VERSION_2) {
        char *d = r->data[GP_ALOG_LINE];
        size_t m = req->method_len < GP_ALOG_FIELD / 4 ? req->method_len : GP_ALOG_FIELD / 4;
        size_t t = req->target_len < GP_ALOG_FIELD - m - 11 ? req->target_len : GP_ALOG_FIELD - m - 11;
        memcpy(d, req->method, m);
        d[m] = ' ';
        memcpy(d + m + 1, req->target, t);
        memcpy(d + m + 1 + t, " HTTP/2.0", 9);
        r->len[GP_ALOG_LINE] = (uint16_t)(m + t + 10);
    } else {
        keep(r, GP_ALOG_LINE, req->method,
             (size_t)(req->target + req->target_len - req->method) + 9);
    }
    r->method_len = (uint16_t)(req->method_len < GP_ALOG_FIELD - 1 ? req->method_len : 0);
    r->version_minor = (uint8_t)req->version_minor;
    keep(r, GP_ALOG_RPATH, req->path, req->path_len);
    if (req->query) keep(r, GP_ALOG_QS, req->query, req->query_len);
    for (size_t i = 0; i < req->num_headers; i++) {
        const gp_http_header *h = &req->headers[i];
        if (gp_http_token_eq(h->name, h->name_len, "referer")) {
            keep(r, GP_ALOG_REFERER, h->value, h->value_len);
        } else if (gp_http_token_eq(h->name, h->name_len, "user-agent")) {
            keep(r, GP_ALOG_AGENT, h->value, h->value_len);
        } else if (gp_http_token_eq(h->name, h->name_len, "authorization")) {
            size_t u =
                gp_alog_basic_user(r->data[GP_ALOG_USER], GP_ALOG_FIELD, h->value, h->value_len);
            r->len[GP_ALOG_USER] = u ? (uint16_t)u : GP_ALOG_ABSENT;
        }
        for (int k = 0; k < f->num_in; k++)
            if (f->in[k].len == h->name_len &&
                strncasecmp(f->text + f->in[k].off, h->name, h->name_len) == 0)
                keep(r, GP_ALOG_SLOTS + k, h->value, h->value_len); /* the last one wins */
    }
}

void gp_alog_capture_response(gp_alog_rec *r, const gp_alog_format *f, const char *name,
                              size_t name_len, const char *value, size_t value_len)
{
    for (int k = 0; k < f->num_out; k++)
        if (f->out[k].len == name_len && strncasecmp(f->text + f->out[k].off, name, name_len) == 0)
            keep(r, GP_ALOG_SLOTS + f->num_in + k, value, value_len);
}

void gp_alog_forget_response(gp_alog_rec *r, const gp_alog_format *f)
{
    for (int k = 0; k < f->num_out; k++) r->len[GP_ALOG_SLOTS + f->num_in + k] = GP_ALOG_ABSENT;
}

/* ---- rendering --------------------------------------------------------------------------- */

/* An output with room for its end kept aside: pieces past the room are cut. */
typedef struct {
    char *p;
    size_t n, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (n > o->cap - o->n) n = o->cap - o->n;
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void put_str(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(out_t *o, uint64_t v)
{
    char tmp[24];
    put(o, tmp, (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v));
}

static size_t pct_decode(char *dst, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = gp_log_hexval(s[i + 1])) >= 0 &&
            (lo = gp_log_hexval(s[i + 2])) >= 0) {
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[o++] = s[i];
        }
    }
    return o;
}

/* A string atom's bytes (before escaping) into *v, n; NULL for "-". */
static const char *atom_bytes(const gp_alog_rec *r, const gp_alog_format *f,
                              const gp_alog_piece *pc, const gp_alog_values *v, char *scratch,
                              size_t *n)
{
    int slot = -1;
    switch (pc->atom) {
    case GP_AL_HOST: *n = strlen(v->host); return v->host;
    case GP_AL_REQUEST: slot = GP_ALOG_LINE; break;
    case GP_AL_USER: slot = GP_ALOG_USER; break;
    case GP_AL_REFERER: slot = GP_ALOG_REFERER; break;
    case GP_AL_AGENT: slot = GP_ALOG_AGENT; break;
    case GP_AL_IN: slot = GP_ALOG_SLOTS + pc->slot; break;
    case GP_AL_OUT: slot = GP_ALOG_SLOTS + f->num_in + pc->slot; break;
    case GP_AL_METHOD:
        if (!r || r->len[GP_ALOG_LINE] == GP_ALOG_ABSENT) return NULL;
        *n = r->method_len;
        return r->data[GP_ALOG_LINE];
    case GP_AL_PATH:
        if (!r || r->len[GP_ALOG_RPATH] == GP_ALOG_ABSENT) return NULL;
        *n = pct_decode(scratch, r->data[GP_ALOG_RPATH], r->len[GP_ALOG_RPATH]);
        return scratch;
    case GP_AL_QUERY:
        if (!r) return NULL;
        *n = r->len[GP_ALOG_QS] == GP_ALOG_ABSENT ? 0 : r->len[GP_ALOG_QS];
        return r->data[GP_ALOG_QS];
    case GP_AL_PROTOCOL:
        if (!r) return NULL;
        *n = 8;
        return r->version_minor == GP_HTTP_VERSION_2 ? "HTTP/2.0"
               : r->version_minor                   ? "HTTP/1.1"
                                                    : "HTTP/1.0";
    case GP_AL_PID: *n = (size_t)snprintf(scratch, GP_ALOG_FIELD, "<%d>", v->pid); return scratch;
    default: return NULL;
    }
    if (!r || slot >= r->num_slots || r->len[slot] == GP_ALOG_ABSENT) return NULL;
    *n = r->len[slot];
    return r->data[slot];
}

/* A numeric atom's value; false when the atom is not one. */
static bool atom_number(const gp_alog_piece *pc, const gp_alog_values *v, uint64_t *x)
{
    switch (pc->atom) {
    case GP_AL_STATUS: *x = (uint64_t)v->status; return true;
    case GP_AL_BYTES:
    case GP_AL_BYTES_B: *x = v->bytes; return true;
    case GP_AL_SECONDS: *x = v->duration_us / 1000000; return true;
    case GP_AL_MICROS: *x = v->duration_us; return true;
    case GP_AL_MILLIS: *x = v->duration_us / 1000; return true;
    default: return false;
    }
}

static void put_decimal(out_t *o, uint64_t us)
{
    char tmp[32];
    put(o, tmp,
        (size_t)snprintf(tmp, sizeof tmp, "%llu.%06llu", (unsigned long long)(us / 1000000),
                         (unsigned long long)(us % 1000000)));
}

/* The text line, without its '\n'; each value escaped as gp_log_escape does
 * (at most GP_ALOG_FIELD - 1 bytes of it). */
static void render_text(const gp_alog_format *f, const gp_alog_rec *r, const gp_alog_values *v,
                        out_t *o)
{
    char scratch[GP_ALOG_FIELD], esc[GP_ALOG_FIELD];
    for (int i = 0; i < f->num_pieces; i++) {
        const gp_alog_piece *pc = &f->pieces[i];
        uint64_t x;
        size_t n = 0;
        if (pc->atom == GP_AL_LIT) {
            put(o, f->text + pc->off, pc->len);
        } else if (atom_number(pc, v, &x)) {
            put_u64(o, x);
        } else if (pc->atom == GP_AL_TIME) {
            put(o, "[", 1);
            put_str(o, v->clf_time);
            put(o, "]", 1);
        } else if (pc->atom == GP_AL_DECIMAL) {
            put_decimal(o, v->duration_us);
        } else if (pc->atom == GP_AL_IDENT) {
            put(o, "-", 1);
        } else {
            const char *s = atom_bytes(r, f, pc, v, scratch, &n);
            if (!s) put(o, "-", 1);
            else put(o, esc, gp_log_escape(esc, sizeof esc, s, n));
        }
    }
}

static const char *const json_keys[GP_AL_NUM_ATOMS] = {
    [GP_AL_HOST] = "remote_addr",   [GP_AL_USER] = "user",          [GP_AL_REQUEST] = "request",
    [GP_AL_STATUS] = "status",      [GP_AL_METHOD] = "method",      [GP_AL_PATH] = "path",
    [GP_AL_QUERY] = "query",        [GP_AL_PROTOCOL] = "protocol",  [GP_AL_BYTES] = "bytes",
    [GP_AL_BYTES_B] = "bytes",      [GP_AL_REFERER] = "referer",    [GP_AL_AGENT] = "user_agent",
    [GP_AL_SECONDS] = "duration_s", [GP_AL_MICROS] = "duration_us", [GP_AL_MILLIS] = "duration_ms",
    [GP_AL_DECIMAL] = "duration",
};

/* "key":"value" with the value JSON-escaped, cut to the room left. */
static void json_pair(out_t *o, const char *key, const char *s, size_t n)
{
    size_t klen = strlen(key);
    if (o->cap - o->n < klen + 7) return; /* not even an empty value fits: leave it out */
    put(o, ",\"", 2);
    put(o, key, klen);
    put(o, "\":\"", 3);
    o->n += gp_json_escape(o->p + o->n, o->cap - o->n - 1, s, n);
    put(o, "\"", 1);
}

static void json_header_object(out_t *o, const gp_alog_format *f, const gp_alog_rec *r, bool out,
                               const char *key)
{
    int num = out ? f->num_out : f->num_in;
    if (!num || o->cap - o->n < strlen(key) + 6) return;
    put(o, ",\"", 2);
    put_str(o, key);
    put(o, "\":{", 3);
    o->cap--; /* room for the closing brace */
    size_t mark = o->n;
    for (int k = 0; k < num; k++) {
        int slot = GP_ALOG_SLOTS + (out ? f->num_in : 0) + k;
        const char *name = f->text + (out ? f->out[k].off : f->in[k].off);
        size_t nlen = out ? f->out[k].len : f->in[k].len;
        bool absent = !r || slot >= r->num_slots || r->len[slot] == GP_ALOG_ABSENT;
        if (o->cap - o->n < nlen * 6 + 8) break;
        if (o->n > mark) put(o, ",", 1);
        put(o, "\"", 1);
        o->n += gp_json_escape(o->p + o->n, o->cap - o->n, name, nlen);
        put(o, "\":", 2);
        if (absent) {
            put(o, "null", 4);
            continue;
        }
        put(o, "\"", 1);
        o->n += gp_json_escape(o->p + o->n, o->cap - o->n - 1, r->data[slot], r->len[slot]);
        put(o, "\"", 1);
    }
    o->cap++;
    put(o, "}", 1);
}

/* One JSON object: the error log's keys, the text line as message, then a
 * key per atom of the format (each once). */
static void render_json(const gp_alog_format *f, const gp_alog_rec *r, const gp_alog_values *v,
                        const char *text, size_t text_len, out_t *o)
{
    char scratch[GP_ALOG_FIELD];
    put(o, "{\"time\":\"", 9);
    put_str(o, v->iso_time);
    put(o, "\",\"level\":\"INFO\",\"pid\":", 23);
    put_u64(o, (uint64_t)(v->pid > 0 ? v->pid : 0));
    put(o, ",\"logger\":\"access\"", 18);
    json_pair(o, "message", text, text_len);
    uint32_t done = 0;
    for (int i = 0; i < f->num_pieces; i++) {
        const gp_alog_piece *pc = &f->pieces[i];
        const char *key = json_keys[pc->atom];
        uint64_t x;
        size_t n = 0;
        /* "bytes" once for b and B */
        unsigned bit = pc->atom == GP_AL_BYTES_B ? GP_AL_BYTES : pc->atom;
        if (!key || (done & (1u << bit))) continue;
        done |= 1u << bit;
        if (atom_number(pc, v, &x) || pc->atom == GP_AL_DECIMAL) {
            if (o->cap - o->n < strlen(key) + 28) continue;
            put(o, ",\"", 2);
            put_str(o, key);
            put(o, "\":", 2);
            if (pc->atom == GP_AL_DECIMAL) put_decimal(o, v->duration_us);
            else put_u64(o, x);
            continue;
        }
        const char *s = atom_bytes(r, f, pc, v, scratch, &n);
        if (s) json_pair(o, key, s, n);
        else json_pair(o, key, "-", 1);
    }
    if (f->atoms & (1u << GP_AL_IN)) json_header_object(o, f, r, false, "request_headers");
    if (f->atoms & (1u << GP_AL_OUT)) json_header_object(o, f, r, true, "response_headers");
    o->cap += 1; /* the room kept for the closing brace */
    put(o, "}", 1);
}

size_t gp_alog_render(const gp_alog_format *f, const gp_alog_rec *r, const gp_alog_values *v,
                      bool json, char *dst)
{
    if (!json) {
        out_t o = {dst, 0, GP_ALOG_LINE_MAX - 1};
        render_text(f, r, v, &o);
        dst[o.n++] = '\n';
        return o.n;
    }
    char text[GP_ALOG_LINE_MAX / 4];
    out_t t = {text, 0, sizeof text};
    render_text(f, r, v, &t);
    out_t o = {dst, 0, GP_ALOG_LINE_MAX - 2}; /* '}' and '\n' always fit */
    render_json(f, r, v, text, t.n, &o);
    dst[o.n++] = '\n';
    return o.n;
}

/* ---- %(u)s -------------------------------------------------------------------------------- */

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

size_t gp_alog_basic_user(char *dst, size_t cap, const char *v, size_t n)
{
    if (n < 6 || strncasecmp(v, "basic ", 6) != 0) return 0;
    size_t i = 6, u = 0;
    while (i < n && v[i] == ' ') i++;
    unsigned acc = 0;
    int bits = 0;
    for (; i < n && v[i] != '='; i++) {
        int x = b64_value((unsigned char)v[i]);
        if (x < 0) return 0; /* not base64: no user, as gunicorn */
        acc = (acc << 6) | (unsigned)x;
        bits += 6;
        if (bits < 8) continue;
        bits -= 8;
        char ch = (char)((acc >> bits) & 0xff);
        if (ch == ':') return u;
        if (u == 256 || u + 1 >= cap) return 0; /* as long a user as before */
        dst[u++] = ch;
    }
    return 0; /* no "user:" */
}
