/* proxyproto: PROXY protocol v1 and v2 headers; see proxyproto.h. Follows
 * haproxy's doc/proxy-protocol.txt (sections 2.1 and 2.2). */
#include "core/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static const char V1_SIG[6] = "PROXY ";
static const char V2_SIG[12] = "\r\n\r\n\0\r\nQUIT\n";

/* One decimal port, 0..65535, no leading zero. */
static int port_of(const char *s, size_t n)
{
    unsigned v = 0;
    if (n == 0 || n > 5 || (s[0] == '0' && n > 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v > 65535 ? -1 : (int)v;
}

/* The next space-separated field of line[*pos..end): exactly one space after
 * it unless it is the last. */
static int field(const char *line, size_t end, size_t *pos, const char **f, size_t *fn, int last)
{
    size_t i = *pos;
    while (i < end && line[i] != ' ') i++;
    if (i == *pos) return -1;
    *f = line + *pos;
    *fn = i - *pos;
    if (last ? i != end : i == end) return -1;
    *pos = i + 1;
    return 0;
}

static int addr_of(int family, const char *s, size_t n, void *dst)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return inet_pton(family, tmp, dst) == 1 ? 0 : -1;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n", "PROXY UNKNOWN ...\r\n". */
static int parse_v1(gp_pp_state *st, const char *buf, size_t len, gp_pp_result *out)
{
    size_t lim = len < GP_PP_V1_MAX ? len : GP_PP_V1_MAX;
    const char *lf = st->scanned < lim ? memchr(buf + st->scanned, '\n', lim - st->scanned) : NULL;
    if (!lf) {
        st->scanned = lim;
        return len >= GP_PP_V1_MAX ? -1 : 0;
    }
    size_t total = (size_t)(lf - buf) + 1, end = total - 2;
    if (total < 8 || buf[end] != '\r' || memchr(buf, '\r', end)) return -1;
    size_t pos = sizeof V1_SIG;
    const char *proto, *src, *dst, *sp, *dp;
    size_t pn, sn, dn, spn, dpn;
    if (end - pos >= 7 && memcmp(buf + pos, "UNKNOWN", 7) == 0 &&
        (end - pos == 7 || buf[pos + 7] == ' '))
        return (int)total; /* the rest of the line is to be ignored (2.1) */
    if (field(buf, end, &pos, &proto, &pn, 0) < 0 || pn != 4 ||
        (memcmp(proto, "TCP4", 4) != 0 && memcmp(proto, "TCP6", 4) != 0) ||
        field(buf, end, &pos, &src, &sn, 0) < 0 || field(buf, end, &pos, &dst, &dn, 0) < 0 ||
        field(buf, end, &pos, &sp, &spn, 0) < 0 || field(buf, end, &pos, &dp, &dpn, 1) < 0)
        return -1;
    int sport = port_of(sp, spn);
    if (sport < 0 || port_of(dp, dpn) < 0) return -1;
    memset(&out->src, 0, sizeof out->src);
    if (proto[3] == '4') {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->src;
        struct in_addr d;
        if (addr_of(AF_INET, src, sn, &s4->sin_addr) < 0 || addr_of(AF_INET, dst, dn, &d) < 0)
            return -1;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)sport);
        out->src_len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->src;
        struct in6_addr d;
        if (addr_of(AF_INET6, src, sn, &s6->sin6_addr) < 0 || addr_of(AF_INET6, dst, dn, &d) < 0)
            return -1;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)sport);
        out->src_len = sizeof *s6;
    }
    return (int)total;
}

static int parse_v2(const unsigned char *b, size_t len, gp_pp_result *out)
{
    if (len < 16) return 0;
    unsigned ver = b[12] >> 4, cmd = b[12] & 0xf, fam = b[13] >> 4, proto = b[13] & 0xf;
    size_t body = (size_t)b[14] << 8 | b[15], total = 16 + body;
    if (ver != 2 || cmd > 1 || total > GP_PP_MAX) return -1;
    if (cmd == 1 && fam != 0 && proto != 1) return -1; /* datagrams: not ours */
    size_t need = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
    if (fam > 3 || body < need) return -1;
    if (len < total) return 0;
    if (cmd == 1 && fam == 1) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->src;
        memcpy(&s4->sin_addr, b + 16, 4);
        memcpy(&s4->sin_port, b + 24, 2);
        s4->sin_family = AF_INET;
        out->src_len = sizeof *s4;
    } else if (cmd == 1 && fam == 2) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->src;
        memcpy(&s6->sin6_addr, b + 16, 16);
        memcpy(&s6->sin6_port, b + 48, 2);
        s6->sin6_family = AF_INET6;
        out->src_len = sizeof *s6;
    }
    return (int)total;
}

int gp_pp_parse(gp_pp_state *st, const char *buf, size_t len, gp_pp_result *out)
{
    memset(&out->src, 0, sizeof out->src); /* AF_UNSPEC unless an address is given */
    out->src_len = 0;
    size_t k1 = len < sizeof V1_SIG ? len : sizeof V1_SIG;
    size_t k2 = len < sizeof V2_SIG ? len : sizeof V2_SIG;
    if (k1 && memcmp(buf, V1_SIG, k1) == 0)
        return k1 < sizeof V1_SIG ? 0 : parse_v1(st, buf, len, out);
    if (k2 && memcmp(buf, V2_SIG, k2) == 0)
        return k2 < sizeof V2_SIG ? 0 : parse_v2((const unsigned char *)buf, len, out);
    return len ? -1 : 0;
}
