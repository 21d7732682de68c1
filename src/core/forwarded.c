/* forwarded: the trusted-peer list and the proxy headers; see forwarded.h. */
#include "core/forwarded.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* ---- addresses and the list ------------------------------------------------ */

static void map_v4(const void *v4, uint8_t out[16])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

bool gp_fwd_ip_parse(const char *s, size_t n, uint8_t out[16])
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    uint8_t v4[4];
    if (memchr(s, ':', n)) return inet_pton(AF_INET6, tmp, out) == 1;
    if (inet_pton(AF_INET, tmp, v4) != 1) return false;
    map_v4(v4, out);
    return true;
}

static bool is_v4(const uint8_t a[16])
{
    static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pre, 12) == 0;
}

static bool net_has(const gp_fwd_net *net, const uint8_t a[16])
{
    unsigned full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, a, full) != 0) return false;
    if (!rest) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net->addr[full] & mask) == (a[full] & mask);
}

static bool trusts_ip(const gp_fwd_trust *t, const uint8_t a[16])
{
    if (t->all) return true;
    for (int i = 0; i < t->num_nets; i++)
        if (net_has(&t->nets[i], a)) return true;
    return false;
}

bool gp_fwd_trusts(const gp_fwd_trust *t, const struct sockaddr *sa)
{
    uint8_t a[16];
    switch (sa->sa_family) {
    case AF_UNIX: return t->all || t->unix_peers;
    case AF_INET: map_v4(&((const struct sockaddr_in *)sa)->sin_addr, a); break;
    case AF_INET6: memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16); break;
    default: return false;
    }
    return trusts_ip(t, a);
}

static int parse_entry(gp_fwd_trust *t, const char *s, size_t n, char *err, size_t errlen)
{
    if (n == 1 && s[0] == '*') {
        t->all = true;
        return 0;
    }
    if (n == 4 && memcmp(s, "unix", 4) == 0) {
        t->unix_peers = true;
        return 0;
    }
    if (t->num_nets == GP_FWD_MAX_NETS) {
        snprintf(err, errlen, "too many --forwarded-allow-ips entries (at most %d)",
                 GP_FWD_MAX_NETS);
        return -1;
    }
    gp_fwd_net *net = &t->nets[t->num_nets];
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t)(slash - s) : n;
    if (!gp_fwd_ip_parse(s, alen, net->addr)) goto bad;
    unsigned max = is_v4(net->addr) && !memchr(s, ':', alen) ? 32 : 128, bits = max;
    if (slash) {
        const char *d = slash + 1, *end = s + n;
        if (d == end || end - d > 3) goto bad;
        bits = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9') goto bad;
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > max) goto bad;
    }
    net->bits = (uint8_t)(bits + (max == 32 ? 96 : 0));
    t->num_nets++;
    return 0;
bad:
    snprintf(err, errlen,
             "invalid --forwarded-allow-ips entry '%.*s' (an IP address, a network such as "
             "10.0.0.0/8, '*' or 'unix')",
             (int)(n > 100 ? 100 : n), s);
    return -1;
}

int gp_fwd_trust_parse(gp_fwd_trust *t, const char *spec, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *p = spec;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *end = e;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t')) end--;
        if (end > p && parse_entry(t, p, (size_t)(end - p), err, errlen) < 0) return -1;
        if (!*e) break;
        p = e + 1;
    }
    return 0;
}

/* ---- pieces of header values ------------------------------------------------ */

static bool ieq(const char *s, size_t n, const char *lower)
{
    return gp_http_token_eq(s, n, lower);
}

static bool ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static void trim(const char **s, size_t *n)
{
    while (*n && ows(**s)) (*s)++, (*n)--;
    while (*n && ows((*s)[*n - 1])) (*n)--;
}

/* 1..65535 in decimal, no sign or leading zero. */
static bool parse_port(const char *s, size_t n, unsigned *port)
{
    unsigned v = 0;
    if (n == 0 || n > 5 || s[0] == '0') return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535) return false;
    *port = v;
    return true;
}

/* A hop: "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80".
 * An obfuscated port ("_x", RFC 7239 6.3) counts as no port. */
static bool parse_hop(const char *s, size_t n, uint8_t a[16], unsigned *port)
{
    *port = 0;
    const char *ip = s, *ps = NULL;
    size_t ipn = n, pn = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) return false;
        ip = s + 1;
        ipn = (size_t)(close - ip);
        size_t after = n - (size_t)(close + 1 - s);
        if (after) {
            if (close[1] != ':') return false;
            ps = close + 2;
            pn = after - 1;
        }
        if (!memchr(ip, ':', ipn)) return false; /* brackets hold IPv6 only */
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - s))) { /* v4:port */
            ipn = (size_t)(colon - s);
            ps = colon + 1;
            pn = n - ipn - 1;
        }
    }
    if (!gp_fwd_ip_parse(ip, ipn, a)) return false;
    if (!ps) return true;
    if (pn && ps[0] == '_') return true;
    return parse_port(ps, pn, port);
}

/* uri-host [":" port] as a Host header carries it (RFC 3986 reg-name or an
 * IPv6 literal), not empty, short enough to rebuild in hostbuf. */
static bool valid_host(const char *s, size_t n)
{
    if (n == 0 || n > GP_FWD_HOST_MAX - 8) return false;
    size_t i = 0;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        uint8_t a[16];
        if (!close || !gp_fwd_ip_parse(s + 1, (size_t)(close - s - 1), a)) return false;
        i = (size_t)(close - s) + 1;
    } else {
        for (; i < n && s[i] != ':'; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || strchr("-._~!$&'()*+;=%", ch)))
                return false;
        }
        if (i == 0) return false;
    }
    if (i == n) return true;
    unsigned port;
    return s[i] == ':' && parse_port(s + i + 1, n - i - 1, &port);
}

/* "http", "https", "ws", "wss" (any case): 1 secure, 0 plain, -1 neither. */
static int parse_proto(const char *s, size_t n)
{
    if (ieq(s, n, "https") || ieq(s, n, "wss")) return 1;
    if (ieq(s, n, "http") || ieq(s, n, "ws")) return 0;
    return -1;
}

/* ---- X-Forwarded-* ----------------------------------------------------------- */

enum { H_XFF, H_PROTO, H_HOST, H_PORT, H_PREFIX, H_FORWARDED, H_KINDS };

static int kind_of(const gp_http_header *h)
{
    size_t n = h->name_len;
    const char *s = h->name;
    if (n == 9) return ieq(s, n, "forwarded") ? H_FORWARDED : -1;
    if (n < 15 || n > 18 || (s[0] | 0x20) != 'x' || !ieq(s, 12, "x-forwarded-")) return -1;
    s += 12;
    n -= 12;
    if (ieq(s, n, "for")) return H_XFF;
    if (ieq(s, n, "proto")) return H_PROTO;
    if (ieq(s, n, "host")) return H_HOST;
    if (ieq(s, n, "port")) return H_PORT;
    if (ieq(s, n, "prefix")) return H_PREFIX;
    return -1;
}

/* The right-most list element of the last line of a kind, trimmed; false
 * when it is empty. */
static bool last_value(const gp_http_header *h, int line, const char **v, size_t *vn)
{
    const char *s = h[line].value;
    size_t n = h[line].value_len;
    const char *comma = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ',') {
            comma = s + i - 1;
            break;
        }
    if (comma) {
        n -= (size_t)(comma + 1 - s);
        s = comma + 1;
    }
    trim(&s, &n);
    *v = s;
    *vn = n;
    return n > 0;
}

static void set_client(gp_fwd *out, const uint8_t a[16], unsigned port)
{
    if (is_v4(a)) inet_ntop(AF_INET, a + 12, out->client, sizeof out->client);
    else inet_ntop(AF_INET6, a, out->client, sizeof out->client);
    out->client_port = (int)port;
    out->set |= GP_FWD_FOR;
}

/* X-Forwarded-For over all its lines, right to left: the first hop not in
 * the list, else the left-most. A malformed hop reached on the way spoils it. */
static void resolve_xff(const gp_fwd_trust *t, const gp_http_header *h, size_t n, gp_fwd *out)
{
    uint8_t a[16], left[16];
    unsigned port, left_port = 0;
    bool any = false;
    for (size_t i = n; i > 0; i--) {
        if (kind_of(&h[i - 1]) != H_XFF) continue;
        const char *s = h[i - 1].value;
        size_t end = h[i - 1].value_len;
        for (;;) {
            size_t start = end;
            while (start > 0 && s[start - 1] != ',') start--;
            const char *e = s + start;
            size_t en = end - start;
            trim(&e, &en);
            if (en) {
                if (!parse_hop(e, en, a, &port)) return;
                if (!trusts_ip(t, a)) { /* with "*" never: the left-most it is */
                    set_client(out, a, port);
                    return;
                }
                memcpy(left, a, 16);
                left_port = port;
                any = true;
            }
            if (start == 0) break;
            end = start - 1;
        }
    }
    if (any) set_client(out, left, left_port);
}

/* ---- Forwarded (RFC 7239) ------------------------------------------------------ */

typedef struct {
    const char *forv, *proto, *host;
    size_t forn, proton, hostn;
} fwd_elem;

/* A token or a quoted-string without escapes at *p; false when malformed. */
static bool fwd_value(const char **p, const char *end, const char **v, size_t *vn)
{
    const char *s = *p;
    if (s < end && *s == '"') {
        const char *q = s + 1;
        while (q < end && *q != '"') {
            if (*q == '\\' || (unsigned char)*q < 0x20) return false;
            q++;
        }
        if (q == end) return false;
        *v = s + 1;
        *vn = (size_t)(q - s - 1);
        *p = q + 1;
        return true;
    }
    const char *q = s;
    while (q < end && *q != ';' && *q != ',' && !ows(*q)) {
        unsigned char ch = (unsigned char)*q;
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),/;<=>?@[\\]{}", ch)) {
            /* ':' is no tchar, but a bare "for=1.2.3.4:80" is common enough */
            if (ch != ':' && ch != '[' && ch != ']') return false;
        }
        q++;
    }
    if (q == s) return false;
    *v = s;
    *vn = (size_t)(q - s);
    *p = q;
    return true;
}

/* Is this element's for= a hop we trust (so the client is further left)? */
static int elem_trusted(const gp_fwd_trust *t, const fwd_elem *e, bool *bad)
{
    uint8_t a[16];
    unsigned port;
    if (!e->forv || ieq(e->forv, e->forn, "unknown") || (e->forn && e->forv[0] == '_')) return 0;
    if (!parse_hop(e->forv, e->forn, a, &port)) {
        *bad = true;
        return 0;
    }
    return trusts_ip(t, a);
}

static void resolve_forwarded(const gp_fwd_trust *t, const gp_http_header *h, size_t n, gp_fwd *out)
{
    fwd_elem cur = {0}, first = {0}, pick = {0};
    bool have_first = false, have_pick = false, bad = false;
    for (size_t i = 0; i < n; i++) {
        if (kind_of(&h[i]) != H_FORWARDED) continue;
        const char *p = h[i].value, *end = p + h[i].value_len;
        memset(&cur, 0, sizeof cur);
        bool empty = true;
        for (;;) {
            while (p < end && ows(*p)) p++;
            if (p < end && *p != ',' && *p != ';') { /* name=value */
                const char *name = p;
                while (p < end && *p != '=' && !ows(*p) && *p != ';' && *p != ',') p++;
                size_t nn = (size_t)(p - name);
                const char *v;
                size_t vn;
                if (p == end || *p != '=' || nn == 0) return;
                p++;
                if (!fwd_value(&p, end, &v, &vn)) return;
                const char **slot = NULL;
                size_t *slotn = NULL;
                if (ieq(name, nn, "for")) slot = &cur.forv, slotn = &cur.forn;
                else if (ieq(name, nn, "proto")) slot = &cur.proto, slotn = &cur.proton;
                else if (ieq(name, nn, "host")) slot = &cur.host, slotn = &cur.hostn;
                if (slot) {
                    if (*slot) return; /* a parameter twice in one element (7239 4) */
                    *slot = v;
                    *slotn = vn;
                }
                empty = false;
                while (p < end && ows(*p)) p++;
            }
            if (p < end && *p == ';') {
                p++;
                continue;
            }
            if (p < end && *p != ',') return;
            /* the element ends */
            if (!empty) {
                if (!have_first) first = cur, have_first = true;
                int trusted = elem_trusted(t, &cur, &bad);
                if (bad) return;
                if (!trusted && !t->all) pick = cur, have_pick = true;
            }
            memset(&cur, 0, sizeof cur);
            empty = true;
            if (p == end) break;
            p++;
        }
    }
    if (!have_pick) {
        if (!have_first) return;
        pick = first;
    }
    uint8_t a[16];
    unsigned port;
    if (pick.forv && parse_hop(pick.forv, pick.forn, a, &port)) set_client(out, a, port);
    int secure = pick.proto ? parse_proto(pick.proto, pick.proton) : -1;
    if (secure >= 0) {
        out->secure = secure;
        out->set |= GP_FWD_PROTO;
    }
    if (pick.host && valid_host(pick.host, pick.hostn)) {
        out->host = pick.host;
        out->host_len = pick.hostn;
        out->set |= GP_FWD_HOST;
    }
}

/* ---- putting it together --------------------------------------------------------- */

/* host with its port replaced by port, or dropped when it is the scheme's
 * default, into out->hostbuf. */
static void host_with_port(gp_fwd *out, const char *host, size_t n)
{
    size_t hn = n;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', n);
        hn = close ? (size_t)(close - host) + 1 : n;
    } else {
        const char *colon = memchr(host, ':', n);
        if (colon) hn = (size_t)(colon - host);
    }
    unsigned dflt = out->secure ? 443 : 80;
    int k = out->port == dflt
                ? snprintf(out->hostbuf, sizeof out->hostbuf, "%.*s", (int)hn, host)
                : snprintf(out->hostbuf, sizeof out->hostbuf, "%.*s:%u", (int)hn, host, out->port);
    if (k < 0 || (size_t)k >= sizeof out->hostbuf) return;
    out->host = out->hostbuf;
    out->host_len = (size_t)k;
    out->set |= GP_FWD_HOST;
}

bool gp_fwd_resolve(const gp_fwd_trust *t, const gp_http_header *h, size_t n, const char *host,
                    size_t host_len, gp_fwd *out)
{
    int last[H_KINDS] = {-1, -1, -1, -1, -1, -1};
    bool xany = false, any = false;
    for (size_t i = 0; i < n; i++) {
        size_t nl = h[i].name_len;
        char c0 = (char)(h[i].name[0] | 0x20);
        if (nl < 9 || nl > 18 || (c0 != 'x' && c0 != 'f')) continue; /* the usual case */
        int k = kind_of(&h[i]);
        if (k < 0) continue;
        last[k] = (int)i;
        any = true;
        if (k != H_FORWARDED) xany = true;
    }
    out->set = 0;
    if (!any) return false;
    out->secure = false;
    out->port = 0;
    const char *v;
    size_t vn;
    if (!xany) {
        resolve_forwarded(t, h, n, out);
    } else {
        if (last[H_XFF] >= 0) resolve_xff(t, h, n, out);
        int secure;
        if (last[H_PROTO] >= 0 && last_value(h, last[H_PROTO], &v, &vn) &&
            (secure = parse_proto(v, vn)) >= 0) {
            out->secure = secure;
            out->set |= GP_FWD_PROTO;
        }
        if (last[H_HOST] >= 0 && last_value(h, last[H_HOST], &v, &vn) && valid_host(v, vn)) {
            out->host = v;
            out->host_len = vn;
            out->set |= GP_FWD_HOST;
        }
        if (last[H_PORT] >= 0 && last_value(h, last[H_PORT], &v, &vn) &&
            parse_port(v, vn, &out->port)) {
            out->set |= GP_FWD_PORT;
            const char *base = out->set & GP_FWD_HOST ? out->host : host;
            size_t bn = out->set & GP_FWD_HOST ? out->host_len : host_len;
            if (base && bn) host_with_port(out, base, bn);
        }
        if (last[H_PREFIX] >= 0 && last_value(h, last[H_PREFIX], &v, &vn) && v[0] == '/' &&
            vn <= 1024) {
            bool ok = true;
            for (size_t i = 0; i < vn && ok; i++)
                ok = v[i] > 0x20 && v[i] < 0x7f && v[i] != '?' && v[i] != '#';
            while (ok && vn && v[vn - 1] == '/') vn--;
            if (ok) {
                out->prefix = v;
                out->prefix_len = vn;
                out->set |= GP_FWD_PREFIX;
            }
        }
    }
    return out->set != 0;
}
