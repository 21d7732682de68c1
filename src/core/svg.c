/* svg: the chart of `gallop tune --plot`; see svg.h. */
#include "core/svg.h"

#include <errno.h>

#define W 760
#define H 420
#define LEFT 80
#define RIGHT 80
#define TOP 76
#define BOTTOM 70
#define C1 "#1f77b4" /* y1: throughput */
#define C2 "#d62728" /* y2: p99 */

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

/* A round upper bound for an axis: 1, 2 or 5 times a power of ten; *ticks
 * gets how many equal steps divide it roundly. */
static double nice_max(double v, int *ticks)
{
    *ticks = 5;
    if (!(v > 0)) return 1;
    double p = 1; /* the power of ten at or below v, without libm */
    while (p * 10 <= v) p *= 10;
    while (p > v) p /= 10;
    double steps[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (steps[i] * p >= v) {
            if (steps[i] == 2) *ticks = 4;
            return steps[i] * p;
        }
    return 10 * p;
}

static double px(const gp_svg_chart *c, int i)
{
    double span = W - LEFT - RIGHT;
    return c->num_points > 1 ? LEFT + span * i / (c->num_points - 1) : LEFT + span / 2;
}

static double py(double v, double max)
{
    return TOP + (H - TOP - BOTTOM) * (1 - v / max);
}

static void series(FILE *f, const gp_svg_chart *c, int which, double max, const char *color)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < c->num_points; i++)
        fprintf(f, "%s%.1f,%.1f", i ? " " : "", px(c, i),
                py(which == 1 ? c->points[i].y1 : c->points[i].y2, max));
    fputs("\"/>\n", f);
}

int gp_svg_write(FILE *f, const gp_svg_chart *c)
{
    double max1 = 0, max2 = 0;
    for (int i = 0; i < c->num_points; i++) {
        if (c->points[i].y1 > max1) max1 = c->points[i].y1;
        if (c->points[i].y2 > max2) max2 = c->points[i].y2;
    }
    int n1, n2;
    max1 = nice_max(max1 * 1.05, &n1);
    max2 = nice_max(max2 * 1.05, &n2);
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fputs("<text class=\"title\" x=\"380\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", f);
    put_escaped(f, c->title);
    fputs("</text>\n", f);
    if (c->subtitle) {
        fputs("<text class=\"subtitle\" x=\"380\" y=\"40\" text-anchor=\"middle\" "
              "font-size=\"11\" fill=\"#444\">",
              f);
        put_escaped(f, c->subtitle);
        fputs("</text>\n", f);
    }
    fputs("<g class=\"axes\" stroke=\"#444\">\n", f);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", LEFT, H - BOTTOM, W - RIGHT,
            H - BOTTOM);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" C1 "\"/>\n", LEFT, TOP,
            LEFT, H - BOTTOM);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"" C2 "\"/>\n", W - RIGHT,
            TOP, W - RIGHT, H - BOTTOM);
    fputs("</g>\n<g class=\"ticks\">\n", f);
    for (int k = 0; k <= n1; k++) {
        double y = py(max1 * k / n1, max1);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"" C1 "\">%.4g</text>\n",
                LEFT, y, W - RIGHT, y, LEFT - 6, y + 4, max1 * k / n1);
    }
    for (int k = 0; k <= n2; k++)
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" fill=\"" C2 "\">%.4g</text>\n", W - RIGHT + 6,
                py(max2 * k / n2, max2) + 4, max2 * k / n2);
    for (int i = 0; i < c->num_points; i++) {
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", px(c, i), H - BOTTOM + 18);
        put_escaped(f, c->points[i].label);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (LEFT + W - RIGHT) / 2, H - 20);
    put_escaped(f, c->x_label);
    fprintf(f,
            "</text>\n<text x=\"20\" y=\"%d\" fill=\"" C1
            "\" text-anchor=\"middle\" transform=\"rotate(-90 20 %d)\">",
            (TOP + H - BOTTOM) / 2, (TOP + H - BOTTOM) / 2);
    put_escaped(f, c->y1_label);
    fprintf(f,
            "</text>\n<text x=\"%d\" y=\"%d\" fill=\"" C2
            "\" text-anchor=\"middle\" transform=\"rotate(90 %d %d)\">",
            W - 20, (TOP + H - BOTTOM) / 2, W - 20, (TOP + H - BOTTOM) / 2);
    put_escaped(f, c->y2_label);
    fputs("</text>\n", f);
    series(f, c, 1, max1, C1);
    series(f, c, 2, max2, C2);
    for (int i = 0; i < c->num_points; i++) {
        const gp_svg_point *p = &c->points[i];
        double x = px(c, i), y1 = py(p->y1, max1), y2 = py(p->y2, max2);
        fprintf(f,
                "<g class=\"point%s\" data-workers=\"%d\" data-threads=\"%d\" data-y1=\"%.6g\" "
                "data-y2=\"%.6g\"><circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"" C1
                "\"/><rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"" C2 "\"/>",
                i == c->pick ? " pick" : "", p->workers, p->threads, p->y1, p->y2, x, y1, x - 3.5,
                y2 - 3.5);
        if (i == c->pick)
            fprintf(f,
                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"10\" fill=\"none\" stroke=\"black\" "
                    "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                    "font-weight=\"bold\">pick</text>",
                    x, y1, x, y1 - 15);
        fputs("</g>\n", f);
    }
    fprintf(f,
            "<g class=\"legend\"><rect x=\"%d\" y=\"56\" width=\"10\" height=\"3\" fill=\"" C1
            "\"/><text x=\"%d\" y=\"62\">",
            LEFT + 10, LEFT + 26);
    put_escaped(f, c->y1_label);
    fprintf(f,
            "</text><rect x=\"%d\" y=\"56\" width=\"10\" height=\"3\" fill=\"" C2
            "\"/><text x=\"%d\" y=\"62\">",
            LEFT + 190, LEFT + 206);
    put_escaped(f, c->y2_label);
    fputs("</text></g>\n</svg>\n", f);
    return ferror(f) ? -EIO : 0;
}
